-- Why: the search index is derived data. When the extraction rules change (a new Billy release, or
-- resources stored before indexing existed), it must be rebuilt; this row records which rules built
-- it, so start-up can tell.
CREATE TABLE search_index_state (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version  integer NOT NULL
);
