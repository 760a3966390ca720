package rest_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iambilly/billy/fhir/jsontree"
)

// fuzzTargets are the ways a query string reaches the search path: type, system and compartment
// search, POST _search, $everything, history, the criteria of a conditional delete (with an If-Match
// no resource has, so that nothing is ever deleted), and a batch entry's request.url.
var fuzzTargets = []struct{ method, path string }{
	{http.MethodGet, "Patient"},
	{http.MethodGet, "Observation"},
	{http.MethodGet, "Encounter"},
	{http.MethodGet, ""},
	{http.MethodGet, "Patient/p1/Observation"},
	{http.MethodPost, "Observation/_search"},
	{http.MethodGet, "Patient/p1/$everything"},
	{http.MethodGet, "_history"},
	{http.MethodDelete, "Observation"},
	{http.MethodPost, ""},
}

// FuzzSearchQuery sends any query string through the whole path, parse → SQL → PostgreSQL, on a
// server with data, and asserts that no answer is a 500 (a panic is one too: the server recovers
// it) and that every error is a 4xx OperationOutcome with an issue code and diagnostics. Its seed
// corpus (NUL, invalid UTF-8, malformed escapes, huge repeats, deep chains, forged cursors, extreme
// numbers and dates) runs in every go test; go test -fuzz FuzzSearchQuery explores from there.
func FuzzSearchQuery(f *testing.F) {
	// Fewer conditions than the default keep each execution cheap (a hundred ANDed conditions take
	// PostgreSQL about a second to plan, and minimizing an input runs it hundreds of times); the
	// bounds themselves are TestSearchLimits' business.
	s := fixture(f, func(c *restConfig) { c.StatementTimeout, c.MaxSearchClauses = 2*time.Second, 20 })
	cursor := func(js string) string { return base64.RawURLEncoding.EncodeToString([]byte(js)) }
	seeds := []string{
		"", "name=mu", "code=http://loinc.org|8302-2&_sort=-date&_count=2", "_count=0", "_summary=count", "_total=estimate",
		// NUL and invalid UTF-8 everywhere.
		"name=a%00b", "na%00me=x", "identifier=%ff", "%ff=1", "code:text=%c3%28", "subject=Patient/p1%00", "_id=%00",
		"_has:Observation:patient:code=%00", "subject:Patient.name=%00", "_sort=%00", "_include=%00", "_elements=%00", "_page=%00",
		"_since=%00", "_type=Observation%00", "_format=%00",
		// Malformed query strings.
		"name=%zz", "name=%", "name=%2", "%zz=1", "a=1;b=2", "&&&", "=x", "name", "name==x", "name=x&&name=",
		// Huge repeats and value lists; deep and wide chains.
		strings.Repeat("name=x&", 10000), strings.Repeat("subject=Patient/p1&", 1000), "name=" + strings.Repeat("x,", 5000),
		strings.Repeat("_include=Observation:subject&", 500), "_sort=" + strings.Repeat("date,", 200) + "code",
		"_sort=status,code,date,subject,encounter,value-quantity,category,performer,based-on,device,focus,_id",
		"subject:Patient.organization.partof.partof.name=x", "subject:Patient.organization.partof.partof.partof.name=x",
		strings.Repeat("_has:Observation:patient:", 5) + "code=x", "_has:Observation:patient:_has:Encounter:patient:class=AMB",
		"subject.name=mu&encounter.service-provider.name=spring&patient.birthdate=lt1980",
		// Numbers, quantities and dates at the edges.
		"value-quantity=1e999999999", "value-quantity=1e-999999999", "value-quantity=1e1000000", "value-quantity=ap1e-1000000", "value-quantity=ap" + strings.Repeat("9", 5000),
		"value-quantity=0." + strings.Repeat("0", 5000) + "1", "value-quantity=-0", "value-quantity=1e2147483648",
		"value-quantity=100|" + strings.Repeat("|", 50), "code-value-quantity=a$b$c", "code-value-quantity=8302-2$gt1e400",
		"date=ap0001", "date=9999-12-31T23:59:59.999999999Z", "date=ap9999", "date=0000-01-01", "date=eb0001", "_lastUpdated=ap2026",
		"date=2026-03-05T10:00:00+14:59", "date=2026-02-29", "_since=0001-01-01", "_at=9999", "_count=99999999999999999999",
		// Forged page cursors.
		"_sort=name&_page=" + cursor(`{"k":["\u0000"],"r":1}`), "_sort=_lastUpdated&_page=" + cursor(`{"k":["garbage"],"r":1}`),
		"_sort=value-quantity&_page=" + cursor(`{"k":["NaN-ish"],"r":1}`), "_sort=date&_page=" + cursor(`{"k":["99999-99-99"],"r":-1,"b":true}`),
		"_page=" + cursor(`{"r":9223372036854775807}`), "_page=" + cursor(`{"k":[null,null],"r":1}`), "_page=" + cursor(`[]`),
		// Modifiers and references.
		"name:exact=", "name:bogus=x", "subject:Nope=1", "subject:Patient=", "subject=http://x/Patient/p1", "subject=urn:uuid:%00",
		"code:of-type=a|b", "identifier:of-type=a||c", "status:missing=maybe", "_id:not=p1", "_type=Patient,Nope",
		"_revinclude:iterate=Provenance:target&_include:iterate=*", "_include=Observation:subject:Nope",
	}
	for _, q := range seeds {
		for i := range fuzzTargets {
			f.Add(uint8(i), q)
		}
	}
	f.Fuzz(func(t *testing.T, target uint8, query string) {
		tg := fuzzTargets[int(target)%len(fuzzTargets)]
		var req *http.Request
		switch {
		case tg.method == http.MethodPost && tg.path == "":
			entry, _ := json.Marshal("Observation?" + query)
			req = httptest.NewRequest(tg.method, "/", strings.NewReader(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":`+string(entry)+`}}]}`))
			req.Header.Set("Content-Type", "application/fhir+json")
		case tg.method == http.MethodPost:
			req = httptest.NewRequest(tg.method, "/"+tg.path, strings.NewReader(query))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		default:
			req = httptest.NewRequest(tg.method, "/"+tg.path, nil)
			req.URL.RawQuery = query
			if tg.method == http.MethodDelete {
				req.Header.Set("If-Match", `W/"999"`)
			}
		}
		w := httptest.NewRecorder()
		s.handler.ServeHTTP(w, req)
		r := result{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
		if r.status >= 500 {
			t.Fatalf("%s /%s?%q: %d %s", tg.method, tg.path, query, r.status, r.body)
		}
		if r.status >= 400 {
			checkFuzzOutcome(t, r)
			return
		}
		if tg.method == http.MethodPost && tg.path == "" {
			b, err := jsontree.Parse(r.body)
			if err != nil {
				t.Fatalf("batch answer is not JSON: %v", err)
			}
			for _, e := range b.Get("entry").Items {
				st := e.Get("response").GetString("status")
				if n, _ := strconv.Atoi(strings.SplitN(st, " ", 2)[0]); n >= 500 || n == 0 {
					t.Fatalf("batch GET Observation?%q: entry status %q: %s", query, st, e.Marshal())
				}
			}
		}
	})
}

// checkFuzzOutcome is checkOutcome without the validator's cost: a FHIR JSON OperationOutcome
// whose issues have a code and diagnostics.
func checkFuzzOutcome(t *testing.T, r result) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Fatalf("%d with Content-Type %q: %q", r.status, ct, r.body)
	}
	oo, err := jsontree.Parse(r.body)
	if err != nil || oo.GetString("resourceType") != "OperationOutcome" || oo.Get("issue") == nil {
		t.Fatalf("%d without an OperationOutcome: %q", r.status, r.body)
	}
	for _, is := range oo.Get("issue").Items {
		if is.GetString("code") == "" || is.GetString("diagnostics") == "" {
			t.Fatalf("issue without code or diagnostics: %s", is.Marshal())
		}
	}
	if bytes.ContainsRune(r.body, 0) {
		t.Fatalf("the answer holds a NUL byte: %q", r.body)
	}
}
