// Command billybench is the foundation's load benchmark (make bench). On a fresh database it measures,
// in one run and on one machine:
//
//	(a) raw pgx INSERT rate of resource JSON into a plain jsonb table (100-row batches)
//	(b) Billy's create rate through transaction Bundles of 100 resources, with full validation
//	(c) raw pgx SELECT-by-primary-key rate from that jsonb table
//	(d) Billy's read rate and latency percentiles
//
// and prints the ratios b/a and d/c. Billy runs as a separate process (bin/billy serve), as in
// production; the load generator shares the machine with it and with PostgreSQL.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/benchkit"
	"github.com/iambilly/billy/internal/shareddata"
)

type options struct {
	billy       string
	adminURL    string
	dbName      string
	redisURL    string
	resources   int
	bundleSize  int
	writers     int
	readers     int
	readFor     time.Duration
	markdown    bool
	keepRunning bool
	audit       bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o options
	flag.StringVar(&o.billy, "billy", "bin/billy", "path of the billy binary")
	flag.StringVar(&o.adminURL, "db", benchkit.AdminURL(), "PostgreSQL server (any database; the benchmark creates its own)")
	flag.StringVar(&o.dbName, "dbname", "billy_bench", "database to (re)create for the run")
	flag.StringVar(&o.redisURL, "redis", benchkit.RedisURL(), "Redis for the Billy process")
	flag.IntVar(&o.resources, "n", 30000, "resources to create")
	flag.IntVar(&o.bundleSize, "bundle", 100, "resources per transaction Bundle")
	flag.IntVar(&o.writers, "writers", 4, "concurrent writers (raw and Billy)")
	flag.IntVar(&o.readers, "readers", 16, "concurrent readers (raw and Billy)")
	flag.DurationVar(&o.readFor, "read-for", 10*time.Second, "duration of each read phase")
	flag.BoolVar(&o.markdown, "markdown", false, "also print a Markdown table for BENCHMARKS.md")
	flag.BoolVar(&o.audit, "audit", false, "also measure reads with the audit trail off (a second Billy, BILLY_AUDIT=off) against on, alternating, and print the ratio")
	flag.Parse()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "billybench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	docs, err := loadResources(o.resources)
	if err != nil {
		return err
	}
	var bytesTotal int
	for _, d := range docs {
		bytesTotal += len(d.json)
	}
	fmt.Printf("workload: %d Synthea resources (mixed types, avg %d bytes), bundles of %d, %d writers, %d readers\n",
		len(docs), bytesTotal/len(docs), o.bundleSize, o.writers, o.readers)

	dbURL, err := benchkit.FreshDatabase(ctx, o.adminURL, o.dbName)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	// (a) raw inserts.
	if _, err := pool.Exec(ctx, `CREATE TABLE raw_resource (id text PRIMARY KEY, doc jsonb NOT NULL)`); err != nil {
		return err
	}
	a, err := rawInsert(ctx, pool, docs, o)
	if err != nil {
		return fmt.Errorf("raw insert: %w", err)
	}
	fmt.Printf("(a) raw pgx INSERT jsonb, %d-row batches:      %9.0f rows/s\n", o.bundleSize, a)

	// (b) Billy creates through transaction Bundles.
	base, stopBilly, err := startBilly(ctx, o, dbURL)
	if err != nil {
		return err
	}
	defer stopBilly()
	b, refs, err := billyCreate(ctx, base, docs, o)
	if err != nil {
		return fmt.Errorf("billy create: %w", err)
	}
	fmt.Printf("(b) Billy create, transaction Bundles of %d:   %9.0f resources/s   b/a = %.3f\n", o.bundleSize, b, b/a)

	// Both tables were just bulk-loaded: settle them (statistics, visibility map, dirty buffers)
	// so autovacuum and checkpoints do not land in the middle of a read phase.
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return err
	}

	// (c) raw primary-key reads.
	c, cLat, err := rawRead(ctx, pool, docs, o)
	if err != nil {
		return fmt.Errorf("raw read: %w", err)
	}
	fmt.Printf("(c) raw pgx SELECT by primary key, %d clients: %9.0f reads/s     p50 %s p99 %s\n", o.readers, c, benchkit.Ms(cLat.P(50)), benchkit.Ms(cLat.P(99)))

	// (d) Billy reads.
	d, dLat, err := billyRead(ctx, base, refs, o)
	if err != nil {
		return fmt.Errorf("billy read: %w", err)
	}
	fmt.Printf("(d) Billy read, %d clients:                    %9.0f reads/s     p50 %s p99 %s   d/c = %.3f\n", o.readers, d, benchkit.Ms(dLat.P(50)), benchkit.Ms(dLat.P(99)), d/c)
	var au *auditResult
	if o.audit {
		if au, err = measureAudit(ctx, o, dbURL, base, refs); err != nil {
			return err
		}
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&au.rows); err != nil {
			return err
		}
		fmt.Printf("(e) Billy read, audit trail on, %d clients:     %9.0f reads/s     p50 %s p99 %s\n", o.readers, au.on, benchkit.Ms(au.onLat.P(50)), benchkit.Ms(au.onLat.P(99)))
		fmt.Printf("(f) Billy read, audit trail off, %d clients:    %9.0f reads/s     p50 %s p99 %s   e/f = %.3f (%d AuditEvents in the trail)\n",
			o.readers, au.off, benchkit.Ms(au.offLat.P(50)), benchkit.Ms(au.offLat.P(99)), au.on/au.off, au.rows)
	}
	if o.markdown {
		fmt.Printf("\n| measure | rate | p50 | p99 | ratio |\n|---|---|---|---|---|\n")
		fmt.Printf("| (a) raw pgx INSERT jsonb (%d-row batches, %d writers) | %.0f rows/s | | | |\n", o.bundleSize, o.writers, a)
		fmt.Printf("| (b) Billy create via transaction Bundles of %d (%d writers) | %.0f resources/s | | | b/a = %.3f |\n", o.bundleSize, o.writers, b, b/a)
		fmt.Printf("| (c) raw pgx SELECT by PK (%d clients) | %.0f reads/s | %s | %s | |\n", o.readers, c, benchkit.Ms(cLat.P(50)), benchkit.Ms(cLat.P(99)))
		fmt.Printf("| (d) Billy read (%d clients) | %.0f reads/s | %s | %s | d/c = %.3f |\n", o.readers, d, benchkit.Ms(dLat.P(50)), benchkit.Ms(dLat.P(99)), d/c)
		if au != nil {
			fmt.Printf("| (e) Billy read, audit trail on (%d clients) | %.0f reads/s | %s | %s | |\n", o.readers, au.on, benchkit.Ms(au.onLat.P(50)), benchkit.Ms(au.onLat.P(99)))
			fmt.Printf("| (f) Billy read, audit trail off (%d clients) | %.0f reads/s | %s | %s | e/f = %.3f |\n", o.readers, au.off, benchkit.Ms(au.offLat.P(50)), benchkit.Ms(au.offLat.P(99)), au.on/au.off)
		}
	}
	return nil
}

// doc is one resource to write: its type and JSON (without id).
type doc struct {
	typ  string
	json []byte
}

// loadResources takes resources from the Synthea bundles, round-robin, n in all.
func loadResources(n int) ([]doc, error) {
	files, err := shareddata.SyntheaBundles()
	if err != nil {
		return nil, err
	}
	var all []doc
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var b struct {
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, e := range b.Entry {
			var head struct {
				ResourceType string `json:"resourceType"`
			}
			_ = json.Unmarshal(e.Resource, &head)
			all = append(all, doc{typ: head.ResourceType, json: e.Resource})
		}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	out := make([]doc, n)
	for i := range out {
		out[i] = all[i%len(all)]
	}
	return out, nil
}

// parallel runs fn on workers goroutines over job indexes [0, jobs) and returns the elapsed time.
func parallel(workers, jobs int, fn func(job int) error) (time.Duration, error) {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(next.Add(1) - 1)
				if j >= jobs {
					return
				}
				if err := fn(j); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), firstErr
}

func rawInsert(ctx context.Context, pool *pgxpool.Pool, docs []doc, o options) (float64, error) {
	batches := (len(docs) + o.bundleSize - 1) / o.bundleSize
	elapsed, err := parallel(o.writers, batches, func(j int) error {
		lo, hi := j*o.bundleSize, min((j+1)*o.bundleSize, len(docs))
		ids := make([]string, 0, hi-lo)
		bodies := make([]string, 0, hi-lo)
		for k := lo; k < hi; k++ {
			ids = append(ids, fmt.Sprintf("r%d", k))
			bodies = append(bodies, string(docs[k].json))
		}
		_, err := pool.Exec(ctx, `INSERT INTO raw_resource (id, doc) SELECT * FROM unnest($1::text[], $2::jsonb[])`, ids, bodies)
		return err
	})
	if err != nil {
		return 0, err
	}
	return float64(len(docs)) / elapsed.Seconds(), nil
}

func startBilly(ctx context.Context, o options, dbURL string) (string, func(), error) {
	p, err := benchkit.Serve(ctx, o.billy, []string{"--worker=false"}, []string{"BILLY_DATABASE_URL=" + dbURL,
		"BILLY_REDIS_URL=" + o.redisURL, "BILLY_LOG_LEVEL=warn", "BILLY_MAX_BODY_BYTES=67108864"})
	if err != nil {
		return "", nil, err
	}
	return p.Base, p.Stop, nil
}

func httpClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}, Timeout: 5 * time.Minute}
}

func billyCreate(ctx context.Context, base string, docs []doc, o options) (float64, []string, error) {
	client := httpClient(o.writers)
	batches := (len(docs) + o.bundleSize - 1) / o.bundleSize
	refs := make([]string, len(docs))
	elapsed, err := parallel(o.writers, batches, func(j int) error {
		lo, hi := j*o.bundleSize, min((j+1)*o.bundleSize, len(docs))
		var buf bytes.Buffer
		buf.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
		for k := lo; k < hi; k++ {
			if k > lo {
				buf.WriteByte(',')
			}
			fmt.Fprintf(&buf, `{"resource":%s,"request":{"method":"POST","url":"%s"}}`, docs[k].json, docs[k].typ)
		}
		buf.WriteString(`]}`)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base, &buf)
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("Prefer", "return=minimal")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d: %.500s", resp.StatusCode, body)
		}
		var out struct {
			Entry []struct {
				Response struct {
					Location string `json:"location"`
				} `json:"response"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			return err
		}
		for i, e := range out.Entry {
			loc := strings.Split(e.Response.Location, "/_history/")[0]
			refs[lo+i] = loc
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return float64(len(docs)) / elapsed.Seconds(), refs, nil
}

type latencies = benchkit.Latencies

// timed runs fn on readers goroutines for the duration and returns the rate and latencies.
func timed(ctx context.Context, readers int, d time.Duration, fn func(r *rand.Rand) error) (float64, latencies, error) {
	var mu sync.Mutex
	var all latencies
	var firstErr error
	var wg sync.WaitGroup
	stopAt := time.Now().Add(d)
	start := time.Now()
	for w := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			var mine latencies
			for time.Now().Before(stopAt) && ctx.Err() == nil {
				t0 := time.Now()
				if err := fn(r); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(len(all)) / time.Since(start).Seconds(), all, firstErr
}

func rawRead(ctx context.Context, pool *pgxpool.Pool, docs []doc, o options) (float64, latencies, error) {
	return timed(ctx, o.readers, o.readFor, func(r *rand.Rand) error {
		var b []byte
		return pool.QueryRow(ctx, `SELECT doc FROM raw_resource WHERE id = $1`, fmt.Sprintf("r%d", r.IntN(len(docs)))).Scan(&b)
	})
}

// billyRead drives reads with a minimal HTTP/1.1 keep-alive client (one connection per reader), as
// wrk would: the measure is Billy's cost, not net/http's client's, just as (c) measures PostgreSQL
// through pgx's lean wire client.
func billyRead(ctx context.Context, base string, refs []string, o options) (float64, latencies, error) {
	u, err := url.Parse(base)
	if err != nil {
		return 0, nil, err
	}
	conns := make(chan *rawHTTP, o.readers)
	for range o.readers {
		c, err := dialRaw(u.Host)
		if err != nil {
			return 0, nil, err
		}
		defer c.conn.Close()
		conns <- c
	}
	return timed(ctx, o.readers, o.readFor, func(r *rand.Rand) error {
		c := <-conns
		defer func() { conns <- c }()
		status, err := c.get(u.Path + "/" + refs[r.IntN(len(refs))])
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("read status %d", status)
		}
		return nil
	})
}

// rawHTTP is a keep-alive HTTP/1.1 connection that sends GETs and reads Content-Length bodies.
type rawHTTP struct {
	conn net.Conn
	br   *bufio.Reader
	host string
	req  []byte
}

func dialRaw(host string) (*rawHTTP, error) {
	c, err := net.Dial("tcp", host)
	if err != nil {
		return nil, err
	}
	return &rawHTTP{conn: c, br: bufio.NewReaderSize(c, 64<<10), host: host}, nil
}

func (c *rawHTTP) get(path string) (int, error) {
	c.req = append(c.req[:0], "GET "...)
	c.req = append(c.req, path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.host...)
	c.req = append(c.req, "\r\nAccept: application/fhir+json\r\n\r\n"...)
	if _, err := c.conn.Write(c.req); err != nil {
		return 0, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(h) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(h, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if length < 0 {
		return 0, errors.New("response without Content-Length")
	}
	_, err = c.br.Discard(length)
	return status, err
}
