package fhirpath

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/schema"
)

// The FHIRPath system types of computed values.
const (
	sysBoolean  = "System.Boolean"
	sysString   = "System.String"
	sysInteger  = "System.Integer"
	sysDecimal  = "System.Decimal"
	sysDate     = "System.Date"
	sysDateTime = "System.DateTime"
	sysTime     = "System.Time"
	sysQuantity = "System.Quantity"
)

var systemTypes = map[string]bool{
	"Boolean": true, "String": true, "Integer": true, "Decimal": true,
	"Date": true, "DateTime": true, "Time": true, "Quantity": true,
}

// profileBases maps the R4 type profiles the schema does not list as types to the type they
// constrain, so that "is SimpleQuantity" is accepted and means Quantity.
var profileBases = map[string]string{"SimpleQuantity": "Quantity", "MoneyQuantity": "Quantity"}

// typeSpec is a type named in is, as, ofType() or as the first step of a path.
type typeSpec struct {
	system bool   // System namespace, else FHIR
	name   string // without the namespace
	cache  memo[bool]
}

// resolveTypeName resolves a type name the way FHIRPath does: a qualified name is taken as is,
// an unqualified one is a FHIR type if R4 has it and a System type otherwise.
func resolveTypeName(name string) (*typeSpec, error) {
	switch ns, rest, ok := strings.Cut(name, "."); {
	case ok && ns == "System":
		if systemTypes[rest] {
			return &typeSpec{system: true, name: rest}, nil
		}
	case ok && ns == "FHIR":
		if isFHIRType(rest) {
			return &typeSpec{name: rest}, nil
		}
	case ok:
	case isFHIRType(name):
		return &typeSpec{name: name}, nil
	case systemTypes[name]:
		return &typeSpec{system: true, name: name}, nil
	}
	return nil, fmt.Errorf("unknown type %s", name)
}

func isFHIRType(name string) bool {
	if _, ok := schema.KindOf(name); ok {
		return true
	}
	return profileBases[name] != ""
}

// matches reports whether n is of the type or a subtype of it.
func (ts *typeSpec) matches(n *Node) bool {
	return ts.cache.get(n.Type, ts.decide)
}

func (ts *typeSpec) decide(typ string) bool {
	if sys, ok := strings.CutPrefix(typ, "System."); ok {
		return ts.system && ts.name == sys
	}
	if ts.system {
		// FHIR primitives carry System values: R4's own composite search parameters ask
		// value.as(DateTime) of a dateTime element.
		st, ok := schema.SystemType(typ)
		return ok && st == ts.name
	}
	want := ts.name
	if b := profileBases[want]; b != "" {
		want = b
	}
	return derivesFrom(typ, want)
}

// derivesFrom reports whether type t is want or specialises it. Backbone element types (paths)
// derive from BackboneElement or Element.
func derivesFrom(t, want string) bool {
	for range 16 { // R4's deepest chain is positiveInt -> integer -> Element; resources are shallower
		if t == want {
			return true
		}
		if strings.IndexByte(t, '.') >= 0 {
			e, ok := schema.Lookup(t)
			if ok && len(e.Types) == 1 && e.Types[0] == "BackboneElement" {
				t = "BackboneElement"
			} else {
				t = "Element"
			}
			continue
		}
		b, ok := schema.BaseType(t)
		if !ok {
			return false
		}
		t = b
	}
	return false
}

// childSpec says how to find the children named name of a node of one type.
type childSpec struct {
	path      string // element definition path, for Node.Path
	fromTwin  bool   // children of a primitive (id, extension) live in its _twin object
	resources bool   // the element holds resources, typed by their own resourceType
	alts      []alt  // one per JSON member name the element may appear as
	choice    string // the element name of a choice element ("value"); "" otherwise
}

// alt is one JSON member an element may appear as: "given", or for a choice "valueQuantity".
type alt struct {
	key  string // JSON member name
	twin string // "_" + key, for primitives
	typ  string // FHIR type of the values found there
	prim bool
}

var specs sync.Map // type + "\x00" + name -> *childSpec

// specFor computes, once per type and name, where children called name of a node of type typ
// are; nil when the schema has no such element. Only elements that exist are kept, so names made
// up in client expressions cannot grow the cache.
func specFor(typ, name string) *childSpec {
	key := typ + "\x00" + name
	if s, ok := specs.Load(key); ok {
		return s.(*childSpec)
	}
	s := computeSpec(typ, name)
	if s != nil {
		specs.Store(key, s)
	}
	return s
}

func computeSpec(typ, name string) *childSpec {
	if typ == "" || strings.HasPrefix(typ, "System.") {
		return nil
	}
	prim := schema.IsPrimitive(typ)
	if prim && name != "id" && name != "extension" {
		// The value of a primitive is the node itself, not a child.
		return nil
	}
	e := lookupElement(typ, name)
	if e == nil {
		return nil
	}
	s := &childSpec{path: e.Path, fromTwin: prim}
	switch {
	case e.ContentRef != "":
		s.alts = []alt{{key: name, typ: e.ContentRef}}
	case len(e.Types) == 1 && (e.Types[0] == "BackboneElement" || e.Types[0] == "Element"):
		s.alts = []alt{{key: name, typ: e.Path}}
	case len(e.Types) == 1 && e.Types[0] == "Resource":
		s.resources = true
		s.alts = []alt{{key: name, typ: "Resource"}}
	case e.Choice:
		s.choice = name
		for _, t := range e.Types {
			k := name + strings.ToUpper(t[:1]) + t[1:]
			s.alts = append(s.alts, newAlt(k, t))
		}
	case len(e.Types) == 1:
		s.alts = []alt{newAlt(name, e.Types[0])}
	default:
		return nil
	}
	return s
}

func newAlt(key, typ string) alt {
	a := alt{key: key, typ: typ, prim: schema.IsPrimitive(typ)}
	if a.prim {
		a.twin = "_" + key
	}
	return a
}

// lookupElement finds element name of type typ, following the type's base types for elements a
// snapshot did not repeat.
func lookupElement(typ, name string) *schema.Element {
	t := typ
	for range 16 {
		if e, ok := schema.Lookup(t + "." + name); ok {
			return e
		}
		if strings.IndexByte(t, '.') >= 0 {
			if e, ok := schema.Lookup(t); ok && len(e.Types) == 1 && e.Types[0] == "BackboneElement" {
				t = "BackboneElement"
			} else {
				t = "Element"
			}
			continue
		}
		b, ok := schema.BaseType(t)
		if !ok {
			if b = profileBases[t]; b == "" {
				return nil
			}
		}
		t = b
	}
	return nil
}

// memo caches a function of a type name. The places that use one (a path step, a type test) see
// one or two types in practice, so a short list read without locking beats a shared map, and
// looking up costs no allocation.
type memo[T any] struct {
	entries atomic.Pointer[[]memoEntry[T]]
	mu      sync.Mutex
}

type memoEntry[T any] struct {
	typ string
	val T
}

// maxMemo bounds a memo; types beyond it are computed each time.
const maxMemo = 16

func (m *memo[T]) get(typ string, compute func(string) T) T {
	if p := m.entries.Load(); p != nil {
		for i := range *p {
			if (*p)[i].typ == typ {
				return (*p)[i].val
			}
		}
	}
	v := compute(typ)
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.entries.Load()
	if old == nil || len(*old) < maxMemo {
		var next []memoEntry[T]
		if old != nil {
			next = append(next, *old...)
		}
		next = append(next, memoEntry[T]{typ: typ, val: v})
		m.entries.Store(&next)
	}
	return v
}

// navCache is one path step's memo of childSpecs by the type of the node it is applied to.
type navCache struct {
	name  string
	specs memo[*childSpec]
}

func (nc *navCache) spec(typ string) *childSpec {
	return nc.specs.get(typ, nc.compute)
}

func (nc *navCache) compute(typ string) *childSpec { return specFor(typ, nc.name) }

// navigate returns the children named by nc of every node of in, in order, built in the
// evaluation's slab.
func (c *ctx) navigate(in []Node, nc *navCache) ([]Node, error) {
	start := len(c.slab)
	for i := range in {
		s := nc.spec(in[i].Type)
		if s == nil {
			continue
		}
		before := len(c.slab)
		c.slab = appendChildren(c.slab, &in[i], s)
		if err := c.step(len(c.slab) - before); err != nil {
			return nil, err
		}
		if err := c.grow(len(c.slab) - start); err != nil {
			return nil, err
		}
	}
	return c.slab[start:len(c.slab):len(c.slab)], nil
}

// appendChildren appends the children of n that s describes to out.
func appendChildren(out []Node, n *Node, s *childSpec) []Node {
	src := n.Value
	if s.fromTwin {
		src = n.Ext
	}
	if src == nil || src.Kind != jsontree.Object {
		return out
	}
	if s.choice == "" {
		return appendAlt(out, src, s, &s.alts[0])
	}
	// Look at each member once instead of probing every value[x] type.
	for _, m := range src.Members {
		key := m.Key
		twinOnly := false
		if len(key) > 1 && key[0] == '_' {
			key, twinOnly = key[1:], true
		}
		if len(key) <= len(s.choice) || !strings.HasPrefix(key, s.choice) {
			continue
		}
		for j := range s.alts {
			a := &s.alts[j]
			if a.key != key {
				continue
			}
			if twinOnly && (!a.prim || src.Get(key) != nil) {
				break // the value member yields the node, twin and all
			}
			out = appendAlt(out, src, s, a)
			break
		}
	}
	return out
}

func appendAlt(out []Node, src *jsontree.Value, s *childSpec, a *alt) []Node {
	v := src.Get(a.key)
	var tw *jsontree.Value
	if a.prim {
		tw = src.Get(a.twin)
	}
	if v == nil && tw == nil {
		return out
	}
	if (v != nil && v.Kind == jsontree.Array) || (v == nil && tw.Kind == jsontree.Array) {
		n := 0
		if v != nil {
			n = len(v.Items)
		}
		if tw != nil && tw.Kind == jsontree.Array && len(tw.Items) > n {
			n = len(tw.Items)
		}
		for i := range n {
			var iv, it *jsontree.Value
			if v != nil && v.Kind == jsontree.Array && i < len(v.Items) {
				iv = v.Items[i]
			}
			if tw != nil && tw.Kind == jsontree.Array && i < len(tw.Items) {
				it = tw.Items[i]
			}
			out = appendItem(out, src, s, a, iv, it, i)
		}
		return out
	}
	if tw != nil && tw.Kind == jsontree.Array {
		tw = nil
	}
	return appendItem(out, src, s, a, v, tw, -1)
}

// appendItem appends one element value, skipping what does not fit its type: the schema, not
// the JSON shape, decides what a member is, and malformed members are ignored.
func appendItem(out []Node, holder *jsontree.Value, s *childSpec, a *alt, v, tw *jsontree.Value, idx int) []Node {
	if v != nil && v.Kind == jsontree.Null {
		v = nil
	}
	if tw != nil && tw.Kind != jsontree.Object {
		tw = nil
	}
	typ := a.typ
	switch {
	case a.prim:
		if v != nil && v.Kind != jsontree.String && v.Kind != jsontree.Number && v.Kind != jsontree.Bool {
			return out
		}
		if v == nil && tw == nil {
			return out
		}
	case v == nil || v.Kind != jsontree.Object:
		return out
	case s.resources:
		typ = v.GetString("resourceType")
		if !schema.IsResourceType(typ) {
			return out
		}
	default:
		tw = nil
	}
	return append(out, Node{Value: v, Ext: tw, Type: typ, Parent: holder, Key: a.key, Index: idx, Path: s.path})
}

// childNames lists, per type, the element names children() and descendants() walk.
var childNames sync.Map // type -> []string

func namesOf(typ string) []string {
	if v, ok := childNames.Load(typ); ok {
		return v.([]string)
	}
	var names []string
	if schema.IsPrimitive(typ) {
		names = []string{"id", "extension"}
	} else if !strings.HasPrefix(typ, "System.") {
		for t := typ; t != ""; {
			if ch := schema.Children(t); len(ch) > 0 {
				for _, e := range ch {
					names = append(names, e.Path[strings.LastIndexByte(e.Path, '.')+1:])
				}
				break
			}
			b, ok := schema.BaseType(t)
			if !ok {
				b = profileBases[t]
			}
			t = b
		}
	}
	childNames.Store(typ, names)
	return names
}

// allChildren appends every child of n, in definition order.
func (c *ctx) allChildren(n *Node, out []Node) ([]Node, error) {
	for _, name := range namesOf(n.Type) {
		s := specFor(n.Type, name)
		if s == nil {
			continue
		}
		before := len(out)
		out = appendChildren(out, n, s)
		if err := c.step(len(out) - before); err != nil {
			return nil, err
		}
		if err := c.grow(len(out)); err != nil {
			return nil, err
		}
	}
	return out, nil
}
