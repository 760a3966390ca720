package rest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/rest"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/blob"
	"github.com/iambilly/billy/internal/crypto"
	"github.com/iambilly/billy/internal/pg/pgtest"
)

// validator is shared: building one loads the R4 descriptors once.
var validator = func() *resource.Validator {
	v, err := resource.NewValidator()
	if err != nil {
		panic(err)
	}
	return v
}()

// server is a Billy FHIR API on a fresh database.
type server struct {
	t       testing.TB
	base    string
	store   *store.Store
	http    *http.Client
	handler http.Handler // the FHIR API itself, mounted at base
	blobDir string
}

type serverOpt func(*rest.Config)

// testNow is the time a test server lives at unless a test chooses another: tests never see the
// wall clock, so none can pass today and fail next month.
var testNow = time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC)

// testDates are the moments the date-sensitive tests are run at: before, at and long after the
// dates of their data.
var testDates = []time.Time{
	time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	testNow,
	time.Date(2030, 6, 15, 8, 30, 0, 0, time.UTC),
}

// clock is the injected clock of a test server: it stands still unless the test moves it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

// Now is the clock's time, for store.WithClock and rest.Config.Now.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// withClock runs the server (API and store) on c.
func withClock(c *clock) serverOpt { return func(cfg *rest.Config) { cfg.Now = c.Now } }

func newServer(t testing.TB, opts ...serverOpt) *server {
	t.Helper()
	pool := pgtest.NewPool(t)
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	kr, err := crypto.ParseKeyring("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	if err != nil {
		t.Fatal(err)
	}
	blobDir := t.TempDir()
	blobs, err := blob.NewFS(blobDir, kr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.Config{Base: ts.URL + "/fhir", MaxBodyBytes: 1 << 20, MaxBundleEntries: 500, SoftwareName: "Billy", SoftwareVersion: "test",
		Blobs: blobs, MaxBinaryBytes: 8 << 20, Now: newClock(testNow).Now}
	for _, o := range opts {
		o(&cfg)
	}
	st := store.New(pool, store.WithBase(cfg.Base), store.WithClock(cfg.Now))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	api := rest.New(cfg, st, validator, rest.AllowAll{}, log, prometheus.NewRegistry())
	h := api.Handler()
	mux.Handle("/fhir/", http.StripPrefix("/fhir", h))
	mux.Handle("/fhir", http.StripPrefix("/fhir", h))
	return &server{t: t, base: ts.URL + "/fhir", store: st, http: ts.Client(), handler: h, blobDir: blobDir}
}

// result is one HTTP exchange.
type result struct {
	status int
	header http.Header
	body   []byte
}

// json parses the body as a tree (nil when empty).
func (r result) tree(t testing.TB) *jsontree.Value {
	t.Helper()
	if len(r.body) == 0 {
		return nil
	}
	v, err := jsontree.Parse(r.body)
	if err != nil {
		t.Fatalf("response is not JSON: %v\n%s", err, r.body)
	}
	return v
}

// do sends a request; body may be a string, []byte or anything json.Marshal takes. headers are
// name/value pairs.
func (s *server) do(method, path string, body any, headers ...string) result {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	url := s.base
	if path != "" {
		url += "/" + path
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

// must fails the test unless the status is want, and returns the body tree.
func (r result) must(t testing.TB, want int) *jsontree.Value {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body: %s", r.status, want, r.body)
	}
	return r.tree(t)
}

// create POSTs a resource and returns its id.
func (s *server) create(res string) string {
	s.t.Helper()
	tree := s.do(http.MethodPost, typeOf(s.t, res), res).must(s.t, http.StatusCreated)
	return tree.GetString("id")
}

func typeOf(t testing.TB, res string) string {
	t.Helper()
	v, err := jsontree.Parse([]byte(res))
	if err != nil {
		t.Fatal(err)
	}
	return v.GetString("resourceType")
}

// issue returns the first issue of an OperationOutcome body: code and first expression.
func issue(t testing.TB, oo *jsontree.Value) (code, expr, diag string) {
	t.Helper()
	if oo == nil || oo.GetString("resourceType") != "OperationOutcome" {
		t.Fatalf("want an OperationOutcome, got %v", oo)
	}
	is := oo.Get("issue").Items[0]
	if e := is.Get("expression"); e != nil {
		expr = e.Items[0].Str
	}
	return is.GetString("code"), expr, is.GetString("diagnostics")
}

func metaVersion(v *jsontree.Value) string { return v.Get("meta").GetString("versionId") }

const patientJSON = `{"resourceType":"Patient","identifier":[{"system":"http://example.org/mrn","value":"M1"}],"name":[{"family":"Doe","given":["Jane"]}],"gender":"female","birthDate":"1970-02-18"}`

type restConfig = rest.Config
