// Package fhir is the root of Billy's FHIR R4 core: the error vocabulary every layer speaks and the
// OperationOutcome those errors become at the HTTP edge.
//
// Sub-packages own the parts: jsontree (the JSON form of a resource), resource (parse, validate,
// canonical form), store (PostgreSQL), search (parameters and criteria), rest (HTTP and bundles),
// capability (the CapabilityStatement). This package imports none of them and nothing from smart/,
// pipeline/ or adapters/; the core declares the small interfaces it needs (an authorizer, write hooks)
// and cmd/billy plugs implementations in.
package fhir
