-- Why: three flaws in the SMART tables, found by a security review (issue 10, "Trust first").
-- 1. Logins were locked per user name, so five wrong passwords from anywhere locked the real user
--    out for 15 minutes. Failures are now counted per (user, client address), and only that
--    address is locked; a per-user count slows down (exponential delay) the addresses that have
--    failed, never one that has not. smart_login_failures is no longer read: it stays so that
--    processes of the previous release keep working during a rolling upgrade, and a later
--    migration drops it.
-- 2. Access tokens were revoked by the text of their signature, which has several base64url
--    spellings that all verify. They are now revoked by their jti, recorded here (unique, so no
--    two access tokens share one). Rows written before this migration have none and stay revoked
--    by signature until they expire (an hour at most).
-- 3. Loopback redirect URIs with any port (RFC 8252 section 7.3) are for native apps only, so a
--    client says which it is: application_type, as in RFC 7591, web unless registered as native.

CREATE TABLE smart_login_throttle (
    username     text        NOT NULL,
    -- the client's IP address (an IPv6 address by its /64 network)
    remote       text        NOT NULL,
    failures     integer     NOT NULL DEFAULT 0,
    last_failure timestamptz,
    locked_until timestamptz,
    PRIMARY KEY (username, remote)
);
CREATE INDEX smart_login_throttle_stale ON smart_login_throttle (last_failure);

CREATE TABLE smart_login_backoff (
    username     text PRIMARY KEY,
    failures     integer     NOT NULL DEFAULT 0,
    last_failure timestamptz
);
CREATE INDEX smart_login_backoff_stale ON smart_login_backoff (last_failure);

ALTER TABLE oauth_requests ADD COLUMN jti text;
CREATE UNIQUE INDEX oauth_requests_jti ON oauth_requests (jti) WHERE jti IS NOT NULL;

ALTER TABLE oauth_clients ADD COLUMN application_type text NOT NULL DEFAULT 'web'
    CONSTRAINT oauth_clients_application_type CHECK (application_type IN ('web', 'native'));
