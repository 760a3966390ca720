-- Why: issue 16, "an AuditEvent for every access". The audit trail is its own table, apart from the
-- resource store, because it must be append-only and tamper-evident, and cheap enough to append to
-- on every read:
-- * audit_log holds one row per AuditEvent (content is the FHIR JSON, kept as text so that its hash
--   is over the exact bytes written) with the columns searches and reports use. Each row's hash
--   covers its content and the previous row's hash (fhir/audit computes and checks it).
-- * audit_head is the end of the chain (last seq and hash). Appenders move it in the statement that
--   inserts their rows, only if it is still where they computed their hashes from: its row lock
--   extends the chain one transaction at a time, and `billy audit verify` detects rows removed at
--   the end.
-- * Ownership: both tables belong to the NOLOGIN role billy_audit_owner. The API's database role is
--   made a member of billy_api, which may only SELECT and INSERT audit_log (and move audit_head).
--   A trigger refuses UPDATE, DELETE and TRUNCATE of audit_log even for its owner, unless the owner
--   first disables it on purpose.
DO $$
BEGIN
    CREATE ROLE billy_audit_owner NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
DO $$
BEGIN
    CREATE ROLE billy_api NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

CREATE TABLE audit_log (
    seq       bigint      PRIMARY KEY,
    id        text        NOT NULL UNIQUE,
    recorded  timestamptz NOT NULL,
    -- C R U D E, as AuditEvent.action
    action    text        NOT NULL,
    -- 0 4 8 12, as AuditEvent.outcome
    outcome   text        NOT NULL,
    -- the interaction or event (read, search-type, login, token, pipeline-code...)
    subtype   text        NOT NULL,
    -- who: the client id ("client|ID"), the user's fhirUser ("Practitioner/1"), the subject
    agents    text[]      NOT NULL,
    -- the ids of the patients whose data the event touched
    patients  text[]      NOT NULL,
    -- the resources touched, "Type/id"
    entities  text[]      NOT NULL,
    content   text        NOT NULL,
    prev_hash bytea       NOT NULL,
    hash      bytea       NOT NULL
);
CREATE INDEX audit_log_patients ON audit_log USING gin (patients);
CREATE INDEX audit_log_agents ON audit_log USING gin (agents);
CREATE INDEX audit_log_entities ON audit_log USING gin (entities);
CREATE INDEX audit_log_recorded ON audit_log (recorded);

CREATE TABLE audit_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    seq      bigint  NOT NULL,
    hash     bytea   NOT NULL
);
INSERT INTO audit_head (seq, hash) VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000');

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

ALTER TABLE audit_log OWNER TO billy_audit_owner;
ALTER TABLE audit_head OWNER TO billy_audit_owner;
ALTER FUNCTION audit_log_append_only() OWNER TO billy_audit_owner;
REVOKE ALL ON audit_log, audit_head FROM PUBLIC;
GRANT SELECT, INSERT ON audit_log TO billy_api;
GRANT SELECT, UPDATE ON audit_head TO billy_api;
