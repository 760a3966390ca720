package fhirpath_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/fhirpath"
	"github.com/iambilly/billy/fhir/jsontree"
)

const patientJSON = `{
  "resourceType": "Patient",
  "id": "p1",
  "meta": {"lastUpdated": "2024-05-01T10:00:00Z", "tag": [{"system": "http://example.org/tags", "code": "a"}]},
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Peter</div>"},
  "extension": [
    {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", "valueAddress": {"city": "Paris"}},
    {"url": "http://example.org/other", "valueString": "o"}
  ],
  "identifier": [
    {"system": "http://example.org", "value": "123"},
    {"system": "http://other.org", "value": "456"}
  ],
  "active": true,
  "name": [
    {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
    {"use": "usual", "given": ["Jim"], "_given": [{"extension": [{"url": "http://example.org/nick", "valueString": "nick"}]}]},
    {"given": [null, "Jimmy"], "_given": [{"id": "g0"}, null]}
  ],
  "telecom": [
    {"system": "phone", "value": "555"},
    {"system": "email", "value": "a@example.org"},
    {"system": "phone", "value": "666"}
  ],
  "gender": "male",
  "birthDate": "1974-12-25",
  "_birthDate": {"extension": [{"url": "x", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "deceasedBoolean": false,
  "contact": [{"name": {"family": "Du Marché", "given": ["Bénédicte"]}}],
  "foo": "not an element"
}`

const observationJSON = `{
  "resourceType": "Observation",
  "id": "o1",
  "status": "final",
  "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
  "subject": {"reference": "Patient/1"},
  "effectiveDateTime": "2020-03-04T10:00:00Z",
  "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
  "component": [
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 107, "unit": "mmHg", "code": "mm[Hg]"}},
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 60, "unit": "mmHg", "code": "mm[Hg]"}},
    {"code": {"text": "note"}, "valueString": "ok"}
  ]
}`

const encounterJSON = `{
  "resourceType": "Encounter",
  "id": "e1",
  "status": "finished",
  "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
  "subject": {"reference": "Patient/1"},
  "participant": [
    {"individual": {"reference": "http://fhir.example.org/base/Practitioner/7/_history/2"}},
    {"individual": {"reference": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520"}}
  ]
}`

const conditionJSON = `{
  "resourceType": "Condition",
  "id": "c1",
  "contained": [{"resourceType": "Patient", "id": "p1", "name": [{"family": "Contained"}]}],
  "subject": {"reference": "#p1"},
  "onsetString": "childhood",
  "abatementAge": {"value": 50, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"}
}`

const bundleJSON = `{
  "resourceType": "Bundle",
  "type": "collection",
  "entry": [
    {"fullUrl": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520", "resource": {"resourceType": "Patient", "id": "b1", "name": [{"family": "Bundled"}]}},
    {"resource": {"resourceType": "Observation", "id": "b2", "status": "final", "code": {"text": "x"}, "valueString": "high"}}
  ]
}`

func parse(t testing.TB, s string) *jsontree.Value {
	t.Helper()
	v, err := jsontree.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// got is what the tests compare of a node: locations and values as text, the parent by the
// expression that finds it.
type got struct {
	Type   string
	Path   string
	Key    string
	Index  int
	JSON   string // Value as JSON, "" when nil
	Ext    string // Ext as JSON, "" when nil
	Parent string // expression whose single result is Parent ("ext:" + expression: its Ext); "" for nil
}

func jsonOf(v *jsontree.Value) string {
	if v == nil {
		return ""
	}
	return string(v.Marshal())
}

// describe turns nodes into gots, naming parents by the candidate expressions that evaluate to them.
func describe(t *testing.T, root *jsontree.Value, nodes []fhirpath.Node, parents []string) []got {
	t.Helper()
	var out []got
	for _, n := range nodes {
		g := got{Type: n.Type, Path: n.Path, Key: n.Key, Index: n.Index, JSON: jsonOf(n.Value), Ext: jsonOf(n.Ext)}
		if n.Parent != nil {
			g.Parent = "?"
			for _, p := range parents {
				expr, ext := strings.CutPrefix(p, "ext:")
				res, err := fhirpath.MustCompile(expr).Eval(root)
				if err != nil || len(res) != 1 {
					t.Fatalf("parent expression %q: %v, %d results", p, err, len(res))
				}
				if (!ext && res[0].Value == n.Parent) || (ext && res[0].Ext == n.Parent) {
					g.Parent = p
				}
			}
		}
		out = append(out, g)
	}
	return out
}

func TestEval(t *testing.T) {
	t.Parallel()
	patient := parse(t, patientJSON)
	observation := parse(t, observationJSON)
	encounter := parse(t, encounterJSON)
	condition := parse(t, conditionJSON)
	bundle := parse(t, bundleJSON)
	deceased := parse(t, `{"resourceType": "Patient", "deceasedDateTime": "2020-01-01"}`)

	boolean := func(b bool) []got {
		return []got{{Type: "System.Boolean", Index: -1, JSON: map[bool]string{true: "true", false: "false"}[b]}}
	}
	str := func(s string) []got { return []got{{Type: "System.String", Index: -1, JSON: `"` + s + `"`}} }
	integer := func(s string) []got { return []got{{Type: "System.Integer", Index: -1, JSON: s}} }

	tests := []struct {
		name    string
		root    *jsontree.Value
		expr    string
		parents []string // candidate parent expressions for describe
		want    []got
	}{
		{
			name: "given of the second name", root: patient, expr: "Patient.name[1].given",
			parents: []string{"Patient.name[1]"},
			want: []got{{Type: "string", Path: "HumanName.given", Key: "given", Index: 0, JSON: `"Jim"`,
				Ext: `{"extension":[{"url":"http://example.org/nick","valueString":"nick"}]}`, Parent: "Patient.name[1]"}},
		},
		{
			name: "given flattened, twin-only item kept", root: patient, expr: "Patient.name.given",
			parents: []string{"Patient.name[0]", "Patient.name[1]", "Patient.name[2]"},
			want: []got{
				{Type: "string", Path: "HumanName.given", Key: "given", Index: 0, JSON: `"Peter"`, Parent: "Patient.name[0]"},
				{Type: "string", Path: "HumanName.given", Key: "given", Index: 1, JSON: `"James"`, Parent: "Patient.name[0]"},
				{Type: "string", Path: "HumanName.given", Key: "given", Index: 0, JSON: `"Jim"`,
					Ext: `{"extension":[{"url":"http://example.org/nick","valueString":"nick"}]}`, Parent: "Patient.name[1]"},
				{Type: "string", Path: "HumanName.given", Key: "given", Index: 0, Ext: `{"id":"g0"}`, Parent: "Patient.name[2]"},
				{Type: "string", Path: "HumanName.given", Key: "given", Index: 1, JSON: `"Jimmy"`, Parent: "Patient.name[2]"},
			},
		},
		{
			name: "choice as Quantity", root: observation, expr: "Observation.value as Quantity", parents: []string{"Observation"},
			want: []got{{Type: "Quantity", Path: "Observation.value", Key: "valueQuantity", Index: -1,
				JSON: `{"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}`, Parent: "Observation"}},
		},
		{
			name: "choice as another type", root: observation, expr: "Observation.value as CodeableConcept",
		},
		{
			name: "choice without as", root: observation, expr: "Observation.effective", parents: []string{"Observation"},
			want: []got{{Type: "dateTime", Path: "Observation.effective", Key: "effectiveDateTime", Index: -1, JSON: `"2020-03-04T10:00:00Z"`, Parent: "Observation"}},
		},
		{
			name: "union of as", root: observation, expr: "(Observation.value as Quantity) | (Observation.value as SampledData)", parents: []string{"Observation"},
			want: []got{{Type: "Quantity", Path: "Observation.value", Key: "valueQuantity", Index: -1,
				JSON: `{"value":120,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}`, Parent: "Observation"}},
		},
		{
			name: "component value by code", root: observation, expr: "Observation.component.where(code.coding.code='8480-6').value",
			parents: []string{"Observation.component[0]"},
			want: []got{{Type: "Quantity", Path: "Observation.component.value", Key: "valueQuantity", Index: -1,
				JSON: `{"value":107,"unit":"mmHg","code":"mm[Hg]"}`, Parent: "Observation.component[0]"}},
		},
		{
			name: "component values of mixed types", root: observation, expr: "Observation.component.value.ofType(string)",
			parents: []string{"Observation.component[2]"},
			want:    []got{{Type: "string", Path: "Observation.component.value", Key: "valueString", Index: -1, JSON: `"ok"`, Parent: "Observation.component[2]"}},
		},
		{
			name: "backbone element typed by its path", root: observation, expr: "Observation.component[1]", parents: []string{"Observation"},
			want: []got{{Type: "Observation.component", Path: "Observation.component", Key: "component", Index: 1,
				JSON: `{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":60,"unit":"mmHg","code":"mm[Hg]"}}`, Parent: "Observation"}},
		},
		{
			name: "subject resolves to Patient", root: encounter, expr: "Encounter.subject.where(resolve() is Patient)", parents: []string{"Encounter"},
			want: []got{{Type: "Reference", Path: "Encounter.subject", Key: "subject", Index: -1, JSON: `{"reference":"Patient/1"}`, Parent: "Encounter"}},
		},
		{name: "subject is not a Group", root: encounter, expr: "Encounter.subject.where(resolve() is Group)"},
		{
			name: "absolute versioned reference resolves, urn:uuid does not", root: encounter, expr: "Encounter.participant.individual.resolve()",
			want: []got{{Type: "Practitioner", Path: "Practitioner", Index: -1, JSON: `{"resourceType":"Practitioner","id":"7"}`}},
		},
		{
			name: "contained reference resolves to the contained resource", root: condition, expr: "Condition.subject.resolve()", parents: []string{"Condition"},
			want: []got{{Type: "Patient", Path: "Condition.contained", Key: "contained", Index: 0,
				JSON: `{"resourceType":"Patient","id":"p1","name":[{"family":"Contained"}]}`, Parent: "Condition"}},
		},
		{name: "contained target is navigable", root: condition, expr: "Condition.subject.resolve().name.family", want: []got{{
			Type: "string", Path: "HumanName.family", Key: "family", Index: -1, JSON: `"Contained"`, Parent: "?"}}},
		{name: "contained patient subject", root: condition, expr: "Condition.subject.where(resolve() is Patient).reference", want: []got{{
			Type: "string", Path: "Reference.reference", Key: "reference", Index: -1, JSON: `"#p1"`, Parent: "?"}}},
		{
			name: "telecom phones", root: patient, expr: "Patient.telecom.where(system='phone')", parents: []string{"Patient"},
			want: []got{
				{Type: "ContactPoint", Path: "Patient.telecom", Key: "telecom", Index: 0, JSON: `{"system":"phone","value":"555"}`, Parent: "Patient"},
				{Type: "ContactPoint", Path: "Patient.telecom", Key: "telecom", Index: 2, JSON: `{"system":"phone","value":"666"}`, Parent: "Patient"},
			},
		},
		{name: "deceased false", root: patient, expr: "Patient.deceased.exists() and Patient.deceased != false", want: boolean(false)},
		{name: "deceased dateTime", root: deceased, expr: "Patient.deceased.exists() and Patient.deceased != false", want: boolean(true)},
		{name: "deceased absent", root: parse(t, `{"resourceType":"Patient"}`), expr: "Patient.deceased.exists() and Patient.deceased != false", want: boolean(false)},
		{
			name: "abatement as Age", root: condition, expr: "Condition.abatement.as(Age)", parents: []string{"Condition"},
			want: []got{{Type: "Age", Path: "Condition.abatement", Key: "abatementAge", Index: -1,
				JSON: `{"value":50,"unit":"years","system":"http://unitsofmeasure.org","code":"a"}`, Parent: "Condition"}},
		},
		{name: "Age is a Quantity", root: condition, expr: "Condition.abatement is Quantity", want: boolean(true)},
		{name: "as Quantity keeps Age", root: condition, expr: "(Condition.abatement as Quantity).code", want: []got{{
			Type: "code", Path: "Age.code", Key: "code", Index: -1, JSON: `"a"`, Parent: "?"}}},
		{name: "onset as string", root: condition, expr: "Condition.onset.as(string)", parents: []string{"Condition"}, want: []got{{
			Type: "string", Path: "Condition.onset", Key: "onsetString", Index: -1, JSON: `"childhood"`, Parent: "Condition"}}},
		{
			name: "Resource.meta.lastUpdated on a Patient", root: patient, expr: "Resource.meta.lastUpdated", parents: []string{"Patient.meta"},
			want: []got{{Type: "instant", Path: "Meta.lastUpdated", Key: "lastUpdated", Index: -1, JSON: `"2024-05-01T10:00:00Z"`, Parent: "Patient.meta"}},
		},
		{
			name: "DomainResource.text.div", root: patient, expr: "DomainResource.text.div", parents: []string{"Patient.text"},
			want: []got{{Type: "xhtml", Path: "Narrative.div", Key: "div", Index: -1, JSON: `"<div xmlns=\"http://www.w3.org/1999/xhtml\">Peter</div>"`, Parent: "Patient.text"}},
		},
		{name: "DomainResource does not match a Bundle", root: bundle, expr: "DomainResource.id"},
		{name: "type step of another type", root: observation, expr: "Patient.name"},
		{name: "unknown member is not navigable", root: patient, expr: "Patient.foo"},
		{name: "value of a primitive is not a child", root: patient, expr: "Patient.gender.value"},
		{
			name: "extension by url", root: patient, expr: "Patient.extension('http://hl7.org/fhir/StructureDefinition/patient-birthPlace')", parents: []string{"Patient"},
			want: []got{{Type: "Extension", Path: "Patient.extension", Key: "extension", Index: 0,
				JSON: `{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthPlace","valueAddress":{"city":"Paris"}}`, Parent: "Patient"}},
		},
		{
			name: "extension of a primitive through its twin", root: patient, expr: "Patient.birthDate.extension('x')", parents: []string{"ext:Patient.birthDate"},
			want: []got{{Type: "Extension", Path: "date.extension", Key: "extension", Index: 0,
				JSON: `{"url":"x","valueDateTime":"1974-12-25T14:35:45-05:00"}`, Parent: "ext:Patient.birthDate"}},
		},
		{name: "extension value", root: patient, expr: "Patient.birthDate.extension('x').value", want: []got{{
			Type: "dateTime", Path: "Extension.value", Key: "valueDateTime", Index: -1, JSON: `"1974-12-25T14:35:45-05:00"`, Parent: "?"}}},
		{name: "id of a twin-only item", root: patient, expr: "Patient.name[2].given[0].id", want: []got{{
			Type: "string", Path: "string.id", Key: "id", Index: -1, JSON: `"g0"`, Parent: "?"}}},
		{name: "twin-only item has no value", root: patient, expr: "Patient.name[2].given[0].hasValue()", want: boolean(false)},
		{name: "primitive has a value", root: patient, expr: "Patient.birthDate.hasValue()", want: boolean(true)},
		{
			name: "bundle entry resources typed by resourceType", root: bundle, expr: "Bundle.entry.resource.ofType(Observation).value",
			want: []got{{Type: "string", Path: "Observation.value", Key: "valueString", Index: -1, JSON: `"high"`, Parent: "?"}},
		},
		{name: "bundle first entry", root: bundle, expr: "Bundle.entry[0].resource.name.family", want: []got{{
			Type: "string", Path: "HumanName.family", Key: "family", Index: -1, JSON: `"Bundled"`, Parent: "?"}}},
		{name: "recursive element through its content reference", root: parse(t, `{"resourceType":"Questionnaire","status":"draft",
			"item":[{"linkId":"1","type":"group","item":[{"linkId":"1.1","type":"string"}]}]}`),
			expr: "Questionnaire.item.item", want: []got{{Type: "Questionnaire.item", Path: "Questionnaire.item.item", Key: "item", Index: 0,
				JSON: `{"linkId":"1.1","type":"string"}`, Parent: "?"}}},
		{name: "resource in Parameters", root: parse(t, `{"resourceType":"Parameters","parameter":[{"name":"p","resource":{"resourceType":"Patient","active":true}}]}`),
			expr: "Parameters.parameter.resource.active", want: []got{{Type: "boolean", Path: "Patient.active", Key: "active", Index: -1, JSON: "true", Parent: "?"}}},
		{name: "bundle entry is Resource", root: bundle, expr: "Bundle.entry.resource.all($this is Resource)", want: boolean(true)},

		// Operators and functions on values.
		{name: "integer arithmetic", root: patient, expr: "1 + 2 * 3", want: integer("7")},
		{name: "decimal arithmetic", root: observation, expr: "Observation.value.value * 2", want: []got{{Type: "System.Decimal", Index: -1, JSON: "240.0"}}},
		{name: "division is decimal", root: patient, expr: "7 / 2", want: []got{{Type: "System.Decimal", Index: -1, JSON: "3.5"}}},
		{name: "div and mod", root: patient, expr: "(7 div 2) + (7 mod 2)", want: integer("4")},
		{name: "division by zero is empty", root: patient, expr: "1 / 0"},
		{name: "unary minus", root: observation, expr: "-Observation.value.value", want: []got{{Type: "System.Decimal", Index: -1, JSON: "-120"}}},
		{name: "string concatenation", root: patient, expr: "Patient.name[0].family & ', ' & {} & Patient.gender", want: str("Chalmers, male")},
		{name: "string escapes", root: patient, expr: `'it\'s \u00e9'`, want: str("it's é")},
		{name: "decimals compare numerically", root: patient, expr: "1.5 = 1.50", want: boolean(true)},
		{name: "integer equals decimal", root: patient, expr: "2 = 2.0", want: boolean(true)},
		{name: "equivalence ignores case and spacing", root: patient, expr: "'Peter  James' ~ 'peter james'", want: boolean(true)},
		{name: "not equivalent", root: patient, expr: "'a' !~ 'b'", want: boolean(true)},
		{name: "empty equals is empty", root: patient, expr: "Patient.foo = 'x'"},
		{name: "date precision mismatch is empty", root: patient, expr: "@2020 < @2020-06"},
		{name: "dates compare", root: patient, expr: "@2020-01 < @2020-06", want: boolean(true)},
		{name: "dateTime with offsets", root: patient, expr: "@2020-01-01T10:00:00+02:00 = @2020-01-01T08:00:00Z", want: boolean(true)},
		{name: "birthDate against date literal", root: patient, expr: "Patient.birthDate < @2000-01-01", want: boolean(true)},
		{name: "birthDate against string", root: patient, expr: "Patient.birthDate = '1974-12-25'", want: boolean(true)},
		{name: "instant against date, different precision", root: patient, expr: "Patient.meta.lastUpdated > @2024-05-01"},
		{name: "instant against dateTime", root: patient, expr: "Patient.meta.lastUpdated > @2024-05-01T09:59", want: boolean(true)},
		{name: "quantity comparison same unit", root: observation, expr: "Observation.value > 100 'mm[Hg]'", want: boolean(true)},
		{name: "quantity comparison other unit is empty", root: observation, expr: "Observation.value > 100 'kPa'"},
		{name: "calendar quantity literal", root: patient, expr: "4 days = 4 'd'", want: boolean(true)},
		{name: "in", root: patient, expr: "Patient.gender in ('male' | 'female')", want: boolean(true)},
		{name: "contains operator", root: patient, expr: "Patient.name.given contains 'James'", want: boolean(true)},
		{name: "union deduplicates values", root: patient, expr: "(1 | 2 | 2 | 1).count()", want: integer("2")},
		{name: "union deduplicates elements", root: patient, expr: "(Patient.identifier | Patient.identifier).count()", want: integer("2")},
		{name: "combine keeps duplicates", root: patient, expr: "Patient.identifier.combine(Patient.identifier).count()", want: integer("4")},
		{name: "and with empty", root: patient, expr: "true and {}"},
		{name: "false and empty", root: patient, expr: "false and {}", want: boolean(false)},
		{name: "or with empty", root: patient, expr: "{} or true", want: boolean(true)},
		{name: "implies from empty", root: patient, expr: "{} implies true", want: boolean(true)},
		{name: "xor", root: patient, expr: "true xor false", want: boolean(true)},
		{name: "not", root: patient, expr: "Patient.active.not()", want: boolean(false)},
		{name: "is with FHIR namespace", root: patient, expr: "Patient.active is FHIR.boolean", want: boolean(true)},
		{name: "FHIR primitive carries a System type", root: patient, expr: "Patient.active is System.Boolean", want: boolean(true)},
		{name: "code is a string", root: patient, expr: "Patient.gender is string", want: boolean(true)},
		{name: "resource inheritance", root: patient, expr: "Patient is DomainResource", want: boolean(true)},
		{name: "literal type", root: patient, expr: "1 is Integer", want: boolean(true)},
		{name: "count", root: patient, expr: "Patient.identifier.count()", want: integer("2")},
		{name: "distinct", root: patient, expr: "(Patient.telecom.system).distinct().count()", want: integer("2")},
		{name: "first of where", root: patient, expr: "Patient.name.where(use='official').given.first()", parents: []string{"Patient.name[0]"},
			want: []got{{Type: "string", Path: "HumanName.given", Key: "given", Index: 0, JSON: `"Peter"`, Parent: "Patient.name[0]"}}},
		{name: "last, tail, skip, take", root: patient, expr: "Patient.telecom.skip(1).take(2).tail().last().value", want: []got{{
			Type: "string", Path: "ContactPoint.value", Key: "value", Index: -1, JSON: `"666"`, Parent: "?"}}},
		{name: "select", root: patient, expr: "Patient.name.select(family).count()", want: integer("1")},
		{name: "all", root: patient, expr: "Patient.name.all(given.exists())", want: boolean(true)},
		{name: "anyTrue and allFalse", root: patient, expr: "(true | false).anyTrue() and (false).allFalse() and (1).anyTrue().not()", want: boolean(true)},
		{name: "exists with criteria", root: patient, expr: "Patient.identifier.exists(system='http://other.org')", want: boolean(true)},
		{name: "iif", root: patient, expr: "iif(Patient.active, 'yes', 'no')", want: str("yes")},
		{name: "string functions", root: patient, expr: "Patient.name[0].family.substring(1, 3).upper() + Patient.gender.length().toString()", want: str("HAL4")},
		{name: "startsWith in where", root: patient, expr: "Patient.name.given.where($this.startsWith('J')).count()", want: integer("3")},
		{name: "matches", root: patient, expr: "Patient.identifier.value.where(matches('^[0-9]{3}$')).count()", want: integer("2")},
		{name: "substring past the end", root: patient, expr: "'abc'.substring(1, 9223372036854775807)", want: str("bc")},
		{name: "huge exponent compares as unknown", root: parse(t, `{"resourceType":"Observation","valueQuantity":{"value":1e999999999}}`),
			expr: "Observation.value.value > 5"},
		{name: "indexOf", root: patient, expr: "'abc'.indexOf('c')", want: integer("2")},
		{name: "replaceMatches", root: patient, expr: "'a1b22'.replaceMatches('[0-9]+', '#')", want: str("a#b#")},
		{name: "toInteger", root: patient, expr: "'42'.toInteger() + 1", want: integer("43")},
		{name: "index variable", root: patient, expr: "Patient.telecom.where($index = 1).system", want: []got{{
			Type: "code", Path: "ContactPoint.system", Key: "system", Index: -1, JSON: `"email"`, Parent: "?"}}},
		{name: "this at the top", root: patient, expr: "$this.id", parents: []string{"Patient"}, want: []got{{
			Type: "id", Path: "Patient.id", Key: "id", Index: -1, JSON: `"p1"`, Parent: "Patient"}}},
		{name: "resource variable", root: patient, expr: "Patient.name.where(%resource.gender = 'male').count()", want: integer("3")},
		{name: "children", root: observation, expr: "Observation.code.children().count()", want: integer("1")},
		{name: "descendants", root: patient, expr: "Patient.descendants().ofType(Extension).count()", want: integer("4")},
		{name: "aggregate", root: patient, expr: "(1 | 2 | 3).aggregate($this + $total, 0)", want: integer("6")},
		{name: "repeat", root: patient, expr: "Patient.repeat(contact).count()", want: integer("1")},
		{name: "trace is a no-op", root: patient, expr: "Patient.id.trace('id')", parents: []string{"Patient"}, want: []got{{
			Type: "id", Path: "Patient.id", Key: "id", Index: -1, JSON: `"p1"`, Parent: "Patient"}}},
		{name: "memberOf is unknown", root: patient, expr: "Patient.gender.memberOf('http://hl7.org/fhir/ValueSet/administrative-gender')"},
		{name: "comments", root: patient, expr: "Patient.id // the id\n /* block */ = 'p1'", want: boolean(true)},
		{name: "delimited identifier", root: patient, expr: "Patient.`gender`", parents: []string{"Patient"}, want: []got{{
			Type: "code", Path: "Patient.gender", Key: "gender", Index: -1, JSON: `"male"`, Parent: "Patient"}}},
		{name: "ucum constant", root: observation, expr: "Observation.value.system = %ucum", want: boolean(true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := fhirpath.Compile(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			nodes, err := e.Eval(tt.root)
			if err != nil {
				t.Fatalf("Eval(%q): %v", tt.expr, err)
			}
			if diff := cmp.Diff(tt.want, describe(t, tt.root, nodes, tt.parents)); diff != "" {
				t.Errorf("Eval(%q) (-want +got):\n%s", tt.expr, diff)
			}
		})
	}
}

func TestEvalNode(t *testing.T) {
	t.Parallel()
	observation := parse(t, observationJSON)
	comps, err := fhirpath.MustCompile("Observation.component").Eval(observation)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		expr  string
		focus int
		want  []string // Type:JSON of each result
	}{
		{name: "relative path", expr: "code.coding.code", focus: 0, want: []string{`code:"8480-6"`}},
		{name: "as on the focus", expr: "value.as(Quantity)", focus: 1, want: []string{`Quantity:{"value":60,"unit":"mmHg","code":"mm[Hg]"}`}},
		{name: "System type accepted for a FHIR primitive", expr: "value.as(String)", focus: 2, want: []string{`string:"ok"`}},
		{name: "resource and context", expr: "%resource.id & '/' & %context.code.text", focus: 2, want: []string{`System.String:"o1/note"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := fhirpath.MustCompile(tt.expr).EvalNode(observation, comps[tt.focus])
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range res {
				got = append(got, n.Type+":"+jsonOf(n.Value))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("EvalNode(%q) (-want +got):\n%s", tt.expr, diff)
			}
		})
	}
}

func TestEvalErrors(t *testing.T) {
	t.Parallel()
	patient := parse(t, patientJSON)
	tests := []struct {
		name string
		root *jsontree.Value
		expr string
	}{
		{name: "string function on many items", root: patient, expr: "Patient.name.given.substring(0, 1)"},
		{name: "comparison of many items", root: patient, expr: "Patient.name.given < 'x'"},
		{name: "incomparable types", root: patient, expr: "Patient.birthDate < 5"},
		{name: "is on many items", root: patient, expr: "Patient.name is HumanName"},
		{name: "arithmetic on strings and numbers", root: patient, expr: "'a' - 1"},
		{name: "root without resourceType", root: parse(t, `{"id": "x"}`), expr: "id"},
		{name: "root of unknown type", root: parse(t, `{"resourceType": "Nonsense"}`), expr: "id"},
		{name: "root not an object", root: parse(t, `[]`), expr: "id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := fhirpath.MustCompile(tt.expr).Eval(tt.root)
			var ee *fhirpath.EvalError
			if !errors.As(err, &ee) || !errors.Is(err, fhir.ErrUnprocessable) {
				t.Errorf("Eval(%q) = %v, want an EvalError wrapping fhir.ErrUnprocessable", tt.expr, err)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		expr   string
		offset int
	}{
		{name: "unclosed index", expr: "Patient.name[", offset: 13},
		{name: "double dot", expr: "Patient..name", offset: 8},
		{name: "unknown function", expr: "Patient.name.foo()", offset: 13},
		{name: "unterminated string", expr: "'abc", offset: 0},
		{name: "bad escape", expr: `'a\qb'`, offset: 2},
		{name: "arity", expr: "Patient.name.where()", offset: 13},
		{name: "unknown type", expr: "Patient is Foo", offset: 11},
		{name: "invalid date", expr: "@2020-13", offset: 0},
		{name: "unknown constant", expr: "%foo.bar", offset: 0},
		{name: "unknown variable", expr: "$that", offset: 0},
		{name: "trailing tokens", expr: "Patient.name )", offset: 13},
		{name: "keyword as term", expr: "and", offset: 0},
		{name: "unexpected character", expr: "Patient#name", offset: 7},
		{name: "invalid regex", expr: "'a'.matches('(')", offset: 4},
		{name: "integer overflow", expr: "99999999999999999999", offset: 0},
		{name: "empty", expr: "", offset: 0},
		{name: "nested too deep", expr: strings.Repeat("(", fhirpath.MaxNesting+1) + "1" + strings.Repeat(")", fhirpath.MaxNesting+1), offset: fhirpath.MaxNesting},
		{name: "too long", expr: strings.Repeat("a", fhirpath.MaxLength+1), offset: fhirpath.MaxLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := fhirpath.Compile(tt.expr)
			var se *fhirpath.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Compile(%q) = %v, want a SyntaxError", tt.expr, err)
			}
			if se.Offset != tt.offset {
				t.Errorf("Compile(%q): offset %d, want %d (%v)", tt.expr, se.Offset, tt.offset, err)
			}
			if !errors.Is(err, fhir.ErrInvalid) {
				t.Errorf("Compile(%q): %v does not wrap fhir.ErrInvalid", tt.expr, err)
			}
		})
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	const src = "Patient.name.where(use = 'official')"
	if got := fhirpath.MustCompile(src).String(); got != src {
		t.Errorf("String() = %q, want %q", got, src)
	}
}

func TestNodeIs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		node fhirpath.Node
		typ  string
		want bool
	}{
		{name: "Age is Quantity", node: fhirpath.Node{Type: "Age"}, typ: "Quantity", want: true},
		{name: "SimpleQuantity profile", node: fhirpath.Node{Type: "Quantity"}, typ: "SimpleQuantity", want: true},
		{name: "Quantity is not Age", node: fhirpath.Node{Type: "Quantity"}, typ: "Age", want: false},
		{name: "backbone", node: fhirpath.Node{Type: "Observation.component"}, typ: "BackboneElement", want: true},
		{name: "data type part", node: fhirpath.Node{Type: "Timing.repeat"}, typ: "Element", want: true},
		{name: "positiveInt is integer", node: fhirpath.Node{Type: "positiveInt"}, typ: "FHIR.integer", want: true},
		{name: "Bundle is not DomainResource", node: fhirpath.Node{Type: "Bundle"}, typ: "DomainResource", want: false},
		{name: "unknown type", node: fhirpath.Node{Type: "Patient"}, typ: "Nonsense", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.node.Is(tt.typ); got != tt.want {
				t.Errorf("Node{Type: %q}.Is(%q) = %v, want %v", tt.node.Type, tt.typ, got, tt.want)
			}
		})
	}
}

// TestConcurrentEval shares compiled expressions between goroutines, as the indexer does; run
// with -race it checks the lookup caches.
func TestConcurrentEval(t *testing.T) {
	t.Parallel()
	exprs := []*fhirpath.Expr{
		fhirpath.MustCompile("(Observation.value as Quantity) | (Observation.component.value as Quantity)"),
		fhirpath.MustCompile("Observation.subject.where(resolve() is Patient)"),
		fhirpath.MustCompile("Resource.meta.lastUpdated | DomainResource.text | Patient.name.given"),
	}
	roots := []*jsontree.Value{parse(t, observationJSON), parse(t, patientJSON)}
	want := make([][]int, len(roots))
	for i, r := range roots {
		for _, e := range exprs {
			res, err := e.Eval(r)
			if err != nil {
				t.Fatal(err)
			}
			want[i] = append(want[i], len(res))
		}
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for range 200 {
				i := g % len(roots)
				for j, e := range exprs {
					res, err := e.Eval(roots[i])
					if err == nil && len(res) != want[i][j] {
						err = errors.New(e.String() + ": result changed under concurrency")
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
