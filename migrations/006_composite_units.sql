-- Why: a quantity search without a unit system ("$gt5||mg") matches the unit code or the unit as
-- written (search.html#quantity); composite components kept only the code, so the written unit was
-- lost for them.
ALTER TABLE search_composite ADD COLUMN unit1 text, ADD COLUMN unit2 text, ADD COLUMN unit3 text;
