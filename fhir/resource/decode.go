package resource

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
)

// Decode parses a request body as a FHIR JSON resource: valid JSON, an object with a known
// resourceType, and FHIR's JSON rules that jsonformat does not enforce (json.html): no null except
// as a placeholder in a primitive array, no empty string, array or object, and a narrative div that
// is a <div>. It does not validate against the resource's definition; Validator does.
func Decode(body []byte) (*jsontree.Value, error) {
	tree, err := jsontree.Parse(body)
	if err != nil {
		var se *jsontree.SyntaxError
		if errors.As(err, &se) {
			return nil, fhir.Errorf(fhir.ErrInvalid, "structure", "the body is not valid JSON: %s (at byte %d)", se.Msg, se.Offset)
		}
		return nil, fhir.Errorf(fhir.ErrInvalid, "structure", "the body is not valid JSON: %v", err)
	}
	if tree.Kind != jsontree.Object {
		return nil, fhir.Errorf(fhir.ErrInvalid, "structure", "a FHIR resource is a JSON object, got %s", tree.Kind)
	}
	rt := tree.Get("resourceType")
	if rt == nil {
		return nil, invalid("required", "resourceType", "resourceType is missing")
	}
	if rt.Kind != jsontree.String || !IsType(rt.Str) {
		return nil, invalid("not-supported", "resourceType", "%q is not an R4 resource type", rt.Str)
	}
	var issues []fhir.Issue
	checkShape(tree, []string{rt.Str}, &issues)
	if len(issues) > 0 {
		return nil, &fhir.Error{Kind: fhir.ErrInvalid, Issues: issues}
	}
	return tree, nil
}

// maxShapeIssues stops a pathological body from producing an enormous OperationOutcome.
const maxShapeIssues = 100

// checkShape walks an object, recording every violation of FHIR's JSON rules with its path.
func checkShape(obj *jsontree.Value, path []string, issues *[]fhir.Issue) {
	if len(obj.Members) == 0 {
		addIssue(issues, "structure", path, "an object must not be empty")
		return
	}
	for _, m := range obj.Members {
		p := append(path, m.Key)
		v := m.Value
		switch v.Kind {
		case jsontree.Null:
			addIssue(issues, "structure", p, "null is not a FHIR value; leave the element out")
		case jsontree.String:
			checkString(m.Key, v.Str, p, issues)
		case jsontree.Object:
			checkShape(v, p, issues)
		case jsontree.Array:
			if len(v.Items) == 0 {
				addIssue(issues, "structure", p, "an array must not be empty; leave the element out")
				continue
			}
			// Nulls in an array are placeholders only when a primitive array is paired with its
			// "_name" twin (or is that twin).
			paired := strings.HasPrefix(m.Key, "_") || obj.Get("_"+m.Key) != nil
			allNull := true
			for i, it := range v.Items {
				ip := append(p[:len(p):len(p)], "["+strconv.Itoa(i)+"]")
				switch it.Kind {
				case jsontree.Null:
					if !paired {
						addIssue(issues, "structure", ip, "null in an array is only allowed as a placeholder matched by the _%s array", strings.TrimPrefix(m.Key, "_"))
					}
					continue
				case jsontree.Object:
					checkShape(it, ip, issues)
				case jsontree.String:
					checkString(m.Key, it.Str, ip, issues)
				case jsontree.Array:
					addIssue(issues, "structure", ip, "arrays of arrays are not FHIR JSON")
				}
				allNull = false
			}
			if allNull {
				addIssue(issues, "structure", p, "an array must not hold only nulls")
			}
		}
		if len(*issues) >= maxShapeIssues {
			return
		}
	}
}

func checkString(key, s string, path []string, issues *[]fhir.Issue) {
	if strings.TrimSpace(s) == "" {
		addIssue(issues, "value", path, "a string must not be empty or only whitespace")
		return
	}
	if key == "div" && !strings.HasPrefix(strings.TrimSpace(s), "<div") {
		addIssue(issues, "value", path, "a narrative must be an XHTML <div> element")
	}
}

func addIssue(issues *[]fhir.Issue, code string, path []string, format string, args ...any) {
	if len(*issues) >= maxShapeIssues {
		return
	}
	*issues = append(*issues, fhir.Issue{Severity: fhir.SeverityError, Code: code, Diagnostics: fmt.Sprintf(format, args...), Expression: []string{joinPath(path)}})
}

// joinPath renders path segments as FHIRPath: "Patient.name[0].given".
func joinPath(path []string) string {
	var b strings.Builder
	for i, s := range path {
		if i > 0 && !strings.HasPrefix(s, "[") {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}
