// Package conformance checks what a FHIR R4 server really does against what it claims: a suite of
// scenario checks, grouped like the Inferno test kits, that speaks to any FHIR base over HTTP only.
//
// It owns the checks, their runner and their reports. It imports nothing of Billy (no fhir/...,
// smart/... or internal/...), so the same suite tests an EMR's endpoint before it is connected and
// Billy's own endpoint in CI; `go list -deps ./conformance/ | grep iambilly` must stay empty.
//
// A [Check] has an ID ("group/name"), its group, a level (SHALL, SHOULD or MAY, as the spec section
// it cites says), the spec URL of that section, whether it only reads, and a run function that
// returns pass, fail or skip with a reason and, when it fails, the request and response that showed
// it. The groups are:
//
//   - capability: generated from the CapabilityStatement: every declared interaction per type,
//     every declared search parameter per type exercised with a value taken from a fixture (a
//     value that must match and one that must not), every declared _include and _revinclude, every
//     declared operation. A claim that cannot be kept fails.
//   - crud, conditional, bundle, search, errors: the RESTful API of R4 (versionIds are opaque).
//   - smart: discovery (.well-known/smart-configuration, the CapabilityStatement's security) and the
//     Backend Services token flow, with a client's ES384 or RS384 key.
//   - bulk: Bulk Data $export kick-off, status, manifest, download and cancel.
//
// Unless the run is read-only, [Run] creates its fixtures first, each tagged
// urn:billy:conformance|<run-id>, and removes everything it created at the end. A read-only run
// never sends a write: it uses the resources it finds and skips, with a reason, what it cannot check
// without writing. Requests are plain net/http; assertions for SMART Backend Services are signed
// with go-jose.
package conformance
