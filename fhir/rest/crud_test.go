package rest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCreateAndRead(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	body := `{"resourceType":"Patient","id":"client-chosen","meta":{"versionId":"7","lastUpdated":"2001-01-01T00:00:00Z","tag":[{"system":"http://t","code":"a"}]},"birthDate":"1970-02-18","valueDecimalStyle":null}`
	body = strings.Replace(body, `,"valueDecimalStyle":null`, `,"multipleBirthInteger":2`, 1)
	r := s.do(http.MethodPost, "Patient", body)
	created := r.must(t, http.StatusCreated)
	id := created.GetString("id")
	if id == "" || id == "client-chosen" {
		t.Fatalf("create must assign a new id, got %q", id)
	}
	if got, want := r.header.Get("Location"), s.base+"/Patient/"+id+"/_history/1"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if r.header.Get("ETag") != `W/"1"` || r.header.Get("Last-Modified") == "" {
		t.Errorf("ETag %q, Last-Modified %q", r.header.Get("ETag"), r.header.Get("Last-Modified"))
	}
	meta := created.Get("meta")
	if meta.GetString("versionId") != "1" || strings.HasPrefix(meta.GetString("lastUpdated"), "2001") {
		t.Errorf("server must own meta.versionId/lastUpdated: %s", meta.Marshal())
	}
	if meta.Get("tag") == nil {
		t.Error("client tags must be kept")
	}

	got := s.do(http.MethodGet, "Patient/"+id, nil)
	read := got.must(t, http.StatusOK)
	if string(read.Marshal()) != string(created.Marshal()) {
		t.Errorf("read differs from create response:\n%s\n%s", read.Marshal(), created.Marshal())
	}
	if ct := got.header.Get("Content-Type"); ct != "application/fhir+json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	// HEAD gives the headers only.
	head := s.do(http.MethodHead, "Patient/"+id, nil)
	if head.status != http.StatusOK || len(head.body) != 0 || head.header.Get("ETag") != `W/"1"` {
		t.Errorf("HEAD: %d %q %q", head.status, head.body, head.header.Get("ETag"))
	}
	pretty := s.do(http.MethodGet, "Patient/"+id+"?_pretty=true", nil)
	if !strings.Contains(string(pretty.body), "\n  \"resourceType\"") {
		t.Errorf("_pretty=true not indented: %s", pretty.body)
	}
	if s.do(http.MethodGet, "Patient/"+id+"?_format=json", nil).status != http.StatusOK {
		t.Error("_format=json must be accepted")
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(c *restConfig) { c.MaxBodyBytes = 4096 })
	big := `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("x", 5000) + `"}]}`
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		headers    []string
		wantStatus int
		wantCode   string
		wantExpr   string
	}{
		{"malformed JSON", "POST", "Patient", `{"resourceType":"Patient",`, nil, 400, "structure", ""},
		{"not an object", "POST", "Patient", `[1]`, nil, 400, "structure", ""},
		{"wrong resourceType for URL", "POST", "Patient", `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, nil, 400, "invalid", "resourceType"},
		{"missing resourceType", "POST", "Patient", `{"gender":"male"}`, nil, 400, "required", "resourceType"},
		{"unknown resourceType in body", "POST", "Patient", `{"resourceType":"Nope"}`, nil, 400, "not-supported", "resourceType"},
		{"body id differs from URL id", "PUT", "Patient/abc", `{"resourceType":"Patient","id":"xyz"}`, nil, 400, "invalid", "id"},
		{"update without id", "PUT", "Patient/abc", `{"resourceType":"Patient","gender":"male"}`, nil, 400, "required", "id"},
		{"unknown element", "POST", "Patient", `{"resourceType":"Patient","foo":1}`, nil, 400, "structure", "Patient.foo"},
		{"unknown nested element", "POST", "Patient", `{"resourceType":"Patient","name":[{"family":"x","bogus":true}]}`, nil, 400, "structure", "Patient.name[0].bogus"},
		{"bad date", "POST", "Patient", `{"resourceType":"Patient","birthDate":"1990-13-45"}`, nil, 400, "value", "Patient.birthDate"},
		{"bad code", "POST", "Patient", `{"resourceType":"Patient","gender":"robot"}`, nil, 400, "code-invalid", "Patient.gender"},
		{"missing required element", "POST", "Observation", `{"resourceType":"Observation","status":"final"}`, nil, 400, "required", "Observation.code"},
		{"wrong reference target", "POST", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Claim/1"}}`, nil, 400, "value", "Observation.subject"},
		{"null value", "POST", "Patient", `{"resourceType":"Patient","active":null}`, nil, 400, "structure", "Patient.active"},
		{"empty array", "POST", "Patient", `{"resourceType":"Patient","name":[]}`, nil, 400, "structure", "Patient.name"},
		{"empty string", "POST", "Patient", `{"resourceType":"Patient","name":[{"given":[""]}]}`, nil, 400, "value", "Patient.name[0].given[0]"},
		{"duplicate member", "POST", "Patient", `{"resourceType":"Patient","gender":"male","gender":"female"}`, nil, 400, "structure", ""},
		{"unsupported media type", "POST", "Patient", `<Patient xmlns="http://hl7.org/fhir"/>`, []string{"Content-Type", "application/fhir+xml"}, 415, "not-supported", ""},
		{"body over the limit", "POST", "Patient", big, nil, 413, "too-costly", ""},
		{"unknown resource type", "GET", "Nope/1", "", nil, 404, "not-supported", ""},
		{"invalid id", "GET", "Patient/a_b", "", nil, 400, "value", ""},
		{"method not allowed", "DELETE", "Patient/1/_history", "", nil, 405, "not-supported", ""},
		{"XML not acceptable", "GET", "metadata", "", []string{"Accept", "application/fhir+xml"}, 406, "not-supported", ""},
		{"_format xml", "GET", "metadata?_format=xml", "", nil, 406, "not-supported", ""},
		{"read unknown", "GET", "Patient/nothere", "", nil, 404, "not-found", ""},
		{"vread bad version", "GET", "Patient/nothere/_history/x", "", nil, 404, "not-found", ""},
		{"unknown operation", "POST", "Patient/$everything-but", "{}", nil, 404, "not-supported", ""},
		{"PUT without id or criteria", "PUT", "Patient", patientJSON, nil, 400, "required", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			r := s.do(tt.method, tt.path, body, tt.headers...)
			oo := r.must(t, tt.wantStatus)
			code, expr, diag := issue(t, oo)
			if code != tt.wantCode {
				t.Errorf("issue code %q, want %q (%s)", code, tt.wantCode, diag)
			}
			if expr != tt.wantExpr {
				t.Errorf("expression %q, want %q (%s)", expr, tt.wantExpr, diag)
			}
			if diag == "" {
				t.Error("diagnostics must say what is wrong")
			}
			if tt.wantStatus == 405 && r.header.Get("Allow") == "" {
				t.Error("405 needs an Allow header")
			}
		})
	}
	// Nothing invalid was stored.
	var n int
	if err := s.store.Pool().QueryRow(t.Context(), "SELECT count(*) FROM resources").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d resources stored by failed requests (%v)", n, err)
	}
}

func TestUpdateDeleteVersions(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	p := func(gender string) string {
		return `{"resourceType":"Patient","id":"p1","gender":"` + gender + `"}`
	}
	r := s.do(http.MethodPut, "Patient/p1", p("male"))
	if r.must(t, http.StatusCreated); r.header.Get("Location") != s.base+"/Patient/p1/_history/1" {
		t.Errorf("update-as-create Location = %q", r.header.Get("Location"))
	}
	v2 := s.do(http.MethodPut, "Patient/p1", p("female")).must(t, http.StatusOK)
	if metaVersion(v2) != "2" || v2.GetString("gender") != "female" {
		t.Fatalf("update: %s", v2.Marshal())
	}
	if code, _, _ := issue(t, s.do(http.MethodPut, "Patient/p1", p("other"), "If-Match", `W/"1"`).must(t, http.StatusPreconditionFailed)); code != "conflict" {
		t.Errorf("stale If-Match issue code %q", code)
	}
	s.do(http.MethodPut, "Patient/p1", p("other"), "If-Match", `W/"2"`).must(t, http.StatusOK)
	if code, _, _ := issue(t, s.do(http.MethodPut, "Patient/p1", p("other"), "If-Match", `nonsense`).must(t, http.StatusBadRequest)); code != "value" {
		t.Errorf("bad If-Match code %q", code)
	}

	d := s.do(http.MethodDelete, "Patient/p1", nil)
	if d.status != http.StatusNoContent || d.header.Get("ETag") != `W/"4"` {
		t.Fatalf("delete: %d ETag %q %s", d.status, d.header.Get("ETag"), d.body)
	}
	if code, _, _ := issue(t, s.do(http.MethodGet, "Patient/p1", nil).must(t, http.StatusGone)); code != "deleted" {
		t.Errorf("read of deleted: code %q", code)
	}
	if s.do(http.MethodDelete, "Patient/p1", nil).status != http.StatusNoContent {
		t.Error("deleting a deleted resource must succeed (204)")
	}
	if s.do(http.MethodDelete, "Patient/never", nil).status != http.StatusNoContent {
		t.Error("deleting an absent resource must succeed (204)")
	}
	if oo := s.do(http.MethodDelete, "Patient/never", nil, "Prefer", "return=OperationOutcome").must(t, http.StatusOK); oo.GetString("resourceType") != "OperationOutcome" {
		t.Error("Prefer: return=OperationOutcome on delete must give an outcome")
	}
	for v, gender := range map[string]string{"1": "male", "2": "female", "3": "other"} {
		got := s.do(http.MethodGet, "Patient/p1/_history/"+v, nil).must(t, http.StatusOK)
		if got.GetString("gender") != gender || metaVersion(got) != v {
			t.Errorf("vread %s: %s", v, got.Marshal())
		}
	}
	s.do(http.MethodGet, "Patient/p1/_history/4", nil).must(t, http.StatusGone)
	s.do(http.MethodGet, "Patient/p1/_history/5", nil).must(t, http.StatusNotFound)
	// Re-creating a deleted resource continues its version history.
	r = s.do(http.MethodPut, "Patient/p1", p("unknown"))
	if got := r.must(t, http.StatusCreated); metaVersion(got) != "5" {
		t.Errorf("resurrected version %s, want 5", metaVersion(got))
	}
	// A versionId in the body is ignored.
	got := s.do(http.MethodPut, "Patient/p1", `{"resourceType":"Patient","id":"p1","meta":{"versionId":"99"}}`).must(t, http.StatusOK)
	if metaVersion(got) != "6" {
		t.Errorf("client versionId must be ignored: %s", got.Marshal())
	}
}

// TestConditionalRead runs at each of testDates: If-Modified-Since compares with the lastUpdated
// the injected clock stamped.
func TestConditionalRead(t *testing.T) {
	t.Parallel()
	for _, now := range testDates {
		t.Run(now.Format("2006-01-02"), func(t *testing.T) {
			t.Parallel()
			clk := newClock(now)
			s := newServer(t, withClock(clk))
			id := s.create(patientJSON)
			if r := s.do(http.MethodGet, "Patient/"+id, nil, "If-None-Match", `W/"1"`); r.status != http.StatusNotModified || len(r.body) != 0 {
				t.Errorf("If-None-Match current: %d", r.status)
			}
			s.do(http.MethodGet, "Patient/"+id, nil, "If-None-Match", `W/"0"`).must(t, http.StatusOK)
			at := func(d time.Duration) string { return now.Add(d).UTC().Format(http.TimeFormat) }
			for _, tc := range []struct {
				since string
				want  int
			}{
				{at(time.Hour), http.StatusNotModified},
				{at(0), http.StatusNotModified}, // the second it was written in
				{at(-time.Second), http.StatusOK},
				{at(-time.Hour), http.StatusOK},
			} {
				if r := s.do(http.MethodGet, "Patient/"+id, nil, "If-Modified-Since", tc.since); r.status != tc.want {
					t.Errorf("If-Modified-Since %s: %d, want %d", tc.since, r.status, tc.want)
				}
			}
			if lm := s.do(http.MethodGet, "Patient/"+id, nil).header.Get("Last-Modified"); lm != at(0) {
				t.Errorf("Last-Modified %q, want %q", lm, at(0))
			}
			// A later version is modified since the first one's time.
			clk.Advance(time.Minute)
			s.do(http.MethodPut, "Patient/"+id, `{"resourceType":"Patient","id":"`+id+`"}`).must(t, http.StatusOK)
			s.do(http.MethodGet, "Patient/"+id, nil, "If-Modified-Since", at(0)).must(t, http.StatusOK)
		})
	}
}

func TestPrefer(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	r := s.do(http.MethodPost, "Patient", patientJSON, "Prefer", "return=minimal")
	if r.status != http.StatusCreated || len(r.body) != 0 || r.header.Get("Location") == "" {
		t.Errorf("minimal: %d %q", r.status, r.body)
	}
	oo := s.do(http.MethodPost, "Patient", patientJSON, "Prefer", "return=OperationOutcome").must(t, http.StatusCreated)
	if code, _, _ := issue(t, oo); code != "informational" {
		t.Errorf("OperationOutcome preference: %s", oo.Marshal())
	}
	rep := s.do(http.MethodPost, "Patient", patientJSON, "Prefer", "return=representation").must(t, http.StatusCreated)
	if rep.GetString("resourceType") != "Patient" {
		t.Errorf("representation: %s", rep.Marshal())
	}
}

func TestCapabilityStatement(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	r := s.do(http.MethodGet, "metadata", nil)
	cs := r.must(t, http.StatusOK)
	if err := validator.Validate(r.body); err != nil {
		t.Fatalf("CapabilityStatement is not valid FHIR: %v", err)
	}
	res := cs.Get("rest").Items[0].Get("resource").Items
	if len(res) != 146 {
		t.Errorf("%d resource types, want 146", len(res))
	}
	if cs.GetString("fhirVersion") != "4.0.1" {
		t.Error("fhirVersion")
	}
	// Every claimed interaction is served: spot-check by doing them on the first type.
	for _, it := range res[0].Get("interaction").Items {
		if it.GetString("code") == "" {
			t.Error("interaction without code")
		}
	}
}
