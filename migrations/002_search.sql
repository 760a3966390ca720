-- Why: FHIR search over every R4 search parameter. One narrow table per value type; every row
-- carries the resource's rid and the parameter's key (a hash of "Base.code", computed by the
-- server). Rows exist only for current, not deleted versions, so a count is an index-only scan of
-- one table. Each table has a (rid) index so an update or delete can drop a resource's rows, and
-- a value index that covers rid, so a search condition is answered from the index alone.

DROP INDEX search_token_value;
CREATE INDEX search_token_value ON search_token (param, code, system) INCLUDE (rid);

-- Strings (folded for starts-with matching, and exact) and URIs (both columns exact).
CREATE TABLE search_string (
    rid   bigint  NOT NULL,
    param integer NOT NULL,
    norm  text    NOT NULL,
    exact text    NOT NULL
);
CREATE INDEX search_string_value ON search_string (param, norm text_pattern_ops) INCLUDE (rid);
CREATE INDEX search_string_rid ON search_string (rid);

-- Dates, periods and timings as the half-open range [lo, hi) they cover; open ends are infinite.
CREATE TABLE search_date (
    rid   bigint      NOT NULL,
    param integer     NOT NULL,
    lo    timestamptz NOT NULL,
    hi    timestamptz NOT NULL
);
CREATE INDEX search_date_lo ON search_date (param, lo) INCLUDE (hi, rid);
CREATE INDEX search_date_hi ON search_date (param, hi) INCLUDE (lo, rid);
CREATE INDEX search_date_rid ON search_date (rid);

CREATE TABLE search_number (
    rid   bigint  NOT NULL,
    param integer NOT NULL,
    lo    numeric NOT NULL,
    hi    numeric NOT NULL
);
CREATE INDEX search_number_value ON search_number (param, lo) INCLUDE (hi, rid);
CREATE INDEX search_number_rid ON search_number (rid);

-- Quantities (and ranges): the unit as coded (system, code) and as written (unit).
CREATE TABLE search_quantity (
    rid    bigint  NOT NULL,
    param  integer NOT NULL,
    system text    NOT NULL,
    code   text    NOT NULL,
    unit   text    NOT NULL,
    lo     numeric NOT NULL,
    hi     numeric NOT NULL
);
CREATE INDEX search_quantity_value ON search_quantity (param, lo) INCLUDE (hi, rid);
CREATE INDEX search_quantity_rid ON search_quantity (rid);

-- References: a local target (target_type, target_id) or an external/canonical URL (target_type '').
CREATE TABLE search_reference (
    rid         bigint  NOT NULL,
    param       integer NOT NULL,
    target_type text    NOT NULL,
    target_id   text    NOT NULL
);
CREATE INDEX search_reference_target ON search_reference (param, target_id, target_type) INCLUDE (rid);
CREATE INDEX search_reference_rid ON search_reference (rid) INCLUDE (param, target_type, target_id);

-- Composite values: up to three components, each token-like (system, code), numeric (lo, hi) or a
-- date range (tlo, thi).
CREATE TABLE search_composite (
    rid    bigint  NOT NULL,
    param  integer NOT NULL,
    system1 text, code1 text, lo1 numeric, hi1 numeric, tlo1 timestamptz, thi1 timestamptz,
    system2 text, code2 text, lo2 numeric, hi2 numeric, tlo2 timestamptz, thi2 timestamptz,
    system3 text, code3 text, lo3 numeric, hi3 numeric, tlo3 timestamptz, thi3 timestamptz
);
CREATE INDEX search_composite_value ON search_composite (param, code1) INCLUDE (rid);
CREATE INDEX search_composite_rid ON search_composite (rid);

-- Live resources of a type in rid order: unfiltered type searches page along it, and counting a
-- type's resources is an index-only scan.
CREATE INDEX resources_type_live ON resources (type, rid) WHERE content IS NOT NULL;
