package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkReadRateLimited is the cost of the abuse limits on a FHIR read with a token: the same
// read with both rate limits off, and with both on (per address, with loopback not exempt, and per
// client), in one run. Compare the ns/op of the two.
//
//	BILLY_TEST_REDIS_URL=redis://127.0.0.1:6379/6 go test -run '^$' -bench BenchmarkReadRateLimited -benchtime 5s ./cmd/billy/
func BenchmarkReadRateLimited(b *testing.B) {
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"limits-off", []string{"BILLY_RATE_LIMIT_ADDR_RATE", "0", "BILLY_RATE_LIMIT_CLIENT_RATE", "0"}},
		{"limits-on", []string{"BILLY_RATE_LIMIT_ADDR_RATE", "1e9", "BILLY_RATE_LIMIT_ADDR_BURST", "1000000000",
			"BILLY_RATE_LIMIT_EXEMPT", "192.0.2.0/24", "BILLY_RATE_LIMIT_CLIENT_RATE", "1e9", "BILLY_RATE_LIMIT_CLIENT_BURST", "1000000000"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ln := listen(b)
			base := "http://" + ln.Addr().String()
			env := testEnv(b, append([]string{"BILLY_BASE_URL", base}, tc.env...)...)
			serveApp(b, env, ln, false)
			var out bytes.Buffer
			if err := run(b.Context(), []string{"dev-token", "--scope", "system/*.cruds"}, env, &out, io.Discard); err != nil {
				b.Fatal(err)
			}
			tok := strings.TrimSpace(out.String())
			req, _ := http.NewRequest(http.MethodPut, base+"/fhir/Patient/bench", strings.NewReader(`{"resourceType":"Patient","id":"bench","active":true}`))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/fhir+json")
			if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode >= 300 {
				b.Fatalf("seed: %v %v", resp, err)
			} else {
				resp.Body.Close()
			}
			read := func() {
				req, _ := http.NewRequest(http.MethodGet, base+"/fhir/Patient/bench", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("read: %d", resp.StatusCode)
				}
			}
			for range 500 { // warm up: connections, prepared statements, the signing key cache
				read()
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					read()
				}
			})
		})
	}
}
