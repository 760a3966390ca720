package rest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
	blobDir string
}

type serverOpt func(*rest.Config)

func newServer(t testing.TB, opts ...serverOpt) *server {
	t.Helper()
	pool := pgtest.NewPool(t)
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	st := store.New(pool, store.WithBase(ts.URL+"/fhir"))
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
		Blobs: blobs, MaxBinaryBytes: 8 << 20}
	for _, o := range opts {
		o(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	api := rest.New(cfg, st, validator, rest.AllowAll{}, log, prometheus.NewRegistry())
	mux.Handle("/fhir/", http.StripPrefix("/fhir", api.Handler()))
	mux.Handle("/fhir", http.StripPrefix("/fhir", api.Handler()))
	return &server{t: t, base: ts.URL + "/fhir", store: st, http: ts.Client(), blobDir: blobDir}
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
