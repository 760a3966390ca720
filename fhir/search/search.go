// Package search turns FHIR search parameters into typed criteria, and resources into the index
// values those criteria are matched against.
//
// It owns the search semantics of search.html: which parameters exist for a type (the generated
// fhir/searchparam registry), value syntax and escaping, prefixes, modifiers, date and number
// precision ranges, chains and reverse chains, result parameters (_count, _sort, _include,
// _revinclude, _summary, _elements, _total), value extraction at write time by evaluating each
// parameter's FHIRPath expression (fhir/fhirpath), and each resource's ties to patients (reach.go):
// the one rule that decides what a patient-scoped principal reaches. It does not write SQL: fhir/store turns a Query
// into SQL through its one builder, so no value ever reaches SQL unparameterised.
//
// Not supported (reported as such, ignored in lenient mode, 400 in strict mode): _text, _content,
// _list, _query, _filter, _contained, near (Location), and the terminology modifiers :above,
// :below, :in and :not-in on tokens. Quantities are compared in the unit they were written in (no
// UCUM conversion).
package search

import (
	"hash/fnv"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/resource"
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

// Query is a parsed search against one resource type (or several, for system search: then only
// parameters common to all resources may be used).
type Query struct {
	Types   []string // one type, or several for a system search with _type
	Clauses []*Clause
	// Ignored lists parameters that were not understood and were ignored (lenient mode only), with
	// the reason.
	Ignored []Ignored
	// Result control.
	Count      int // page size; 0 with CountGiven means only the total
	CountGiven bool
	Sort       []SortKey
	Include    []Include
	RevInclude []Include
	Summary    string   // "", "true", "text", "data", "count", "false"
	Elements   []string // _elements
	Total      string   // "", "none", "estimate", "accurate"
	Page       string   // opaque cursor of the requested page
	// Compartment, when set, restricts matches to that compartment.
	Compartment *Compartment
	// Reach, when set, restricts matches and what chains and _has look through to what the
	// principal may read (set by the API from the principal's policy, never from parameters).
	Reach *Reach
}

// Compartment is a compartment search's restriction: resources that refer to Owner through one of
// the compartment's reference parameters (ParamIDs), and Owner itself.
type Compartment struct {
	OwnerType, OwnerID string
	ParamIDs           []int32
}

// Type is the single resource type of a type-level search ("" for a multi-type system search).
func (q *Query) Type() string {
	if len(q.Types) == 1 {
		return q.Types[0]
	}
	return ""
}

// Ignored is a parameter left out of a lenient search.
type Ignored struct {
	Name   string
	Reason string
}

// Clause is one parameter occurrence: any of its values may match (OR). Clauses of a query are
// ANDed.
type Clause struct {
	Name     string // as given, with modifier ("subject:Patient.name")
	Code     string
	Param    *searchparam.Param // nil for _id and _lastUpdated
	Kind     searchparam.Type
	ParamID  int32 // index key; see ParamID
	Modifier string
	Values   []Value
	// Chain is the rest of a chained parameter ("subject:Patient.name=x" gives a reference clause
	// whose Chain searches Patient by name), one clause per type it may go through (each parsed for
	// that type: "encounter.date" means Encounter.period on an Encounter and EpisodeOfCare.period on
	// an EpisodeOfCare); TargetTypes are those types, in the same order.
	Chain       []*Clause
	TargetTypes []string
	// Has is a reverse chain: _has:Observation:patient:code=x; HasParam is the reference parameter
	// of HasType pointing back at the searched resource.
	Has      *Clause
	HasType  string
	HasParam *searchparam.Param
	// Missing is set for :missing=true (true) or :missing=false (false).
	Missing *bool
	// Special marks the parameters that are columns, not index lookups: "_id", "_lastUpdated".
	Special string
}

// Value is one value of a clause, parsed according to the parameter's type.
type Value struct {
	Raw    string
	Prefix Prefix
	// Token: System is meaningful when HasSystem ("sys|code" or "|code", the latter with System "").
	// For :of-type, System|Code is the identifier type and Code ends with "|value".
	System    string
	HasSystem bool
	Code      string
	// String and :text: the normalised text (Norm) and the text as given.
	Norm string
	// Date: the half-open range [Lo, Hi) the value's precision implies.
	Lo, Hi time.Time
	// Number and quantity: the value, and [NumLo, NumHi) its precision implies. Unit is a
	// quantity's code (matched against code or unit).
	Num, NumLo, NumHi string
	Unit              string
	// Reference: the target type ("" = any of the parameter's targets) and id, or a URL for an
	// external or canonical reference.
	RefType, RefID, URL string
	// Composite: one value per component.
	Components []Value
}

// Options tune parsing.
type Options struct {
	// Strict makes an unknown or unsupported parameter an error (Prefer: handling=strict, and always
	// for the conditions of conditional interactions, where ignoring one would widen the match).
	Strict bool
	// Base is the server's FHIR base URL: absolute references to it are local.
	Base string
	// MaxClauses bounds the conditions of one search: every parameter occurrence, every level of a
	// chain or _has (once per type it goes through), every _sort key, _include and _revinclude.
	// 0 means DefaultMaxClauses.
	MaxClauses int
	// MaxValues bounds the values of one search, counted across all its parameters (a chain's
	// values once per type it goes through). 0 means DefaultMaxValues.
	MaxValues int

	// spent counts what this Parse has used of MaxClauses and MaxValues.
	spent *spent
}

// spent is what a search has used of its bounds so far.
type spent struct{ clauses, values int }

// spend charges clauses and values to the search's bounds: each ANDed condition is a join that
// PostgreSQL plans (planning time grows faster than linearly: 200 repeats of one parameter took
// 11 s, 10,000 exhausted its stack), each value an OR inside one. Beyond either bound the search is
// too costly, and nothing more is parsed.
func (o Options) spend(name string, clauses, values int) error {
	o.spent.clauses += clauses
	o.spent.values += values
	if o.spent.clauses > o.MaxClauses {
		return fhir.Errorf(fhir.ErrTooCostly, "too-costly",
			"the search has more than %d conditions (each parameter, chain or _has level, _sort key and include counts); narrow it or split it into several searches", o.MaxClauses).At(Printable(name))
	}
	if o.spent.values > o.MaxValues {
		return fhir.Errorf(fhir.ErrTooCostly, "too-costly",
			"the search has more than %d values across its parameters; narrow it or split it into several searches", o.MaxValues).At(Printable(name))
	}
	return nil
}

// Page sizes.
const (
	DefaultCount = 20
	MaxCount     = 1000
)

// The default bounds of one search (Options.MaxClauses, Options.MaxValues).
const (
	DefaultMaxClauses = 100
	DefaultMaxValues  = 1000
)

// MaxChainDepth bounds the nesting of chains and _has: a condition may reach through at most this
// many references (each level is a join, repeated for every type a reference may point at).
const MaxChainDepth = 4

// unsupportedParams are defined by R4 but not served.
var unsupportedParams = map[string]string{
	"_text": "full-text search is not supported", "_content": "full-text search is not supported",
	"_list": "_list is not supported", "_query": "named queries are not supported", "_filter": "_filter is not supported",
	"_contained": "_contained is not supported", "_containedType": "_containedType is not supported",
	"near": "geographic search is not supported",
}

// Parse parses the query parameters of a search on types (one type for a type search; one or
// more for a system search). Parameters that CheckQuery refuses are refused here too.
func Parse(types []string, params url.Values, opt Options) (*Query, error) {
	if err := CheckQuery(params); err != nil {
		return nil, err
	}
	if opt.MaxClauses <= 0 {
		opt.MaxClauses = DefaultMaxClauses
	}
	if opt.MaxValues <= 0 {
		opt.MaxValues = DefaultMaxValues
	}
	opt.spent = &spent{}
	q := &Query{Types: types, Count: DefaultCount}
	names := sortedNames(params)
	for _, name := range names {
		for _, raw := range params[name] {
			handled, err := q.resultParam(name, raw, opt)
			if err != nil {
				return nil, err
			}
			if handled {
				continue
			}
			c, err := parseClause(types, name, raw, opt, 0)
			if err != nil {
				if fe, ok := fhir.AsError(err); ok && isUnsupported(fe) && !opt.Strict {
					q.Ignored = append(q.Ignored, Ignored{Name: name, Reason: fe.Issues[0].Diagnostics})
					break
				}
				return nil, atParam(err, name)
			}
			q.Clauses = append(q.Clauses, c)
		}
	}
	return q, nil
}

// atParam points the issues of a clause's error at the parameter as the client wrote it: an error
// found deep in a chain or _has would otherwise name only the part it was found in.
func atParam(err error, name string) error {
	if fe, ok := fhir.AsError(err); ok {
		for i := range fe.Issues {
			fe.Issues[i].Expression = []string{Printable(name)}
		}
	}
	return err
}

func sortedNames(params url.Values) []string {
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names) // deterministic clause order and error reporting
	return names
}

// CheckQuery refuses what no parameter name or value may hold, whatever the parameter (known,
// unknown, ignored, or read by history and $everything rather than by Parse): a NUL byte, which
// PostgreSQL text cannot hold, and invalid UTF-8 (after percent-decoding). The HTTP edge runs it
// on every query string; Parse runs it on the parameters it is given.
func CheckQuery(params url.Values) error {
	for _, name := range sortedNames(params) {
		if why := badText(name); why != "" {
			return fhir.Invalid("value", Printable(name), "a parameter name holds %s", why)
		}
		for _, v := range params[name] {
			if why := badText(v); why != "" {
				return fhir.Invalid("value", name, "the value of parameter %s holds %s", name, why)
			}
		}
	}
	return nil
}

// badText says what makes s unusable as search text, or "".
func badText(s string) string {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		return "a NUL byte (%00)"
	case !utf8.ValidString(s):
		return "bytes that are not UTF-8"
	}
	return ""
}

// Printable is s with NUL bytes and invalid UTF-8 replaced by U+FFFD, for echoing a client's
// parameter name in an OperationOutcome.
func Printable(s string) string {
	if badText(s) == "" {
		return s
	}
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
}

// codeNotSupported marks errors that lenient mode turns into an ignored parameter.
const codeNotSupported = "not-supported"

func isUnsupported(e *fhir.Error) bool {
	return len(e.Issues) == 1 && e.Issues[0].Code == codeNotSupported
}

func unsupported(name, format string, args ...any) error {
	return fhir.Errorf(fhir.ErrInvalid, codeNotSupported, format, args...).At(name)
}

func bad(name, format string, args ...any) error {
	return fhir.Errorf(fhir.ErrInvalid, "value", format, args...).At(name)
}

// resultParam handles the parameters that shape the result rather than the match.
func (q *Query) resultParam(name, raw string, opt Options) (bool, error) {
	code, mod, _ := strings.Cut(name, ":")
	switch code {
	case "_format", "_pretty":
		return true, nil
	case "_count":
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 {
			return true, bad(name, "_count=%q is not a non-negative integer", raw)
		}
		q.Count, q.CountGiven = min(n, MaxCount), true
		return true, nil
	case "_page":
		q.Page = raw
		return true, nil
	case "_total":
		switch raw {
		case "none", "estimate", "accurate":
			q.Total = raw
			return true, nil
		}
		return true, bad(name, "_total=%q: want none, estimate or accurate", raw)
	case "_summary":
		switch raw {
		case "true", "text", "data", "count", "false":
			q.Summary = raw
			return true, nil
		}
		return true, bad(name, "_summary=%q: want true, text, data, count or false", raw)
	case "_elements":
		for _, e := range strings.Split(raw, ",") {
			if e = strings.TrimSpace(e); e != "" {
				q.Elements = append(q.Elements, e)
			}
		}
		return true, nil
	case "_sort":
		keys, err := parseSort(q.Types, raw)
		if err != nil {
			return true, err
		}
		if err := opt.spend(name, len(keys), 0); err != nil {
			return true, err
		}
		q.Sort = append(q.Sort, keys...)
		return true, nil
	case "_include", "_revinclude":
		inc, err := parseInclude(q.Types, name, mod, raw, code == "_revinclude")
		if err != nil {
			if fe, ok := fhir.AsError(err); ok && isUnsupported(fe) && !opt.Strict {
				q.Ignored = append(q.Ignored, Ignored{Name: name, Reason: fe.Issues[0].Diagnostics})
				return true, nil
			}
			return true, err
		}
		if err := opt.spend(name, 1, 0); err != nil {
			return true, err
		}
		if code == "_include" {
			q.Include = append(q.Include, inc)
		} else {
			q.RevInclude = append(q.RevInclude, inc)
		}
		return true, nil
	case "_type":
		return true, nil // the caller turned _type into Types
	}
	return false, nil
}

// lookup finds parameter code on all of types: for several types it must be one common to all
// resources (same Base), since one index key then serves them all.
func lookup(types []string, code string) (*searchparam.Param, bool) {
	var found *searchparam.Param
	for _, t := range types {
		p, ok := searchparam.Lookup(t, code)
		if !ok {
			return nil, false
		}
		if found != nil && (p.Base != found.Base || p.Expression != found.Expression) {
			return nil, false
		}
		found = p
	}
	return found, found != nil
}

// ParamID is the index key of a parameter: the FNV-1a hash of "Base.code" (Base being the resource
// type, or Resource/DomainResource for the common parameters, which thereby share one key across
// types). Variants ("identifier:of-type", "code:text") hash their suffix too. One integer column
// then serves every parameter of every type in the index tables.
func ParamID(base, code string) int32 {
	h := fnv.New32a()
	h.Write([]byte(base))
	h.Write([]byte{'.'})
	h.Write([]byte(code))
	return int32(h.Sum32())
}

// IDOf is the index key of a parameter as it applies to p.Base.
func IDOf(p *searchparam.Param, variant string) int32 {
	code := p.Code
	if variant != "" {
		code += ":" + variant
	}
	return ParamID(p.Base, code)
}

// modifiersOf lists the modifiers Billy serves per parameter type.
var modifiersOf = map[searchparam.Type][]string{
	searchparam.String:    {"missing", "exact", "contains"},
	searchparam.Token:     {"missing", "not", "text", "of-type"},
	searchparam.Reference: {"missing", "identifier", "<type>"},
	searchparam.Date:      {"missing"},
	searchparam.Number:    {"missing"},
	searchparam.Quantity:  {"missing"},
	searchparam.URI:       {"missing", "below", "above"},
	searchparam.Composite: {"missing"},
}

// Modifiers lists the modifiers served for a parameter type ("<type>" stands for a resource type
// on references).
func Modifiers(t searchparam.Type) []string { return modifiersOf[t] }

// knownModifiers are all R4 modifiers; one outside this set is malformed (400 even when lenient).
var knownModifiers = map[string]bool{
	"missing": true, "exact": true, "contains": true, "not": true, "text": true, "in": true, "not-in": true,
	"below": true, "above": true, "type": true, "identifier": true, "of-type": true,
}

func parseClause(types []string, name, raw string, opt Options, depth int) (*Clause, error) {
	if depth > MaxChainDepth {
		return nil, bad(name, "chains and _has may nest at most %d levels", MaxChainDepth)
	}
	if err := opt.spend(name, 1, 0); err != nil {
		return nil, err
	}
	if strings.HasPrefix(name, "_has:") {
		return parseHas(types, name, raw, opt, depth)
	}
	head, chain, chained := strings.Cut(name, ".")
	code, modifier, _ := strings.Cut(head, ":")
	if why, ok := unsupportedParams[code]; ok {
		return nil, unsupported(name, "%s", why)
	}
	c := &Clause{Name: name, Code: code, Modifier: modifier}
	switch code {
	case "_id":
		c.Special, c.Kind = "_id", searchparam.Token
		if modifier != "" && modifier != "missing" && modifier != "not" {
			return nil, bad(name, "modifier :%s is not supported on _id", modifier)
		}
		if chained {
			return nil, bad(name, "_id cannot be chained")
		}
		return c, c.parseValues(raw, opt)
	case "_lastUpdated":
		c.Special, c.Kind = "_lastUpdated", searchparam.Date
		if modifier != "" {
			return nil, bad(name, "modifier :%s is not supported on _lastUpdated", modifier)
		}
		return c, c.parseValues(raw, opt)
	}
	p, ok := lookup(types, code)
	if !ok {
		if len(types) > 1 {
			return nil, unsupported(name, "%q is not a search parameter common to %s", code, strings.Join(types, ", "))
		}
		return nil, unsupported(name, "%s has no search parameter %q", strings.Join(types, ","), code)
	}
	c.Param, c.Kind = p, p.Type
	if p.Type == searchparam.Special {
		return nil, unsupported(name, "search parameter %s is not supported", code)
	}
	if p.Expression == "" && p.Type != searchparam.Composite {
		return nil, unsupported(name, "search parameter %s has no expression to evaluate", code)
	}
	c.ParamID = IDOf(p, "")
	// Reference modifiers may name a target type.
	if modifier != "" && p.Type == searchparam.Reference && resource.IsType(modifier) {
		if !contains(p.Targets, modifier) && !contains(p.Targets, "Resource") {
			return nil, bad(name, "%s cannot refer to a %s (targets: %s)", code, modifier, strings.Join(p.Targets, ", "))
		}
		c.TargetTypes = []string{modifier}
		c.Modifier = ""
	} else if modifier != "" {
		if !knownModifiers[modifier] && !resource.IsType(modifier) {
			return nil, bad(name, "unknown modifier :%s", modifier)
		}
		if !contains(modifiersOf[p.Type], modifier) {
			return nil, bad(name, "modifier :%s is not supported on %s parameter %s", modifier, p.Type, code)
		}
	}
	if chained {
		if p.Type != searchparam.Reference {
			return nil, bad(name, "%s is not a reference parameter and cannot be chained", code)
		}
		if c.Modifier != "" {
			return nil, bad(name, "a chained parameter takes only a type modifier")
		}
		targets := c.TargetTypes
		if len(targets) == 0 {
			targets = p.Targets
		}
		nextCode, _, _ := strings.Cut(strings.SplitN(chain, ".", 2)[0], ":")
		var through []string
		for _, t := range targets {
			if t == "Resource" {
				continue
			}
			if _, ok := lookup([]string{t}, nextCode); ok || nextCode == "_id" || nextCode == "_lastUpdated" {
				through = append(through, t)
			}
		}
		if len(through) == 0 {
			return nil, unsupported(name, "no target of %s has a search parameter %q", code, nextCode)
		}
		c.TargetTypes = through
		for _, t := range through {
			sub, err := parseClause([]string{t}, chain, raw, opt, depth+1)
			if err != nil {
				return nil, err
			}
			c.Chain = append(c.Chain, sub)
		}
		return c, nil
	}
	if modifier == "missing" {
		switch raw {
		case "true", "false":
			v := raw == "true"
			c.Missing = &v
			return c, nil
		}
		return nil, bad(name, ":missing takes true or false, not %q", raw)
	}
	return c, c.parseValues(raw, opt)
}

// parseHas reads _has:Type:param:rest (rest may be another _has).
func parseHas(types []string, name, raw string, opt Options, depth int) (*Clause, error) {
	parts := strings.SplitN(name, ":", 4)
	if len(parts) != 4 || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		return nil, bad(name, "_has takes the form _has:Type:reference-parameter:parameter")
	}
	hasType, refCode, rest := parts[1], parts[2], parts[3]
	if !resource.IsType(hasType) {
		return nil, bad(name, "%q is not a resource type", hasType)
	}
	rp, ok := searchparam.Lookup(hasType, refCode)
	if !ok || rp.Type != searchparam.Reference {
		return nil, bad(name, "%s has no reference parameter %q", hasType, refCode)
	}
	okTarget := false
	for _, t := range types {
		if contains(rp.Targets, t) || contains(rp.Targets, "Resource") {
			okTarget = true
		}
	}
	if !okTarget {
		return nil, bad(name, "%s.%s cannot refer to %s", hasType, refCode, strings.Join(types, ","))
	}
	sub, err := parseClause([]string{hasType}, rest, raw, opt, depth+1)
	if err != nil {
		return nil, err
	}
	return &Clause{Name: name, Code: "_has", Has: sub, HasType: hasType, HasParam: rp, ParamID: IDOf(rp, "")}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// parseValues splits the comma-separated values and parses each by the clause's type.
func (c *Clause) parseValues(raw string, opt Options) error {
	vs := splitValues(raw, ',')
	if err := opt.spend(c.Name, 0, len(vs)); err != nil {
		return err
	}
	for _, v := range vs {
		val, err := c.parseValue(v, opt)
		if err != nil {
			return err
		}
		c.Values = append(c.Values, val)
	}
	if len(c.Values) == 0 {
		return bad(c.Name, "parameter %s has no value", c.Name)
	}
	return nil
}

func (c *Clause) parseValue(v string, opt Options) (Value, error) {
	if v == "" {
		return Value{}, bad(c.Name, "an empty value is not a search value")
	}
	switch c.Kind {
	case searchparam.Token:
		if c.Special == "_id" {
			return Value{Raw: v, Code: unescape(v)}, nil
		}
		if c.Modifier == "text" {
			return Value{Raw: v, Norm: Normalize(unescape(v))}, nil
		}
		tv := parseToken(v)
		if c.Modifier == "of-type" {
			// system|code|value: the identifier type's coding, then the identifier's value.
			parts := splitValues(v, '|')
			if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
				return Value{}, bad(c.Name, ":of-type takes system|code|value")
			}
			return Value{Raw: v, System: parts[0], HasSystem: true, Code: parts[1] + "|" + parts[2]}, nil
		}
		return tv, nil
	case searchparam.String:
		s := unescape(v)
		return Value{Raw: v, Code: s, Norm: Normalize(s)}, nil
	case searchparam.URI:
		return Value{Raw: v, Code: unescape(v)}, nil
	case searchparam.Date:
		return parseDateValue(c.Name, v)
	case searchparam.Number:
		return parseNumberValue(c.Name, v)
	case searchparam.Quantity:
		return parseQuantityValue(c.Name, v)
	case searchparam.Reference:
		if c.Modifier == "identifier" {
			return parseToken(v), nil
		}
		return c.parseReference(v, opt)
	case searchparam.Composite:
		return c.parseComposite(v, opt)
	}
	return Value{}, unsupported(c.Name, "search parameter %s is not supported", c.Code)
}

func (c *Clause) parseReference(v string, opt Options) (Value, error) {
	s := unescape(v)
	if opt.Base != "" && strings.HasPrefix(s, opt.Base+"/") {
		s = strings.TrimPrefix(s, opt.Base+"/")
	}
	if strings.Contains(s, "://") || strings.HasPrefix(s, "urn:") {
		// An external or canonical reference: matched by URL (canonical version suffix kept).
		return Value{Raw: v, URL: s}, nil
	}
	s, _, _ = strings.Cut(s, "/_history/")
	typ, id, found := strings.Cut(s, "/")
	if !found {
		id, typ = typ, ""
	}
	if typ != "" && !resource.IsType(typ) {
		return Value{}, bad(c.Name, "the value of %s is not a reference (Type/id, id or a URL)", c.Name)
	}
	if !resource.ValidID(id) {
		return Value{}, bad(c.Name, "%q is not a valid resource id", id)
	}
	if typ != "" && len(c.TargetTypes) > 0 && !contains(c.TargetTypes, typ) {
		return Value{}, bad(c.Name, "%s is not a %s", v, strings.Join(c.TargetTypes, " or "))
	}
	return Value{Raw: v, RefType: typ, RefID: id}, nil
}

func (c *Clause) parseComposite(v string, opt Options) (Value, error) {
	parts := splitValues(v, '$')
	p := c.Param
	if len(parts) != len(p.Components) {
		return Value{}, bad(c.Name, "%s takes %d components separated by $, got %d", c.Code, len(p.Components), len(parts))
	}
	out := Value{Raw: v}
	for i, comp := range p.Components {
		cp, ok := compParam(p, comp)
		if !ok {
			return Value{}, unsupported(c.Name, "component %s of %s is not known", comp.Code, c.Code)
		}
		sub := &Clause{Name: c.Name, Code: cp.Code, Param: cp, Kind: cp.Type}
		cv, err := sub.parseValue(parts[i], opt)
		if err != nil {
			return Value{}, err
		}
		out.Components = append(out.Components, cv)
	}
	return out, nil
}

// compParam finds the parameter a composite component is defined by (on the composite's base).
func compParam(p *searchparam.Param, comp searchparam.Component) (*searchparam.Param, bool) {
	if cp, ok := searchparam.Lookup(p.Base, comp.Code); ok {
		return cp, true
	}
	return nil, false
}

// splitValues splits on an unescaped sep and removes nothing: escapes are resolved per part by
// unescape (or parseToken, which must see \| to split system from code).
func splitValues(raw string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '\\':
			i++
		case sep:
			out = append(out, raw[start:i])
			start = i + 1
		}
	}
	return append(out, raw[start:])
}

// unescape resolves the escapes of search.html#escaping: \, \$ \| \\.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseToken reads [system]|[code], code, |code or system|.
func parseToken(v string) Value {
	parts := splitValues(v, '|')
	if len(parts) == 1 {
		return Value{Raw: v, Code: unescape(v)}
	}
	sys, code := parts[0], strings.Join(parts[1:], "|")
	return Value{Raw: v, HasSystem: true, System: unescape(sys), Code: unescape(code)}
}

// IsSupported reports whether a search on typ by parameter code is served.
func IsSupported(typ, code string) bool {
	switch code {
	case "_id", "_lastUpdated":
		return true
	}
	if _, ok := unsupportedParams[code]; ok {
		return false
	}
	p, ok := searchparam.Lookup(typ, code)
	return ok && p.Type != searchparam.Special && (p.Expression != "" || p.Type == searchparam.Composite)
}
