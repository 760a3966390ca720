package kb

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/iambilly/billy/internal/pg"
)

// tryPGVector creates the vector extension and this dimension's table and HNSW index. It reports
// false with the reason when pgvector is not available.
func (k *KB) tryPGVector(ctx context.Context) (bool, string) {
	if _, err := k.db.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS vector`); err != nil {
		return false, err.Error()
	}
	var version string
	if err := k.db.QueryRow(ctx, `SELECT extversion FROM pg_extension WHERE extname = 'vector'`).Scan(&version); err != nil {
		return false, err.Error()
	}
	k.iterative = versionAtLeast(version, 0, 8)
	k.vecTable = "kb_vectors_" + strconv.Itoa(k.dim) // an integer: safe in an identifier
	ddl := []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
			chunk_id  bigint PRIMARY KEY REFERENCES kb_chunks ON DELETE CASCADE,
			embedder  text NOT NULL,
			kind      text NOT NULL,
			system    text NOT NULL,
			embedding vector(%d) NOT NULL)`, k.vecTable, k.dim),
	}
	for _, q := range ddl {
		if _, err := k.db.Exec(ctx, q); err != nil {
			return false, fmt.Sprintf("create %s: %v", k.vecTable, err)
		}
	}
	return true, ""
}

func (k *KB) ensureHNSW(ctx context.Context) error {
	// Built after bulk loads (faster than growing it row by row); IF NOT EXISTS makes it idempotent.
	// Manual passages get a partial index of their own: they are a small share of the rows, far
	// from the code descriptions a query lands near, and a filtered walk of the full graph found
	// only 0.76 of their true ten nearest (make bench-coding, 92k chunks, even at ef_search 1000).
	for _, q := range []string{
		`CREATE INDEX IF NOT EXISTS %[1]s_hnsw ON %[1]s USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 128)`,
		`CREATE INDEX IF NOT EXISTS %[1]s_hnsw_manual ON %[1]s USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 128) WHERE kind = '` + KindManual + `'`,
	} {
		if _, err := k.db.Exec(ctx, fmt.Sprintf(q, k.vecTable)); err != nil {
			return err
		}
	}
	return nil
}

func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

// backfillVectors copies into the vector table every chunk of this embedder it lacks (chunks stored
// by a process in exact mode, or before the extension existed), then makes sure the index exists.
func (k *KB) backfillVectors(ctx context.Context) error {
	for {
		rows, err := k.db.Query(ctx, fmt.Sprintf(`SELECT c.id, c.kind, c.system, c.embedding FROM kb_chunks c
			WHERE c.embedder = $1::text AND NOT EXISTS (SELECT 1 FROM %s v WHERE v.chunk_id = c.id)
			ORDER BY c.id LIMIT 2000`, k.vecTable), k.embID)
		if err != nil {
			return fmt.Errorf("backfill: %w", err)
		}
		var batch []vecRow
		for rows.Next() {
			var r vecRow
			var raw []byte
			if err := rows.Scan(&r.id, &r.kind, &r.system, &raw); err != nil {
				rows.Close()
				return fmt.Errorf("backfill: %w", err)
			}
			r.vec = make([]float32, k.dim)
			if err := decodeVec(raw, r.vec); err != nil {
				rows.Close()
				return fmt.Errorf("backfill chunk %d: %w", r.id, err)
			}
			batch = append(batch, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("backfill: %w", err)
		}
		if len(batch) == 0 {
			break
		}
		if err := pg.InTx(ctx, k.db, func(tx pgx.Tx) error { return k.insertVectors(ctx, tx, batch) }); err != nil {
			return fmt.Errorf("backfill: %w", err)
		}
	}
	return k.ensureHNSW(ctx)
}

type vecRow struct {
	id     int64
	kind   string
	system string
	vec    []float32
}

// insertVectors writes rows to the vector table; vectors travel as pgvector text literals, so no
// type registration is needed on the connection.
func (k *KB) insertVectors(ctx context.Context, tx pgx.Tx, rows []vecRow) error {
	const per = 500
	for i := 0; i < len(rows); i += per {
		part := rows[i:min(i+per, len(rows))]
		ids := make([]int64, len(part))
		kinds := make([]string, len(part))
		systems := make([]string, len(part))
		vecs := make([]string, len(part))
		for j, r := range part {
			ids[j], kinds[j], systems[j] = r.id, r.kind, r.system
			vecs[j] = pgvector.NewVector(r.vec).String()
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (chunk_id, embedder, kind, system, embedding)
			SELECT id, $2::text, kind, system, v::vector
			FROM unnest($1::bigint[], $3::text[], $4::text[], $5::text[]) AS t(id, kind, system, v)
			ON CONFLICT (chunk_id) DO NOTHING`, k.vecTable), ids, k.embID, kinds, systems, vecs); err != nil {
			return err
		}
	}
	return nil
}

// DefaultEfSearch is the hnsw.ef_search of a search when Options.EfSearch is not set, and the cap
// of any setting. Measured with make bench-coding (PGlite, 91,977 built-in vectors, 300 queries):
// recall@10 unfiltered 0.937-0.946 at ef 400 and 0.979-0.985 at 1,000, filtered to ICD-10-CM codes
// 0.940-0.943 and 0.981-0.985 (two index builds; HNSW levels are random).
const DefaultEfSearch = 1000

// searchPG runs the HNSW search at Options.EfSearch (at most DefaultEfSearch); on pgvector 0.8+ an
// iterative scan keeps filtered searches from coming back short.
func (k *KB) searchPG(ctx context.Context, vec []float32, n int, f Filter) ([]Hit, error) {
	ef := k.opt.EfSearch
	if ef <= 0 || ef > DefaultEfSearch {
		ef = DefaultEfSearch
	}
	// The kind is written into the statement, not bound, so that the planner can pick the manual
	// passages' partial index; SearchVector has checked it is one of the two constants.
	where := "embedder = $2::text AND ($3::text = '' OR system = $3::text)"
	if f.Kind != "" {
		where += " AND kind = '" + f.Kind + "'"
	}
	q := pgvector.NewVector(vec).String()
	var out []Hit
	err := pg.InTx(ctx, k.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('hnsw.ef_search', $1::text, true)`, strconv.Itoa(ef)); err != nil {
			return err
		}
		if k.iterative && (f.Kind != "" || f.System != "") {
			if _, err := tx.Exec(ctx, `SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)`); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT c.id, c.kind, c.system, c.code, c.page, c.text, s.uri, v.score
			FROM (SELECT chunk_id, 1 - (embedding <=> $1::vector) AS score FROM %s
			      WHERE %s
			      ORDER BY embedding <=> $1::vector LIMIT $4::int) v
			JOIN kb_chunks c ON c.id = v.chunk_id JOIN kb_sources s ON s.id = c.source_id
			ORDER BY v.score DESC, c.id`, k.vecTable, where), q, k.embID, f.System, n)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Hit, error) {
			var h Hit
			var page int32
			var score float64
			err := r.Scan(&h.ChunkID, &h.Kind, &h.System, &h.Code, &page, &h.Text, &h.Source, &score)
			h.Page, h.Score = int(page), float32(score)
			return h, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kb search (pgvector): %w", err)
	}
	return out, nil
}
