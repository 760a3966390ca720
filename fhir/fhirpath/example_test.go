package fhirpath_test

import (
	"fmt"

	"github.com/iambilly/billy/fhir/fhirpath"
	"github.com/iambilly/billy/fhir/jsontree"
)

// Search index extraction: the expression of Observation's value-quantity parameter, with the
// type and location of what it finds.
func ExampleExpr_Eval() {
	obs, _ := jsontree.Parse([]byte(`{"resourceType":"Observation","status":"final","code":{"text":"bp"},
		"valueQuantity":{"value":120,"code":"mm[Hg]"},
		"component":[{"code":{"text":"dia"},"valueQuantity":{"value":80,"code":"mm[Hg]"}}]}`))
	e := fhirpath.MustCompile("(Observation.value as Quantity) | (Observation.component.value as Quantity)")
	nodes, err := e.Eval(obs)
	if err != nil {
		panic(err)
	}
	for _, n := range nodes {
		fmt.Println(n.Type, n.Key, n.Index, n.Value.Get("value").Str)
	}
	// Output:
	// Quantity valueQuantity -1 120
	// Quantity valueQuantity -1 80
}

// FHIRPath Patch: the locations of the matches say where to edit the tree.
func ExampleExpr_Eval_patch() {
	pat, _ := jsontree.Parse([]byte(`{"resourceType":"Patient","name":[{"given":["Peter","James"]}]}`))
	nodes, _ := fhirpath.MustCompile("Patient.name[0].given").Eval(pat)
	last := nodes[len(nodes)-1]
	last.Parent.Get(last.Key).Items[last.Index] = jsontree.NewString("Jim")
	fmt.Println(string(pat.Marshal()))
	// Output:
	// {"resourceType":"Patient","name":[{"given":["Peter","Jim"]}]}
}

// Composite search parameters evaluate their components on each result of the composite's own
// expression.
func ExampleExpr_EvalNode() {
	obs, _ := jsontree.Parse([]byte(`{"resourceType":"Observation","status":"final","code":{"text":"bp"},
		"component":[{"code":{"coding":[{"code":"8480-6"}]},"valueQuantity":{"value":120,"code":"mm[Hg]"}}]}`))
	comps, _ := fhirpath.MustCompile("Observation.component").Eval(obs)
	code := fhirpath.MustCompile("code")
	value := fhirpath.MustCompile("value.as(Quantity)")
	for _, c := range comps {
		codes, _ := code.EvalNode(obs, c)
		values, _ := value.EvalNode(obs, c)
		fmt.Println(codes[0].Type, values[0].Type, values[0].Path)
	}
	// Output:
	// CodeableConcept Quantity Observation.component.value
}
