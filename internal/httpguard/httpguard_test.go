package httpguard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/iambilly/billy/internal/httpguard"
)

func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	u := os.Getenv("BILLY_TEST_REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/15"
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// limiter has a prefix of its own, so tests sharing a Redis database never share buckets.
func limiter(t *testing.T) *httpguard.Limiter {
	return &httpguard.Limiter{Redis: testRedis(t), Prefix: fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())}
}

// TestAllow: a bucket of three gives three tokens, then refuses with a wait; other keys are not
// touched. The refill (one a day) is too slow to matter while the test runs.
func TestAllow(t *testing.T) {
	t.Parallel()
	l := limiter(t)
	lim := httpguard.Limit{Rate: 1.0 / 86400, Burst: 3}
	for i := range 3 {
		if ok, _, err := l.Allow(t.Context(), "a", lim); !ok || err != nil {
			t.Fatalf("token %d: %v %v", i+1, ok, err)
		}
	}
	ok, retry, err := l.Allow(t.Context(), "a", lim)
	if ok || err != nil || retry <= 0 {
		t.Errorf("fourth: ok %v, retry %s, %v; want a refusal with a wait", ok, retry, err)
	}
	if ok, _, err := l.Allow(t.Context(), "b", lim); !ok || err != nil {
		t.Errorf("another key: %v %v", ok, err)
	}
	if ok, _, _ := l.Allow(t.Context(), "a", httpguard.Limit{}); !ok {
		t.Error("a zero limit refused")
	}
}

// TestRedisDownLetsRequestsPass: without Redis the limiter reports the error and allows.
func TestRedisDownLetsRequestsPass(t *testing.T) {
	t.Parallel()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	l := &httpguard.Limiter{Redis: c, Prefix: "x:"}
	ok, _, err := l.Allow(context.Background(), "a", httpguard.Limit{Rate: 1, Burst: 1})
	if !ok || err == nil {
		t.Errorf("ok %v, err %v; want allowed with an error", ok, err)
	}
}

// TestPerAddressAndClient: the middleware answers 429 with Retry-After and an OperationOutcome;
// exempt addresses and requests without a client id pass.
func TestPerAddressAndClient(t *testing.T) {
	t.Parallel()
	l := limiter(t)
	lim := httpguard.Limit{Rate: 1.0 / 86400, Burst: 1}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})
	type ctxKey struct{}
	h := l.PerAddress(lim, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		l.PerClient(lim, func(ctx context.Context) string { s, _ := ctx.Value(ctxKey{}).(string); return s }, ok))
	send := func(addr, client string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/fhir/Patient", nil)
		r.RemoteAddr = addr
		if client != "" {
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, client))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := send("192.0.2.1:1000", ""); w.Code != http.StatusOK {
		t.Fatalf("first request: %d", w.Code)
	}
	w := send("192.0.2.1:1001", "")
	if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), `"code":"throttled"`) {
		t.Errorf("second request from the address: %d %s", w.Code, w.Body)
	}
	if n, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("Retry-After %q", w.Header().Get("Retry-After"))
	}
	for range 3 {
		if w := send("10.1.2.3:5", ""); w.Code != http.StatusOK {
			t.Errorf("exempt address: %d", w.Code)
		}
	}
	if w := send("10.1.2.3:5", "c1"); w.Code != http.StatusOK {
		t.Errorf("client c1, first: %d", w.Code)
	}
	if w := send("10.9.9.9:5", "c1"); w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "client") {
		t.Errorf("client c1 from another address: %d %s", w.Code, w.Body)
	}
	if w := send("10.9.9.9:5", "c2"); w.Code != http.StatusOK {
		t.Errorf("client c2: %d", w.Code)
	}
}

// TestHeaders: nosniff and no-referrer everywhere, HSTS only when asked, and HTML pages get the
// configured frame-ancestors in place of any they had.
func TestHeaders(t *testing.T) {
	t.Parallel()
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/page" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("X-Frame-Options", "DENY")
			w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; form-action 'self'")
		} else {
			w.Header().Set("Content-Type", "application/fhir+json")
		}
		_, _ = w.Write([]byte("x"))
	})
	for _, tc := range []struct {
		name     string
		policy   httpguard.HeaderPolicy
		path     string
		csp, xfo string
		hsts     bool
	}{
		{"api over http", httpguard.HeaderPolicy{FrameAncestors: "'self'"}, "/fhir/metadata", "", "", false},
		{"api over https", httpguard.HeaderPolicy{HSTS: true, FrameAncestors: "'self'"}, "/fhir/metadata", "", "", true},
		{"page embedded by an EMR", httpguard.HeaderPolicy{FrameAncestors: "'self' https://emr.example"}, "/page",
			"default-src 'none'; form-action 'self'; frame-ancestors 'self' https://emr.example", "", false},
		{"page never framed", httpguard.HeaderPolicy{FrameAncestors: "'none'"}, "/page",
			"default-src 'none'; form-action 'self'; frame-ancestors 'none'", "DENY", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			httpguard.Headers(tc.policy, page).ServeHTTP(w, httptest.NewRequest(http.MethodGet, tc.path, nil))
			h := w.Header()
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("base headers: %v", h)
			}
			if got := h.Get("Strict-Transport-Security") != ""; got != tc.hsts {
				t.Errorf("HSTS present %v, want %v", got, tc.hsts)
			}
			if h.Get("Content-Security-Policy") != tc.csp || h.Get("X-Frame-Options") != tc.xfo {
				t.Errorf("CSP %q, X-Frame-Options %q; want %q, %q", h.Get("Content-Security-Policy"), h.Get("X-Frame-Options"), tc.csp, tc.xfo)
			}
		})
	}
}

// BenchmarkAllow is the cost a rate limit adds to a request: one Redis round trip (the script is
// cached by SHA after the first call).
func BenchmarkAllow(b *testing.B) {
	u := os.Getenv("BILLY_TEST_REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/15"
	}
	opt, _ := redis.ParseURL(u)
	c := redis.NewClient(opt)
	defer c.Close()
	l := &httpguard.Limiter{Redis: c, Prefix: fmt.Sprintf("bench:%d:", time.Now().UnixNano())}
	lim := httpguard.Limit{Rate: 1e9, Burst: 1 << 30}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, _, err := l.Allow(context.Background(), "k", lim); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
}
