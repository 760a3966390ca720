package kb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/shareddata"
	"github.com/iambilly/billy/pipeline/embed"
)

// PGlite packages, pinned: PGlite runs real PostgreSQL (compiled to WebAssembly) with real
// pgvector, the only way to test the pgvector path on a machine whose PostgreSQL lacks it.
var pglitePackages = []string{"@electric-sql/pglite@0.5.14", "@electric-sql/pglite-socket@0.2.17", "@electric-sql/pglite-pgvector@0.0.15"}

// startPGlite installs the PGlite packages into a cache directory (once) and starts pglite-server
// with the vector extension on a free port. It skips the test only when npm or its registry is
// unreachable.
func startPGlite(t *testing.T) string {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm not installed: the pgvector path needs PGlite from the npm registry")
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
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"billy-pglite","private":true}`), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, append([]string{"install", "--no-audit", "--no-fund", "--loglevel=error"}, pglitePackages...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			if unreachable(string(out)) {
				t.Skipf("npm registry unreachable, cannot install PGlite: %s", lastLine(out))
			}
			t.Fatalf("npm install PGlite: %v\n%s", err, out)
		}
	}
	port := freePort(t)
	cmd := exec.Command(server, "-p", fmt.Sprint(port), "-e", "@electric-sql/pglite-pgvector:vector")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.Create(filepath.Join(t.TempDir(), "pglite.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pglite-server: %v", err)
	}
	t.Cleanup(func() {
		// The server and any child it spawned share the process group we gave it.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&default_query_exec_mode=exec&pool_max_conns=1", port)
	// Readiness: PGlite takes ~10 s to initialise. This deadline only bounds a broken start.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return url
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("pglite-server did not start: %v\n%s", err, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func unreachable(out string) bool {
	for _, s := range []string{"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "network"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// sampleDescriptions reads n ICD-10-CM descriptions from the shared codes file, every step-th line
// from offset, for a realistic mix of texts.
func sampleDescriptions(t *testing.T, n, step, offset int) []string {
	t.Helper()
	dir, err := shareddata.Dir()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "icd10cm", "icd10cm-codes-2026.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for i := 0; sc.Scan() && len(out) < n; i++ {
		if i%step == offset {
			out = append(out, strings.TrimSpace(sc.Text()))
		}
	}
	return out
}

// TestPGVectorMatchesExact loads a few thousand vectors into PGlite's pgvector and checks that the
// HNSW index finds the same neighbours as the exact in-memory search over the same rows
// (recall@10 >= 0.95), with filters.
func TestPGVectorMatchesExact(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PGlite (about 10 s)")
	}
	t.Parallel()
	url := startPGlite(t)
	ctx := t.Context()
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	var ready error
	for range 100 {
		if ready = db.Ping(ctx); ready == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ready != nil {
		t.Fatalf("PGlite ping: %v", ready)
	}
	migration, err := os.ReadFile(filepath.Join("..", "..", "migrations", "005_codes.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, string(migration)); err != nil {
		t.Fatalf("apply 005 on PGlite: %v", err)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	emb := embed.NewHash(0)
	vk, err := Open(ctx, db, emb, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if vk.Mode() != ModePGVector {
		t.Fatalf("mode = %s, want pgvector", vk.Mode())
	}
	texts := sampleDescriptions(t, 3000, 20, 0)
	docs := make([]chunkDoc, len(texts))
	for i, s := range texts {
		code, desc, _ := strings.Cut(s, " ")
		kind := KindCode
		if i%3 == 0 {
			kind = KindManual // a third of the rows as passages, to exercise filters
		}
		docs[i] = chunkDoc{kind: kind, system: "icd10cm", code: code, text: strings.TrimSpace(desc), embedText: strings.TrimSpace(desc)}
		if kind == KindManual {
			docs[i].system, docs[i].code = "", ""
		}
	}
	if err := vk.storeSource(ctx, KindCode, "test:sample", "sample", "x", docs, func(int, string) {}); err != nil {
		t.Fatalf("store: %v", err)
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM `+vk.vecTable).Scan(&n); err != nil || n != len(docs) {
		t.Fatalf("vector rows = %d, %v", n, err)
	}
	rows, err := db.Query(ctx, `EXPLAIN SELECT chunk_id FROM `+vk.vecTable+` ORDER BY embedding <=> (SELECT embedding FROM `+vk.vecTable+` LIMIT 1) LIMIT 10`)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	usesIndex := strings.Join(plan, "\n")
	if !strings.Contains(usesIndex, "_hnsw") {
		t.Errorf("nearest-neighbour plan does not use the HNSW index: %s", usesIndex)
	}

	ek, err := Open(ctx, db, emb, Options{Logger: log, ForceExact: true, RefreshEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	if ek.Len() != len(docs) {
		t.Fatalf("exact index holds %d vectors", ek.Len())
	}

	queries := sampleDescriptions(t, 100, 20, 7) // other codes than those indexed
	filters := []Filter{{}, {Kind: KindManual}, {Kind: KindCode, System: "icd10cm"}}
	for _, f := range filters {
		found, total := 0, 0
		for _, q := range queries {
			_, desc, _ := strings.Cut(q, " ")
			vec := emb.Vector(desc)
			want, err := ek.SearchVector(ctx, vec, 10, f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := vk.SearchVector(ctx, vec, 10, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Errorf("filter %+v: pgvector returned %d hits, exact %d", f, len(got), len(want))
			}
			// Recall counts a returned chunk as found when the exact search ranks it in the top 10 or
			// it ties the 10th score (hashed vectors of near-identical texts tie exactly).
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
				if (f.Kind != "" && h.Kind != f.Kind) || (f.System != "" && h.System != f.System) {
					t.Errorf("filter %+v let through %+v", f, h)
				}
			}
			hit := 0
			for _, h := range want {
				if in[h.ChunkID] {
					hit++
				}
			}
			total += len(want)
			found += max(hit, min(tied, len(want)))
		}
		recall := float64(found) / float64(total)
		t.Logf("filter %+v: recall@10 pgvector vs exact = %.3f over %d queries", f, recall, len(queries))
		if recall < 0.95 {
			t.Errorf("filter %+v: recall@10 = %.3f, want >= 0.95", f, recall)
		}
	}
	// A search through the text API agrees with the vector API and carries sources.
	hits, err := vk.Search(ctx, "Cholera due to Vibrio cholerae", 3, Filter{})
	if err != nil || len(hits) == 0 || hits[0].Source != "test:sample" {
		t.Errorf("Search = %+v, %v", hits, err)
	}
}
