package resource

import (
	"strings"

	"github.com/iambilly/billy/fhir/jsontree"
)

// RewriteReferences replaces every string of the resource that equals a key of to (a Bundle entry's
// fullUrl, such as "urn:uuid:...") by its value ("Patient/123"): Reference.reference, but also uri,
// url and canonical elements and Attachment.url, since the transaction rules ask for every reference
// to the entry to follow it. In narrative, href and src attribute values are rewritten.
// It reports whether anything changed.
func RewriteReferences(tree *jsontree.Value, to map[string]string) bool {
	if len(to) == 0 {
		return false
	}
	changed := false
	tree.WalkStrings(func(key string, s *jsontree.Value) {
		if key == "div" {
			if out, ok := rewriteNarrative(s.Str, to); ok {
				s.Str, changed = out, true
			}
			return
		}
		if r, ok := to[s.Str]; ok {
			s.Str, changed = r, true
		}
	})
	return changed
}

// rewriteNarrative rewrites quoted attribute values of the XHTML that are keys of to.
func rewriteNarrative(div string, to map[string]string) (string, bool) {
	var b strings.Builder
	changed := false
	rest := div
	for {
		i := strings.IndexAny(rest, `"'`)
		if i < 0 {
			break
		}
		q := rest[i]
		j := strings.IndexByte(rest[i+1:], q)
		if j < 0 {
			break
		}
		val := rest[i+1 : i+1+j]
		b.WriteString(rest[:i+1])
		if r, ok := to[val]; ok {
			b.WriteString(r)
			changed = true
		} else {
			b.WriteString(val)
		}
		b.WriteByte(q)
		rest = rest[i+2+j:]
	}
	if !changed {
		return div, false
	}
	b.WriteString(rest)
	return b.String(), true
}

// ConditionalReference is a Reference.reference of the form "Type?search", which a transaction
// resolves to the one matching resource.
type ConditionalReference struct {
	Type  string
	Query string
	Value *jsontree.Value // the string to overwrite with "Type/id"
}

// ConditionalReferences finds the conditional references of a resource.
func ConditionalReferences(tree *jsontree.Value) []ConditionalReference {
	var out []ConditionalReference
	tree.WalkStrings(func(key string, s *jsontree.Value) {
		if key != "reference" {
			return
		}
		typ, q, ok := strings.Cut(s.Str, "?")
		if ok && IsType(typ) {
			out = append(out, ConditionalReference{Type: typ, Query: q, Value: s})
		}
	})
	return out
}
