package search

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iambilly/billy/fhir/jsontree"
)

func TestLinks(t *testing.T) {
	t.Parallel()
	const base = "https://billy.example/fhir"
	for _, tc := range []struct {
		name, typ, res string
		want           Ties
	}{
		{"patient is not tied to the records it links", "Patient", `{"resourceType":"Patient","id":"b","link":[{"other":{"reference":"Patient/a"},"type":"seealso"}]}`, Ties{}},
		{"compartment member", "Observation", `{"resourceType":"Observation","subject":{"reference":"Patient/a"},"performer":[{"reference":"` + base + `/Patient/b"},{"reference":"Practitioner/x"}]}`, Ties{Patients: []string{"a", "b"}}},
		{"non-patient subject", "Observation", `{"resourceType":"Observation","subject":{"reference":"Group/g"}}`, Ties{}},
		{"binary to a patient", "Binary", `{"resourceType":"Binary","securityContext":{"reference":"Patient/a"}}`, Ties{Patients: []string{"a"}}},
		{"binary to a media", "Binary", `{"resourceType":"Binary","securityContext":{"reference":"Media/m"}}`, Ties{Links: []Reference{{Type: "Media", ID: "m"}}}},
		{"task", "Task", `{"resourceType":"Task","for":{"reference":"Patient/a"},"focus":{"reference":"Media/m"},"owner":{"reference":"Patient/b"}}`, Ties{Patients: []string{"a"}, Links: []Reference{{Type: "Media", ID: "m"}}}},
		{"provenance", "Provenance", `{"resourceType":"Provenance","target":[{"reference":"Claim/c"},{"reference":"Patient/a"}]}`, Ties{Patients: []string{"a"}, Links: []Reference{{Type: "Claim", ID: "c"}}}},
		{"audit event", "AuditEvent", `{"resourceType":"AuditEvent","entity":[{"what":{"reference":"Binary/x"}},{"what":{"reference":"https://elsewhere.example/Patient/p"}}]}`, Ties{Links: []Reference{{Type: "Binary", ID: "x"}}}},
		{"contained and external references", "Observation", `{"resourceType":"Observation","subject":{"reference":"#p"}}`, Ties{}},
		{"shared type", "Practitioner", `{"resourceType":"Practitioner"}`, Ties{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Links(tc.typ, mustParse(t, tc.res), base)
			if diff := cmp.Diff(tc.want, got, cmpEmpty); diff != "" {
				t.Errorf("Links (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpEmpty = cmp.Transformer("empty", func(t Ties) Ties {
	if len(t.Patients) == 0 {
		t.Patients = nil
	}
	if len(t.Links) == 0 {
		t.Links = nil
	}
	return t
})

func TestReachRowsAreIndexed(t *testing.T) {
	t.Parallel()
	ix := Extract("Task", mustParse(t, `{"resourceType":"Task","for":{"reference":"Patient/a"},"focus":{"reference":"Media/m"}}`), "")
	var got []Reference
	for _, r := range ix.References {
		if r.Param == ReachMemberParam || r.Param == ReachLinkParam {
			got = append(got, r)
		}
	}
	want := []Reference{{Param: ReachMemberParam, Type: "Patient", ID: "a"}, {Param: ReachLinkParam, Type: "Media", ID: "m"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reach rows (-want +got):\n%s", diff)
	}
}

func TestAttachedBinaries(t *testing.T) {
	t.Parallel()
	const base = "https://billy.example/fhir"
	for _, tc := range []struct {
		typ, res string
		want     []string
	}{
		{"Media", `{"resourceType":"Media","content":{"url":"Binary/m1"}}`, []string{"m1"}},
		{"DocumentReference", `{"resourceType":"DocumentReference","content":[{"attachment":{"url":"` + base + `/Binary/d2"}},{"attachment":{"url":"Binary/d1"}},{"attachment":{"url":"https://elsewhere.example/Binary/x"}}]}`, []string{"d1", "d2"}},
		{"Communication", `{"resourceType":"Communication","payload":[{"contentAttachment":{"url":"Binary/c1"}},{"contentString":"Binary/no"}]}`, []string{"c1"}},
		{"Questionnaire", `{"resourceType":"Questionnaire","item":[{"item":[{"initial":[{"valueAttachment":{"url":"Binary/q1"}}]}]}]}`, []string{"q1"}},
		{"DiagnosticReport", `{"resourceType":"DiagnosticReport","presentedForm":[{"url":"Binary/r1"}],"conclusion":"Binary/no"}`, []string{"r1"}},
		{"Patient", `{"resourceType":"Patient","photo":[{"url":"Patient/p"}]}`, nil},
	} {
		if diff := cmp.Diff(tc.want, AttachedBinaries(tc.typ, mustParse(t, tc.res), base)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.typ, diff)
		}
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
