package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// token is a coded value, written system|code in a search.
type token struct{ system, code string }

func (t token) String() string { return t.system + "|" + t.code }

// picks are the parameter values the searches rotate over, taken from the loaded data.
type picks struct {
	commonCodes []token  // the most frequent Observation codes
	rareCodes   []token  // the least frequent ones
	months      []string // YYYY-MM months that have Observations
	encTypes    []token  // Encounter types
	patients    []string // Patient ids
	prefixes    []string // 3-letter prefixes of family names
	families    []string // whole family names, double-barrelled (nearly unique) where there are some
}

// The picks are read from the stored JSON. Observations and Encounters are sampled (TABLESAMPLE,
// repeatable, so that runs on the same data pick the same values); Patients are few enough to read
// all. md5 ordering is a stable shuffle.
const (
	pickObservations = `
SELECT j #>> '{code,coding,0,system}', j #>> '{code,coding,0,code}', left(j ->> 'effectiveDateTime', 7), count(*)
FROM (SELECT convert_from(content, 'UTF8')::jsonb AS j
      FROM resources TABLESAMPLE SYSTEM ($1::real) REPEATABLE (7)
      WHERE type = 'Observation' AND content IS NOT NULL) s
GROUP BY 1, 2, 3`
	pickEncounterTypes = `
SELECT system, code
FROM (SELECT DISTINCT j #>> '{type,0,coding,0,system}', j #>> '{type,0,coding,0,code}'
      FROM (SELECT convert_from(content, 'UTF8')::jsonb AS j
            FROM resources TABLESAMPLE SYSTEM ($1::real) REPEATABLE (7)
            WHERE type = 'Encounter' AND content IS NOT NULL) s) t (system, code)
WHERE system IS NOT NULL AND code IS NOT NULL
ORDER BY md5(code) LIMIT 50`
	pickPatients = `
SELECT id, coalesce(jsonb_path_query_first(j, '$.name[*] ? (@.use == "official").family') #>> '{}', j #>> '{name,0,family}', '')
FROM (SELECT id, convert_from(content, 'UTF8')::jsonb AS j FROM resources WHERE type = 'Patient' AND content IS NOT NULL) s
ORDER BY md5(id)`
)

// pickValues reads the values to search for from the database.
func pickValues(ctx context.Context, pool *pgxpool.Pool) (picks, error) {
	var p picks
	var total int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM resources`).Scan(&total); err != nil {
		return p, err
	}
	// About 30,000 resources of every type in the sample: enough to rank codes, little to decompress.
	pct := min(100, 3e6/float64(max(total, 1)))

	rows, err := pool.Query(ctx, pickObservations, pct)
	if err != nil {
		return p, fmt.Errorf("pick Observation values: %w", err)
	}
	codes, months := map[token]int64{}, map[string]int64{}
	for rows.Next() {
		var sys, code, month *string
		var n int64
		if err := rows.Scan(&sys, &code, &month, &n); err != nil {
			rows.Close()
			return p, err
		}
		if sys != nil && code != nil {
			codes[token{*sys, *code}] += n
		}
		if month != nil {
			months[*month] += n
		}
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("pick Observation values: %w", err)
	}
	ranked := make([]token, 0, len(codes))
	for t := range codes {
		ranked = append(ranked, t)
	}
	sort.Slice(ranked, func(i, j int) bool {
		if codes[ranked[i]] != codes[ranked[j]] {
			return codes[ranked[i]] > codes[ranked[j]]
		}
		return ranked[i].code < ranked[j].code
	})
	if len(ranked) < 4 {
		return p, fmt.Errorf("only %d Observation codes in the sample: is the database loaded?", len(ranked))
	}
	k := min(10, len(ranked)/2)
	p.commonCodes = ranked[:k]
	p.rareCodes = ranked[len(ranked)-k:]
	for m, n := range months {
		if n >= 3 {
			p.months = append(p.months, m)
		}
	}
	sort.Strings(p.months)
	p.months = spread(p.months, 50)

	rows, err = pool.Query(ctx, pickEncounterTypes, pct)
	if err != nil {
		return p, fmt.Errorf("pick Encounter types: %w", err)
	}
	for rows.Next() {
		var t token
		if err := rows.Scan(&t.system, &t.code); err != nil {
			rows.Close()
			return p, err
		}
		p.encTypes = append(p.encTypes, t)
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("pick Encounter types: %w", err)
	}

	rows, err = pool.Query(ctx, pickPatients)
	if err != nil {
		return p, fmt.Errorf("pick Patients: %w", err)
	}
	prefixSeen, familySeen := map[string]bool{}, map[string]bool{}
	var plain []string
	for rows.Next() {
		var id, family string
		if err := rows.Scan(&id, &family); err != nil {
			rows.Close()
			return p, err
		}
		if len(p.patients) < 50 {
			p.patients = append(p.patients, id)
		}
		if pre := prefix(family, 3); pre != "" && !prefixSeen[pre] && len(p.prefixes) < 50 {
			prefixSeen[pre] = true
			p.prefixes = append(p.prefixes, pre)
		}
		if family != "" && !familySeen[family] {
			familySeen[family] = true
			if strings.Contains(family, "-") {
				p.families = append(p.families, family)
			} else {
				plain = append(plain, family)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("pick Patients: %w", err)
	}
	p.families = append(p.families, plain...)[:min(50, len(p.families)+len(plain))]
	if len(p.months) == 0 || len(p.encTypes) == 0 || len(p.patients) == 0 || len(p.prefixes) == 0 {
		return p, errors.New("the database lacks Observation dates, Encounter types or Patients: is it loaded?")
	}
	return p, nil
}

// prefix returns the first n letters of s, or "" when s is shorter.
func prefix(s string, n int) string {
	r := []rune(s)
	if len(r) < n {
		return ""
	}
	return string(r[:n])
}

// spread returns at most n of the sorted values, evenly spaced, so that the picks cover the range.
func spread(sorted []string, n int) []string {
	if len(sorted) <= n {
		return sorted
	}
	out := make([]string, n)
	for i := range out {
		out[i] = sorted[i*len(sorted)/n]
	}
	return out
}

// queryKind is one kind of search: the paths it rotates over and the issue's target for it.
type queryKind struct {
	name   string
	paths  []string      // relative to the FHIR base: "Observation?code=...", or "?_summary=count"
	p95    time.Duration // the target p95; 0 when the issue sets none
	counts bool          // a _summary=count search: the Bundle must carry a total
}

// q builds a search path from a type (or "" for the system) and key/value pairs, escaping the values.
func q(typ string, kv ...string) string {
	var b strings.Builder
	b.WriteString(typ)
	for i := 0; i+1 < len(kv); i += 2 {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(kv[i])
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(kv[i+1]))
	}
	return b.String()
}

func each[T any](values []T, path func(T) string) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = path(v)
	}
	return out
}

// nextMonth returns the month after a YYYY-MM month, as YYYY-MM-01.
func nextMonth(m string) string {
	t, err := time.Parse("2006-01", m)
	if err != nil {
		return m + "-28"
	}
	return t.AddDate(0, 1, 0).Format("2006-01-02")
}

// queryKinds is the mix of the issue. Every page is _count=50, so that the latencies do not depend
// on the server's default page size.
func queryKinds(p picks) []queryKind {
	const ms = time.Millisecond
	codes := append(append([]token(nil), p.commonCodes...), p.rareCodes...)
	return []queryKind{
		{name: "token, common code", p95: 20 * ms, paths: each(p.commonCodes, func(t token) string {
			return q("Observation", "code", t.String(), "_count", "50")
		})},
		{name: "token, rare code", p95: 20 * ms, paths: each(p.rareCodes, func(t token) string {
			return q("Observation", "code", t.String(), "_count", "50")
		})},
		{name: "date range (one month)", paths: each(p.months, func(m string) string {
			return q("Observation", "date", "ge"+m+"-01", "date", "lt"+nextMonth(m), "_count", "50")
		})},
		{name: "string prefix", paths: each(p.prefixes, func(s string) string {
			return q("Patient", "name", s, "_count", "50")
		})},
		{name: "reference + date", paths: each(p.patients, func(id string) string {
			return q("Encounter", "patient", id, "date", "ge2015-01-01", "_count", "50")
		})},
		{name: "chained", p95: 50 * ms, paths: each(p.prefixes, func(s string) string {
			return q("Observation", "subject:Patient.name", s, "_count", "50")
		})},
		{name: "_has", p95: 50 * ms, paths: each(codes, func(t token) string {
			return q("Patient", "_has:Observation:patient:code", t.String(), "_count", "50")
		})},
		{name: "_include", p95: 50 * ms, paths: each(p.encTypes, func(t token) string {
			return q("Encounter", "type", t.String(), "_include", "Encounter:patient", "_count", "50")
		})},
		{name: "_revinclude", paths: each(p.families, func(s string) string {
			return q("Patient", "name", s, "_revinclude", "Encounter:patient", "_count", "50")
		})},
		{name: "_sort=-date", paths: each(p.commonCodes, func(t token) string {
			return q("Observation", "code", t.String(), "_sort", "-date", "_count", "50")
		})},
		{name: "_summary=count, by code", counts: true, paths: each(p.commonCodes, func(t token) string {
			return q("Observation", "code", t.String(), "_summary", "count")
		})},
		{name: "_summary=count, Observation", counts: true, paths: []string{q("Observation", "_summary", "count")}},
		{name: "_summary=count, all types", p95: time.Second, counts: true, paths: []string{q("", "_summary", "count")}},
	}
}

// kindResult is what running one kind measured.
type kindResult struct {
	kind     queryKind
	err      error // the kind could not be measured: its probe failed, or too many requests did
	rate     float64
	lat      latencies
	requests int
	errors   int
	entries  int // median entries per page, from the probe
	total    int // median Bundle.total, from the probe; -1 when the server gave none
}

func (r kindResult) met() bool { return r.err == nil && r.kind.p95 > 0 && r.lat.P(95) < r.kind.p95 }

// runKind probes every path of the kind once (which also warms the caches), checking that each
// answers a searchset Bundle, then drives the paths round-robin from o.clients keep-alive
// connections for o.duration.
func runKind(ctx context.Context, base *url.URL, k queryKind, o options) kindResult {
	res := kindResult{kind: k, total: -1}
	c, err := dialRaw(base.Host)
	if err != nil {
		res.err = err
		return res
	}
	var entries, totals []int
	for _, path := range k.paths {
		n, total, err := probe(c, base.Path, path, k.counts)
		if err != nil {
			c.conn.Close()
			res.err = fmt.Errorf("GET %s: %w", readable(path), err)
			return res
		}
		entries = append(entries, n)
		if total >= 0 {
			totals = append(totals, total)
		}
		if c.closed {
			c.conn.Close()
			if c, err = dialRaw(base.Host); err != nil {
				res.err = err
				return res
			}
		}
	}
	c.conn.Close()
	res.entries = median(entries)
	if len(totals) > 0 {
		res.total = median(totals)
	}
	res.rate, res.lat, res.requests, res.errors, err = drive(ctx, base, k.paths, o)
	if err == nil && res.errors*100 > res.requests {
		err = fmt.Errorf("%d of %d requests failed", res.errors, res.requests)
	}
	res.err = err
	return res
}

// probe runs one search and checks its answer in full.
func probe(c *rawHTTP, root, path string, counts bool) (entries, total int, err error) {
	status, body, err := c.get(join(root, path))
	if err != nil {
		return 0, 0, err
	}
	if status != http.StatusOK {
		return 0, 0, fmt.Errorf("status %d %s: %s", status, http.StatusText(status), diagnostics(body))
	}
	var b struct {
		ResourceType string            `json:"resourceType"`
		Type         string            `json:"type"`
		Total        *int              `json:"total"`
		Entry        []json.RawMessage `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return 0, 0, fmt.Errorf("response body: %w", err)
	}
	if b.ResourceType != "Bundle" || b.Type != "searchset" {
		return 0, 0, fmt.Errorf("a %s of type %q, want a searchset Bundle", b.ResourceType, b.Type)
	}
	total = -1
	if b.Total != nil {
		total = *b.Total
	} else if counts {
		return 0, 0, errors.New("a _summary=count Bundle without a total")
	}
	return len(b.Entry), total, nil
}

// diagnostics returns the messages of an OperationOutcome, or the start of the body.
func diagnostics(body []byte) string {
	var oo struct {
		Issue []struct {
			Code        string `json:"code"`
			Diagnostics string `json:"diagnostics"`
			Details     struct {
				Text string `json:"text"`
			} `json:"details"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil || len(oo.Issue) == 0 {
		return fmt.Sprintf("%.300s", body)
	}
	var msgs []string
	for _, is := range oo.Issue {
		msg := is.Diagnostics
		if msg == "" {
			msg = is.Details.Text
		}
		msgs = append(msgs, is.Code+": "+msg)
	}
	return strings.Join(msgs, "; ")
}

// drive runs the paths round-robin on o.clients connections for o.duration. A request counts as
// failed unless it answers 200 with a Bundle; failures are counted, not fatal, but the first is
// returned when none succeeded.
func drive(ctx context.Context, base *url.URL, paths []string, o options) (float64, latencies, int, int, error) {
	var mu sync.Mutex
	var all latencies
	var failed int
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		failed++
		if firstErr == nil {
			firstErr = err
		}
	}
	var wg sync.WaitGroup
	start := time.Now()
	stopAt := start.Add(o.duration)
	for w := range o.clients {
		c, err := dialRaw(base.Host)
		if err != nil {
			return 0, nil, 0, 0, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { c.conn.Close() }()
			var mine latencies
			for i := w; time.Now().Before(stopAt) && ctx.Err() == nil; i++ {
				path := join(base.Path, paths[i%len(paths)])
				t0 := time.Now()
				status, body, err := c.get(path)
				d := time.Since(t0)
				switch {
				case err != nil:
					fail(fmt.Errorf("GET %s: %w", readable(path), err))
					c.conn.Close()
					if c, err = dialRaw(base.Host); err != nil {
						fail(err)
						return
					}
					continue
				case status != http.StatusOK:
					fail(fmt.Errorf("GET %s: status %d: %s", readable(path), status, diagnostics(body)))
				case !isBundle(body):
					fail(fmt.Errorf("GET %s: not a Bundle: %.200s", readable(path), body))
				default:
					mine = append(mine, d)
				}
				if c.closed {
					c.conn.Close()
					if c, err = dialRaw(base.Host); err != nil {
						fail(err)
						return
					}
				}
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return 0, nil, 0, 0, err
	}
	requests := len(all) + failed
	if len(all) == 0 && firstErr != nil {
		return 0, nil, requests, failed, firstErr
	}
	return float64(len(all)) / elapsed.Seconds(), all, requests, failed, nil
}

// isBundle reports whether a JSON body's first "resourceType" is "Bundle": the first is the
// outermost, as every serializer writes it before the entries. It is what the timed loop checks
// instead of parsing whole pages, which would take the CPU the server shares with it.
func isBundle(body []byte) bool {
	_, after, ok := bytes.Cut(body[:min(len(body), 512)], []byte(`"resourceType"`))
	if !ok {
		return false
	}
	after, ok = bytes.CutPrefix(bytes.TrimLeft(after, " \t\r\n"), []byte(":"))
	return ok && bytes.HasPrefix(bytes.TrimLeft(after, " \t\r\n"), []byte(`"Bundle"`))
}

// join puts a search path under the FHIR base path.
func join(root, path string) string {
	if strings.HasPrefix(path, "?") {
		return root + path
	}
	return root + "/" + path
}

// readable unescapes a path for messages and reports.
func readable(path string) string {
	if s, err := url.QueryUnescape(path); err == nil {
		return s
	}
	return path
}

func median(v []int) int {
	if len(v) == 0 {
		return 0
	}
	s := append([]int(nil), v...)
	sort.Ints(s)
	return s[len(s)/2]
}
