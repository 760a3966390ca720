package schema_test

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/iambilly/billy/fhir/schema"
)

func TestResourceTypes(t *testing.T) {
	t.Parallel()
	got := schema.ResourceTypes()
	if len(got) != 146 {
		t.Fatalf("len(ResourceTypes()) = %d, want 146 (R4 4.0.1)", len(got))
	}
	if !sort.StringsAreSorted(got) {
		t.Error("ResourceTypes() is not sorted")
	}
	if got[0] != "Account" || got[len(got)-1] != "VisionPrescription" {
		t.Errorf("ResourceTypes() runs %s … %s, want Account … VisionPrescription", got[0], got[len(got)-1])
	}
	// The slice is the caller's: changing it must not change the package.
	got[0] = "Changed"
	if schema.ResourceTypes()[0] != "Account" {
		t.Error("ResourceTypes() returned shared storage")
	}
}

func TestIsResourceType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want bool
	}{
		{"Patient", true},
		{"Bundle", true},
		{"Binary", true},
		{"Parameters", true},
		{"OperationOutcome", true},
		{"VisionPrescription", true},
		{"Resource", false},           // abstract
		{"DomainResource", false},     // abstract
		{"SubscriptionStatus", false}, // R4B, in medplum's copy only
		{"MetadataResource", false},   // logical pattern
		{"HumanName", false},
		{"patient", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := schema.IsResourceType(tc.name); got != tc.want {
			t.Errorf("IsResourceType(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		kind      schema.Kind
		primitive bool
		base      string
		system    string
	}{
		{name: "boolean", kind: schema.KindPrimitive, primitive: true, base: "Element", system: "Boolean"},
		{name: "code", kind: schema.KindPrimitive, primitive: true, base: "string", system: "String"},
		{name: "positiveInt", kind: schema.KindPrimitive, primitive: true, base: "integer", system: "Integer"},
		{name: "unsignedInt", kind: schema.KindPrimitive, primitive: true, base: "integer", system: "Integer"},
		{name: "instant", kind: schema.KindPrimitive, primitive: true, base: "Element", system: "DateTime"},
		{name: "canonical", kind: schema.KindPrimitive, primitive: true, base: "uri", system: "String"},
		{name: "xhtml", kind: schema.KindPrimitive, primitive: true, base: "Element", system: "String"},
		{name: "HumanName", kind: schema.KindComplex, base: "Element"},
		{name: "Age", kind: schema.KindComplex, base: "Quantity"},
		{name: "Dosage", kind: schema.KindComplex, base: "BackboneElement"},
		{name: "Element", kind: schema.KindComplex},
		{name: "Patient", kind: schema.KindResource, base: "DomainResource"},
		{name: "Bundle", kind: schema.KindResource, base: "Resource"},
		{name: "Resource", kind: schema.KindResource},
		{name: "SimpleQuantity"}, // a profile of Quantity, not a type
		{name: "Nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kind, ok := schema.KindOf(tc.name)
			if kind != tc.kind || ok != (tc.kind != 0) {
				t.Errorf("KindOf = %v, %v; want %v", kind, ok, tc.kind)
			}
			if got := schema.IsPrimitive(tc.name); got != tc.primitive {
				t.Errorf("IsPrimitive = %v, want %v", got, tc.primitive)
			}
			if base, _ := schema.BaseType(tc.name); base != tc.base {
				t.Errorf("BaseType = %q, want %q", base, tc.base)
			}
			if sys, _ := schema.SystemType(tc.name); sys != tc.system {
				t.Errorf("SystemType = %q, want %q", sys, tc.system)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path string
		want *schema.Element // nil: must not exist
	}{
		{"Observation.value", &schema.Element{
			Path:   "Observation.value",
			Types:  []string{"Quantity", "CodeableConcept", "string", "boolean", "integer", "Range", "Ratio", "SampledData", "time", "dateTime", "Period"},
			Choice: true, Max: 1, Summary: true,
		}},
		{"Observation.component.code", &schema.Element{
			Path: "Observation.component.code", Types: []string{"CodeableConcept"}, Min: 1, Max: 1, Summary: true,
		}},
		{"Observation.component.modifierExtension", &schema.Element{
			Path: "Observation.component.modifierExtension", Types: []string{"Extension"}, Max: -1, Summary: true, Modifier: true,
		}},
		{"Observation.subject", &schema.Element{
			Path: "Observation.subject", Types: []string{"Reference"}, Max: 1, Summary: true,
			TargetProfiles: []string{"Patient", "Group", "Device", "Location"},
		}},
		{"HumanName.given", &schema.Element{Path: "HumanName.given", Types: []string{"string"}, Max: -1, Summary: true}},
		{"Patient.active", &schema.Element{Path: "Patient.active", Types: []string{"boolean"}, Max: 1, Summary: true, Modifier: true}},
		{"Patient", &schema.Element{Path: "Patient", Max: -1}},
		{"boolean", &schema.Element{Path: "boolean", Max: -1}},
		{"Questionnaire.item.item", &schema.Element{Path: "Questionnaire.item.item", Max: -1, ContentRef: "Questionnaire.item"}},
		{"Questionnaire.derivedFrom", &schema.Element{
			Path: "Questionnaire.derivedFrom", Types: []string{"canonical"}, Max: -1, TargetProfiles: []string{"Questionnaire"},
		}},

		// FHIRPath system types normalised to FHIR types.
		{"Resource.id", &schema.Element{Path: "Resource.id", Types: []string{"id"}, Max: 1, Summary: true}},
		{"Patient.id", &schema.Element{Path: "Patient.id", Types: []string{"id"}, Max: 1, Summary: true}},
		{"Element.id", &schema.Element{Path: "Element.id", Types: []string{"string"}, Max: 1}},
		{"Patient.contact.id", &schema.Element{Path: "Patient.contact.id", Types: []string{"string"}, Max: 1}},
		{"Extension.url", &schema.Element{Path: "Extension.url", Types: []string{"uri"}, Min: 1, Max: 1}},
		{"boolean.value", &schema.Element{Path: "boolean.value", Types: []string{"boolean"}, Max: 1}},
		{"code.value", &schema.Element{Path: "code.value", Types: []string{"code"}, Max: 1}},

		// Inherited elements, as in a snapshot.
		{"DomainResource.text", &schema.Element{Path: "DomainResource.text", Types: []string{"Narrative"}, Max: 1}},
		{"Patient.text", &schema.Element{Path: "Patient.text", Types: []string{"Narrative"}, Max: 1}},
		{"Bundle.text", nil}, // Bundle is not a DomainResource

		// R4 as published, not medplum's snapshot edits.
		{"AuditEvent.source.observer", &schema.Element{
			Path: "AuditEvent.source.observer", Types: []string{"Reference"}, Min: 1, Max: 1, Summary: true,
			TargetProfiles: []string{"PractitionerRole", "Practitioner", "Organization", "Device", "Patient", "RelatedPerson"},
		}},
		{"Bundle.entry.response.outcome", &schema.Element{Path: "Bundle.entry.response.outcome", Types: []string{"Resource"}, Max: 1, Summary: true}},
		{"EvidenceVariable.characteristic.definition", &schema.Element{
			Path:   "EvidenceVariable.characteristic.definition",
			Types:  []string{"Reference", "canonical", "CodeableConcept", "Expression", "DataRequirement", "TriggerDefinition"},
			Choice: true, Min: 1, Max: 1, Summary: true, TargetProfiles: []string{"Group", "ActivityDefinition"},
		}},
		{"Meta.project", nil},
		{"Meta.compartment", nil},
		{"Binary.url", nil},
		{"ResearchStudy.label", nil},
		{"DeviceDefinition.classification", nil},
		{"ObservationDefinition.publisher", nil},
		{"SubscriptionStatus.status", nil},

		{"Observation.value[x]", nil}, // paths never carry [x]
		{"Observation.valueQuantity", nil},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			got, ok := schema.Lookup(tc.path)
			if tc.want == nil {
				if ok {
					t.Fatalf("Lookup found %+v, want none", *got)
				}
				return
			}
			if !ok {
				t.Fatal("Lookup found nothing")
			}
			if !reflect.DeepEqual(*got, *tc.want) {
				t.Errorf("Lookup =\n\t%+v\nwant\n\t%+v", *got, *tc.want)
			}
		})
	}
}

func TestExtensionValueTypes(t *testing.T) {
	t.Parallel()
	e, ok := schema.Lookup("Extension.value")
	if !ok || !e.Choice {
		t.Fatalf("Extension.value = %+v, %v; want a choice element", e, ok)
	}
	// R4's open type list: 19 primitives and 31 complex types.
	if len(e.Types) != 50 {
		t.Errorf("Extension.value has %d types, want 50", len(e.Types))
	}
	for _, want := range []string{"boolean", "Reference", "Quantity", "Dosage", "Meta"} {
		if !slices.Contains(e.Types, want) {
			t.Errorf("Extension.value types lack %s", want)
		}
	}
}

func paths(es []*schema.Element) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Path
	}
	return out
}

func prefixed(prefix string, names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + "." + n
	}
	return out
}

func TestChildren(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path string
		want []string
	}{
		{"Patient", prefixed("Patient",
			"id", "meta", "implicitRules", "language", "text", "contained", "extension", "modifierExtension",
			"identifier", "active", "name", "telecom", "gender", "birthDate", "deceased", "address",
			"maritalStatus", "multipleBirth", "photo", "contact", "communication", "generalPractitioner",
			"managingOrganization", "link")},
		{"Observation.component", prefixed("Observation.component",
			"id", "extension", "modifierExtension", "code", "value", "dataAbsentReason", "interpretation", "referenceRange")},
		{"Bundle", prefixed("Bundle",
			"id", "meta", "implicitRules", "language", "identifier", "type", "timestamp", "total", "link", "entry", "signature")},
		{"HumanName", prefixed("HumanName", "id", "extension", "use", "text", "family", "given", "prefix", "suffix", "period")},
		{"Meta", prefixed("Meta", "id", "extension", "versionId", "lastUpdated", "source", "profile", "security", "tag")},
		{"boolean", prefixed("boolean", "id", "extension", "value")},
		{"Timing.repeat", prefixed("Timing.repeat",
			"id", "extension", "bounds", "count", "countMax", "duration", "durationMax", "durationUnit",
			"frequency", "frequencyMax", "period", "periodMax", "periodUnit", "dayOfWeek", "timeOfDay", "when", "offset")},
		{"Questionnaire.item.item", paths(schema.Children("Questionnaire.item"))}, // via contentReference
		{"Patient.name", nil},       // a data type: ask for HumanName
		{"Patient.name.given", nil}, // not a path of Patient's table
		{"Observation.status", nil}, // primitive leaf
		{"NotAType", nil},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			got := paths(schema.Children(tc.path))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Children(%q) =\n\t%v\nwant\n\t%v", tc.path, got, tc.want)
			}
		})
	}
	if n := len(schema.Children("Questionnaire.item")); n != 19 {
		t.Errorf("Questionnaire.item has %d children, want 19", n)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path string
		want string // path of the element reached; "" for none
	}{
		{"Patient", "Patient"},
		{"Patient.name", "Patient.name"},
		{"Patient.name.given", "HumanName.given"},
		{"Patient.meta.lastUpdated", "Meta.lastUpdated"},
		{"Patient.id", "Patient.id"},
		{"Patient.birthDate.value", "date.value"},
		{"Observation.subject.reference", "Reference.reference"},
		{"Observation.component.code.coding.system", "Coding.system"},
		{"Questionnaire.item.item.linkId", "Questionnaire.item.linkId"},
		{"Questionnaire.item.item.item.answerOption", "Questionnaire.item.answerOption"},
		{"Timing.repeat.bounds", "Timing.repeat.bounds"},
		{"MedicationRequest.dosageInstruction.timing.repeat.count", "Timing.repeat.count"},
		{"Resource.meta.tag", "Meta.tag"},
		{"Observation.value", "Observation.value"},
		{"Observation.value.unit", ""}, // choice with several types: ambiguous
		{"Patient.nope", ""},
		{"Nope.id", ""},
	}
	for _, tc := range tests {
		got, ok := schema.Resolve(tc.path)
		switch {
		case tc.want == "" && ok:
			t.Errorf("Resolve(%q) = %s, want none", tc.path, got.Path)
		case tc.want != "" && !ok:
			t.Errorf("Resolve(%q) found nothing, want %s", tc.path, tc.want)
		case ok && got.Path != tc.want:
			t.Errorf("Resolve(%q) = %s, want %s", tc.path, got.Path, tc.want)
		}
	}
}

// TestTableConsistency checks the generated table as a whole, so that a
// generator change that breaks its invariants fails here.
func TestTableConsistency(t *testing.T) {
	t.Parallel()
	resources := schema.ResourceTypes()
	inherited := []string{"id", "meta", "implicitRules", "language", "text", "contained", "extension", "modifierExtension"}
	count := 0
	seenTypes := map[string]bool{}
	var walk func(path string)
	walk = func(path string) {
		for _, e := range schema.Children(path) {
			count++
			if e.Max == 0 || (e.Max > 0 && e.Min > e.Max) {
				t.Errorf("%s: cardinality %d..%d", e.Path, e.Min, e.Max)
			}
			if e.ContentRef != "" {
				if len(e.Types) != 0 {
					t.Errorf("%s: contentReference element with types %v", e.Path, e.Types)
				}
				if _, ok := schema.Lookup(e.ContentRef); !ok {
					t.Errorf("%s: contentReference %s not found", e.Path, e.ContentRef)
				}
				continue
			}
			if len(e.Types) == 0 {
				t.Errorf("%s: no types", e.Path)
			}
			if len(e.Types) > 1 && !e.Choice {
				t.Errorf("%s: %d types but not a choice", e.Path, len(e.Types))
			}
			for _, typ := range e.Types {
				seenTypes[typ] = true
				if _, ok := schema.KindOf(typ); !ok {
					t.Errorf("%s: unknown type %q", e.Path, typ)
				}
			}
			for _, target := range e.TargetProfiles {
				if !schema.IsResourceType(target) && target != "Resource" {
					t.Errorf("%s: target %q is not a resource type", e.Path, target)
				}
			}
			if slices.Contains(e.Types, "BackboneElement") || slices.Contains(e.Types, "Element") {
				walk(e.Path)
			}
		}
	}
	for _, rt := range resources {
		kids := paths(schema.Children(rt))
		n := len(inherited)
		if base, _ := schema.BaseType(rt); base == "Resource" {
			n = 4 // Bundle, Binary, Parameters: no text, contained, extensions
		}
		if !slices.Equal(kids[:n], prefixed(rt, inherited[:n]...)) {
			t.Errorf("%s starts with %v, want the inherited %v", rt, kids[:n], inherited[:n])
		}
		walk(rt)
	}
	if count < 5000 {
		t.Errorf("walked %d resource elements, want thousands", count)
	}
	for _, typ := range []string{"HumanName", "CodeableConcept", "Quantity", "Extension", "Meta", "Narrative", "Reference", "Identifier", "Period", "Timing", "Dosage"} {
		if !seenTypes[typ] {
			t.Errorf("no resource element has type %s", typ)
		}
	}
}

func TestElementCount(t *testing.T) {
	t.Parallel()
	// All elements of all 209 R4 types (146 resources, Resource,
	// DomainResource, 41 complex and 20 primitive types), roots included.
	// A change means the generator or its source changed: check the diff.
	total := 0
	var count func(path string)
	count = func(path string) {
		for _, e := range schema.Children(path) {
			total++
			if e.ContentRef == "" {
				count(e.Path)
			}
		}
	}
	types := 0
	for _, name := range allTypeNames() {
		if _, ok := schema.KindOf(name); ok {
			types++
			total++ // the root
			count(name)
		}
	}
	if types != 209 || total != 7676 {
		t.Errorf("%d types with %d elements, want 209 with 7676", types, total)
	}
}

// allTypeNames returns every type name the table could hold: resource types
// and every type code any element uses, plus the abstract roots.
func allTypeNames() []string {
	seen := map[string]bool{"Resource": true, "DomainResource": true, "Element": true, "BackboneElement": true}
	var visit func(path string)
	visit = func(path string) {
		for _, e := range schema.Children(path) {
			for _, typ := range e.Types {
				if !seen[typ] {
					seen[typ] = true
					visit(typ)
				}
			}
			if e.ContentRef == "" {
				visit(e.Path)
			}
		}
	}
	for _, rt := range schema.ResourceTypes() {
		seen[rt] = true
	}
	for name := range clone(seen) {
		visit(name)
	}
	out := make([]string, 0, len(seen))
	for name := range seen {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func clone(m map[string]bool) map[string]bool {
	c := make(map[string]bool, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func TestKindString(t *testing.T) {
	t.Parallel()
	got := strings.Join([]string{schema.KindPrimitive.String(), schema.KindComplex.String(), schema.KindResource.String(), schema.Kind(0).String()}, ",")
	if want := "primitive-type,complex-type,resource,unknown"; got != want {
		t.Errorf("Kind strings = %s, want %s", got, want)
	}
}

func ExampleLookup() {
	e, _ := schema.Lookup("Observation.value")
	fmt.Println(e.Choice, e.Max, e.Types[:3])
	e, _ = schema.Lookup("Encounter.subject")
	fmt.Println(e.Types, e.TargetProfiles)
	// Output:
	// true 1 [Quantity CodeableConcept string]
	// [Reference] [Patient Group]
}

func ExampleChildren() {
	for _, e := range schema.Children("HumanName") {
		fmt.Print(e.Path[len("HumanName."):], " ")
	}
	fmt.Println()
	// Output:
	// id extension use text family given prefix suffix period
}

func ExampleResolve() {
	e, _ := schema.Resolve("Patient.name.given")
	fmt.Println(e.Path, e.Types, e.Max)
	// Output:
	// HumanName.given [string] -1
}
