package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode"
)

type searchParameter struct {
	ResourceType string   `json:"resourceType"`
	ID           string   `json:"id"`
	URL          string   `json:"url"`
	Version      string   `json:"version"`
	Code         string   `json:"code"`
	Base         []string `json:"base"`
	Type         string   `json:"type"`
	Expression   string   `json:"expression"`
	Target       []string `json:"target"`
	Comparator   []string `json:"comparator"`
	Modifier     []string `json:"modifier"`
	Chain        []string `json:"chain"`
	MultipleOr   *bool    `json:"multipleOr"`
	MultipleAnd  *bool    `json:"multipleAnd"`
	Component    []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

type param struct {
	code, url, typ, base, expression string
	targets, comparators, modifiers  []string
	chain                            []string
	multipleOr, multipleAnd          *bool
	components                       []component
}

type component struct{ definition, code, expression string }

type compartmentEntry struct {
	resourceType string
	params       []string
}

type registry struct {
	sourceCount int // SearchParameter entries in the file
	keptCount   int // of which R4 4.0.1
	params      []param
	compartment []compartmentEntry
	resources   [][2]string // concrete resource type, its base type
	notes       []string
}

// commonBases are the bases of the parameters every resource has.
var commonBases = []string{"Resource", "DomainResource"}

// loadSearchParams builds the per-base parameter table and the patient
// compartment. m supplies the R4 resource types, to check bases against.
func loadSearchParams(dir string, m *model) (*registry, error) {
	entries, err := readBundle(dir, fileSearch)
	if err != nil {
		return nil, err
	}
	reg := &registry{}
	for _, name := range m.resourceTypes() {
		reg.resources = append(reg.resources, [2]string{name, m.types[name].base})
	}
	isBase := func(name string) bool {
		t := m.types[name]
		return t != nil && t.kind == kindResource
	}

	var defs []searchParameter
	codeByURL := map[string]string{}
	for _, raw := range entries {
		if kind, err := resourceType(raw); err != nil {
			return nil, fmt.Errorf("parse %s: %w", fileSearch, err)
		} else if kind != "SearchParameter" {
			continue
		}
		var sp searchParameter
		if err := json.Unmarshal(raw, &sp); err != nil {
			return nil, fmt.Errorf("parse %s: %w", fileSearch, err)
		}
		reg.sourceCount++
		codeByURL[sp.URL] = sp.Code
		// medplum ships one R5 draft among the R4 definitions
		// (DeviceDefinition-classification, version 5.0.0-snapshot1, on an
		// element R4 does not have).
		if sp.Version != r4Version {
			reg.notes = append(reg.notes, fmt.Sprintf("%s: skipped, version %s", sp.URL, sp.Version))
			continue
		}
		reg.keptCount++
		defs = append(defs, sp)
	}

	seen := map[[2]string]string{}
	for _, sp := range defs {
		bs := branches(sp.Expression)
		// InsurancePlan-name's expression is "name | alias" in R4 itself:
		// the only one whose paths lack the type. Root them in its base.
		for i, b := range bs {
			if r := root(b); len(sp.Base) == 1 && r != "" && unicode.IsLower(rune(r[0])) && b[0] != '(' {
				bs[i] = sp.Base[0] + "." + b
				reg.notes = append(reg.notes, fmt.Sprintf("%s: rooted %q in %s", sp.URL, b, sp.Base[0]))
			}
		}
		used := make([]bool, len(bs))
		for _, base := range sp.Base {
			if !isBase(base) {
				return nil, fmt.Errorf("%s: base %s is not an R4 resource type", sp.URL, base)
			}
			key := [2]string{base, sp.Code}
			if other, dup := seen[key]; dup {
				return nil, fmt.Errorf("%s and %s both define %s for %s", other, sp.URL, sp.Code, base)
			}
			seen[key] = sp.URL

			var kept []string
			for i, b := range bs {
				if root(b) == base {
					kept = append(kept, b)
					used[i] = true
				}
			}
			p := param{
				code:        sp.Code,
				url:         sp.URL,
				typ:         sp.Type,
				base:        base,
				expression:  strings.Join(kept, " | "),
				targets:     slices.Sorted(slices.Values(sp.Target)),
				comparators: sp.Comparator,
				modifiers:   sp.Modifier,
				chain:       sp.Chain,
				multipleOr:  sp.MultipleOr,
				multipleAnd: sp.MultipleAnd,
			}
			if sp.Expression != "" && p.expression == "" {
				reg.notes = append(reg.notes, fmt.Sprintf("%s: no expression branch for base %s", sp.URL, base))
			}
			for _, c := range sp.Component {
				code, ok := codeByURL[c.Definition]
				if !ok {
					return nil, fmt.Errorf("%s: component definition %s not found", sp.URL, c.Definition)
				}
				p.components = append(p.components, component{definition: c.Definition, code: code, expression: c.Expression})
			}
			reg.params = append(reg.params, p)
		}
		for i, b := range bs {
			if !used[i] {
				reg.notes = append(reg.notes, fmt.Sprintf("%s: branch %q matches none of its bases", sp.URL, b))
			}
		}
	}
	sort.Slice(reg.params, func(i, j int) bool {
		a, b := reg.params[i], reg.params[j]
		if a.base != b.base {
			return a.base < b.base
		}
		return a.code < b.code
	})

	comp, notes, err := loadCompartment(dir, reg)
	if err != nil {
		return nil, err
	}
	reg.compartment = comp
	reg.notes = append(reg.notes, notes...)
	return reg, nil
}

// splitUnion splits a FHIRPath expression on its top-level "|" operators,
// leaving alone those inside parentheses, brackets, braces and string or
// delimited-identifier literals.
func splitUnion(expr string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			depth--
		case c == '|' && depth == 0:
			out = append(out, strings.TrimSpace(expr[start:i]))
			start = i + 1
		}
	}
	if rest := strings.TrimSpace(expr[start:]); rest != "" || len(out) > 0 {
		out = append(out, rest)
	}
	return out
}

// enclosed reports whether s is wholly wrapped in one pair of parentheses.
func enclosed(s string) bool {
	if len(s) < 2 || s[0] != '(' || s[len(s)-1] != ')' {
		return false
	}
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 && i != len(s)-1 {
				return false
			}
		}
	}
	return true
}

// branches is splitUnion that also opens parenthesised unions, so
// "(A.x | B.y)" yields both. A branch that is a single parenthesised term
// keeps its parentheses: the text is never rewritten, only selected.
func branches(expr string) []string {
	var out []string
	for _, b := range splitUnion(expr) {
		inner := b
		for enclosed(inner) {
			inner = strings.TrimSpace(inner[1 : len(inner)-1])
		}
		if len(splitUnion(inner)) > 1 {
			out = append(out, branches(inner)...)
			continue
		}
		out = append(out, b)
	}
	return out
}

// root is the first path segment of a branch, after any opening parentheses.
func root(branch string) string {
	s := strings.TrimLeft(branch, "( \t\n")
	end := strings.IndexFunc(s, func(r rune) bool {
		return !(r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r))
	})
	if end < 0 {
		end = len(s)
	}
	return s[:end]
}

type compartmentDefinition struct {
	ResourceType string `json:"resourceType"`
	URL          string `json:"url"`
	Code         string `json:"code"`
	Text         struct {
		Div string `json:"div"`
	} `json:"text"`
	Resource []struct {
		Code  string   `json:"code"`
		Param []string `json:"param"`
	} `json:"resource"`
}

// compartmentFixes undoes medplum's edits of the patient compartment's
// structured data, restoring R4 as published: R4 links Encounter through
// "patient" (medplum: "subject"), and lists Task among the resources never in
// the compartment (medplum adds it with "patient" and "focus"). The
// definition's HL7-generated narrative still shows R4's table, and
// loadCompartment checks the corrected data against it.
var compartmentFixes = map[string][]string{
	"Encounter": {"patient"},
	"Task":      nil,
}

var narrativeRow = regexp.MustCompile(`<tr><td><a href="[^"]*">(\w+)</a></td><td>([^<]*)</td></tr>`)

func loadCompartment(dir string, reg *registry) ([]compartmentEntry, []string, error) {
	data, err := os.ReadFile(filepath.Join(dir, fileCompartment))
	if err != nil {
		return nil, nil, err
	}
	var cd compartmentDefinition
	if err := json.Unmarshal(data, &cd); err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", fileCompartment, err)
	}
	if cd.ResourceType != "CompartmentDefinition" || cd.Code != "Patient" {
		return nil, nil, fmt.Errorf("%s: not the patient compartment", fileCompartment)
	}

	narrative := map[string][]string{}
	for _, m := range narrativeRow.FindAllStringSubmatch(cd.Text.Div, -1) {
		var ps []string
		for _, p := range strings.Split(m[2], ",") {
			ps = append(ps, strings.TrimSpace(p))
		}
		narrative[m[1]] = ps
	}

	has := map[[2]string]bool{}
	for _, p := range reg.params {
		has[[2]string{p.base, p.code}] = true
	}

	var out []compartmentEntry
	var notes []string
	for _, r := range cd.Resource {
		params := r.Param
		if fix, ok := compartmentFixes[r.Code]; ok {
			if slices.Equal(fix, params) {
				return nil, nil, fmt.Errorf("%s: compartment fix for %s no longer needed", fileCompartment, r.Code)
			}
			notes = append(notes, fmt.Sprintf("patient compartment: %s %v restored to R4's %v", r.Code, params, fix))
			params = fix
		}
		if !slices.Equal(params, narrative[r.Code]) {
			return nil, nil, fmt.Errorf("%s: %s has params %v, narrative says %v", fileCompartment, r.Code, params, narrative[r.Code])
		}
		if len(params) == 0 {
			continue
		}
		for _, p := range params {
			if !has[[2]string{r.Code, p}] {
				return nil, nil, fmt.Errorf("%s: %s links by %s, which is not a search parameter of it", fileCompartment, r.Code, p)
			}
		}
		out = append(out, compartmentEntry{resourceType: r.Code, params: params})
	}
	if len(out) != len(narrative) {
		return nil, nil, fmt.Errorf("%s: %d resource types in the compartment, narrative lists %d", fileCompartment, len(out), len(narrative))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].resourceType < out[j].resourceType })
	return out, notes, nil
}

var typeConst = map[string]string{
	"number":    "Number",
	"date":      "Date",
	"string":    "String",
	"token":     "Token",
	"reference": "Reference",
	"composite": "Composite",
	"quantity":  "Quantity",
	"uri":       "URI",
	"special":   "Special",
}

func flagConst(b *bool) string {
	switch {
	case b == nil:
		return ""
	case *b:
		return "FlagTrue"
	default:
		return "FlagFalse"
	}
}

func emitSearchParams(reg *registry) ([]byte, error) {
	var b bytes.Buffer
	header(&b, "searchparam", "fhir/searchparam/doc.go")

	fmt.Fprintf(&b, "// Counts of the source file, for tests.\nconst (\n")
	fmt.Fprintf(&b, "sourceDefinitions = %d // SearchParameter entries in %s\n", reg.sourceCount, fileSearch)
	fmt.Fprintf(&b, "r4Definitions = %d // of which R4 4.0.1, the ones in params\n)\n\n", reg.keptCount)

	b.WriteString("// resourceTypes lists the concrete R4 resource types and the type each derives from.\n")
	b.WriteString("var resourceTypes = [...]resourceType{\n")
	for _, r := range reg.resources {
		fmt.Fprintf(&b, "{%q, %q},\n", r[0], r[1])
	}
	b.WriteString("}\n\n")

	b.WriteString("// params holds one entry per definition and base, sorted by base then code.\n")
	b.WriteString("var params = [...]Param{\n")
	for _, p := range reg.params {
		tc, ok := typeConst[p.typ]
		if !ok {
			return nil, fmt.Errorf("%s: unknown type %q", p.url, p.typ)
		}
		f := []string{
			fmt.Sprintf("Code: %q", p.code),
			fmt.Sprintf("URL: %q", p.url),
			"Type: " + tc,
			fmt.Sprintf("Base: %q", p.base),
		}
		if p.expression != "" {
			f = append(f, fmt.Sprintf("Expression: %q", p.expression))
		}
		if len(p.targets) > 0 {
			f = append(f, "Targets: "+quoteList(p.targets))
		}
		if len(p.components) > 0 {
			var cs []string
			for _, c := range p.components {
				cs = append(cs, fmt.Sprintf("{Definition: %q, Code: %q, Expression: %q}", c.definition, c.code, c.expression))
			}
			f = append(f, "Components: []Component{"+strings.Join(cs, ", ")+"}")
		}
		if len(p.comparators) > 0 {
			f = append(f, "Comparators: "+quoteList(p.comparators))
		}
		if len(p.modifiers) > 0 {
			f = append(f, "Modifiers: "+quoteList(p.modifiers))
		}
		if c := flagConst(p.multipleOr); c != "" {
			f = append(f, "MultipleOr: "+c)
		}
		if c := flagConst(p.multipleAnd); c != "" {
			f = append(f, "MultipleAnd: "+c)
		}
		if len(p.chain) > 0 {
			f = append(f, "Chain: "+quoteList(p.chain))
		}
		fmt.Fprintf(&b, "{%s},\n", strings.Join(f, ", "))
	}
	b.WriteString("}\n\n")

	b.WriteString("// patientCompartment lists the resource types in the R4 patient compartment, sorted,\n")
	b.WriteString("// with the parameters that link them to the patient in the definition's order.\n")
	b.WriteString("var patientCompartment = [...]compartmentEntry{\n")
	for _, c := range reg.compartment {
		fmt.Fprintf(&b, "{%q, %s},\n", c.resourceType, quoteList(c.params))
	}
	b.WriteString("}\n")
	return gofmt(&b)
}
