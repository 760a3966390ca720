package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/benchkit"
	"github.com/iambilly/billy/pipeline/codes"
	"github.com/iambilly/billy/pipeline/embed"
	"github.com/iambilly/billy/pipeline/kb"
)

// errSkipped reports a measure that could not run on this machine (it is not a failure).
var errSkipped = errors.New("skipped")

// pglitePackages are the PGlite packages pipeline/kb/pgvector_test.go pins and caches; the
// benchmark shares that cache (~/.cache/billy/pglite-0.5.14, or $BILLY_PGLITE_DIR).
var pglitePackages = []string{"@electric-sql/pglite@0.5.14", "@electric-sql/pglite-socket@0.2.17", "@electric-sql/pglite-pgvector@0.0.15"}

// recallResult is recall@10 of pgvector against exact search over the same chunks.
type recallResult struct {
	chunks, total int // chunks loaded into PGlite, of all chunks
	queries       int
	copy, build   time.Duration  // copying the chunks in; kb.Open's backfill and HNSW build
	filters       []filterRecall // at kb's default ef_search
	sweep         []filterRecall // at the -ef values
	pgLat         latencies      // pgvector search latency in PGlite (WebAssembly, one connection)
}

type filterRecall struct {
	name                     string
	ef                       int
	recall                   float64
	indexScans               int64
	missedCode, missedManual int // exact top-10 hits pgvector did not return (ties aside)
	// tenth is the exact 10th score (cosine) on average, shortfall how much lower pgvector's 10th
	// is on average: how far its misses are from the hits they replace.
	tenth, shortfall float64
	compared         int
	lat              latencies
}

// measureRecall copies the knowledge base's chunks (all, or -pgvector-chunks of them, evenly
// spread) into PGlite, lets kb.Open build the pgvector table and HNSW index there, and compares its
// top 10 with the exact search over the same rows for the transcript sentences.
func measureRecall(ctx context.Context, env *benchEnv, cases []devCase, o options) (recallResult, error) {
	var res recallResult
	url, stop, err := startPGlite(ctx)
	if err != nil {
		return res, err
	}
	defer stop()
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		return res, err
	}
	defer db.Close()
	var ready error
	for range 100 {
		if ready = db.Ping(ctx); ready == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ready != nil {
		return res, fmt.Errorf("PGlite ping: %w", ready)
	}
	migration, err := os.ReadFile(filepath.Join("migrations", "005_codes.sql"))
	if err != nil {
		return res, err
	}
	if _, err := db.Exec(ctx, string(migration)); err != nil {
		return res, fmt.Errorf("apply migrations/005 on PGlite: %w", err)
	}

	t0 := time.Now()
	if res.chunks, res.total, err = copyChunks(ctx, env, db, o.pgvectorChunks); err != nil {
		return res, fmt.Errorf("copy chunks into PGlite: %w", err)
	}
	res.copy = time.Since(t0)
	fmt.Printf("  copied %d of %d chunks into PGlite in %s\n", res.chunks, res.total, res.copy.Round(100*time.Millisecond))

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	t0 = time.Now()
	vk, err := kb.Open(ctx, db, env.emb, kb.Options{Logger: quiet})
	if err != nil {
		return res, err
	}
	res.build = time.Since(t0)
	if vk.Mode() != kb.ModePGVector {
		return res, fmt.Errorf("PGlite knowledge base is in %s mode, want pgvector", vk.Mode())
	}
	fmt.Printf("  kb.Open on PGlite (pgvector): vector table and HNSW index (m 16, ef_construction 128) built in %s\n", res.build.Round(100*time.Millisecond))
	// PostgreSQL's autovacuum would analyze the freshly loaded tables; PGlite runs none, and without
	// statistics the planner judges a filtered nearest-neighbour search differently.
	if _, err := db.Exec(ctx, `ANALYZE`); err != nil {
		return res, err
	}
	ek, err := kb.Open(ctx, db, env.emb, kb.Options{Logger: quiet, ForceExact: true, RefreshEvery: -1})
	if err != nil {
		return res, err
	}
	if ek.Len() != res.chunks {
		return res, fmt.Errorf("exact index over PGlite holds %d vectors, want %d", ek.Len(), res.chunks)
	}

	qs := queries(cases)
	if len(qs) > o.recallQueries {
		spread := make([]string, o.recallQueries)
		for i := range spread {
			spread[i] = qs[i*len(qs)/o.recallQueries]
		}
		qs = spread
	}
	res.queries = len(qs)
	vecs, err := env.emb.Embed(ctx, qs)
	if err != nil {
		return res, err
	}
	filters := []struct {
		name string
		f    kb.Filter
	}{
		{"no filter", kb.Filter{}},
		{"manual passages", kb.Filter{Kind: kb.KindManual}},
		{"ICD-10-CM codes", kb.Filter{Kind: kb.KindCode, System: codes.ICD10CM}},
	}
	for _, f := range filters {
		before, err := hnswScans(ctx, db)
		if err != nil {
			return res, err
		}
		r, err := recallAt10(ctx, vk, ek, vecs, f.f, &res.pgLat)
		if err != nil {
			return res, err
		}
		after, err := hnswScans(ctx, db)
		if err != nil {
			return res, err
		}
		r.name, r.ef, r.indexScans = f.name, kb.DefaultEfSearch, after-before
		res.filters = append(res.filters, r)
		fmt.Printf("  %s: recall@10 = %.3f over %d queries (HNSW index scans: %d; missed: %d code, %d manual hits; 10th score %.3f exact, %.4f lower in pgvector on average)\n",
			f.name, r.recall, len(qs), r.indexScans, r.missedCode, r.missedManual, r.tenth, r.shortfall)
	}
	fmt.Printf("  pgvector search in PGlite (WebAssembly, one connection; not the PostgreSQL figure): p50 %s, p95 %s\n", benchkit.Ms(res.pgLat.P(50)), benchkit.Ms(res.pgLat.P(95)))
	// What a larger candidate list buys (kb.Options.EfSearch; kb caps it at 1,000).
	for _, ef := range o.efSweep {
		k, err := kb.Open(ctx, db, env.emb, kb.Options{Logger: quiet, EfSearch: ef})
		if err != nil {
			return res, err
		}
		for _, f := range filters {
			var lat latencies
			r, err := recallAt10(ctx, k, ek, vecs, f.f, &lat)
			if err != nil {
				return res, err
			}
			r.name, r.ef, r.lat = f.name, ef, lat
			res.sweep = append(res.sweep, r)
			fmt.Printf("  %s, ef_search %d: recall@10 = %.3f (10th score %.4f lower; PGlite search p50 %s)\n", f.name, ef, r.recall, r.shortfall, benchkit.Ms(lat.P(50)))
		}
	}
	return res, nil
}

// hnswScans counts the scans of the knowledge base's HNSW index so far, to show that the searches
// use it.
func hnswScans(ctx context.Context, db *pgxpool.Pool) (int64, error) {
	// PGlite reports a backend's statistics only when asked to and after another statement.
	for _, q := range []string{`SELECT pg_stat_force_next_flush()`, `SELECT 1`} {
		if _, err := db.Exec(ctx, q); err != nil {
			return 0, err
		}
	}
	var n int64
	err := db.QueryRow(ctx, `SELECT coalesce(sum(idx_scan), 0)::bigint FROM pg_stat_user_indexes WHERE indexrelname LIKE 'kb\_vectors\_%\_hnsw%'`).Scan(&n)
	return n, err
}

// recallAt10 is the share of the exact top 10 that pgvector returns. As in
// pipeline/kb/pgvector_test.go, a returned chunk that ties the exact 10th score counts as found:
// hashed vectors of near-identical texts tie exactly, and then either is a right answer.
func recallAt10(ctx context.Context, vk, ek *kb.KB, vecs [][]float32, f kb.Filter, lat *latencies) (filterRecall, error) {
	var r filterRecall
	found, total := 0, 0
	for _, vec := range vecs {
		want, err := ek.SearchVector(ctx, vec, 10, f)
		if err != nil {
			return r, err
		}
		t0 := time.Now()
		got, err := vk.SearchVector(ctx, vec, 10, f)
		*lat = append(*lat, time.Since(t0))
		if err != nil {
			return r, err
		}
		in := map[int64]bool{}
		tenth := float32(-2)
		if len(want) > 0 {
			tenth = want[len(want)-1].Score
		}
		tied := 0
		for _, h := range got {
			in[h.ChunkID] = true
			if h.Score >= tenth-1e-6 {
				tied++
			}
		}
		hit := 0
		for _, h := range want {
			switch {
			case in[h.ChunkID]:
				hit++
			case h.Kind == kb.KindManual:
				r.missedManual++
			default:
				r.missedCode++
			}
		}
		total += len(want)
		found += max(hit, min(tied, len(want)))
		if len(want) == 10 && len(got) == 10 {
			// Hits come best first: the last is the 10th.
			r.tenth += float64(want[9].Score)
			r.shortfall += float64(want[9].Score - got[9].Score)
			r.compared++
		}
	}
	if r.compared > 0 {
		r.tenth /= float64(r.compared)
		r.shortfall /= float64(r.compared)
	}
	if total == 0 {
		return r, errors.New("no exact results to compare with")
	}
	r.recall = float64(found) / float64(total)
	return r, nil
}

// copyChunks copies the sources and chunks (ids kept) of the benchmark's embedder into PGlite: all
// of them, or limit of them taken at an even stride, so codes and passages keep their proportion.
func copyChunks(ctx context.Context, env *benchEnv, dst *pgxpool.Pool, limit int) (copied, total int, err error) {
	id := embed.ID(env.emb)
	if err := env.pool.QueryRow(ctx, `SELECT count(*) FROM kb_chunks WHERE embedder = $1`, id).Scan(&total); err != nil {
		return 0, 0, err
	}
	stride := 1
	if limit > 0 && limit < total {
		stride = (total + limit - 1) / limit
	}
	rows, err := env.pool.Query(ctx, `SELECT id, kind, uri, title, sha256, embedder, chunk_count, ingested_at FROM kb_sources WHERE embedder = $1 ORDER BY id`, id)
	if err != nil {
		return 0, 0, err
	}
	for rows.Next() {
		var sid int64
		var kind, uri, title, sha, emb string
		var n int32
		var at time.Time
		if err := rows.Scan(&sid, &kind, &uri, &title, &sha, &emb, &n, &at); err != nil {
			rows.Close()
			return 0, 0, err
		}
		// PGlite gets its own statements while this result is open: the pools are different servers.
		if _, err := dst.Exec(ctx, `INSERT INTO kb_sources (id, kind, uri, title, sha256, embedder, chunk_count, ingested_at)
			OVERRIDING SYSTEM VALUE VALUES ($1::bigint, $2::text, $3::text, $4::text, $5::text, $6::text, $7::int, $8::timestamptz)`,
			sid, kind, uri, title, sha, emb, n, at); err != nil {
			rows.Close()
			return 0, 0, err
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}

	type batch struct {
		ids, sources       []int64
		kinds, systems     []string
		codes, texts, embs []string
		pages, ords, dims  []int32
		raw                [][]byte
	}
	var b batch
	flush := func() error {
		if len(b.ids) == 0 {
			return nil
		}
		_, err := dst.Exec(ctx, `INSERT INTO kb_chunks (id, source_id, kind, system, code, page, ord, text, embedder, dim, embedding)
			OVERRIDING SYSTEM VALUE
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[], $8::text[], $9::text[], $10::int[], $11::bytea[])`,
			b.ids, b.sources, b.kinds, b.systems, b.codes, b.pages, b.ords, b.texts, b.embs, b.dims, b.raw)
		b = batch{}
		return err
	}
	rows, err = env.pool.Query(ctx, `SELECT id, source_id, kind, system, code, page, ord, text, embedder, dim, embedding
		FROM kb_chunks WHERE embedder = $1 ORDER BY id`, id)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	for i := 0; rows.Next(); i++ {
		var cid, sid int64
		var kind, system, code, text, emb string
		var page, ord, dim int32
		var raw []byte
		if err := rows.Scan(&cid, &sid, &kind, &system, &code, &page, &ord, &text, &emb, &dim, &raw); err != nil {
			return 0, 0, err
		}
		if i%stride != 0 {
			continue
		}
		b.ids, b.sources, b.kinds, b.systems, b.codes = append(b.ids, cid), append(b.sources, sid), append(b.kinds, kind), append(b.systems, system), append(b.codes, code)
		b.pages, b.ords, b.texts, b.embs, b.dims, b.raw = append(b.pages, page), append(b.ords, ord), append(b.texts, text), append(b.embs, emb), append(b.dims, dim), append(b.raw, raw)
		copied++
		if len(b.ids) == 1000 {
			if err := flush(); err != nil {
				return 0, 0, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	return copied, total, flush()
}

// startPGlite installs the PGlite packages into the shared cache (once) and starts pglite-server
// with the vector extension on a free port, in a process group of its own. It returns errSkipped
// when node or npm is missing or the npm registry is unreachable.
func startPGlite(ctx context.Context) (string, func(), error) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", nil, fmt.Errorf("%w: npm is not installed (the pgvector measure runs PGlite from npm)", errSkipped)
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", nil, fmt.Errorf("%w: node is not installed (the pgvector measure runs PGlite)", errSkipped)
	}
	dir := os.Getenv("BILLY_PGLITE_DIR")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir = filepath.Join(cache, "billy", "pglite-0.5.14")
	}
	server := filepath.Join(dir, "node_modules", ".bin", "pglite-server")
	if _, err := os.Stat(server); err != nil {
		fmt.Printf("  installing PGlite into %s\n", dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"billy-pglite","private":true}`), 0o644); err != nil {
			return "", nil, err
		}
		ictx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ictx, npm, append([]string{"install", "--no-audit", "--no-fund", "--loglevel=error"}, pglitePackages...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			for _, s := range []string{"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "network"} {
				if strings.Contains(string(out), s) {
					return "", nil, fmt.Errorf("%w: the npm registry is unreachable, cannot install PGlite", errSkipped)
				}
			}
			return "", nil, fmt.Errorf("npm install PGlite: %v\n%s", err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	logf, err := os.CreateTemp("", "billybench-coding-pglite-*.log")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(server, "-p", fmt.Sprint(port), "-e", "@electric-sql/pglite-pgvector:vector")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", nil, fmt.Errorf("start pglite-server: %w", err)
	}
	stop := func() {
		// The server and any child it spawned share the process group it was given.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		os.Remove(logf.Name())
	}
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&default_query_exec_mode=exec&pool_max_conns=1", port)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return url, stop, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log, _ := os.ReadFile(logf.Name())
			stop()
			return "", nil, fmt.Errorf("pglite-server did not start: %v\n%s", err, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
