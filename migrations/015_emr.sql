-- Why: EMR adapters (adapters/emr, adapters/hl7v2). An EMR connected over FHIR is a row of emr_systems
-- with its Backend Services private key sealed by the master key (internal/crypto envelope); sync
-- keeps a high-water mark per resource type so that an interrupted or periodic sync resumes where
-- it stopped; emr_links maps each EMR resource (type + remote id) to Billy's copy (and the content
-- hash last applied, so an unchanged resource is skipped, not re-versioned); emr_writebacks records
-- what was written back and the remote id the EMR gave it (a retried write-back never makes a second
-- document); emr_calls records every outbound call without PHI (what an administrator needs to answer
-- "what did we send and when"). HL7 v2: hl7_messages remembers applied control ids (a duplicate is
-- acknowledged, not applied twice), hl7_errors keeps rejected messages for inspection and replay.

CREATE TABLE emr_systems (
    name            text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    base_url        text        NOT NULL,
    client_id       text        NOT NULL,
    profile         text        NOT NULL DEFAULT 'generic',
    scope           text        NOT NULL,
    -- the PKCS#8 private key (PEM), sealed with the master key (internal/crypto format)
    key_sealed      bytea       NOT NULL,
    key_id          text        NOT NULL,
    alg             text        NOT NULL,
    -- SHA-256 (hex) of the bearer token the EMR presents to /emr/NAME/notify
    notify_token_sha256 text    NOT NULL,
    writeback       boolean     NOT NULL DEFAULT true,
    -- also write Claims back when they become active
    writeback_claims boolean    NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE emr_sync_state (
    emr        text        NOT NULL REFERENCES emr_systems (name) ON DELETE CASCADE,
    type       text        NOT NULL,
    -- resources last updated at or after this instant are (re)read by the next sync
    high_water timestamptz,
    synced_at  timestamptz,
    PRIMARY KEY (emr, type)
);

CREATE TABLE emr_links (
    emr        text        NOT NULL REFERENCES emr_systems (name) ON DELETE CASCADE,
    type       text        NOT NULL,
    remote_id  text        NOT NULL,
    local_id   text        NOT NULL,
    -- SHA-256 of the EMR's content as last applied
    hash       bytea       NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (emr, type, remote_id)
);
CREATE INDEX emr_links_local ON emr_links (type, local_id);

CREATE TABLE emr_writebacks (
    emr        text        NOT NULL REFERENCES emr_systems (name) ON DELETE CASCADE,
    type       text        NOT NULL,
    local_id   text        NOT NULL,
    remote_id  text,
    -- pending, done, failed
    status     text        NOT NULL DEFAULT 'pending',
    error      text,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (emr, type, local_id)
);

CREATE TABLE emr_calls (
    id          bigserial PRIMARY KEY,
    emr         text        NOT NULL,
    at          timestamptz NOT NULL,
    -- sync, writeback, token, discovery, notify
    purpose     text        NOT NULL,
    method      text        NOT NULL,
    -- the path and the names (never the values) of the query parameters
    target      text        NOT NULL,
    status      integer     NOT NULL,
    duration_ms integer     NOT NULL,
    -- ok, http-error, network-error, breaker-open
    outcome     text        NOT NULL,
    attempt     integer     NOT NULL DEFAULT 1
);
CREATE INDEX emr_calls_emr ON emr_calls (emr, id DESC);

CREATE TABLE hl7_messages (
    sender      text        NOT NULL,
    control_id  text        NOT NULL,
    type        text        NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (sender, control_id)
);

CREATE TABLE hl7_errors (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL,
    remote_addr text        NOT NULL,
    control_id  text,
    type        text,
    -- AE, AR, or framing
    code        text        NOT NULL,
    reason      text        NOT NULL,
    -- the message as received (it may hold PHI: shown only to administrators)
    message     bytea       NOT NULL,
    replayed_at timestamptz
);

-- Outbound DFT^P03 (one per Claim that became active): queued through the outbox with the Claim's
-- write, sent by the worker to BILLY_DFT_ADDR, retried until the receiver acknowledges it.
CREATE TABLE hl7_dft (
    claim_id   text PRIMARY KEY,
    queued_at  timestamptz NOT NULL,
    control_id text        NOT NULL,
    sent_at    timestamptz,
    -- the receiver's AE/AR, or why the message could not be built; retried no more
    error      text
);
