// Command billybench-search is the search benchmark (make bench-search). It measures, in one run on
// one machine, with Billy running as its own process (bin/billy serve, authorization off):
//
//   - the ingest rate with search indexing on: about a million resources (-n) posted as transaction
//     Bundles on 4 connections into a fresh database, reported for the first 100,000 resources
//     (a nearly empty database) and overall. The target (≥ 70 % of the foundation's rate)
//     is checked against -foundation-rate, measure (b) of make bench in BENCHMARKS.md, and, when
//     -baseline-billy names a build without search indexing, also like for like: the same loader
//     and data through that build into a scratch database, first 100,000 resources;
//   - then, after VACUUM ANALYZE and CHECKPOINT, throughput and p50/p95/p99 latency at 8 clients
//     (-clients), -duration each, of the searches: token, date range, string prefix,
//     reference + date, chained, _has, _include, _revinclude, _sort=-date and _summary=count, each
//     against its target where the issue sets one.
//
// The data are the 47 Synthea R4 Bundles (10,157 resources) copied K = ceil(n / 10,157) times. Each
// copy gets fresh urn:uuid ids, every Patient identifier gets a "-<copy>" suffix and every fourth
// copy of a patient a double-barrelled family name (see corpus.write), so that identifier searches
// match one patient and name searches have realistic selectivity. The values searched for (codes,
// months, name prefixes, patient ids ...) are read from the loaded database, and each kind rotates
// over up to 50 of them.
//
// Every search is sent with Prefer: handling=strict, first once per value (the probe: the answer
// must be a searchset Bundle; it also gives the entries and total columns), then timed. A kind
// whose probe fails, or whose timed requests fail more than 1 % of the time, is reported with the
// server's message and makes the command exit non-zero.
//
// Loading a million resources takes minutes (4 on the project's 2-core VM with the foundation
// build). -reuse skips the load when the database holds a complete load (marked by a comment on
// the database) of at least n resources, to run the searches again. It warns when bin/billy is
// not the binary that loaded the data: resources keep the index entries their build wrote.
//
//	make bench-search                                       # the full run
//	make bench-search BENCH_ARGS='-reuse -markdown'         # searches only, table for BENCHMARKS.md
//	go run ./cmd/billybench-search -n 20000 -duration 3s    # a quick check
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/benchkit"
)

type options struct {
	billy          string
	adminURL       string
	dbName         string
	redisURL       string
	resources      int
	writers        int
	clients        int
	duration       time.Duration
	reuse          bool
	only           string
	foundationRate float64
	baselineBilly  string
	markdown       bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o options
	flag.StringVar(&o.billy, "billy", "bin/billy", "path of the billy binary")
	flag.StringVar(&o.adminURL, "db", benchkit.AdminURL(), "PostgreSQL server (any database; the benchmark creates its own)")
	flag.StringVar(&o.dbName, "dbname", "billy_bench_search", "database to (re)create for the run")
	flag.StringVar(&o.redisURL, "redis", benchkit.RedisURL(), "Redis for the Billy process")
	flag.IntVar(&o.resources, "n", 1_000_000, "resources to load (rounded up to whole copies of the Synthea data)")
	flag.IntVar(&o.writers, "writers", 4, "concurrent writers during the load")
	flag.IntVar(&o.clients, "clients", 8, "concurrent search clients")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "timed duration of each kind of search")
	flag.BoolVar(&o.reuse, "reuse", false, "skip the load when the database already holds at least n resources")
	flag.StringVar(&o.only, "only", "", "run only the kinds of search whose names contain one of these comma-separated words")
	flag.Float64Var(&o.foundationRate, "foundation-rate", 9223, "the foundation's create rate (make bench, (b)) in resources/s, for the ingest target")
	flag.StringVar(&o.baselineBilly, "baseline-billy", "", "a billy binary without search indexing (the foundation's): when given, the first 100,000 resources are also loaded with it into a scratch database, for the ingest target")
	flag.BoolVar(&o.markdown, "markdown", false, "also print a Markdown table for BENCHMARKS.md")
	flag.Parse()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "billybench-search:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if o.resources < 1 || o.writers < 1 || o.clients < 1 || o.duration <= 0 {
		return errors.New("-n, -writers, -clients and -duration must be positive")
	}
	binary, err := fileHash(o.billy)
	if err != nil {
		return fmt.Errorf("%s (run make build first): %w", o.billy, err)
	}
	dbURL, reused, err := prepareDatabase(ctx, o, binary)
	if err != nil {
		return err
	}
	var ing *ingestResult
	var baseline float64
	var c *corpus
	copies := 0
	if !reused {
		if c, err = loadCorpus(); err != nil {
			return err
		}
		copies = (o.resources + c.resources - 1) / c.resources
		if o.baselineBilly != "" {
			if baseline, err = measureBaseline(ctx, o, c); err != nil {
				return fmt.Errorf("baseline: %w", err)
			}
		}
	}
	base, stopBilly, err := startBilly(ctx, o.billy, o.redisURL, dbURL)
	if err != nil {
		return err
	}
	defer stopBilly()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	if !reused {
		fmt.Printf("load: %d copies of the %d Synthea Bundles (%d resources each copy) = %d resources, %d writers, into fresh database %s\n",
			copies, len(c.bundles), c.resources, copies*c.resources, o.writers, o.dbName)
		r, err := ingest(ctx, base, c, copies, o)
		if err != nil {
			return fmt.Errorf("load: %w", err)
		}
		ing = &r
		printIngest(r, baseline, o)
		// Settle the bulk load (statistics, visibility map, dirty buffers) so that autovacuum and
		// checkpoints do not land in the middle of the timed searches.
		t0 := time.Now()
		for _, sql := range []string{"VACUUM ANALYZE", "CHECKPOINT"} {
			if _, err := pool.Exec(ctx, sql); err != nil {
				return fmt.Errorf("%s: %w", sql, err)
			}
		}
		fmt.Printf("VACUUM ANALYZE and CHECKPOINT: %s\n", time.Since(t0).Round(time.Second))
		if err := markLoaded(ctx, pool, o.dbName, r.resources, binary); err != nil {
			return err
		}
	}

	p, err := pickValues(ctx, pool)
	if err != nil {
		return err
	}
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	fmt.Printf("\nsearch: %d clients, %s per kind, each rotating over up to 50 values; _count=50 unless counting\n", o.clients, o.duration)
	var results []kindResult
	for _, k := range queryKinds(p) {
		if !selected(k.name, o.only) {
			continue
		}
		r := runKind(ctx, u, k, o)
		if err := ctx.Err(); err != nil {
			return err
		}
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "  %-28s %s\n", k.name, summary(r))
	}
	printResults(results, ing, baseline, o)

	var failed []string
	for _, r := range results {
		if r.err != nil {
			failed = append(failed, r.kind.name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d kinds of search failed: %s", len(failed), len(results), strings.Join(failed, ", "))
	}
	return nil
}

// measureBaseline loads the first 100,000 resources (or n, when fewer) with the baseline binary
// into a scratch database, which it drops afterwards, and returns the rate: the same loader, data
// and empty-database regime as the first window of the real load, without search indexing.
func measureBaseline(ctx context.Context, o options, c *corpus) (float64, error) {
	name := o.dbName + "_baseline"
	dbURL, err := benchkit.FreshDatabase(ctx, o.adminURL, name)
	if err != nil {
		return 0, err
	}
	defer dropDatabase(context.WithoutCancel(ctx), o.adminURL, name)
	base, stop, err := startBilly(ctx, o.baselineBilly, o.redisURL, dbURL)
	if err != nil {
		return 0, err
	}
	defer stop()
	copies := (min(o.resources, 100_000) + c.resources - 1) / c.resources
	r, err := ingest(ctx, base, c, copies, o)
	if err != nil {
		return 0, err
	}
	fmt.Printf("baseline (%s): %d resources, %d writers, into a scratch database: %.0f resources/s\n",
		o.baselineBilly, r.resources, o.writers, r.rate())
	return r.rate(), nil
}

func selected(name, only string) bool {
	if only == "" {
		return true
	}
	for w := range strings.SplitSeq(only, ",") {
		if w = strings.TrimSpace(w); w != "" && strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// loadNote is the comment a complete load leaves on its database, so that -reuse can tell a
// complete load from an interrupted one, and which billy binary indexed it.
const loadNote = "billybench-search: %d resources loaded by billy sha256:%s on %s"

// prepareDatabase returns the benchmark database's URL, and whether it is reused: with -reuse,
// when a complete load of at least n resources is there. Otherwise it recreates it empty.
func prepareDatabase(ctx context.Context, o options, binary string) (string, bool, error) {
	if o.reuse {
		conn, err := pgx.Connect(ctx, o.adminURL)
		if err != nil {
			return "", false, fmt.Errorf("connect to PostgreSQL: %w", err)
		}
		var note *string
		err = conn.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, o.dbName).Scan(&note)
		conn.Close(ctx)
		var n int
		var hash string
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			fmt.Printf("-reuse: there is no database %s: loading\n", o.dbName)
		case err != nil:
			return "", false, err
		case note == nil:
			fmt.Printf("-reuse: database %s holds no complete load: loading afresh\n", o.dbName)
		default:
			if _, err := fmt.Sscanf(*note, "billybench-search: %d resources loaded by billy sha256:%s on", &n, &hash); err != nil {
				fmt.Printf("-reuse: database %s holds no complete load: loading afresh\n", o.dbName)
				break
			}
			if n < o.resources {
				fmt.Printf("-reuse: database %s holds %d resources, fewer than %d: loading afresh\n", o.dbName, n, o.resources)
				break
			}
			fmt.Printf("reusing database %s (-reuse; no ingest measure): %s\n", o.dbName, *note)
			if hash != binary {
				fmt.Printf("WARNING: %s is not the binary that loaded it: resources keep the index entries that build wrote\n", o.billy)
			}
			return dbURLFor(o.adminURL, o.dbName)
		}
	}
	dbURL, err := benchkit.FreshDatabase(ctx, o.adminURL, o.dbName)
	return dbURL, false, err
}

func dbURLFor(adminURL, name string) (string, bool, error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", false, err
	}
	u.Path = "/" + name
	return u.String(), true, nil
}

// markLoaded leaves loadNote on the database.
func markLoaded(ctx context.Context, pool *pgxpool.Pool, name string, resources int, binary string) error {
	note := fmt.Sprintf(loadNote, resources, binary, time.Now().UTC().Format(time.RFC3339))
	// COMMENT takes no parameters; the note holds only digits, hex and a timestamp.
	_, err := pool.Exec(ctx, "COMMENT ON DATABASE "+pgx.Identifier{name}.Sanitize()+" IS '"+note+"'")
	return err
}

func dropDatabase(ctx context.Context, adminURL, name string) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// fileHash returns the hex SHA-256 of a file.
func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// startBilly runs bin/billy serve against the database (it migrates it) and returns the FHIR base
// URL.
func startBilly(ctx context.Context, bin, redisURL, dbURL string) (string, func(), error) {
	p, err := benchkit.Serve(ctx, bin, []string{"--worker=false"}, []string{"BILLY_DATABASE_URL=" + dbURL,
		"BILLY_REDIS_URL=" + redisURL, "BILLY_LOG_LEVEL=warn", "BILLY_MAX_BODY_BYTES=67108864"})
	if err != nil {
		return "", nil, err
	}
	return p.Base, p.Stop, nil
}

// printIngest reports the load. Against -baseline-billy the first window compares like with like;
// against the foundation's (b) it does not quite (make bench creates 30,000 resources in Bundles of
// 100 unrelated ones), but it is the number the target names.
func printIngest(r ingestResult, baseline float64, o options) {
	fmt.Printf("ingest, indexing on, transaction Bundles of one patient's history, %d writers:\n", o.writers)
	fmt.Printf("  first %d resources (empty database): %8.0f resources/s", r.early, r.earlyRate())
	if baseline > 0 {
		ratio := r.earlyRate() / baseline
		fmt.Printf("   = %.2f × baseline %.0f/s   target ≥ 0.70 %s", ratio, baseline, benchkit.Mark(ratio >= 0.70))
	}
	ratio := r.rate() / o.foundationRate
	fmt.Printf("\n  all %d resources in %s:          %8.0f resources/s   = %.2f × foundation (b) %.0f/s   target ≥ 0.70 %s\n",
		r.resources, r.elapsed.Round(time.Second), r.rate(), ratio, o.foundationRate, benchkit.Mark(ratio >= 0.70))
}

func target(r kindResult) string {
	if r.kind.p95 == 0 {
		return ""
	}
	t := "p95 < " + benchkit.Ms(r.kind.p95)
	if r.err != nil {
		return t + " ?"
	}
	return t + " " + benchkit.Mark(r.met())
}

func totalText(r kindResult) string {
	if r.total < 0 {
		return ""
	}
	return fmt.Sprint(r.total)
}

// summary is the one-line progress report of a kind.
func summary(r kindResult) string {
	if r.err != nil {
		return "FAILED: " + r.err.Error()
	}
	return fmt.Sprintf("%.0f req/s, p95 %s", r.rate, benchkit.Ms(r.lat.P(95)))
}

func printResults(results []kindResult, ing *ingestResult, baseline float64, o options) {
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	// Names are padded by hand: tabwriter aligns every column one way.
	fmt.Fprintf(tw, "%-28s\treq/s\tp50\tp95\tp99\tentries\ttotal\terrors\ttarget\t\n", "search")
	for _, r := range results {
		if r.err != nil && len(r.lat) == 0 {
			fmt.Fprintf(tw, "%-28s\t—\t—\t—\t—\t\t\t%d/%d\t%s\t\n", r.kind.name, r.errors, r.requests, target(r))
			continue
		}
		fmt.Fprintf(tw, "%-28s\t%.0f\t%s\t%s\t%s\t%d\t%s\t%d/%d\t%s\t\n", r.kind.name, r.rate, benchkit.Ms(r.lat.P(50)), benchkit.Ms(r.lat.P(95)), benchkit.Ms(r.lat.P(99)),
			r.entries, totalText(r), r.errors, r.requests, target(r))
	}
	tw.Flush()
	fmt.Println("\nentries: median entries per page (matches and includes); total: median Bundle.total, where given")
	for _, r := range results {
		fmt.Printf("  %-28s GET %s\n", r.kind.name, readable(r.kind.paths[0]))
	}
	for _, r := range results {
		if r.err != nil {
			fmt.Printf("FAILED %s: %v\n", r.kind.name, r.err)
		}
	}
	if !o.markdown {
		return
	}
	fmt.Printf("\n| measure | example | rate | p50 | p95 | p99 | entries | total | target |\n|---|---|---|---|---|---|---|---|---|\n")
	if ing != nil {
		vsBaseline := ""
		if baseline > 0 {
			ratio := ing.earlyRate() / baseline
			vsBaseline = fmt.Sprintf("%.2f × baseline %.0f/s; ≥ 0.70 %s", ratio, baseline, benchkit.Mark(ratio >= 0.70))
		}
		fmt.Printf("| ingest, first %d resources (%d writers) | transaction Bundles, one patient each | %.0f resources/s | | | | | | %s |\n",
			ing.early, o.writers, ing.earlyRate(), vsBaseline)
		ratio := ing.rate() / o.foundationRate
		fmt.Printf("| ingest, all %d resources | | **%.0f resources/s** | | | | | | %.2f × foundation %.0f/s; ≥ 0.70 %s |\n",
			ing.resources, ing.rate(), ratio, o.foundationRate, benchkit.Mark(ratio >= 0.70))
	}
	for _, r := range results {
		example := "`" + strings.ReplaceAll(readable(r.kind.paths[0]), "|", `\|`) + "`"
		if r.err != nil {
			fmt.Printf("| %s (%d clients) | %s | failed | | | | | | %s |\n", r.kind.name, o.clients, example, target(r))
			continue
		}
		fmt.Printf("| %s (%d clients) | %s | %.0f req/s | %s | **%s** | %s | %d | %s | %s |\n", r.kind.name, o.clients, example,
			r.rate, benchkit.Ms(r.lat.P(50)), benchkit.Ms(r.lat.P(95)), benchkit.Ms(r.lat.P(99)), r.entries, totalText(r), target(r))
	}
}
