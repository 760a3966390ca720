package fhirpath_test

import (
	"testing"

	"github.com/iambilly/billy/fhir/fhirpath"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/schema"
	"github.com/iambilly/billy/fhir/searchparam"
)

// FuzzCompile feeds arbitrary text to Compile, and what compiles to Eval: neither may panic, and a
// compiled expression keeps its source.
func FuzzCompile(f *testing.F) {
	seeds := []string{
		"Patient.name[1].given", "(Observation.value as Quantity) | (Observation.value as SampledData)",
		"Patient.deceased.exists() and Patient.deceased != false", "@2020-01-01T10:00:00.123+02:00 < @T10:00",
		"5 'mg' + 4 days", `'a\u00e9\'' & %ucum`, "iif($this.id.empty(), {}, -1.5)", "Patient.`name`.aggregate($total + 1, 0)",
		"Patient.descendants().ofType(FHIR.Extension).where(url.matches('x+'))", "1 div 0 mod 2 implies true xor false",
	}
	for _, rt := range schema.ResourceTypes()[:20] {
		for _, p := range searchparam.ForType(rt) {
			seeds = append(seeds, p.Expression)
		}
	}
	for _, s := range seeds {
		f.Add(s)
	}
	patient, err := jsontree.Parse([]byte(patientJSON))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := fhirpath.Compile(src)
		if err != nil {
			return
		}
		if e.String() != src {
			t.Errorf("String() = %q, want %q", e.String(), src)
		}
		_, _ = e.Eval(patient) // errors are fine, panics and hangs are not
	})
}
