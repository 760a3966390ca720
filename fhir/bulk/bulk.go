package bulk

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/blob"
	"github.com/iambilly/billy/internal/pg"
)

// Levels of an export (where $export was invoked).
const (
	LevelSystem  = "system"
	LevelPatient = "patient"
	LevelGroup   = "group"
)

// Job states. A cancelled job is deleted, so it has no state.
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
)

// Defaults of Config.
const (
	DefaultExpiry        = 24 * time.Hour
	DefaultFileResources = 100_000
)

// Queue starts export jobs: Enqueue records, in the kick-off's transaction, that the job must run,
// so that a job is queued exactly when its row commits. Whatever consumes the queue calls
// Service.Run with the id. dedupeKey, when not empty, allows one pending job per key (Maintain
// queues an orphaned export again with one, so an export waiting for a worker is not queued again
// and again).
type Queue interface {
	Enqueue(ctx context.Context, tx pgx.Tx, exportID, dedupeKey string) error
}

// Config wires a Service.
type Config struct {
	Pool  *pgxpool.Pool
	Store *store.Store
	Blobs blob.Store
	Queue Queue
	// Base is the FHIR base URL (absolute references to it are local in _typeFilter queries).
	Base string
	// Expiry is how long a finished export's files are kept; FileResources bounds the resources of
	// one file (a type with more is split, and each file is a point a resumed job continues from).
	Expiry        time.Duration
	FileResources int
	// Now is the clock (transactionTime, expiry); nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Service runs exports.
type Service struct{ cfg Config }

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Expiry <= 0 {
		cfg.Expiry = DefaultExpiry
	}
	if cfg.FileResources <= 0 {
		cfg.FileResources = DefaultFileResources
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// Request is an authorized kick-off: what to export, for whom.
type Request struct {
	// Owner identifies the requester (client, and user or patient): only the same owner may poll,
	// download and cancel.
	Owner string
	// URL is the kick-off request URL, echoed in the manifest.
	URL   string
	Level string
	// Patients are a Group's members (group level).
	Patients []string
	// Types are exported in this order.
	Types []string
	// Filters are, by type, search queries (url-encoded parameters); a resource of a type with
	// filters is exported when it matches one of them.
	Filters map[string][]string
	Since   time.Time
	// Reach is what the requester may read (nil: everything), as fhir/rest computes it for a search.
	Reach *search.Reach
	// Problems are reported in the manifest's error file (parameters a lenient kick-off ignored).
	Problems []fhir.Issue
}

// File is one file of an export.
type File struct {
	Name   string
	Kind   string // output or error
	Type   string
	Count  int64
	Size   int64
	BlobID string
}

// Job is an export as its status reports it.
type Job struct {
	ID, Owner, Request, Level, Status, Error string
	Types                                    []string
	NextType                                 int
	Exported                                 int64
	TransactionTime, CreatedAt               time.Time
	CompletedAt, ExpiresAt                   time.Time
	Files                                    []File
}

// Progress is the job's progress in words (X-Progress).
func (j *Job) Progress() string {
	switch {
	case j.Status == StatusQueued:
		return "queued"
	case j.NextType < len(j.Types):
		return fmt.Sprintf("exporting %s (type %d of %d), %d resources written", j.Types[j.NextType], j.NextType+1, len(j.Types), j.Exported)
	}
	return fmt.Sprintf("%d resources written", j.Exported)
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ValidID reports whether id has the form of an export id (a UUID), before it reaches SQL.
func ValidID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, c := range []byte(id) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// Kickoff records an export and queues it; it returns the job id.
func (s *Service) Kickoff(ctx context.Context, r Request) (string, error) {
	if len(r.Types) == 0 {
		return "", fhir.Errorf(fhir.ErrInvalid, "not-found", "nothing to export: no resource type is both requested and readable with this token")
	}
	for typ, qs := range r.Filters {
		for _, q := range qs {
			if _, err := s.parseFilter(typ, q); err != nil {
				return "", err
			}
		}
	}
	filters, err := json.Marshal(nonNil(r.Filters))
	if err != nil {
		return "", err
	}
	var reach []byte
	if r.Reach != nil {
		if reach, err = json.Marshal(r.Reach); err != nil {
			return "", err
		}
	}
	problems, err := json.Marshal(issuesOut(r.Problems))
	if err != nil {
		return "", err
	}
	var since *time.Time
	if !r.Since.IsZero() {
		since = &r.Since
	}
	id, now := newID(), s.now()
	err = pg.InTx(ctx, s.cfg.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO bulk_exports (id, owner, request, level, patients, types, filters, reach, since, transaction_time, problems, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10)`,
			id, r.Owner, r.URL, r.Level, r.Patients, r.Types, filters, reach, since, now, problems); err != nil {
			return fmt.Errorf("export kick-off: %w", err)
		}
		return s.cfg.Queue.Enqueue(ctx, tx, id, "")
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

func nonNil(m map[string][]string) map[string][]string {
	if m == nil {
		return map[string][]string{}
	}
	return m
}

// issue is fhir.Issue as stored (JSON).
type issue struct {
	Severity, Code, Diagnostics string
	Expression                  []string `json:",omitempty"`
}

func issuesOut(is []fhir.Issue) []issue {
	out := make([]issue, 0, len(is))
	for _, i := range is {
		out = append(out, issue(i))
	}
	return out
}

// notFound is the answer for an export that does not exist, is not the requester's, was cancelled
// or has expired: the same for all, so that nobody learns of another's exports.
func notFound(id string) error {
	return fhir.Errorf(fhir.ErrNotFound, "not-found", "no export %s for this client (unknown, cancelled or expired)", id)
}

const jobSQL = `SELECT id::text, owner, request, level, status, COALESCE(error, ''), types, next_type, exported,
	transaction_time, created_at, completed_at, expires_at FROM bulk_exports WHERE id = $1`

func (s *Service) load(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, id string) (*Job, error) {
	j := &Job{}
	var completed, expires *time.Time
	err := q.QueryRow(ctx, jobSQL, id).Scan(&j.ID, &j.Owner, &j.Request, &j.Level, &j.Status, &j.Error, &j.Types, &j.NextType,
		&j.Exported, &j.TransactionTime, &j.CreatedAt, &completed, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", id, err)
	}
	if completed != nil {
		j.CompletedAt = *completed
	}
	if expires != nil {
		j.ExpiresAt = *expires
	}
	return j, nil
}

// Job returns the export id of owner with its files. An export of another owner, or one that has
// expired, is not found.
func (s *Service) Job(ctx context.Context, id, owner string) (*Job, error) {
	if !ValidID(id) {
		return nil, notFound(id)
	}
	j, err := s.load(ctx, s.cfg.Pool, id)
	if err != nil {
		return nil, err
	}
	if j.Owner != owner || (!j.ExpiresAt.IsZero() && !s.now().Before(j.ExpiresAt)) {
		return nil, notFound(id)
	}
	rows, err := s.cfg.Pool.Query(ctx, `SELECT name, kind, type, count, size, blob_id FROM bulk_export_files WHERE export_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", id, err)
	}
	j.Files, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (File, error) {
		var f File
		err := row.Scan(&f.Name, &f.Kind, &f.Type, &f.Count, &f.Size, &f.BlobID)
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", id, err)
	}
	return j, nil
}

// Open opens file name of export id for owner; the caller closes it.
func (s *Service) Open(ctx context.Context, id, owner, name string) (blob.Object, *File, error) {
	j, err := s.Job(ctx, id, owner)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range j.Files {
		if f.Name == name {
			obj, err := s.cfg.Blobs.Open(ctx, f.BlobID)
			if err != nil {
				return nil, nil, fmt.Errorf("export %s file %s: %w", id, name, err)
			}
			return obj, &f, nil
		}
	}
	return nil, nil, fhir.Errorf(fhir.ErrNotFound, "not-found", "export %s has no file %q", id, name)
}

// Cancel deletes export id of owner and its files, whatever its state; a worker running it stops
// at its next file.
func (s *Service) Cancel(ctx context.Context, id, owner string) error {
	if _, err := s.Job(ctx, id, owner); err != nil {
		return err
	}
	return s.delete(ctx, []string{id})
}

// delete removes exports and their blobs. Rows go first: a blob whose deletion fails is left
// behind unreferenced, never a file row pointing at nothing.
func (s *Service) delete(ctx context.Context, ids []string) error {
	var blobs []string
	err := pg.InTx(ctx, s.cfg.Pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM bulk_export_files WHERE export_id = ANY($1::uuid[]) RETURNING blob_id`, ids)
		if err != nil {
			return err
		}
		if blobs, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM bulk_exports WHERE id = ANY($1::uuid[])`, ids)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete exports: %w", err)
	}
	for _, b := range blobs {
		if err := s.cfg.Blobs.Delete(ctx, b); err != nil {
			s.cfg.Log.WarnContext(ctx, "export: a deleted file's blob stays behind", "blob", b, "error", err.Error())
		}
	}
	return nil
}

// lockClass is the first key of the advisory locks that mark a running export (the second is a
// hash of its id).
const lockClass = 727014

// runState is what Run reads of a job to continue it.
type runState struct {
	level, status       string
	patients, types     []string
	filters             map[string][]string
	reach               *search.Reach
	since               *time.Time
	transactionTime     time.Time
	nextType            int
	afterRID, exported  int64
	problems            []issue
	filesByType, nFiles map[string]int
}

// Run runs export id until it is complete, continuing after the last file a previous run recorded.
// It returns nil at once when another worker is running it, or when it is finished or gone. An
// error is transient (the queue retries); a job that cannot succeed is marked failed.
func (s *Service) Run(ctx context.Context, id string) error {
	if !ValidID(id) {
		return nil
	}
	conn, err := s.cfg.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("export %s: %w", id, err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, lockClass, id).Scan(&locked); err != nil {
		return fmt.Errorf("export %s: lock: %w", id, err)
	}
	if !locked {
		return nil
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, hashtext($2))`, lockClass, id); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) //nolint:errcheck // closing releases the lock
		}
	}()
	st, err := s.state(ctx, id)
	if err != nil || st == nil {
		return err
	}
	if st.status != StatusQueued && st.status != StatusRunning {
		return nil
	}
	if _, err := s.cfg.Pool.Exec(ctx, `UPDATE bulk_exports SET status = 'running' WHERE id = $1 AND status = 'queued'`, id); err != nil {
		return fmt.Errorf("export %s: %w", id, err)
	}
	filters := map[string][]*search.Query{}
	for typ, qs := range st.filters {
		for _, raw := range qs {
			q, err := s.parseFilter(typ, raw)
			if err != nil {
				return s.Fail(ctx, id, err)
			}
			filters[typ] = append(filters[typ], q)
		}
	}
	for st.nextType < len(st.types) {
		typ := st.types[st.nextType]
		q := store.ExportQuery{Type: typ, After: st.afterRID, Limit: s.cfg.FileResources, Until: st.transactionTime,
			Patients: st.patients, AnyPatient: st.level == LevelPatient, Filters: filters[typ], Reach: st.reach}
		if st.since != nil {
			q.Since = *st.since
		}
		ref, n, last, err := s.writeFile(ctx, q)
		if err != nil {
			return fmt.Errorf("export %s: %s: %w", id, typ, err)
		}
		typeDone := n < s.cfg.FileResources
		next, after := st.nextType, last
		if typeDone {
			next, after = next+1, 0
		}
		var f *File
		if n > 0 {
			st.filesByType[typ]++
			f = &File{Name: typ + "-" + strconv.Itoa(st.filesByType[typ]) + ".ndjson", Kind: "output", Type: typ, Count: int64(n), Size: ref.Size, BlobID: ref.ID}
		}
		ok, err := s.record(ctx, id, f, next, after, int64(n))
		if err != nil || !ok {
			if n > 0 {
				_ = s.cfg.Blobs.Delete(context.WithoutCancel(ctx), ref.ID)
			}
			return err // !ok: cancelled meanwhile
		}
		if n == 0 && ref.ID != "" {
			_ = s.cfg.Blobs.Delete(ctx, ref.ID) // nothing in it
		}
		st.nextType, st.afterRID = next, after
	}
	return s.complete(ctx, id, st)
}

// parseFilter parses one _typeFilter query of typ (always strictly: ignoring a parameter would
// widen the export).
func (s *Service) parseFilter(typ, raw string) (*search.Query, error) {
	params, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fhir.Invalid("value", "_typeFilter", "_typeFilter %s?%s cannot be parsed: %v", typ, raw, err)
	}
	for _, k := range []string{"_include", "_revinclude", "_sort", "_count", "_summary", "_elements", "_total", "_page", "_contained", "_containedType", "_format", "_pretty"} {
		if _, ok := params[k]; ok {
			return nil, fhir.Invalid("not-supported", "_typeFilter", "_typeFilter %s?%s: %s selects no resources and is not allowed in a filter", typ, raw, k)
		}
	}
	q, err := search.Parse([]string{typ}, params, search.Options{Strict: true, Base: s.cfg.Base})
	if err != nil {
		if fe, ok := fhir.AsError(err); ok {
			return nil, fe.At("_typeFilter")
		}
		return nil, err
	}
	return q, nil
}

func (s *Service) state(ctx context.Context, id string) (*runState, error) {
	st := &runState{filesByType: map[string]int{}}
	var filters, reach, problems []byte
	err := s.cfg.Pool.QueryRow(ctx, `SELECT level, status, patients, types, filters, reach, since, transaction_time, next_type, after_rid, exported, problems
		FROM bulk_exports WHERE id = $1`, id).Scan(&st.level, &st.status, &st.patients, &st.types, &filters, &reach, &st.since,
		&st.transactionTime, &st.nextType, &st.afterRID, &st.exported, &problems)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil // cancelled
	}
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", id, err)
	}
	if err := json.Unmarshal(filters, &st.filters); err != nil {
		return nil, fmt.Errorf("export %s: filters: %w", id, err)
	}
	if reach != nil {
		st.reach = &search.Reach{}
		if err := json.Unmarshal(reach, st.reach); err != nil {
			return nil, fmt.Errorf("export %s: reach: %w", id, err)
		}
	}
	if err := json.Unmarshal(problems, &st.problems); err != nil {
		return nil, fmt.Errorf("export %s: problems: %w", id, err)
	}
	rows, err := s.cfg.Pool.Query(ctx, `SELECT type, count(*) FROM bulk_export_files WHERE export_id = $1 AND kind = 'output' GROUP BY type`, id)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ string
		var n int
		if err := rows.Scan(&typ, &n); err != nil {
			return nil, err
		}
		st.filesByType[typ] = n
	}
	return st, rows.Err()
}

// writeFile streams one file of q's rows into the blob store as NDJSON and returns its blob, the
// number of resources and the last rid. Memory is the writer's buffer and the blob store's chunks,
// whatever the file's size. With no rows the blob is empty (the caller deletes it).
func (s *Service) writeFile(ctx context.Context, q store.ExportQuery) (blob.Ref, int, int64, error) {
	pr, pw := io.Pipe()
	type put struct {
		ref blob.Ref
		err error
	}
	done := make(chan put, 1)
	go func() {
		ref, err := s.cfg.Blobs.Put(ctx, pr)
		pr.CloseWithError(err) // a failed Put stops the writer below instead of blocking it
		done <- put{ref, err}
	}()
	bw := bufio.NewWriterSize(pw, 256<<10)
	n, last, err := s.cfg.Store.Export(ctx, q, func(row store.ExportRow) error {
		if _, err := bw.Write(row.Content); err != nil {
			return err
		}
		return bw.WriteByte('\n')
	})
	if err == nil {
		err = bw.Flush()
	}
	pw.CloseWithError(err)
	res := <-done
	if err == nil {
		err = res.err
	}
	if err != nil {
		if res.err == nil {
			_ = s.cfg.Blobs.Delete(context.WithoutCancel(ctx), res.ref.ID)
		}
		return blob.Ref{}, 0, 0, err
	}
	return res.ref, n, last, nil
}

// record commits one step of a job: the file written (f, nil for none), the new cursor and the
// count. It reports false when the job is no longer running (cancelled).
func (s *Service) record(ctx context.Context, id string, f *File, nextType int, afterRID, n int64) (bool, error) {
	ok := false
	err := pg.InTx(ctx, s.cfg.Pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE bulk_exports SET next_type = $2, after_rid = $3, exported = exported + $4 WHERE id = $1 AND status = 'running'`,
			id, nextType, afterRID, n)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		ok = true
		if f == nil {
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO bulk_export_files (export_id, name, seq, kind, type, blob_id, count, size)
			VALUES ($1, $2, (SELECT COALESCE(max(seq), 0) + 1 FROM bulk_export_files WHERE export_id = $1), $3, $4, $5, $6, $7)`,
			id, f.Name, f.Kind, f.Type, f.BlobID, f.Count, f.Size)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("export %s: record: %w", id, err)
	}
	return ok, nil
}

// complete writes the error file (the problems of the kick-off) and marks the job completed.
func (s *Service) complete(ctx context.Context, id string, st *runState) error {
	var errFile *File
	if len(st.problems) > 0 {
		var lines []byte
		for _, p := range st.problems {
			lines = append(lines, fhir.Outcome([]fhir.Issue{fhir.Issue(p)}).Marshal()...)
			lines = append(lines, '\n')
		}
		ref, err := s.cfg.Blobs.Put(ctx, bytes.NewReader(lines))
		if err != nil {
			return fmt.Errorf("export %s: error file: %w", id, err)
		}
		errFile = &File{Name: "OperationOutcome-1.ndjson", Kind: "error", Type: "OperationOutcome", Count: int64(len(st.problems)), Size: ref.Size, BlobID: ref.ID}
	}
	now := s.now()
	ok := false
	err := pg.InTx(ctx, s.cfg.Pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE bulk_exports SET status = 'completed', completed_at = $2, expires_at = $3 WHERE id = $1 AND status = 'running'`,
			id, now, now.Add(s.cfg.Expiry))
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		ok = true
		if errFile == nil {
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO bulk_export_files (export_id, name, seq, kind, type, blob_id, count, size)
			VALUES ($1, $2, (SELECT COALESCE(max(seq), 0) + 1 FROM bulk_export_files WHERE export_id = $1), 'error', $3, $4, $5, $6)
			ON CONFLICT DO NOTHING`, id, errFile.Name, errFile.Type, errFile.BlobID, errFile.Count, errFile.Size)
		return err
	})
	if (err != nil || !ok) && errFile != nil {
		_ = s.cfg.Blobs.Delete(context.WithoutCancel(ctx), errFile.BlobID)
	}
	if err != nil {
		return fmt.Errorf("export %s: complete: %w", id, err)
	}
	return nil
}

// Fail marks export id failed with the reason (reported by its status) and returns nil, so that
// the queue does not retry it. Its files are kept until it expires.
func (s *Service) Fail(ctx context.Context, id string, reason error) error {
	now := s.now()
	_, err := s.cfg.Pool.Exec(ctx, `UPDATE bulk_exports SET status = 'failed', error = $2, completed_at = $3, expires_at = $4
		WHERE id = $1 AND status IN ('queued', 'running')`, id, reason.Error(), now, now.Add(s.cfg.Expiry))
	if err != nil {
		return fmt.Errorf("export %s: fail: %w", id, err)
	}
	s.cfg.Log.WarnContext(ctx, "export failed", "export", id, "reason", reason.Error())
	return nil
}

// Maintain deletes expired exports with their files, and queues again every running export whose
// worker is gone (its advisory lock is free). Every Billy process runs it periodically
// (RunMaintenance); running it twice at once is harmless.
func (s *Service) Maintain(ctx context.Context) error {
	rows, err := s.cfg.Pool.Query(ctx, `SELECT id::text FROM bulk_exports WHERE expires_at <= $1 LIMIT 1000`, s.now())
	if err != nil {
		return fmt.Errorf("export maintenance: %w", err)
	}
	expired, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("export maintenance: %w", err)
	}
	if len(expired) > 0 {
		if err := s.delete(ctx, expired); err != nil {
			return err
		}
	}
	rows, err = s.cfg.Pool.Query(ctx, `SELECT id::text FROM bulk_exports WHERE status = 'running'`)
	if err != nil {
		return fmt.Errorf("export maintenance: %w", err)
	}
	running, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("export maintenance: %w", err)
	}
	for _, id := range running {
		orphan := false
		err := pg.InTx(ctx, s.cfg.Pool, func(tx pgx.Tx) error {
			// A transaction-level lock: taken only if no worker holds the job's session lock, and
			// released by the commit, before a worker could want it.
			if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, hashtext($2))`, lockClass, id).Scan(&orphan); err != nil || !orphan {
				return err
			}
			return s.cfg.Queue.Enqueue(ctx, tx, id, "export-resume:"+id)
		})
		if err != nil {
			return fmt.Errorf("export maintenance: %w", err)
		}
		if orphan {
			s.cfg.Log.WarnContext(ctx, "export: its worker is gone; queued again to continue", "export", id)
		}
	}
	return nil
}

// RunMaintenance runs Maintain every interval until ctx ends.
func (s *Service) RunMaintenance(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Maintain(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Log.ErrorContext(ctx, "export maintenance", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
