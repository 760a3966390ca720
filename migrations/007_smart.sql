-- Why: Billy's SMART on FHIR authorization server: registered clients, users of the login page,
-- EHR launch contexts, the OAuth requests behind codes and tokens (fosite's storage), client
-- assertion ids already used (replay protection), failed logins (brute-force protection) and the
-- keys Billy signs tokens with (private parts encrypted with the master key).

CREATE TABLE oauth_clients (
    id            text PRIMARY KEY,
    name          text        NOT NULL,
    -- public | confidential-symmetric | confidential-asymmetric
    kind          text        NOT NULL,
    secret_hash   bytea,
    redirect_uris text[]      NOT NULL DEFAULT '{}',
    scopes        text[]      NOT NULL DEFAULT '{}',
    grant_types   text[]      NOT NULL DEFAULT '{}',
    jwks          jsonb,
    jwks_uri      text,
    auth_alg      text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE oauth_requests (
    -- code | access | refresh | pkce | oidc (the code, PKCE and OpenID parts of one authorization
    -- share the code's signature)
    kind       text        NOT NULL,
    signature  text        NOT NULL,
    request_id text        NOT NULL,
    client_id  text        NOT NULL,
    data       jsonb       NOT NULL,
    active     boolean     NOT NULL DEFAULT true,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, signature)
);
CREATE INDEX oauth_requests_request ON oauth_requests (request_id);
CREATE INDEX oauth_requests_revoked ON oauth_requests (expires_at) WHERE NOT active AND kind = 'access';

CREATE TABLE oauth_jti (
    jti        text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

CREATE TABLE smart_users (
    username      text PRIMARY KEY,
    password_hash bytea       NOT NULL,
    fhir_user     text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE smart_login_failures (
    username     text PRIMARY KEY,
    failures     integer     NOT NULL,
    locked_until timestamptz,
    last_failure timestamptz NOT NULL
);

CREATE TABLE smart_launches (
    id         text PRIMARY KEY,
    context    jsonb       NOT NULL,
    created_by text        NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

CREATE TABLE smart_keys (
    kid         text PRIMARY KEY,
    alg         text        NOT NULL,
    private_enc bytea       NOT NULL,
    public_jwk  jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);
