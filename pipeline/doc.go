// Package pipeline turns encounter audio into a transcript and a transcript into a coded draft
// Claim, in the background, on the clinic's own hardware.
//
// It owns the runs and their stages: a run is a FHIR Task (status requested → in-progress →
// completed | failed | on-hold, businessStatus per stage, outputs); stages are asynq tasks on Redis,
// enqueued through the outbox (a row written in the same database transaction as the write that
// triggers them, relayed to Redis afterwards, replayed if Redis loses it); the store hook that
// starts runs (a completed audio Media, a text transcript DocumentReference from an EMR); and the
// stage handlers, which read and write FHIR resources through fhir/store.
//
// It also exposes the code sets as FHIR operations (CodeSystem/$lookup and $validate-code;
// ValueSet/$expand with a filter, the as-you-type search of the Review app) and records on each
// draft Claim's diagnoses and lines the evidence and the coder's confidence (extensions whose
// StructureDefinitions it installs).
//
// Engines and knowledge live in sub-packages: audio (decoding), stt (speech-to-text), codes (code
// sets), embed and kb (retrieval), coder (coders and guards). This package must not import smart/:
// the worker acts as the system itself.
//
// Idempotency: every stage may run more than once (a worker killed mid-stage, a duplicate
// delivery, a Redis replay). Its outputs have ids derived from the run (the Task's id), a stage locks
// its Task and returns early when its work is already recorded, and all of a stage's writes commit
// in one transaction, so a repeated stage never creates a second DocumentReference or Claim.
package pipeline
