-- Why: a token search's rows are found by (param, code, system), and those columns are far from
-- independent (a LOINC code occurs under one parameter, with one system). Multiplying their
-- separate frequencies, PostgreSQL estimated 500 matches for a code with 10,700 at a million
-- resources, chose to hash every match and sort them, and took 100-550 ms for a page of 50. With
-- the joint statistics it estimates ~10,600, merges in rid order and stops after the page (9 ms).
CREATE STATISTICS IF NOT EXISTS search_token_pcs (mcv, dependencies) ON param, code, system FROM search_token;
ALTER STATISTICS search_token_pcs SET STATISTICS 1000;
