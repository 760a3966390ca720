-- Why: placeholder. Issue 10 gave number 012 to another branch and 013 to the SMART branch
-- (issue10-smart); tern refuses a gap in the numbering, so this branch carries an empty 012 to
-- migrate on its own. Drop this file when merging after the branch that adds the real 012.
SELECT 1;
