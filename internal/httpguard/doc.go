// Package httpguard owns Billy's abuse limits at the HTTP edge: token-bucket rate limits per source
// address and per OAuth client (shared by every process through Redis), slow-client deadlines on
// request bodies, the security headers every answer carries, and the TLS settings of listeners.
//
// It is plain net/http middleware and knows nothing of FHIR or SMART: the caller tells it how to find
// the client id of a request (a function over the request context) and which addresses are exempt.
// Its refusals are FHIR OperationOutcomes written by hand (issue code "throttled"), because the
// ground floor may not import the FHIR core. It never logs request content, tokens or addresses
// beyond what the caller's logger is given.
//
// The rate limiter is GCRA (the generic cell rate algorithm, equivalent to a token bucket of Burst
// tokens refilled at Rate per second) in one Lua script, so a check is one Redis round trip and the
// bucket is shared by all API processes of an installation. When Redis does not answer, requests
// pass (availability over strictness) and the failure is counted and logged at most once a minute.
// golang.org/x/time/rate is the in-process equivalent; it would give each process its own bucket,
// which a load balancer spreading requests would multiply.
package httpguard
