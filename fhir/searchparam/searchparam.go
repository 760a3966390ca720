package searchparam

import (
	"slices"
	"strings"
	"sync"
)

// Type is a search parameter type (SearchParameter.type).
type Type uint8

// Search parameter types. The zero Type is not a valid type.
const (
	Number Type = iota + 1
	Date
	String
	Token
	Reference
	Composite
	Quantity
	URI
	Special
)

// String returns the FHIR code of t ("token", "uri", ...).
func (t Type) String() string {
	switch t {
	case Number:
		return "number"
	case Date:
		return "date"
	case String:
		return "string"
	case Token:
		return "token"
	case Reference:
		return "reference"
	case Composite:
		return "composite"
	case Quantity:
		return "quantity"
	case URI:
		return "uri"
	case Special:
		return "special"
	default:
		return "unknown"
	}
}

// Flag is an optional boolean of a SearchParameter. R4 gives multipleOr and
// multipleAnd no default: when unset, the server decides.
type Flag uint8

// Flag values.
const (
	FlagUnset Flag = iota // the definition says nothing
	FlagFalse
	FlagTrue
)

// Or returns the flag's value, or def when it is unset.
func (f Flag) Or(def bool) bool {
	switch f {
	case FlagTrue:
		return true
	case FlagFalse:
		return false
	default:
		return def
	}
}

// Component is one part of a composite search parameter.
type Component struct {
	// Definition is the canonical URL of the parameter the part is searched as.
	Definition string
	// Code is the code of the parameter Definition names, resolved
	// ("code", "value-quantity").
	Code string
	// Expression is evaluated on each value of the composite's own expression.
	Expression string
}

// Param is one search parameter as it applies to one base resource type.
// Params returned by this package are shared: callers must not modify them.
type Param struct {
	// Code is the name used in URLs: "identifier", "_lastUpdated".
	Code string
	// URL is the canonical URL of the SearchParameter; "" for _has, _list and
	// _type, which R4 defines only in prose.
	URL  string
	Type Type
	// Base is the resource type this entry applies to ("Patient"), or
	// "Resource"/"DomainResource" for the parameters all resources (all
	// DomainResources) have.
	Base string
	// Expression is the definition's FHIRPath expression restricted to the
	// union branches rooted in Base; "" when the definition has none.
	Expression string
	// Targets lists the resource types a reference parameter may point at, sorted.
	Targets []string
	// Components lists the parts of a composite parameter, in order.
	Components []Component
	// Comparators lists the prefixes (eq, ne, gt, ...) the definition allows.
	Comparators []string
	// Modifiers lists the modifiers as given in the definition. No R4
	// definition gives any, so this is empty: the applicable modifiers follow
	// from Type.
	Modifiers []string
	// MultipleOr and MultipleAnd say whether repeated values (a,b) or
	// repeated parameters may be used; R4 sets only multipleOr, and only to
	// false, on composites.
	MultipleOr, MultipleAnd Flag
	// Chain lists the chainable parameter names the definition allows; empty
	// in R4.
	Chain []string
}

// resourceType is one row of the generated resource type table.
type resourceType struct {
	name string
	base string // "Resource" or "DomainResource"
}

// compartmentEntry is one row of the generated patient compartment.
type compartmentEntry struct {
	resourceType string
	params       []string
}

// proseParams are the parameters for all resources that R4 describes on its
// search page without a SearchParameter resource. Their processing is bespoke
// (reverse chaining, list membership, type restriction), hence Special.
var proseParams = [...]Param{
	{Code: "_has", Type: Special, Base: "Resource"},
	{Code: "_list", Type: Special, Base: "Resource"},
	{Code: "_type", Type: Special, Base: "Resource"},
}

// billyParams are Billy's own parameters, which R4 lacks and payers use: Claim:insurance lets a
// payer's Claim search include the Coverages a claim bills (_include=Claim:insurance), as ExplanationOfBenefit's
// coverage parameter does for EOBs.
var billyParams = [...]Param{
	{Code: "insurance", URL: "https://iambilly.github.io/billy/fhir/SearchParameter/Claim-insurance", Type: Reference, Base: "Claim",
		Expression: "Claim.insurance.coverage", Targets: []string{"Coverage"}},
}

type index struct {
	forType     map[string][]*Param          // sorted by code
	byCode      map[string]map[string]*Param // resource type -> code -> param
	compartment map[string][]string
}

// idx is built on first use, so importing the package costs nothing until a
// lookup happens; the tables themselves are static data.
var idx = sync.OnceValue(func() *index {
	own := map[string][]*Param{}
	for i := range params {
		p := &params[i]
		own[p.Base] = append(own[p.Base], p)
	}
	for i := range proseParams {
		p := &proseParams[i]
		own[p.Base] = append(own[p.Base], p)
	}
	for i := range billyParams {
		p := &billyParams[i]
		own[p.Base] = append(own[p.Base], p)
	}

	x := &index{
		forType:     map[string][]*Param{},
		byCode:      map[string]map[string]*Param{},
		compartment: map[string][]string{},
	}
	add := func(name string, bases ...string) {
		var ps []*Param
		seen := map[string]bool{}
		for _, b := range bases {
			for _, p := range own[b] {
				// A type's own parameter wins over a common one of the same
				// code; bases are listed most specific first. R4 has no
				// such clash, but a table that silently held two would be worse.
				if !seen[p.Code] {
					seen[p.Code] = true
					ps = append(ps, p)
				}
			}
		}
		slices.SortFunc(ps, func(a, b *Param) int { return strings.Compare(a.Code, b.Code) })
		byCode := make(map[string]*Param, len(ps))
		for _, p := range ps {
			byCode[p.Code] = p
		}
		x.forType[name] = ps
		x.byCode[name] = byCode
	}
	add("Resource", "Resource")
	add("DomainResource", "DomainResource", "Resource")
	for _, r := range resourceTypes {
		if r.base == "DomainResource" {
			add(r.name, r.name, "DomainResource", "Resource")
		} else {
			add(r.name, r.name, "Resource")
		}
	}
	for _, c := range patientCompartment {
		x.compartment[c.resourceType] = c.params
	}
	return x
})

// Lookup finds the parameter code for resourceType, including the common
// ones from Resource and DomainResource (_id, _lastUpdated, _tag, _profile,
// _security, _source, _text, _content, _list, _has, _type, _query).
// resourceType may also be "Resource" or "DomainResource" itself.
func Lookup(resourceType, code string) (*Param, bool) {
	p, ok := idx().byCode[resourceType][code]
	return p, ok
}

// ForType lists every parameter for resourceType, type-specific and common,
// sorted by code; nil for an unknown type. The slice is the caller's.
func ForType(resourceType string) []*Param {
	return slices.Clone(idx().forType[resourceType])
}

// PatientCompartment returns, for a resource type in the R4 patient
// compartment, the codes of the search parameters that link it to the
// patient, in the CompartmentDefinition's order ("Observation" gives
// ["subject", "performer"]). ok is false for types never in the compartment.
func PatientCompartment(resourceType string) (params []string, ok bool) {
	ps, ok := idx().compartment[resourceType]
	return slices.Clone(ps), ok
}
