package smart_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/iambilly/billy/smart"
)

// badRedirectURIs are refused at registration, for web and native clients alike.
var badRedirectURIs = map[string]string{
	"userinfo hiding a path":   "http://evil%2f@127.0.0.1:8765/callback",
	"userinfo":                 "https://user:secret@app.example/callback",
	"fragment":                 "https://app.example/callback#top",
	"empty fragment":           "https://app.example/callback#",
	"relative":                 "/callback",
	"no scheme":                "app.example/callback",
	"plain http elsewhere":     "http://app.example/callback",
	"backslash in the host":    `https://app.example\@evil.example/callback`,
	"escaped host":             "https://app%2eexample/callback",
	"scheme only":              "https:",
	"opaque":                   "https:app.example/callback",
	"javascript":               "javascript:alert(1)",
	"spaces":                   "https://app.example/call back",
	"not a URL":                "http://[::1/callback",
	"query with a fragment":    "https://app.example/callback?a=1#b",
	"http loopback, userinfo":  "http://user@localhost:9999/callback",
	"https loopback, userinfo": "https://x@[::1]:9999/callback",
}

func TestRedirectURIRegistration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for name, u := range badRedirectURIs {
		for _, native := range []bool{false, true} {
			_, _, err := e.srv.CreateClient(t.Context(), smart.ClientSpec{Name: "App", Kind: smart.KindPublic, Native: native,
				RedirectURIs: []string{u}, Scopes: []string{"patient/*.rs"}})
			if err == nil {
				t.Errorf("%s (native %v): %q was registered", name, native, u)
			}
		}
	}
	for _, u := range []string{"https://app.example/callback?x=1", "http://localhost:9999/callback", "http://127.0.0.1:8765/callback", "http://[::1]/cb"} {
		if _, _, err := e.srv.CreateClient(t.Context(), smart.ClientSpec{Name: "App", Kind: smart.KindPublic,
			RedirectURIs: []string{u}, Scopes: []string{"patient/*.rs"}}); err != nil {
			t.Errorf("%q: %v", u, err)
		}
	}
	// The registration API: application_type, and the same rules.
	admin := e.mint("system/*.cruds", "")
	register := func(body map[string]any) resp {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth2/register", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		return e.do(req)
	}
	r := register(map[string]any{"client_name": "CLI", "redirect_uris": []string{"http://127.0.0.1/callback"}, "scope": "patient/*.rs",
		"token_endpoint_auth_method": "none", "application_type": "native"})
	if r.status != http.StatusCreated || r.json(t)["application_type"] != "native" {
		t.Errorf("registering a native app: %d %s", r.status, r.body)
	}
	r = register(map[string]any{"client_name": "Web", "redirect_uris": []string{"https://app.example/cb"}, "scope": "patient/*.rs",
		"token_endpoint_auth_method": "none"})
	if r.status != http.StatusCreated || r.json(t)["application_type"] != "web" {
		t.Errorf("registering a web app: %d %s", r.status, r.body)
	}
	if r := register(map[string]any{"client_name": "X", "redirect_uris": []string{"https://app.example/cb"}, "scope": "patient/*.rs",
		"token_endpoint_auth_method": "none", "application_type": "desktop"}); r.status != http.StatusBadRequest || !strings.Contains(r.body, "application_type") {
		t.Errorf("an unknown application_type: %d %s", r.status, r.body)
	}
	if r := register(map[string]any{"client_name": "X", "redirect_uris": []string{badRedirectURIs["userinfo hiding a path"]}, "scope": "patient/*.rs",
		"token_endpoint_auth_method": "none", "application_type": "native"}); r.status != http.StatusBadRequest || !strings.Contains(r.body, "invalid_redirect_uri") {
		t.Errorf("a redirect URI with userinfo: %d %s", r.status, r.body)
	}
}

func TestRedirectURIAtAuthorization(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	registered := "http://127.0.0.1:8765/callback"
	client := func(native bool) string {
		id, _, err := e.srv.CreateClient(t.Context(), smart.ClientSpec{Name: "App", Kind: smart.KindPublic, Native: native,
			RedirectURIs: []string{registered, "https://app.example/callback"}, Scopes: []string{"patient/*.rs"}})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	web, native := client(false), client(true)
	// A client registered before these rules, with a redirect URI they refuse.
	if _, err := e.pool.Exec(t.Context(), `INSERT INTO oauth_clients (id, name, kind, redirect_uris, scopes, grant_types)
		VALUES ('legacy', 'Legacy', 'public', '{"https://user@app.example/callback"}', '{patient/*.rs}', '{authorization_code}')`); err != nil {
		t.Fatal(err)
	}
	_, challenge := pkce()
	tests := []struct {
		name, client, redirect string
		ok                     bool
	}{
		{"web, exact", web, registered, true},
		{"web, https exact", web, "https://app.example/callback", true},
		{"web, another loopback port", web, "http://127.0.0.1:9999/callback", false},
		{"web, userinfo", web, "http://evil%2f@127.0.0.1:8765/callback", false},
		{"web, trailing slash", web, "https://app.example/callback/", false},
		{"native, exact", native, registered, true},
		{"native, another loopback port", native, "http://127.0.0.1:9999/callback", true},
		{"native, loopback without a port", native, "http://127.0.0.1/callback", true},
		{"native, userinfo and another port", native, "http://evil%2f@127.0.0.1:9999/callback", false},
		{"native, userinfo", native, "http://evil%2f@127.0.0.1:8765/callback", false},
		{"native, fragment", native, "http://127.0.0.1:9999/callback#x", false},
		{"native, another path", native, "http://127.0.0.1:9999/other", false},
		{"native, another loopback address", native, "http://[::1]:9999/callback", false},
		{"native, localhost is not a loopback literal", native, "http://localhost:9999/callback", false},
		{"native, https on another port", native, "https://app.example:444/callback", false},
		{"legacy, its own registered URI", "legacy", "https://user@app.example/callback", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"response_type": {"code"}, "client_id": {tt.client}, "redirect_uri": {tt.redirect}, "scope": {"patient/*.rs"},
				"state": {"state-123456"}, "aud": {e.fhir}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
			r := e.do(mustReq(http.MethodGet, e.base+"/oauth2/authorize?"+q.Encode()))
			if tt.ok {
				if r.status != http.StatusOK || !strings.Contains(r.body, `name="password"`) {
					t.Errorf("want the login page: %d %s %s", r.status, r.header.Get("Location"), r.body)
				}
				return
			}
			if loc := r.header.Get("Location"); loc != "" || r.status != http.StatusBadRequest || !strings.Contains(r.body, "redirect_uri") {
				t.Errorf("want a 400 naming redirect_uri and no redirect: %d %q %s", r.status, loc, r.body)
			}
			// An error fosite would otherwise send to the redirect URI (a scope the client may not
			// have) must not go there either.
			q.Set("scope", "system/*.cruds")
			if r := e.do(mustReq(http.MethodGet, e.base+"/oauth2/authorize?"+q.Encode())); r.header.Get("Location") != "" {
				t.Errorf("an error was redirected to %s", r.header.Get("Location"))
			}
		})
	}
}

// TestCancel: Cancel, on the sign-in page or the patient picker, ends the authorization with
// access_denied at the app's redirect URI, with its state; Find searches the picker by name.
func TestCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client, redirect := e.registerPublic(appScopes)
	_, challenge := pkce()
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "scope": {"launch/patient patient/*.rs"},
		"state": {"state-123456"}, "aud": {e.fhir}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	login := e.do(mustReq(http.MethodGet, e.base+"/oauth2/authorize?"+q.Encode()))
	cancelled := func(r resp) bool {
		loc, err := url.Parse(r.header.Get("Location"))
		return err == nil && strings.HasPrefix(loc.String(), redirect) && loc.Query().Get("error") == "access_denied" && loc.Query().Get("state") == "state-123456"
	}
	f := hidden(t, login.body)
	f.Set("cancel", "1")
	if r := e.form("/oauth2/authorize", f, "", ""); !cancelled(r) {
		t.Errorf("cancel at sign-in: %d %s", r.status, r.header.Get("Location"))
	}
	f = hidden(t, login.body)
	f.Set("username", "doc")
	f.Set("password", "correct horse battery")
	picker := e.form("/oauth2/authorize", f, "", "")
	if !strings.Contains(picker.body, `id="patient-`+e.p2+`"`) {
		t.Fatalf("the picker: %d %s", picker.status, picker.body)
	}
	f = hidden(t, picker.body)
	f.Set("q", "ann")
	found := e.form("/oauth2/authorize", f, "", "")
	if !strings.Contains(found.body, `id="patient-`+e.p1+`"`) || strings.Contains(found.body, `id="patient-`+e.p2+`"`) {
		t.Errorf("Find by name: %s", found.body)
	}
	f = hidden(t, found.body)
	f.Set("cancel", "1")
	if r := e.form("/oauth2/authorize", f, "", ""); !cancelled(r) {
		t.Errorf("cancel at the picker: %d %s", r.status, r.header.Get("Location"))
	}
}
