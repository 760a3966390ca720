package kb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/pipeline/embed"
)

// Kinds of chunks.
const (
	KindCode   = "code"   // one code's description (and synonyms)
	KindManual = "manual" // a passage of an ingested document
)

// Mode is the vector index in use.
type Mode string

// Index modes.
const (
	ModePGVector Mode = "pgvector" // HNSW cosine index in PostgreSQL
	ModeExact    Mode = "exact"    // exact search over vectors held in memory
)

// Hit is one search result.
type Hit struct {
	Kind    string  // KindCode or KindManual
	System  string  // code system of a code hit
	Code    string  // the code of a code hit
	Text    string  // the code's description, or the passage
	Source  string  // file path of a manual, codes:<system>@<version> for codes
	Page    int     // 1-based PDF page of a manual passage, 0 when not paged
	Score   float32 // cosine similarity, higher is better
	ChunkID int64
}

// Filter narrows a search; zero fields match everything.
type Filter struct {
	Kind   string // KindCode or KindManual
	System string // code system (code hits only)
}

// Options configure Open.
type Options struct {
	// Logger receives the index choice and ingest summaries (default slog.Default()).
	Logger *slog.Logger
	// ForceExact skips pgvector even when it is available (the recall reference, and tests).
	ForceExact bool
	// RefreshEvery bounds how stale an exact index may be with respect to chunks another process
	// wrote (default 10 s); a negative value never polls.
	RefreshEvery time.Duration
	// EfSearch is pgvector's hnsw.ef_search for a query (default: DefaultEfSearch).
	EfSearch int
}

// KB is an open knowledge base. It is safe for concurrent use.
type KB struct {
	db    *pgxpool.Pool
	emb   embed.Embedder
	embID string
	dim   int
	log   *slog.Logger
	opt   Options
	mode  Mode

	// pgvector
	vecTable  string
	iterative bool

	// exact
	mu          sync.RWMutex
	flat        *flat
	sig         signature
	lastPoll    time.Time
	reloading   bool
	reloadMu    sync.Mutex // serialises (re)loads
	pollEveryNs time.Duration
}

// Open opens the knowledge base of db for vectors made by emb, choosing the index: pgvector when
// CREATE EXTENSION vector succeeds (and Options.ForceExact is false), else exact search in memory,
// whose vectors it loads now. The choice is logged.
func Open(ctx context.Context, db *pgxpool.Pool, emb embed.Embedder, opt Options) (*KB, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.RefreshEvery == 0 {
		opt.RefreshEvery = 10 * time.Second
	}
	if emb.Dim() == 0 {
		// An engine that learns its dimension from its first answer.
		if _, err := emb.Embed(ctx, []string{"dimension probe"}); err != nil {
			return nil, fmt.Errorf("kb: probe embedder: %w", err)
		}
	}
	k := &KB{db: db, emb: emb, embID: embed.ID(emb), dim: emb.Dim(), log: opt.Logger, opt: opt, pollEveryNs: opt.RefreshEvery}
	if k.dim <= 0 {
		return nil, errors.New("kb: embedder reports no dimension")
	}
	name, model := emb.Info()
	if !opt.ForceExact {
		ok, why := k.tryPGVector(ctx)
		if ok {
			k.mode = ModePGVector
			if err := k.backfillVectors(ctx); err != nil {
				return nil, fmt.Errorf("kb: %w", err)
			}
			k.log.Info("kb: vector index: pgvector HNSW (cosine)", "table", k.vecTable, "embedder", name, "model", model, "dim", k.dim, "iterative_scan", k.iterative)
			return k, nil
		}
		k.log.Info("kb: pgvector unavailable, using exact in-memory search", "reason", why)
	}
	k.mode = ModeExact
	if err := k.reload(ctx); err != nil {
		return nil, fmt.Errorf("kb: load vectors: %w", err)
	}
	k.log.Info("kb: vector index: exact in-memory search", "vectors", k.Len(), "embedder", name, "model", model, "dim", k.dim)
	return k, nil
}

// Mode returns the index in use.
func (k *KB) Mode() Mode { return k.mode }

// Embedder returns the embedder the knowledge base was opened with.
func (k *KB) Embedder() embed.Embedder { return k.emb }

// Len returns the number of vectors an exact index holds (0 in pgvector mode).
func (k *KB) Len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.flat == nil {
		return 0
	}
	return len(k.flat.ids)
}

// Search embeds query and returns the n chunks nearest to it that pass f, best first.
func (k *KB) Search(ctx context.Context, query string, n int, f Filter) ([]Hit, error) {
	vecs, err := k.emb.Embed(ctx, []string{query})
	if err != nil {
		return nil, fmt.Errorf("kb search: embed: %w", err)
	}
	return k.SearchVector(ctx, vecs[0], n, f)
}

// SearchVector is Search for an already embedded (normalised) query vector.
func (k *KB) SearchVector(ctx context.Context, vec []float32, n int, f Filter) ([]Hit, error) {
	if n <= 0 {
		return nil, nil
	}
	if len(vec) != k.dim {
		return nil, fmt.Errorf("kb search: query has %d dimensions, index has %d", len(vec), k.dim)
	}
	if f.Kind != "" && f.Kind != KindCode && f.Kind != KindManual {
		return nil, fmt.Errorf("kb search: unknown kind %q", f.Kind)
	}
	if k.mode == ModePGVector {
		return k.searchPG(ctx, vec, n, f)
	}
	k.maybePoll(ctx)
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.flat.search(vec, n, f), nil
}

// encodeVec stores a vector as little-endian float32 bytes (the kb_chunks.embedding format).
func encodeVec(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func decodeVec(b []byte, dst []float32) error {
	if len(b) != 4*len(dst) {
		return fmt.Errorf("embedding has %d bytes, want %d", len(b), 4*len(dst))
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return nil
}

// signature summarises the stored sources of one embedder; it changes whenever any process adds,
// replaces or deletes a source.
type signature struct {
	sources int64
	chunks  int64
	maxID   int64
}

func (k *KB) readSignature(ctx context.Context) (signature, error) {
	var s signature
	err := k.db.QueryRow(ctx, `SELECT count(*), coalesce(sum(chunk_count), 0), coalesce(max(id), 0)
		FROM kb_sources WHERE embedder = $1::text`, k.embID).Scan(&s.sources, &s.chunks, &s.maxID)
	return s, err
}

// maybePoll starts a background reload when another process changed the sources. Searches keep
// answering from the old vectors meanwhile.
func (k *KB) maybePoll(ctx context.Context) {
	if k.pollEveryNs < 0 {
		return
	}
	k.mu.RLock()
	due := time.Since(k.lastPoll) >= k.pollEveryNs && !k.reloading
	k.mu.RUnlock()
	if !due {
		return
	}
	k.mu.Lock()
	if k.reloading || time.Since(k.lastPoll) < k.pollEveryNs {
		k.mu.Unlock()
		return
	}
	k.lastPoll = time.Now()
	k.mu.Unlock()
	sig, err := k.readSignature(ctx)
	if err != nil {
		k.log.Warn("kb: poll for new chunks failed", "err", err)
		return
	}
	k.mu.Lock()
	changed := sig != k.sig
	if changed {
		k.reloading = true
	}
	k.mu.Unlock()
	if !changed {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := k.reload(ctx); err != nil {
			k.log.Warn("kb: reload failed", "err", err)
		}
		k.mu.Lock()
		k.reloading = false
		k.mu.Unlock()
	}()
}

// Refresh reloads an exact index from the database now (a no-op in pgvector mode).
func (k *KB) Refresh(ctx context.Context) error {
	if k.mode == ModePGVector {
		return nil
	}
	return k.reload(ctx)
}

// reload reads every chunk of this embedder into a new in-memory index and swaps it in.
func (k *KB) reload(ctx context.Context) error {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	sig, err := k.readSignature(ctx)
	if err != nil {
		return err
	}
	f := newFlat(k.dim)
	if err := k.loadInto(ctx, f, `c.embedder = $1::text`, k.embID); err != nil {
		return err
	}
	k.mu.Lock()
	k.flat, k.sig, k.lastPoll = f, sig, time.Now()
	k.mu.Unlock()
	return nil
}

// loadInto appends the chunks matching where (with args) to f.
func (k *KB) loadInto(ctx context.Context, f *flat, where string, args ...any) error {
	rows, err := k.db.Query(ctx, `SELECT c.id, c.kind, c.system, c.code, c.page, c.text, c.source_id, s.uri, c.dim, c.embedding
		FROM kb_chunks c JOIN kb_sources s ON s.id = c.source_id WHERE `+where+` ORDER BY c.id`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	vec := make([]float32, k.dim)
	for rows.Next() {
		var (
			id, src            int64
			kind, sys, code, t string
			uri                string
			page, dim          int32
			raw                []byte
		)
		if err := rows.Scan(&id, &kind, &sys, &code, &page, &t, &src, &uri, &dim, &raw); err != nil {
			return err
		}
		if int(dim) != k.dim {
			return fmt.Errorf("chunk %d has %d dimensions, want %d", id, dim, k.dim)
		}
		if err := decodeVec(raw, vec); err != nil {
			return fmt.Errorf("chunk %d: %w", id, err)
		}
		f.add(id, item{kind: kindByte(kind), system: sys, code: code, page: page, text: t, source: src}, uri, vec)
	}
	return rows.Err()
}

// applyIngest updates an exact index after this process stored sources: it drops the replaced
// sources and loads the new ones, without rereading everything.
func (k *KB) applyIngest(ctx context.Context, removed, added []int64) error {
	if k.mode != ModeExact || (len(removed) == 0 && len(added) == 0) {
		return nil
	}
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	k.mu.RLock()
	cur := k.flat
	k.mu.RUnlock()
	next := cur.without(removed)
	if len(added) > 0 {
		if err := k.loadInto(ctx, next, `c.source_id = ANY($1::bigint[])`, added); err != nil {
			return err
		}
	}
	sig, err := k.readSignature(ctx)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.flat, k.sig = next, sig
	k.mu.Unlock()
	return nil
}

func kindByte(kind string) uint8 {
	if kind == KindCode {
		return 1
	}
	return 2
}

func kindName(b uint8) string {
	if b == 1 {
		return KindCode
	}
	return KindManual
}

// Source is one stored knowledge-base source.
type Source struct {
	ID         int64
	Kind       string
	URI        string
	Title      string
	SHA256     string
	Chunks     int
	IngestedAt time.Time
}

// Sources lists the sources stored for this knowledge base's embedder.
func (k *KB) Sources(ctx context.Context) ([]Source, error) {
	rows, err := k.db.Query(ctx, `SELECT id, kind, uri, title, sha256, chunk_count, ingested_at
		FROM kb_sources WHERE embedder = $1::text ORDER BY kind, uri`, k.embID)
	if err != nil {
		return nil, fmt.Errorf("kb sources: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Source, error) {
		var s Source
		err := r.Scan(&s.ID, &s.Kind, &s.URI, &s.Title, &s.SHA256, &s.Chunks, &s.IngestedAt)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("kb sources: %w", err)
	}
	return out, nil
}

// DeleteSource removes a source (by URI) and its chunks.
func (k *KB) DeleteSource(ctx context.Context, uri string) error {
	var ids []int64
	rows, err := k.db.Query(ctx, `DELETE FROM kb_sources WHERE uri = $1::text AND embedder = $2::text RETURNING id`, uri, k.embID)
	if err != nil {
		return fmt.Errorf("kb delete %s: %w", uri, err)
	}
	ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("kb delete %s: %w", uri, err)
	}
	if len(ids) == 0 {
		return fmt.Errorf("kb delete %s: %w", uri, ErrNoSource)
	}
	return k.applyIngest(ctx, ids, nil)
}

// ErrNoSource reports a source URI that is not stored.
var ErrNoSource = errors.New("no such knowledge-base source")

func trimText(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n]
}
