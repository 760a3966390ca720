package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

const (
	sdPrefix       = "http://hl7.org/fhir/StructureDefinition/"
	r4Version      = "4.0.1"
	fhirpathSystem = "http://hl7.org/fhirpath/System."
	extFHIRType    = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
)

// Kinds of StructureDefinition kept; "logical" (MetadataResource, a pattern
// no instance ever has as its type) is left out on purpose.
const (
	kindResource  = "resource"
	kindComplex   = "complex-type"
	kindPrimitive = "primitive-type"
)

type bundle struct {
	Entry []struct {
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

type structureDefinition struct {
	ResourceType   string `json:"resourceType"`
	URL            string `json:"url"`
	Type           string `json:"type"`
	Kind           string `json:"kind"`
	Derivation     string `json:"derivation"`
	BaseDefinition string `json:"baseDefinition"`
	FHIRVersion    string `json:"fhirVersion"`
	Abstract       bool   `json:"abstract"`
	Snapshot       struct {
		Element []elementDefinition `json:"element"`
	} `json:"snapshot"`
	Differential struct {
		Element []elementDefinition `json:"element"`
	} `json:"differential"`
}

// elementDefinition holds the ElementDefinition fields the tables need.
// Pointers tell "absent" from the zero value, which matters when a
// differential element overrides an inherited one.
type elementDefinition struct {
	Path             string    `json:"path"`
	Min              *int      `json:"min"`
	Max              *string   `json:"max"`
	Type             []typeRef `json:"type"`
	ContentReference string    `json:"contentReference"`
	IsSummary        *bool     `json:"isSummary"`
	IsModifier       *bool     `json:"isModifier"`
}

type typeRef struct {
	Code          string   `json:"code"`
	TargetProfile []string `json:"targetProfile"`
	Extension     []struct {
		URL      string `json:"url"`
		ValueURL string `json:"valueUrl"`
	} `json:"extension"`
}

// rawElement is an element while snapshots are being assembled: path still
// carries "[x]" and types are still the definitions' type references.
type rawElement struct {
	path       string
	min        int
	max        string
	types      []typeRef
	summary    bool
	modifier   bool
	contentRef string
}

func (e *rawElement) apply(d elementDefinition) {
	if d.Min != nil {
		e.min = *d.Min
	}
	if d.Max != nil {
		e.max = *d.Max
	}
	if len(d.Type) > 0 {
		e.types = d.Type
	}
	if d.IsSummary != nil {
		e.summary = *d.IsSummary
	}
	if d.IsModifier != nil {
		e.modifier = *d.IsModifier
	}
	if d.ContentReference != "" {
		e.contentRef = d.ContentReference
	}
}

// element is one normalised row of the generated schema table.
type element struct {
	path       string
	choice     bool
	types      []string
	min, max   int
	summary    bool
	modifier   bool
	contentRef string
	targets    []string
}

type typeInfo struct {
	name     string
	kind     string
	base     string // "" for Element and Resource
	abstract bool
	sd       *structureDefinition

	raw      []rawElement // snapshot rebuilt from differentials; nil until built
	building bool
	elements []element
	system   string // for primitives: FHIRPath system type of the value, e.g. "String"
}

type model struct {
	types         map[string]*typeInfo
	snapshotDiffs []string // where medplum's snapshots differ from the rebuilt ones
	skipped       []string // definitions left out, with the reason
}

func (m *model) sortedTypes() []*typeInfo {
	out := make([]*typeInfo, 0, len(m.types))
	for _, t := range m.types {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (m *model) resourceTypes() []string {
	var out []string
	for _, t := range m.sortedTypes() {
		if t.kind == kindResource && !t.abstract {
			out = append(out, t.name)
		}
	}
	return out
}

func (m *model) elementCount() int {
	n := 0
	for _, t := range m.types {
		n += len(t.elements)
	}
	return n
}

func readBundle(dir, name string) ([]json.RawMessage, error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	var b bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	out := make([]json.RawMessage, len(b.Entry))
	for i, e := range b.Entry {
		out[i] = e.Resource
	}
	return out, nil
}

// resourceType peeks at a resource's type, so that resources of other types,
// whose fields may clash with the struct it is decoded into, are skipped.
func resourceType(raw json.RawMessage) (string, error) {
	var r struct {
		ResourceType string `json:"resourceType"`
	}
	err := json.Unmarshal(raw, &r)
	return r.ResourceType, err
}

// loadStructures reads the core StructureDefinitions, keeps the R4 4.0.1
// resources and data types, and builds their element tables.
func loadStructures(dir string) (*model, error) {
	m := &model{types: map[string]*typeInfo{}}
	for _, file := range []string{fileTypes, fileResources} {
		entries, err := readBundle(dir, file)
		if err != nil {
			return nil, err
		}
		for _, raw := range entries {
			if kind, err := resourceType(raw); err != nil {
				return nil, fmt.Errorf("parse %s: %w", file, err)
			} else if kind != "StructureDefinition" {
				continue
			}
			var sd structureDefinition
			if err := json.Unmarshal(raw, &sd); err != nil {
				return nil, fmt.Errorf("parse %s: %w", file, err)
			}
			if reason := excluded(&sd); reason != "" {
				m.skipped = append(m.skipped, sd.URL+": "+reason)
				continue
			}
			if _, dup := m.types[sd.Type]; dup {
				return nil, fmt.Errorf("%s: type %s defined twice", file, sd.Type)
			}
			t := &typeInfo{name: sd.Type, kind: sd.Kind, abstract: sd.Abstract, sd: &sd}
			if sd.BaseDefinition != "" {
				t.base = strings.TrimPrefix(sd.BaseDefinition, sdPrefix)
			}
			m.types[t.name] = t
		}
	}
	for _, t := range m.sortedTypes() {
		if t.base != "" && m.types[t.base] == nil {
			return nil, fmt.Errorf("%s: base type %s not loaded", t.name, t.base)
		}
		if _, err := m.build(t.name); err != nil {
			return nil, err
		}
	}
	for _, t := range m.sortedTypes() {
		elems, err := normaliseAll(t, t.raw)
		if err != nil {
			return nil, err
		}
		t.elements = elems
		if t.kind == kindPrimitive {
			t.system = m.systemType(t)
		}
		theirs, err := normaliseSnapshot(t)
		if err != nil {
			return nil, err
		}
		m.snapshotDiffs = append(m.snapshotDiffs, compareSnapshots(t.name, elems, theirs)...)
	}
	return m, nil
}

// excluded says why sd is not part of the R4 tables, or "" to keep it.
func excluded(sd *structureDefinition) string {
	switch {
	case sd.URL != sdPrefix+sd.Type:
		return "not a core HL7 definition of a type (profile or extension)"
	case sd.FHIRVersion != r4Version:
		return "fhirVersion " + sd.FHIRVersion
	case sd.Kind != kindResource && sd.Kind != kindComplex && sd.Kind != kindPrimitive:
		return "kind " + sd.Kind
	case sd.Derivation == "specialization":
		return ""
	case sd.Derivation == "" && sd.Abstract && sd.BaseDefinition == "":
		return "" // Element, Resource: the roots of the hierarchy
	default:
		return "derivation " + sd.Derivation
	}
}

// build returns the snapshot of name rebuilt from the differentials: the base
// type's snapshot re-rooted at name, with each differential element either
// overriding the inherited element of the same path or inserted at the end of
// its parent's subtree. New BackboneElement/Element parts get the id,
// extension (and modifierExtension) children of their base, as the FHIR
// snapshot generator does.
//
// This, rather than reading the snapshots, is what keeps the tables R4:
// medplum edits the snapshots of its copy but leaves the differentials alone.
func (m *model) build(name string) ([]rawElement, error) {
	t := m.types[name]
	if t == nil {
		return nil, fmt.Errorf("unknown type %s", name)
	}
	if t.raw != nil {
		return t.raw, nil
	}
	if t.building {
		return nil, fmt.Errorf("%s: circular base definitions", name)
	}
	t.building = true
	defer func() { t.building = false }()

	diff := t.sd.Differential.Element
	if len(diff) == 0 || diff[0].Path != name {
		return nil, fmt.Errorf("%s: differential does not start at the root element", name)
	}
	var out []rawElement
	if t.base != "" {
		base, err := m.build(t.base)
		if err != nil {
			return nil, err
		}
		for _, e := range base {
			e.path = name + strings.TrimPrefix(e.path, t.base)
			out = append(out, e)
		}
	}
	for _, d := range diff {
		if i := slices.IndexFunc(out, func(e rawElement) bool { return e.path == d.Path }); i >= 0 {
			out[i].apply(d)
			continue
		}
		e := rawElement{max: "*"}
		if d.Path != name {
			e.max = "1"
		}
		e.path = d.Path
		e.apply(d)
		ins := []rawElement{e}
		if d.Path != name && len(e.types) == 1 && (e.types[0].Code == "BackboneElement" || e.types[0].Code == "Element") {
			part, err := m.build(e.types[0].Code)
			if err != nil {
				return nil, err
			}
			for _, c := range part[1:] {
				c.path = d.Path + strings.TrimPrefix(c.path, e.types[0].Code)
				ins = append(ins, c)
			}
		}
		at := len(out)
		if d.Path != name {
			parent := d.Path[:strings.LastIndexByte(d.Path, '.')]
			p := slices.IndexFunc(out, func(e rawElement) bool { return e.path == parent })
			if p < 0 {
				return nil, fmt.Errorf("%s: parent of %s not defined before it", name, d.Path)
			}
			at = p + 1
			for at < len(out) && strings.HasPrefix(out[at].path, parent+".") {
				at++
			}
		}
		out = slices.Insert(out, at, ins...)
	}
	t.raw = out
	return out, nil
}

func normaliseAll(t *typeInfo, raw []rawElement) ([]element, error) {
	out := make([]element, 0, len(raw))
	for _, r := range raw {
		e, err := normalise(t, r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.path, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// normaliseSnapshot normalises medplum's own snapshot of t, only to compare it.
func normaliseSnapshot(t *typeInfo) ([]element, error) {
	raw := make([]rawElement, 0, len(t.sd.Snapshot.Element))
	for _, d := range t.sd.Snapshot.Element {
		e := rawElement{path: d.Path}
		e.apply(d)
		raw = append(raw, e)
	}
	return normaliseAll(t, raw)
}

func normalise(t *typeInfo, r rawElement) (element, error) {
	e := element{
		path:     strings.TrimSuffix(r.path, "[x]"),
		choice:   strings.HasSuffix(r.path, "[x]"),
		min:      r.min,
		summary:  r.summary,
		modifier: r.modifier,
	}
	if strings.Contains(e.path, "[x]") {
		return e, fmt.Errorf("choice marker inside a path")
	}
	switch r.max {
	case "*":
		e.max = -1
	default:
		n, err := strconv.Atoi(r.max)
		if err != nil {
			return e, fmt.Errorf("max %q: %w", r.max, err)
		}
		e.max = n
	}
	if r.contentRef != "" {
		if !strings.HasPrefix(r.contentRef, "#") {
			return e, fmt.Errorf("contentReference %q is not local", r.contentRef)
		}
		e.contentRef = strings.TrimPrefix(r.contentRef, "#")
	}
	for _, tr := range r.types {
		code, err := typeCode(t, e.path, tr)
		if err != nil {
			return e, err
		}
		if !slices.Contains(e.types, code) {
			e.types = append(e.types, code)
		}
		if tr.Code != "Reference" && tr.Code != "canonical" {
			continue
		}
		for _, p := range tr.TargetProfile {
			name := p[strings.LastIndexByte(p, '/')+1:]
			if !slices.Contains(e.targets, name) {
				e.targets = append(e.targets, name)
			}
		}
	}
	return e, nil
}

// typeCode turns a type reference into the FHIR type code Billy uses.
//
// The definitions type a few elements with FHIRPath system types instead of
// FHIR types: Element.id, Extension.url, Resource.id and the value of every
// primitive. Their structuredefinition-fhir-type extension names the FHIR
// type, which is used instead, with one exception: R4 4.0.1 labels Resource.id
// "string" there, a defect of that build (R4B fixed it) that contradicts the
// R4 spec page and JSON schema, both of which say id.
func typeCode(t *typeInfo, path string, tr typeRef) (string, error) {
	if !strings.HasPrefix(tr.Code, fhirpathSystem) {
		return tr.Code, nil
	}
	if t.kind == kindResource && path == t.name+".id" {
		return "id", nil
	}
	for _, x := range tr.Extension {
		if x.URL == extFHIRType && x.ValueURL != "" {
			return x.ValueURL, nil
		}
	}
	switch sys := strings.TrimPrefix(tr.Code, fhirpathSystem); sys {
	case "String", "Boolean", "Integer", "Decimal", "Date", "DateTime", "Time":
		return strings.ToLower(sys[:1]) + sys[1:], nil
	default:
		return "", fmt.Errorf("unknown FHIRPath system type %s", tr.Code)
	}
}

// systemType is the FHIRPath system type of a primitive's value, e.g.
// "String" for code, "DateTime" for instant.
//
// A primitive derived from another primitive takes its base's system type.
// That only matters for positiveInt and unsignedInt, whose values R4 4.0.1
// types as System.String, contradicting R4's own JSON format (numbers) and
// FHIRPath's mapping of them to Integer; R4B corrected it.
func (m *model) systemType(t *typeInfo) string {
	if b := m.types[t.base]; b != nil && b.kind == kindPrimitive {
		return m.systemType(b)
	}
	for _, r := range t.raw {
		if r.path != t.name+".value" {
			continue
		}
		for _, tr := range r.types {
			if s, ok := strings.CutPrefix(tr.Code, fhirpathSystem); ok {
				return s
			}
		}
	}
	return ""
}

// compareSnapshots lists how theirs (medplum's snapshot) differs from ours.
func compareSnapshots(typ string, ours, theirs []element) []string {
	var out []string
	byPath := func(es []element) map[string]element {
		m := make(map[string]element, len(es))
		for _, e := range es {
			m[e.path] = e
		}
		return m
	}
	o, th := byPath(ours), byPath(theirs)
	for _, e := range theirs {
		if _, ok := o[e.path]; !ok {
			out = append(out, fmt.Sprintf("%s: snapshot adds %s (not in the differential)", typ, e.path))
		}
	}
	var common, commonTheirs []string
	for _, e := range theirs {
		if _, ok := o[e.path]; ok {
			commonTheirs = append(commonTheirs, e.path)
		}
	}
	for _, e := range ours {
		if _, ok := th[e.path]; ok {
			common = append(common, e.path)
		}
	}
	if !slices.Equal(common, commonTheirs) {
		out = append(out, fmt.Sprintf("%s: snapshot orders elements differently", typ))
	}
	for _, e := range ours {
		x, ok := th[e.path]
		if !ok {
			out = append(out, fmt.Sprintf("%s: snapshot lacks %s (in the differential)", typ, e.path))
			continue
		}
		if d := describeDiff(e, x); d != "" {
			out = append(out, fmt.Sprintf("%s: snapshot changes %s: %s", typ, e.path, d))
		}
	}
	return out
}

func describeDiff(ours, theirs element) string {
	var d []string
	if !slices.Equal(ours.types, theirs.types) {
		d = append(d, fmt.Sprintf("types %v -> %v", ours.types, theirs.types))
	}
	if !slices.Equal(ours.targets, theirs.targets) {
		d = append(d, fmt.Sprintf("targets %v -> %v", ours.targets, theirs.targets))
	}
	if ours.min != theirs.min || ours.max != theirs.max {
		d = append(d, fmt.Sprintf("cardinality %d..%d -> %d..%d", ours.min, ours.max, theirs.min, theirs.max))
	}
	if ours.summary != theirs.summary {
		d = append(d, fmt.Sprintf("isSummary %v -> %v", ours.summary, theirs.summary))
	}
	if ours.modifier != theirs.modifier {
		d = append(d, fmt.Sprintf("isModifier %v -> %v", ours.modifier, theirs.modifier))
	}
	if ours.contentRef != theirs.contentRef || ours.choice != theirs.choice {
		d = append(d, "contentReference or choice")
	}
	return strings.Join(d, "; ")
}
