package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/iambilly/billy/conformance"
)

// The conformance suite's own test: a reverse proxy in front of a real Billy injects one fault at a
// time, and every check that passes without faults must fail under the fault made for it. The
// fault table is checked against the check list, so a new check without a fault case fails here.

// fault is one way a server can be wrong.
type fault struct {
	name string
	// checks matches the IDs of the checks the fault must make fail.
	checks string
	// request changes a request before it goes to Billy; it may answer instead (true).
	request func(p *faultProxy, w http.ResponseWriter, r *http.Request, body *[]byte) bool
	// response changes Billy's answer.
	response func(r *http.Request, status *int, h http.Header, body *[]byte)
}

// faultProxy forwards to Billy through the current fault.
type faultProxy struct {
	billy string // http://host:port of Billy
	token string // a valid access token, for faults that accept what they should not
	cur   atomic.Pointer[fault]
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f := p.cur.Load()
	if f != nil && f.request != nil && f.request(p, w, r, &body) {
		return
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.billy+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), 502)
		return
	}
	out.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), 502)
		return
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	status := resp.StatusCode
	h := resp.Header.Clone()
	if f != nil && f.response != nil {
		f.response(r, &status, h, &rb)
	}
	h.Del("Content-Length")
	for k, vs := range h {
		w.Header()[k] = vs
	}
	w.WriteHeader(status)
	w.Write(rb)
}

// fhirPath is a request's path below /fhir/ ("" for the base).
func fhirPath(r *http.Request) string {
	return strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/fhir"), "/")
}

// interaction classifies a FHIR request the way the CapabilityStatement names interactions.
func interaction(r *http.Request) string {
	p := fhirPath(r)
	if p == "" || strings.Contains(p, "$") || strings.HasPrefix(p, ".well-known") || p == "metadata" {
		return ""
	}
	seg := strings.Split(p, "/")
	switch {
	case len(seg) == 1 && r.Method == http.MethodGet:
		return "search-type"
	case len(seg) == 1 && r.Method == http.MethodPost:
		return "create"
	case len(seg) == 2 && seg[1] == "_history":
		return "history-type"
	case len(seg) == 2 && seg[1] == "_search":
		return "search-type"
	case len(seg) == 2 && r.Method == http.MethodGet:
		return "read"
	case len(seg) == 2 && r.Method == http.MethodPut:
		return "update"
	case len(seg) == 2 && r.Method == http.MethodPatch:
		return "patch"
	case len(seg) == 2 && r.Method == http.MethodDelete:
		return "delete"
	case len(seg) == 3 && seg[2] == "_history":
		return "history-instance"
	case len(seg) == 4 && seg[2] == "_history":
		return "vread"
	}
	return ""
}

func outcome(w http.ResponseWriter, status int) bool {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing","diagnostics":"injected fault"}]}`)
	return true
}

// editJSON changes a JSON object body in place.
func editJSON(body *[]byte, fn func(m map[string]any)) {
	var m map[string]any
	if json.Unmarshal(*body, &m) != nil {
		return
	}
	fn(m)
	*body, _ = json.Marshal(m)
}

// editQuery changes a request's query.
func editQuery(r *http.Request, fn func(v url.Values)) {
	v := r.URL.Query()
	fn(v)
	r.URL.RawQuery = v.Encode()
}

// onInteraction answers status for one interaction.
func onInteraction(code string, status int) func(*faultProxy, http.ResponseWriter, *http.Request, *[]byte) bool {
	return func(_ *faultProxy, w http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		if interaction(r) == code {
			return outcome(w, status)
		}
		return false
	}
}

// renameParams rewrites query parameter names matching re with repl (a "" result drops them).
func renameParams(re, repl string) func(*faultProxy, http.ResponseWriter, *http.Request, *[]byte) bool {
	rx := regexp.MustCompile(re)
	return func(_ *faultProxy, _ http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		editQuery(r, func(v url.Values) {
			for k, vs := range v {
				if rx.MatchString(k) {
					delete(v, k)
					if n := rx.ReplaceAllString(k, repl); n != "" {
						v[n] = vs
					}
				}
			}
		})
		return false
	}
}

func dropHeader(name string) func(*faultProxy, http.ResponseWriter, *http.Request, *[]byte) bool {
	return func(_ *faultProxy, _ http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		r.Header.Del(name)
		return false
	}
}

// dropLinks removes links of a relation from Bundles.
func dropLinks(rel string) func(*http.Request, *int, http.Header, *[]byte) {
	return func(_ *http.Request, _ *int, _ http.Header, body *[]byte) {
		editJSON(body, func(m map[string]any) {
			var keep []any
			for _, l := range arrOf(m["link"]) {
				if l.(map[string]any)["relation"] != rel {
					keep = append(keep, l)
				}
			}
			if m["link"] != nil {
				m["link"] = keep
			}
		})
	}
}

func arrOf(v any) []any { a, _ := v.([]any); return a }

func isToken(r *http.Request) bool { return r.URL.Path == "/oauth2/token" }

// jwtHeader is the decoded header of a bearer JWT.
func jwtHeader(r *http.Request) map[string]any {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	h, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return nil
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	return m
}

// faults is the fault table: each check the suite has is in some fault's checks.
var faults = []fault{
	// capability, generated from the CapabilityStatement
	{name: "fhirVersion 3.0.2 in the CapabilityStatement", checks: `^capability/metadata$`,
		response: func(r *http.Request, _ *int, _ http.Header, b *[]byte) {
			if fhirPath(r) == "metadata" {
				editJSON(b, func(m map[string]any) { m["fhirVersion"] = "3.0.2" })
			}
		}},
	{name: "read refused", checks: `^capability/[^/]+/read$`, request: onInteraction("read", 405)},
	{name: "vread refused", checks: `^capability/[^/]+/vread$|^crud/vread$`, request: onInteraction("vread", 405)},
	{name: "instance history refused", checks: `^capability/[^/]+/history-instance$`, request: onInteraction("history-instance", 405)},
	// AuditEvent (the audit trail) declares no history, so its read-interactions check does not ask for it.
	{name: "type history refused", checks: `^capability/[^/]+/history-type$|^capability/([^A]|A[^u])[^/]*/read-interactions$|^crud/history-type$`, request: onInteraction("history-type", 405)},
	{name: "search refused", checks: `^capability/[^/]+/(search-type|search/_id)$|^capability/AuditEvent/read-interactions$`, request: onInteraction("search-type", 405)},
	{name: "create refused", checks: `^capability/[^/]+/create$`, request: onInteraction("create", 405)},
	{name: "update refused", checks: `^capability/[^/]+/update$`, request: onInteraction("update", 405)},
	{name: "patch refused", checks: `^capability/[^/]+/patch$`, request: onInteraction("patch", 405)},
	{name: "delete refused", checks: `^capability/[^/]+/delete$`, request: onInteraction("delete", 405)},
	{name: "search parameters ignored", checks: `^capability/[^/]+/search/[^_]|^capability/[^/]+/search/_(lastUpdated|tag)$`,
		request: renameParams(`^[^_].*|^_lastUpdated$|^_tag$`, "")},
	{name: "strict searches refused", checks: `^capability/[^/]+/(search-other|search-claims|revinclude-other)$`,
		request: func(_ *faultProxy, w http.ResponseWriter, r *http.Request, _ *[]byte) bool {
			if strings.Contains(r.Header.Get("Prefer"), "strict") {
				return outcome(w, 400)
			}
			return false
		}},
	{name: "operations unknown", checks: `/operation/`, request: func(_ *faultProxy, w http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		if strings.Contains(r.URL.Path, "$") {
			return outcome(w, 404)
		}
		return false
	}},
	{name: "_include ignored", checks: `^capability/[^/]+/include/|^search/include$`, request: renameParams(`^_include$`, "")},
	{name: "_revinclude ignored", checks: `^capability/[^/]+/revinclude/|^search/revinclude$`, request: renameParams(`^_revinclude$`, "")},

	// crud
	{name: "create without Location", checks: `^crud/create$`, response: func(r *http.Request, _ *int, h http.Header, _ *[]byte) {
		if interaction(r) == "create" {
			h.Del("Location")
		}
	}},
	{name: "read answers another id", checks: `^crud/read$`, response: func(r *http.Request, _ *int, _ http.Header, b *[]byte) {
		if interaction(r) == "read" {
			editJSON(b, func(m map[string]any) { m["id"] = "other" })
		}
	}},
	{name: "JSON as application/json", checks: `^crud/content-type$`, response: func(_ *http.Request, _ *int, h http.Header, _ *[]byte) {
		h.Set("Content-Type", "application/json")
	}},
	{name: "no ETag", checks: `^crud/etag$`, response: func(_ *http.Request, _ *int, h http.Header, _ *[]byte) { h.Del("ETag") }},
	{name: "update keeps the versionId", checks: `^crud/update$`, response: func(r *http.Request, _ *int, _ http.Header, b *[]byte) {
		if interaction(r) == "update" {
			editJSON(b, func(m map[string]any) { m["meta"].(map[string]any)["versionId"] = "1" })
		}
	}},
	{name: "update-as-create answers 200", checks: `^crud/update-as-create$`, response: func(r *http.Request, s *int, _ http.Header, _ *[]byte) {
		if interaction(r) == "update" && *s == 201 {
			*s = 200
		}
	}},
	{name: "delete does nothing", checks: `^crud/delete$`, request: func(_ *faultProxy, w http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		if interaction(r) == "delete" {
			w.WriteHeader(204)
			return true
		}
		return false
	}},
	{name: "delete of an absent resource answers 404", checks: `^crud/delete-absent$`, request: func(_ *faultProxy, w http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		if interaction(r) == "delete" && strings.Contains(r.URL.Path, "conformance-absent") {
			return outcome(w, 404)
		}
		return false
	}},
	{name: "history oldest first", checks: `^crud/history$`, response: func(r *http.Request, _ *int, _ http.Header, b *[]byte) {
		if interaction(r) == "history-instance" {
			editJSON(b, func(m map[string]any) {
				e := arrOf(m["entry"])
				for i, j := 0, len(e)-1; i < j; i, j = i+1, j-1 {
					e[i], e[j] = e[j], e[i]
				}
			})
		}
	}},
	{name: "history forgets deletions", checks: `^crud/history-deleted$`, response: func(r *http.Request, _ *int, _ http.Header, b *[]byte) {
		if interaction(r) == "history-instance" {
			editJSON(b, func(m map[string]any) {
				var keep []any
				for _, e := range arrOf(m["entry"]) {
					if req, _ := e.(map[string]any)["request"].(map[string]any); req["method"] != "DELETE" {
						keep = append(keep, e)
					}
				}
				m["entry"] = keep
			})
		}
	}},

	// conditional
	{name: "If-Match ignored", checks: `^conditional/if-match-stale$|^errors/precondition-failed$`, request: dropHeader("If-Match")},
	{name: "If-Match always refused", checks: `^conditional/if-match-current$`, request: func(_ *faultProxy, w http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		if r.Header.Get("If-Match") != "" {
			return outcome(w, 412)
		}
		return false
	}},
	{name: "If-None-Exist ignored", checks: `^conditional/create$`, request: dropHeader("If-None-Exist")},
	{name: "conditional update refused", checks: `^conditional/update$`, request: func(_ *faultProxy, w http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		if r.Method == http.MethodPut && r.URL.RawQuery != "" {
			return outcome(w, 400)
		}
		return false
	}},
	{name: "conditional delete does nothing", checks: `^conditional/delete$`, request: func(_ *faultProxy, w http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		if r.Method == http.MethodDelete && r.URL.RawQuery != "" {
			w.WriteHeader(204)
			return true
		}
		return false
	}},
	{name: "If-None-Match ignored", checks: `^conditional/read-if-none-match$`, request: dropHeader("If-None-Match")},
	{name: "If-Modified-Since ignored", checks: `^conditional/read-if-modified-since$`, request: dropHeader("If-Modified-Since")},

	// bundle
	{name: "batch entries all 200", checks: `^bundle/batch$`, response: func(r *http.Request, _ *int, _ http.Header, b *[]byte) {
		if fhirPath(r) == "" {
			editJSON(b, func(m map[string]any) {
				for _, e := range arrOf(m["entry"]) {
					if resp, ok := e.(map[string]any)["response"].(map[string]any); ok {
						resp["status"] = "200 OK"
					}
				}
			})
		}
	}},
	{name: "urn:uuid references left unresolved", checks: `^bundle/transaction-references$`, request: func(_ *faultProxy, _ http.ResponseWriter, r *http.Request, b *[]byte) bool {
		if fhirPath(r) == "" {
			editJSON(b, func(m map[string]any) {
				for _, e := range arrOf(m["entry"]) {
					delete(e.(map[string]any), "fullUrl")
				}
			})
		}
		return false
	}},
	{name: "transactions run as batches", checks: `^bundle/transaction-atomic$`, request: func(_ *faultProxy, _ http.ResponseWriter, r *http.Request, b *[]byte) bool {
		if fhirPath(r) == "" {
			editJSON(b, func(m map[string]any) {
				if m["type"] == "transaction" {
					m["type"] = "batch"
				}
			})
		}
		return false
	}},

	// errors
	{name: "404 without an OperationOutcome", checks: `^errors/not-found$`, response: func(_ *http.Request, s *int, h http.Header, b *[]byte) {
		if *s == 404 {
			h.Set("Content-Type", "text/plain")
			*b = []byte("not found")
		}
	}},
	{name: "404 instead of 410", checks: `^errors/gone$`, response: func(_ *http.Request, s *int, _ http.Header, _ *[]byte) {
		if *s == 410 {
			*s = 404
		}
	}},
	{name: "malformed search values ignored", checks: `^errors/bad-search-value$`, request: renameParams(`^birthdate$`, "")},
	{name: "Accept ignored", checks: `^errors/not-acceptable$`, request: dropHeader("Accept")},
	{name: "any body read as JSON", checks: `^errors/unsupported-media-type$`, request: func(_ *faultProxy, _ http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		r.Header.Set("Content-Type", "application/fhir+json")
		return false
	}},
	{name: "500 instead of 400 on create", checks: `^errors/(invalid-resource|wrong-type)$`, response: func(r *http.Request, s *int, _ http.Header, _ *[]byte) {
		if interaction(r) == "create" && *s == 400 {
			*s = 500
		}
	}},

	// search
	{name: "case- and accent-sensitive strings", checks: `^search/string-(default|accents)$`, request: renameParams(`^family$`, "family:exact")},
	{name: ":exact ignored", checks: `^search/string-exact$`, request: renameParams(`^family:exact$`, "family")},
	{name: ":contains ignored", checks: `^search/string-contains$`, request: renameParams(`^family:contains$`, "family")},
	{name: "token systems ignored", checks: `^search/token-system-code$`, request: func(_ *faultProxy, _ http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		editQuery(r, func(v url.Values) {
			if x := v.Get("identifier"); strings.Contains(x, "|") {
				v.Set("identifier", x[strings.Index(x, "|")+1:])
			}
		})
		return false
	}},
	{name: ":not ignored", checks: `^search/token-not$`, request: renameParams(`^gender:not$`, "gender")},
	{name: "date prefixes ignored", checks: `^search/date-prefixes$`, request: func(_ *faultProxy, _ http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		editQuery(r, func(v url.Values) {
			if x := v.Get("birthdate"); len(x) > 2 && x[0] >= 'a' {
				v.Set("birthdate", x[2:])
			}
		})
		return false
	}},
	{name: "number parameters ignored", checks: `^search/number$`, request: renameParams(`^probability$`, "")},
	{name: "quantity parameters ignored", checks: `^search/quantity$`, request: renameParams(`^value-quantity$`, "")},
	{name: "subject ignored", checks: `^search/reference-typed$`, request: renameParams(`^subject$`, "")},
	{name: "bare ids refused", checks: `^search/reference-bare-id$`, request: func(_ *faultProxy, w http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		if p := r.URL.Query().Get("patient"); p != "" && !strings.Contains(p, "/") {
			return outcome(w, 400)
		}
		return false
	}},
	{name: "chains ignored", checks: `^search/chain$`, request: renameParams(`\.`, "")},
	{name: "_has ignored", checks: `^search/has$`, request: renameParams(`^_has:`, "")},
	{name: "next links dropped", checks: `^search/paging$`, response: dropLinks("next")},
	{name: "self links dropped", checks: `^search/self-link$`, response: dropLinks("self")},
	{name: "_sort ignored", checks: `^search/sort$`, request: renameParams(`^_sort$`, "")},
	{name: "wrong totals", checks: `^search/(total|summary-count)$`, response: func(_ *http.Request, _ *int, _ http.Header, b *[]byte) {
		editJSON(b, func(m map[string]any) {
			if n, ok := m["total"].(float64); ok {
				m["total"] = n + 1
			}
		})
	}},
	{name: "Prefer: handling=strict ignored", checks: `^search/unknown-strict$`, request: dropHeader("Prefer")},
	{name: "every search strict", checks: `^search/unknown-lenient$`, request: func(_ *faultProxy, _ http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		r.Header.Set("Prefer", "handling=strict")
		return false
	}},
	{name: "POST _search refused", checks: `^search/post$`, request: func(_ *faultProxy, w http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		if strings.HasSuffix(r.URL.Path, "/_search") {
			return outcome(w, 405)
		}
		return false
	}},

	// smart
	{name: "PKCE plain offered", checks: `^smart/configuration$`, response: func(r *http.Request, _ *int, _ http.Header, b *[]byte) {
		if strings.HasSuffix(r.URL.Path, "smart-configuration") {
			editJSON(b, func(m map[string]any) { m["code_challenge_methods_supported"] = []any{"S256", "plain"} })
		}
	}},
	{name: "private_key_jwt not offered", checks: `^smart/backend-discovery$`, response: func(r *http.Request, _ *int, _ http.Header, b *[]byte) {
		if strings.HasSuffix(r.URL.Path, "smart-configuration") {
			editJSON(b, func(m map[string]any) { m["token_endpoint_auth_methods_supported"] = []any{"client_secret_basic"} })
		}
	}},
	{name: "CapabilityStatement names another token URL", checks: `^smart/capability-security$`, response: func(r *http.Request, _ *int, _ http.Header, b *[]byte) {
		if fhirPath(r) == "metadata" {
			*b = bytes.ReplaceAll(*b, []byte(`/oauth2/token"`), []byte(`/elsewhere/token"`))
		}
	}},
	{name: "requests without a token served", checks: `^smart/unauthenticated$`, request: func(p *faultProxy, _ http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		if r.Header.Get("Authorization") == "" && interaction(r) != "" {
			r.Header.Set("Authorization", "Bearer "+p.token)
		}
		return false
	}},
	{name: "alg=none access tokens accepted", checks: `^smart/forged-token$`, request: func(p *faultProxy, _ http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		if jwtHeader(r)["alg"] == "none" {
			r.Header.Set("Authorization", "Bearer "+p.token)
		}
		return false
	}},
	{name: "token endpoint refuses valid assertions", checks: `^smart/backend-token$`, request: func(_ *faultProxy, w http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		if isToken(r) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			io.WriteString(w, `{"error":"invalid_client"}`)
			return true
		}
		return false
	}},
	{name: "token endpoint accepts any assertion (replayed, expired, alg=none, wrong aud)", checks: `^smart/backend-(replay|expired|alg-none|wrong-audience)$`,
		request: func(p *faultProxy, w http.ResponseWriter, r *http.Request, _ *[]byte) bool {
			if isToken(r) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"access_token":"`+p.token+`","token_type":"bearer","expires_in":300,"scope":"system/*.cruds system/AuditEvent.rs"}`)
				return true
			}
			return false
		}},

	// bulk
	{name: "kick-off without Content-Location", checks: `^bulk/kickoff$`, response: func(r *http.Request, _ *int, h http.Header, _ *[]byte) {
		if strings.Contains(r.URL.Path, "$export") {
			h.Del("Content-Location")
		}
	}},
	{name: "manifest without transactionTime", checks: `^bulk/status-manifest$`, response: func(_ *http.Request, _ *int, _ http.Header, b *[]byte) {
		editJSON(b, func(m map[string]any) {
			if _, ok := m["transactionTime"]; ok && m["resourceType"] == nil {
				delete(m, "transactionTime")
			}
		})
	}},
	{name: "files hold a resource of another type", checks: `^bulk/download$`, response: func(r *http.Request, s *int, h http.Header, b *[]byte) {
		if *s == 200 && strings.Contains(h.Get("Content-Type"), "ndjson") {
			*b = append(*b, []byte("\n{\"resourceType\":\"Claim\",\"id\":\"injected\"}\n")...)
		}
	}},
	{name: "cancel does nothing", checks: `^bulk/cancel$`, request: func(_ *faultProxy, w http.ResponseWriter, r *http.Request, _ *[]byte) bool {
		if r.Method == http.MethodDelete && (strings.Contains(r.URL.Path, "export") || strings.Contains(r.URL.Path, "/bulkdata/")) { // Billy's status URLs
			w.WriteHeader(202)
			return true
		}
		return false
	}},
}

// startFaultyBilly serves Billy behind a faultProxy (no fault until one is stored in p.cur) and
// registers the suite's Backend Services client there.
func startFaultyBilly(t *testing.T) (*faultProxy, conformanceBilly) {
	proxyLn, billyLn := listen(t), listen(t)
	base := "http://" + proxyLn.Addr().String()
	// The suite sends ~18,000 requests as one client; the rate limit has its own test (guard_test.go).
	env := testEnv(t, "BILLY_BASE_URL", base, "BILLY_EXPORT_FILE_RESOURCES", "50", "BILLY_RATE_LIMIT_CLIENT_RATE", "0")
	serveAppWith(t, env, billyLn, testServe{worker: true, baseURL: base})
	p := &faultProxy{billy: "http://" + billyLn.Addr().String()}
	srv := &http.Server{Handler: p}
	go srv.Serve(proxyLn)
	t.Cleanup(func() { srv.Close() })
	var out bytes.Buffer
	if err := run(t.Context(), []string{"dev-token", "--scope", "system/*.cruds system/AuditEvent.rs", "--client", "conformance-proxy", "--sub", "conformance-proxy"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	p.token = strings.TrimSpace(out.String())
	return p, registerConformanceClient(t, env, base+"/fhir")
}

// faultNamed is the fault of the table called name.
func faultNamed(t *testing.T, name string) *fault {
	for i := range faults {
		if faults[i].name == name {
			return &faults[i]
		}
	}
	t.Fatalf("no fault %q", name)
	return nil
}

func TestConformanceChecksCatchFaults(t *testing.T) {
	t.Parallel()
	p, b := startFaultyBilly(t)
	cfg := b.config(t)
	cfg.Progress = nil

	control, err := conformance.Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var passed []string
	for _, r := range control.Results {
		if _, known := billyKnownFailures[r.ID]; r.Result.Status == conformance.Fail && !known {
			t.Errorf("control run without a fault: %s failed: %s\n%s", r.ID, r.Result.Reason, exchangeText(r.Result.Exchange))
		}
		if r.Result.Status == conformance.Pass {
			passed = append(passed, r.ID)
		}
	}
	covered := map[string]bool{}
	for _, f := range faults {
		re := regexp.MustCompile(f.checks)
		var ids []string
		for _, id := range passed {
			if re.MatchString(id) {
				ids = append(ids, regexp.QuoteMeta(id))
				covered[id] = true
			}
		}
		if len(ids) == 0 {
			t.Errorf("fault %q breaks no check that passes (%s)", f.name, f.checks)
			continue
		}
		p.cur.Store(&f)
		c := cfg
		c.Only = regexp.MustCompile("^(" + strings.Join(ids, "|") + ")$")
		rep, err := conformance.Run(t.Context(), c)
		if err != nil {
			t.Errorf("fault %q: %v", f.name, err)
			continue
		}
		for _, r := range rep.Results {
			if r.Result.Status != conformance.Fail {
				t.Errorf("fault %q: %s %s (%s)", f.name, r.ID, r.Result.Status, r.Result.Reason)
			}
		}
		p.cur.Store(nil)
	}
	for _, id := range passed {
		if !covered[id] {
			t.Errorf("check %s has no fault case in the fault table", id)
		}
	}
	t.Logf("%d faults, %d checks proven to fail under their fault", len(faults), len(covered))
}
