-- Why: the FHIR resource store. "resources" holds the current version of every resource (the read
-- path is one primary-key lookup serving stored bytes); "resource_history" holds every earlier
-- version, moved there by the update that superseded it, so a create writes its content once.
-- rid is a compact surrogate key for the search index tables.

CREATE TABLE resources (
    rid          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type         text        NOT NULL,
    id           text        NOT NULL,
    version      integer     NOT NULL,
    last_updated timestamptz NOT NULL,
    -- the interaction that made this version: POST, PUT, PATCH or DELETE
    method       text        NOT NULL,
    -- canonical JSON of the resource; NULL for a deletion
    content      bytea,
    UNIQUE (type, id)
);
-- compressed inline where it fits, so most reads touch one heap page and no TOAST index
ALTER TABLE resources ALTER COLUMN content SET STORAGE MAIN, ALTER COLUMN content SET COMPRESSION lz4;
CREATE INDEX resources_type_updated ON resources (type, last_updated);
CREATE INDEX resources_updated ON resources (last_updated);

CREATE TABLE resource_history (
    rid          bigint      NOT NULL,
    version      integer     NOT NULL,
    type         text        NOT NULL,
    id           text        NOT NULL,
    last_updated timestamptz NOT NULL,
    method       text        NOT NULL,
    content      bytea,
    PRIMARY KEY (rid, version)
);
ALTER TABLE resource_history ALTER COLUMN content SET STORAGE MAIN, ALTER COLUMN content SET COMPRESSION lz4;
CREATE INDEX resource_history_type_updated ON resource_history (type, last_updated);
CREATE INDEX resource_history_updated ON resource_history (last_updated);

-- Token search values (identifier, code, status ...). param is a stable 32-bit hash of
-- "<ResourceType>.<code>" computed by the server, so one index serves every type and parameter.
CREATE TABLE search_token (
    rid    bigint  NOT NULL,
    param  integer NOT NULL,
    system text,
    code   text
);
CREATE INDEX search_token_value ON search_token (param, code, system);
CREATE INDEX search_token_rid ON search_token (rid);
