// Command billybench-export measures the payers' side: a system-level Bulk Data $export through
// bin/billy (kick-off to complete manifest, the NDJSON encrypted into the blob store) against a raw
// `COPY (SELECT content ...) TO STDOUT` of the same rows on the same database, with the worker's
// peak RSS at each size (it must stay flat as the size doubles); and 837P generation in claims/s.
//
//	go run ./cmd/billybench-export [-sizes 500000,1000000] [-claims 10000] [-markdown]
//
// The resources are written straight into the resources table (COPY): an unfiltered system export
// reads nothing else, and loading a million through the API would take most of the run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/adapters/x12"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/benchkit"
	"github.com/iambilly/billy/internal/pg"
	"github.com/iambilly/billy/migrations"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "billybench-export:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	sizes := flag.String("sizes", "500000,1000000", "export sizes (resources), ascending; the peak RSS of each is compared")
	claims := flag.Int("claims", 10000, "Claims in the 837P batch")
	bin := flag.String("bin", "bin/billy", "the billy binary")
	markdown := flag.Bool("markdown", false, "print a Markdown table")
	flag.Parse()
	var rows []benchkit.Row
	var rss []int64
	var ns []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-sizes: %q", s)
		}
		r, peak, err := exportRun(ctx, *bin, n)
		if err != nil {
			return err
		}
		rows = append(rows, r...)
		rss, ns = append(rss, peak), append(ns, n)
	}
	for i := 1; i < len(rss); i++ {
		rows = append(rows, benchkit.Row{fmt.Sprintf("peak RSS %d → %d resources", ns[i-1], ns[i]), fmt.Sprintf("%.2f×", float64(rss[i])/float64(rss[i-1])), "flat: ≤ 1.25× when the size doubles"})
	}
	r, err := x12Run(ctx, *claims)
	if err != nil {
		return err
	}
	rows = append(rows, r...)
	benchkit.PrintRows(os.Stdout, rows, *markdown, 60)
	return nil
}

// load writes n resources (a Patient per 20 Observations) into a fresh, migrated database.
func load(ctx context.Context, name string, n int) (string, error) {
	dbURL, err := benchkit.FreshDatabase(ctx, benchkit.AdminURL(), name)
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if err := migrations.Apply(ctx, conn); err != nil {
		return "", err
	}
	start := time.Now()
	now := time.Now().UTC().Add(-time.Hour)
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i >= n {
			return nil, nil
		}
		i++
		ts := now.Add(time.Duration(i) * time.Microsecond)
		meta := fmt.Sprintf(`"meta":{"versionId":"1","lastUpdated":"%s"}`, ts.Format("2006-01-02T15:04:05.000000Z"))
		if i%21 == 1 {
			id := fmt.Sprintf("p%d", i/21)
			body := fmt.Sprintf(`{"resourceType":"Patient","id":"%s",%s,"name":[{"family":"Family%d","given":["Given%d"]}],"gender":"female","birthDate":"19%02d-0%d-1%d","address":[{"line":["%d Elm Street"],"city":"Springfield","state":"IL","postalCode":"62704"}]}`,
				id, meta, i, i, i%100, 1+i%9, i%10, i%999)
			return []any{"Patient", id, 1, ts, "POST", []byte(body)}, nil
		}
		id := fmt.Sprintf("o%d", i)
		body := fmt.Sprintf(`{"resourceType":"Observation","id":"%s",%s,"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory","display":"Laboratory"}]}],`+
			`"code":{"coding":[{"system":"http://loinc.org","code":"2339-0","display":"Glucose [Mass/volume] in Blood"}],"text":"Glucose"},"subject":{"reference":"Patient/p%d"},`+
			`"effectiveDateTime":"2026-03-%02dT09:%02d:00Z","issued":"2026-03-%02dT10:00:00.000Z","valueQuantity":{"value":%d.%d,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"},`+
			`"referenceRange":[{"low":{"value":70,"unit":"mg/dL"},"high":{"value":99,"unit":"mg/dL"}}]}`,
			id, meta, i/21, 1+i%28, i%60, 1+i%28, 60+i%80, i%10)
		return []any{"Observation", id, 1, ts, "POST", []byte(body)}, nil
	})
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"resources"}, []string{"type", "id", "version", "last_updated", "method", "content"}, src); err != nil {
		return "", err
	}
	// No index rows: an unfiltered export reads none. Recorded as built, so that billy serve does
	// not rebuild them at start-up.
	if _, err := conn.Exec(ctx, `INSERT INTO search_index_state (version) VALUES ($1) ON CONFLICT (only_row) DO UPDATE SET version = $1`, search.IndexVersion); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE resources"); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "loaded %d resources in %s\n", n, time.Since(start).Round(time.Second))
	return dbURL, nil
}

type counter struct{ n int64 }

func (c *counter) Write(b []byte) (int, error) { c.n += int64(len(b)); return len(b), nil }

// exportRun loads n resources and times the raw COPY and Billy's export of them.
func exportRun(ctx context.Context, bin string, n int) ([]benchkit.Row, int64, error) {
	dbURL, err := load(ctx, "billy_bench_export", n)
	if err != nil {
		return nil, 0, err
	}
	dir, err := os.MkdirTemp("", "billybench-export-")
	if err != nil {
		return nil, 0, err
	}
	defer os.RemoveAll(dir)
	p, err := benchkit.Serve(ctx, bin, nil, []string{"BILLY_DATABASE_URL=" + dbURL, "BILLY_REDIS_URL=" + benchkit.RedisURL(), "BILLY_LOG_LEVEL=warn",
		"BILLY_MASTER_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "BILLY_DATA_DIR=" + dir,
		"BILLY_PIPELINE_QUEUE=bench-export-" + strconv.FormatInt(time.Now().UnixNano(), 36)})
	if err != nil {
		return nil, 0, err
	}
	defer p.Stop()
	idle := vm(p.Pid(), "VmRSS")
	// The raw baseline, on the same rows (Billy's start-up added its definitions).
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, 0, err
	}
	var c counter
	start := time.Now()
	tag, err := conn.PgConn().CopyTo(ctx, &c, "COPY (SELECT content FROM resources WHERE content IS NOT NULL ORDER BY type, rid) TO STDOUT")
	raw := time.Since(start)
	conn.Close(ctx)
	if err != nil {
		return nil, 0, err
	}
	rawRate := float64(tag.RowsAffected()) / raw.Seconds()

	n = int(tag.RowsAffected())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.Base+"/$export", nil)
	req.Header.Set("Prefer", "respond-async")
	start = time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	resp.Body.Close()
	status := resp.Header.Get("Content-Location")
	if resp.StatusCode != http.StatusAccepted || status == "" {
		return nil, 0, fmt.Errorf("kick-off: %d", resp.StatusCode)
	}
	var m struct {
		Output []struct{ Count int }
	}
	for {
		resp, err := http.Get(status)
		if err != nil {
			return nil, 0, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(body, &m); err != nil {
				return nil, 0, err
			}
			break
		}
		if resp.StatusCode != http.StatusAccepted {
			return nil, 0, fmt.Errorf("status: %d %s", resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	total := 0
	for _, o := range m.Output {
		total += o.Count
	}
	if total != n {
		return nil, 0, fmt.Errorf("exported %d of %d resources", total, n)
	}
	peak := vm(p.Pid(), "VmHWM")
	rate := float64(n) / took.Seconds()
	return []benchkit.Row{
		{fmt.Sprintf("raw COPY (SELECT content ...) TO STDOUT, %d rows (%d MB)", n, c.n>>20), fmt.Sprintf("%.0f rows/s", rawRate), raw.Round(time.Millisecond).String()},
		{fmt.Sprintf("Billy $export, %d resources to encrypted NDJSON (%d files)", n, len(m.Output)), fmt.Sprintf("%.0f resources/s", rate),
			fmt.Sprintf("%s; ratio %.2f of raw; peak RSS %d MB (idle %d MB)", took.Round(time.Millisecond), rate/rawRate, peak>>10, idle>>10)},
	}, peak, nil
}

// vm reads a /proc/PID/status field in kB.
func vm(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// x12Run stores n active Claims (a patient and coverage each, one practice and payer) and times
// their 837P: reading every resource, building, numbering and writing one interchange.
func x12Run(ctx context.Context, n int) ([]benchkit.Row, error) {
	dbURL, err := benchkit.FreshDatabase(ctx, benchkit.AdminURL(), "billy_bench_x12")
	if err != nil {
		return nil, err
	}
	pool, err := pg.Connect(ctx, dbURL, 4)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	if err := migrations.Apply(ctx, conn.Conn()); err != nil {
		conn.Release()
		return nil, err
	}
	now := time.Now().UTC()
	rowsIn := [][]any{
		{"Organization", "practice", 1, now, "POST", []byte(`{"resourceType":"Organization","id":"practice","name":"Billy Family Practice","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1922334455"},{"system":"urn:oid:2.16.840.1.113883.4.4","value":"12-3456789"}],"telecom":[{"system":"phone","value":"555-0100"}],"address":[{"line":["100 Main Street"],"city":"Springfield","state":"IL","postalCode":"62701-1234"}]}`)},
		{"Organization", "payer", 1, now, "POST", []byte(`{"resourceType":"Organization","id":"payer","name":"Demo Health Plan","identifier":[{"system":"http://example.org/payer-id","value":"DHP01"}]}`)},
	}
	var ids []string
	for i := 0; i < n; i++ {
		id := strconv.Itoa(i)
		ids = append(ids, "c"+id)
		rowsIn = append(rowsIn,
			[]any{"Patient", "p" + id, 1, now, "POST", []byte(`{"resourceType":"Patient","id":"p` + id + `","name":[{"family":"Family` + id + `","given":["Given"]}],"gender":"male","birthDate":"1970-01-01","address":[{"line":["1 Elm Street"],"city":"Springfield","state":"IL","postalCode":"62704"}]}`)},
			[]any{"Coverage", "v" + id, 1, now, "POST", []byte(`{"resourceType":"Coverage","id":"v` + id + `","status":"active","subscriberId":"M` + id + `","beneficiary":{"reference":"Patient/p` + id + `"},"payor":[{"reference":"Organization/payer"}]}`)},
			[]any{"Claim", "c" + id, 1, now, "POST", []byte(`{"resourceType":"Claim","id":"c` + id + `","status":"active","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claim-type","code":"professional"}]},"use":"claim","patient":{"reference":"Patient/p` + id + `"},"created":"2026-03-06","provider":{"reference":"Organization/practice"},"priority":{"coding":[{"code":"normal"}]},"insurance":[{"sequence":1,"focal":true,"coverage":{"reference":"Coverage/v` + id + `"}}],` +
				`"diagnosis":[{"sequence":1,"diagnosisCodeableConcept":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"E11.9"}]}},{"sequence":2,"diagnosisCodeableConcept":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"I10"}]}}],` +
				`"item":[{"sequence":1,"diagnosisSequence":[1,2],"productOrService":{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"99214"}]},"modifier":[{"coding":[{"code":"25"}]}],"servicedDate":"2026-03-05","locationCodeableConcept":{"coding":[{"system":"https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set","code":"11"}]},"quantity":{"value":1},"net":{"value":180,"currency":"USD"}},` +
				`{"sequence":2,"diagnosisSequence":[1],"productOrService":{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"82947"}]},"servicedDate":"2026-03-05","locationCodeableConcept":{"coding":[{"system":"https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set","code":"11"}]},"quantity":{"value":1},"net":{"value":15.5,"currency":"USD"}}]}`)})
	}
	_, err = conn.Conn().CopyFrom(ctx, pgx.Identifier{"resources"}, []string{"type", "id", "version", "last_updated", "method", "content"}, pgx.CopyFromRows(rowsIn))
	conn.Release()
	if err != nil {
		return nil, err
	}
	st := store.New(pool)
	set := x12.Settings{Envelope: x12.Envelope{SenderQualifier: "ZZ", SenderID: "BILLY", ReceiverQualifier: "ZZ", Usage: "T"}}
	start := time.Now()
	out, _, err := x12.Generate(ctx, pool, x12.StoreSource{Store: st}, set, ids, now)
	took := time.Since(start)
	if err != nil {
		return nil, err
	}
	if got := strings.Count(string(out), "~CLM*"); got != n {
		return nil, errors.New("the 837P lacks claims")
	}
	return []benchkit.Row{{fmt.Sprintf("837P of %d Claims (read, build, number, write: %d KB)", n, len(out)>>10), fmt.Sprintf("%.0f claims/s", float64(n)/took.Seconds()), took.Round(time.Millisecond).String()}}, nil
}
