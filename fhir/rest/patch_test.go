package rest_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestJSONPatch(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	id := s.create(patientJSON)
	jp := []string{"Content-Type", "application/json-patch+json"}
	got := s.do(http.MethodPatch, "Patient/"+id, `[{"op":"replace","path":"/birthDate","value":"1971-03-04"},{"op":"add","path":"/active","value":true}]`, jp...).must(t, http.StatusOK)
	if got.GetString("birthDate") != "1971-03-04" || metaVersion(got) != "2" || got.Get("active") == nil {
		t.Fatalf("patched: %s", got.Marshal())
	}
	h := s.do(http.MethodGet, "Patient/"+id+"/_history", nil).must(t, http.StatusOK)
	if m := h.Get("entry").Items[0].Get("request").GetString("method"); m != "PATCH" {
		t.Errorf("history method %q", m)
	}
	// The patched result is validated.
	_, expr, _ := issue(t, s.do(http.MethodPatch, "Patient/"+id, `[{"op":"replace","path":"/birthDate","value":"1971-13-04"}]`, jp...).must(t, http.StatusUnprocessableEntity))
	if expr != "Patient.birthDate" {
		t.Errorf("expression %q", expr)
	}
	// A failing test op, a bad document, a version mismatch, a changed id.
	s.do(http.MethodPatch, "Patient/"+id, `[{"op":"test","path":"/gender","value":"male"}]`, jp...).must(t, http.StatusUnprocessableEntity)
	s.do(http.MethodPatch, "Patient/"+id, `{"op":"nope"}`, jp...).must(t, http.StatusBadRequest)
	s.do(http.MethodPatch, "Patient/"+id, `[{"op":"remove","path":"/active"}]`, append(jp, "If-Match", `W/"1"`)...).must(t, http.StatusPreconditionFailed)
	s.do(http.MethodPatch, "Patient/"+id, `[{"op":"replace","path":"/id","value":"other"}]`, jp...).must(t, http.StatusUnprocessableEntity)
	s.do(http.MethodPatch, "Patient/"+id, `[{"op":"remove","path":"/active"}]`, append(jp, "If-Match", `W/"2"`)...).must(t, http.StatusOK)
	s.do(http.MethodPatch, "Patient/missing", `[{"op":"remove","path":"/active"}]`, jp...).must(t, http.StatusNotFound)
	// Conditional patch.
	s.do(http.MethodPatch, "Patient?identifier=M1", `[{"op":"replace","path":"/gender","value":"male"}]`, jp...).must(t, http.StatusOK)
	s.do(http.MethodDelete, "Patient/"+id, nil)
	s.do(http.MethodPatch, "Patient/"+id, `[{"op":"add","path":"/active","value":true}]`, jp...).must(t, http.StatusGone)
}

func TestFHIRPathPatch(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	id := s.create(`{"resourceType":"Patient","identifier":[{"system":"http://a","value":"1"},{"system":"http://b","value":"2"}],"name":[{"family":"Doe","given":["Jane","Q"]}],"birthDate":"1970-02-18"}`)
	op := func(parts string) string {
		return `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[` + parts + `]}]}`
	}
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, p string)
	}{
		{"replace", op(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.birthDate"},{"name":"value","valueDate":"1980-01-01"}`),
			func(t *testing.T, p string) { wantContains(t, p, `"birthDate":"1980-01-01"`) }},
		{"add single", op(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"gender"},{"name":"value","valueCode":"female"}`),
			func(t *testing.T, p string) { wantContains(t, p, `"gender":"female"`) }},
		{"add to list", op(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient.name[0]"},{"name":"name","valueString":"given"},{"name":"value","valueString":"Ann"}`),
			func(t *testing.T, p string) { wantContains(t, p, `"given":["Jane","Q","Ann"]`) }},
		{"insert", op(`{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.name[0].given"},{"name":"index","valueInteger":0},{"name":"value","valueString":"Zoe"}`),
			func(t *testing.T, p string) { wantContains(t, p, `"given":["Zoe","Jane","Q","Ann"]`) }},
		{"move", op(`{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.name[0].given"},{"name":"source","valueInteger":0},{"name":"destination","valueInteger":3}`),
			func(t *testing.T, p string) { wantContains(t, p, `"given":["Jane","Q","Ann","Zoe"]`) }},
		{"delete with where", op(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.identifier.where(system='http://a')"}`),
			func(t *testing.T, p string) { wantContains(t, p, `"identifier":[{"system":"http://b","value":"2"}]`) }},
		{"add complex value", op(`{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"telecom"},{"name":"value","valueContactPoint":{"system":"phone","value":"555"}}`),
			func(t *testing.T, p string) { wantContains(t, p, `"telecom":[{"system":"phone","value":"555"}]`) }},
		{"delete nothing is fine", op(`{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.deceased"}`),
			func(t *testing.T, p string) {}},
	}
	for _, tt := range tests {
		r := s.do(http.MethodPatch, "Patient/"+id, tt.body)
		got := r.must(t, http.StatusOK)
		t.Run(tt.name, func(t *testing.T) { tt.check(t, string(got.Marshal())) })
	}
	// Errors: replace of a list with many items, an invalid result, a malformed path.
	s.do(http.MethodPatch, "Patient/"+id, op(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.name.given"},{"name":"value","valueString":"x"}`)).must(t, http.StatusUnprocessableEntity)
	s.do(http.MethodPatch, "Patient/"+id, op(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.birthDate"},{"name":"value","valueString":"not a date"}`)).must(t, http.StatusUnprocessableEntity)
	s.do(http.MethodPatch, "Patient/"+id, op(`{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.("},{"name":"value","valueString":"x"}`)).must(t, http.StatusBadRequest)
	s.do(http.MethodPatch, "Patient/"+id, op(`{"name":"type","valueCode":"explode"},{"name":"path","valueString":"Patient"}`)).must(t, http.StatusBadRequest)
}

func wantContains(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%s\ndoes not contain %s", s, sub)
	}
}
