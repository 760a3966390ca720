-- Why: payers. Bulk Data $export jobs (fhir/bulk) keep their state here so that any worker can run,
-- resume or cancel them and any API process can answer their status: the request as authorized at
-- kick-off (types, filters, the requester's reach), a cursor (the type being exported and the last
-- rid written) advanced with each file, and the files themselves (encrypted blobs). X12
-- (adapters/x12) needs interchange and group control numbers that are persisted and never reused
-- (sequences), the patient control number sent in CLM01 for each Claim (an 835 names the claim by
-- it), and a record of every 835 imported (importing one twice changes nothing).

CREATE TABLE bulk_exports (
    id               uuid PRIMARY KEY,
    -- who may poll, download and cancel: the requesting client (and its user or patient)
    owner            text        NOT NULL,
    request          text        NOT NULL,
    -- system, patient or group
    level            text        NOT NULL,
    -- group level: the member patients, resolved at kick-off
    patients         text[],
    types            text[]      NOT NULL,
    -- {"Type": ["query", ...]}: a resource is exported when it matches one of its type's queries
    filters          jsonb       NOT NULL DEFAULT '{}',
    -- the requester's reach (search.Reach), null when it reads everything
    reach            jsonb,
    since            timestamptz,
    transaction_time timestamptz NOT NULL,
    -- queued, running, completed, failed
    status           text        NOT NULL DEFAULT 'queued',
    error            text,
    -- OperationOutcomes for the manifest's error file (lenient kick-offs)
    problems         jsonb       NOT NULL DEFAULT '[]',
    -- cursor: types[next_type] is being exported, rids up to after_rid are written
    next_type        integer     NOT NULL DEFAULT 0,
    after_rid        bigint      NOT NULL DEFAULT 0,
    exported         bigint      NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    completed_at     timestamptz,
    expires_at       timestamptz
);
CREATE INDEX bulk_exports_status ON bulk_exports (status);
CREATE INDEX bulk_exports_expires ON bulk_exports (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE bulk_export_files (
    export_id uuid    NOT NULL REFERENCES bulk_exports (id) ON DELETE CASCADE,
    name      text    NOT NULL,
    seq       integer NOT NULL,
    -- output or error
    kind      text    NOT NULL,
    type      text    NOT NULL,
    blob_id   text    NOT NULL,
    count     bigint  NOT NULL,
    size      bigint  NOT NULL,
    PRIMARY KEY (export_id, name)
);

-- ISA13 and GS06: 1 to 999,999,999, never reused (NO CYCLE: past the last, generation fails).
CREATE SEQUENCE x12_interchange_control MINVALUE 1 MAXVALUE 999999999 NO CYCLE;
CREATE SEQUENCE x12_group_control MINVALUE 1 MAXVALUE 999999999 NO CYCLE;
CREATE SEQUENCE x12_claim_control MINVALUE 1 NO CYCLE;

-- The patient control number (CLM01) of each Claim sent: assigned once, kept for the 835.
CREATE TABLE x12_claims (
    claim_id text PRIMARY KEY,
    pcn      text UNIQUE NOT NULL,
    sent_at  timestamptz NOT NULL
);

-- Interchanges Billy wrote (837P) and read (835).
CREATE TABLE x12_interchanges (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    direction  text        NOT NULL, -- out (837P) or in (835)
    control    text        NOT NULL, -- ISA13
    sha256     text        NOT NULL,
    claims     text[]      NOT NULL DEFAULT '{}',
    -- 835: what the import did, as reported (JSON)
    report     jsonb,
    created_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX x12_interchanges_in ON x12_interchanges (sha256) WHERE direction = 'in';
