package smart_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/pg/pgtest"
	"github.com/iambilly/billy/smart"
	"github.com/iambilly/billy/smart/directory"
)

// The fuzz targets of the token boundary (README "Fuzzing"): anything presented as a bearer token
// or as a client assertion is refused cleanly (an error, a 4xx OAuth error, never a panic or a
// 5xx), and only the genuine article is accepted: the fuzzer cannot forge a signature, so any
// other accepted input is a bug.

type nopAudit struct{}

func (nopAudit) Audit(context.Context, smart.AuditEntry) {}

// fuzzServer is an authorization server on a fresh database, its clock fixed.
func fuzzServer(f *testing.F) (*smart.Server, string) {
	pool := pgtest.NewPool(f)
	base := "https://billy.example"
	now := func() time.Time { return time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC) }
	st := store.New(pool, store.WithBase(base+"/fhir"))
	srv, err := smart.New(context.Background(), smart.Config{BaseURL: base, FHIRBase: base + "/fhir", MasterKey: []byte("0123456789abcdef0123456789abcdef"), Now: now},
		pool, directory.Store{St: st}, nopAudit{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	return srv, base
}

// FuzzVerifyToken: Verify accepts exactly the tokens the server minted.
func FuzzVerifyToken(f *testing.F) {
	srv, _ := fuzzServer(f)
	ctx := context.Background()
	valid, err := srv.MintToken(ctx, "app", "user", "user/*.rs", smart.LaunchContext{}, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	for _, s := range []string{
		valid, valid + "=", valid[:len(valid)-1], parts[0] + "." + parts[1] + ".", parts[0] + ".." + parts[2],
		`eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.`, "a.b.c", "", ".", "....", strings.Repeat("a", 10000),
		`eyJhbGciOiJIUzI1NiIsImtpZCI6IngifQ.e30.AAAA`, "Bearer " + valid, valid + "\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		p, err := srv.Verifier().Verify(ctx, token)
		if err == nil && token != valid {
			t.Fatalf("accepted a token the server did not mint: %q (principal %+v)", token, p)
		}
		if err == nil && (p == nil || p.ClientID != "app") {
			t.Fatalf("the minted token verified to %+v", p)
		}
	})
}

// FuzzClientAssertion: the token endpoint answers any client assertion with a 4xx OAuth error,
// except the one genuine assertion of a registered backend client, once.
func FuzzClientAssertion(f *testing.F) {
	srv, base := fuzzServer(f)
	ctx := context.Background()
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES384", Use: "sig"}}})
	client, _, err := srv.CreateClient(ctx, smart.ClientSpec{Name: "Payer", Kind: smart.KindAsymmetric, Scopes: []string{"system/*.rs"}, JWKS: jwks, AuthAlg: "ES384"})
	if err != nil {
		f.Fatal(err)
	}
	sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	// The assertion's lifetime is checked against the wall clock by the OAuth library; the
	// property below holds whether or not it has expired.
	genuine, _ := josejwt.Signed(sig).Claims(josejwt.Claims{Issuer: client, Subject: client, Audience: josejwt.Audience{base + "/oauth2/token"},
		ID: "jti-1", Expiry: josejwt.NewNumericDate(time.Now().Add(4 * time.Minute))}).Serialize()
	parts := strings.Split(genuine, ".")
	for _, s := range []string{
		genuine, parts[0] + "." + parts[1] + ".", `eyJhbGciOiJub25lIn0.eyJpc3MiOiIiLCJzdWIiOiIifQ.`, "x", "", "a.b.c",
		parts[0] + ".eyJpc3MiOiJ4Iiwic3ViIjoieCIsImF1ZCI6WyJ4Il19." + parts[2], strings.Repeat(".", 1000),
		`eyJhbGciOiJFUzM4NCIsImtpZCI6ImsxIiwiY3JpdCI6WyJ4Il19.e30.AAAA`,
	} {
		f.Add(s)
	}
	h := srv.Handler()
	accepted := false
	f.Fuzz(func(t *testing.T, assertion string) {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
		req := httptest.NewRequest(http.MethodPost, base+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch {
		case w.Code >= 500:
			t.Fatalf("assertion %q: %d %s", assertion, w.Code, w.Body)
		case w.Code == http.StatusOK:
			if assertion != genuine || accepted {
				t.Fatalf("accepted assertion %q (genuine: %v, already used: %v)", assertion, assertion == genuine, accepted)
			}
			accepted = true
		default:
			var e struct{ Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" || w.Code < 400 {
				t.Fatalf("assertion %q: %d %s, want a 4xx OAuth error", assertion, w.Code, w.Body)
			}
		}
	})
}
