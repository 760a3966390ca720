package resource

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
)

func TestValidID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"abc": true, "A-1.b": true, strings.Repeat("x", 64): true, "": false, strings.Repeat("x", 65): false,
		"a_b": false, "a/b": false, "ü": false, NewID(): true,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
	if NewID() == NewID() {
		t.Error("NewID must not repeat")
	}
}

func TestStamp(t *testing.T) {
	t.Parallel()
	tree, err := jsontree.Parse([]byte(`{"resourceType":"Patient","gender":"male","meta":{"versionId":"9","lastUpdated":"2000-01-01T00:00:00Z","tag":[{"code":"a"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	StripServerMeta(tree)
	Stamp(tree, "p1", 3, time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.FixedZone("x", 3600)))
	want := `{"resourceType":"Patient","id":"p1","gender":"male","meta":{"versionId":"3","lastUpdated":"2026-11-25T09:00:00.123456Z","tag":[{"code":"a"}]}}`
	if got := string(tree.Marshal()); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	bare, _ := jsontree.Parse([]byte(`{"resourceType":"Basic","meta":{"versionId":"1"}}`))
	StripServerMeta(bare)
	if bare.Get("meta") != nil {
		t.Error("an emptied meta must be removed")
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		wantErr  string // substring of the expression of the first issue; "" = valid
	}{
		{"valid", `{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"extension":[{"url":"http://x","valueString":"y"}]}]}]}`, ""},
		{"null outside arrays", `{"resourceType":"Patient","active":null}`, "Patient.active"},
		{"unpaired null in array", `{"resourceType":"Patient","name":[{"given":["a",null]}]}`, "Patient.name[0].given[1]"},
		{"empty object", `{"resourceType":"Patient","name":[{}]}`, "Patient.name[0]"},
		{"whitespace string", `{"resourceType":"Patient","gender":"  "}`, "Patient.gender"},
		{"narrative not a div", `{"resourceType":"Patient","text":{"status":"generated","div":"hello"}}`, "Patient.text.div"},
		{"array of arrays", `{"resourceType":"Patient","name":[[1]]}`, "Patient.name[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			fe, ok := fhir.AsError(err)
			if !ok || !errors.Is(err, fhir.ErrInvalid) {
				t.Fatalf("want an invalid fhir.Error, got %v", err)
			}
			if got := fe.Issues[0].Expression[0]; got != tt.wantErr {
				t.Errorf("expression %q, want %q", got, tt.wantErr)
			}
		})
	}
}

func TestValidatorMapsIssues(t *testing.T) {
	t.Parallel()
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in   string
		code, expr string
	}{
		{"unknown element", `{"resourceType":"Patient","foo":1}`, "structure", "Patient.foo"},
		{"unknown element in contained", `{"resourceType":"Patient","contained":[{"resourceType":"Patient","id":"c","foo":1}]}`, "structure", "Patient.contained[0].foo"},
		{"unknown element in a bundle entry", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","foo":1}}]}`, "structure", "Bundle.entry[0].resource.foo"},
		{"bad date", `{"resourceType":"Patient","birthDate":"2020-02-30"}`, "value", "Patient.birthDate"},
		{"bad code", `{"resourceType":"Patient","gender":"x"}`, "code-invalid", "Patient.gender"},
		{"required", `{"resourceType":"Observation","status":"final"}`, "required", "Observation.code"},
		{"choice twice", `{"resourceType":"Patient","deceasedBoolean":true,"deceasedDateTime":"2020"}`, "structure", "Patient"},
		{"bad id", `{"resourceType":"Patient","id":"a_b"}`, "value", "Patient.id"},
		{"integer as decimal", `{"resourceType":"Patient","multipleBirthInteger":1.5}`, "value", "Patient.multipleBirthInteger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := v.Validate([]byte(tt.in))
			fe, ok := fhir.AsError(err)
			if !ok {
				t.Fatalf("want a fhir.Error, got %v", err)
			}
			is := fe.Issues[0]
			if is.Code != tt.code || len(is.Expression) == 0 || is.Expression[0] != tt.expr {
				t.Errorf("issue %+v, want code %q at %q", is, tt.code, tt.expr)
			}
		})
	}
	if err := v.Validate([]byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50}}`)); err != nil {
		t.Errorf("valid Observation rejected: %v", err)
	}
}

func TestRewriteReferences(t *testing.T) {
	t.Parallel()
	tree, _ := jsontree.Parse([]byte(`{"resourceType":"Encounter","subject":{"reference":"urn:uuid:a"},"basedOn":[{"reference":"urn:uuid:b"},{"reference":"Patient/keep"}],` +
		`"text":{"status":"generated","div":"<div><a href=\"urn:uuid:a\">x</a> urn:uuid:a</div>"},"identifier":[{"system":"urn:uuid:a"}]}`))
	changed := RewriteReferences(tree, map[string]string{"urn:uuid:a": "Patient/1", "urn:uuid:b": "ServiceRequest/2"})
	want := `{"resourceType":"Encounter","subject":{"reference":"Patient/1"},"basedOn":[{"reference":"ServiceRequest/2"},{"reference":"Patient/keep"}],` +
		`"text":{"status":"generated","div":"<div><a href=\"Patient/1\">x</a> urn:uuid:a</div>"},"identifier":[{"system":"Patient/1"}]}`
	if !changed || string(tree.Marshal()) != want {
		t.Errorf("got  %s\nwant %s", tree.Marshal(), want)
	}
	crs := ConditionalReferences(mustParse(t, `{"resourceType":"Observation","subject":{"reference":"Patient?identifier=a|b"},"focus":[{"reference":"Nope?x=1"}]}`))
	if len(crs) != 1 || crs[0].Type != "Patient" || crs[0].Query != "identifier=a|b" {
		t.Errorf("conditional references: %+v", crs)
	}
}

func mustParse(t *testing.T, s string) *jsontree.Value {
	t.Helper()
	v, err := jsontree.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseReference(t *testing.T) {
	t.Parallel()
	for ref, want := range map[string]string{"Patient/1": "Patient 1", "Patient/1/_history/2": "Patient 1", "Nope/1": "", "#c": "", "Patient/a_b": ""} {
		typ, id, ok := ParseReference(ref)
		got := ""
		if ok {
			got = typ + " " + id
		}
		if got != want {
			t.Errorf("ParseReference(%q) = %q, want %q", ref, got, want)
		}
	}
}
