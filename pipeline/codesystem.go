package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/rest"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/pipeline/codes"
)

// The code sets (pipeline/codes) are exposed as FHIR: a CodeSystem resource per system (id = the
// system's name: icd10cm, hcpcs, cpt; content not-present, since the concepts live in the code
// tables) and the $lookup and $validate-code operations over them.

var systemTitles = map[string]string{
	codes.ICD10CM: "ICD-10-CM", codes.HCPCS: "HCPCS Level II", codes.CPT: "CPT (user-imported)",
}

// systemOfURL maps a CodeSystem url to Billy's system name.
func systemOfURL(u string) (string, bool) {
	for _, s := range codes.Systems {
		if codes.URL(s) == u {
			return s, true
		}
	}
	return "", false
}

// InstallCodeSystems stores (or refreshes) the CodeSystem resource of every imported system: its
// current version and code count.
func (p *Pipeline) InstallCodeSystems(ctx context.Context) error {
	if p.Codes == nil {
		return nil
	}
	versions, err := p.Codes.Versions(ctx)
	if err != nil {
		return err
	}
	return p.Store.InTx(ctx, func(tx *store.Tx) error {
		for _, v := range versions {
			if !v.Current {
				continue
			}
			cs := map[string]any{
				"resourceType":  "CodeSystem",
				"url":           codes.URL(v.System),
				"version":       v.Version,
				"name":          v.System,
				"title":         systemTitles[v.System],
				"status":        "active",
				"caseSensitive": false,
				"content":       "not-present",
				"count":         v.Codes,
				"description":   fmt.Sprintf("Imported by billy codes import from %s; query it with $lookup and $validate-code.", v.Source),
			}
			if cur, err := tx.Read(ctx, "CodeSystem", v.System); err == nil && !cur.Deleted() {
				var old map[string]any
				if json.Unmarshal(cur.Content, &old) == nil && old["version"] == v.Version && old["count"] == float64(v.Codes) {
					continue
				}
			} else if err != nil && !errors.Is(err, fhir.ErrNotFound) {
				return err
			}
			if _, err := p.put(ctx, tx, "CodeSystem", v.System, cs, 0); err != nil {
				return fmt.Errorf("CodeSystem/%s: %w", v.System, err)
			}
		}
		return nil
	})
}

func (p *Pipeline) codeSystemOperations() []*rest.Operation {
	return []*rest.Operation{
		{Name: "lookup", Types: []string{"CodeSystem"}, TypeLevel: true, InstanceLevel: true, Safe: true, Perm: rest.PermRead,
			Definition: Canonical + "/OperationDefinition/CodeSystem-lookup", Run: p.lookupOp},
		{Name: "validate-code", Types: []string{"CodeSystem"}, TypeLevel: true, InstanceLevel: true, Safe: true, Perm: rest.PermRead,
			Definition: Canonical + "/OperationDefinition/CodeSystem-validate-code", Run: p.validateCodeOp},
	}
}

// codeRequest is the code an operation asks about: from the query (GET) or the Parameters (POST),
// as system+code or a Coding; on an instance, the system is the CodeSystem's.
type codeRequest struct {
	system, code, version, display string
}

func readCodeRequest(in rest.OperationInput, systemParam string) (codeRequest, error) {
	var r codeRequest
	get := func(name string) string {
		if in.Params == nil {
			return in.Query.Get(name)
		}
		for _, p := range items(in.Params.Get("parameter")) {
			if p.GetString("name") == name {
				for _, k := range []string{"valueCode", "valueUri", "valueString", "valueCanonical"} {
					if s := p.GetString(k); s != "" {
						return s
					}
				}
			}
		}
		return ""
	}
	r.system, r.code, r.version, r.display = get(systemParam), get("code"), get("version"), get("display")
	if in.Params != nil {
		for _, p := range items(in.Params.Get("parameter")) {
			if c := p.Get("valueCoding"); p.GetString("name") == "coding" && c != nil {
				r.system, r.code, r.version = c.GetString("system"), c.GetString("code"), c.GetString("version")
			}
		}
	}
	if in.Target != nil {
		t, err := jsontree.Parse(in.Target.Content)
		if err != nil {
			return r, err
		}
		r.system = t.GetString("url")
	}
	if r.code == "" {
		return r, fhir.Invalid("required", "Parameters.parameter", "a code is required (code and %s, or coding)", systemParam)
	}
	if r.system == "" {
		return r, fhir.Invalid("required", "Parameters.parameter", "the code system is required (%s, or coding.system)", systemParam)
	}
	return r, nil
}

// lookupCode finds a request's code; found is false when the system is known but lacks the code.
func (p *Pipeline) lookupCode(ctx context.Context, r codeRequest) (c codes.Code, found bool, err error) {
	sys, ok := systemOfURL(r.system)
	if !ok {
		return c, false, fhir.Errorf(fhir.ErrNotFound, "not-found", "code system %q is not one of Billy's (%s, %s, %s)", r.system,
			codes.URL(codes.ICD10CM), codes.URL(codes.HCPCS), codes.URL(codes.CPT))
	}
	if p.Codes == nil {
		return c, false, fhir.Errorf(fhir.ErrNotFound, "not-found", "no code sets are loaded")
	}
	cur, err := p.Codes.CurrentVersion(ctx, sys)
	if errors.Is(err, codes.ErrNotFound) {
		return c, false, fhir.Errorf(fhir.ErrNotFound, "not-found", "%s is not imported (billy codes import %s FILE)", systemTitles[sys], sys)
	}
	if err != nil {
		return c, false, err
	}
	if r.version != "" && r.version != cur {
		return c, false, fhir.Errorf(fhir.ErrNotFound, "not-found", "version %q of %s is not the loaded one (%s)", r.version, systemTitles[sys], cur)
	}
	c, err = p.Codes.Lookup(ctx, sys, r.code)
	if errors.Is(err, codes.ErrNotFound) {
		return c, false, nil
	}
	return c, err == nil, err
}

func (p *Pipeline) lookupOp(ctx context.Context, in rest.OperationInput) (*rest.OperationResult, error) {
	r, err := readCodeRequest(in, "system")
	if err != nil {
		return nil, err
	}
	c, found, err := p.lookupCode(ctx, r)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fhir.Errorf(fhir.ErrNotFound, "not-found", "%s is not a code of %s", r.code, r.system)
	}
	prop := func(code string, value map[string]any) map[string]any {
		parts := []any{map[string]any{"name": "code", "valueCode": code}}
		for k, v := range value {
			parts = append(parts, map[string]any{"name": "value", k: v})
		}
		return map[string]any{"name": "property", "part": parts}
	}
	params := []any{
		map[string]any{"name": "name", "valueString": systemTitles[c.System]},
		map[string]any{"name": "version", "valueString": c.Version},
		map[string]any{"name": "display", "valueString": c.Display},
		prop("billable", map[string]any{"valueBoolean": c.Billable}),
		prop("status", map[string]any{"valueCode": c.Status}),
	}
	for _, kv := range [][2]string{{"category", c.Category}, {"section", c.Section}, {"chapter", c.Chapter}} {
		if kv[1] != "" {
			params = append(params, prop(kv[0], map[string]any{"valueString": kv[1]}))
		}
	}
	return parametersResult(params)
}

func (p *Pipeline) validateCodeOp(ctx context.Context, in rest.OperationInput) (*rest.OperationResult, error) {
	r, err := readCodeRequest(in, "url")
	if err != nil {
		return nil, err
	}
	c, found, err := p.lookupCode(ctx, r)
	if err != nil && !errors.Is(err, fhir.ErrNotFound) {
		return nil, err
	}
	var result bool
	var message string
	switch {
	case err != nil:
		message = err.Error()
	case !found:
		message = fmt.Sprintf("%s is not a code of %s", r.code, r.system)
	case !c.Billable:
		message = fmt.Sprintf("%s (%s) exists but is not billable: use a more specific code", c.Code, c.Display)
	case c.Status != "" && c.Status != "active":
		message = fmt.Sprintf("%s is %s", c.Code, c.Status)
	default:
		result = true
		if r.display != "" && r.display != c.Display && r.display != c.ShortDisplay {
			message = fmt.Sprintf("the display %q is not the code's display %q", r.display, c.Display)
		}
	}
	params := []any{map[string]any{"name": "result", "valueBoolean": result}}
	if message != "" {
		params = append(params, map[string]any{"name": "message", "valueString": message})
	}
	if found {
		params = append(params, map[string]any{"name": "display", "valueString": c.Display})
	}
	return parametersResult(params)
}

func parametersResult(params []any) (*rest.OperationResult, error) {
	b, err := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": params})
	if err != nil {
		return nil, err
	}
	return &rest.OperationResult{Body: b}, nil
}
