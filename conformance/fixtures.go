package conformance

import (
	"context"
	"fmt"
	"sync"
)

// IDSystem is the identifier system of the fixtures' business identifiers.
const IDSystem = "urn:billy:conformance:id"

// CodeSystem is the code system of the fixtures' run-unique codes.
const CodeSystem = "urn:billy:conformance:code"

// fixtureTypes is the type of each fixture, in creation order (targets before references).
var fixtureTypes = [][2]string{
	{"org", "Organization"}, {"patientA", "Patient"}, {"patientB", "Patient"},
	{"obsA", "Observation"}, {"obsB", "Observation"}, {"risk", "RiskAssessment"},
}

func (e *Env) familyA() string { return "Conformance" + e.runID + "Zoë" }
func (e *Env) familyB() string { return "Conformance" + e.runID + "Bob" }

// template is a fixture before it is created; refs maps fixture keys to "Type/id".
func (e *Env) template(key string, refs map[string]string) map[string]any {
	ref := func(k string) map[string]any { return map[string]any{"reference": refs[k]} }
	switch key {
	case "org":
		return map[string]any{"resourceType": "Organization", "active": true, "name": "Conformance " + e.runID + " Clinic",
			"identifier": []any{map[string]any{"system": IDSystem, "value": e.runID + "-org"}}}
	case "patientA":
		return map[string]any{"resourceType": "Patient", "active": true, "gender": "female", "birthDate": "1980-05-17",
			"identifier": []any{map[string]any{"system": IDSystem, "value": e.runID + "-a"}},
			"name":       []any{map[string]any{"family": e.familyA(), "given": []any{"Ana" + e.runID}}},
			"telecom": []any{map[string]any{"system": "email", "value": e.runID + "-a@example.org"},
				map[string]any{"system": "phone", "value": "555-" + e.runID}},
			"address":              []any{map[string]any{"city": "Conformanceville", "postalCode": "99501", "country": "US"}},
			"managingOrganization": ref("org")}
	case "patientB":
		return map[string]any{"resourceType": "Patient", "active": true, "gender": "male", "birthDate": "1990-01-01",
			"identifier": []any{map[string]any{"system": IDSystem, "value": e.runID + "-b"}},
			"name":       []any{map[string]any{"family": e.familyB(), "given": []any{"Bo" + e.runID}}}}
	case "obsA", "obsB":
		code, val, subj, when := "a-"+e.runID, 5.4, "patientA", "2024-03-05T10:00:00Z"
		if key == "obsB" {
			code, val, subj, when = "b-"+e.runID, 7.2, "patientB", "2024-06-01T10:00:00Z"
		}
		return map[string]any{"resourceType": "Observation", "status": "final",
			"category": []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}}}},
			"code": map[string]any{"coding": []any{
				map[string]any{"system": "http://loinc.org", "code": "15074-8", "display": "Glucose [Moles/volume] in Blood"},
				map[string]any{"system": CodeSystem, "code": code}}},
			"subject":           ref(subj),
			"effectiveDateTime": when,
			"valueQuantity":     map[string]any{"value": val, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}}
	case "risk":
		return map[string]any{"resourceType": "RiskAssessment", "status": "final", "subject": ref("patientA"),
			"prediction": []any{map[string]any{"probabilityDecimal": 0.42}}}
	}
	panic("no fixture " + key)
}

// createFixtures creates the run's fixtures.
func (e *Env) createFixtures(ctx context.Context) error {
	e.fixtures = map[string]map[string]any{}
	refs := map[string]string{}
	for _, kt := range fixtureTypes {
		res, r, err := e.createWith(ctx, e.template(kt[0], refs), e.fixtureMeta())
		if err != nil {
			if r != nil {
				return fmt.Errorf("%s: %w: %s", kt[0], err, truncate(r.Body))
			}
			return fmt.Errorf("%s: %w", kt[0], err)
		}
		e.fixtures[kt[0]] = res
		refs[kt[0]] = kt[1] + "/" + str(res["id"])
	}
	return nil
}

// fixture is a fixture of the run (write mode) or, read-only, a resource of the same type the
// server holds; nil when there is none.
func (e *Env) fixture(ctx context.Context, key string) map[string]any {
	if e.fixtures != nil {
		return e.fixtures[key]
	}
	if e.cfg.ReadOnly {
		for _, kt := range fixtureTypes {
			if kt[0] == key {
				return e.firstOf(ctx, kt[1])
			}
		}
	}
	return nil
}

// fixtureRef is "Type/id" of a fixture ("" when there is none).
func (e *Env) fixtureRef(ctx context.Context, key string) string {
	f := e.fixture(ctx, key)
	if f == nil {
		return ""
	}
	return str(f["resourceType"]) + "/" + str(f["id"])
}

// firstOf is the first resource of a type a search returns (nil when none), searched once per run.
func (e *Env) firstOf(ctx context.Context, typ string) map[string]any {
	e.foundMu.Lock()
	f, ok := e.found[typ]
	if !ok {
		f = &found{}
		e.found[typ] = f
	}
	e.foundMu.Unlock()
	f.once.Do(func() {
		path := typ + "?_count=1"
		if e.fixtures != nil && isFixtureType(typ) {
			path += "&_tag=" + q(e.tag)
		}
		if r, err := e.c.get(ctx, path); err == nil && r.Status == 200 {
			for _, en := range entries(r.JSON()) {
				if res := obj(en["resource"]); str(res["resourceType"]) == typ {
					f.res = res
					break
				}
			}
		}
	})
	return f.res
}

// found is the first resource of a type, looked up once.
type found struct {
	once sync.Once
	res  map[string]any
}

func isFixtureType(typ string) bool {
	for _, kt := range fixtureTypes {
		if kt[1] == typ {
			return true
		}
	}
	return false
}
