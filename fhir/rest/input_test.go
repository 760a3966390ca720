package rest_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestQueryStringRules walks hostile query input through every way a query reaches the server: a
// NUL byte or invalid UTF-8 anywhere, and a query string that does not parse, are a 400
// OperationOutcome naming the parameter, never a 500 and never a partial parse.
func TestQueryStringRules(t *testing.T) {
	t.Parallel()
	s := fixture(t)
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	tests := []struct {
		name, method, path string
		body               any
		headers            []string
		wantExpr           string // "" when the issue need not name one
	}{
		// NUL in every kind of search value.
		{name: "string", path: "Patient?name=a%00b", wantExpr: "name"},
		{name: "string exact", path: "Patient?family:exact=M%00", wantExpr: "family:exact"},
		{name: "string contains", path: "Patient?name:contains=%00", wantExpr: "name:contains"},
		{name: "token", path: "Patient?identifier=http://mrn|A%001", wantExpr: "identifier"},
		{name: "token system", path: "Patient?identifier=http://mr%00n|", wantExpr: "identifier"},
		{name: "token text", path: "Observation?code:text=he%00", wantExpr: "code:text"},
		{name: "token not", path: "Patient?gender:not=ma%00le", wantExpr: "gender:not"},
		{name: "uri", path: "ValueSet?url=http://x/%00", wantExpr: "url"},
		{name: "uri below", path: "ValueSet?url:below=http://x/%00", wantExpr: "url:below"},
		{name: "reference", path: "Observation?subject=Patient/p1%00", wantExpr: "subject"},
		{name: "reference url", path: "Observation?subject=http://x/Patient/%00", wantExpr: "subject"},
		{name: "_id", path: "Patient?_id=p1%00", wantExpr: "_id"},
		{name: "_tag", path: "Patient?_tag=s|%00", wantExpr: "_tag"},
		{name: "_profile", path: "Patient?_profile=http://p/%00", wantExpr: "_profile"},
		{name: "_security", path: "Patient?_security=%00", wantExpr: "_security"},
		{name: "chain", path: "Observation?subject:Patient.name=%00", wantExpr: "subject:Patient.name"},
		{name: "_has", path: "Patient?_has:Observation:patient:code=%00", wantExpr: "_has:Observation:patient:code"},
		{name: "composite", path: "Observation?code-value-quantity=8302-2%00$gt1", wantExpr: "code-value-quantity"},
		{name: "NUL in a name", path: "Patient?na%00me=x"},
		{name: "NUL in an ignored parameter", path: "Patient?foo=%00", wantExpr: "foo"},
		{name: "NUL in _sort", path: "Patient?_sort=%00", wantExpr: "_sort"},
		{name: "NUL in _elements", path: "Patient?_elements=na%00me", wantExpr: "_elements"},
		{name: "NUL in _format", path: "Patient?_format=json%00", wantExpr: "_format"},
		// Invalid UTF-8, after unescaping.
		{name: "invalid UTF-8 value", path: "Patient?name=%ff", wantExpr: "name"},
		{name: "invalid UTF-8 token", path: "Patient?identifier=%c3%28", wantExpr: "identifier"},
		{name: "invalid UTF-8 name", path: "Patient?na%ffme=x"},
		// Query strings that do not parse: never partly applied.
		{name: "bad escape", path: "Patient?name=%zz"},
		{name: "bad escape after a good pair", path: "Patient?gender=male&name=mu%zz"},
		{name: "bad escape in a name", path: "Patient?na%zzme=x"},
		{name: "truncated escape", path: "Patient?name=mu%2"},
		{name: "semicolon separator", path: "Patient?gender=male;name=x"},
		// Other paths a query takes.
		{name: "compartment", path: "Patient/p1/Observation?code=%00", wantExpr: "code"},
		{name: "compartment bad escape", path: "Patient/p1/Observation?code=%zz"},
		{name: "system search", path: "?_type=Patient&name=%00", wantExpr: "name"},
		{name: "$everything _since", path: "Patient/p1/$everything?_since=2026%00", wantExpr: "_since"},
		{name: "$everything _type", path: "Patient/p1/$everything?_type=Observation%00", wantExpr: "_type"},
		{name: "$everything bad escape", path: "Patient/p1/$everything?_count=%zz"},
		{name: "history _since", path: "Patient/_history?_since=2026%00", wantExpr: "_since"},
		{name: "history _at", path: "_history?_at=%ff", wantExpr: "_at"},
		{name: "history bad escape", path: "Patient/p1/_history?_count=1%zz"},
		{name: "read _elements", path: "Patient/p1?_elements=%00", wantExpr: "_elements"},
		{name: "POST _search body NUL", method: http.MethodPost, path: "Patient/_search", body: "name=%00", headers: form, wantExpr: "name"},
		{name: "POST _search body invalid UTF-8", method: http.MethodPost, path: "Patient/_search", body: "name=%fe", headers: form, wantExpr: "name"},
		{name: "POST _search body bad escape", method: http.MethodPost, path: "Patient/_search", body: "gender=male&name=%zz", headers: form},
		{name: "POST _search URL NUL", method: http.MethodPost, path: "Patient/_search?name=%00", body: "gender=male", headers: form, wantExpr: "name"},
		// Conditional interactions.
		{name: "conditional delete NUL", method: http.MethodDelete, path: "Patient?name=%00", wantExpr: "name"},
		{name: "conditional update NUL", method: http.MethodPut, path: "Patient?identifier=%00", body: `{"resourceType":"Patient"}`, wantExpr: "identifier"},
		{name: "conditional patch NUL", method: http.MethodPatch, path: "Patient?_id=p1%00", body: `[]`, headers: []string{"Content-Type", "application/json-patch+json"}, wantExpr: "_id"},
		{name: "If-None-Exist NUL", method: http.MethodPost, path: "Patient", body: `{"resourceType":"Patient"}`, headers: []string{"If-None-Exist", "identifier=%00"}, wantExpr: "identifier"},
		{name: "If-None-Exist invalid UTF-8", method: http.MethodPost, path: "Patient", body: `{"resourceType":"Patient"}`, headers: []string{"If-None-Exist", "name=%ff"}, wantExpr: "name"},
		{name: "If-None-Exist bad escape", method: http.MethodPost, path: "Patient", body: `{"resourceType":"Patient"}`, headers: []string{"If-None-Exist", "identifier=x&name=%zz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			r := s.do(method, tt.path, tt.body, tt.headers...)
			code, expr, diag := issue(t, r.must(t, http.StatusBadRequest))
			if code == "" || diag == "" {
				t.Errorf("issue without code or diagnostics: %s", r.body)
			}
			if tt.wantExpr != "" && expr != tt.wantExpr {
				t.Errorf("expression %q, want %q (%s)", expr, tt.wantExpr, diag)
			}
			if strings.ContainsRune(string(r.body), 0) {
				t.Errorf("the answer echoes a NUL byte: %q", r.body)
			}
		})
	}
	// Nothing above changed anything: the fixture's patients are all still there.
	if ids := s.searchIDs(t, "Patient"); len(ids) != 3 {
		t.Errorf("patients after the hostile requests: %v", ids)
	}
}

// TestConditionalNeverActsOnPartlyParsedCriteria is the reviewer's reproduction: a malformed escape
// used to drop the identifier pair silently, and the conditional delete went ahead on the rest.
func TestConditionalNeverActsOnPartlyParsedCriteria(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	sub := `{"resourceType":"Substance","id":"s1","identifier":[{"system":"urn:t","value":"keep"}],"code":{"text":"only"}}`
	s.do(http.MethodPut, "Substance/s1", sub).must(t, http.StatusCreated)
	s.do(http.MethodDelete, "Substance?identifier=urn:t|nomatch%zz&code:text=only", nil).must(t, http.StatusBadRequest)
	s.do(http.MethodPut, "Substance?identifier=urn:t|nomatch%zz&code:text=only", `{"resourceType":"Substance","code":{"text":"changed"}}`).must(t, http.StatusBadRequest)
	s.do(http.MethodPatch, "Substance?identifier=urn:t|nomatch%zz&code:text=only", `[{"op":"replace","path":"/code/text","value":"changed"}]`,
		"Content-Type", "application/json-patch+json").must(t, http.StatusBadRequest)
	s.do(http.MethodPost, "Substance", `{"resourceType":"Substance","code":{"text":"new"}}`, "If-None-Exist", "identifier=urn:t|nomatch%zz&code:text=only").must(t, http.StatusBadRequest)
	// The same in Bundle entries and their conditions.
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Substance?identifier=urn:t|nomatch%zz&code:text=only"}}]}`
	s.do(http.MethodPost, "", tx).must(t, http.StatusBadRequest)
	tx = `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Substance?identifier=urn:t|nomatch%00&code:text=only"}}]}`
	s.do(http.MethodPost, "", tx).must(t, http.StatusBadRequest)
	tx = `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Substance","ifNoneExist":"code:text=only&identifier=%zz"},"resource":{"resourceType":"Substance","code":{"text":"new"}}}]}`
	s.do(http.MethodPost, "", tx).must(t, http.StatusBadRequest)
	batch := `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"DELETE","url":"Substance?identifier=urn:t|nomatch%zz&code:text=only"}},` +
		`{"request":{"method":"GET","url":"Substance?code:text=on%00ly"}}]}`
	b := s.do(http.MethodPost, "", batch).must(t, http.StatusOK)
	for i, e := range b.Get("entry").Items {
		if st := e.Get("response").GetString("status"); !strings.HasPrefix(st, "400") {
			t.Errorf("batch entry %d: status %q, want 400", i, st)
		}
	}
	got := s.do(http.MethodGet, "Substance/s1", nil).must(t, http.StatusOK)
	if metaVersion(got) != "1" || got.Get("code").GetString("text") != "only" {
		t.Errorf("the Substance was changed: %s", got.Marshal())
	}
	if ids := s.searchIDs(t, "Substance"); len(ids) != 1 {
		t.Errorf("substances %v, want only s1", ids)
	}
}
