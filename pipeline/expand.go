package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/rest"
	"github.com/iambilly/billy/pipeline/codes"
)

// ValueSet/$expand over the code sets is the type-ahead the Review app searches as the coder
// types: url names a whole code system's implicit value set (the CodeSystem url, with or without
// FHIR's "?fhir_vs" suffix), filter is the text typed (words of the description, the last one
// possibly unfinished, or the start of a code), count bounds the answer. It answers a ValueSet with
// expansion.contains, codes under a typed code first in code order, then the best matches of the
// words, from codes.Store.Complete over the current version.

// Bounds of an expansion.
const (
	expandDefaultCount = 20
	expandMaxCount     = 50
	expandMaxFilter    = 200
)

func (p *Pipeline) expandOperation() *rest.Operation {
	return &rest.Operation{Name: "expand", Types: []string{"ValueSet"}, TypeLevel: true, Safe: true, Perm: rest.PermRead,
		Definition: Canonical + "/OperationDefinition/ValueSet-expand", Run: p.expandOp}
}

func (p *Pipeline) expandOp(ctx context.Context, in rest.OperationInput) (*rest.OperationResult, error) {
	get := func(name string) string {
		if in.Params == nil {
			return in.Query.Get(name)
		}
		for _, pr := range items(in.Params.Get("parameter")) {
			if pr.GetString("name") == name {
				for _, k := range []string{"valueUri", "valueString", "valueCanonical", "valueInteger"} {
					if v := pr.Get(k); v != nil {
						s := strings.Trim(string(v.Marshal()), `"`)
						return s
					}
				}
			}
		}
		return ""
	}
	vsURL := strings.TrimSuffix(get("url"), "?fhir_vs")
	if vsURL == "" {
		return nil, fhir.Invalid("required", "Parameters.parameter", "url is required: a code system's url (its implicit value set), e.g. %s", codes.URL(codes.ICD10CM))
	}
	sys, ok := systemOfURL(vsURL)
	if !ok {
		return nil, fhir.Errorf(fhir.ErrNotFound, "not-found", "value set %q is not one of Billy's code systems (%s, %s, %s)", vsURL,
			codes.URL(codes.ICD10CM), codes.URL(codes.HCPCS), codes.URL(codes.CPT))
	}
	filter := strings.TrimSpace(get("filter"))
	if len(filter) > expandMaxFilter {
		return nil, fhir.Invalid("too-long", "Parameters.parameter", "filter is longer than %d characters", expandMaxFilter)
	}
	if filter == "" {
		return nil, fhir.Invalid("too-costly", "Parameters.parameter", "a filter is required: the code systems are too large to expand whole")
	}
	count := expandDefaultCount
	if s := get("count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, fhir.Invalid("invalid", "Parameters.parameter", "count must be a non-negative integer, not %q", s)
		}
		count = min(n, expandMaxCount)
	}
	if p.Codes == nil {
		return nil, fhir.Errorf(fhir.ErrNotFound, "not-found", "no code sets are loaded")
	}
	var contains []any
	version := ""
	if count > 0 {
		found, err := p.Codes.Complete(ctx, sys, filter, count)
		if err != nil {
			return nil, err
		}
		for _, c := range found {
			version = c.Version
			contains = append(contains, map[string]any{"system": vsURL, "version": c.Version, "code": c.Code, "display": c.Display})
		}
	}
	exp := map[string]any{
		"timestamp": resource.FormatInstant(p.now()),
		"total":     len(contains),
		"parameter": []any{map[string]any{"name": "filter", "valueString": filter}, map[string]any{"name": "count", "valueInteger": count}},
	}
	if version != "" {
		exp["parameter"] = append(exp["parameter"].([]any), map[string]any{"name": "version", "valueUri": vsURL + "|" + version})
	}
	if len(contains) > 0 {
		exp["contains"] = contains
	}
	vs := map[string]any{"resourceType": "ValueSet", "url": vsURL + "?fhir_vs", "status": "active",
		"name": fmt.Sprintf("%s codes", systemTitles[sys]), "expansion": exp}
	b, err := json.Marshal(vs)
	if err != nil {
		return nil, err
	}
	return &rest.OperationResult{Body: b}, nil
}
