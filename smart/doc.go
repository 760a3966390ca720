// Package smart is Billy's SMART on FHIR (App Launch 2.x and Backend Services) authorization
// server, the verifier of the tokens the FHIR API receives, and the policy that turns a token's
// scopes and launch context into what a request may touch.
//
// It owns: the OAuth 2.0 endpoints under /oauth2/ (authorize, token, introspect, revoke, jwks,
// launch) built on github.com/ory/fosite (authorization code with PKCE S256 only, refresh, client
// credentials with private_key_jwt, OpenID Connect id tokens); RFC 8693 token exchange of tokens
// from trusted external issuers (an EMR's identity provider, verified with go-oidc); discovery
// documents (.well-known/smart-configuration, openid-configuration); the server-rendered login,
// patient picker and consent pages; the client registry, users, launch contexts, signing keys and
// fosite's storage in PostgreSQL; CORS for registered browser apps; and the rest.Authorizer the FHIR
// API calls.
//
// It must not reach into the FHIR store except through the small PatientDirectory interface it
// declares (the patient picker), and never logs tokens, secrets or passwords.
//
// Tokens: access tokens are JWTs signed by Billy (RS256, key id in the header, keys rotated and kept
// in smart_keys with their private parts sealed by the master key). They carry the granted scopes
// and launch context, so the FHIR API verifies them without a database round trip; revoked tokens
// are found through a revocation list each process refreshes every few seconds (revocation takes
// effect within that delay). Lifetimes: one hour for user tokens, five minutes for backend services.
package smart
