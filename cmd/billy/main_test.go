package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iambilly/billy/internal/config"
	"github.com/iambilly/billy/internal/pg/pgtest"
)

func testEnv(t testing.TB, extra ...string) config.Lookuper {
	t.Helper()
	env := map[string]string{
		"BILLY_DATABASE_URL": pgtest.NewDB(t),
		"BILLY_REDIS_URL":    testRedisURL(),
		"BILLY_LOG_LEVEL":    "warn",
		"BILLY_MASTER_KEY":   "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"BILLY_DATA_DIR":     t.TempDir(),
		// Tests fire requests as fast as they can; the rate limits have tests of their own (guard_test.go).
		"BILLY_RATE_LIMIT_CLIENT_RATE": "0",
		// Tests share a Redis database; each gets a queue of its own.
		"BILLY_PIPELINE_QUEUE": fmt.Sprintf("test-%s-%d", t.Name(), time.Now().UnixNano()),
	}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return config.MapLookuper(env)
}

// testRedisURL is BILLY_TEST_REDIS_URL (DESIGN.md), default database 15.
func testRedisURL() string {
	if u := os.Getenv("BILLY_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/15"
}

// startApp serves a wired app on a random port until the test ends.
func startApp(t *testing.T, env config.Lookuper) string {
	t.Helper()
	return startAppWith(t, env, false)
}

// startAppWith serves a wired app, with the pipeline worker when worker is set (otherwise with the
// outbox relay only), until the test ends.
func startAppWith(t *testing.T, env config.Lookuper, worker bool) string {
	t.Helper()
	return serveApp(t, env, listen(t), worker)
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveApp serves a wired app on ln (its base URL is ln's address, whatever env says) until the
// test ends.
func serveApp(t testing.TB, env config.Lookuper, ln net.Listener, worker bool) string {
	t.Helper()
	return serveAppWith(t, env, ln, testServe{worker: worker})
}

// testServe are serveAppWith's choices: the pipeline worker, the base URL the app announces
// (default http://ln's address; a proxy's in front of it) and where its log goes (default nowhere).
type testServe struct {
	worker  bool
	baseURL string
	logs    io.Writer
}

// serveAppWith serves a wired app on ln until the test ends, and returns its base URL.
func serveAppWith(t testing.TB, env config.Lookuper, ln net.Listener, o testServe) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg, err := loadConfig(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BaseURL = cmp.Or(o.baseURL, "http://"+ln.Addr().String())
	a, err := newApp(ctx, cfg, newLogger(cfg, cmp.Or[io.Writer](o.logs, io.Discard)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx, ln, o.worker, env) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("graceful shutdown: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("server did not shut down")
		}
		a.Close()
	})
	return cfg.BaseURL
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestServeOperations(t *testing.T) {
	t.Parallel()
	base := startApp(t, testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1"))
	if code, _, body := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("healthz: %d %s", code, body)
	}
	if code, _, body := get(t, base+"/readyz"); code != 200 || body != `{"database":"up","redis":"up"}` {
		t.Errorf("readyz: %d %s", code, body)
	}
	if code, _, _ := get(t, base+"/fhir/metadata"); code != 200 {
		t.Errorf("metadata: %d", code)
	}
	resp, err := http.Post(base+"/fhir/Patient", "application/fhir+json", strings.NewReader(`{"resourceType":"Patient"}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create: %v %v", err, resp)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("responses carry X-Request-Id")
	}
	_, _, metrics := get(t, base+"/metrics")
	for _, want := range []string{`billy_fhir_requests_total{code="201",interaction="create",type="Patient"} 1`, `billy_fhir_request_duration_seconds_bucket{interaction="capabilities"`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestAuthOnByDefault(t *testing.T) {
	t.Parallel()
	base := startApp(t, testEnv(t))
	code, h, body := get(t, base+"/fhir/Patient/x")
	if code != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") || !strings.Contains(body, "OperationOutcome") {
		t.Errorf("unauthenticated read: %d %q %s", code, h.Get("WWW-Authenticate"), body)
	}
	if code, _, body := get(t, base+"/fhir/.well-known/smart-configuration"); code != 200 || !strings.Contains(body, `"S256"`) {
		t.Errorf("smart-configuration: %d %s", code, body)
	}
	if code, _, _ := get(t, base+"/fhir/metadata"); code != 200 {
		t.Errorf("metadata must stay public: %d", code)
	}
}

func TestReadyzReportsRedisDown(t *testing.T) {
	t.Parallel()
	base := startApp(t, testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1", "BILLY_REDIS_URL", "redis://127.0.0.1:1/0"))
	if code, _, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, `"redis":"down"`) {
		t.Errorf("readyz with Redis down: %d %s", code, body)
	}
}

func TestSeedIsIdempotent(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	for i, want := range []string{"201 Created", "200 OK"} {
		var out bytes.Buffer
		if err := run(t.Context(), []string{"seed"}, env, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(out.String(), want); n != 21 {
			t.Errorf("seed run %d: %d entries %q, want 21:\n%s", i+1, n, want, out.String())
		}
	}
}

func TestCommandLine(t *testing.T) {
	t.Parallel()
	if err := run(t.Context(), nil, config.MapLookuper(nil), io.Discard, io.Discard); err == nil {
		t.Error("no command must be an error")
	}
	if err := run(t.Context(), []string{"frobnicate"}, config.MapLookuper(nil), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown command: %v", err)
	}
	err := run(t.Context(), []string{"serve"}, config.MapLookuper(map[string]string{"BILLY_AUTH": "none"}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "BILLY_DEV") {
		t.Errorf("serve with auth none and no dev flag must refuse: %v", err)
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"version"}, config.MapLookuper(nil), &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "billy ") {
		t.Errorf("version: %v %q", err, out.String())
	}
}

// unreachableEnv is a configuration whose database and Redis nothing listens on: a command that
// tries to run with it fails.
func unreachableEnv(t *testing.T) (config.Lookuper, string) {
	t.Helper()
	dir := t.TempDir()
	return config.MapLookuper(map[string]string{
		"BILLY_DATABASE_URL": "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1",
		"BILLY_REDIS_URL":    "redis://127.0.0.1:1/0",
		"BILLY_MASTER_KEY":   "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"BILLY_DATA_DIR":     dir,
		"BILLY_BASE_URL":     "http://127.0.0.1:1",
	}), dir
}

// TestHelpTouchesNothing is finding A5 of issue 10: worker --help started a worker, migrate --help
// migrated, seed --help opened a file named --help. Every command of the table answers -h and
// --help with its usage, exit 0, and does nothing.
func TestHelpTouchesNothing(t *testing.T) {
	t.Parallel()
	for _, c := range commands {
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}, {c.name, "import", "x", "--help"}} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()
				env, dir := unreachableEnv(t)
				var stdout, stderr bytes.Buffer
				if err := run(t.Context(), args, env, &stdout, &stderr); err != nil {
					t.Fatalf("exit with %v; stderr: %s", err, stderr.String())
				}
				if !strings.HasPrefix(stdout.String(), "usage: billy "+c.name) {
					t.Errorf("stdout does not start with the usage:\n%s", stdout.String())
				}
				if entries, _ := os.ReadDir(dir); len(entries) > 0 {
					t.Errorf("help wrote into the data directory: %v", entries)
				}
			})
		}
	}
	// Flag defaults come with the usage.
	var out bytes.Buffer
	env, _ := unreachableEnv(t)
	for _, args := range [][]string{{"serve", "--help"}, {"codes", "--help"}, {"dev-token", "--help"}, {"dev-login", "--help"}} {
		out.Reset()
		if err := run(t.Context(), args, env, &out, io.Discard); err != nil || !strings.Contains(out.String(), "flags:\n  -") {
			t.Errorf("%v: no flags in the help (%v):\n%s", args, err, out.String())
		}
	}
}

func TestTopLevelHelpAndVersion(t *testing.T) {
	t.Parallel()
	env, _ := unreachableEnv(t)
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		var out bytes.Buffer
		if err := run(t.Context(), args, env, &out, io.Discard); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		for _, c := range commands {
			if !strings.Contains(out.String(), "\n  "+c.name+" ") {
				t.Errorf("%v does not list %s:\n%s", args, c.name, out.String())
			}
		}
		for _, v := range []string{"BILLY_DATABASE_URL", "BILLY_REDIS_URL", "BILLY_MASTER_KEY", "BILLY_PIPELINE_REPLAY_AFTER", "BILLY_STT_*"} {
			if !strings.Contains(out.String(), v) {
				t.Errorf("%v does not point at %s", args, v)
			}
		}
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		var out bytes.Buffer
		if err := run(t.Context(), args, env, &out, io.Discard); err != nil || out.String() != "billy "+version+"\n" {
			t.Errorf("%v: %v %q", args, err, out.String())
		}
	}
	for _, args := range [][]string{{"migrate", "now"}, {"worker", "x"}, {"serve", "extra"}, {"help", "nope"}} {
		if err := run(t.Context(), args, env, io.Discard, io.Discard); err == nil {
			t.Errorf("%v must be refused", args)
		}
	}
}
