package conformance

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"grant_type=client_credentials&client_assertion=eyJh.eyJ.sig&scope=x": "grant_type=client_credentials&client_assertion=…&scope=x",
		`{"access_token":"abc.def","token_type":"bearer"}`:                    `{"access_token":"…","token_type":"bearer"}`,
		`{"resourceType":"Patient"}`:                                          `{"resourceType":"Patient"}`,
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRunAgainstAServerWithoutCapabilities: a base that is not FHIR is an error, not a report.
func TestRunAgainstAServerWithoutCapabilities(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	if _, err := Run(context.Background(), Config{Base: srv.URL}); err == nil || !strings.Contains(err.Error(), "CapabilityStatement") {
		t.Errorf("Run against a non-FHIR base: %v", err)
	}
}

// TestReadOnlyRunNeverWrites runs the suite read-only against a server that records every method
// it receives and holds nothing: no write may arrive, and what needs data skips.
func TestReadOnlyRunNeverWrites(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		methods []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		methods = append(methods, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/fhir+json")
		if r.URL.Path == "/metadata" {
			w.Write([]byte(`{"resourceType":"CapabilityStatement","fhirVersion":"4.0.1","format":["json"],"rest":[{"mode":"server",` +
				`"resource":[{"type":"Patient","interaction":[{"code":"read"},{"code":"create"},{"code":"search-type"}],"searchParam":[{"name":"family","type":"string"}]}]}]}`))
			return
		}
		w.Write([]byte(`{"resourceType":"Bundle","type":"searchset","link":[{"relation":"self","url":"x"}]}`))
	}))
	defer srv.Close()
	rep, err := Run(context.Background(), Config{Base: srv.URL, ReadOnly: true, Workers: 1, Skip: regexp.MustCompile(`^bulk/`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range methods {
		if !strings.HasPrefix(m, "GET ") {
			t.Errorf("a read-only run sent %s", m)
		}
	}
	c, ok := rep.Result("capability/Patient/create")
	if !ok || c.Result.Status != Skip {
		t.Errorf("capability/Patient/create in a read-only run: %+v", c.Result)
	}
	if _, ok := rep.Result("bulk/kickoff"); ok {
		t.Error("Skip ^bulk/ ran bulk/kickoff")
	}
	if c, _ := rep.Result("crud/read"); c.Result.Status != Skip {
		t.Errorf("crud/read with nothing to read: %+v", c.Result)
	}
	var html, js bytes.Buffer
	if err := rep.WriteHTML(&html); err != nil || !strings.Contains(html.String(), "capability/Patient/create") {
		t.Errorf("HTML report: %v", err)
	}
	if err := rep.WriteJSON(&js); err != nil || !strings.Contains(js.String(), `"readOnly": true`) {
		t.Errorf("JSON report: %v", err)
	}
}
