package smart

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/iambilly/billy/internal/pg/pgtest"
)

func TestCheckCanonicalJWS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, tok string
		ok        bool
	}{
		{"canonical", "eyJhbGciOiJSUzI1NiJ9.e30.AQID", true},
		{"empty signature (alg none is refused later)", "eyJhbGciOiJSUzI1NiJ9.e30.", true},
		{"one byte, padding bits clear", "eyJhbGciOiJSUzI1NiJ9.e30.AQ", true},
		{"one byte, a padding bit set", "eyJhbGciOiJSUzI1NiJ9.e30.AR", false},
		{"padded", "eyJhbGciOiJSUzI1NiJ9.e30.AQ==", false},
		{"line break", "eyJhbGciOiJSUzI1NiJ9.e30.AQ\nID", false},
		{"carriage return in the payload", "eyJhbGciOiJSUzI1NiJ9.e3\r0.AQID", false},
		{"standard alphabet", "eyJhbGciOiJSUzI1NiJ9.e30.+/+/", false},
		{"two segments", "eyJhbGciOiJSUzI1NiJ9.e30", false},
		{"four segments", "a.b.c.d", false},
	}
	for _, tt := range tests {
		if err := checkCanonicalJWS(tt.tok); (err == nil) != tt.ok {
			t.Errorf("%s: %q: err %v, want ok %v", tt.name, tt.tok, err, tt.ok)
		}
	}
}

// TestOwnTokenWithoutJTI: a token signed with Billy's key but without a jti cannot be revoked, so
// it is refused.
func TestOwnTokenWithoutJTI(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	now := func() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }
	cfg := Config{BaseURL: "https://billy.example", FHIRBase: "https://billy.example/fhir", Now: now}
	keys, err := newKeyring(pool, []byte("0123456789abcdef0123456789abcdef"), now)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.load(t.Context()); err != nil {
		t.Fatal(err)
	}
	v := newVerifier(cfg, keys, &storage{pool: pool, now: now}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	k, err := keys.signer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sign := func(jti string) string {
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.private}, (&jose.SignerOptions{}).WithHeader("kid", k.kid))
		if err != nil {
			t.Fatal(err)
		}
		tok, err := josejwt.Signed(sig).Claims(josejwt.Claims{Issuer: cfg.BaseURL, Subject: "s", Audience: josejwt.Audience{cfg.FHIRBase},
			Expiry: josejwt.NewNumericDate(now().Add(time.Hour)), IssuedAt: josejwt.NewNumericDate(now()), ID: jti}).
			Claims(ownClaims{Scope: "user/*.rs"}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if _, err := v.Verify(t.Context(), sign("")); err == nil || !strings.Contains(err.Error(), "jti") {
		t.Errorf("a token without a jti: %v", err)
	}
	p, err := v.Verify(t.Context(), sign("abc"))
	if err != nil || p.TokenID != "abc" {
		t.Errorf("a token with a jti: %v %+v", err, p)
	}
}
