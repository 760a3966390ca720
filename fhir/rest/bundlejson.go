package rest

import (
	"strconv"
	"time"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
)

// bundleOut assembles a response Bundle. Stored resources are spliced in as the bytes they are
// stored as, never parsed again: a history page of 100 resources costs one memcpy each.
type bundleOut struct {
	typ     string
	total   int // < 0: leave Bundle.total out
	links   [][2]string
	entries [][]byte
}

func newBundleOut(typ string) *bundleOut { return &bundleOut{typ: typ, total: -1} }

func (b *bundleOut) link(rel, url string) { b.links = append(b.links, [2]string{rel, url}) }

// entry appends one entry: fullUrl and resource (raw JSON) when given, then the other parts
// (search, request, response) in the order given.
func (b *bundleOut) entry(fullURL string, res []byte, parts ...jsontree.Member) {
	e := make([]byte, 0, len(res)+256)
	e = append(e, '{')
	first := true
	sep := func() {
		if !first {
			e = append(e, ',')
		}
		first = false
	}
	if fullURL != "" {
		sep()
		e = append(e, `"fullUrl":`...)
		e = jsontree.AppendString(e, fullURL)
	}
	if res != nil {
		sep()
		e = append(e, `"resource":`...)
		e = append(e, res...)
	}
	for _, p := range parts {
		sep()
		e = jsontree.AppendString(e, p.Key)
		e = append(e, ':')
		e = p.Value.AppendJSON(e)
	}
	e = append(e, '}')
	b.entries = append(b.entries, e)
}

// marshal renders the Bundle, stamped now.
func (b *bundleOut) marshal(now time.Time) []byte {
	size := 256
	for _, e := range b.entries {
		size += len(e) + 1
	}
	out := make([]byte, 0, size)
	out = append(out, `{"resourceType":"Bundle","id":`...)
	out = jsontree.AppendString(out, resource.NewID())
	out = append(out, `,"meta":{"lastUpdated":`...)
	out = jsontree.AppendString(out, resource.FormatInstant(now))
	out = append(out, `},"type":`...)
	out = jsontree.AppendString(out, b.typ)
	if b.total >= 0 {
		out = append(out, `,"total":`...)
		out = strconv.AppendInt(out, int64(b.total), 10)
	}
	if len(b.links) > 0 {
		out = append(out, `,"link":[`...)
		for i, l := range b.links {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, `{"relation":`...)
			out = jsontree.AppendString(out, l[0])
			out = append(out, `,"url":`...)
			out = jsontree.AppendString(out, l[1])
			out = append(out, '}')
		}
		out = append(out, ']')
	}
	if len(b.entries) > 0 {
		out = append(out, `,"entry":[`...)
		for i, e := range b.entries {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, e...)
		}
		out = append(out, ']')
	}
	return append(out, '}')
}

// obj builds a small JSON object of string members from key/value pairs, skipping empty values.
func obj(kv ...string) *jsontree.Value {
	o := jsontree.NewObject()
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			o.Members = append(o.Members, jsontree.Member{Key: kv[i], Value: jsontree.NewString(kv[i+1])})
		}
	}
	return o
}

func member(key string, v *jsontree.Value) jsontree.Member {
	return jsontree.Member{Key: key, Value: v}
}
