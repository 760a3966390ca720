package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/iambilly/billy/conformance"
	"github.com/iambilly/billy/internal/config"
)

// conformanceBilly is a Billy with SMART on (the default) and the pipeline worker (which runs
// exports), and an ES384 Backend Services client registered with billy clients create.
type conformanceBilly struct {
	env                     config.Lookuper
	base, clientID, keyFile string
	key                     *ecdsa.PrivateKey
}

func startConformanceBilly(t *testing.T) conformanceBilly {
	t.Helper()
	ln := listen(t)
	base := "http://" + ln.Addr().String()
	// The suite sends ~18,000 requests as one client; the rate limit has its own test (guard_test.go).
	env := testEnv(t, "BILLY_BASE_URL", base, "BILLY_EXPORT_FILE_RESOURCES", "50", "BILLY_RATE_LIMIT_CLIENT_RATE", "0")
	return registerConformanceClient(t, env, serveApp(t, env, ln, true)+"/fhir")
}

// registerConformanceClient registers an ES384 Backend Services client with billy clients create
// and writes its private key to a PEM file.
func registerConformanceClient(t *testing.T, env config.Lookuper, fhirBase string) conformanceBilly {
	t.Helper()
	b := conformanceBilly{env: env, base: fhirBase}
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b.key = key
	dir := t.TempDir()
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "conformance-1", Algorithm: "ES384", Use: "sig"}}})
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"clients", "create", "--name", "Conformance", "--type", "confidential-asymmetric",
		"--jwks", jwksFile, "--alg", "ES384", "--scope", "system/*.cruds system/AuditEvent.rs"}, env, &out, io.Discard); err != nil {
		t.Fatalf("clients create: %v", err)
	}
	b.clientID = strings.TrimSpace(strings.TrimPrefix(strings.SplitN(out.String(), "\n", 2)[0], "client_id: "))
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b.keyFile = filepath.Join(dir, "client.pem")
	if err := os.WriteFile(b.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// config is a suite configuration for this Billy's client.
func (b conformanceBilly) config(t *testing.T) conformance.Config {
	return conformance.Config{Base: b.base, ClientID: b.clientID, Key: b.key, KeyID: "conformance-1", Alg: "ES384",
		PollInterval: 200 * time.Millisecond, Progress: testWriter{t},
		// The audit trail is reached only by a scope that names it (smart/policy.go).
		Scope: "system/*.cruds system/AuditEvent.rs"}
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// billyKnownFailures are SHALL checks Billy fails today, each with the reason.
var billyKnownFailures = map[string]string{}

func TestConformanceAgainstBilly(t *testing.T) {
	t.Parallel()
	b := startConformanceBilly(t)
	cfg := b.config(t)
	rep, err := conformance.Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range rep.Notes {
		t.Errorf("note: %s", n)
	}
	if len(rep.Leftovers) > 0 {
		t.Errorf("the run left %v behind", rep.Leftovers)
	}
	for _, r := range rep.Results {
		_, known := billyKnownFailures[r.ID]
		switch {
		case r.Level == conformance.SHALL && r.Result.Status == conformance.Fail && !known:
			t.Errorf("%s failed: %s\n%s", r.ID, r.Result.Reason, exchangeText(r.Result.Exchange))
		case known && r.Result.Status != conformance.Fail:
			t.Errorf("%s is listed as a known failure but %s: update billyKnownFailures", r.ID, r.Result.Status)
		case r.Result.Status == conformance.Fail:
			t.Logf("%s %s failed: %s", r.Level, r.ID, r.Result.Reason)
		}
	}
	for _, l := range conformance.Levels {
		t.Logf("%s: %v", l, rep.Counts[l])
	}
	if dir := os.Getenv("BILLY_CONFORMANCE_REPORT_DIR"); dir != "" {
		if err := writeReports(rep, filepath.Join(dir, "billy.html"), filepath.Join(dir, "billy.json")); err != nil {
			t.Error(err)
		}
	}

	// Read-only, on the demo data: no fixtures, what it finds; skips instead of writes.
	if err := run(t.Context(), []string{"seed"}, b.env, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	ro := b.config(t)
	ro.ReadOnly, ro.Progress = true, nil
	roRep, err := conformance.Run(t.Context(), ro)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roRep.Results {
		if _, known := billyKnownFailures[r.ID]; r.Level == conformance.SHALL && r.Result.Status == conformance.Fail && !known {
			t.Errorf("read-only: %s failed: %s\n%s", r.ID, r.Result.Reason, exchangeText(r.Result.Exchange))
		}
		if r.Result.Status != conformance.Skip && !r.ReadOnly {
			t.Errorf("read-only: %s writes but ran", r.ID)
		}
	}
	for _, id := range []string{"search/string-default", "search/date-prefixes", "search/token-system-code", "crud/read", "capability/Patient/search/birthdate", "bulk/download"} {
		if r, _ := roRep.Result(id); r.Result.Status != conformance.Pass {
			t.Errorf("read-only on the demo data: %s %s (%s)", id, r.Result.Status, r.Result.Reason)
		}
	}
	t.Logf("read-only: %v", roRep.Counts)

	// The command: reports where asked, exit status non-zero only when a SHALL fails.
	dir := t.TempDir()
	cli := func(only string, extra ...string) (string, error) {
		var out bytes.Buffer
		args := append([]string{"conformance", "run", "--base", b.base, "--client-id", b.clientID, "--key", b.keyFile, "--only", only,
			"--report", filepath.Join(dir, "r.html"), "--json", filepath.Join(dir, "r.json")}, extra...)
		err := run(t.Context(), args, config.MapLookuper(nil), &out, io.Discard)
		return out.String(), err
	}
	if out, err := cli(`^(crud|search)/`); err != nil || !strings.Contains(out, "SHALL") {
		t.Errorf("billy conformance run --only crud and search: %v\n%s", err, out)
	}
	var js struct {
		Results []struct{ ID string }
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "r.json")); err != nil || json.Unmarshal(raw, &js) != nil || len(js.Results) < 20 {
		t.Errorf("JSON report: %v, %d results", err, len(js.Results))
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "r.html")); err != nil || !bytes.Contains(raw, []byte("search/paging")) {
		t.Errorf("HTML report: %v", err)
	}
	stu3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"resourceType":"CapabilityStatement","fhirVersion":"3.0.2","format":["json"],"rest":[{"mode":"server"}]}`)
	}))
	defer stu3.Close()
	if err := run(t.Context(), []string{"conformance", "run", "--base", stu3.URL, "--only", "^capability/metadata$"}, config.MapLookuper(nil), io.Discard, io.Discard); !errors.Is(err, errSHALLFailed) {
		t.Errorf("a failed SHALL check must fail the command: %v", err)
	}
	if _, err := cli(`^search/summary-count$`, "--read-only"); err != nil {
		t.Errorf("a read-only run skips what writes: %v", err)
	}
}

func exchangeText(ex *conformance.Exchange) string {
	if ex == nil {
		return ""
	}
	return ex.Method + " " + ex.URL + "\n" + ex.RequestBody + "\n→ " + itoa(ex.Status) + " " + ex.ResponseBody
}
