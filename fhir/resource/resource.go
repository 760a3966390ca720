// Package resource turns request bodies into validated FHIR R4 resources in Billy's canonical form.
//
// It owns: decoding JSON into a jsontree (with FHIR's JSON rules that the validator lets through: no
// nulls outside primitive arrays, no empty strings, arrays or objects), validation with
// google/fhir/go jsonformat (R4) and the mapping of its errors to OperationOutcome issues with
// FHIRPath expressions, the server-owned parts of a resource (id, meta.versionId, meta.lastUpdated),
// and finding and rewriting references. It does not touch storage or HTTP.
//
// Canonical form: the resource's own JSON with member order and decimal literals preserved, compact,
// with id and meta set by the server. Validation parses the JSON once more into google/fhir protos and
// throws them away: it is the expensive step (~150 µs for an average Synthea resource), so it runs
// once per write, before any database lock is taken, and never on reads.
package resource

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/schema"
)

// MaxIDLength is the longest logical id FHIR allows.
const MaxIDLength = 64

// ValidID reports whether id matches [A-Za-z0-9\-\.]{1,64}.
func ValidID(id string) bool {
	if id == "" || len(id) > MaxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// NewID returns a new server-assigned logical id: a time-ordered (version 7) UUID. Ids made close
// in time share a prefix, so they land next to each other in the (type, id) index instead of on
// random pages of it: at a million resources that is the difference between appending to a few
// hot pages and reading half the index into memory.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	ms := uint64(time.Now().UnixMilli())
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// IsType reports whether name is one of the 146 R4 resource types.
func IsType(name string) bool { return schema.IsResourceType(name) }

// Type returns the resourceType of a decoded resource, or "".
func Type(tree *jsontree.Value) string { return tree.GetString("resourceType") }

// FormatInstant renders t as a FHIR instant in UTC with up to microsecond precision, the precision
// PostgreSQL keeps, so the JSON and the database column always agree.
func FormatInstant(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}

// StripServerMeta removes what the server owns and a client may not set: meta.versionId and
// meta.lastUpdated (an emptied meta is removed too). The id is left to the caller, whose rules differ
// by interaction.
func StripServerMeta(tree *jsontree.Value) {
	meta := tree.Get("meta")
	if meta == nil || meta.Kind != jsontree.Object {
		return
	}
	meta.Delete("versionId")
	meta.Delete("lastUpdated")
	if len(meta.Members) == 0 {
		tree.Delete("meta")
	}
}

// SetID sets the logical id, placing it after resourceType when it is new.
func SetID(tree *jsontree.Value, id string) {
	tree.SetAfter("id", jsontree.NewString(id), "resourceType")
}

// Stamp sets id, meta.versionId and meta.lastUpdated: the server-owned parts of a stored version.
// versionId and lastUpdated lead meta, as servers conventionally write them.
func Stamp(tree *jsontree.Value, id string, version int, lastUpdated time.Time) {
	SetID(tree, id)
	meta := tree.Get("meta")
	if meta == nil || meta.Kind != jsontree.Object {
		meta = jsontree.NewObject()
		tree.SetAfter("meta", meta, "id")
	}
	meta.Delete("versionId")
	meta.Delete("lastUpdated")
	meta.Members = append([]jsontree.Member{
		{Key: "versionId", Value: jsontree.NewString(strconv.Itoa(version))},
		{Key: "lastUpdated", Value: jsontree.NewString(FormatInstant(lastUpdated))},
	}, meta.Members...)
}

// ParseReference splits a relative literal reference "Type/id" or "Type/id/_history/v". ok is false
// for anything else (absolute URLs, fragments, urn:, conditional references).
func ParseReference(ref string) (typ, id string, ok bool) {
	typ, rest, found := strings.Cut(ref, "/")
	if !found || !IsType(typ) {
		return "", "", false
	}
	id, hist, _ := strings.Cut(rest, "/_history/")
	_ = hist
	if !ValidID(id) {
		return "", "", false
	}
	return typ, id, true
}

// invalid is shorthand for a 400 about an element of the body.
func invalid(code, expr, format string, args ...any) *fhir.Error {
	return fhir.Invalid(code, expr, format, args...)
}
