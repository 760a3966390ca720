package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/benchkit"
	"github.com/iambilly/billy/internal/shareddata"
	"github.com/iambilly/billy/migrations"
	"github.com/iambilly/billy/pipeline/codes"
	"github.com/iambilly/billy/pipeline/embed"
	"github.com/iambilly/billy/pipeline/kb"
)

// devCase is one encounter of the coder's development set (pipeline/coder/testdata): the transcript
// and the context its sidecar gives.
type devCase struct {
	Name    string
	Text    string
	Patient struct {
		BirthDate string `json:"birthDate"`
		Sex       string `json:"sex"`
	} `json:"patient"`
	ServiceDate    string `json:"serviceDate"`
	Established    bool   `json:"established"`
	PlaceOfService string `json:"placeOfService"`
}

func (c devCase) words() int { return len(strings.Fields(c.Text)) }

// testdataDir is where the development transcripts are, relative to the module root (the benchmark
// runs from there: make bench-coding, go run ./cmd/billybench-coding).
const testdataDir = "pipeline/coder/testdata"

func loadCases() ([]devCase, error) {
	files, err := filepath.Glob(filepath.Join(testdataDir, "*.json"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no development transcripts in %s (run from the repository root): %v", testdataDir, err)
	}
	sort.Strings(files)
	var out []devCase
	for _, f := range files {
		var c devCase
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		txt, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".txt")
		if err != nil {
			return nil, err
		}
		c.Name, c.Text = strings.TrimSuffix(filepath.Base(f), ".json"), string(txt)
		out = append(out, c)
	}
	return out, nil
}

// benchEnv is the prepared database and what the in-process measures use.
type benchEnv struct {
	dbURL string
	pool  *pgxpool.Pool
	set   *codes.Set
	emb   embed.Embedder
	kb    *kb.KB
	setup setupResult
	// coderTimes is the in-process coder's median time on each development transcript.
	coderTimes map[string]time.Duration
}

func (e *benchEnv) close() { e.pool.Close() }

// setupResult reports the setup (zero durations when it was reused).
type setupResult struct {
	reused                                bool
	icd, hcpcs, indexCodes, ingest, total time.Duration
	icdCodes, icdBillable, hcpcsCodes     int
	codeChunks, manualChunks, manualFiles int
}

// setupNote is the comment a complete setup leaves on its database, so that -reuse can tell it from
// an interrupted one.
const setupNote = "billybench-coding: %d manual chunks, migrations %s"

func setUp(ctx context.Context, o options) (*benchEnv, error) {
	u, err := url.Parse(o.adminURL)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + o.dbName
	env := &benchEnv{dbURL: u.String(), emb: embed.NewHash(0)}
	note := fmt.Sprintf(setupNote, o.manualChunks, migrations.Fingerprint())
	reuse := false
	if o.reuse {
		if reuse, err = hasNote(ctx, o.adminURL, o.dbName, note); err != nil {
			return nil, err
		}
		if !reuse {
			fmt.Printf("-reuse: database %s holds no complete setup with %d manual chunks: setting up afresh\n", o.dbName, o.manualChunks)
		}
	}
	if !reuse {
		if _, err := benchkit.FreshDatabase(ctx, o.adminURL, o.dbName); err != nil {
			return nil, err
		}
	}
	conn, err := pgx.Connect(ctx, env.dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", o.dbName, err)
	}
	err = migrations.Apply(ctx, conn)
	conn.Close(ctx)
	if err != nil {
		return nil, err
	}
	if env.pool, err = pgxpool.New(ctx, env.dbURL); err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if reuse {
		fmt.Printf("reusing database %s (-reuse): %s\n", o.dbName, note)
		env.setup.reused = true
		if env.kb, err = kb.Open(ctx, env.pool, env.emb, kb.Options{Logger: quiet}); err != nil {
			env.close()
			return nil, err
		}
	} else if err := env.build(ctx, o, quiet); err != nil {
		env.close()
		return nil, err
	}
	if env.set, err = codes.LoadSet(ctx, env.pool); err != nil {
		env.close()
		return nil, err
	}
	if !reuse {
		// Settle the bulk load so autovacuum does not land in the timed phases.
		t0 := time.Now()
		for _, sql := range []string{"VACUUM ANALYZE", "CHECKPOINT"} {
			if _, err := env.pool.Exec(ctx, sql); err != nil {
				env.close()
				return nil, fmt.Errorf("%s: %w", sql, err)
			}
		}
		fmt.Printf("VACUUM ANALYZE and CHECKPOINT: %s\n", time.Since(t0).Round(100*time.Millisecond))
		// COMMENT takes no parameters; the note holds only digits, hex and fixed words.
		if _, err := env.pool.Exec(ctx, "COMMENT ON DATABASE "+pgx.Identifier{o.dbName}.Sanitize()+" IS '"+note+"'"); err != nil {
			env.close()
			return nil, err
		}
	}
	fmt.Printf("knowledge base: %s index, %d vectors of %d dimensions (built-in hashing embedder)\n", env.kb.Mode(), env.kb.Len(), env.emb.Dim())
	return env, nil
}

// build imports the code sets, indexes them and ingests the synthetic manuals, timing each step.
func (e *benchEnv) build(ctx context.Context, o options, log *slog.Logger) error {
	started := time.Now()
	dir, err := shareddata.Dir()
	if err != nil {
		return err
	}
	icdDir := filepath.Join(dir, "icd10cm")
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	open := func(path string) (*os.File, error) {
		f, err := os.Open(path)
		if err == nil {
			files = append(files, f)
		}
		return f, err
	}
	icdFile, err := open(filepath.Join(icdDir, "icd10cm-codes-2026.txt"))
	if err != nil {
		return err
	}
	opt := codes.ICD10CMOptions{ImportOptions: codes.ImportOptions{Version: "2026", Source: "icd10cm-codes-2026.txt"}}
	// The category, section and chapter tables next to the codes file, as billy codes import finds them.
	for pattern, dst := range map[string]*io.Reader{"icd10cm-categories-*.csv": &opt.Categories, "icd10cm-sections-*.csv": &opt.Sections, "icd10cm-chapters-*.csv": &opt.Chapters} {
		m, _ := filepath.Glob(filepath.Join(icdDir, pattern))
		if len(m) == 0 {
			return fmt.Errorf("no %s in %s", pattern, icdDir)
		}
		f, err := open(m[len(m)-1])
		if err != nil {
			return err
		}
		*dst = f
	}
	st, err := codes.ImportICD10CM(ctx, e.pool, icdFile, opt)
	if err != nil {
		return err
	}
	e.setup.icd, e.setup.icdCodes, e.setup.icdBillable = st.Elapsed, st.Codes, st.Billable
	fmt.Printf("import ICD-10-CM 2026: %d codes (%d billable) in %s\n", st.Codes, st.Billable, st.Elapsed.Round(time.Millisecond))

	hf, err := open(filepath.Join(dir, "hcpcs", "hcpcs_level2_2025.csv"))
	if err != nil {
		return err
	}
	st, err = codes.ImportHCPCS(ctx, e.pool, hf, codes.ImportOptions{Version: "2025", Source: "hcpcs_level2_2025.csv"})
	if err != nil {
		return err
	}
	e.setup.hcpcs, e.setup.hcpcsCodes = st.Elapsed, st.Codes
	fmt.Printf("import HCPCS 2025: %d codes (%d billable) in %s\n", st.Codes, st.Billable, st.Elapsed.Round(time.Millisecond))

	if e.kb, err = kb.Open(ctx, e.pool, e.emb, kb.Options{Logger: log}); err != nil {
		return err
	}
	is, err := e.kb.IndexCodes(ctx, codes.NewStore(e.pool), nil)
	if err != nil {
		return err
	}
	e.setup.indexCodes, e.setup.codeChunks = is.Elapsed, is.Chunks
	fmt.Printf("knowledge base (%s): %d code descriptions indexed in %s\n", e.kb.Mode(), is.Chunks, is.Elapsed.Round(time.Millisecond))

	if o.manualChunks > 0 {
		tmp, err := os.MkdirTemp("", "billybench-coding-manuals-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		nfiles, err := writeManuals(ctx, e.pool, tmp, o.manualChunks)
		if err != nil {
			return fmt.Errorf("synthetic manuals: %w", err)
		}
		ks, err := e.kb.Ingest(ctx, []string{tmp}, nil)
		if err != nil {
			return err
		}
		if ks.Chunks != o.manualChunks || ks.Files != nfiles {
			return fmt.Errorf("ingest stored %d chunks of %d files, want %d of %d", ks.Chunks, ks.Files, o.manualChunks, nfiles)
		}
		e.setup.ingest, e.setup.manualChunks, e.setup.manualFiles = ks.Elapsed, ks.Chunks, ks.Files
		fmt.Printf("knowledge base: %d synthetic manual files, %d chunks ingested in %s\n", ks.Files, ks.Chunks, ks.Elapsed.Round(time.Millisecond))
	}
	e.setup.total = time.Since(started)
	return nil
}

func hasNote(ctx context.Context, adminURL, name, want string) (bool, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return false, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var note *string
	err = conn.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, name).Scan(&note)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return note != nil && *note == want, nil
}
