// Package search turns FHIR search parameters into typed criteria, and resources into the index
// values those criteria are matched against.
//
// It owns the search semantics of search.html: value syntax and escaping, prefixes, modifiers, date
// precision ranges, which parameters exist for a type (from the generated fhir/searchparam registry),
// and value extraction at write time. It does not write SQL: fhir/store turns a Query into SQL
// through its one builder, so no value ever reaches SQL unparameterised.
//
// Supported so far: _id, _lastUpdated and token parameters whose expression is a plain path (such as
// identifier), which is what conditional create/update/delete need. Anything else is reported as
// unsupported: ignored in lenient mode and listed in Query.Ignored, an error in strict mode.
package search

import (
	"hash/fnv"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/searchparam"
)

// Prefix is a comparison prefix of a date, number or quantity value.
type Prefix string

// The prefixes of search.html#prefix.
const (
	EQ Prefix = "eq"
	NE Prefix = "ne"
	GT Prefix = "gt"
	LT Prefix = "lt"
	GE Prefix = "ge"
	LE Prefix = "le"
	SA Prefix = "sa"
	EB Prefix = "eb"
	AP Prefix = "ap"
)

// Query is a parsed search against one resource type: every clause must match (AND).
type Query struct {
	Type    string
	Clauses []*Clause
	// Ignored lists parameters that were not understood and were ignored (lenient mode only).
	Ignored []string
}

// Clause is one parameter occurrence: any of its values may match (OR).
type Clause struct {
	Code     string
	Kind     searchparam.Type
	ParamID  int32 // index key of Type.Code; see ParamID
	Modifier string
	Values   []Value
	// Special marks the parameters that are not index lookups: "_id" and "_lastUpdated".
	Special string
}

// Value is one value of a clause, parsed according to the parameter's type.
type Value struct {
	Raw    string
	Prefix Prefix
	// Token: System is meaningful when HasSystem ("sys|code" or "|code", the latter with System "").
	System    string
	HasSystem bool
	Code      string
	// Date: the half-open range [Lo, Hi) the value's precision implies.
	Lo, Hi time.Time
}

// Options tune parsing.
type Options struct {
	// Strict makes an unknown or unsupported parameter an error (Prefer: handling=strict, and always
	// for the conditions of conditional interactions, where ignoring one would widen the match).
	Strict bool
}

// resultParams control the result set, not the match; they are accepted and ignored here.
var resultParams = map[string]bool{
	"_count": true, "_sort": true, "_include": true, "_revinclude": true, "_summary": true,
	"_total": true, "_elements": true, "_contained": true, "_containedType": true, "_format": true,
	"_pretty": true, "_page": true,
}

// Parse parses the query parameters of a search on typ.
func Parse(typ string, params url.Values, opt Options) (*Query, error) {
	q := &Query{Type: typ}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names) // deterministic clause order and error reporting
	for _, name := range names {
		code, modifier, _ := strings.Cut(name, ":")
		if resultParams[code] {
			if opt.Strict && code != "_format" && code != "_pretty" {
				return nil, unsupported(name, "result parameter %s is not supported here", code)
			}
			continue
		}
		for _, raw := range params[name] {
			c, err := parseClause(typ, code, modifier, raw)
			if err != nil {
				if fe, ok := fhir.AsError(err); ok && errorsIsUnsupported(fe) && !opt.Strict {
					q.Ignored = append(q.Ignored, name)
					break
				}
				return nil, err
			}
			q.Clauses = append(q.Clauses, c)
		}
	}
	return q, nil
}

// errUnsupported marks errors that lenient mode turns into an ignored parameter.
const codeNotSupported = "not-supported"

func errorsIsUnsupported(e *fhir.Error) bool {
	return len(e.Issues) == 1 && e.Issues[0].Code == codeNotSupported
}

func unsupported(name, format string, args ...any) error {
	return fhir.Errorf(fhir.ErrInvalid, codeNotSupported, format, args...).At(name)
}

func bad(name, format string, args ...any) error {
	return fhir.Errorf(fhir.ErrInvalid, "value", format, args...).At(name)
}

func parseClause(typ, code, modifier, raw string) (*Clause, error) {
	name := code
	if modifier != "" {
		name += ":" + modifier
	}
	c := &Clause{Code: code, Modifier: modifier}
	switch code {
	case "_id":
		c.Special, c.Kind = "_id", searchparam.Token
		if modifier != "" {
			return nil, bad(name, "modifier :%s is not supported on _id", modifier)
		}
		for _, v := range splitValues(raw) {
			c.Values = append(c.Values, Value{Raw: v, Code: v})
		}
		return c, nil
	case "_lastUpdated":
		c.Special, c.Kind = "_lastUpdated", searchparam.Date
		if modifier != "" {
			return nil, bad(name, "modifier :%s is not supported on _lastUpdated", modifier)
		}
		for _, v := range splitValues(raw) {
			dv, err := parseDateValue(name, v)
			if err != nil {
				return nil, err
			}
			c.Values = append(c.Values, dv)
		}
		return c, nil
	}
	p, ok := searchparam.Lookup(typ, code)
	if !ok {
		return nil, unsupported(name, "%s has no search parameter %q", typ, code)
	}
	c.Kind = p.Type
	if p.Type != searchparam.Token || !plainPath(p.Expression) {
		return nil, unsupported(name, "search parameter %s is not supported yet", code)
	}
	if modifier != "" {
		return nil, unsupported(name, "modifier :%s is not supported yet", modifier)
	}
	c.ParamID = ParamID(typ, code)
	for _, v := range splitValues(raw) {
		c.Values = append(c.Values, parseToken(v))
	}
	if len(c.Values) == 0 {
		return nil, bad(name, "parameter %s has no value", name)
	}
	return c, nil
}

// splitValues splits a parameter value on unescaped commas and removes the escapes of search.html
// (\, \$ \| \\) from each part... except the \| of tokens, which parseToken needs to see; it is kept
// escaped here and resolved there.
func splitValues(raw string) []string {
	var out []string
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '\\' && i+1 < len(raw) {
			n := raw[i+1]
			if n == '|' {
				b.WriteString(`\|`)
			} else {
				b.WriteByte(n)
			}
			i++
			continue
		}
		if c == ',' {
			out = append(out, b.String())
			b.Reset()
			continue
		}
		b.WriteByte(c)
	}
	out = append(out, b.String())
	return out
}

// parseToken reads [system]|[code], code, |code or system|.
func parseToken(v string) Value {
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' {
			i++
			continue
		}
		if v[i] == '|' {
			return Value{Raw: v, HasSystem: true, System: unescapePipe(v[:i]), Code: unescapePipe(v[i+1:])}
		}
	}
	return Value{Raw: v, Code: unescapePipe(v)}
}

func unescapePipe(s string) string { return strings.ReplaceAll(s, `\|`, `|`) }

// plainPath reports whether expr is "Type.a.b", the expressions Extract can evaluate today.
func plainPath(expr string) bool {
	if expr == "" || strings.ContainsAny(expr, "|()[] ") {
		return false
	}
	return strings.Count(expr, ".") >= 1
}

// ParamID is the index key of search parameter code on resource type typ: the FNV-1a hash of
// "Type.code". One integer column then serves every parameter of every type in the index tables.
func ParamID(typ, code string) int32 {
	h := fnv.New32a()
	h.Write([]byte(typ))
	h.Write([]byte{'.'})
	h.Write([]byte(code))
	return int32(h.Sum32())
}

// IsSupported reports whether a search on typ by parameter code is served.
func IsSupported(typ, code string) bool {
	switch code {
	case "_id", "_lastUpdated":
		return true
	}
	p, ok := searchparam.Lookup(typ, code)
	return ok && p.Type == searchparam.Token && plainPath(p.Expression)
}
