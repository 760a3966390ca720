package search

import (
	"strings"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/searchparam"
)

// Token is one token index value of a resource.
type Token struct {
	Param  int32
	System string // "" when the value has no system
	Code   string
}

// Index holds the search values extracted from one resource at write time.
type Index struct {
	Tokens []Token
}

// Extract computes the index values of a resource of type typ for every supported parameter.
func Extract(typ string, tree *jsontree.Value) Index {
	var ix Index
	for _, p := range searchparam.ForType(typ) {
		if p.Type != searchparam.Token || !plainPath(p.Expression) || strings.HasPrefix(p.Code, "_") {
			continue
		}
		id := ParamID(typ, p.Code)
		for _, v := range evalPath(tree, p.Expression) {
			ix.Tokens = appendTokens(ix.Tokens, id, v)
		}
	}
	return ix
}

// evalPath follows "Type.a.b" from the resource root, flattening arrays as FHIRPath does.
func evalPath(root *jsontree.Value, expr string) []*jsontree.Value {
	steps := strings.Split(expr, ".")[1:]
	cur := []*jsontree.Value{root}
	for _, s := range steps {
		var next []*jsontree.Value
		for _, v := range cur {
			c := v.Get(s)
			if c == nil {
				continue
			}
			if c.Kind == jsontree.Array {
				for _, it := range c.Items {
					if it.Kind != jsontree.Null {
						next = append(next, it)
					}
				}
			} else {
				next = append(next, c)
			}
		}
		cur = next
	}
	return cur
}

// appendTokens adds the tokens of one value: Identifier (system|value), CodeableConcept (its
// codings), Coding (system|code), ContactPoint (value) or a primitive code, string, boolean or id.
func appendTokens(out []Token, param int32, v *jsontree.Value) []Token {
	switch v.Kind {
	case jsontree.String, jsontree.Bool:
		return append(out, Token{Param: param, Code: v.Str})
	case jsontree.Object:
	default:
		return out
	}
	if coding := v.Get("coding"); coding != nil && coding.Kind == jsontree.Array {
		for _, c := range coding.Items {
			out = appendTokens(out, param, c)
		}
		return out
	}
	if code := v.GetString("code"); code != "" {
		return append(out, Token{Param: param, System: v.GetString("system"), Code: code})
	}
	if val := v.GetString("value"); val != "" {
		return append(out, Token{Param: param, System: v.GetString("system"), Code: val})
	}
	return out
}
