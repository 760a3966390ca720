package fhirpath_test

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iambilly/billy/fhir/fhirpath"
	"github.com/iambilly/billy/fhir/jsontree"
)

const patchPatientJSON = `{"resourceType":"Patient","id":"x",` +
	`"identifier":[{"system":"http://example.org","value":"1"},{"system":"http://other.org","value":"2"}],` +
	`"name":[{"family":"Doe","given":["John","J"]}],` +
	`"birthDate":"1970-01-01",` +
	`"contact":[{"name":{"family":"Roe"}}]}`

// TestPatchLocations evaluates the paths of the FHIRPath Patch examples (add, insert, delete,
// replace, move) and applies the operation through the returned locations, the way a patch
// implementation would.
func TestPatchLocations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		path    string
		parents []string
		want    []got
		apply   func(t *testing.T, n []fhirpath.Node) // the operation, through the locations
		result  string                                // the resource after apply
	}{
		{
			name: "add to the resource", path: "Patient",
			want: []got{{Type: "Patient", Path: "Patient", Index: -1, JSON: patchPatientJSON}},
			apply: func(t *testing.T, n []fhirpath.Node) {
				n[0].Value.Set("gender", jsontree.NewString("male"))
			},
			result: `{"resourceType":"Patient","id":"x",` +
				`"identifier":[{"system":"http://example.org","value":"1"},{"system":"http://other.org","value":"2"}],` +
				`"name":[{"family":"Doe","given":["John","J"]}],"birthDate":"1970-01-01","contact":[{"name":{"family":"Roe"}}],"gender":"male"}`,
		},
		{
			name: "insert into identifier", path: "Patient.identifier", parents: []string{"Patient"},
			want: []got{
				{Type: "Identifier", Path: "Patient.identifier", Key: "identifier", Index: 0, JSON: `{"system":"http://example.org","value":"1"}`, Parent: "Patient"},
				{Type: "Identifier", Path: "Patient.identifier", Key: "identifier", Index: 1, JSON: `{"system":"http://other.org","value":"2"}`, Parent: "Patient"},
			},
			apply: func(t *testing.T, n []fhirpath.Node) {
				arr := n[0].Parent.Get(n[0].Key)
				arr.Items = slices.Insert(arr.Items, 0, parse(t, `{"value":"0"}`))
			},
			result: `{"resourceType":"Patient","id":"x",` +
				`"identifier":[{"value":"0"},{"system":"http://example.org","value":"1"},{"system":"http://other.org","value":"2"}],` +
				`"name":[{"family":"Doe","given":["John","J"]}],"birthDate":"1970-01-01","contact":[{"name":{"family":"Roe"}}]}`,
		},
		{
			name: "delete identifier by system", path: "Patient.identifier.where(system='http://example.org')", parents: []string{"Patient"},
			want: []got{{Type: "Identifier", Path: "Patient.identifier", Key: "identifier", Index: 0, JSON: `{"system":"http://example.org","value":"1"}`, Parent: "Patient"}},
			apply: func(t *testing.T, n []fhirpath.Node) {
				arr := n[0].Parent.Get(n[0].Key)
				arr.Items = slices.Delete(arr.Items, n[0].Index, n[0].Index+1)
			},
			result: `{"resourceType":"Patient","id":"x","identifier":[{"system":"http://other.org","value":"2"}],` +
				`"name":[{"family":"Doe","given":["John","J"]}],"birthDate":"1970-01-01","contact":[{"name":{"family":"Roe"}}]}`,
		},
		{
			name: "move a given name", path: "Patient.name[0].given", parents: []string{"Patient.name[0]"},
			want: []got{
				{Type: "string", Path: "HumanName.given", Key: "given", Index: 0, JSON: `"John"`, Parent: "Patient.name[0]"},
				{Type: "string", Path: "HumanName.given", Key: "given", Index: 1, JSON: `"J"`, Parent: "Patient.name[0]"},
			},
			apply: func(t *testing.T, n []fhirpath.Node) {
				arr := n[0].Parent.Get(n[0].Key)
				v := arr.Items[n[1].Index]
				arr.Items = slices.Insert(slices.Delete(arr.Items, n[1].Index, n[1].Index+1), n[0].Index, v)
			},
			result: `{"resourceType":"Patient","id":"x",` +
				`"identifier":[{"system":"http://example.org","value":"1"},{"system":"http://other.org","value":"2"}],` +
				`"name":[{"family":"Doe","given":["J","John"]}],"birthDate":"1970-01-01","contact":[{"name":{"family":"Roe"}}]}`,
		},
		{
			name: "replace a contact name", path: "Patient.contact[0].name", parents: []string{"Patient.contact[0]"},
			want: []got{{Type: "HumanName", Path: "Patient.contact.name", Key: "name", Index: -1, JSON: `{"family":"Roe"}`, Parent: "Patient.contact[0]"}},
			apply: func(t *testing.T, n []fhirpath.Node) {
				n[0].Parent.Set(n[0].Key, parse(t, `{"family":"Poe"}`))
			},
			result: `{"resourceType":"Patient","id":"x",` +
				`"identifier":[{"system":"http://example.org","value":"1"},{"system":"http://other.org","value":"2"}],` +
				`"name":[{"family":"Doe","given":["John","J"]}],"birthDate":"1970-01-01","contact":[{"name":{"family":"Poe"}}]}`,
		},
		{
			name: "replace birthDate", path: "Patient.birthDate", parents: []string{"Patient"},
			want: []got{{Type: "date", Path: "Patient.birthDate", Key: "birthDate", Index: -1, JSON: `"1970-01-01"`, Parent: "Patient"}},
			apply: func(t *testing.T, n []fhirpath.Node) {
				n[0].Parent.Set(n[0].Key, jsontree.NewString("1930-01-01"))
			},
			result: `{"resourceType":"Patient","id":"x",` +
				`"identifier":[{"system":"http://example.org","value":"1"},{"system":"http://other.org","value":"2"}],` +
				`"name":[{"family":"Doe","given":["John","J"]}],"birthDate":"1930-01-01","contact":[{"name":{"family":"Roe"}}]}`,
		},
		{
			name: "delete birthDate", path: "Patient.birthDate", parents: []string{"Patient"},
			want: []got{{Type: "date", Path: "Patient.birthDate", Key: "birthDate", Index: -1, JSON: `"1970-01-01"`, Parent: "Patient"}},
			apply: func(t *testing.T, n []fhirpath.Node) {
				n[0].Parent.Delete(n[0].Key)
			},
			result: `{"resourceType":"Patient","id":"x",` +
				`"identifier":[{"system":"http://example.org","value":"1"},{"system":"http://other.org","value":"2"}],` +
				`"name":[{"family":"Doe","given":["John","J"]}],"contact":[{"name":{"family":"Roe"}}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := parse(t, patchPatientJSON)
			nodes, err := fhirpath.MustCompile(tt.path).Eval(root)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, describe(t, root, nodes, tt.parents)); diff != "" {
				t.Fatalf("Eval(%q) (-want +got):\n%s", tt.path, diff)
			}
			tt.apply(t, nodes)
			if diff := cmp.Diff(tt.result, string(root.Marshal())); diff != "" {
				t.Errorf("after the patch (-want +got):\n%s", diff)
			}
		})
	}
}
