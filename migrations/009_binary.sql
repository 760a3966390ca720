-- Why: Binary content (encounter audio, up to a gigabyte) lives encrypted in the blob store, not
-- in the resource row; this maps each Binary version to its blob. A version's blob never changes,
-- so vread of an old version serves the old bytes.
CREATE TABLE binary_blobs (
    rid     bigint  NOT NULL,
    version integer NOT NULL,
    blob_id text    NOT NULL,
    size    bigint  NOT NULL,
    sha256  text    NOT NULL,
    PRIMARY KEY (rid, version)
);
