// Package scope parses SMART on FHIR scopes (App Launch 2.x: v1 "patient/Observation.read" and v2
// "patient/Observation.rs?category=laboratory", plus the context scopes) and answers what a set of
// scopes grants.
//
// It owns the scope grammar, the v1-to-v2 permission mapping, which scope covers which (for
// down-scoping at the token and refresh endpoints), and the grant for one interaction on one
// resource type: allowed or not, restricted to the patient's compartment or not, and the v2 query
// constraints. It does not know about tokens, HTTP or storage.
package scope

import (
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/iambilly/billy/fhir/schema"
)

// Level is the context a resource scope applies in.
type Level string

// The levels of SMART resource scopes.
const (
	Patient Level = "patient" // the launch patient's compartment
	User    Level = "user"    // whatever the user may see
	System  Level = "system"  // backend services: no user, no patient
)

// Perm is a set of v2 permissions.
type Perm uint8

// The v2 permissions, in their mandatory order c, r, u, d, s.
const (
	Create Perm = 1 << iota
	Read
	Update
	Delete
	Search
)

const permLetters = "cruds"

// String renders permissions as v2 letters.
func (p Perm) String() string {
	var b strings.Builder
	for i := range permLetters {
		if p&(1<<i) != 0 {
			b.WriteByte(permLetters[i])
		}
	}
	return b.String()
}

// Resource is one resource scope.
type Resource struct {
	Level Level
	Type  string // a resource type, or "*"
	Perms Perm
	// Query is the v2 query constraint ("?category=laboratory"), nil when there is none.
	Query url.Values
	// V1 marks the v1 forms read, write and *.
	V1  bool
	Raw string
}

// The context scopes Billy understands.
var contextScopes = map[string]bool{
	"launch": true, "launch/patient": true, "launch/encounter": true, "openid": true, "fhirUser": true,
	"profile": true, "offline_access": true, "online_access": true,
}

// Set is a parsed scope string.
type Set struct {
	Resources []Resource
	Context   map[string]bool
	// Other holds scopes that are neither (kept, never granting anything).
	Other []string
}

// ParseResource parses one resource scope; ok is false for scopes of another kind.
func ParseResource(s string) (Resource, bool, error) {
	level, rest, found := strings.Cut(s, "/")
	if !found {
		return Resource{}, false, nil
	}
	switch Level(level) {
	case Patient, User, System:
	default:
		return Resource{}, false, nil
	}
	r := Resource{Level: Level(level), Raw: s}
	target, query, hasQuery := strings.Cut(rest, "?")
	typ, perms, ok := strings.Cut(target, ".")
	if !ok {
		return Resource{}, true, fmt.Errorf("scope %q: want %s/Type.permissions", s, level)
	}
	if typ != "*" && !schema.IsResourceType(typ) {
		return Resource{}, true, fmt.Errorf("scope %q: %q is not a resource type", s, typ)
	}
	r.Type = typ
	switch perms {
	case "read":
		r.Perms, r.V1 = Read|Search, true
	case "write":
		r.Perms, r.V1 = Create|Update|Delete, true
	case "*":
		r.Perms, r.V1 = Create|Read|Update|Delete|Search, true
	default:
		last := -1
		for _, c := range perms {
			i := strings.IndexRune(permLetters, c)
			if i < 0 || i <= last {
				return Resource{}, true, fmt.Errorf("scope %q: permissions must be letters of cruds, in that order", s)
			}
			last = i
			r.Perms |= 1 << i
		}
		if r.Perms == 0 {
			return Resource{}, true, fmt.Errorf("scope %q: no permissions", s)
		}
	}
	if hasQuery {
		if r.V1 {
			return Resource{}, true, fmt.Errorf("scope %q: query constraints are a v2 feature", s)
		}
		q, err := url.ParseQuery(query)
		if err != nil || len(q) == 0 {
			return Resource{}, true, fmt.Errorf("scope %q: the query constraint cannot be parsed", s)
		}
		r.Query = q
	}
	return r, true, nil
}

// Parse parses a space-separated scope string. A malformed resource scope is an error; unknown
// scopes of other shapes are kept in Other.
func Parse(s string) (*Set, error) {
	set := &Set{Context: map[string]bool{}}
	for _, f := range strings.Fields(s) {
		r, isResource, err := ParseResource(f)
		switch {
		case err != nil:
			return nil, err
		case isResource:
			set.Resources = append(set.Resources, r)
		case contextScopes[f]:
			set.Context[f] = true
		default:
			set.Other = append(set.Other, f)
		}
	}
	return set, nil
}

// Covers reports whether the scope granted permits the scope requested: the same scope, or a
// resource scope of the same level whose type is * or equal, whose permissions include the
// requested ones, and whose query constraint (if any) the request repeats. It is the scope strategy
// for down-scoping: a client registered for patient/*.rs may ask for patient/Observation.r.
func Covers(granted, requested string) bool {
	if granted == requested {
		return true
	}
	g, gok, gerr := ParseResource(granted)
	r, rok, rerr := ParseResource(requested)
	if !gok || !rok || gerr != nil || rerr != nil {
		return false
	}
	if g.Level != r.Level || (g.Type != "*" && g.Type != r.Type) || r.Perms&^g.Perms != 0 {
		return false
	}
	if g.Query != nil && (r.Query == nil || g.Query.Encode() != r.Query.Encode()) {
		return false
	}
	return true
}

// Grant is what a scope set allows for one permission on one resource type.
type Grant struct {
	Allowed bool
	// PatientOnly is set when only patient-level scopes allow it: the resource must be in the
	// launch patient's compartment.
	PatientOnly bool
	// Constraints are the v2 query constraints of the scopes that allow it, nil when one of them
	// has none (unconstrained). The resource must match at least one.
	Constraints []url.Values
}

// Grant answers whether the set allows perm on typ. User- and system-level scopes grant without the
// compartment restriction; when only patient-level scopes grant, PatientOnly is set.
func (s *Set) Grant(typ string, perm Perm) Grant {
	var g Grant
	unconstrained := false
	var constraints []url.Values
	for _, r := range s.Resources {
		if (r.Type != "*" && r.Type != typ) || r.Perms&perm == 0 {
			continue
		}
		if !g.Allowed {
			g.Allowed, g.PatientOnly = true, true
		}
		if r.Level != Patient {
			g.PatientOnly = false
		}
		if r.Query == nil {
			unconstrained = true
		} else {
			constraints = append(constraints, r.Query)
		}
	}
	if g.Allowed && !unconstrained {
		g.Constraints = constraints
	}
	return g
}

// String renders the set back to a scope string, sorted.
func (s *Set) String() string {
	var out []string
	for _, r := range s.Resources {
		out = append(out, r.Raw)
	}
	for c := range s.Context {
		out = append(out, c)
	}
	out = append(out, s.Other...)
	sort.Strings(out)
	return strings.Join(out, " ")
}
