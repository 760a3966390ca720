package resource

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"

	"github.com/iambilly/billy/fhir"
)

// Validator checks resources against the FHIR R4 definitions with google/fhir/go jsonformat: element
// names and cardinality, primitive formats, code values of required bindings, required elements and
// reference target types. It is safe for concurrent use.
type Validator struct {
	um *jsonformat.Unmarshaller
}

// NewValidator returns a Validator for R4.
func NewValidator() (*Validator, error) {
	um, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		return nil, fmt.Errorf("jsonformat: %w", err)
	}
	um.MaxNestingDepth = 100
	return &Validator{um: um}, nil
}

// Validate checks the JSON of one resource. Failures are a *fhir.Error of kind ErrInvalid with one
// issue per problem, each with the element's FHIRPath.
func (v *Validator) Validate(data []byte) error {
	rep := &reporter{}
	_, err := v.um.UnmarshalWithErrorReporter(data, rep)
	issues := rep.issues
	if err != nil {
		issues = append(issues, libraryIssues(err)...)
	}
	if len(issues) == 0 {
		return nil
	}
	return &fhir.Error{Kind: fhir.ErrInvalid, Issues: issues}
}

// reporter collects the validation errors jsonformat reports after a successful parse.
type reporter struct{ issues []fhir.Issue }

func (r *reporter) ReportValidationError(_ string, err error) error {
	r.issues = append(r.issues, libraryIssues(err)...)
	return nil
}

func (r *reporter) ReportValidationWarning(string, error) error { return nil }

// libraryIssues maps jsonformat's errors to issues. jsonformat's error types live in an internal
// package, so their Path/Details/Diagnostics fields are read by reflection, and the issue code is
// chosen from Details, its fixed, PHI-free summary text. A change of those texts in a new jsonformat
// release degrades the code to "invalid"; the tests in this package pin the mapping.
func libraryIssues(err error) []fhir.Issue {
	rv := reflect.ValueOf(err)
	if rv.Kind() == reflect.Slice {
		out := make([]fhir.Issue, 0, rv.Len())
		for i := 0; i < rv.Len(); i++ {
			if e, ok := rv.Index(i).Interface().(error); ok {
				out = append(out, libraryIssue(e))
			}
		}
		return out
	}
	return []fhir.Issue{libraryIssue(err)}
}

var quotedName = regexp.MustCompile(`"([A-Za-z0-9_]+)"`)

// quotedValue is a value the library quotes in a diagnostic.
var quotedValue = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

func libraryIssue(err error) fhir.Issue {
	issue := fhir.Issue{Severity: fhir.SeverityError, Code: "invalid", Diagnostics: err.Error()}
	rv := reflect.ValueOf(err)
	if rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct || !rv.FieldByName("Path").IsValid() || !rv.FieldByName("Details").IsValid() {
		return issue
	}
	path := normalisePath(rv.FieldByName("Path").String())
	details := rv.FieldByName("Details").String()
	diag := ""
	if f := rv.FieldByName("Diagnostics"); f.IsValid() {
		diag = f.String()
	}
	issue.Diagnostics = details
	if diag != "" {
		issue.Diagnostics += ": " + diag
	}
	switch {
	case strings.HasPrefix(details, "unknown field"):
		issue.Code = "structure"
		if name, err := strconv.Unquote(diag); err == nil {
			path = joinExpr(path, name)
			issue.Diagnostics = fmt.Sprintf("unknown element %q", name)
		}
	case strings.HasPrefix(details, "missing required field"):
		issue.Code = "required"
		if m := quotedName.FindStringSubmatch(details); m != nil {
			path = joinExpr(path, m[1])
			issue.Diagnostics = fmt.Sprintf("required element %q is missing", m[1])
		}
	case strings.HasPrefix(details, "invalid JSON"), strings.HasPrefix(details, "cannot accept multiple values"),
		strings.HasPrefix(details, "expected array"), strings.HasPrefix(details, "unexpected array"),
		strings.HasPrefix(details, "expected object"):
		issue.Code = "structure"
	case strings.HasPrefix(details, "unknown resource type"):
		issue.Code = "not-supported"
	case strings.Contains(details, "code type mismatch"):
		issue.Code = "code-invalid"
		issue.Diagnostics = details + ": " + quotedValue.ReplaceAllString(diag, "the value")
	default:
		issue.Code = "value"
		// The library quotes the value (found "07/23/1961"): it may identify a patient, and the
		// expression already says where it is.
		issue.Diagnostics = details
		if diag != "" {
			issue.Diagnostics += ": " + quotedValue.ReplaceAllString(diag, "the value")
		}
	}
	if path != "" {
		issue.Expression = []string{path}
	}
	return issue
}

func joinExpr(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// normalisePath turns jsonformat's paths into FHIRPath. It names a nested resource's type after the
// element holding it ("Bundle.entry[0].resource.Patient.name"); FHIRPath has no such step.
func normalisePath(p string) string {
	if p == "" {
		return ""
	}
	parts := strings.Split(p, ".")
	out := parts[:1]
	for i := 1; i < len(parts); i++ {
		prev := parts[i-1]
		if IsType(parts[i]) && (prev == "resource" || strings.HasPrefix(prev, "contained[") || prev == "contained" ||
			strings.HasPrefix(prev, "resource[") || prev == "outcome") {
			continue
		}
		out = append(out, parts[i])
	}
	return strings.Join(out, ".")
}
