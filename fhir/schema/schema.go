package schema

import (
	"slices"
	"strings"
	"sync"
)

// Kind says what sort of type a FHIR type name denotes.
type Kind uint8

// Kinds of FHIR types. The zero Kind means "not an R4 type".
const (
	KindPrimitive Kind = iota + 1 // boolean, string, code, dateTime, ...
	KindComplex                   // HumanName, Quantity, Extension, BackboneElement, ...
	KindResource                  // Patient, Bundle, and the abstract Resource and DomainResource
)

// String returns the StructureDefinition.kind code of k.
func (k Kind) String() string {
	switch k {
	case KindPrimitive:
		return "primitive-type"
	case KindComplex:
		return "complex-type"
	case KindResource:
		return "resource"
	default:
		return "unknown"
	}
}

// Element describes one element definition of a resource or data type, keyed
// by its path as in the StructureDefinition snapshot with "[x]" removed for
// choice elements (e.g. "Observation.value", "Observation.component.code",
// "Extension.value", "HumanName.given").
//
// Elements returned by this package are shared: callers must not modify them.
type Element struct {
	Path string
	// Types lists the type codes, more than one only for choice elements, in
	// definition order: ["Quantity", "CodeableConcept", "string", ...].
	// Nested parts are "BackboneElement" in resources and "Element" in data
	// types. Empty for root elements and contentReference elements.
	Types []string
	// Choice is set when the definition's path ended in "[x]".
	Choice bool
	Min    int
	// Max is the maximum cardinality, -1 for "*".
	Max int
	// Summary is ElementDefinition.isSummary: the element is part of _summary=true.
	Summary bool
	// Modifier is ElementDefinition.isModifier.
	Modifier bool
	// ContentRef is, for elements defined by contentReference, the path of
	// the element whose definition they reuse, without '#': the children of
	// "Questionnaire.item.item" are those of "Questionnaire.item".
	ContentRef string
	// TargetProfiles lists, for Reference and canonical types, the type names
	// the targets are constrained to (the last segment of each
	// targetProfile), in definition order: ["Patient", "Group"]. "Resource"
	// means any resource.
	TargetProfiles []string
}

// typeDef is one row of the generated type table.
type typeDef struct {
	name     string
	kind     Kind
	base     string // "" for Element and Resource
	abstract bool
	system   string // FHIRPath system type of a primitive's value
}

type index struct {
	types         map[string]*typeDef
	resourceTypes []string
	byPath        map[string]*Element
	children      map[string][]*Element
}

// idx is built on first use, so importing the package costs nothing until a
// lookup happens; the tables themselves are static data.
var idx = sync.OnceValue(func() *index {
	x := &index{
		types:    make(map[string]*typeDef, len(typeDefs)),
		byPath:   make(map[string]*Element, len(elements)),
		children: make(map[string][]*Element, len(elements)/4),
	}
	for i := range typeDefs {
		t := &typeDefs[i]
		x.types[t.name] = t
		if t.kind == KindResource && !t.abstract {
			x.resourceTypes = append(x.resourceTypes, t.name)
		}
	}
	for i := range elements {
		e := &elements[i]
		x.byPath[e.Path] = e
		if dot := strings.LastIndexByte(e.Path, '.'); dot >= 0 {
			parent := e.Path[:dot]
			x.children[parent] = append(x.children[parent], e)
		}
	}
	return x
})

// ResourceTypes lists the 146 concrete R4 resource type names, sorted.
// The slice is the caller's to keep.
func ResourceTypes() []string {
	return slices.Clone(idx().resourceTypes)
}

// IsResourceType reports whether name is a concrete R4 resource type, the
// types a resource's resourceType may hold. Resource and DomainResource are
// not.
func IsResourceType(name string) bool {
	t := idx().types[name]
	return t != nil && t.kind == KindResource && !t.abstract
}

// IsPrimitive reports whether typeCode is an R4 primitive type (boolean,
// string, code, dateTime, xhtml, ...), the types whose JSON form is a bare
// value with an optional "_name" sibling.
func IsPrimitive(typeCode string) bool {
	k, _ := KindOf(typeCode)
	return k == KindPrimitive
}

// KindOf reports the kind of the R4 type name, and whether it is one at all.
// Abstract types (Element, BackboneElement, Resource, DomainResource) count.
func KindOf(typeName string) (Kind, bool) {
	t := idx().types[typeName]
	if t == nil {
		return 0, false
	}
	return t.kind, true
}

// BaseType returns the type typeName specialises: "DomainResource" for
// "Patient", "Resource" for "Bundle", "Quantity" for "Age", "string" for
// "code". It returns false for unknown types and for the roots Element and
// Resource.
func BaseType(typeName string) (string, bool) {
	t := idx().types[typeName]
	if t == nil || t.base == "" {
		return "", false
	}
	return t.base, true
}

// SystemType returns the FHIRPath system type (without the "System." prefix)
// that values of the primitive type map to: "String" for code and uri,
// "Integer" for positiveInt, "DateTime" for instant. It returns false for
// non-primitive types.
func SystemType(primitive string) (string, bool) {
	t := idx().types[primitive]
	if t == nil || t.kind != KindPrimitive || t.system == "" {
		return "", false
	}
	return t.system, true
}

// Lookup returns the element with the given path, [x] removed. A bare type
// name returns the type's root element.
func Lookup(path string) (*Element, bool) {
	e, ok := idx().byPath[path]
	return e, ok
}

// Children returns the direct child elements of a type or backbone path in
// definition order: "Patient" gives Patient.id, Patient.meta, ...,
// Patient.link; "Observation.component" gives its id, extension,
// modifierExtension, code, value, ... For a contentReference element it
// returns the children of the referenced element. It returns nil for paths
// without children, including elements of a data type such as
// "Patient.name": use Children on the type ("HumanName") or Resolve.
func Children(path string) []*Element {
	x := idx()
	if e := x.byPath[path]; e != nil && e.ContentRef != "" {
		path = e.ContentRef
	}
	return slices.Clone(x.children[path])
}

// Resolve finds the element a dotted path reaches from a type, crossing
// into data types and following content references:
// "Patient.name.given" resolves to HumanName.given,
// "Observation.subject.reference" to Reference.reference,
// "Questionnaire.item.item.linkId" to Questionnaire.item.linkId.
// Only the last segment may be a choice element with several types, and
// segments use element names ("value"), not JSON's typed names
// ("valueQuantity").
func Resolve(path string) (*Element, bool) {
	x := idx()
	segs := strings.Split(path, ".")
	e := x.byPath[segs[0]]
	if e == nil {
		return nil, false
	}
	at := segs[0] // path of the type or backbone element e's children live under
	for i, seg := range segs[1:] {
		e = x.byPath[at+"."+seg]
		if e == nil {
			return nil, false
		}
		if i == len(segs)-2 {
			break
		}
		switch {
		case e.ContentRef != "":
			at = e.ContentRef
		case len(e.Types) != 1:
			return nil, false
		case e.Types[0] == "BackboneElement" || e.Types[0] == "Element":
			at = e.Path
		default:
			at = e.Types[0]
		}
	}
	return e, true
}
