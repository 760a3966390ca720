package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// bearerGet sends GET url with a bearer token (none when empty).
func bearerGet(t *testing.T, url, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// checkThrottled asserts a 429 with Retry-After in whole seconds and a "throttled" OperationOutcome.
func checkThrottled(t *testing.T, resp *http.Response, body string) {
	t.Helper()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d %.200s, want 429", resp.StatusCode, body)
	}
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("Retry-After %q, want a positive number of seconds", resp.Header.Get("Retry-After"))
	}
	var oo struct {
		ResourceType string
		Issue        []struct{ Severity, Code, Diagnostics string }
	}
	if err := json.Unmarshal([]byte(body), &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 || oo.Issue[0].Code != "throttled" {
		t.Errorf("body %s, want an OperationOutcome with issue code throttled", body)
	}
}

// TestRateLimitPerAddress: a burst passes, the next request is 429 with Retry-After and an
// OperationOutcome. The refill rate is one request a day, so no timing is involved.
func TestRateLimitPerAddress(t *testing.T) {
	t.Parallel()
	base := startApp(t, testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1",
		"BILLY_RATE_LIMIT_ADDR_RATE", "0.00001", "BILLY_RATE_LIMIT_ADDR_BURST", "3", "BILLY_RATE_LIMIT_EXEMPT", "192.0.2.0/24"))
	for i := range 3 {
		if resp, body := bearerGet(t, base+"/fhir/metadata", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d of the burst: %d %.200s", i+1, resp.StatusCode, body)
		}
	}
	resp, body := bearerGet(t, base+"/fhir/Patient", "")
	checkThrottled(t, resp, body)
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("a 429 without the security headers: %v", resp.Header)
	}
}

// TestRateLimitExemptAddress: loopback is exempt from the per-address limit by default.
func TestRateLimitExemptAddress(t *testing.T) {
	t.Parallel()
	base := startApp(t, testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1",
		"BILLY_RATE_LIMIT_ADDR_RATE", "0.00001", "BILLY_RATE_LIMIT_ADDR_BURST", "1"))
	for i := range 5 {
		if resp, body := bearerGet(t, base+"/fhir/metadata", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d from an exempt address: %d %.200s", i+1, resp.StatusCode, body)
		}
	}
}

// TestRateLimitPerClient: client a exhausts its bucket and is refused; client b, from the same
// address, is not.
func TestRateLimitPerClient(t *testing.T) {
	t.Parallel()
	ln := listen(t)
	env := testEnv(t, "BILLY_BASE_URL", "http://"+ln.Addr().String(), "BILLY_RATE_LIMIT_CLIENT_RATE", "0.00001", "BILLY_RATE_LIMIT_CLIENT_BURST", "2")
	base := serveApp(t, env, ln, false)
	token := func(client string) string {
		var out bytes.Buffer
		if err := run(t.Context(), []string{"dev-token", "--client", client, "--scope", "system/*.rs"}, env, &out, io.Discard); err != nil {
			t.Fatalf("dev-token: %v", err)
		}
		return strings.TrimSpace(out.String())
	}
	a, b := token("client-a"), token("client-b")
	for i := range 2 {
		if resp, body := bearerGet(t, base+"/fhir/Patient", a); resp.StatusCode != http.StatusOK {
			t.Fatalf("client a, request %d: %d %.200s", i+1, resp.StatusCode, body)
		}
	}
	resp, body := bearerGet(t, base+"/fhir/Patient", a)
	checkThrottled(t, resp, body)
	for i := range 2 {
		if resp, body := bearerGet(t, base+"/fhir/Patient", b); resp.StatusCode != http.StatusOK {
			t.Fatalf("client b, request %d, after a was throttled: %d %.200s", i+1, resp.StatusCode, body)
		}
	}
}

// TestSecurityHeaders: nosniff everywhere, no HSTS over plain HTTP, and the login page's CSP names
// the configured frame-ancestors (with X-Frame-Options dropped, since it cannot list origins).
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	ln := listen(t)
	base := "http://" + ln.Addr().String()
	env := testEnv(t, "BILLY_BASE_URL", base, "BILLY_FRAME_ANCESTORS", "'self' https://emr.example")
	serveApp(t, env, ln, false)
	var out bytes.Buffer
	if err := run(t.Context(), []string{"clients", "create", "--name", "App", "--scope", "launch/patient patient/*.rs openid fhirUser",
		"--redirect-uri", "https://app.example/cb"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	client, _ := strings.CutPrefix(strings.TrimSpace(out.String()), "client_id: ")
	login := base + "/oauth2/authorize?" + url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {"https://app.example/cb"},
		"scope": {"launch/patient patient/*.rs openid fhirUser"}, "state": {"state-123456789"}, "aud": {base + "/fhir"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}.Encode()
	for _, path := range []string{"/fhir/metadata", "/healthz", "/fhir/Patient", "/oauth2/token"} {
		resp, _ := bearerGet(t, base+path, "")
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", path, resp.Header.Get("X-Content-Type-Options"))
		}
		if resp.Header.Get("Strict-Transport-Security") != "" {
			t.Errorf("%s: HSTS over plain HTTP", path)
		}
	}
	resp, body := bearerGet(t, login, "")
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("authorize error page: %d %s %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'self' https://emr.example") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("page CSP %q", csp)
	}
	if resp.Header.Get("X-Frame-Options") != "" {
		t.Errorf("X-Frame-Options %q alongside frame-ancestors", resp.Header.Get("X-Frame-Options"))
	}
}

// TestSlowClientsAreCut: a client that never finishes its headers, and one that stops sending its
// body, are disconnected by the server. The timeouts are short; the test only waits for the
// server to close (its own guard is generous), it measures nothing.
func TestSlowClientsAreCut(t *testing.T) {
	t.Parallel()
	base := startApp(t, testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1",
		"BILLY_HTTP_HEADER_TIMEOUT", "300ms", "BILLY_HTTP_BODY_TIMEOUT", "300ms", "BILLY_HTTP_IDLE_TIMEOUT", "300ms"))
	addr := strings.TrimPrefix(base, "http://")
	cases := map[string]string{
		"headers": "GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nX-Slow: ",
		"body":    "POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\nContent-Length: 100000\r\n\r\n{\"resourceType\":",
		"idle":    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
	}
	for name, send := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, send); err != nil {
				t.Fatal(err)
			}
			// The guard against a hang is the test's, not a measurement: the server's timeouts are
			// 300 ms, and we only check that it hangs up.
			_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
			got, err := io.ReadAll(bufio.NewReader(conn))
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server kept the connection open; read %q", got)
			}
			if name == "idle" && !strings.Contains(string(got), "200 OK") {
				t.Errorf("idle: the request itself was not answered: %q", got)
			}
		})
	}
}

// TestTLS: with a certificate configured Billy speaks TLS 1.2+ only and sends HSTS.
func TestTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	base := startApp(t, testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1", "BILLY_TLS_CERT_FILE", certFile, "BILLY_TLS_KEY_FILE", keyFile))
	addr := strings.TrimPrefix(base, "http://")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	resp, err := client.Get("https://" + addr + "/fhir/metadata")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("over TLS: %d %+v", resp.StatusCode, resp.TLS)
	}
	if !strings.Contains(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("HSTS %q", resp.Header.Get("Strict-Transport-Security"))
	}
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get("https://" + addr + "/fhir/metadata"); err == nil {
		resp.Body.Close()
		t.Errorf("a TLS 1.1 client was served")
	}
}

// selfSigned writes a self-signed certificate for localhost and 127.0.0.1.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<33, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
