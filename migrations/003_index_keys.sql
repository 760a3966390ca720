-- Why: writes with search indexing were too slow (each index row paid for a value index and a
-- (rid) index). Value indexes now end with rid, so a resource's old rows are deleted by probing the
-- value index with the values re-extracted from the old version, and the (rid) indexes go. Ending
-- with rid also hands rows of one value out in rid order. search_reference keeps its (rid) index:
-- _include and $everything follow references from a resource.

DROP INDEX search_token_value;
DROP INDEX search_token_rid;
CREATE INDEX search_token_value ON search_token (param, code, system, rid);

DROP INDEX search_string_value;
DROP INDEX search_string_rid;
CREATE INDEX search_string_value ON search_string (param, norm text_pattern_ops, rid);

DROP INDEX search_date_lo;
DROP INDEX search_date_hi;
DROP INDEX search_date_rid;
CREATE INDEX search_date_lo ON search_date (param, lo, rid) INCLUDE (hi);
CREATE INDEX search_date_hi ON search_date (param, hi) INCLUDE (lo, rid);

DROP INDEX search_number_value;
DROP INDEX search_number_rid;
CREATE INDEX search_number_value ON search_number (param, lo, rid) INCLUDE (hi);

DROP INDEX search_quantity_value;
DROP INDEX search_quantity_rid;
CREATE INDEX search_quantity_value ON search_quantity (param, lo, rid) INCLUDE (hi);

DROP INDEX search_composite_value;
DROP INDEX search_composite_rid;
CREATE INDEX search_composite_value ON search_composite (param, code1, rid);
