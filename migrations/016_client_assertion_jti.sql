-- Why: replay protection of client assertions (private_key_jwt, RFC 7523 section 3) was keyed on
-- the jti alone, so one client could use up, and so block, another client's jti (issue 19). A jti
-- is unique per client (its iss): it is now recorded with the client that sent it, until the
-- assertion expires, and purged afterwards. oauth_jti is no longer written or read; it stays so
-- that processes of the previous release keep working during a rolling upgrade.

CREATE TABLE oauth_client_jti (
    client_id  text        NOT NULL,
    jti        text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX oauth_client_jti_expiry ON oauth_client_jti (expires_at);
