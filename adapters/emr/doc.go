// Package emr connects Billy to an EMR's FHIR R4 API: it authenticates with SMART Backend Services
// (private_key_jwt, ES384 or RS384), pulls Patient, Encounter, Coverage, Practitioner,
// PractitionerRole, Organization and Location incrementally into Billy, accepts Subscription
// rest-hook notifications, and writes transcripts (DocumentReference) back to the EMR.
//
// It owns the tables of migration 015 that start with emr_ (registered EMRs, sync high-water marks,
// the links between EMR resources and Billy's copies, write-backs, and the record of every outbound
// call). It writes resources only through fhir/store (Prepare, then Update in one transaction per
// page), so everything synced is validated and indexed like any other write. It must not touch the
// FHIR core's tables directly, and the core never imports it: cmd/billy plugs its WriteHook and its
// jobs in. Jobs go through the pipeline's outbox (the Enqueue function handed in by cmd), so a
// write-back is relayed to asynq exactly when its DocumentReference commits.
//
// # Identity
//
// Each EMR resource gets a Billy id derived from (EMR name, type, EMR id) — a UUIDv5 — and keeps the
// EMR id as an identifier whose system is urn:billy:emr:NAME. A re-sync, a resumed sync or two
// syncs racing therefore address the same Billy resource and never make a duplicate; an unchanged
// resource (same content hash as last applied) is skipped, a changed one becomes a new version.
// References to the synced types are rewritten to Billy ids (a referenced resource not seen yet is
// fetched first); references to other types become absolute URLs on the EMR's base.
//
// # Vendors
//
// Vendor differences (Epic, Oracle Health, generic) are data: the embedded profiles/*.json files
// (page size, whether _sort=_lastUpdated is honoured, _include per type, write-back rules). No code
// branches on a vendor's name.
//
// # Resilience and audit
//
// Every call has a timeout, is retried with exponential backoff and full jitter on network errors,
// 429, 502, 503 and 504 (honouring Retry-After), and goes through a circuit breaker per EMR. Every
// attempt is recorded in emr_calls with the path and the names of the query parameters, never their
// values, and never a body: no PHI leaves in the record or the logs.
package emr
