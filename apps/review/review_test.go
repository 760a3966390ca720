package review_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iambilly/billy/apps/review"
)

// TestHandler checks what the server side of the app promises: its files with their types, the
// configuration the app reads, a Content-Security-Policy that lets it run only its own code and
// talk only to its own server, no Referer (the authorization code arrives in the URL), nothing
// cached, and nothing outside static/.
func TestHandler(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer((review.Handler(review.Config{FHIRBase: "https://billy.example/fhir"})))
	defer srv.Close()
	tests := []struct {
		name, path string
		status     int
		ctype      string
		contains   string
	}{
		{"index", "/apps/review/", 200, "text/html; charset=utf-8", `<script src="app.js" defer></script>`},
		{"index with the launch parameters", "/apps/review/?iss=https%3A%2F%2Fbilly.example%2Ffhir&launch=abc", 200, "text/html; charset=utf-8", "Billy Review"},
		{"script", "/apps/review/app.js", 200, "text/javascript; charset=utf-8", "code_challenge_method"},
		{"style", "/apps/review/app.css", 200, "text/css; charset=utf-8", "[hidden]"},
		{"config", "/apps/review/config.json", 200, "application/json", `"clientId":"billy-review"`},
		{"missing", "/apps/review/nope.js", 404, "", ""},
		{"outside", "/apps/review/../review.go", 404, "", ""},
		{"encoded outside", "/apps/review/%2e%2e/review.go", 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s: %d %.200s", tt.path, resp.StatusCode, b)
			}
			if tt.status != 200 {
				return
			}
			h := resp.Header
			if got := h.Get("Content-Type"); got != tt.ctype {
				t.Errorf("Content-Type %q, want %q", got, tt.ctype)
			}
			if !strings.Contains(string(b), tt.contains) {
				t.Errorf("body lacks %q", tt.contains)
			}
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("CSP %q allows inline or eval'd code", csp)
			}
			if h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("headers %v", h)
			}
		})
	}
	resp, err := http.Get(srv.URL + "/apps/review/config.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cfg map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"clientId": review.ClientID, "fhirBase": "https://billy.example/fhir", "scope": review.Scopes}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("config.json (-want +got):\n%s", diff)
	}
	if resp, err := http.Post(srv.URL+"/apps/review/", "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v %v", resp.Status, err)
	}
}
