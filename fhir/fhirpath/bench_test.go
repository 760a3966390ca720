package fhirpath_test

import (
	"testing"

	"github.com/iambilly/billy/fhir/fhirpath"
	"github.com/iambilly/billy/fhir/searchparam"
)

// BenchmarkObservationSearchParams evaluates every Observation search parameter expression, and
// the components of the composites, on a typical blood pressure Observation: the work of indexing
// one write.
func BenchmarkObservationSearchParams(b *testing.B) {
	root := parse(b, observationJSON)
	type param struct {
		expr  *fhirpath.Expr
		comps []*fhirpath.Expr
	}
	var params []param
	for _, p := range searchparam.ForType("Observation") {
		if p.Expression == "" {
			continue
		}
		ps := param{expr: fhirpath.MustCompile(p.Expression)}
		for _, c := range p.Components {
			ps.comps = append(ps.comps, fhirpath.MustCompile(c.Expression))
		}
		params = append(params, ps)
	}
	b.ReportAllocs()
	nodes := 0
	for b.Loop() {
		nodes = 0
		for _, p := range params {
			res, err := p.expr.Eval(root)
			if err != nil {
				b.Fatal(err)
			}
			nodes += len(res)
			for _, n := range res {
				for _, c := range p.comps {
					r, err := c.EvalNode(root, n)
					if err != nil {
						b.Fatal(err)
					}
					nodes += len(r)
				}
			}
		}
	}
	b.ReportMetric(float64(len(params)), "exprs/op")
	b.ReportMetric(float64(nodes), "nodes/op")
}
