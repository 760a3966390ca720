// Package store keeps FHIR resources in PostgreSQL: current versions, full history and search index
// rows, all written in one transaction per request (or per transaction Bundle).
//
// It owns every SQL statement of the resource store (see migrations/001_resources.sql for the
// tables), version numbering and locking, the search SQL builder, and the translation of
// PostgreSQL errors into the fhir error vocabulary. It must not parse or validate resources (callers
// hand it validated trees) and knows nothing of HTTP.
//
// Concurrency: an update or delete locks the resource's row (SELECT ... FOR UPDATE) before choosing
// the next version, so racing writers are serialised and never lose or duplicate a version. A
// conditional create serialises on a transaction advisory lock keyed by its type and criteria.
package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/internal/pg"
)

// Interaction methods recorded with each version (and shown in history entries).
const (
	MethodCreate = "POST"
	MethodUpdate = "PUT"
	MethodPatch  = "PATCH"
	MethodDelete = "DELETE"
)

// Version is one stored version of a resource.
type Version struct {
	RID         int64
	Type        string
	ID          string
	Version     int
	LastUpdated time.Time
	Method      string
	// Content is the canonical JSON; nil when this version is a deletion.
	Content []byte
	// Warnings are what the write hooks said about this write (a DocumentReference that cannot
	// start a coding run, say), for the response; they are not stored.
	Warnings []fhir.Issue
}

// Deleted reports whether this version records a deletion.
func (v *Version) Deleted() bool { return v.Content == nil }

// Write is a validated resource to store. Tree has no server meta yet; the store stamps id,
// versionId and lastUpdated into it.
type Write struct {
	Type   string
	ID     string
	Tree   *jsontree.Value
	Index  search.Index
	Method string // MethodUpdate or MethodPatch for Update; ignored by Create
	// Blob is the content of a Binary, kept in the blob store; recorded with the version.
	Blob *Blob
	// Companions are new resources created in the same transaction, before this one (the Binary a
	// Media's inline content moved into).
	Companions []*Write
	// IfNoneMatch, for Update, is the client's If-None-Match: checked under the row lock, so that of
	// racing "create only" updates exactly one succeeds.
	IfNoneMatch *NoneMatch
}

// NoneMatch is an If-None-Match precondition (RFC 9110 §13.1.2): Any ("*") is false when the
// resource has a current version; Versions are false when the current version is one of them. A
// deleted resource has no current version, so it fails neither.
type NoneMatch struct {
	Any      bool
	Versions []int
}

// Check returns ErrPreconditionFailed when cur, the current version (nil when there is none),
// makes the condition false. A nil NoneMatch holds always.
func (n *NoneMatch) Check(cur *Version) error {
	if n == nil || cur == nil || cur.Deleted() {
		return nil
	}
	if n.Any || slices.Contains(n.Versions, cur.Version) {
		return fhir.Errorf(fhir.ErrPreconditionFailed, "conflict", "If-None-Match: %s/%s exists at version %d; nothing was changed", cur.Type, cur.ID, cur.Version)
	}
	return nil
}

// Blob is the stored content of a Binary version.
type Blob struct {
	ID     string
	Size   int64
	SHA256 string
}

// Change describes a committed-with-the-transaction write, for hooks.
type Change struct {
	Type    string
	ID      string
	Version int
	Method  string
	Content []byte // nil for a deletion
}

// WriteHook runs inside the transaction of every write, so what it writes (outbox rows, resources
// of its own) commits or rolls back with the resource. Its own writes through tx run the hooks
// again; a hook must ignore what it writes itself. It may answer issues of severity warning or
// information about the write, which the HTTP edge reports to the client (Version.Warnings); an
// error rolls the write back.
type WriteHook interface {
	AfterWrite(ctx context.Context, tx *Tx, c Change) ([]fhir.Issue, error)
}

// Store is the resource store.
type Store struct {
	reader
	pool  *pgxpool.Pool
	hooks []WriteHook
	now   func() time.Time
	base  string
}

// Option configures a Store.
type Option func(*Store)

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithBase sets the server's FHIR base URL, with which references are indexed (absolute references
// to it count as local). It must be the base the callers extract Write.Index with.
func WithBase(base string) Option { return func(s *Store) { s.base = base } }

// WithHooks adds write hooks.
func WithHooks(h ...WriteHook) Option { return func(s *Store) { s.hooks = append(s.hooks, h...) } }

// New returns a Store on pool.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	s.reader = reader{q: pool, now: s.now}
	return s
}

// Pool returns the underlying pool (readiness checks, benchmarks).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// querier is what both the pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Tx is one database transaction of writes and reads. All writes of a Tx share one lastUpdated.
type Tx struct {
	reader
	s   *Store
	tx  pgx.Tx
	now time.Time
}

// TxOption tunes a transaction of InTx.
type TxOption func(*pgx.TxOptions)

// StatementTimeout bounds every statement of the transaction to d: PostgreSQL itself cancels one
// that runs longer (so no abandoned query keeps a backend busy), and the store reports the
// cancellation as fhir.ErrTooCostly. The SET LOCAL travels with the BEGIN, in the same round trip.
// d <= 0 leaves the server's setting.
func StatementTimeout(d time.Duration) TxOption {
	return func(o *pgx.TxOptions) {
		if d > 0 {
			// A number of milliseconds we format, never client input: safe in the SQL text, which
			// must be simple-protocol SQL (no parameters) to hold two statements.
			o.BeginQuery = "BEGIN; SET LOCAL statement_timeout = " + strconv.FormatInt(max(d.Milliseconds(), 1), 10)
		}
	}
}

// beginner begins the pool's transactions with options, for pg.InTx.
type beginner struct {
	pool *pgxpool.Pool
	opts pgx.TxOptions
}

func (b beginner) Begin(ctx context.Context) (pgx.Tx, error) { return b.pool.BeginTx(ctx, b.opts) }

// InTx runs fn in one database transaction. It is not retried: callers' fn mutate the trees they
// write. A transaction PostgreSQL aborts as a deadlock victim (two transaction Bundles locking the
// same resources in opposite orders) is a 409 the client may retry.
func (s *Store) InTx(ctx context.Context, fn func(*Tx) error, opts ...TxOption) error {
	var o pgx.TxOptions
	for _, opt := range opts {
		opt(&o)
	}
	err := pg.InTx(ctx, beginner{s.pool, o}, func(tx pgx.Tx) error {
		now := s.now().UTC().Truncate(time.Microsecond)
		return fn(&Tx{reader: reader{q: tx, now: func() time.Time { return now }}, s: s, tx: tx, now: now})
	})
	if pg.IsSerializationFailure(err) {
		return fhir.Errorf(fhir.ErrConflict, "transient", "the transaction conflicted with a concurrent one and was rolled back; retry it")
	}
	return err
}

// Now is the lastUpdated of everything this transaction writes.
func (t *Tx) Now() time.Time { return t.now }

// PgTx is the underlying database transaction, for hooks that write tables of their own (the
// pipeline's outbox).
func (t *Tx) PgTx() pgx.Tx { return t.tx }

func (t *Tx) hook(ctx context.Context, v *Version) error {
	for _, h := range t.s.hooks {
		warnings, err := h.AfterWrite(ctx, t, Change{Type: v.Type, ID: v.ID, Version: v.Version, Method: v.Method, Content: v.Content})
		if err != nil {
			return fmt.Errorf("write hook: %w", err)
		}
		v.Warnings = append(v.Warnings, warnings...)
	}
	return nil
}

// internal wraps an unexpected database error; the HTTP edge answers 500 and logs it once. Three
// kinds are not unexpected: a statement PostgreSQL cancelled (query_canceled, 57014: the statement
// timeout) or found too complex (class 54: program limit exceeded, such as the stack depth of
// thousands of conditions) is a request too costly to answer, and a data exception (class 22: a
// value the database cannot hold or compare; the SQL text is fixed, so only a client's value can
// cause one) is the client's invalid input.
func internal(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if fe, ok := fhir.AsError(err); ok {
		return fe
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "57014":
			return fhir.Errorf(fhir.ErrTooCostly, "too-costly", "the %s ran longer than the statement timeout and was cancelled; narrow it", op)
		case strings.HasPrefix(pe.Code, "54"):
			return fhir.Errorf(fhir.ErrTooCostly, "too-costly", "the %s is too complex for the database (SQLSTATE %s); narrow it", op, pe.Code)
		case strings.HasPrefix(pe.Code, "22"):
			return fhir.Errorf(fhir.ErrInvalid, "value", "a value of the %s cannot be stored or compared by the database (SQLSTATE %s)", op, pe.Code)
		}
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// oldIndex re-extracts the index values of a stored version, to delete exactly its rows: index
// extraction is deterministic, so the values are the ones written with it (after a change of
// extraction rules, billy reindex rebuilds the tables).
func (s *Store) oldIndex(v *Version) *indexRows {
	var ix indexRows
	ix.add(v.RID, s.extract(v))
	return &ix
}

// extract computes the index values of a stored version.
func (s *Store) extract(v *Version) search.Index {
	if v.Content == nil {
		return search.Index{}
	}
	tree, err := jsontree.Parse(v.Content)
	if err != nil {
		return search.Index{}
	}
	return search.Extract(v.Type, tree, s.base)
}

// EnsureIndex rebuilds the search index when it was built by other extraction rules than
// search.IndexVersion (or by none: resources stored before the index existed). Concurrent processes
// serialise on an advisory lock; it returns whether it rebuilt.
func (s *Store) EnsureIndex(ctx context.Context, progress func(done int)) (bool, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, internal("reindex", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(727003)`); err != nil {
		return false, internal("reindex", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(727003)`) //nolint:errcheck
	var have int
	err = conn.QueryRow(ctx, `SELECT version FROM search_index_state`).Scan(&have)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, internal("reindex", err)
	}
	if have == search.IndexVersion {
		return false, nil
	}
	var any bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM resources WHERE content IS NOT NULL)`).Scan(&any); err != nil {
		return false, internal("reindex", err)
	}
	if any {
		if err := s.Reindex(ctx, 1000, progress); err != nil {
			return false, err
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO search_index_state (version) VALUES ($1) ON CONFLICT (only_row) DO UPDATE SET version = $1`, search.IndexVersion); err != nil {
		return false, internal("reindex", err)
	}
	return any, nil
}

// Reindex rebuilds every search index row from the stored current versions, in batches of
// batchSize resources: after a change of extraction rules, or of the base URL. Searches see
// incomplete results while it runs. progress, when not nil, is told how many resources are done.
func (s *Store) Reindex(ctx context.Context, batchSize int, progress func(done int)) error {
	if _, err := s.pool.Exec(ctx, `TRUNCATE search_token, search_string, search_date, search_number, search_quantity, search_reference, search_composite`); err != nil {
		return internal("reindex", err)
	}
	var after int64
	done := 0
	for {
		rows, err := s.pool.Query(ctx, `SELECT rid, type, id, version, last_updated, method, content FROM resources
			WHERE rid > $1 AND content IS NOT NULL ORDER BY rid LIMIT $2`, after, batchSize)
		if err != nil {
			return internal("reindex", err)
		}
		vs, err := pgx.CollectRows(rows, scanVersion)
		if err != nil {
			return internal("reindex", err)
		}
		if len(vs) == 0 {
			return nil
		}
		var ix indexRows
		for _, v := range vs {
			ix.add(v.RID, s.extract(v))
		}
		var b builder
		b.add("WITH nothing AS (SELECT 1)")
		ix.insertIndex(&b)
		b.add(" SELECT 1")
		if _, err := s.pool.Exec(ctx, b.String(), b.args...); err != nil {
			return internal("reindex", err)
		}
		after = vs[len(vs)-1].RID
		done += len(vs)
		if progress != nil {
			progress(done)
		}
	}
}

// Validate checks a resource's JSON against the FHIR definitions (resource.Validator.Validate).
type Validate func(data []byte) error

// Prepare turns a resource tree into a Write: server meta stripped, id set, validated with
// validate, index values extracted with base (the server's FHIR base URL). Every writer (the REST
// API, the pipeline) goes through it, so nothing unvalidated or unindexed is ever stored.
func Prepare(validate Validate, base, typ, id string, tree *jsontree.Value) (*Write, error) {
	resource.StripServerMeta(tree)
	resource.SetID(tree, id)
	if err := validate(tree.Marshal()); err != nil {
		return nil, err
	}
	return &Write{Type: typ, ID: id, Tree: tree, Index: search.Extract(typ, tree, base)}, nil
}
