package search

import (
	"strings"

	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/searchparam"
)

// SortKey is one key of _sort.
type SortKey struct {
	Code    string // parameter code, or _id / _lastUpdated
	Param   *searchparam.Param
	ParamID int32
	Desc    bool
}

// parseSort reads _sort=a,-b.
func parseSort(types []string, raw string) ([]SortKey, error) {
	var keys []SortKey
	for _, part := range strings.Split(raw, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k := SortKey{}
		if strings.HasPrefix(part, "-") {
			k.Desc, part = true, part[1:]
		}
		k.Code = part
		switch part {
		case "_id", "_lastUpdated":
			keys = append(keys, k)
			continue
		}
		p, ok := lookup(types, part)
		if !ok {
			return nil, bad("_sort", "cannot sort by %q: not a search parameter of %s", part, strings.Join(types, ","))
		}
		switch p.Type {
		case searchparam.String, searchparam.Token, searchparam.Reference, searchparam.Date,
			searchparam.Number, searchparam.Quantity, searchparam.URI:
		default:
			return nil, bad("_sort", "cannot sort by %s parameter %q", p.Type, part)
		}
		k.Param, k.ParamID = p, IDOf(p, "")
		keys = append(keys, k)
	}
	return keys, nil
}

// Include is one _include or _revinclude: resources of SourceType whose reference parameter
// Param points at TargetType (any target when empty). Param nil with Wildcard means every
// reference parameter of SourceType.
type Include struct {
	SourceType string
	Param      *searchparam.Param
	Wildcard   bool
	TargetType string
	Iterate    bool
}

// Params returns the reference parameters an include follows.
func (in Include) Params() []*searchparam.Param {
	if !in.Wildcard {
		return []*searchparam.Param{in.Param}
	}
	var out []*searchparam.Param
	for _, p := range searchparam.ForType(in.SourceType) {
		if p.Type == searchparam.Reference && p.Expression != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseInclude reads Source:param[:Target] or * (with :iterate or the R3 :recurse as modifier).
func parseInclude(types []string, name, mod, raw string, rev bool) (Include, error) {
	var inc Include
	switch mod {
	case "":
	case "iterate", "recurse":
		inc.Iterate = true
	default:
		return inc, bad(name, "unknown modifier :%s on %s", mod, strings.SplitN(name, ":", 2)[0])
	}
	if raw == "*" {
		if rev {
			return inc, unsupported(name, "_revinclude=* is not supported; name the source type and parameter")
		}
		if len(types) != 1 {
			return inc, unsupported(name, "_include=* needs a single resource type")
		}
		inc.SourceType, inc.Wildcard = types[0], true
		return inc, nil
	}
	parts := strings.Split(raw, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return inc, bad(name, "%q: want SourceType:parameter[:TargetType]", raw)
	}
	inc.SourceType = parts[0]
	if !resource.IsType(inc.SourceType) {
		return inc, bad(name, "%q is not a resource type", inc.SourceType)
	}
	if parts[1] == "*" {
		inc.Wildcard = true
	} else {
		p, ok := searchparam.Lookup(inc.SourceType, parts[1])
		if !ok || p.Type != searchparam.Reference {
			return inc, bad(name, "%s has no reference parameter %q", inc.SourceType, parts[1])
		}
		inc.Param = p
	}
	if len(parts) == 3 {
		if !resource.IsType(parts[2]) {
			return inc, bad(name, "%q is not a resource type", parts[2])
		}
		inc.TargetType = parts[2]
	}
	if !rev && !inc.Iterate && !contains(types, inc.SourceType) {
		return inc, bad(name, "_include=%s: the source type must be a searched type (%s), or use :iterate", raw, strings.Join(types, ","))
	}
	return inc, nil
}
