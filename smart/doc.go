// Package smart is Billy's SMART on FHIR (App Launch 2.x and Backend Services) authorization
// server, the verifier of the tokens the FHIR API receives, and the policy that turns a token's
// scopes and launch context into what a request may touch.
//
// It owns: the OAuth 2.0 endpoints under /oauth2/ (authorize, token, introspect, revoke, jwks,
// launch, register) built on github.com/ory/fosite (authorization code with PKCE S256 only, refresh,
// client credentials with private_key_jwt, OpenID Connect id tokens); RFC 8693 token exchange of
// tokens from trusted external issuers (an EMR's identity provider, verified with go-oidc) for
// authenticated confidential clients; discovery documents (.well-known/smart-configuration,
// openid-configuration); the server-rendered login,
// patient picker and consent pages; the client registry, users, launch contexts, signing keys and
// fosite's storage in PostgreSQL; CORS for registered browser apps; and the rest.Authorizer the FHIR
// API calls.
//
// It must not reach into the FHIR store except through the small PatientDirectory interface it
// declares (the patient picker and the consent page), and never logs tokens, secrets or passwords.
//
// Tokens: access tokens are JWTs signed by Billy (RS256, key id in the header, keys rotated and kept
// in smart_keys with their private parts sealed by the master key). They carry the granted scopes
// and launch context, so the FHIR API verifies them without a database round trip; revoked tokens
// are found through a revocation list each process refreshes every few seconds (revocation takes
// effect within that delay). Lifetimes: one hour for user tokens, five minutes for backend services.
//
// Revocation is keyed on the token's jti, which the token endpoint chooses for every access token
// and records with it (fosite would make one up and forget it), never on the token's text: Go's
// base64 decoders, and so go-jose's and fosite's, accept several spellings of one signature (the
// padding bits of the last character, trailing "=", line breaks). For the same reason every JWS
// Billy verifies (its own tokens, trusted issuers' tokens, token-exchange subject tokens, client
// assertions, id_token_hint, tokens to revoke) must be canonical base64url: checkCanonicalJWS, by
// hand, since no library offers the check.
//
// Client authentication at the token, introspection and revocation endpoints is Billy's own
// (clientauth.go), plugged into fosite as its ClientAuthenticationStrategy: private_key_jwt checked
// to RFC 7523 and SMART Backend Services (exp within five minutes, jku only when it is the
// registered jwks_uri, jti replay per client), client_secret_basic and client_secret_post, every
// refusal a 401 invalid_client with a description. Keys of clients registered by jwks_uri are
// cached per client by Cache-Control max-age within [1 min, 1 h] and re-fetched on an unknown kid at
// most once a minute (jwks.go). Tokens Billy signs outside fosite's flows (token exchange,
// MintToken) are recorded like fosite's, so introspection and revocation treat them alike
// (revocation.go). fosite dates tokens by the wall clock; the token endpoint re-dates access tokens
// by Config.Now, so tests can move the clock (refresh tokens and authorization codes still follow
// the wall clock).
//
// Signing keys: a process whose master key opens none of the stored signing keys fails to start
// (ErrMasterKeyMismatch) rather than make a key of its own and retire the server's; nor does it
// rotate past a key it cannot open. Signing keys and the secrets behind codes, refresh tokens and
// login tickets (sealed_secrets) are sealed by the master keyring, never derived from it, so a
// master key rotation (Reseal, run by billy keys rotate) keeps every token valid.
//
// Sign-in is throttled per (user, client address) with a per-user exponential backoff for the
// addresses that have failed, so that failures from one address never lock the user out from
// another (login.go has the rule). Redirect URIs match exactly, except the loopback ports of native
// apps (RFC 8252), and are checked by Billy before fosite sees the request, whose own matching is
// looser (redirect.go). The pages give every choice a form of its own, so browser automation and
// the Enter key pick what a person would; Cancel ends the authorization with access_denied.
package smart
