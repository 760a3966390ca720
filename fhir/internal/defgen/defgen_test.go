package main

import (
	"slices"
	"testing"
)

func TestBranches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		expr string
		want []string
	}{
		{"single", "Patient.identifier", []string{"Patient.identifier"}},
		{"union", "Patient.name | Practitioner.name", []string{"Patient.name", "Practitioner.name"}},
		{"parenthesised terms keep their text", "(Observation.value as Quantity) | (Observation.value as SampledData)",
			[]string{"(Observation.value as Quantity)", "(Observation.value as SampledData)"}},
		{"pipe inside a function call", "A.x.where(y = 'a' | 'b') | B.z", []string{"A.x.where(y = 'a' | 'b')", "B.z"}},
		{"pipe inside a string", "A.x.where(y = 'a|b') | B.z", []string{"A.x.where(y = 'a|b')", "B.z"}},
		{"escaped quote", `A.x.where(y = 'it\'s|') | B.z`, []string{`A.x.where(y = 'it\'s|')`, "B.z"}},
		{"enclosed union opens", "(A.x | B.y) | C.z", []string{"A.x", "B.y", "C.z"}},
		{"call on a union stays whole", "(A.x | B.y).first()", []string{"(A.x | B.y).first()"}},
		{"empty", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := branches(tc.expr); !slices.Equal(got, tc.want) {
				t.Errorf("branches(%q) = %q, want %q", tc.expr, got, tc.want)
			}
		})
	}
}

func TestRoot(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"Patient.identifier":                      "Patient",
		"(Observation.value as Quantity)":         "Observation",
		"((Condition.onset as Age))":              "Condition",
		"Observation":                             "Observation",
		"name":                                    "name",
		"Encounter.subject.where(resolve() is P)": "Encounter",
	}
	for in, want := range tests {
		if got := root(in); got != want {
			t.Errorf("root(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExcluded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sd   structureDefinition
		keep bool
	}{
		{"resource", structureDefinition{URL: sdPrefix + "Patient", Type: "Patient", Kind: kindResource, Derivation: "specialization", FHIRVersion: "4.0.1"}, true},
		{"root", structureDefinition{URL: sdPrefix + "Element", Type: "Element", Kind: kindComplex, Abstract: true, FHIRVersion: "4.0.1"}, true},
		{"R4B resource", structureDefinition{URL: sdPrefix + "SubscriptionStatus", Type: "SubscriptionStatus", Kind: kindResource, Derivation: "specialization", FHIRVersion: "4.3.0"}, false},
		{"profile", structureDefinition{URL: sdPrefix + "SimpleQuantity", Type: "Quantity", Kind: kindComplex, Derivation: "constraint", FHIRVersion: "4.0.1"}, false},
		{"logical", structureDefinition{URL: sdPrefix + "MetadataResource", Type: "MetadataResource", Kind: "logical", Derivation: "specialization", FHIRVersion: "4.0.1"}, false},
		{"vendor", structureDefinition{URL: "https://medplum.com/fhir/StructureDefinition/Bot", Type: "Bot", Kind: kindResource, Derivation: "specialization", FHIRVersion: "4.0.1"}, false},
	}
	for _, tc := range tests {
		if got := excluded(&tc.sd) == ""; got != tc.keep {
			t.Errorf("%s: kept = %v, want %v (%s)", tc.name, got, tc.keep, excluded(&tc.sd))
		}
	}
}

func TestTypeCode(t *testing.T) {
	t.Parallel()
	str := typeRef{Code: fhirpathSystem + "String"}
	withExt := func(tr typeRef, fhirType string) typeRef {
		tr.Extension = append(tr.Extension, struct {
			URL      string `json:"url"`
			ValueURL string `json:"valueUrl"`
		}{extFHIRType, fhirType})
		return tr
	}
	patient := &typeInfo{name: "Patient", kind: kindResource}
	tests := []struct {
		name string
		t    *typeInfo
		path string
		tr   typeRef
		want string
	}{
		{"FHIR type unchanged", patient, "Patient.name", typeRef{Code: "HumanName"}, "HumanName"},
		{"extension wins", &typeInfo{name: "Element", kind: kindComplex}, "Element.id", withExt(str, "string"), "string"},
		{"Resource.id is id", patient, "Patient.id", withExt(str, "string"), "id"},
		{"backbone id stays string", patient, "Patient.contact.id", withExt(str, "string"), "string"},
		{"no extension", &typeInfo{name: "xhtml", kind: kindPrimitive}, "xhtml.id", str, "string"},
		{"dateTime", &typeInfo{name: "x", kind: kindPrimitive}, "x.value", typeRef{Code: fhirpathSystem + "DateTime"}, "dateTime"},
	}
	for _, tc := range tests {
		got, err := typeCode(tc.t, tc.path, tc.tr)
		if err != nil || got != tc.want {
			t.Errorf("%s: typeCode = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := typeCode(patient, "Patient.x", typeRef{Code: fhirpathSystem + "Quantity"}); err == nil {
		t.Error("unknown system type accepted")
	}
}
