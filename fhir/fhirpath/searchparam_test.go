package fhirpath_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/iambilly/billy/fhir/fhirpath"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/schema"
	"github.com/iambilly/billy/fhir/searchparam"
)

// samples are the values generated resources give each primitive type.
var samples = map[string]*jsontree.Value{
	"boolean":      jsontree.NewBool(true),
	"integer":      jsontree.NewNumber("1"),
	"positiveInt":  jsontree.NewNumber("1"),
	"unsignedInt":  jsontree.NewNumber("0"),
	"decimal":      jsontree.NewNumber("1.5"),
	"date":         jsontree.NewString("2020-01-02"),
	"dateTime":     jsontree.NewString("2020-01-02T03:04:05Z"),
	"instant":      jsontree.NewString("2020-01-02T03:04:05.678Z"),
	"time":         jsontree.NewString("03:04:05"),
	"uri":          jsontree.NewString("http://example.org/x"),
	"url":          jsontree.NewString("http://example.org/x"),
	"canonical":    jsontree.NewString("http://example.org/fhir/ValueSet/x"),
	"oid":          jsontree.NewString("urn:oid:1.2.3"),
	"uuid":         jsontree.NewString("urn:uuid:c757873d-ec9a-4326-a141-556f43239520"),
	"xhtml":        jsontree.NewString(`<div xmlns="http://www.w3.org/1999/xhtml">x</div>`),
	"base64Binary": jsontree.NewString("eA=="),
}

// skipped are elements generated resources leave out: recursion without end, or nothing to
// index.
var skipped = map[string]bool{"extension": true, "modifierExtension": true, "contained": true, "id": true}

// generate builds a value of type typ (a type name or a backbone path) in which every element is
// present down to depth levels. Choice elements are present in every one of their types at once:
// invalid FHIR, but it lets each "as T" of the R4 expressions find something.
func generate(typ string, depth int) *jsontree.Value {
	if v, ok := samples[typ]; ok {
		return v
	}
	if schema.IsPrimitive(typ) {
		return jsontree.NewString("x")
	}
	if typ == "Reference" {
		o := jsontree.NewObject()
		o.Set("reference", jsontree.NewString("Patient/1"))
		return o
	}
	o := jsontree.NewObject()
	if depth == 0 {
		return o
	}
	for _, e := range schema.Children(typ) {
		name := e.Path[strings.LastIndexByte(e.Path, '.')+1:]
		if skipped[name] || e.Max == 0 {
			continue
		}
		var t, key string
		switch {
		case e.ContentRef != "":
			t, key = e.ContentRef, name
		case len(e.Types) == 0:
			continue
		case e.Types[0] == "BackboneElement" || e.Types[0] == "Element":
			t, key = e.Path, name
		case e.Types[0] == "Resource":
			r := jsontree.NewObject()
			r.Set("resourceType", jsontree.NewString("Patient"))
			r.Set("id", jsontree.NewString("p"))
			o.Set(name, r)
			continue
		case e.Choice:
			for _, ct := range e.Types {
				o.Set(name+strings.ToUpper(ct[:1])+ct[1:], generate(ct, depth-1))
			}
			continue
		default:
			t, key = e.Types[0], name
		}
		v := generate(t, depth-1)
		if e.Max != 1 {
			v = jsontree.NewArray(v)
		}
		o.Set(key, v)
	}
	return o
}

func generated(rt string) *jsontree.Value {
	r := generate(rt, 5)
	r.Set("resourceType", jsontree.NewString(rt))
	r.Set("id", jsontree.NewString("gen"))
	return r
}

// wherePart matches the where() calls of the R4 expressions: the generated values do not meet
// their conditions, but the paths around them must still lead somewhere.
var wherePart = regexp.MustCompile(`\.where\([^()]*(\([^()]*\)[^()]*)*\)`)

// TestSearchParameterExpressions compiles every expression of every R4 search parameter,
// composite components included, and evaluates it on a minimal and on a fully populated resource
// of its type.
func TestSearchParameterExpressions(t *testing.T) {
	t.Parallel()
	compiled := map[string]*fhirpath.Expr{}
	compile := func(t *testing.T, expr string) *fhirpath.Expr {
		if e, ok := compiled[expr]; ok {
			return e
		}
		e, err := fhirpath.Compile(expr)
		if err != nil {
			t.Errorf("Compile(%q): %v", expr, err)
		}
		compiled[expr] = e
		return e
	}
	count := 0
	for _, rt := range schema.ResourceTypes() {
		minimal := jsontree.NewObject()
		minimal.Set("resourceType", jsontree.NewString(rt))
		minimal.Set("id", jsontree.NewString("min"))
		full := generated(rt)
		for _, p := range searchparam.ForType(rt) {
			if p.Expression == "" {
				continue
			}
			e := compile(t, p.Expression)
			var comps []*fhirpath.Expr
			for _, c := range p.Components {
				comps = append(comps, compile(t, c.Expression))
			}
			if e == nil {
				continue
			}
			count++
			for _, root := range []*jsontree.Value{minimal, full} {
				res, err := e.Eval(root)
				if err != nil {
					t.Errorf("%s %s: Eval(%q) on %s: %v", rt, p.Code, p.Expression, root.GetString("id"), err)
					continue
				}
				if root == full {
					// On a resource with every element, every expression must find something, or
					// the evaluator has mistyped a step.
					found := len(res)
					if bare := wherePart.ReplaceAllString(p.Expression, ""); found == 0 && bare != p.Expression {
						r, err := compile(t, bare).Eval(root)
						if err != nil {
							t.Errorf("%s %s: Eval(%q): %v", rt, p.Code, bare, err)
						}
						found = len(r)
					}
					if found == 0 {
						t.Errorf("%s %s: %q found nothing on a resource with every element", rt, p.Code, p.Expression)
					}
				}
				for _, n := range res {
					if n.Type == "" || (n.Path == "" && !strings.HasPrefix(n.Type, "System.")) {
						t.Errorf("%s %s: %q gave an untyped node %+v", rt, p.Code, p.Expression, n)
					}
				}
				for i, ce := range comps {
					if ce == nil {
						continue
					}
					for _, f := range res {
						r, err := ce.EvalNode(root, f)
						if err != nil {
							t.Errorf("%s %s: component %q: %v", rt, p.Code, p.Components[i].Expression, err)
						}
						if root == full && len(r) == 0 {
							t.Errorf("%s %s: component %q found nothing in %s", rt, p.Code, p.Components[i].Expression, f.Type)
						}
					}
				}
			}
		}
	}
	if count < 1000 {
		t.Errorf("evaluated %d parameter expressions, want the R4 set", count)
	}
}
