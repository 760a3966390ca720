package fhirpath

import (
	"strings"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/schema"
)

// fnResolve is resolve() without a database: what the R4 search parameters need is the type of
// the target (subject.where(resolve() is Patient)), and a reference literal says it. Contained
// references resolve to the contained resource itself; relative and absolute RESTful references
// to a stand-in {resourceType, id}; anything else (urn:uuid:, identifiers only) to nothing.
func fnResolve(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
	var out []Node
	for i := range in {
		if n, ok := c.resolve(&in[i]); ok {
			out = append(out, n)
		}
	}
	return out, nil
}

func (c *ctx) resolve(n *Node) (Node, bool) {
	var ref string
	switch k := kindOf(n); {
	case k == kString:
		ref = n.Value.Str
	case k == kComplex && derivesFrom(n.Type, "Reference"):
		ref = n.Value.GetString("reference")
	default:
		return Node{}, false
	}
	if ref == "" {
		return Node{}, false
	}
	if id, ok := strings.CutPrefix(ref, "#"); ok {
		return c.contained(id)
	}
	typ, id, ok := parseReference(ref)
	if !ok {
		return Node{}, false
	}
	return stub(typ, id), true
}

// contained finds #id among the contained resources of %resource; "#" alone is %resource.
// References inside a Bundle entry are resolved against the root too: the evaluator does not
// track which resource encloses a node.
func (c *ctx) contained(id string) (Node, bool) {
	root := &c.root[0]
	if id == "" {
		return *root, true
	}
	list := root.Value.Get("contained")
	if list == nil || list.Kind != jsontree.Array {
		return Node{}, false
	}
	for i, r := range list.Items {
		if r.GetString("id") != id {
			continue
		}
		typ := r.GetString("resourceType")
		if !schema.IsResourceType(typ) {
			return Node{}, false
		}
		return Node{Value: r, Type: typ, Parent: root.Value, Key: "contained", Index: i, Path: root.Type + ".contained"}, true
	}
	return Node{}, false
}

// parseReference reads the type and id of a RESTful reference: Type/id, Type/id/_history/v, or
// either after an http(s) base URL. Canonical versions (|1.0) are dropped.
func parseReference(ref string) (typ, id string, ok bool) {
	ref, _, _ = strings.Cut(ref, "|")
	abs := false
	if rest, found := strings.CutPrefix(ref, "https://"); found {
		ref, abs = rest, true
	} else if rest, found := strings.CutPrefix(ref, "http://"); found {
		ref, abs = rest, true
	} else if strings.Contains(ref, ":") {
		return "", "", false // urn:uuid:, urn:oid: and other schemes name no type
	}
	id, rest, _ := lastSegment(ref)
	typ, rest, more := lastSegment(rest)
	if typ == "_history" {
		if id, rest, _ = lastSegment(rest); id == "" {
			return "", "", false
		}
		typ, rest, more = lastSegment(rest)
	}
	// A relative reference is exactly Type/id; an absolute one has a base before it.
	if more != abs || (abs && rest == "") {
		return "", "", false
	}
	if !schema.IsResourceType(typ) || !validID(id) {
		return "", "", false
	}
	return typ, id, true
}

// lastSegment splits s at its last '/': what follows, what precedes, and whether there was one.
func lastSegment(s string) (seg, before string, found bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return s, "", false
	}
	return s[i+1:], s[:i], true
}

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(isIdentPart(c) && c != '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// stubResource holds a resolved target in one allocation.
type stubResource struct {
	obj     jsontree.Value
	members [2]jsontree.Member
	typ, id jsontree.Value
}

func stub(typ, id string) Node {
	s := &stubResource{typ: jsontree.Value{Kind: jsontree.String, Str: typ}, id: jsontree.Value{Kind: jsontree.String, Str: id}}
	s.members = [2]jsontree.Member{{Key: "resourceType", Value: &s.typ}, {Key: "id", Value: &s.id}}
	s.obj = jsontree.Value{Kind: jsontree.Object, Members: s.members[:]}
	return Node{Value: &s.obj, Type: typ, Index: -1, Path: typ}
}
