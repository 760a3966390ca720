package smart_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/iambilly/billy/smart"
)

const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// respellings returns other spellings of a compact JWS that lenient base64url decoders read as
// the same bytes: the signature's last character with a padding bit flipped (when its length
// leaves padding bits), the signature with "=" padding, and, when withNewline is set, a line
// break inside the signature (not sendable in a header, but in a form).
func respellings(t *testing.T, tok string, withNewline bool) map[string]string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	head, sig := tok[:i+1], tok[i+1:]
	// Padding is never due in base64url, and a stray "=" is trimmed all the same.
	out := map[string]string{"padded signature": head + sig + strings.Repeat("=", max((4-len(sig)%4)%4, 1))}
	if len(sig)%4 != 0 {
		last := strings.IndexByte(b64url, sig[len(sig)-1])
		out["last character respelled"] = head + sig[:len(sig)-1] + string(b64url[last^1])
	}
	if withNewline {
		out["line break in signature"] = head + sig[:10] + "\n" + sig[10:]
	}
	return out
}

// TestRevocationSurvivesRespelling revokes a token, then presents other spellings of it: the API
// and introspection must refuse each, and refuse them for a live token too.
func TestRevocationSurvivesRespelling(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client, key, kid := e.backendClient("system/*.rs")
	tokenURL := e.base + "/oauth2/token"
	n := 0
	assert := func(aud string) string {
		n++
		return assertion(t, key, jose.ES384, kid, client, aud, "resp-"+string(rune('a'+n)), time.Now().Add(4*time.Minute))
	}
	issue := func() string {
		r := e.form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assert(tokenURL)}}, "", "")
		if r.status != http.StatusOK {
			t.Fatalf("client_credentials: %d %s", r.status, r.body)
		}
		return r.json(t)["access_token"].(string)
	}
	introspect := func(tok string) map[string]any {
		return e.form("/oauth2/introspect", url.Values{"token": {tok}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion": {assert(e.base + "/oauth2/introspect")}}, "", "").json(t)
	}
	live, revoked := issue(), issue()
	if r := e.form("/oauth2/revoke", url.Values{"token": {revoked}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion": {assert(e.base + "/oauth2/revoke")}}, "", ""); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	e.clock.advance(6 * time.Second) // past the API's revocation list refresh
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, live, ""); r.status != http.StatusOK {
		t.Fatalf("the live token itself: %d %s", r.status, r.body)
	}
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, revoked, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("the revoked token itself: %d", r.status)
	}
	// Revoking another spelling of a token is refused, not silently ignored (fosite looks access
	// tokens up by their signature's text, so it would find nothing and answer 200).
	for name, v := range respellings(t, live, false) {
		r := e.form("/oauth2/revoke", url.Values{"token": {v}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion": {assert(e.base + "/oauth2/revoke")}}, "", "")
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, "canonical") {
			t.Errorf("revoke, %s: %d %s", name, r.status, r.body)
		}
	}
	for which, tok := range map[string]string{"revoked": revoked, "live": live} {
		for name, v := range respellings(t, tok, true) {
			if !strings.Contains(v, "\n") {
				if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, v, ""); r.status != http.StatusUnauthorized {
					t.Errorf("API, %s token, %s: %d, want 401", which, name, r.status)
				}
			}
			if in := introspect(v); in["active"] != false {
				t.Errorf("introspect, %s token, %s: %v, want active false", which, name, in)
			}
		}
	}
}

// TestRespelledAssertionsAndExternalTokens: a client assertion or a trusted issuer's token in a
// non-canonical spelling is refused, though its signature bytes verify.
func TestRespelledAssertionsAndExternalTokens(t *testing.T) {
	t.Parallel()
	p := newIDP(t)
	e := newEnv(t, smart.TrustedIssuer{Issuer: p.srv.URL})
	// An RS384 backend client: a 256-byte signature leaves padding bits in its last character.
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "r1", Algorithm: "RS384", Use: "sig"}}})
	client, _, err := e.srv.CreateClient(t.Context(), smart.ClientSpec{Name: "Payer RS", Kind: smart.KindAsymmetric, Scopes: []string{"system/*.rs"}, JWKS: jwks, AuthAlg: "RS384"})
	if err != nil {
		t.Fatal(err)
	}
	tokenURL := e.base + "/oauth2/token"
	ask := func(a string) resp {
		return e.form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}, "", "")
	}
	for name, a := range respellings(t, assertion(t, key, jose.RS384, "r1", client, tokenURL, "rs-0", time.Now().Add(4*time.Minute)), true) {
		if r := ask(a); r.status == http.StatusOK {
			t.Errorf("client assertion, %s: a token was issued", name)
		}
	}
	if r := ask(assertion(t, key, jose.RS384, "r1", client, tokenURL, "rs-1", time.Now().Add(4*time.Minute))); r.status != http.StatusOK {
		t.Errorf("the canonical assertion: %d %s", r.status, r.body)
	}

	// An id_token_hint in another spelling.
	c, redirect := e.registerPublic(appScopes)
	_, challenge := pkce()
	q := url.Values{"response_type": {"code"}, "client_id": {c}, "redirect_uri": {redirect}, "scope": {"openid patient/*.rs"}, "prompt": {"none"},
		"state": {"state-123456"}, "aud": {e.fhir}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
		"id_token_hint": {"eyJhbGciOiJSUzI1NiJ9.e30.AR"}}
	if r := e.do(mustReq(http.MethodGet, e.base+"/oauth2/authorize?"+q.Encode())); r.status != http.StatusBadRequest || !strings.Contains(r.body, "id_token_hint") {
		t.Errorf("a respelled id_token_hint: %d %s %s", r.status, r.header.Get("Location"), r.body)
	}

	ext := p.token(t, e.fhir, "patient/*.rs", e.p1)
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, ext, ""); r.status != http.StatusOK {
		t.Fatalf("the external token itself: %d %s", r.status, r.body)
	}
	for name, v := range respellings(t, ext, false) {
		if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, v, ""); r.status != http.StatusUnauthorized {
			t.Errorf("external token, %s: %d, want 401", name, r.status)
		}
		r := e.form("/oauth2/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {v},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}}, "", "")
		if r.status == http.StatusOK {
			t.Errorf("token exchange, %s: a token was issued", name)
		}
	}
}

// TestEveryTokenHasItsOwnJTI: access and id tokens from every flow carry a jti, all different.
func TestEveryTokenHasItsOwnJTI(t *testing.T) {
	t.Parallel()
	p := newIDP(t)
	e := newEnv(t, smart.TrustedIssuer{Issuer: p.srv.URL})
	var toks []string
	// Authorization code, then refresh.
	client, redirect := e.registerPublic(appScopes)
	verifier, challenge := pkce()
	q := e.authorizeFlow(client, redirect, "openid fhirUser launch/patient offline_access patient/*.rs", challenge, nil)
	r := e.form("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirect},
		"client_id": {client}, "code_verifier": {verifier}}, "", "")
	code := r.json(t)
	toks = append(toks, code["access_token"].(string), code["id_token"].(string))
	r = e.form("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {code["refresh_token"].(string)}, "client_id": {client}}, "", "")
	refreshed := r.json(t)
	toks = append(toks, refreshed["access_token"].(string), refreshed["id_token"].(string))
	// Backend services.
	bc, key, kid := e.backendClient("system/*.rs")
	for _, jti := range []string{"j1", "j2"} {
		r = e.form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion(t, key, jose.ES384, kid, bc, e.base+"/oauth2/token", jti, time.Now().Add(4*time.Minute))}}, "", "")
		toks = append(toks, r.json(t)["access_token"].(string))
	}
	// Token exchange and the administrator's tool.
	xc, xs := e.symmetricClient("patient/*.rs")
	r = e.form("/oauth2/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {p.token(t, e.fhir, "patient/*.rs", e.p1)},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}}, xc, xs)
	toks = append(toks, r.json(t)["access_token"].(string), e.mint("user/*.rs", ""), e.mint("user/*.rs", ""))

	seen := map[string]int{}
	for i, tok := range toks {
		parsed, err := josejwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		var c josejwt.Claims
		if err := parsed.UnsafeClaimsWithoutVerification(&c); err != nil {
			t.Fatal(err)
		}
		if c.ID == "" {
			t.Errorf("token %d has no jti", i)
			continue
		}
		if j, dup := seen[c.ID]; dup {
			t.Errorf("tokens %d and %d share the jti %s", j, i, c.ID)
		}
		seen[c.ID] = i
	}
}
