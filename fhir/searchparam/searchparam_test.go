package searchparam_test

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/iambilly/billy/fhir/schema"
	"github.com/iambilly/billy/fhir/searchparam"
)

// allParams gathers every distinct Param reachable through ForType.
func allParams() []*searchparam.Param {
	seen := map[*searchparam.Param]bool{}
	var out []*searchparam.Param
	for _, rt := range append(schema.ResourceTypes(), "Resource", "DomainResource") {
		for _, p := range searchparam.ForType(rt) {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

func TestCounts(t *testing.T) {
	t.Parallel()
	all := allParams()
	defs := map[string]bool{}
	perBase := 0
	billy := 0
	for _, p := range all {
		switch {
		case strings.HasPrefix(p.URL, "https://iambilly.github.io/"):
			billy++ // Billy's own (Claim:insurance)
		case p.URL != "":
			defs[p.URL] = true
			perBase++
		}
	}
	// search-parameters.json holds 1378 definitions; one, the R5 draft
	// DeviceDefinition-classification, is left out. The 1377 R4 ones span
	// 1708 (definition, base) pairs, 37 of them having several bases.
	if len(defs) != 1377 {
		t.Errorf("%d definitions, want 1377", len(defs))
	}
	if perBase != 1708 {
		t.Errorf("%d per-base entries from definitions, want 1708", perBase)
	}
	if billy != 1 || len(all) != 1708+3+billy {
		t.Errorf("%d entries in all, want 1712 (with _has, _list, _type and Billy's Claim:insurance)", len(all))
	}
	if p, ok := searchparam.Lookup("DeviceDefinition", "classification"); ok {
		t.Errorf("R5 DeviceDefinition classification present: %+v", *p)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	const sp = "http://hl7.org/fhir/SearchParameter/"
	tests := []struct {
		resourceType, code string
		want               *searchparam.Param // nil: must not exist
	}{
		{"Patient", "identifier", &searchparam.Param{
			Code: "identifier", URL: sp + "Patient-identifier", Type: searchparam.Token, Base: "Patient",
			Expression: "Patient.identifier",
		}},
		{"Observation", "value-quantity", &searchparam.Param{
			Code: "value-quantity", URL: sp + "Observation-value-quantity", Type: searchparam.Quantity, Base: "Observation",
			Expression:  "(Observation.value as Quantity) | (Observation.value as SampledData)",
			Comparators: []string{"eq", "ne", "gt", "ge", "lt", "le", "sa", "eb", "ap"},
		}},
		{"Observation", "code-value-quantity", &searchparam.Param{
			Code: "code-value-quantity", URL: sp + "Observation-code-value-quantity", Type: searchparam.Composite, Base: "Observation",
			Expression: "Observation",
			Components: []searchparam.Component{
				{Definition: sp + "clinical-code", Code: "code", Expression: "code"},
				{Definition: sp + "Observation-value-quantity", Code: "value-quantity", Expression: "value.as(Quantity)"},
			},
			MultipleOr: searchparam.FlagFalse,
		}},
		{"Encounter", "patient", &searchparam.Param{
			Code: "patient", URL: sp + "clinical-patient", Type: searchparam.Reference, Base: "Encounter",
			Expression: "Encounter.subject.where(resolve() is Patient)", Targets: []string{"Patient"},
		}},
		{"Condition", "patient", &searchparam.Param{
			Code: "patient", URL: sp + "clinical-patient", Type: searchparam.Reference, Base: "Condition",
			Expression: "Condition.subject.where(resolve() is Patient)", Targets: []string{"Patient"},
		}},
		{"AllergyIntolerance", "patient", &searchparam.Param{
			Code: "patient", URL: sp + "clinical-patient", Type: searchparam.Reference, Base: "AllergyIntolerance",
			Expression: "AllergyIntolerance.patient", Targets: []string{"Patient"},
		}},
		{"Observation", "subject", &searchparam.Param{
			Code: "subject", URL: sp + "Observation-subject", Type: searchparam.Reference, Base: "Observation",
			Expression: "Observation.subject", Targets: []string{"Device", "Group", "Location", "Patient"},
		}},
		{"Patient", "name", &searchparam.Param{
			Code: "name", URL: sp + "Patient-name", Type: searchparam.String, Base: "Patient", Expression: "Patient.name",
		}},
		{"Practitioner", "given", &searchparam.Param{
			Code: "given", URL: sp + "individual-given", Type: searchparam.String, Base: "Practitioner",
			Expression: "Practitioner.name.given",
		}},
		// R4's own expression is "name | alias"; rooted in its base.
		{"InsurancePlan", "name", &searchparam.Param{
			Code: "name", URL: sp + "InsurancePlan-name", Type: searchparam.String, Base: "InsurancePlan",
			Expression: "InsurancePlan.name | InsurancePlan.alias",
		}},
		{"Claim", "_lastUpdated", &searchparam.Param{
			Code: "_lastUpdated", URL: sp + "Resource-lastUpdated", Type: searchparam.Date, Base: "Resource",
			Expression:  "Resource.meta.lastUpdated",
			Comparators: []string{"eq", "ne", "gt", "ge", "lt", "le", "sa", "eb", "ap"},
		}},
		{"Bundle", "_id", &searchparam.Param{
			Code: "_id", URL: sp + "Resource-id", Type: searchparam.Token, Base: "Resource", Expression: "Resource.id",
		}},
		{"Claim", "_text", &searchparam.Param{
			Code: "_text", URL: sp + "DomainResource-text", Type: searchparam.String, Base: "DomainResource",
		}},
		{"Patient", "_has", &searchparam.Param{Code: "_has", Type: searchparam.Special, Base: "Resource"}},
		{"Patient", "_type", &searchparam.Param{Code: "_type", Type: searchparam.Special, Base: "Resource"}},
		{"Resource", "_list", &searchparam.Param{Code: "_list", Type: searchparam.Special, Base: "Resource"}},
		{"Bundle", "_text", nil}, // Bundle is not a DomainResource
		{"Patient", "nope", nil},
		{"NotAType", "_id", nil},
	}
	for _, tc := range tests {
		t.Run(tc.resourceType+"/"+tc.code, func(t *testing.T) {
			t.Parallel()
			got, ok := searchparam.Lookup(tc.resourceType, tc.code)
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

func TestForType(t *testing.T) {
	t.Parallel()
	common := []string{"_content", "_has", "_id", "_lastUpdated", "_list", "_profile", "_query", "_security", "_source", "_tag", "_type"}
	tests := []struct {
		resourceType string
		want         []string // nil: just the common ones must be there
	}{
		{"Bundle", append(slices.Clone(common), "composition", "identifier", "message", "timestamp", "type")},
		{"Resource", common},
		{"DomainResource", append(slices.Clone(common), "_text")},
		{"Patient", nil},
		{"Observation", nil},
	}
	for _, tc := range tests {
		ps := searchparam.ForType(tc.resourceType)
		var codes []string
		for _, p := range ps {
			codes = append(codes, p.Code)
		}
		if !sort.StringsAreSorted(codes) {
			t.Errorf("ForType(%s) not sorted by code: %v", tc.resourceType, codes)
		}
		if tc.want != nil {
			sort.Strings(tc.want)
			if !slices.Equal(codes, tc.want) {
				t.Errorf("ForType(%s) = %v, want %v", tc.resourceType, codes, tc.want)
			}
			continue
		}
		for _, c := range append(slices.Clone(common), "_text") {
			if !slices.Contains(codes, c) {
				t.Errorf("ForType(%s) lacks %s", tc.resourceType, c)
			}
		}
	}
	if got := searchparam.ForType("NotAType"); got != nil {
		t.Errorf("ForType(NotAType) = %v, want nil", got)
	}
	for _, rt := range schema.ResourceTypes() {
		if len(searchparam.ForType(rt)) < len(common) {
			t.Errorf("ForType(%s) misses the common parameters", rt)
		}
	}
}

func TestPatientCompartment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		resourceType string
		want         []string
		ok           bool
	}{
		{"Observation", []string{"subject", "performer"}, true},
		{"Patient", []string{"link"}, true},
		{"Encounter", []string{"patient"}, true}, // medplum's copy says subject
		{"AllergyIntolerance", []string{"patient", "recorder", "asserter"}, true},
		{"Coverage", []string{"policy-holder", "subscriber", "beneficiary", "payor"}, true},
		{"Organization", nil, false},
		{"Task", nil, false}, // medplum's copy adds it
		{"Practitioner", nil, false},
		{"NotAType", nil, false},
	}
	for _, tc := range tests {
		got, ok := searchparam.PatientCompartment(tc.resourceType)
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("PatientCompartment(%s) = %v, %v; want %v, %v", tc.resourceType, got, ok, tc.want, tc.ok)
		}
	}

	// Every member is linked by reference parameters of its own.
	members := 0
	for _, rt := range schema.ResourceTypes() {
		codes, ok := searchparam.PatientCompartment(rt)
		if !ok {
			continue
		}
		members++
		for _, c := range codes {
			p, found := searchparam.Lookup(rt, c)
			if !found || p.Type != searchparam.Reference {
				t.Errorf("%s: compartment parameter %s is not a reference parameter of it", rt, c)
			}
		}
	}
	if members != 66 {
		t.Errorf("%d resource types in the patient compartment, want 66", members)
	}
}

// splitUnion is an independent implementation of the top-level "|" split the
// generator performs, for checking its output.
func splitUnion(expr string) []string {
	var out []string
	depth, start, inString := 0, 0, false
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; {
		case inString:
			if c == '\\' {
				i++
			} else if c == '\'' {
				inString = false
			}
		case c == '\'':
			inString = true
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == '|' && depth == 0:
			out = append(out, strings.TrimSpace(expr[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(expr[start:]))
}

var (
	leadingPath = regexp.MustCompile(`^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*`)
	typeRoot    = regexp.MustCompile(`\b([A-Z]\w*)\.`)
)

// TestExpressionsStayInTheirBase checks the per-base restriction: every union
// branch starts at the entry's own base, no other resource type is used as a
// path root anywhere in it, and the path it starts with exists in R4.
func TestExpressionsStayInTheirBase(t *testing.T) {
	t.Parallel()
	var empty []string
	for _, p := range allParams() {
		if p.Expression == "" {
			empty = append(empty, p.Base+"."+p.Code)
			continue
		}
		for _, b := range splitUnion(p.Expression) {
			s := strings.TrimLeft(b, "( ")
			path := leadingPath.FindString(s)
			root, _, _ := strings.Cut(path, ".")
			if root != p.Base {
				t.Errorf("%s %s: branch %q starts at %s", p.Base, p.Code, b, root)
				continue
			}
			for _, m := range typeRoot.FindAllStringSubmatch(b, -1) {
				if m[1] != p.Base && schema.IsResourceType(m[1]) {
					t.Errorf("%s %s: branch %q uses %s", p.Base, p.Code, b, m[1])
				}
			}
			// Drop a trailing function name: "Patient.deceased.exists()".
			if strings.HasPrefix(s[len(path):], "(") {
				path = path[:strings.LastIndexByte(path, '.')]
			}
			if _, ok := schema.Resolve(path); !ok {
				t.Errorf("%s %s: %s is not an R4 element", p.Base, p.Code, path)
			}
		}
	}
	// Only definitions without any expression leave an entry empty: no
	// branch of a multi-base expression was lost in the split.
	sort.Strings(empty)
	want := []string{"DomainResource._text", "Resource._content", "Resource._has", "Resource._list", "Resource._query", "Resource._type"}
	if !slices.Equal(empty, want) {
		t.Errorf("entries without expression = %v, want %v", empty, want)
	}
}

func TestTables(t *testing.T) {
	t.Parallel()
	for _, p := range allParams() {
		if p.Type < searchparam.Number || p.Type > searchparam.Special {
			t.Errorf("%s %s: type %d", p.Base, p.Code, p.Type)
		}
		if !sort.StringsAreSorted(p.Targets) {
			t.Errorf("%s %s: targets not sorted: %v", p.Base, p.Code, p.Targets)
		}
		if (p.Type == searchparam.Composite) != (len(p.Components) > 0) {
			t.Errorf("%s %s: type %v with %d components", p.Base, p.Code, p.Type, len(p.Components))
		}
		for _, c := range p.Components {
			// Components name parameters of the same base.
			q, ok := searchparam.Lookup(p.Base, c.Code)
			if !ok || q.URL != c.Definition {
				t.Errorf("%s %s: component %s (%s) does not resolve on %s", p.Base, p.Code, c.Code, c.Definition, p.Base)
			}
		}
		for _, target := range p.Targets {
			if !schema.IsResourceType(target) {
				t.Errorf("%s %s: target %s is not a resource type", p.Base, p.Code, target)
			}
		}
	}
}

func TestTypeString(t *testing.T) {
	t.Parallel()
	var got []string
	for ty := searchparam.Number; ty <= searchparam.Special; ty++ {
		got = append(got, ty.String())
	}
	want := []string{"number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"}
	if !slices.Equal(got, want) {
		t.Errorf("Type strings = %v, want %v", got, want)
	}
}

func TestFlagOr(t *testing.T) {
	t.Parallel()
	if !searchparam.FlagUnset.Or(true) || searchparam.FlagUnset.Or(false) {
		t.Error("FlagUnset.Or does not return the default")
	}
	if searchparam.FlagFalse.Or(true) || !searchparam.FlagTrue.Or(false) {
		t.Error("set flags do not override the default")
	}
}

func ExampleLookup() {
	p, _ := searchparam.Lookup("Encounter", "patient")
	fmt.Println(p.Type, p.Expression, p.Targets)
	p, _ = searchparam.Lookup("Claim", "_lastUpdated")
	fmt.Println(p.Base, p.Expression)
	// Output:
	// reference Encounter.subject.where(resolve() is Patient) [Patient]
	// Resource Resource.meta.lastUpdated
}

func ExamplePatientCompartment() {
	params, ok := searchparam.PatientCompartment("Observation")
	fmt.Println(params, ok)
	_, ok = searchparam.PatientCompartment("Organization")
	fmt.Println(ok)
	// Output:
	// [subject performer] true
	// false
}
