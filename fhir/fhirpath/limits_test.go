package fhirpath_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/fhirpath"
)

// TestLimits checks that expressions whose cost explodes on a large resource stop with ErrLimit
// (the evaluator's step budget) instead of holding the server. How fast they stop is the budget's
// business, not a timing threshold here: those fail on a busy machine.
func TestLimits(t *testing.T) {
	t.Parallel()
	names := strings.TrimSuffix(strings.Repeat(`{"family":"f","given":["a","b"]},`, 400), ",")
	root := parse(t, `{"resourceType":"Patient","name":[`+names+`]}`)
	tests := []struct {
		name string
		expr string
	}{
		{name: "nested where", expr: "Patient.name.where(%resource.name.where(%resource.name.where(%resource.name.exists()).exists()).exists())"},
		{name: "select product", expr: "Patient.name.select(%resource.name).select(%resource.name).count()"},
		{name: "combine product", expr: "Patient.name.select(%resource.name.given.combine(%resource.name.given)).count()"},
		{name: "distinct of a product", expr: "Patient.name.select(%resource.name.family).distinct()"},
		{name: "all over all", expr: "Patient.name.all(%resource.name.all(%resource.name.all(given.exists())))"},
	}
	// The longest chain of steps MaxLength allows compiles and evaluates (to nothing).
	chain := "Patient" + strings.Repeat(".name", (fhirpath.MaxLength-7)/5)
	if res, err := fhirpath.MustCompile(chain).Eval(root); err != nil || len(res) != 0 {
		t.Errorf("Eval(long chain) = %d results, %v; want none", len(res), err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := fhirpath.MustCompile(tt.expr).Eval(root)
			if !errors.Is(err, fhirpath.ErrLimit) || !errors.Is(err, fhir.ErrTooCostly) {
				t.Errorf("Eval(%q) = %v, want ErrLimit", tt.expr, err)
			}
		})
	}
}

// TestLargeCollections checks that operations over large but legitimate collections stay correct
// on the paths that avoid quadratic work.
func TestLargeCollections(t *testing.T) {
	t.Parallel()
	names := strings.TrimSuffix(strings.Repeat(`{"family":"f","given":["a","b"]},`, 400), ",")
	root := parse(t, `{"resourceType":"Patient","name":[`+names+`]}`)
	tests := []struct {
		name string
		expr string
		want string
	}{
		{name: "union of elements", expr: "(Patient.name.given | Patient.name.given).count()", want: "800"},
		{name: "union of values and elements", expr: "(Patient.name.given.select($this & 'x') | Patient.name.family).count()", want: "402"},
		{name: "distinct", expr: "Patient.name.given.distinct().count()", want: "2"},
		{name: "where", expr: "Patient.name.where(given.first() = 'a').count()", want: "400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := fhirpath.MustCompile(tt.expr).Eval(root)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 1 || res[0].Value.Str != tt.want {
				t.Errorf("Eval(%q) = %v, want %s", tt.expr, res, tt.want)
			}
		})
	}
}
