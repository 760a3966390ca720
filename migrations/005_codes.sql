-- Why: issue 6 codes encounter transcripts into draft Claims. The coder, its guards and the FHIR
-- CodeSystem/$lookup need the ICD-10-CM, HCPCS Level II and (user-supplied, never shipped) CPT code
-- sets in the database, versioned so a re-import replaces one version in one transaction, with the
-- derived sex/age edits beside each code. The knowledge base (coding manuals and code descriptions,
-- chunked and embedded) lives here too, so every API and worker process answers from the same index.
-- pgvector is optional (Debian 12 has no package): package pipeline/kb creates its vector table and
-- HNSW index at start-up only when CREATE EXTENSION vector succeeds; the bytea column below is the
-- portable copy that the exact in-memory search loads.

-- One row per code system Billy knows; current_version is the version lookups answer from.
CREATE TABLE code_systems (
    system          text PRIMARY KEY,
    url             text NOT NULL UNIQUE,
    title           text NOT NULL,
    current_version text
);

INSERT INTO code_systems (system, url, title) VALUES
    ('icd10cm', 'http://hl7.org/fhir/sid/icd-10-cm', 'ICD-10-CM'),
    ('hcpcs', 'urn:oid:2.16.840.1.113883.6.285', 'HCPCS Level II'),
    ('cpt', 'http://www.ama-assn.org/go/cpt', 'CPT');

-- One row per imported version of a code system.
CREATE TABLE code_system_versions (
    system      text        NOT NULL REFERENCES code_systems,
    version     text        NOT NULL,
    source      text        NOT NULL, -- file name(s) and format imported
    imported_at timestamptz NOT NULL DEFAULT now(),
    code_count  integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (system, version)
);

-- Codes of every system and version. ICD-10-CM codes are stored dotted (E11.22); headers (3-character
-- categories, intermediate order-file headers) are rows with billable = false.
CREATE TABLE codes (
    system           text     NOT NULL,
    version          text     NOT NULL,
    code             text     NOT NULL,
    display          text     NOT NULL,
    short_display    text,
    billable         boolean  NOT NULL,
    category         text, -- ICD-10-CM 3-character category; HCPCS letter group
    section          text, -- ICD-10-CM block such as E08-E13; HCPCS group title
    chapter          text, -- ICD-10-CM chapter number
    status           text     NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'terminated')),
    effective_date   date,
    termination_date date,
    -- Derived edits (see pipeline/codes): the only sex the code fits, and the inclusive age range in
    -- years; edit_rule names the rule that set them.
    sex              text CHECK (sex IN ('female', 'male')),
    age_min          smallint,
    age_max          smallint,
    edit_rule        text,
    attrs            jsonb    NOT NULL DEFAULT '{}', -- format-specific extras (HCPCS coverage, BETOS, ...)
    search           tsvector GENERATED ALWAYS AS (
                         to_tsvector('english', display || ' ' || coalesce(short_display, ''))) STORED,
    PRIMARY KEY (system, version, code),
    FOREIGN KEY (system, version) REFERENCES code_system_versions ON DELETE CASCADE
);
CREATE INDEX codes_search ON codes USING gin (search);

-- Knowledge-base sources: one ingested file, or one code system version indexed for retrieval.
CREATE TABLE kb_sources (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('manual', 'code')),
    uri         text        NOT NULL, -- file path for manuals, codes:<system>@<version> for code sets
    title       text        NOT NULL DEFAULT '',
    sha256      text        NOT NULL DEFAULT '',
    embedder    text        NOT NULL, -- name/model of the embedder that produced the vectors
    chunk_count integer     NOT NULL DEFAULT 0,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (uri, embedder)
);

-- Chunks with their embeddings (little-endian float32 x dim, L2-normalised).
CREATE TABLE kb_chunks (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_id bigint  NOT NULL REFERENCES kb_sources ON DELETE CASCADE,
    kind      text    NOT NULL CHECK (kind IN ('manual', 'code')),
    system    text    NOT NULL DEFAULT '',
    code      text    NOT NULL DEFAULT '',
    page      integer NOT NULL DEFAULT 0,
    ord       integer NOT NULL,
    text      text    NOT NULL,
    embedder  text    NOT NULL,
    dim       integer NOT NULL,
    embedding bytea   NOT NULL
);
CREATE INDEX kb_chunks_source ON kb_chunks (source_id);
CREATE INDEX kb_chunks_embedder ON kb_chunks (embedder, id);
