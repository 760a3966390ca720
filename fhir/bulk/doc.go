// Package bulk runs FHIR Bulk Data Access (IG v2) exports: the jobs behind $export at system,
// Patient and Group level.
//
// It owns the export jobs and their files (tables bulk_exports and bulk_export_files, and the
// encrypted blobs holding the NDJSON), writing them a file at a time with a cursor so that a worker
// killed mid-export resumes where the last file ended, cancellation, expiry and the status the
// HTTP edge reports. It is a client of fhir/store (Export streams the rows) and fhir/search (the
// _typeFilter queries and the requester's reach). It must not decide what a requester may read:
// fhir/rest authorizes the kick-off and hands over the reach (the same rule and the same code
// searches use), which each job keeps and applies to every row it exports. It knows neither HTTP
// nor the queue: the caller's Queue starts jobs, and whatever runs the queue calls Run.
//
// An export runs in one worker at a time: Run holds a PostgreSQL advisory lock on the job for as
// long as it runs, on its own connection. A worker that dies drops the connection and with it the
// lock, and Maintain (run periodically by every Billy process) enqueues the job again; the next Run
// continues after the last file recorded. What a dead worker had written after that file is
// written again (its blob, unrecorded, is left behind).
package bulk
