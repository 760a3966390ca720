// Package audit is Billy's audit trail: one FHIR R4 AuditEvent (IHE BALP shape) for every access to
// the server, kept in an append-only, hash-chained table.
//
// It owns the audit tables (migrations/017_audit_trail.sql) and every statement on them: appending
// (inside the transaction of a write, or through the batched Writer for reads and refusals), the
// hash chain, Verify, Export, and the searches and reports over the trail. It builds the AuditEvent
// JSON from an Event, which callers fill in: the REST edge (fhir/rest), the authorization server,
// the pipeline. It must not import smart, pipeline or adapters (it is part of the FHIR core), knows
// nothing of HTTP, and never logs an event's content: the trail holds PHI (queries, patient ids),
// logs must not.
//
// The chain: rows are numbered seq 1, 2, 3... without gaps; row n stores prev_hash (row n-1's hash,
// zeros for row 1) and hash = SHA-256 over prev_hash and row n's columns (Hash). audit_head holds
// the last seq and hash. An append computes its rows' hashes from the head it read (or, for the
// batched Writer, the head its last batch left) and, in the statement that inserts them, moves the
// head only if it is still there; its row lock then holds other appenders until the transaction
// ends, so one transaction at a time extends the chain, one that rolls back leaves no gap, and one
// that lost the race appends nothing and is redone from the new head. A row changed, removed or inserted with
// SQL breaks the chain at that row, which Verify names. Someone who can write the table and also
// recompute every later hash can rewrite history undetected; `billy audit verify` prints the head
// hash so that operators can anchor it elsewhere (a ticket, a write-once store) and compare later.
package audit
