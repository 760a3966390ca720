package search

import (
	"strings"
	"sync"
	"time"

	"github.com/iambilly/billy/fhir/fhirpath"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/searchparam"
)

// IndexVersion identifies the extraction rules. Change it whenever Extract would index a stored
// resource differently: start-up then rebuilds the index (store.EnsureIndex).
const IndexVersion = 3

// Index holds the search values extracted from one resource at write time, one slice per index
// table. Every value carries the ParamID of the parameter (or variant) it belongs to.
type Index struct {
	Tokens     []Token
	Strings    []String
	Dates      []Date
	Numbers    []Number
	Quantities []Quantity
	References []Reference
	Composites []Composite
}

// Token is a coded value: system ("" when none) and code.
type Token struct {
	Param  int32
	System string
	Code   string
}

// String is a string value (Norm folded for matching, Exact as written) or a URI (both exact).
type String struct {
	Param       int32
	Norm, Exact string
}

// Date is the half-open range [Lo, Hi) a date, period or timing covers. A zero Lo is open towards
// the past, a zero Hi towards the future.
type Date struct {
	Param  int32
	Lo, Hi time.Time
}

// Number is a numeric value or range, as decimal literals.
type Number struct {
	Param  int32
	Lo, Hi string
}

// Quantity is a quantity (or range) with its unit system, code and human unit.
type Quantity struct {
	Param              int32
	System, Code, Unit string
	Lo, Hi             string
}

// Reference is a reference target: a local resource (Type, ID), or an external/canonical URL
// (Type "" and ID the URL).
type Reference struct {
	Param    int32
	Type, ID string
}

// Composite is one value of a composite parameter, one part per component.
type Composite struct {
	Param int32
	Parts [3]Part
}

// Part is a component value: token-like (System, Code: token, string (normalised), reference
// ("Type/id" or URL)), numeric (Lo, Hi: number, quantity with System/Code) or a date (TLo, THi).
type Part struct {
	System, Code string
	Unit         string // a quantity's unit as written
	Lo, Hi       string
	TLo, THi     time.Time
}

// compiled is a parameter ready for extraction.
type compiled struct {
	p     *searchparam.Param
	id    int32
	expr  *fhirpath.Expr
	comps []compiledComp
}

type compiledComp struct {
	p    *searchparam.Param
	expr *fhirpath.Expr
}

var (
	compileMu      sync.Mutex
	compiledByType = map[string][]compiled{}
)

// paramsOf compiles the expressions of every supported parameter of typ once.
func paramsOf(typ string) []compiled {
	compileMu.Lock()
	defer compileMu.Unlock()
	if c, ok := compiledByType[typ]; ok {
		return c
	}
	var out []compiled
	for _, p := range searchparam.ForType(typ) {
		if p.Code == "_id" || p.Code == "_lastUpdated" || !IsSupported(typ, p.Code) {
			continue
		}
		c := compiled{p: p, id: IDOf(p, "")}
		expr := p.Expression
		if expr == "" {
			continue
		}
		c.expr = fhirpath.MustCompile(expr)
		ok := true
		for _, comp := range p.Components {
			cp, found := compParam(p, comp)
			if !found {
				ok = false
				break
			}
			c.comps = append(c.comps, compiledComp{p: cp, expr: fhirpath.MustCompile(comp.Expression)})
		}
		if ok && len(c.comps) <= 3 {
			out = append(out, c)
		}
	}
	compiledByType[typ] = out
	return out
}

// Extract computes the index values of a resource of type typ for every supported parameter.
// base is the server's FHIR base URL, so absolute references to it index as local ones.
func Extract(typ string, tree *jsontree.Value, base string) Index {
	var ix Index
	x := extractor{ix: &ix, base: base}
	for _, c := range paramsOf(typ) {
		nodes, err := c.expr.Eval(tree)
		if err != nil || len(nodes) == 0 {
			continue
		}
		if c.p.Type == searchparam.Composite {
			x.composite(tree, c, nodes)
			continue
		}
		for _, n := range nodes {
			x.node(c.p, c.id, n)
		}
	}
	ix.References = append(ix.References, Links(typ, tree, base).rows()...)
	ix.dedupe()
	return ix
}

type extractor struct {
	ix   *Index
	base string
}

// node indexes one result of a parameter's expression according to the parameter's type.
func (x *extractor) node(p *searchparam.Param, id int32, n fhirpath.Node) {
	switch p.Type {
	case searchparam.Token:
		x.token(p, id, n)
	case searchparam.String:
		x.strings(id, n)
	case searchparam.URI:
		if s := primitive(n); s != "" {
			x.ix.Strings = append(x.ix.Strings, String{Param: id, Norm: s, Exact: s})
		}
	case searchparam.Date:
		if lo, hi, ok := dateRange(n); ok {
			x.ix.Dates = append(x.ix.Dates, Date{Param: id, Lo: lo, Hi: hi})
		}
	case searchparam.Number:
		if lo, hi, ok := numberRange(n); ok {
			x.ix.Numbers = append(x.ix.Numbers, Number{Param: id, Lo: lo, Hi: hi})
		}
	case searchparam.Quantity:
		if q, ok := quantity(n); ok {
			q.Param = id
			x.ix.Quantities = append(x.ix.Quantities, q)
		}
	case searchparam.Reference:
		x.reference(p, id, n)
	}
}

// primitive returns the text of a primitive node (strings, codes, uris, booleans, numbers).
func primitive(n fhirpath.Node) string {
	if n.Value == nil {
		return ""
	}
	switch n.Value.Kind {
	case jsontree.String, jsontree.Bool, jsontree.Number:
		return n.Value.Str
	}
	return ""
}

func (x *extractor) token(p *searchparam.Param, id int32, n fhirpath.Node) {
	v := n.Value
	if v == nil {
		return
	}
	if v.Kind != jsontree.Object {
		if s := primitive(n); s != "" {
			x.ix.Tokens = append(x.ix.Tokens, Token{Param: id, Code: s})
		}
		return
	}
	text := func(s string) {
		if s != "" {
			x.ix.Strings = append(x.ix.Strings, String{Param: IDOf(p, "text"), Norm: Normalize(s), Exact: s})
		}
	}
	coding := func(c *jsontree.Value) {
		if code := c.GetString("code"); code != "" {
			x.ix.Tokens = append(x.ix.Tokens, Token{Param: id, System: c.GetString("system"), Code: code})
		}
		text(c.GetString("display"))
	}
	switch {
	case n.Is("CodeableConcept"):
		if cs := v.Get("coding"); cs != nil {
			for _, c := range cs.Items {
				if c.Kind == jsontree.Object {
					coding(c)
				}
			}
		}
		text(v.GetString("text"))
	case n.Is("Coding"):
		coding(v)
	case n.Is("Identifier"):
		val := v.GetString("value")
		if val == "" {
			return
		}
		x.ix.Tokens = append(x.ix.Tokens, Token{Param: id, System: v.GetString("system"), Code: val})
		if t := v.Get("type"); t != nil {
			if cs := t.Get("coding"); cs != nil {
				for _, c := range cs.Items {
					if code := c.GetString("code"); code != "" {
						x.ix.Tokens = append(x.ix.Tokens, Token{Param: IDOf(p, "of-type"), System: c.GetString("system"), Code: code + "|" + val})
					}
				}
			}
			text(t.GetString("text"))
		}
	case n.Is("ContactPoint"):
		if val := v.GetString("value"); val != "" {
			x.ix.Tokens = append(x.ix.Tokens, Token{Param: id, System: v.GetString("system"), Code: val})
		}
	case n.Is("Quantity"):
		if code := v.GetString("code"); code != "" {
			x.ix.Tokens = append(x.ix.Tokens, Token{Param: id, System: v.GetString("system"), Code: code})
		}
	}
}

// strings indexes a string parameter: a primitive, or every part of a HumanName or Address.
func (x *extractor) strings(id int32, n fhirpath.Node) {
	add := func(s string) {
		if s = strings.TrimSpace(s); s != "" {
			x.ix.Strings = append(x.ix.Strings, String{Param: id, Norm: Normalize(s), Exact: s})
		}
	}
	v := n.Value
	if v == nil {
		return
	}
	if v.Kind != jsontree.Object {
		add(primitive(n))
		return
	}
	var fields []string
	switch {
	case n.Is("HumanName"):
		fields = []string{"text", "family", "given", "prefix", "suffix"}
	case n.Is("Address"):
		fields = []string{"text", "line", "city", "district", "state", "postalCode", "country"}
	default:
		return
	}
	for _, f := range fields {
		m := v.Get(f)
		if m == nil {
			continue
		}
		if m.Kind == jsontree.Array {
			for _, it := range m.Items {
				if it.Kind == jsontree.String {
					add(it.Str)
				}
			}
		} else if m.Kind == jsontree.String {
			add(m.Str)
		}
	}
}

// dateRange gives the range a date, dateTime, instant, Period or Timing covers.
func dateRange(n fhirpath.Node) (lo, hi time.Time, ok bool) {
	v := n.Value
	if v == nil {
		return lo, hi, false
	}
	if v.Kind == jsontree.String {
		return ParseDateRange(v.Str)
	}
	if v.Kind != jsontree.Object {
		return lo, hi, false
	}
	switch {
	case n.Is("Period"):
		if s := v.GetString("start"); s != "" {
			if l, _, ok := ParseDateRange(s); ok {
				lo = l
			}
		}
		if e := v.GetString("end"); e != "" {
			if _, h, ok := ParseDateRange(e); ok {
				hi = h
			}
		}
		return lo, hi, !lo.IsZero() || !hi.IsZero()
	case n.Is("Timing"):
		// The span of its events, or of its repeat bounds.
		found := false
		if ev := v.Get("event"); ev != nil {
			for _, e := range ev.Items {
				if e.Kind != jsontree.String {
					continue
				}
				l, h, ok := ParseDateRange(e.Str)
				if !ok {
					continue
				}
				if !found || l.Before(lo) {
					lo = l
				}
				if !found || h.After(hi) {
					hi = h
				}
				found = true
			}
		}
		if b := v.Get("repeat").Get("boundsPeriod"); b != nil {
			if s := b.GetString("start"); s != "" {
				if l, _, ok := ParseDateRange(s); ok && (!found || l.Before(lo)) {
					lo, found = l, true
				}
			}
			if e := b.GetString("end"); e != "" {
				if _, h, ok := ParseDateRange(e); ok && (!found || h.After(hi)) {
					hi, found = h, true
				}
			}
		}
		return lo, hi, found
	}
	return lo, hi, false
}

// numberRange indexes a number as the point it is (search.html compares the search value's
// precision range against the value).
func numberRange(n fhirpath.Node) (string, string, bool) {
	s := primitive(n)
	if s == "" || !decimalRE.MatchString(s) {
		return "", "", false
	}
	return s, s, true
}

func quantity(n fhirpath.Node) (Quantity, bool) {
	v := n.Value
	if v == nil || v.Kind != jsontree.Object {
		return Quantity{}, false
	}
	if n.Is("Range") {
		low, high := v.Get("low"), v.Get("high")
		q := Quantity{Lo: "-1e300", Hi: "1e300"}
		if low != nil && low.Get("value") != nil {
			q.Lo = low.Get("value").Str
			q.System, q.Code, q.Unit = low.GetString("system"), low.GetString("code"), low.GetString("unit")
		}
		if high != nil && high.Get("value") != nil {
			q.Hi = high.Get("value").Str
			if q.Code == "" {
				q.System, q.Code, q.Unit = high.GetString("system"), high.GetString("code"), high.GetString("unit")
			}
		}
		return q, low != nil || high != nil
	}
	val := v.Get("value")
	if val == nil || val.Kind != jsontree.Number {
		return Quantity{}, false
	}
	q := Quantity{System: v.GetString("system"), Code: v.GetString("code"), Unit: v.GetString("unit"), Lo: val.Str, Hi: val.Str}
	if n.Is("Money") {
		q.Code = v.GetString("currency")
		q.System = "urn:iso:std:iso:4217"
	}
	return q, true
}

func (x *extractor) reference(p *searchparam.Param, id int32, n fhirpath.Node) {
	v := n.Value
	if v == nil {
		return
	}
	if v.Kind == jsontree.String { // canonical or uri
		if s := v.Str; s != "" {
			x.ix.References = append(x.ix.References, Reference{Param: id, ID: s})
		}
		return
	}
	if v.Kind != jsontree.Object {
		return
	}
	if idf := v.Get("identifier"); idf != nil {
		if val := idf.GetString("value"); val != "" {
			x.ix.Tokens = append(x.ix.Tokens, Token{Param: IDOf(p, "identifier"), System: idf.GetString("system"), Code: val})
		}
	}
	if r, ok := x.target(v.GetString("reference")); ok {
		r.Param = id
		x.ix.References = append(x.ix.References, r)
	}
}

// target reads a literal reference: "Type/id" (history suffix dropped), an absolute URL (local
// when it is on this server's base), a URN; contained ("#id") references are not indexed.
func (x *extractor) target(ref string) (Reference, bool) {
	if ref == "" || strings.HasPrefix(ref, "#") {
		return Reference{}, false
	}
	if x.base != "" && strings.HasPrefix(ref, x.base+"/") {
		ref = strings.TrimPrefix(ref, x.base+"/")
	}
	if typ, id, ok := resource.ParseReference(ref); ok {
		return Reference{Type: typ, ID: id}, true
	}
	return Reference{ID: ref}, true
}

// composite indexes each result of a composite's expression as one row: its components evaluated
// on that result (the cartesian product when a component has several values).
func (x *extractor) composite(root *jsontree.Value, c compiled, nodes []fhirpath.Node) {
	for _, n := range nodes {
		rows := [][]Part{{}}
		for _, comp := range c.comps {
			vals, err := comp.expr.EvalNode(root, n)
			if err != nil || len(vals) == 0 {
				rows = nil
				break
			}
			var parts []Part
			for _, v := range vals {
				parts = append(parts, x.part(comp.p, v)...)
			}
			var next [][]Part
			for _, r := range rows {
				for _, pt := range parts {
					next = append(next, append(append([]Part(nil), r...), pt))
				}
			}
			rows = next
		}
		for _, r := range rows {
			var cv Composite
			cv.Param = c.id
			copy(cv.Parts[:], r)
			x.ix.Composites = append(x.ix.Composites, cv)
		}
	}
}

// part turns one component value into its parts (a CodeableConcept gives one per coding).
func (x *extractor) part(p *searchparam.Param, n fhirpath.Node) []Part {
	var sub Index
	sx := extractor{ix: &sub, base: x.base}
	sx.node(p, 0, n)
	var out []Part
	for _, t := range sub.Tokens {
		if t.Param == 0 {
			out = append(out, Part{System: t.System, Code: t.Code})
		}
	}
	for _, s := range sub.Strings {
		if s.Param == 0 {
			out = append(out, Part{Code: s.Norm})
		}
	}
	for _, r := range sub.References {
		out = append(out, Part{Code: refKey(r)})
	}
	for _, q := range sub.Quantities {
		out = append(out, Part{System: q.System, Code: q.Code, Unit: q.Unit, Lo: q.Lo, Hi: q.Hi})
	}
	for _, nm := range sub.Numbers {
		out = append(out, Part{Lo: nm.Lo, Hi: nm.Hi})
	}
	for _, d := range sub.Dates {
		out = append(out, Part{TLo: d.Lo, THi: d.Hi})
	}
	return out
}

// refKey is the composite key of a reference: "Type/id" or the URL.
func refKey(r Reference) string {
	if r.Type != "" {
		return r.Type + "/" + r.ID
	}
	return r.ID
}

// dedupe removes repeated values: the same coding reached by two branches of a union, the same
// reference by subject and patient are different params but the same param twice is one row.
func (ix *Index) dedupe() {
	ix.Tokens = dedupeSlice(ix.Tokens)
	ix.Strings = dedupeSlice(ix.Strings)
	ix.Dates = dedupeSlice(ix.Dates)
	ix.Numbers = dedupeSlice(ix.Numbers)
	ix.Quantities = dedupeSlice(ix.Quantities)
	ix.References = dedupeSlice(ix.References)
	ix.Composites = dedupeSlice(ix.Composites)
}

func dedupeSlice[T comparable](s []T) []T {
	if len(s) < 2 {
		return s
	}
	seen := make(map[T]struct{}, len(s))
	out := s[:0]
	for _, v := range s {
		if _, dup := seen[v]; !dup {
			seen[v] = struct{}{}
			out = append(out, v)
		}
	}
	return out
}
