// Command billybench-coding is the coding benchmark (make bench-coding): pipeline part 2, transcript
// to draft Claim. It measures, in one run on one machine:
//
//   - the built-in coder with the whole code set in memory (issue 13: every billable ICD-10-CM
//     description indexed, the embedded index tables), on one core (GOMAXPROCS=1), on the longest
//     development transcript (pipeline/coder/testdata/45-…, 1,507 words) and on development set B:
//     p50/p95 (target < 150 ms p95 for 1,500 words), and the heap the code sets and the index hold;
//   - the built-in coder as cmd/billy builds it (coder.NewBuiltin with the knowledge base as its
//     retriever), in process, on the same long transcript: p50/p95 over -coder-runs runs;
//   - knowledge-base retrieval (kb.Search, k = 10, in process) over the full ICD-10-CM set and HCPCS
//     plus -manual-chunks synthetic manual chunks, with queries that are the sentences of the
//     development transcripts: p50/p95 (target p95 < 20 ms), against a raw scan of the same vectors
//     (the floor of an exact search: the same dot products and nothing else);
//   - recall@10 of pgvector's HNSW index against the exact search over the same chunks (target
//     ≥ 0.95), unfiltered and with the two filters Billy uses (manual passages; ICD-10-CM codes, the
//     built-in coder's), at kb's own ef_search and at the -ef values. This PostgreSQL has no
//     pgvector, so the chunks are copied into PGlite (real PostgreSQL 18 and pgvector 0.8 compiled to
//     WebAssembly, from npm, as pipeline/kb/pgvector_test.go runs it), where kb.Open builds the
//     vector table and HNSW index; the exact reference is kb's exact index over the same PGlite
//     rows. All 92,000 chunks take about 5 minutes (the HNSW build in WebAssembly is most of it);
//     -pgvector-chunks takes an evenly spread subset, -pgvector=false skips the measure, and it is
//     skipped with a note when node or npm is missing;
//   - transcript → Claim end to end through Billy (bin/billy serve with its worker, authorization
//     off): for -n transcripts per client count (-clients), cycling the development set, POST a
//     DocumentReference (text/plain inline) and follow its coding Task to completed; per-stage times
//     come from the Task's history. The coder is the built-in one, so there is no model time: it is
//     all Billy's own. Against it, the raw PostgreSQL limit: the same rows (same sizes, the run's
//     resources and index rows read back from the database) written by the run's four transactions
//     as single round-trip batches into scratch copies of the tables (target < 1 s, p95). The
//     first run after Billy starts, which builds the worker's coder, is reported apart.
//
// Each target is judged on the p95 where it is a time. The ratios are raw ÷ Billy at p50: the
// share of Billy's time the raw limit accounts for.
//
// The setup imports ICD-10-CM (icd10cm-codes-2026.txt with the category, section and chapter CSVs
// next to it) and HCPCS Level II through pipeline/codes into a fresh database (-dbname), indexes the
// codes into the knowledge base (pipeline/kb IndexCodes, built-in embedder) and ingests the
// synthetic manuals through kb.Ingest, as billy codes import and billy kb ingest do. -reuse skips
// the setup when the database holds a complete one.
//
//	make bench-coding                                             # the full run
//	make bench-coding BENCH_ARGS='-reuse -markdown'               # again, table for BENCHMARKS.md
//	go run ./cmd/billybench-coding -reuse -n 50 -pgvector=false   # a quick check
//	go run ./cmd/billybench-coding -reuse -only coder -markdown    # the coder alone: speed on one core, memory
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iambilly/billy/internal/benchkit"
)

type options struct {
	billy             string
	adminURL          string
	dbName            string
	redisURL          string
	manualChunks      int
	reuse             bool
	coderRuns         int
	searches          int
	pgvector          bool
	pgvectorChunks    int
	recallQueries     int
	efSweep           []int
	runs              int
	clients           []int
	workerConcurrency int
	poll              time.Duration
	profile           string
	markdown          bool
	only              string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o options
	var clients string
	flag.StringVar(&o.billy, "billy", "bin/billy", "path of the billy binary")
	flag.StringVar(&o.adminURL, "db", benchkit.AdminURL(), "PostgreSQL server (any database; the benchmark creates its own)")
	flag.StringVar(&o.dbName, "dbname", "billy_bench_coding", "database to (re)create for the run")
	flag.StringVar(&o.redisURL, "redis", benchkit.RedisURL(), "Redis for the Billy process (the run uses a queue of its own)")
	flag.IntVar(&o.manualChunks, "manual-chunks", 10_000, "synthetic manual chunks to ingest into the knowledge base")
	flag.BoolVar(&o.reuse, "reuse", false, "skip the setup when the database already holds a complete one of the same size")
	flag.IntVar(&o.coderRuns, "coder-runs", 300, "timed runs of the built-in coder on the longest transcript")
	flag.IntVar(&o.searches, "searches", 2000, "timed knowledge-base queries (each one searched twice, with and without the coder's filter, and scanned raw)")
	flag.BoolVar(&o.pgvector, "pgvector", true, "measure recall@10 of pgvector against exact search (in PGlite, from npm)")
	flag.IntVar(&o.pgvectorChunks, "pgvector-chunks", 0, "chunks to load into PGlite for the recall measure (0: all of them)")
	flag.IntVar(&o.recallQueries, "recall-queries", 300, "queries of the recall measure")
	var ef string
	flag.StringVar(&ef, "ef", "400,1000", "also measure recall with these hnsw.ef_search values (comma-separated; empty for none)")
	flag.IntVar(&o.runs, "n", 300, "transcripts coded end to end at each client count")
	flag.StringVar(&clients, "clients", "1,4", "concurrent clients of the end-to-end runs, a comma-separated list")
	flag.IntVar(&o.workerConcurrency, "worker-concurrency", 2, "BILLY_WORKER_CONCURRENCY of the Billy process")
	flag.DurationVar(&o.poll, "poll", 10*time.Millisecond, "how often a client reads its run's Task")
	flag.StringVar(&o.profile, "profile", "", "write a CPU profile of Billy during the last end-to-end phase to this file")
	flag.BoolVar(&o.markdown, "markdown", false, "also print a Markdown block for BENCHMARKS.md")
	flag.StringVar(&o.only, "only", "", `"coder": measure only the built-in coder (whole code set, one core, memory) and stop`)
	flag.Parse()
	if err := o.parseLists(clients, ef); err != nil {
		fmt.Fprintln(os.Stderr, "billybench-coding:", err)
		os.Exit(2)
	}
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "billybench-coding:", err)
		os.Exit(1)
	}
}

func (o *options) parseLists(clients, ef string) error {
	for f := range strings.SplitSeq(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-clients: %q is not a positive number", f)
		}
		o.clients = append(o.clients, n)
	}
	for f := range strings.SplitSeq(ef, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 10 || n > 1000 {
			return fmt.Errorf("-ef: %q is not a number from 10 to 1000", f)
		}
		o.efSweep = append(o.efSweep, n)
	}
	if len(o.clients) == 0 {
		return errors.New("-clients: give at least one client count")
	}
	if o.only != "" && o.only != "coder" {
		return fmt.Errorf("-only: %q is not \"coder\"", o.only)
	}
	if o.manualChunks < 0 || o.coderRuns < 1 || o.searches < 1 || o.recallQueries < 1 || o.runs < 1 || o.workerConcurrency < 1 || o.poll <= 0 {
		return errors.New("-manual-chunks must not be negative; -coder-runs, -searches, -recall-queries, -n, -worker-concurrency and -poll must be positive")
	}
	return nil
}

func run(ctx context.Context, o options) error {
	if _, err := os.Stat(o.billy); err != nil {
		return fmt.Errorf("%s (run make build first): %w", o.billy, err)
	}
	cases, err := loadCases()
	if err != nil {
		return err
	}
	env, err := setUp(ctx, o)
	if err != nil {
		return err
	}
	defer env.close()
	res := results{setup: env.setup, vectors: env.kb.Len(), mode: string(env.kb.Mode())}

	fmt.Println("\nbuilt-in coder, whole code set in memory, one core:")
	if res.whole, err = measureWholeSet(ctx, env, cases, o); err != nil {
		return fmt.Errorf("coder: %w", err)
	}
	if o.only == "coder" {
		printCoderOnly(res.whole, o)
		return nil
	}

	fmt.Println("\nbuilt-in coder, in process, with the knowledge base as its retriever:")
	if res.coder, err = measureCoder(ctx, env, cases, o); err != nil {
		return fmt.Errorf("coder: %w", err)
	}
	env.coderTimes = res.coder.perCase
	fmt.Println("\nknowledge-base retrieval, in process:")
	if res.search, err = measureSearch(ctx, env, cases, o); err != nil {
		return fmt.Errorf("retrieval: %w", err)
	}
	if o.pgvector {
		fmt.Println("\nrecall@10, pgvector (PGlite) against exact search over the same chunks:")
		r, err := measureRecall(ctx, env, cases, o)
		switch {
		case errors.Is(err, errSkipped):
			fmt.Println("  skipped:", err)
			res.recallSkipped = err.Error()
		case err != nil:
			return fmt.Errorf("recall: %w", err)
		default:
			res.recall = r
		}
	} else {
		res.recallSkipped = "-pgvector=false"
	}
	fmt.Println("\ntranscript → Claim, end to end through Billy:")
	if res.e2e, err = measureEndToEnd(ctx, env, cases, o); err != nil {
		return fmt.Errorf("end to end: %w", err)
	}
	printResults(res, o)
	return nil
}
