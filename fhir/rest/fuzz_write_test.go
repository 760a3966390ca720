package rest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/iambilly/billy/fhir/jsontree"
)

// The write-side fuzz targets (README "Fuzzing"): resources, Bundles and both patch formats go
// through the whole server, parse → validate → store → read, on a real database. Each asserts what
// must hold for every input: no 5xx (a panic is one: the server recovers it), every refusal a 4xx
// OperationOutcome, nothing half-written, and what is stored reads back as it was answered.

// serve sends one request to the API handler.
func (s *server) serve(method, path, contentType string, body []byte, headers ...string) result {
	req := httptest.NewRequest(method, "/"+path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	s.handler.ServeHTTP(w, req)
	return result{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

// versions counts every stored version of every resource, and current rows: what a
// refused request must leave unchanged.
func (s *server) versions(t *testing.T) string {
	var n, cur int64
	if err := s.store.Pool().QueryRow(t.Context(), `SELECT (SELECT count(*) FROM resource_history), (SELECT count(*) FROM resources)`).Scan(&n, &cur); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d versions, %d current", n, cur)
}

// decoded is a JSON document as generic values, numbers kept as written.
func decoded(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %q", err, b)
	}
	return v
}

// withoutServerFields drops what the server sets on create (id, meta) from a resource.
func withoutServerFields(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := make(map[string]any, len(m))
	for k, x := range m {
		if k != "id" && k != "meta" {
			out[k] = x
		}
	}
	return out
}

// refused checks a 4xx answer: an OperationOutcome, and nothing written.
func (s *server) refused(t *testing.T, r result, before string) {
	t.Helper()
	checkFuzzOutcome(t, r)
	if after := s.versions(t); after != before {
		t.Fatalf("a refused request (%d) wrote: %s versions before, %s after; answer %s", r.status, before, after, r.body)
	}
}

// FuzzResourceRoundTrip: any JSON posted as a resource is refused with an OperationOutcome and
// leaves nothing behind, or is stored, and then reading it back gives exactly what create
// answered, which is the input but for id and meta.
func FuzzResourceRoundTrip(f *testing.F) {
	s := newServer(f)
	for _, seed := range []string{
		`{"resourceType":"Patient","name":[{"family":"Müller","given":["Anna"]}],"birthDate":"1970-02-18"}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"kg"}}`,
		`{"resourceType":"Patient","id":"client-id","meta":{"versionId":"7"},"active":true}`,
		`{"resourceType":"Patient","birthDate":"1970-13-45"}`, `{"resourceType":"Patient","unknown":1}`,
		`{"resourceType":"Nope"}`, `{"resourceType":"Patient","name":[{"family":"a\u0000b"}]}`, `[]`, `{`, ``, `{"resourceType":"Patient","_birthDate":{"id":"x"}}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1e400}}`,
		`{"resourceType":"Patient","extension":[{"url":"http://x","valueString":"` + strings.Repeat("é", 300) + `"}]}`,
		`{"resourceType":"Patient","contained":[{"resourceType":"Patient","contained":[]}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rt := "Patient"
		if tree, err := jsontree.Parse(body); err == nil && tree.GetString("resourceType") != "" {
			rt = tree.GetString("resourceType")
		}
		if strings.IndexFunc(rt, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') }) >= 0 {
			rt = "Patient" // not a type name: the path would not parse; the body is still sent
		}
		before := s.versions(t)
		created := s.serve(http.MethodPost, rt, "application/fhir+json", body, "Prefer", "return=representation")
		switch {
		case created.status >= 500:
			t.Fatalf("POST %s %q: %d %s", rt, body, created.status, created.body)
		case created.status >= 400:
			s.refused(t, created, before)
			return
		case created.status != http.StatusCreated:
			t.Fatalf("POST %s %q: %d, want 201 or a 4xx", rt, body, created.status)
		}
		loc := created.header.Get("Location")
		i := strings.Index(loc, rt+"/")
		if i < 0 {
			t.Fatalf("Location %q", loc)
		}
		path := strings.SplitN(loc[i:], "/_history/", 2)[0]
		read := s.serve(http.MethodGet, path, "", nil)
		if read.status != http.StatusOK {
			t.Fatalf("read back %s: %d %s", path, read.status, read.body)
		}
		if got, want := decoded(t, read.body), decoded(t, created.body); !reflect.DeepEqual(got, want) {
			t.Fatalf("read back differs from create's answer:\nread   %s\ncreate %s", read.body, created.body)
		}
		if got, want := withoutServerFields(decoded(t, read.body)), withoutServerFields(decoded(t, body)); !reflect.DeepEqual(got, want) {
			t.Fatalf("stored resource differs from the input (id and meta aside):\nstored %s\ninput  %s", read.body, body)
		}
	})
}

// FuzzBundle: any batch or transaction Bundle is answered without a 5xx; a refused one (4xx)
// writes nothing, and so does a transaction whose answer is not 200.
func FuzzBundle(f *testing.F) {
	s := fixture(f)
	for _, seed := range []string{
		`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}},` +
			`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:1"}},"request":{"method":"POST","url":"Observation"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","active":true},"request":{"method":"POST","url":"Patient"}},` +
			`{"resource":{"resourceType":"Patient","birthDate":"bad"},"request":{"method":"POST","url":"Patient"}}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient?name=mu"}},{"request":{"method":"DELETE","url":"Patient/nope"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT","url":"Patient/p9"},"resource":{"resourceType":"Patient","id":"p9"}},{"request":{"method":"DELETE","url":"Patient?name=zzz"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:a","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=x|1"}},{"fullUrl":"urn:uuid:a","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PATCH","url":"Patient/p1"},"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"W3sib3AiOiJyZXBsYWNlIiwicGF0aCI6Ii9hY3RpdmUiLCJ2YWx1ZSI6dHJ1ZX1d"}}]}`,
		`{"resourceType":"Bundle","type":"history"}`, `{"resourceType":"Bundle","type":"transaction","entry":[{}]}`, `{"resourceType":"Bundle","type":"batch","entry":[null]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Patient/p1"}},{"request":{"method":"POST","url":"../x"},"resource":{"resourceType":"Patient"}}]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		before := s.versions(t)
		r := s.serve(http.MethodPost, "", "application/fhir+json", []byte(body))
		switch {
		case r.status >= 500:
			t.Fatalf("POST Bundle %q: %d %s", body, r.status, r.body)
		case r.status >= 400:
			s.refused(t, r, before)
			return
		}
		tree, err := jsontree.Parse(r.body)
		if err != nil {
			t.Fatalf("answer is not JSON: %s", r.body)
		}
		var entries []*jsontree.Value
		if en := tree.Get("entry"); en != nil {
			entries = en.Items
		}
		for _, e := range entries {
			if st := e.Get("response").GetString("status"); strings.HasPrefix(st, "5") {
				t.Fatalf("entry answered %q: %s", st, e.Marshal())
			}
		}
	})
}

// FuzzPatch: any JSON Patch or FHIRPath Patch on a known resource is refused with an
// OperationOutcome and changes nothing, or gives a valid resource that reads back as answered.
func FuzzPatch(f *testing.F) {
	s := newServer(f)
	const base = `{"resourceType":"Patient","id":"fz","active":true,"name":[{"family":"Doe","given":["Jo","Ann"]}],"birthDate":"1980-01-01"}`
	seeds := []struct {
		fhirpath bool
		body     string
	}{
		{false, `[{"op":"replace","path":"/active","value":false}]`},
		{false, `[{"op":"add","path":"/name/0/given/-","value":"X"},{"op":"remove","path":"/birthDate"}]`},
		{false, `[{"op":"test","path":"/active","value":false}]`}, {false, `[{"op":"replace","path":"/id","value":"other"}]`},
		{false, `[{"op":"move","from":"/name/0","path":"/name/0/given"}]`}, {false, `[{"op":"add","path":"/birthDate","value":"not a date"}]`},
		{false, `[{"op":"copy","from":"/name","path":"/contact"}]`}, {false, `{}`}, {false, `[`},
		{true, `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.active"},{"name":"value","valueBoolean":false}]}]}`},
		{true, `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"gender"},{"name":"value","valueCode":"female"}]}]}`},
		{true, `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.given[0]"}]}]}`},
		{true, `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.name.given"},{"name":"source","valueInteger":1},{"name":"destination","valueInteger":0}]}]}`},
		{true, `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.name.where(family.startsWith('D'))"},{"name":"index","valueInteger":9},{"name":"value","valueHumanName":{"family":"Q"}}]}]}`},
		{true, `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.descendants()"},{"name":"value","valueString":"x"}]}]}`},
	}
	for _, sd := range seeds {
		f.Add(sd.fhirpath, sd.body)
	}
	f.Fuzz(func(t *testing.T, fhirpath bool, body string) {
		if r := s.serve(http.MethodPut, "Patient/fz", "application/fhir+json", []byte(base)); r.status != http.StatusOK && r.status != http.StatusCreated {
			t.Fatalf("reset: %d %s", r.status, r.body)
		}
		ct := "application/json-patch+json"
		if fhirpath {
			ct = "application/fhir+json"
		}
		before := s.versions(t)
		r := s.serve(http.MethodPatch, "Patient/fz", ct, []byte(body), "Prefer", "return=representation")
		switch {
		case r.status >= 500:
			t.Fatalf("PATCH (%s) %q: %d %s", ct, body, r.status, r.body)
		case r.status >= 400:
			s.refused(t, r, before)
			return
		case r.status != http.StatusOK:
			t.Fatalf("PATCH (%s) %q: %d, want 200 or a 4xx", ct, body, r.status)
		}
		read := s.serve(http.MethodGet, "Patient/fz", "", nil)
		if read.status != http.StatusOK {
			t.Fatalf("read after patch: %d %s", read.status, read.body)
		}
		if !reflect.DeepEqual(decoded(t, read.body), decoded(t, r.body)) {
			t.Fatalf("read back differs from the patch answer:\nread  %s\npatch %s", read.body, r.body)
		}
		if got := decoded(t, read.body).(map[string]any); got["id"] != "fz" || got["resourceType"] != "Patient" {
			t.Fatalf("the patch changed the id or type: %s", read.body)
		}
	})
}
