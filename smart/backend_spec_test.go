package smart_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/iambilly/billy/smart"
)

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// testKey is a client's key pair, made in the test.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv any
	pub  jose.JSONWebKey
}

func newKey(t *testing.T, alg jose.SignatureAlgorithm, kid, use string) testKey {
	t.Helper()
	k := testKey{kid: kid, alg: alg}
	switch alg {
	case jose.ES384:
		p, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k.priv, k.pub = p, jose.JSONWebKey{Key: &p.PublicKey, KeyID: kid, Algorithm: string(alg), Use: use}
	case jose.RS384:
		p, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		// A key without "alg" either: both are optional in RFC 7517.
		k.priv, k.pub = p, jose.JSONWebKey{Key: &p.PublicKey, KeyID: kid, Use: use}
	}
	return k
}

func keySet(keys ...testKey) jose.JSONWebKeySet {
	var s jose.JSONWebKeySet
	for _, k := range keys {
		s.Keys = append(s.Keys, k.pub)
	}
	return s
}

// jwksServer is a client's JWKS endpoint that rotates keys and fails on demand, and counts fetches.
type jwksServer struct {
	srv *httptest.Server
	mu  sync.Mutex
	by  map[string]*jwksState // by path
}

type jwksState struct {
	set          jose.JSONWebKeySet
	status       int  // answered instead of the set when not 0
	hang         bool // never answer
	cacheControl string
	fetches      int
	userAgent    string
}

func newJWKSServer(t *testing.T) *jwksServer {
	j := &jwksServer{by: map[string]*jwksState{}}
	j.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.mu.Lock()
		st := j.by[r.URL.Path]
		if st == nil {
			j.mu.Unlock()
			http.NotFound(w, r)
			return
		}
		st.fetches++
		st.userAgent = r.UserAgent()
		cp := *st
		j.mu.Unlock()
		switch {
		case cp.hang:
			select {
			case <-r.Context().Done():
			case <-time.After(time.Minute):
			}
			return
		case cp.status != 0:
			w.WriteHeader(cp.status)
			return
		}
		if cp.cacheControl != "" {
			w.Header().Set("Cache-Control", cp.cacheControl)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(cp.set)
	}))
	t.Cleanup(j.srv.Close)
	return j
}

// serve publishes a key set at path and returns its URL.
func (j *jwksServer) serve(path, cacheControl string, keys ...testKey) string {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.by[path] = &jwksState{set: keySet(keys...), cacheControl: cacheControl}
	return j.srv.URL + path
}

func (j *jwksServer) change(path string, f func(*jwksState)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f(j.by[path])
}

func (j *jwksServer) state(path string) jwksState {
	j.mu.Lock()
	defer j.mu.Unlock()
	return *j.by[path]
}

// spec is the fixture of TestBackendServicesSpec.
type spec struct {
	t        *testing.T
	e        *env
	idp      *idp
	jwks     *jwksServer
	tokenURL string
	n        int
}

// mod changes an assertion's header or claims.
type mod func(h map[jose.HeaderKey]any, c map[string]any)

func (s *spec) at(d time.Duration) int64 { return s.e.clock.now().Add(d).Unix() }

func withExp(d time.Duration) mod {
	return func(_ map[jose.HeaderKey]any, c map[string]any) { c["exp"] = d }
}
func withIat(d time.Duration) mod {
	return func(_ map[jose.HeaderKey]any, c map[string]any) { c["iat"] = d }
}
func withNbf(d time.Duration) mod {
	return func(_ map[jose.HeaderKey]any, c map[string]any) { c["nbf"] = d }
}
func withJTI(j string) mod { return func(_ map[jose.HeaderKey]any, c map[string]any) { c["jti"] = j } }
func withHeader(k string, v any) mod {
	return func(h map[jose.HeaderKey]any, _ map[string]any) { h[jose.HeaderKey(k)] = v }
}
func withClaim(k string, v any) mod {
	return func(_ map[jose.HeaderKey]any, c map[string]any) { c[k] = v }
}

// assert signs a client assertion for client with k: kid, iss = sub = client, aud the token URL, a
// fresh jti, iat now and exp in four minutes (times relative to the server's clock), then mods.
func (s *spec) assert(client string, k testKey, mods ...mod) string {
	s.t.Helper()
	s.n++
	h := map[jose.HeaderKey]any{"kid": k.kid}
	c := map[string]any{"iss": client, "sub": client, "aud": s.tokenURL, "jti": fmt.Sprintf("jti-%d", s.n),
		"iat": time.Duration(0), "exp": 4 * time.Minute}
	for _, m := range mods {
		m(h, c)
	}
	for name, v := range c {
		if d, ok := v.(time.Duration); ok {
			c[name] = s.at(d)
		}
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	for name, v := range h {
		if v != nil {
			opts = opts.WithHeader(name, v)
		}
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		s.t.Fatal(err)
	}
	payload, _ := json.Marshal(c)
	obj, err := sig.Sign(payload)
	if err != nil {
		s.t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// backend asks for a backend-services token with an assertion.
func (s *spec) backend(a string) resp {
	return s.e.form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
		"client_assertion_type": {jwtBearer}, "client_assertion": {a}}, "", "")
}

// client registers an asymmetric backend client with inline keys, or with a jwks_uri when uri is set.
func (s *spec) client(alg string, uri string, keys ...testKey) string {
	s.t.Helper()
	c := smart.ClientSpec{Name: "backend", Kind: smart.KindAsymmetric, Scopes: []string{"system/*.rs"}, AuthAlg: alg, JWKSURI: uri}
	if uri == "" {
		c.JWKS, _ = json.Marshal(keySet(keys...))
	}
	id, _, err := s.e.srv.CreateClient(s.t.Context(), c)
	if err != nil {
		s.t.Fatal(err)
	}
	return id
}

// subjectToken is a token of the trusted issuer that expires in exp (on the server's clock).
func (s *spec) subjectToken(exp time.Duration) string {
	s.t.Helper()
	sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS384, Key: s.idp.key}, (&jose.SignerOptions{}).WithHeader("kid", "emr-1"))
	now := s.e.clock.now()
	tok, err := josejwt.Signed(sig).Claims(josejwt.Claims{Issuer: s.idp.srv.URL, Subject: "dr-who", Audience: josejwt.Audience{s.e.fhir},
		Expiry: josejwt.NewNumericDate(now.Add(exp)), IssuedAt: josejwt.NewNumericDate(now)}).
		Claims(map[string]any{"scope": "patient/*.rs", "patient": s.e.p1}).Serialize()
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

func (s *spec) exchange(subject, user, pass string, extra url.Values) resp {
	v := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {subject},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}}
	for k, vs := range extra {
		v[k] = vs
	}
	return s.e.form("/oauth2/token", v, user, pass)
}

// introspect asks about tok as client (private_key_jwt with k).
func (s *spec) introspect(client string, k testKey, tok string) resp {
	return s.e.form("/oauth2/introspect", url.Values{"token": {tok}, "client_assertion_type": {jwtBearer},
		"client_assertion": {s.assert(client, k)}}, "", "")
}

func (s *spec) revoke(client string, k testKey, tok string) resp {
	return s.e.form("/oauth2/revoke", url.Values{"token": {tok}, "client_assertion_type": {jwtBearer},
		"client_assertion": {s.assert(client, k)}}, "", "")
}

func (s *spec) accessToken(r resp) string {
	s.t.Helper()
	tok, _ := r.json(s.t)["access_token"].(string)
	if tok == "" {
		s.t.Fatalf("no access token: %d %s", r.status, r.body)
	}
	return tok
}

// TestBackendServicesSpec runs every case of issue 19 against the real token, introspection and
// revocation endpoints: keys made here, a JWKS server that rotates keys and fails on demand, a
// local OpenID provider, and the server's clock moved by the test. Each case names the item
// and asserts the status and the error code of the answer.
func TestBackendServicesSpec(t *testing.T) {
	t.Parallel()
	provider := newIDP(t)
	e := newEnvWith(t, func(c *smart.Config) { c.JWKSTimeout = 300 * time.Millisecond }, smart.TrustedIssuer{Issuer: provider.srv.URL})
	s := &spec{t: t, e: e, idp: provider, jwks: newJWKSServer(t), tokenURL: e.base + "/oauth2/token"}

	es := newKey(t, jose.ES384, "es-1", "sig")
	es2 := newKey(t, jose.ES384, "es-2", "sig")
	rsNoUse := newKey(t, jose.RS384, "rs-1", "")
	encKey := newKey(t, jose.ES384, "enc-1", "enc")
	esClient := s.client("ES384", "", es)
	otherClient := s.client("ES384", "", es2)
	rsClient := s.client("RS384", "", rsNoUse)
	twoKeys := s.client("ES384", "", es, es2)
	oneKey := s.client("ES384", "", es2)
	encClient := s.client("ES384", "", encKey)
	u1 := newKey(t, jose.ES384, "u-1", "sig")
	uriClient := s.client("ES384", s.jwks.serve("/uri", "max-age=120", u1), u1)
	goneClient := s.client("ES384", s.jwks.serve("/gone", ""), u1)
	s.jwks.change("/gone", func(st *jwksState) { st.status = http.StatusNotFound })
	hangClient := s.client("ES384", s.jwks.serve("/hang", ""), u1)
	s.jwks.change("/hang", func(st *jwksState) { st.hang = true })
	secretClient, secret := e.symmetricClient("patient/*.rs")

	var (
		esToken, exchanged string
		shortLived         string
		replayed           = s.assert(esClient, es, withJTI("once"))
		shared             = "shared-jti"
	)
	admin := e.mint("system/*.cruds", "")
	app, redirect := e.registerPublic(appScopes) // origin http://localhost:9999
	otherApp, _ := e.registerPublic(appScopes)
	var refresh string

	type tcase struct {
		item   int
		name   string
		do     func() resp
		status int
		err    string            // the OAuth error code; "" for a success
		check  func(r resp) bool // more to assert, when set
	}
	ok := func(r resp) bool { return strings.Contains(r.body, "access_token") }
	active := func(want bool) func(r resp) bool {
		return func(r resp) bool { return r.json(t)["active"] == want }
	}
	cases := []tcase{
		// 1. Times in the past or future: 401 invalid_client, never a 500.
		{1, "exp in the past", func() resp {
			return s.backend(s.assert(esClient, es, withExp(-2*time.Minute), withIat(-6*time.Minute)))
		}, 401, "invalid_client", nil},
		{1, "nbf in the future", func() resp { return s.backend(s.assert(esClient, es, withNbf(2*time.Minute))) }, 401, "invalid_client", nil},
		{1, "iat in the future", func() resp { return s.backend(s.assert(esClient, es, withIat(2*time.Minute))) }, 401, "invalid_client", nil},
		{1, "no exp", func() resp { return s.backend(s.assert(esClient, es, withClaim("exp", nil))) }, 401, "invalid_client", nil},
		{1, "refusals are logged without the assertion", func() resp {
			a := s.assert(esClient, es, withExp(-2*time.Minute), withIat(-6*time.Minute))
			r := s.backend(a)
			if strings.Contains(e.logs.String(), a) || strings.Contains(e.logs.String(), strings.Split(a, ".")[2]) {
				t.Error("the log holds the assertion")
			}
			return r
		}, 401, "invalid_client", func(resp) bool {
			return strings.Contains(e.logs.String(), "client authentication refused") && strings.Contains(e.logs.String(), "expired")
		}},
		// 2. exp no more than five minutes after now and iat.
		{2, "exp 10 minutes ahead", func() resp { return s.backend(s.assert(esClient, es, withExp(10*time.Minute))) }, 401, "invalid_client", nil},
		{2, "exp 1 hour ahead", func() resp { return s.backend(s.assert(esClient, es, withExp(time.Hour))) }, 401, "invalid_client", nil},
		{2, "exp 1 year ahead", func() resp { return s.backend(s.assert(esClient, es, withExp(365*24*time.Hour))) }, 401, "invalid_client", nil},
		{2, "exp 7 minutes after iat", func() resp { return s.backend(s.assert(esClient, es, withIat(-3*time.Minute), withExp(4*time.Minute))) }, 401, "invalid_client", nil},
		{2, "exp exactly 5 minutes ahead", func() resp { return s.backend(s.assert(esClient, es, withExp(5*time.Minute))) }, 200, "", ok},
		// 3. jku and kid.
		{3, "jku on a client with inline keys", func() resp { return s.backend(s.assert(esClient, es, withHeader("jku", "https://evil.example/jwks"))) }, 401, "invalid_client", nil},
		{3, "jku other than the registered jwks_uri", func() resp {
			return s.backend(s.assert(uriClient, u1, withHeader("jku", s.jwks.srv.URL+"/elsewhere")))
		}, 401, "invalid_client", nil},
		{3, "jku equal to the registered jwks_uri", func() resp { return s.backend(s.assert(uriClient, u1, withHeader("jku", s.jwks.srv.URL+"/uri"))) }, 200, "", ok},
		{3, "no kid, the client has one key", func() resp { return s.backend(s.assert(oneKey, es2, withHeader("kid", nil))) }, 200, "", ok},
		{3, "no kid, the client has two keys", func() resp { return s.backend(s.assert(twoKeys, es, withHeader("kid", nil))) }, 401, "invalid_client", nil},
		{3, "unknown kid", func() resp { return s.backend(s.assert(esClient, es, withHeader("kid", "nobody"))) }, 401, "invalid_client", nil},
		{3, "a kid of the client's other key", func() resp { return s.backend(s.assert(twoKeys, es, withHeader("kid", "es-2"))) }, 401, "invalid_client", nil},
		// 4. jwks_uri that cannot be fetched: prompt invalid_client, one GET, by Billy's fetcher.
		{4, "jwks_uri answers 404", func() resp { return s.backend(s.assert(goneClient, u1)) }, 401, "invalid_client", func(resp) bool {
			return s.jwks.state("/gone").fetches == 1
		}},
		{4, "jwks_uri hangs", func() resp { return s.backend(s.assert(hangClient, u1)) }, 401, "invalid_client", func(resp) bool {
			return s.jwks.state("/hang").fetches == 1
		}},
		{8, "the JWKS is fetched by Billy's own client (no retrying client printing debug lines)", func() resp { return s.backend(s.assert(uriClient, u1)) }, 200, "", func(resp) bool {
			return s.jwks.state("/uri").userAgent == "billy-jwks/1"
		}},
		// 5. Error codes and jti per client.
		{5, "first use of a jti", func() resp { return s.backend(replayed) }, 200, "", ok},
		{5, "reused jti", func() resp { return s.backend(replayed) }, 401, "invalid_client", nil},
		{5, "a jti another client used", func() resp { return s.backend(s.assert(esClient, es, withJTI(shared))) }, 200, "", ok},
		{5, "the same jti from the other client", func() resp { return s.backend(s.assert(otherClient, es2, withJTI(shared))) }, 200, "", ok},
		{5, "wrong client_assertion_type", func() resp {
			return e.form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:saml2-bearer"}, "client_assertion": {s.assert(esClient, es)}}, "", "")
		}, 401, "invalid_client", nil},
		{5, "missing client_assertion_type", func() resp {
			return e.form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
				"client_assertion": {s.assert(esClient, es)}}, "", "")
		}, 401, "invalid_client", nil},
		{5, "grant_type=password", func() resp {
			return e.form("/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"doc"}, "password": {"correct horse battery"},
				"client_assertion_type": {jwtBearer}, "client_assertion": {s.assert(esClient, es)}}, "", "")
		}, 400, "unsupported_grant_type", nil},
		{5, "RS384 key registered without use or alg", func() resp { return s.backend(s.assert(rsClient, rsNoUse)) }, 200, "", ok},
		{5, "a key registered for encryption", func() resp { return s.backend(s.assert(encClient, encKey)) }, 401, "invalid_client", nil},
		{5, "an HS256 assertion", func() resp {
			sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
			a, _ := josejwt.Signed(sig).Claims(josejwt.Claims{Issuer: esClient, Subject: esClient, Audience: josejwt.Audience{s.tokenURL}, ID: "hs",
				Expiry: josejwt.NewNumericDate(e.clock.now().Add(time.Minute))}).Serialize()
			return s.backend(a)
		}, 401, "invalid_client", nil},
		// 6. Introspection and revocation.
		{6, "a token for the client", func() resp { r := s.backend(s.assert(esClient, es)); esToken = s.accessToken(r); return r }, 200, "", ok},
		{6, "introspection by the token's client", func() resp { return s.introspect(esClient, es, esToken) }, 200, "", active(true)},
		{6, "introspection by another client", func() resp { return s.introspect(otherClient, es2, esToken) }, 200, "", active(false)},
		{6, "introspection by an administrator", func() resp {
			req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth2/introspect", strings.NewReader(url.Values{"token": {esToken}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+admin)
			return e.do(req)
		}, 200, "", active(true)},
		{6, "introspection of a trusted issuer's token", func() resp { return s.introspect(esClient, es, s.subjectToken(time.Hour)) }, 200, "", active(false)},
		{6, "revocation of another client's token", func() resp { return s.revoke(otherClient, es2, esToken) }, 400, "unauthorized_client", func(resp) bool {
			return s.introspect(esClient, es, esToken).json(t)["active"] == true
		}},
		{6, "revocation by the token's client", func() resp { return s.revoke(esClient, es, esToken) }, 200, "", func(resp) bool {
			return s.introspect(esClient, es, esToken).json(t)["active"] == false
		}},
		{6, "an app's refresh token", func() resp {
			verifier, challenge := pkce()
			q := e.authorizeFlow(app, redirect, "openid launch/patient offline_access patient/*.rs", challenge, nil)
			r := e.form("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirect},
				"client_id": {app}, "code_verifier": {verifier}}, "", "")
			refresh, _ = r.json(t)["refresh_token"].(string)
			return r
		}, 200, "", func(resp) bool { return refresh != "" }},
		{6, "revocation of another app's refresh token", func() resp {
			return e.form("/oauth2/revoke", url.Values{"token": {refresh}, "client_id": {otherApp}}, "", "")
		}, 400, "unauthorized_client", nil},
		{6, "the refresh token still works", func() resp {
			r := e.form("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {app}}, "", "")
			refresh, _ = r.json(t)["refresh_token"].(string)
			return r
		}, 200, "", ok},
		{6, "revocation of the refresh token by its app", func() resp {
			return e.form("/oauth2/revoke", url.Values{"token": {refresh}, "client_id": {app}}, "", "")
		}, 200, "", nil},
		{6, "the revoked refresh token", func() resp {
			return e.form("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {app}}, "", "")
		}, 400, "invalid_grant", nil},
		{6, "revocation of an unknown token", func() resp {
			return e.form("/oauth2/revoke", url.Values{"token": {"nothing.here"}, "client_id": {app}}, "", "")
		}, 200, "", nil},
		{6, "a token one minute from its exp", func() resp {
			tok, err := e.srv.MintToken(t.Context(), esClient, esClient, "system/*.rs", smart.LaunchContext{}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			shortLived = tok
			return s.introspect(esClient, es, shortLived)
		}, 200, "", active(true)},
		{6, "introspection at exp (no grace)", func() resp { e.clock.advance(time.Minute); return s.introspect(esClient, es, shortLived) }, 200, "", active(false)},
		// 7. Token exchange.
		{7, "exchange without client authentication", func() resp { return s.exchange(s.subjectToken(time.Hour), "", "", nil) }, 401, "invalid_client", nil},
		{7, "exchange of an invalid subject token", func() resp { return s.exchange("not-a-token", secretClient, secret, nil) }, 400, "invalid_request", nil},
		{7, "exchange of an expired subject token", func() resp { return s.exchange(s.subjectToken(-time.Minute), secretClient, secret, nil) }, 400, "invalid_request", nil},
		{7, "exchange of a subject token with 20 s left", func() resp {
			r := s.exchange(s.subjectToken(20*time.Second), secretClient, secret, nil)
			exchanged, _ = r.json(t)["access_token"].(string)
			return r
		}, 200, "", func(r resp) bool {
			exp := r.json(t)["expires_in"].(float64)
			parsed, err := josejwt.ParseSigned(exchanged, []jose.SignatureAlgorithm{jose.RS256})
			var c josejwt.Claims
			if err == nil {
				err = parsed.UnsafeClaimsWithoutVerification(&c)
			}
			return err == nil && exp > 0 && exp <= 20 && !c.Expiry.Time().After(e.clock.now().Add(20*time.Second))
		}},
		{7, "the exchanged token works", func() resp { return e.fhirDo(http.MethodGet, "Patient/"+e.p1, exchanged, "") }, 200, "", nil},
		{7, "revoking the exchanged token", func() resp {
			return e.form("/oauth2/revoke", url.Values{"token": {exchanged}}, secretClient, secret)
		}, 200, "", func(resp) bool {
			e.clock.advance(6 * time.Second) // the API's revocation list
			return e.fhirDo(http.MethodGet, "Patient/"+e.p1, exchanged, "").status == http.StatusUnauthorized
		}},
		{7, "a dev-token is revocable", func() resp {
			tok := e.mint("user/*.rs", "")
			if err := e.srv.RevokeToken(t.Context(), tok); err != nil {
				t.Fatal(err)
			}
			e.clock.advance(6 * time.Second)
			return e.fhirDo(http.MethodGet, "Patient/"+e.p1, tok, "")
		}, 401, "", nil},
		// 8. Discovery and responses.
		{8, "client_secret_post for a symmetric client", func() resp {
			return s.exchange(s.subjectToken(time.Hour), "", "", url.Values{"client_id": {secretClient}, "client_secret": {secret}})
		}, 200, "", ok},
		{8, "a wrong client_secret_post", func() resp {
			return s.exchange(s.subjectToken(time.Hour), "", "", url.Values{"client_id": {secretClient}, "client_secret": {"nope"}})
		}, 401, "invalid_client", nil},
		{8, "WWW-Authenticate names invalid_token and is exposed to browser apps", func() resp {
			req, _ := http.NewRequest(http.MethodGet, e.fhir+"/Patient", nil)
			req.Header.Set("Authorization", "Bearer not-a-token")
			req.Header.Set("Origin", "http://localhost:9999")
			return e.do(req)
		}, 401, "", func(r resp) bool {
			return strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) &&
				strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate")
		}},
		{8, "registration echoes redirect_uris and the grant types granted", func() resp {
			jwks, _ := json.Marshal(keySet(es))
			body, _ := json.Marshal(map[string]any{"client_name": "Payer", "token_endpoint_auth_method": "private_key_jwt", "scope": "system/*.rs",
				"jwks": json.RawMessage(jwks), "token_endpoint_auth_signing_alg": "ES384"})
			req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth2/register", strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+admin)
			return e.do(req)
		}, 201, "", func(r resp) bool {
			m := r.json(t)
			grants := fmt.Sprint(m["grant_types"])
			uris, isList := m["redirect_uris"].([]any)
			return isList && len(uris) == 0 && strings.Contains(grants, "client_credentials") && !strings.Contains(grants, "authorization_code")
		}},
		{8, "registration refuses a grant type the client cannot have", func() resp {
			body := `{"client_name":"App","token_endpoint_auth_method":"none","scope":"patient/*.rs","redirect_uris":["https://app.example/cb"],"grant_types":["client_credentials"]}`
			req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth2/register", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+admin)
			return e.do(req)
		}, 400, "invalid_client_metadata", nil},
	}
	// 4. The JWKS cache window (Cache-Control max-age within [1 min, 1 h], 5 min without) and the
	// rate of re-fetches on unknown kids: each block publishes a key, uses it, rotates it out,
	// and moves the clock.
	window := func(path, cacheControl string, within, after time.Duration) {
		old, next := newKey(t, jose.ES384, path+"-old", "sig"), newKey(t, jose.ES384, path+"-new", "sig")
		var client string
		cases = append(cases,
			tcase{4, path + ": first use", func() resp {
				client = s.client("ES384", s.jwks.serve(path, cacheControl, old))
				r := s.backend(s.assert(client, old))
				s.jwks.change(path, func(st *jwksState) { st.set = keySet(next) }) // rotated out
				return r
			}, 200, "", ok},
			tcase{4, path + ": a rotated-out key within the window", func() resp { e.clock.advance(within); return s.backend(s.assert(client, old)) }, 200, "", func(resp) bool {
				return s.jwks.state(path).fetches == 1
			}},
			tcase{4, path + ": a rotated-out key after the window", func() resp { e.clock.advance(after - within); return s.backend(s.assert(client, old)) }, 401, "invalid_client", func(resp) bool {
				return s.jwks.state(path).fetches == 2
			}},
			tcase{4, path + ": the new key", func() resp { return s.backend(s.assert(client, next)) }, 200, "", nil},
		)
	}
	window("/maxage-120", "public, max-age=120", 90*time.Second, 121*time.Second)
	window("/maxage-5", "max-age=5", 30*time.Second, 61*time.Second)                         // at least a minute
	window("/no-store", "no-store", 30*time.Second, 61*time.Second)                          // at least a minute
	window("/maxage-day", "max-age=86400", 59*time.Minute, 61*time.Minute)                   // at most an hour
	window("/no-cache-control", "", 4*time.Minute+50*time.Second, 5*time.Minute+time.Second) // five minutes
	// Unknown kids re-fetch at most once a minute per client.
	rl := newKey(t, jose.ES384, "rl-1", "sig")
	var rlClient string
	for i := range 5 {
		cases = append(cases, tcase{4, fmt.Sprintf("unknown kid %d within a minute", i), func() resp {
			if i == 0 {
				rlClient = s.client("ES384", s.jwks.serve("/rl", "max-age=3600", rl))
				if r := s.backend(s.assert(rlClient, rl)); r.status != 200 {
					t.Fatalf("rate-limit client: %d %s", r.status, r.body)
				}
			}
			return s.backend(s.assert(rlClient, rl, withHeader("kid", fmt.Sprintf("made-up-%d", i))))
		}, 401, "invalid_client", func(resp) bool { return s.jwks.state("/rl").fetches == 1 }})
	}
	cases = append(cases,
		tcase{4, "an unknown kid a minute later re-fetches once", func() resp {
			e.clock.advance(61 * time.Second)
			s.backend(s.assert(rlClient, rl, withHeader("kid", "made-up-a")))
			return s.backend(s.assert(rlClient, rl, withHeader("kid", "made-up-b")))
		}, 401, "invalid_client", func(resp) bool { return s.jwks.state("/rl").fetches == 2 }},
		tcase{4, "a key added to the JWKS is found on the next allowed re-fetch", func() resp {
			added := newKey(t, jose.ES384, "rl-2", "sig")
			s.jwks.change("/rl", func(st *jwksState) { st.set = keySet(rl, added) })
			e.clock.advance(61 * time.Second)
			return s.backend(s.assert(rlClient, added))
		}, 200, "", ok},
	)

	// The server's clock, more than an hour ahead of the wall clock by now, dates fosite's tokens too.
	var late string
	cases = append(cases,
		tcase{0, "a backend token is dated by the server's clock", func() resp { r := s.backend(s.assert(esClient, es)); late = s.accessToken(r); return r }, 200, "", func(r resp) bool {
			parsed, err := josejwt.ParseSigned(late, []jose.SignatureAlgorithm{jose.RS256})
			var c josejwt.Claims
			if err == nil {
				err = parsed.UnsafeClaimsWithoutVerification(&c)
			}
			now := e.clock.now().Truncate(time.Second)
			return err == nil && c.IssuedAt.Time().Equal(now) && c.Expiry.Time().Equal(now.Add(5*time.Minute)) && r.json(t)["expires_in"] == 300.0
		}},
		tcase{0, "and the API accepts it", func() resp { return e.fhirDo(http.MethodGet, "Patient/"+e.p1, late, "") }, 200, "", nil},
	)

	t.Logf("%d cases", len(cases))
	for _, tc := range cases {
		r := tc.do()
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal([]byte(r.body), &body)
		if r.status >= 500 {
			t.Errorf("item %d, %s: %d %s", tc.item, tc.name, r.status, short(r.body))
			continue
		}
		if r.status != tc.status || body.Error != tc.err {
			t.Errorf("item %d, %s: got %d %q, want %d %q (%s)", tc.item, tc.name, r.status, body.Error, tc.status, tc.err, short(r.body))
			continue
		}
		if tc.err != "" && body.Description == "" {
			t.Errorf("item %d, %s: no error_description", tc.item, tc.name)
		}
		if tc.check != nil && !tc.check(r) {
			t.Errorf("item %d, %s: %d %s: the answer is not what the spec says", tc.item, tc.name, r.status, short(r.body))
		}
	}
}

// short cuts a body for a failure message (and keeps tokens out of it).
func short(body string) string {
	if strings.Contains(body, "access_token") {
		return "(a token response)"
	}
	if len(body) > 300 {
		return body[:300] + "..."
	}
	return body
}
