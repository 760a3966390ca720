-- Why: master key rotation without downtime (issue 16). The SMART token secrets (fosite's HMAC
-- secret behind authorization codes and refresh tokens, the login-ticket key) were derived from the
-- master key, so a new master key invalidated every refresh token; they are now stored here, sealed
-- by the master keyring, and re-sealed by `billy keys rotate`. key_holders is where every running
-- process says which master keys it holds, so that rotate only re-wraps blobs once every live process
-- can read them under the new key.

CREATE TABLE sealed_secrets (
    name       text PRIMARY KEY,
    sealed     bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE key_holders (
    -- host:pid:start, unique per process
    process     text PRIMARY KEY,
    current_key text        NOT NULL,
    key_ids     text[]      NOT NULL,
    seen_at     timestamptz NOT NULL
);
