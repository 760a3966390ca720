package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iambilly/billy/internal/benchkit"
	"github.com/iambilly/billy/pipeline/coder"
	"github.com/iambilly/billy/pipeline/codes"
	"github.com/iambilly/billy/pipeline/embed"
	"github.com/iambilly/billy/pipeline/kb"
)

type latencies = benchkit.Latencies

func (c devCase) input() (coder.Input, error) {
	d, err := time.Parse(time.DateOnly, c.ServiceDate)
	if err != nil {
		return coder.Input{}, fmt.Errorf("%s: serviceDate: %w", c.Name, err)
	}
	return coder.Input{Transcript: c.Text, Patient: coder.Patient{BirthDate: c.Patient.BirthDate, Sex: c.Patient.Sex},
		ServiceDate: d, Established: c.Established, PlaceOfService: c.PlaceOfService}, nil
}

// coderResult is the built-in coder's time on the longest transcript, and on each transcript.
type coderResult struct {
	name       string
	words      int
	lat        latencies
	allocBytes float64 // bytes allocated per run
	allocs     float64 // allocations per run
	perCase    map[string]time.Duration
	// noRetriever is the long transcript without the knowledge base; noRetrieverMean the mean over
	// all transcripts.
	noRetriever     latencies
	noRetrieverMean time.Duration
	// searches and searchTime are the coder's kb.Search calls and the time in them per run of the
	// long transcript; searchesEach the calls per transcript over all of them.
	searches, searchesEach float64
	searchTime             time.Duration
	diagnoses              int
	lines                  int
	em                     string
}

func longest(cases []devCase) devCase {
	best := cases[0]
	for _, c := range cases[1:] {
		if c.words() > best.words() {
			best = c
		}
	}
	return best
}

func measureCoder(ctx context.Context, env *benchEnv, cases []devCase, o options) (coderResult, error) {
	c := longest(cases)
	res := coderResult{name: c.Name, words: c.words(), perCase: map[string]time.Duration{}}
	in, err := c.input()
	if err != nil {
		return res, err
	}
	cr := &countingRetriever{r: env.kb}
	b := coder.NewBuiltin(env.set, coder.WithRetriever(cr))
	for range 5 {
		if _, err := b.Code(ctx, in); err != nil {
			return res, err
		}
	}
	cr.reset()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range o.coderRuns {
		t0 := time.Now()
		r, err := b.Code(ctx, in)
		res.lat = append(res.lat, time.Since(t0))
		if err != nil {
			return res, err
		}
		res.diagnoses, res.lines = len(r.Diagnoses), len(r.Lines)
		if r.EM != nil {
			res.em = r.EM.Code
		}
	}
	runtime.ReadMemStats(&m1)
	res.allocBytes = float64(m1.TotalAlloc-m0.TotalAlloc) / float64(o.coderRuns)
	res.allocs = float64(m1.Mallocs-m0.Mallocs) / float64(o.coderRuns)
	res.searches, res.searchTime = float64(cr.calls)/float64(o.coderRuns), cr.spent/time.Duration(o.coderRuns)
	fmt.Printf("  %s (%d words, %d diagnoses, %d procedure lines, E/M %s), %d runs: p50 %s, p95 %s; %.1f MB and %.0fk allocations per run\n",
		c.Name, res.words, res.diagnoses, res.lines, res.em, len(res.lat), benchkit.Ms(res.lat.P(50)), benchkit.Ms(res.lat.P(95)), res.allocBytes/1e6, res.allocs/1e3)
	fmt.Printf("  of which kb.Search: %.0f calls per run, %s per run in them (mean)\n", res.searches, benchkit.Ms(res.searchTime))
	// Every transcript, for the coder's share of the end-to-end runs: the median of five runs each.
	var all latencies
	cr.reset()
	for _, c := range cases {
		in, err := c.input()
		if err != nil {
			return res, err
		}
		var l latencies
		for range 5 {
			t0 := time.Now()
			if _, err := b.Code(ctx, in); err != nil {
				return res, err
			}
			l = append(l, time.Since(t0))
		}
		res.perCase[c.Name] = l.P(50)
		all = append(all, l.P(50))
	}
	res.searchesEach = float64(cr.calls) / float64(5*len(cases))
	fmt.Printf("  all %d development transcripts (median of 5 runs each): mean %s, max %s; %.1f kb.Search calls per transcript\n",
		len(cases), benchkit.Ms(all.Mean()), benchkit.Ms(all.P(100)), res.searchesEach)

	// The same without the retriever, to show what the knowledge-base searches cost the coder.
	nb := coder.NewBuiltin(env.set)
	var long, each latencies
	for range max(20, o.coderRuns/5) {
		t0 := time.Now()
		if _, err := nb.Code(ctx, in); err != nil {
			return res, err
		}
		long = append(long, time.Since(t0))
	}
	for _, c := range cases {
		cin, err := c.input()
		if err != nil {
			return res, err
		}
		var l latencies
		for range 5 {
			t0 := time.Now()
			if _, err := nb.Code(ctx, cin); err != nil {
				return res, err
			}
			l = append(l, time.Since(t0))
		}
		each = append(each, l.P(50))
	}
	res.noRetriever, res.noRetrieverMean = long, each.Mean()
	fmt.Printf("  without the retriever (no knowledge-base searches): %s p50 %s; all transcripts mean %s\n", c.Name, benchkit.Ms(long.P(50)), benchkit.Ms(each.Mean()))
	return res, nil
}

// countingRetriever counts the coder's searches and the time spent in them.
type countingRetriever struct {
	r     coder.Retriever
	mu    sync.Mutex
	calls int
	spent time.Duration
}

var _ coder.Retriever = (*countingRetriever)(nil)

func (c *countingRetriever) Search(ctx context.Context, query string, k int, f kb.Filter) ([]kb.Hit, error) {
	t0 := time.Now()
	hits, err := c.r.Search(ctx, query, k, f)
	d := time.Since(t0)
	c.mu.Lock()
	c.calls++
	c.spent += d
	c.mu.Unlock()
	return hits, err
}

func (c *countingRetriever) reset() {
	c.mu.Lock()
	c.calls, c.spent = 0, 0
	c.mu.Unlock()
}

// queries are the sentences of the development transcripts (3 to 30 words), the text the coder and a
// human coder search with.
func queries(cases []devCase) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range cases {
		for _, line := range strings.Split(c.Text, "\n") {
			for _, s := range splitSentences(line) {
				s = strings.TrimSpace(s)
				if n := len(strings.Fields(s)); n >= 3 && n <= 30 && !seen[s] {
					seen[s] = true
					out = append(out, s)
				}
			}
		}
	}
	return out
}

func splitSentences(line string) []string {
	var out []string
	start := 0
	for i := 0; i < len(line); i++ {
		if (line[i] == '.' || line[i] == '?' || line[i] == '!' || line[i] == ';') && (i+1 == len(line) || line[i+1] == ' ') {
			out = append(out, line[start:i+1])
			start = i + 1
		}
	}
	if start < len(line) {
		out = append(out, line[start:])
	}
	return out
}

// searchResult is the retrieval measure: two kinds of search and the raw scan.
type searchResult struct {
	queries  int
	all      latencies // k = 10, no filter
	coderish latencies // k = 10, the coder's filter (ICD-10-CM code descriptions)
	raw      latencies // one pass of dot products over every vector (the query already embedded)
	vectors  int
}

func measureSearch(ctx context.Context, env *benchEnv, cases []devCase, o options) (searchResult, error) {
	qs := queries(cases)
	res := searchResult{queries: len(qs), vectors: env.kb.Len()}
	cols, err := loadVectors(ctx, env)
	if err != nil {
		return res, err
	}
	// The three are interleaved, query by query, so that other load on the machine falls on all of
	// them alike.
	filtered := kb.Filter{Kind: kb.KindCode, System: codes.ICD10CM}
	step := func(i int, timed bool) error {
		q := qs[i%len(qs)]
		t0 := time.Now()
		hits, err := env.kb.Search(ctx, q, 10, kb.Filter{})
		t1 := time.Now()
		if err != nil {
			return err
		}
		if len(hits) != 10 {
			return fmt.Errorf("search %q: %d hits, want 10", q, len(hits))
		}
		if hits, err = env.kb.Search(ctx, q, 10, filtered); err != nil {
			return err
		}
		t2 := time.Now()
		if len(hits) != 10 {
			return fmt.Errorf("search %q (ICD-10-CM): %d hits, want 10", q, len(hits))
		}
		vec, err := env.emb.Embed(ctx, []string{q})
		if err != nil {
			return err
		}
		t3 := time.Now()
		rawScan(cols, vec[0])
		t4 := time.Now()
		if timed {
			res.all = append(res.all, t1.Sub(t0))
			res.coderish = append(res.coderish, t2.Sub(t1))
			res.raw = append(res.raw, t4.Sub(t3))
		}
		return nil
	}
	for i := range 50 {
		if err := step(i, false); err != nil {
			return res, err
		}
	}
	for i := range o.searches {
		if err := step(i, true); err != nil {
			return res, err
		}
	}
	fmt.Printf("  %d queries (%d distinct transcript sentences) over %d vectors, on %d cores:\n", o.searches, len(qs), res.vectors, runtime.GOMAXPROCS(0))
	fmt.Printf("  kb.Search k=10, no filter:                          p50 %s, p95 %s, p99 %s\n", benchkit.Ms(res.all.P(50)), benchkit.Ms(res.all.P(95)), benchkit.Ms(res.all.P(99)))
	fmt.Printf("  kb.Search k=10, ICD-10-CM codes (the coder's filter): p50 %s, p95 %s, p99 %s\n", benchkit.Ms(res.coderish.P(50)), benchkit.Ms(res.coderish.P(95)), benchkit.Ms(res.coderish.P(99)))
	fmt.Printf("  raw scan: the query's dot product with every vector (no filter, no top 10), %d goroutines: p50 %s, p95 %s\n",
		runtime.GOMAXPROCS(0), benchkit.Ms(res.raw.P(50)), benchkit.Ms(res.raw.P(95)))
	return res, nil
}

// loadVectors reads every stored embedding of the embedder, dimension-major (cols[d][i] is
// coordinate d of vector i), as the exact index holds them.
func loadVectors(ctx context.Context, env *benchEnv) ([][]float32, error) {
	dim := env.emb.Dim()
	rows, err := env.pool.Query(ctx, `SELECT embedding FROM kb_chunks WHERE embedder = $1 AND dim = $2`, embed.ID(env.emb), dim)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := make([][]float32, dim)
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		if len(raw) != 4*dim {
			return nil, fmt.Errorf("embedding of %d bytes, want %d", len(raw), 4*dim)
		}
		for d := range dim {
			cols[d] = append(cols[d], math.Float32frombits(binary.LittleEndian.Uint32(raw[4*d:])))
		}
	}
	return cols, rows.Err()
}

// rawScan is the floor of an exact search: every vector's dot product with q, accumulated a
// column at a time over q's non-zero coordinates (the cheapest order for the built-in embedder's
// sparse queries), split over GOMAXPROCS goroutines, keeping only the best score.
func rawScan(cols [][]float32, q []float32) float32 {
	n := len(cols[0])
	parts := runtime.GOMAXPROCS(0)
	best := make([]float32, parts)
	var wg sync.WaitGroup
	step := (n + parts - 1) / parts
	for p := range parts {
		lo, hi := p*step, min((p+1)*step, n)
		wg.Go(func() {
			sc := make([]float32, hi-lo)
			for d, w := range q {
				if w == 0 {
					continue
				}
				c := cols[d][lo:hi]
				for i := range sc {
					sc[i] += w * c[i]
				}
			}
			b := float32(-2)
			for _, v := range sc {
				b = max(b, v)
			}
			best[p] = b
		})
	}
	wg.Wait()
	return slices.Max(best)
}
