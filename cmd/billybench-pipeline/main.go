// Command billybench-pipeline is the pipeline benchmark, part 1 (make bench-pipeline). It measures,
// in one run on one machine, with Billy running as its own process (bin/billy serve with its
// pipeline worker, authorization off, a fresh database, a scratch BILLY_DATA_DIR and a queue of its
// own):
//
//   - runs through intake → transcript: for -duration at each client count of -clients, every client
//     loops POST Binary (a synthesised -audio WAV), POST a completed audio Media pointing at it, then
//     polls the run's Task until it completes. The speech-to-text server is a stub in this process
//     that answers OpenAI's verbose_json at once, so what is measured is Billy's own overhead. Per
//     stage: intake (the two POSTs, client clock), queue wait (Task authoredOn → its first
//     in-progress version) and transcription (in-progress → completed), read from the Task's history
//     (meta.lastUpdated of each version). Billy's overhead per run is the run (Binary POST start →
//     Task completed) less the stub's own time; the target is < 300 ms.
//   - upload throughput: POST Binary of -upload bytes streamed from a generator (never held in
//     memory), against writing the same bytes raw to a file on the same file system with the blob
//     store's durability (write, fsync, rename, fsync of the directories); -repeat times each,
//     interleaved, medians. Target: encrypted upload ≥ 50 % of the raw write.
//   - memory: for each size of -mem-sizes, a fresh Billy process takes one upload; its peak RSS
//     (VmHWM after clear_refs) over its RSS before. Target: flat in upload size.
//
// The machine is shared by the load generator, Billy, PostgreSQL and Redis (and, on the project's
// VM, by whoever else is running tests), so numbers move between runs: run long enough and compare
// the ratios taken in one run.
//
//	make bench-pipeline                                            # the full run
//	make bench-pipeline BENCH_ARGS='-markdown'                     # with the table for BENCHMARKS.md
//	go run ./cmd/billybench-pipeline -duration 5s -phases runs     # a quick check of the runs only
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/benchkit"
)

type options struct {
	billy       string
	adminURL    string
	dbName      string
	redisURL    string
	dataDir     string
	duration    time.Duration
	clients     []int
	concurrency int
	audio       time.Duration
	sampleRate  int
	poll        time.Duration
	upload      int64
	repeat      int
	memSizes    []int64
	phases      map[string]bool
	markdown    bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o options
	var clients, upload, memSizes, phases string
	flag.StringVar(&o.billy, "billy", "bin/billy", "path of the billy binary")
	flag.StringVar(&o.adminURL, "db", benchkit.AdminURL(), "PostgreSQL server (any database; the benchmark creates its own)")
	flag.StringVar(&o.dbName, "dbname", "billy_bench_pipeline", "database to (re)create for the run")
	flag.StringVar(&o.redisURL, "redis", benchkit.RedisURL(), "Redis for the Billy process (the run uses a queue of its own)")
	flag.StringVar(&o.dataDir, "data-dir", "", "where to make the scratch BILLY_DATA_DIR (default: the system's temporary directory); the raw writes go to the same file system")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "timed duration of the runs at each client count")
	flag.StringVar(&clients, "clients", "1,4", "comma-separated concurrent client counts for the runs, one timed phase each")
	flag.IntVar(&o.concurrency, "worker-concurrency", 2, "BILLY_WORKER_CONCURRENCY of the Billy process")
	flag.DurationVar(&o.audio, "audio", 10*time.Second, "length of the synthesised WAV of each run")
	flag.IntVar(&o.sampleRate, "rate", 22050, "sample rate of the synthesised WAV (mono, 16 bits); Billy resamples it to 16 kHz")
	flag.DurationVar(&o.poll, "poll", 20*time.Millisecond, "how often a client reads its run's Task while waiting")
	flag.StringVar(&upload, "upload", "256MiB", "size of each timed Binary upload and raw write")
	flag.IntVar(&o.repeat, "repeat", 3, "timed uploads and raw writes (interleaved); medians are reported")
	flag.StringVar(&memSizes, "mem-sizes", "64MiB,256MiB,1GiB", "upload sizes of the memory measure, one fresh Billy process each")
	flag.StringVar(&phases, "phases", "runs,upload,memory", "phases to run: runs, upload, memory")
	flag.BoolVar(&o.markdown, "markdown", false, "also print a Markdown table for BENCHMARKS.md")
	flag.Parse()
	if err := o.parse(clients, upload, memSizes, phases); err != nil {
		fmt.Fprintln(os.Stderr, "billybench-pipeline:", err)
		os.Exit(2)
	}
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "billybench-pipeline:", err)
		os.Exit(1)
	}
}

// parse turns the list and size flags into options and checks them.
func (o *options) parse(clients, upload, memSizes, phases string) error {
	var errs []error
	for s := range strings.SplitSeq(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("-clients: %q is not a positive number", s))
			continue
		}
		o.clients = append(o.clients, n)
	}
	var err error
	if o.upload, err = parseSize(upload); err != nil {
		errs = append(errs, fmt.Errorf("-upload: %w", err))
	}
	for s := range strings.SplitSeq(memSizes, ",") {
		n, err := parseSize(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("-mem-sizes: %w", err))
			continue
		}
		o.memSizes = append(o.memSizes, n)
	}
	sort.Slice(o.memSizes, func(i, j int) bool { return o.memSizes[i] < o.memSizes[j] })
	o.phases = map[string]bool{}
	for s := range strings.SplitSeq(phases, ",") {
		switch s = strings.TrimSpace(s); s {
		case "runs", "upload", "memory":
			o.phases[s] = true
		default:
			errs = append(errs, fmt.Errorf("-phases: unknown phase %q (want runs, upload, memory)", s))
		}
	}
	if o.duration <= 0 || o.concurrency < 1 || o.repeat < 1 || o.poll <= 0 || o.audio < time.Second || o.sampleRate < 8000 {
		errs = append(errs, errors.New("-duration, -worker-concurrency, -repeat and -poll must be positive, -audio at least 1s, -rate at least 8000"))
	}
	return errors.Join(errs...)
}

// parseSize reads a byte count: a number with an optional KiB, MiB or GiB suffix.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a size such as 256MiB", s)
	}
	return n * mult, nil
}

// results is everything a run measured, for the report.
type results struct {
	runs   []runsResult
	upload *uploadResult
	memory []memoryResult
}

func run(ctx context.Context, o options) error {
	if _, err := os.Stat(o.billy); err != nil {
		return fmt.Errorf("%s (run make build first): %w", o.billy, err)
	}
	dbURL, err := benchkit.FreshDatabase(ctx, o.adminURL, o.dbName)
	if err != nil {
		return err
	}
	dataDir, err := os.MkdirTemp(o.dataDir, "billybench-pipeline-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	stub := newSTTStub()
	defer stub.Close()
	cfg := billyConfig{
		bin: o.billy, dbURL: dbURL, redisURL: o.redisURL, dataDir: dataDir, sttURL: stub.URL,
		queue:     fmt.Sprintf("billybench-pipeline-%d", time.Now().UnixNano()),
		masterKey: newMasterKey(), concurrency: o.concurrency, maxBinary: max(o.upload, maxOf(o.memSizes)) + 1<<20,
	}
	defer dropQueue(o.redisURL, cfg.queue)
	fmt.Printf("billy %s, fresh database %s, data dir %s, queue %s, worker concurrency %d\n", o.billy, o.dbName, dataDir, cfg.queue, o.concurrency)

	var res results
	if o.phases["runs"] || o.phases["upload"] {
		b, err := startBilly(ctx, cfg)
		if err != nil {
			return err
		}
		defer b.Stop()
		if o.phases["runs"] {
			wav := synthWAV(o.sampleRate, o.audio)
			fmt.Printf("\nruns: %s WAV (%d Hz mono 16-bit, %d bytes) per run, %s per client count, Task polled every %s\n",
				o.audio, o.sampleRate, len(wav), o.duration, o.poll)
			pool, err := pgxpool.New(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			r, err := newRunner(ctx, b.Base, pool, wav, stub, o)
			if err != nil {
				return err
			}
			if err := r.warmUp(ctx); err != nil {
				return fmt.Errorf("warm-up run: %w", err)
			}
			for _, n := range o.clients {
				rr, err := r.phase(ctx, n, cfg)
				if err != nil {
					return fmt.Errorf("runs with %d clients: %w", n, err)
				}
				res.runs = append(res.runs, rr)
				fmt.Fprintf(os.Stderr, "  %d clients: %s\n", n, rr.summary())
			}
		}
		if o.phases["upload"] {
			fmt.Printf("\nupload: %s %d times, Binary POST and raw write (fsync, rename) interleaved\n", size(o.upload), o.repeat)
			u, err := measureUploads(ctx, b, dataDir, o)
			if err != nil {
				return fmt.Errorf("upload: %w", err)
			}
			res.upload = u
		}
		b.Stop()
	}
	if o.phases["memory"] {
		fmt.Printf("\nmemory: one upload per fresh Billy process, sizes %s\n", sizesText(o.memSizes))
		for _, n := range o.memSizes {
			m, err := measureMemory(ctx, cfg, n)
			if err != nil {
				return fmt.Errorf("memory, %s: %w", size(n), err)
			}
			res.memory = append(res.memory, m)
			fmt.Fprintf(os.Stderr, "  %s: %s\n", size(n), m.summary())
		}
	}
	printResults(res, o)
	return nil
}

func maxOf(ns []int64) int64 {
	var m int64
	for _, n := range ns {
		m = max(m, n)
	}
	return m
}

type latencies = benchkit.Latencies

// size prints a byte count in binary units.
func size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func sizesText(ns []int64) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = size(n)
	}
	return strings.Join(s, ", ")
}
