package fhir

import (
	"strings"

	"github.com/iambilly/billy/fhir/jsontree"
)

// Outcome builds an OperationOutcome resource from issues.
func Outcome(issues []Issue) *jsontree.Value {
	oo := jsontree.NewObject()
	oo.Set("resourceType", jsontree.NewString("OperationOutcome"))
	items := make([]*jsontree.Value, 0, len(issues))
	for _, is := range issues {
		it := jsontree.NewObject()
		sev := is.Severity
		if sev == "" {
			sev = SeverityError
		}
		it.Set("severity", jsontree.NewString(sev))
		code := is.Code
		if code == "" {
			code = "processing"
		}
		it.Set("code", jsontree.NewString(code))
		if is.Diagnostics != "" {
			// An error may quote input that is not UTF-8; the answer must stay valid JSON.
			it.Set("diagnostics", jsontree.NewString(strings.ToValidUTF8(is.Diagnostics, "\uFFFD")))
		}
		if len(is.Expression) > 0 {
			ex := jsontree.NewArray()
			for _, e := range is.Expression {
				ex.Items = append(ex.Items, jsontree.NewString(strings.ToValidUTF8(e, "\uFFFD")))
			}
			it.Set("expression", ex)
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		it := jsontree.NewObject()
		it.Set("severity", jsontree.NewString(SeverityInformation))
		it.Set("code", jsontree.NewString("informational"))
		items = append(items, it)
	}
	oo.Set("issue", jsontree.NewArray(items...))
	return oo
}
