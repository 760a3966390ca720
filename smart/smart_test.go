package smart_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/rest"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/pg/pgtest"
	"github.com/iambilly/billy/smart"
	"github.com/iambilly/billy/smart/directory"
)

var validator = func() *resource.Validator {
	v, err := resource.NewValidator()
	if err != nil {
		panic(err)
	}
	return v
}()

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a Billy with SMART on a fresh database: FHIR API, authorization server, and two patients
// with an observation each.
type env struct {
	t       *testing.T
	base    string // server base URL
	fhir    string // FHIR base
	srv     *smart.Server
	st      *store.Store
	clock   *clock
	http    *http.Client
	p1, p2  string // patient ids
	audits  *auditLog
	trusted []smart.TrustedIssuer
	pool    *pgxpool.Pool
	logs    *syncBuffer // what the server logged
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type auditLog struct {
	mu      sync.Mutex
	entries []smart.AuditEntry
}

func (a *auditLog) Audit(_ context.Context, e smart.AuditEntry) {
	a.mu.Lock()
	a.entries = append(a.entries, e)
	a.mu.Unlock()
}

func (a *auditLog) count(action, outcome string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.entries {
		if e.Action == action && e.Outcome == outcome {
			n++
		}
	}
	return n
}

// The test patients: p1 with an MR-typed identifier that is not its first, p2 with a name that
// needs HTML escaping and only an untyped identifier.
const (
	patient1JSON = `{"resourceType":"Patient","name":[{"use":"old","family":"Former"},{"use":"official","given":["Ann","Marie"],"family":"One"}],` +
		`"gender":"female","birthDate":"1980-02-03","identifier":[{"system":"urn:oid:2.16.840.1.113883.4.1","value":"999-00-1111"},` +
		`{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"urn:billy:mrn","value":"MRN-0001"}]}`
	patient2JSON = `{"resourceType":"Patient","name":[{"given":["<b>Zoë</b>"],"family":"O'Brien & Two"}],"gender":"male","birthDate":"1975",` +
		`"identifier":[{"system":"urn:billy:account","value":"ACC-<22>"}]}`
	patient1Name = "Ann Marie One"
	patient2Name = "<b>Zoë</b> O'Brien & Two"
)

func newEnv(t *testing.T, trusted ...smart.TrustedIssuer) *env {
	t.Helper()
	return newEnvWith(t, nil, trusted...)
}

// newEnvWith is newEnv with the server's configuration adjusted by configure.
func newEnvWith(t *testing.T, configure func(*smart.Config), trusted ...smart.TrustedIssuer) *env {
	t.Helper()
	pool := pgtest.NewPool(t)
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	e := &env{t: t, base: ts.URL, fhir: ts.URL + "/fhir", clock: &clock{t: time.Now()}, audits: &auditLog{}, trusted: trusted, pool: pool}
	e.st = store.New(pool, store.WithBase(e.fhir))
	e.logs = &syncBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(os.Stderr, e.logs), &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := smart.Config{BaseURL: ts.URL, FHIRBase: e.fhir, MasterKey: []byte("0123456789abcdef0123456789abcdef"),
		Now: e.clock.now, Trusted: trusted}
	if configure != nil {
		configure(&cfg)
	}
	srv, err := smart.New(t.Context(), cfg, pool, directory.Store{St: e.st}, e.audits, log)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	api := rest.New(rest.Config{Base: e.fhir, MaxBodyBytes: 1 << 20, MaxBundleEntries: 100}, e.st, validator, smart.Authorizer{}, log, prometheus.NewRegistry())
	fhirAPI := srv.CORS(srv.Verifier().Middleware(http.StripPrefix("/fhir", api.Handler())))
	oauth := srv.Handler()
	mux.Handle("/oauth2/", oauth)
	mux.Handle("/.well-known/openid-configuration", oauth)
	mux.Handle("/fhir/.well-known/", oauth)
	mux.Handle("/fhir/", fhirAPI)
	e.http = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// Data, written with full access.
	admin := e.mint("system/*.cruds", "")
	e.p1 = e.create(admin, patient1JSON)
	e.p2 = e.create(admin, patient2JSON)
	e.create(admin, `{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"text":"a"},"subject":{"reference":"Patient/`+e.p1+`"}}`)
	e.create(admin, `{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"text":"b"},"subject":{"reference":"Patient/`+e.p1+`"}}`)
	e.create(admin, `{"resourceType":"Observation","status":"final","code":{"text":"c"},"subject":{"reference":"Patient/`+e.p2+`"}}`)
	if err := srv.SetUser(t.Context(), "doc", "correct horse battery", "Practitioner/pr1"); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) mint(scopes, patient string) string {
	e.t.Helper()
	tok, err := e.srv.MintToken(e.t.Context(), "test", "tester", scopes, smart.LaunchContext{Patient: patient}, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

type resp struct {
	status int
	header http.Header
	body   string
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("not JSON (%d): %s", r.status, r.body)
	}
	return m
}

func (e *env) do(req *http.Request) resp {
	e.t.Helper()
	res, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: string(b)}
}

func (e *env) fhirDo(method, path, token, body string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.fhir+"/"+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.do(req)
}

func (e *env) create(token, body string) string {
	e.t.Helper()
	tree, _ := jsontree.Parse([]byte(body))
	r := e.fhirDo(http.MethodPost, tree.GetString("resourceType"), token, body)
	if r.status != http.StatusCreated {
		e.t.Fatalf("create: %d %s", r.status, r.body)
	}
	return r.json(e.t)["id"].(string)
}

func (e *env) form(path string, vals url.Values, basicUser, basicPass string) resp {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base+path, strings.NewReader(vals.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	return e.do(req)
}

// pkce makes a verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// hidden reads the hidden fields of an authorize page.
func hidden(t *testing.T, page string) url.Values {
	t.Helper()
	out := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		out.Set(m[1], htmlUnescape(m[2]))
	}
	return out
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">", "&#43;", "+").Replace(s)
}

// authorizeFlow runs the authorization code flow through the pages (login, picker, consent) and
// returns the redirect's query (code and state, or error).
func (e *env) authorizeFlow(clientID, redirect, scopes, challenge string, extra url.Values) url.Values {
	e.t.Helper()
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect}, "scope": {scopes},
		"state": {"state-123456"}, "aud": {e.fhir}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	req, _ := http.NewRequest(http.MethodGet, e.base+"/oauth2/authorize?"+q.Encode(), nil)
	r := e.do(req)
	for step := 0; step < 5; step++ {
		if r.status == http.StatusSeeOther || r.status == http.StatusFound {
			loc, err := url.Parse(r.header.Get("Location"))
			if err != nil {
				e.t.Fatal(err)
			}
			return loc.Query()
		}
		if r.status != http.StatusOK && r.status != http.StatusUnauthorized {
			e.t.Fatalf("authorize step %d: %d %s", step, r.status, r.body)
		}
		f := hidden(e.t, r.body)
		switch {
		case strings.Contains(r.body, `name="password"`):
			f.Set("username", "doc")
			f.Set("password", "correct horse battery")
		case strings.Contains(r.body, `id="patient-`):
			f.Set("patient", e.p1)
		case strings.Contains(r.body, `id="approve"`):
			f.Set("consent", "approve")
		default:
			e.t.Fatalf("unexpected page: %s", r.body)
		}
		r = e.form("/oauth2/authorize", f, "", "")
	}
	e.t.Fatal("the authorize flow did not end")
	return nil
}

func (e *env) registerPublic(scopes string) (id, redirect string) {
	e.t.Helper()
	redirect = "http://localhost:9999/callback"
	id, _, err := e.srv.CreateClient(e.t.Context(), smart.ClientSpec{Name: "App", Kind: smart.KindPublic, RedirectURIs: []string{redirect}, Scopes: strings.Fields(scopes)})
	if err != nil {
		e.t.Fatal(err)
	}
	return id, redirect
}

const appScopes = "openid fhirUser launch launch/patient offline_access patient/*.rs patient/*.read user/*.read"

func TestDiscovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do(mustReq(http.MethodGet, e.fhir+"/.well-known/smart-configuration"))
	c := r.json(t)
	if r.header.Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", r.header.Get("Content-Type"))
	}
	for _, k := range []string{"issuer", "jwks_uri", "authorization_endpoint", "token_endpoint", "introspection_endpoint", "revocation_endpoint",
		"grant_types_supported", "scopes_supported", "response_types_supported", "capabilities", "code_challenge_methods_supported",
		"token_endpoint_auth_methods_supported", "token_endpoint_auth_signing_alg_values_supported"} {
		if c[k] == nil {
			t.Errorf("smart-configuration lacks %s", k)
		}
	}
	if m := c["code_challenge_methods_supported"].([]any); len(m) != 1 || m[0] != "S256" {
		t.Errorf("PKCE methods %v", m)
	}
	caps := map[string]bool{}
	for _, x := range c["capabilities"].([]any) {
		caps[x.(string)] = true
	}
	for _, want := range []string{"launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
		"context-ehr-patient", "context-ehr-encounter", "context-standalone-patient", "context-banner", "context-style", "sso-openid-connect",
		"permission-offline", "permission-patient", "permission-user", "permission-v1", "permission-v2", "authorize-post"} {
		if !caps[want] {
			t.Errorf("capability %s missing", want)
		}
	}
	if !strings.HasPrefix(c["token_endpoint"].(string), "http") {
		t.Error("endpoints must be absolute")
	}
	o := e.do(mustReq(http.MethodGet, e.base+"/.well-known/openid-configuration")).json(t)
	if o["issuer"] != e.base || o["jwks_uri"] == nil {
		t.Errorf("openid-configuration: %v", o)
	}
	jwks := e.do(mustReq(http.MethodGet, e.base+"/oauth2/jwks")).json(t)
	keys := jwks["keys"].([]any)
	if len(keys) == 0 || keys[0].(map[string]any)["kid"] == "" || keys[0].(map[string]any)["d"] != nil {
		t.Errorf("jwks must list public keys with kid: %v", jwks)
	}
	// The CapabilityStatement is public.
	if r := e.fhirDo(http.MethodGet, "metadata", "", ""); r.status != 200 {
		t.Errorf("metadata without a token: %d", r.status)
	}
}

func mustReq(method, u string) *http.Request {
	r, _ := http.NewRequest(method, u, nil)
	return r
}

func TestStandaloneLaunchAndRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client, redirect := e.registerPublic(appScopes)
	verifier, challenge := pkce()
	q := e.authorizeFlow(client, redirect, "openid fhirUser launch/patient offline_access patient/*.rs", challenge, nil)
	if q.Get("state") != "state-123456" || q.Get("code") == "" {
		t.Fatalf("redirect: %v", q)
	}
	tokenForm := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirect}, "client_id": {client}, "code_verifier": {verifier}}
	// A wrong verifier fails, and so does the right one afterwards: the code is spent.
	bad := tokenForm
	bad = cloneValues(tokenForm)
	bad.Set("code_verifier", strings.Repeat("x", 50))
	if r := e.form("/oauth2/token", bad, "", ""); r.status != http.StatusBadRequest || !strings.Contains(r.body, "invalid_grant") {
		t.Errorf("wrong verifier: %d %s", r.status, r.body)
	}
	q = e.authorizeFlow(client, redirect, "openid fhirUser launch/patient offline_access patient/*.rs", challenge, nil)
	tokenForm.Set("code", q.Get("code"))
	r := e.form("/oauth2/token", tokenForm, "", "")
	if r.status != 200 || r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
		t.Fatalf("token: %d %v %s", r.status, r.header, r.body)
	}
	tok := r.json(t)
	if tok["patient"] != e.p1 || tok["token_type"] != "bearer" && tok["token_type"] != "Bearer" || tok["refresh_token"] == nil || tok["id_token"] == nil {
		t.Fatalf("token response: %v", tok)
	}
	if exp := tok["expires_in"].(float64); exp > 3600 || exp <= 0 {
		t.Errorf("expires_in %v", exp)
	}
	idt, err := josejwt.ParseSigned(tok["id_token"].(string), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var idc map[string]any
	_ = idt.UnsafeClaimsWithoutVerification(&idc)
	if idc["fhirUser"] != e.fhir+"/Practitioner/pr1" || idc["aud"] == nil {
		t.Errorf("id token claims: %v", idc)
	}
	access := tok["access_token"].(string)
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, access, ""); r.status != 200 {
		t.Errorf("read own patient: %d %s", r.status, r.body)
	}
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p2, access, ""); r.status != 403 {
		t.Errorf("read another patient: %d", r.status)
	}
	// Refresh without scope keeps the grant; with a narrower one narrows it; wider is refused.
	refresh := tok["refresh_token"].(string)
	r = e.form("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {client}}, "", "")
	if r.status != 200 {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	r2 := r.json(t)
	if r2["patient"] != e.p1 || !strings.Contains(r2["scope"].(string), "patient/*.rs") {
		t.Errorf("refreshed: %v", r2)
	}
	refresh = r2["refresh_token"].(string)
	r = e.form("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {client}, "scope": {"patient/Observation.rs offline_access"}}, "", "")
	if r.status != 200 || r.json(t)["scope"] != "patient/Observation.rs offline_access" {
		t.Errorf("narrowing refresh: %d %s", r.status, r.body)
	}
	refresh = r.json(t)["refresh_token"].(string)
	if r := e.form("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {client}, "scope": {"user/*.cruds"}}, "", ""); r.status == 200 {
		t.Errorf("scope escalation on refresh was allowed: %s", r.body)
	}
	// Reusing a code fails, and revokes what it was exchanged for (RFC 6749 section 4.1.2).
	q = e.authorizeFlow(client, redirect, "openid launch/patient offline_access patient/*.rs", challenge, nil)
	tokenForm.Set("code", q.Get("code"))
	first := e.form("/oauth2/token", tokenForm, "", "").json(t)
	if r := e.form("/oauth2/token", tokenForm, "", ""); r.status != http.StatusBadRequest {
		t.Errorf("code reuse: %d %s", r.status, r.body)
	}
	if r := e.form("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}, "client_id": {client}}, "", ""); r.status == 200 {
		t.Error("the refresh token of a reused code still works")
	}
	e.clock.advance(6 * time.Second)
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, first["access_token"].(string), ""); r.status != 401 {
		t.Errorf("the access token of a reused code still works: %d", r.status)
	}
	if e.audits.count("token", "success") < 3 || e.audits.count("token", "failure") < 2 {
		t.Errorf("token issue and denial must be audited: %+v", e.audits.entries)
	}
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func TestAuthorizeRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client, redirect := e.registerPublic(appScopes)
	_, challenge := pkce()
	base := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "scope": {"patient/*.rs"},
		"state": {"state-123456"}, "aud": {e.fhir}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	tests := []struct {
		name   string
		change func(url.Values)
		want   string // error code in the redirect, or "" for a direct error response
	}{
		{"wrong redirect_uri", func(v url.Values) { v.Set("redirect_uri", "http://localhost:9999/other") }, ""},
		{"unknown client", func(v url.Values) { v.Set("client_id", "nope") }, ""},
		{"plain PKCE", func(v url.Values) { v.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"no PKCE", func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, "invalid_request"},
		{"wrong aud", func(v url.Values) { v.Set("aud", "https://elsewhere.example/fhir") }, "invalid_request"},
		{"scope the client may not have", func(v url.Values) { v.Set("scope", "system/*.cruds") }, "invalid_scope"},
		{"unknown launch", func(v url.Values) { v.Set("scope", "launch patient/*.rs"); v.Set("launch", "nonsense-launch-id") }, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := cloneValues(base)
			tt.change(v)
			r := e.do(mustReq(http.MethodGet, e.base+"/oauth2/authorize?"+v.Encode()))
			if tt.name == "unknown launch" && r.status == 200 {
				// The launch is checked after login.
				f := hidden(t, r.body)
				f.Set("username", "doc")
				f.Set("password", "correct horse battery")
				r = e.form("/oauth2/authorize", f, "", "")
			}
			loc := r.header.Get("Location")
			if tt.want == "" {
				if strings.HasPrefix(loc, "http://localhost:9999") || r.status < 400 {
					t.Fatalf("must not redirect to an unverified URI: %d %s", r.status, loc)
				}
				return
			}
			u, _ := url.Parse(loc)
			if u == nil || u.Query().Get("error") != tt.want {
				t.Errorf("got %d %q %s, want error %s", r.status, loc, r.body, tt.want)
			}
		})
	}
}

func TestEHRLaunch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client, redirect := e.registerPublic(appScopes)
	admin := e.mint("system/*.rs", "")
	body := `{"patient":"` + e.p2 + `","encounter":"enc-1","need_patient_banner":false,"smart_style_url":"https://ehr.example/style.json","intent":"reconcile"}`
	req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth2/launch", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+admin)
	r := e.do(req)
	if r.status != http.StatusCreated {
		t.Fatalf("launch: %d %s", r.status, r.body)
	}
	launch := r.json(t)["launch"].(string)
	// Creating a launch needs a system token.
	req, _ = http.NewRequest(http.MethodPost, e.base+"/oauth2/launch", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.mint("patient/*.rs", e.p1))
	if r := e.do(req); r.status != http.StatusForbidden {
		t.Errorf("launch with a patient token: %d", r.status)
	}
	verifier, challenge := pkce()
	q := e.authorizeFlow(client, redirect, "launch openid fhirUser patient/*.rs", challenge, url.Values{"launch": {launch}})
	r = e.form("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirect}, "client_id": {client}, "code_verifier": {verifier}}, "", "")
	tok := r.json(t)
	if tok["patient"] != e.p2 || tok["encounter"] != "enc-1" || tok["need_patient_banner"] != false || tok["smart_style_url"] != "https://ehr.example/style.json" {
		t.Fatalf("EHR launch context: %v", tok)
	}
	// The launch id is single-use.
	_, challenge2 := pkce()
	q2 := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "scope": {"launch patient/*.rs"}, "launch": {launch},
		"state": {"state-123456"}, "aud": {e.fhir}, "code_challenge": {challenge2}, "code_challenge_method": {"S256"}}
	page := e.do(mustReq(http.MethodGet, e.base+"/oauth2/authorize?"+q2.Encode()))
	f := hidden(t, page.body)
	f.Set("username", "doc")
	f.Set("password", "correct horse battery")
	r = e.form("/oauth2/authorize", f, "", "")
	if u, _ := url.Parse(r.header.Get("Location")); u == nil || u.Query().Get("error") != "invalid_request" {
		t.Errorf("a used launch id: %d %s", r.status, r.header.Get("Location"))
	}
}

// backendClient registers an asymmetric client with a fresh ES384 key.
func (e *env) backendClient(scopes string) (string, *ecdsa.PrivateKey, string) {
	e.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	kid := "k1"
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: kid, Algorithm: "ES384", Use: "sig"}}})
	id, _, err := e.srv.CreateClient(e.t.Context(), smart.ClientSpec{Name: "Payer", Kind: smart.KindAsymmetric, Scopes: strings.Fields(scopes), JWKS: jwks, AuthAlg: "ES384"})
	if err != nil {
		e.t.Fatal(err)
	}
	return id, key, kid
}

// symmetricClient registers a confidential-symmetric client and returns its id and secret.
func (e *env) symmetricClient(scopes string) (string, string) {
	e.t.Helper()
	id, secret, err := e.srv.CreateClient(e.t.Context(), smart.ClientSpec{Name: "Exchanger", Kind: smart.KindSymmetric,
		RedirectURIs: []string{"https://app.example/cb"}, Scopes: strings.Fields(scopes)})
	if err != nil {
		e.t.Fatal(err)
	}
	return id, secret
}

func assertion(t *testing.T, key any, alg jose.SignatureAlgorithm, kid, client, aud, jti string, exp time.Time) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := josejwt.Signed(sig).Claims(josejwt.Claims{Issuer: client, Subject: client, Audience: josejwt.Audience{aud}, ID: jti,
		Expiry: josejwt.NewNumericDate(exp), IssuedAt: josejwt.NewNumericDate(time.Now())}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestBackendServices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client, key, kid := e.backendClient("system/*.rs system/Claim.cruds")
	tokenURL := e.base + "/oauth2/token"
	ask := func(a, scope string) resp {
		return e.form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}, "", "")
	}
	good := assertion(t, key, jose.ES384, kid, client, tokenURL, "jti-1", time.Now().Add(4*time.Minute))
	r := ask(good, "system/*.rs")
	if r.status != 200 {
		t.Fatalf("client_credentials: %d %s", r.status, r.body)
	}
	tok := r.json(t)
	if exp := tok["expires_in"].(float64); exp > 300 {
		t.Errorf("backend token lives %v s; at most 300", exp)
	}
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p2, tok["access_token"].(string), ""); r.status != 200 {
		t.Errorf("system read: %d %s", r.status, r.body)
	}
	if r := e.fhirDo(http.MethodPost, "Patient", tok["access_token"].(string), `{"resourceType":"Patient"}`); r.status != 403 {
		t.Errorf("write with a read-only scope: %d", r.status)
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	tests := []struct{ name, assertion, scope string }{
		{"replayed jti", good, "system/*.rs"},
		{"expired assertion", assertion(t, key, jose.ES384, kid, client, tokenURL, "jti-2", time.Now().Add(-time.Minute)), "system/*.rs"},
		{"wrong audience", assertion(t, key, jose.ES384, kid, client, e.base+"/elsewhere", "jti-3", time.Now().Add(4*time.Minute)), "system/*.rs"},
		{"wrong key", assertion(t, otherKey, jose.ES384, kid, client, tokenURL, "jti-4", time.Now().Add(4*time.Minute)), "system/*.rs"},
		{"wrong algorithm", assertion(t, rsaKey, jose.RS384, kid, client, tokenURL, "jti-5", time.Now().Add(4*time.Minute)), "system/*.rs"},
		{"scope beyond registration", assertion(t, key, jose.ES384, kid, client, tokenURL, "jti-6", time.Now().Add(4*time.Minute)), "system/*.cruds"},
		{"patient scope for a backend", assertion(t, key, jose.ES384, kid, client, tokenURL, "jti-7", time.Now().Add(4*time.Minute)), "patient/*.rs"},
	}
	for _, tt := range tests {
		if r := ask(tt.assertion, tt.scope); r.status == 200 {
			t.Errorf("%s: a token was issued: %s", tt.name, r.body)
		}
	}
}

func TestIntrospectionAndRevocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client, key, kid := e.backendClient("system/*.rs")
	tokenURL := e.base + "/oauth2/token"
	assert := func(jti, aud string) string {
		return assertion(t, key, jose.ES384, kid, client, aud, jti, time.Now().Add(4*time.Minute))
	}
	r := e.form("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assert("a1", tokenURL)}}, "", "")
	access := r.json(t)["access_token"].(string)
	introspect := func(jti string) map[string]any {
		return e.form("/oauth2/introspect", url.Values{"token": {access}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion": {assert(jti, e.base+"/oauth2/introspect")}}, "", "").json(t)
	}
	in := introspect("a2")
	if in["active"] != true || in["client_id"] != client || in["scope"] != "system/*.rs" || in["exp"] == nil {
		t.Fatalf("introspection: %v", in)
	}
	if r := e.form("/oauth2/revoke", url.Values{"token": {access}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion": {assert("a3", e.base+"/oauth2/revoke")}}, "", ""); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if in := introspect("a4"); in["active"] != false {
		t.Errorf("after revocation: %v", in)
	}
	e.clock.advance(6 * time.Second) // the API's revocation list refreshes every 5 s
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, access, ""); r.status != 401 {
		t.Errorf("a revoked token was accepted: %d", r.status)
	}
}

func TestBadTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	good := e.mint("user/*.rs", "")
	parts := strings.Split(good, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	// HS256 signed with the server's public key (the classic key-confusion attack).
	jwks := e.do(mustReq(http.MethodGet, e.base+"/oauth2/jwks")).body
	hsSigner, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(jwks)}, nil)
	hsTok, _ := hsSigner.Sign(claims)
	hs, _ := hsTok.CompactSerialize()
	expired, _ := e.srv.MintToken(t.Context(), "c", "s", "user/*.rs", smart.LaunchContext{}, -2*time.Minute)
	tests := map[string]string{
		"alg none":            none,
		"HS256 key confusion": hs,
		"tampered":            parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), "user/*.rs", "user/*.cruds", 1))) + "." + parts[2],
		"expired":             expired,
		"garbage":             "not-a-token",
	}
	for name, tok := range tests {
		r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, tok, "")
		if r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") || !strings.Contains(r.body, "OperationOutcome") {
			t.Errorf("%s: %d %q", name, r.status, r.body)
		}
	}
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, "", ""); r.status != 401 {
		t.Errorf("no token: %d", r.status)
	}
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, good, ""); r.status != 200 {
		t.Errorf("good token: %d %s", r.status, r.body)
	}
}

func TestScopeEnforcement(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pat := e.mint("patient/*.rs", e.p1)
	ids := func(r resp) []string {
		var out []string
		b, err := jsontree.Parse([]byte(r.body))
		if err != nil || b.Get("entry") == nil {
			return nil
		}
		for _, en := range b.Get("entry").Items {
			if res := en.Get("resource"); res != nil && en.Get("search").GetString("mode") != "outcome" {
				out = append(out, res.GetString("resourceType")+"/"+res.GetString("id"))
			}
		}
		return out
	}
	// Search is restricted to the compartment; so are includes and _has.
	if got := ids(e.fhirDo(http.MethodGet, "Observation", pat, "")); len(got) != 2 {
		t.Errorf("patient-scoped Observation search: %v", got)
	}
	if got := ids(e.fhirDo(http.MethodGet, "Observation?subject=Patient/"+e.p2, pat, "")); len(got) != 0 {
		t.Errorf("cross-patient search: %v", got)
	}
	if got := ids(e.fhirDo(http.MethodGet, "Patient", pat, "")); len(got) != 1 || got[0] != "Patient/"+e.p1 {
		t.Errorf("Patient search: %v", got)
	}
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p2+"/Observation", pat, ""); r.status != 403 {
		t.Errorf("other patient's compartment: %d", r.status)
	}
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p2+"/$everything", pat, ""); r.status != 403 {
		t.Errorf("other patient's $everything: %d", r.status)
	}
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p2+"/_history", pat, ""); r.status != 403 {
		t.Errorf("other patient's history: %d", r.status)
	}
	// Writes need c/u/d; a patient write scope writes only into its own compartment.
	if r := e.fhirDo(http.MethodPost, "Observation", pat, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+e.p1+`"}}`); r.status != 403 {
		t.Errorf("create with a read scope: %d", r.status)
	}
	writer := e.mint("patient/Observation.cruds", e.p1)
	if r := e.fhirDo(http.MethodPost, "Observation", writer, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+e.p2+`"}}`); r.status != 403 {
		t.Errorf("writing into another patient's compartment: %d %s", r.status, r.body)
	}
	if r := e.fhirDo(http.MethodPost, "Observation", writer, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+e.p1+`"}}`); r.status != 201 {
		t.Errorf("writing into its own compartment: %d %s", r.status, r.body)
	}
	// A transaction is checked entry by entry.
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`
	if r := e.fhirDo(http.MethodPost, "", writer, tx); r.status != 403 {
		t.Errorf("transaction entry beyond the scopes: %d", r.status)
	}
	// _include results are filtered.
	user := e.mint("user/Observation.rs", "")
	b := e.fhirDo(http.MethodGet, "Observation?_include=Observation:subject", user, "")
	for _, id := range ids(b) {
		if strings.HasPrefix(id, "Patient/") {
			t.Errorf("an included Patient leaked to a token without Patient scopes: %v", ids(b))
		}
	}
	// v2 query constraints.
	lab := e.mint("patient/Observation.rs?category=laboratory patient/Patient.r", e.p1)
	if got := ids(e.fhirDo(http.MethodGet, "Observation", lab, "")); len(got) != 1 {
		t.Errorf("constrained search: %v", got)
	}
	all := ids(e.fhirDo(http.MethodGet, "Observation", pat, ""))
	okCount := 0
	for _, id := range all {
		if e.fhirDo(http.MethodGet, id, lab, "").status == 200 {
			okCount++
		}
	}
	if okCount != 1 {
		t.Errorf("constrained reads: %d of %v readable", okCount, all)
	}
	// A v1 read scope grants search, a v2 r does not.
	if r := e.fhirDo(http.MethodGet, "Patient", e.mint("user/Patient.r", ""), ""); r.status != 403 {
		t.Errorf("search with only r: %d", r.status)
	}
	if r := e.fhirDo(http.MethodGet, "Patient", e.mint("user/Patient.read", ""), ""); r.status != 200 {
		t.Errorf("search with v1 read: %d", r.status)
	}
	// A patient scope without a patient grants nothing.
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, e.mint("patient/*.rs", ""), ""); r.status != 403 {
		t.Errorf("patient scope without patient: %d", r.status)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerPublic(appScopes) // origin http://localhost:9999
	pre := mustReq(http.MethodOptions, e.fhir+"/Patient")
	pre.Header.Set("Origin", "http://localhost:9999")
	pre.Header.Set("Access-Control-Request-Method", "GET")
	pre.Header.Set("Access-Control-Request-Headers", "authorization")
	r := e.do(pre)
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "http://localhost:9999" || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight from a registered origin: %d %v", r.status, r.header)
	}
	evil := mustReq(http.MethodGet, e.fhir+"/metadata")
	evil.Header.Set("Origin", "https://evil.example")
	if r := e.do(evil); r.header.Get("Access-Control-Allow-Origin") != "https://evil.example" {
		t.Errorf("metadata is public to every origin: %v", r.header)
	}
	evil = mustReq(http.MethodGet, e.fhir+"/Patient")
	evil.Header.Set("Origin", "https://evil.example")
	if r := e.do(evil); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("an unregistered origin got CORS on the API: %v", r.header)
	}
}

// idp is an external OpenID provider (an EMR's identity provider): discovery and JWKS over HTTP,
// RS384 tokens.
type idp struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	p := &idp{key: key}
	mux := http.NewServeMux()
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": p.srv.URL, "jwks_uri": p.srv.URL + "/jwks",
			"authorization_endpoint": p.srv.URL + "/auth", "token_endpoint": p.srv.URL + "/token", "id_token_signing_alg_values_supported": []string{"RS384"}})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "emr-1", Algorithm: "RS384", Use: "sig"}}})
	})
	return p
}

func (p *idp) token(t *testing.T, aud, scopes, patient string) string {
	t.Helper()
	sig, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS384, Key: p.key}, (&jose.SignerOptions{}).WithHeader("kid", "emr-1"))
	tok, err := josejwt.Signed(sig).Claims(josejwt.Claims{Issuer: p.srv.URL, Subject: "dr-who", Audience: josejwt.Audience{aud},
		Expiry: josejwt.NewNumericDate(time.Now().Add(time.Hour)), IssuedAt: josejwt.NewNumericDate(time.Now())}).
		Claims(map[string]any{"scope": scopes, "patient": patient, "fhirUser": "Practitioner/ext"}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestExternalTokensAndExchange(t *testing.T) {
	t.Parallel()
	p := newIDP(t)
	e := newEnv(t, smart.TrustedIssuer{Issuer: p.srv.URL})
	ext := p.token(t, e.fhir, "patient/*.rs launch/patient", e.p1)
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, ext, ""); r.status != 200 {
		t.Errorf("a trusted issuer's token: %d %s", r.status, r.body)
	}
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p2, ext, ""); r.status != 403 {
		t.Errorf("its patient context must hold: %d", r.status)
	}
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, p.token(t, "https://other.example/fhir", "patient/*.rs", e.p1), ""); r.status != 401 {
		t.Errorf("a token for another audience: %d", r.status)
	}
	rogue := newIDP(t) // not trusted
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, rogue.token(t, e.fhir, "user/*.rs", ""), ""); r.status != 401 {
		t.Errorf("an untrusted issuer's token: %d", r.status)
	}
	// RFC 8693: exchange for a Billy token, narrowed, by a confidential client.
	xc, xs := e.symmetricClient("patient/*.rs user/*.cruds")
	r := e.form("/oauth2/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {ext},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "scope": {"patient/Observation.rs"}}, xc, xs)
	if r.status != 200 {
		t.Fatalf("token exchange: %d %s", r.status, r.body)
	}
	out := r.json(t)
	if out["patient"] != e.p1 || out["scope"] != "patient/Observation.rs" {
		t.Errorf("exchanged: %v", out)
	}
	billy := out["access_token"].(string)
	if r := e.fhirDo(http.MethodGet, "Observation", billy, ""); r.status != 200 {
		t.Errorf("using the exchanged token: %d", r.status)
	}
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, billy, ""); r.status != 403 {
		t.Errorf("the exchanged token was narrowed to Observation: %d", r.status)
	}
	if r := e.form("/oauth2/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {ext},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "scope": {"user/*.cruds"}}, xc, xs); r.status != 400 {
		t.Errorf("exchange must not widen: %d %s", r.status, r.body)
	}
}
