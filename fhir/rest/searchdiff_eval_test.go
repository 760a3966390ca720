package rest_test

// This file is the second opinion of TestSearchDifferential: a deliberately plain, in-memory
// implementation of FHIR R4 search (http://hl7.org/fhir/R4/search.html) that walks the stored JSON
// of every resource. It shares no code with fhir/search, fhir/store or fhir/fhirpath, so a
// misreading of the specification there does not hide here. Speed does not matter; clarity does.
//
// Where the specification leaves a result open (the time zone of a date without one, whether the
// bounds of a decimal's implicit range are inclusive, the system of a bare code element) the
// evaluator answers "maybe" for that resource and the comparison accepts either answer.

import (
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/text/unicode/norm"

	"github.com/iambilly/billy/fhir/jsontree"
)

// tri is a three-valued verdict: whether a resource matches, does not, or may under a reading the
// specification allows.
type tri uint8

const (
	triNo tri = iota
	triMaybe
	triYes
)

func and3(a, b tri) tri { return min(a, b) }
func or3(a, b tri) tri  { return max(a, b) }
func not3(a tri) tri    { return triYes - a }

func boolTri(b bool) tri {
	if b {
		return triYes
	}
	return triNo
}

// paramKind is the FHIR search parameter type.
type paramKind uint8

const (
	kString paramKind = iota
	kToken
	kReference
	kDate
	kQuantity
	kComposite
	kID // _id: a token on Resource.id
)

// paramDef is one search parameter: its type and the JSON paths (choice types spelled out, arrays
// flattened at every step) of the elements it indexes.
type paramDef struct {
	kind  paramKind
	paths []string
	// target restricts a reference parameter to references of one type, as in
	// "Observation.subject.where(resolve() is Patient)"; targets lists what the parameter may point
	// to, which decides whether a chain needs a :Type modifier.
	target  string
	targets []string
	// comp are the two components of a composite parameter, evaluated on each element of paths
	// ("" is the resource itself).
	comp []paramDef
}

var humanName = []string{"name"}

// params are the R4 search parameters the differential test queries, per resource type, with the
// expressions of the R4 SearchParameter definitions rewritten as paths.
var params = map[string]map[string]paramDef{
	"Patient": {
		"_id":                {kind: kID},
		"gender":             {kind: kToken, paths: []string{"gender"}},
		"birthdate":          {kind: kDate, paths: []string{"birthDate"}},
		"death-date":         {kind: kDate, paths: []string{"deceasedDateTime"}},
		"family":             {kind: kString, paths: []string{"name.family"}},
		"given":              {kind: kString, paths: []string{"name.given"}},
		"name":               {kind: kString, paths: humanName},
		"identifier":         {kind: kToken, paths: []string{"identifier"}},
		"address":            {kind: kString, paths: []string{"address"}},
		"address-city":       {kind: kString, paths: []string{"address.city"}},
		"address-state":      {kind: kString, paths: []string{"address.state"}},
		"address-postalcode": {kind: kString, paths: []string{"address.postalCode"}},
		"language":           {kind: kToken, paths: []string{"communication.language"}},
	},
	"Observation": {
		"_id":      {kind: kID},
		"code":     {kind: kToken, paths: []string{"code"}},
		"category": {kind: kToken, paths: []string{"category"}},
		"status":   {kind: kToken, paths: []string{"status"}},
		"subject":  {kind: kReference, paths: []string{"subject"}, targets: []string{"Device", "Group", "Location", "Patient"}},
		"patient":  {kind: kReference, paths: []string{"subject"}, target: "Patient", targets: []string{"Patient"}},
		// clinical-encounter: a chain through it needs :Encounter, as EpisodeOfCare is a target too.
		"encounter":                {kind: kReference, paths: []string{"encounter"}, targets: []string{"Encounter", "EpisodeOfCare"}},
		"date":                     {kind: kDate, paths: []string{"effectiveDateTime", "effectivePeriod", "effectiveInstant"}},
		"value-quantity":           {kind: kQuantity, paths: []string{"valueQuantity"}},
		"value-concept":            {kind: kToken, paths: []string{"valueCodeableConcept"}},
		"component-code":           {kind: kToken, paths: []string{"component.code"}},
		"component-value-quantity": {kind: kQuantity, paths: []string{"component.valueQuantity"}},
		"code-value-quantity": {kind: kComposite, paths: []string{""}, comp: []paramDef{
			{kind: kToken, paths: []string{"code"}}, {kind: kQuantity, paths: []string{"valueQuantity"}}}},
		"component-code-value-quantity": {kind: kComposite, paths: []string{"component"}, comp: []paramDef{
			{kind: kToken, paths: []string{"code"}}, {kind: kQuantity, paths: []string{"valueQuantity"}}}},
	},
	"Encounter": {
		"_id":              {kind: kID},
		"patient":          {kind: kReference, paths: []string{"subject"}, target: "Patient", targets: []string{"Patient"}},
		"subject":          {kind: kReference, paths: []string{"subject"}, targets: []string{"Patient", "Group"}},
		"service-provider": {kind: kReference, paths: []string{"serviceProvider"}, targets: []string{"Organization"}},
		"date":             {kind: kDate, paths: []string{"period"}},
		"class":            {kind: kToken, paths: []string{"class"}},
		"type":             {kind: kToken, paths: []string{"type"}},
		"status":           {kind: kToken, paths: []string{"status"}},
		"reason-code":      {kind: kToken, paths: []string{"reasonCode"}},
	},
	"Condition": {
		"_id":             {kind: kID},
		"code":            {kind: kToken, paths: []string{"code"}},
		"clinical-status": {kind: kToken, paths: []string{"clinicalStatus"}},
		"onset-date":      {kind: kDate, paths: []string{"onsetDateTime", "onsetPeriod"}},
		"abatement-date":  {kind: kDate, paths: []string{"abatementDateTime", "abatementPeriod"}},
		"patient":         {kind: kReference, paths: []string{"subject"}, target: "Patient", targets: []string{"Patient"}},
		"subject":         {kind: kReference, paths: []string{"subject"}, targets: []string{"Patient", "Group"}},
		"encounter":       {kind: kReference, paths: []string{"encounter"}, targets: []string{"Encounter"}},
	},
	"Claim": {
		"_id":      {kind: kID},
		"patient":  {kind: kReference, paths: []string{"patient"}, targets: []string{"Patient"}},
		"status":   {kind: kToken, paths: []string{"status"}},
		"use":      {kind: kToken, paths: []string{"use"}},
		"created":  {kind: kDate, paths: []string{"created"}},
		"provider": {kind: kReference, paths: []string{"provider"}, targets: []string{"Practitioner", "Organization", "PractitionerRole"}},
	},
	"Immunization": {
		"_id":          {kind: kID},
		"vaccine-code": {kind: kToken, paths: []string{"vaccineCode"}},
		"date":         {kind: kDate, paths: []string{"occurrenceDateTime"}},
		"patient":      {kind: kReference, paths: []string{"patient"}, targets: []string{"Patient"}},
		"status":       {kind: kToken, paths: []string{"status"}},
	},
	"Procedure": {
		"_id":     {kind: kID},
		"code":    {kind: kToken, paths: []string{"code"}},
		"date":    {kind: kDate, paths: []string{"performedDateTime", "performedPeriod"}},
		"patient": {kind: kReference, paths: []string{"subject"}, target: "Patient", targets: []string{"Patient"}},
	},
	"CarePlan": {
		"_id":           {kind: kID},
		"date":          {kind: kDate, paths: []string{"period"}},
		"patient":       {kind: kReference, paths: []string{"subject"}, target: "Patient", targets: []string{"Patient"}},
		"status":        {kind: kToken, paths: []string{"status"}},
		"intent":        {kind: kToken, paths: []string{"intent"}},
		"category":      {kind: kToken, paths: []string{"category"}},
		"activity-code": {kind: kToken, paths: []string{"activity.detail.code"}},
		"encounter":     {kind: kReference, paths: []string{"encounter"}, targets: []string{"Encounter"}},
	},
	"DiagnosticReport": {
		"_id":       {kind: kID},
		"code":      {kind: kToken, paths: []string{"code"}},
		"category":  {kind: kToken, paths: []string{"category"}},
		"status":    {kind: kToken, paths: []string{"status"}},
		"date":      {kind: kDate, paths: []string{"effectiveDateTime", "effectivePeriod"}},
		"issued":    {kind: kDate, paths: []string{"issued"}},
		"patient":   {kind: kReference, paths: []string{"subject"}, target: "Patient", targets: []string{"Patient"}},
		"result":    {kind: kReference, paths: []string{"result"}, targets: []string{"Observation"}},
		"encounter": {kind: kReference, paths: []string{"encounter"}, targets: []string{"Encounter", "EpisodeOfCare"}},
	},
	"AllergyIntolerance": {
		"_id":             {kind: kID},
		"code":            {kind: kToken, paths: []string{"code", "reaction.substance"}},
		"clinical-status": {kind: kToken, paths: []string{"clinicalStatus"}},
		"criticality":     {kind: kToken, paths: []string{"criticality"}},
		"category":        {kind: kToken, paths: []string{"category"}},
		"type":            {kind: kToken, paths: []string{"type"}},
		"date":            {kind: kDate, paths: []string{"recordedDate"}},
		"patient":         {kind: kReference, paths: []string{"patient"}, targets: []string{"Patient"}},
	},
	"MedicationRequest": {
		"_id":        {kind: kID},
		"status":     {kind: kToken, paths: []string{"status"}},
		"intent":     {kind: kToken, paths: []string{"intent"}},
		"patient":    {kind: kReference, paths: []string{"subject"}, target: "Patient", targets: []string{"Patient"}},
		"authoredon": {kind: kDate, paths: []string{"authoredOn"}},
		"code":       {kind: kToken, paths: []string{"medicationCodeableConcept"}},
	},
}

// corpus is the stored form of every current resource, in load order.
type corpus struct {
	base    string // the server base, to read absolute references to it as relative ones
	byType  map[string][]*jsontree.Value
	byRef   map[string]*jsontree.Value // "Type/id"
	changed map[string][]string        // ids updated after the load, per type
}

func newCorpus(base string) *corpus {
	return &corpus{base: base, byType: map[string][]*jsontree.Value{}, byRef: map[string]*jsontree.Value{}, changed: map[string][]string{}}
}

func (c *corpus) add(res *jsontree.Value) {
	typ := res.GetString("resourceType")
	c.byType[typ] = append(c.byType[typ], res)
	c.byRef[typ+"/"+res.GetString("id")] = res
}

// put replaces a resource by its new version.
func (c *corpus) put(res *jsontree.Value) {
	typ, id := res.GetString("resourceType"), res.GetString("id")
	old := c.byRef[typ+"/"+id]
	if i := slices.Index(c.byType[typ], old); i >= 0 {
		c.byType[typ][i] = res
	}
	c.byRef[typ+"/"+id] = res
	if !slices.Contains(c.changed[typ], id) {
		c.changed[typ] = append(c.changed[typ], id)
	}
}

// remove forgets a deleted resource.
func (c *corpus) remove(typ, id string) {
	old := c.byRef[typ+"/"+id]
	c.byType[typ] = slices.DeleteFunc(c.byType[typ], func(r *jsontree.Value) bool { return r == old })
	delete(c.byRef, typ+"/"+id)
	c.changed[typ] = slices.DeleteFunc(c.changed[typ], func(s string) bool { return s == id })
}

// eval returns the verdict for every resource of typ that matches or may match the query, a list
// of parameter name/value pairs as sent (before URL encoding, FHIR escapes intact).
func (c *corpus) eval(typ string, query [][2]string) (map[string]tri, error) {
	out := map[string]tri{}
	pairs := make([]func(*jsontree.Value) tri, 0, len(query))
	for _, kv := range query {
		f, err := c.compile(typ, kv[0], kv[1])
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, f)
	}
	for _, res := range c.byType[typ] {
		v := triYes
		for _, f := range pairs {
			if v = and3(v, f(res)); v == triNo {
				break
			}
		}
		if v != triNo {
			out[res.GetString("id")] = v
		}
	}
	return out, nil
}

// compile turns one name=value pair into a predicate; repeated names AND because eval ANDs the pairs.
func (c *corpus) compile(typ, key, value string) (func(*jsontree.Value) tri, error) {
	if rest, ok := strings.CutPrefix(key, "_has:"); ok {
		return c.compileHas(typ, rest, value)
	}
	name, chain, _ := strings.Cut(key, ".")
	name, mod, _ := strings.Cut(name, ":")
	def, ok := params[typ][name]
	if !ok {
		return nil, fmt.Errorf("evaluator: no parameter %s on %s", name, typ)
	}
	if chain != "" {
		return c.compileChain(def, mod, chain, value)
	}
	if mod == "missing" {
		want := value == "true"
		return func(res *jsontree.Value) tri {
			return boolTri((len(c.elements(res, def)) == 0) == want)
		}, nil
	}
	alts := splitEsc(value, ',')
	var one func(res *jsontree.Value, v string) tri
	switch def.kind {
	case kID:
		if mod != "" && mod != "not" {
			return nil, fmt.Errorf("evaluator: _id:%s", mod)
		}
		one = func(res *jsontree.Value, v string) tri { return boolTri(res.GetString("id") == unesc(v)) }
	case kString:
		if mod != "" && mod != "exact" && mod != "contains" {
			return nil, fmt.Errorf("evaluator: string modifier %s", mod)
		}
		one = func(res *jsontree.Value, v string) tri {
			return anyElem(c.elements(res, def), func(e *jsontree.Value) tri { return stringMatch(e, unesc(v), mod) })
		}
	case kToken:
		switch mod {
		case "", "not", "text":
			one = func(res *jsontree.Value, v string) tri {
				return anyElem(c.elements(res, def), func(e *jsontree.Value) tri { return tokenMatch(e, v, mod == "text") })
			}
		case "of-type":
			one = func(res *jsontree.Value, v string) tri {
				return anyElem(c.elements(res, def), func(e *jsontree.Value) tri { return ofTypeMatch(e, v) })
			}
		default:
			return nil, fmt.Errorf("evaluator: token modifier %s", mod)
		}
	case kReference:
		if mod != "" && !isTypeName(mod) {
			return nil, fmt.Errorf("evaluator: reference modifier %s", mod)
		}
		one = func(res *jsontree.Value, v string) tri {
			return anyElem(c.elements(res, def), func(e *jsontree.Value) tri { return c.refMatch(e, unesc(v), mod) })
		}
	case kDate:
		if mod != "" {
			return nil, fmt.Errorf("evaluator: date modifier %s", mod)
		}
		for _, a := range alts {
			if _, v := cutPrefix(unesc(a)); !validDate(v) {
				return nil, fmt.Errorf("evaluator: bad date %q", a)
			}
		}
		one = func(res *jsontree.Value, v string) tri { return dateMatch(c.elements(res, def), unesc(v)) }
	case kQuantity:
		if mod != "" {
			return nil, fmt.Errorf("evaluator: quantity modifier %s", mod)
		}
		for _, a := range alts {
			if _, err := parseQuantityParam(a); err != nil {
				return nil, err
			}
		}
		one = func(res *jsontree.Value, v string) tri {
			q, _ := parseQuantityParam(v)
			return anyElem(c.elements(res, def), func(e *jsontree.Value) tri { return quantityMatch(e, q) })
		}
	case kComposite:
		if mod != "" {
			return nil, fmt.Errorf("evaluator: composite modifier %s", mod)
		}
		for _, a := range alts {
			parts := splitEsc(a, '$')
			if len(parts) != 2 {
				return nil, fmt.Errorf("evaluator: composite value %q", a)
			}
			if _, err := parseQuantityParam(parts[1]); err != nil {
				return nil, err
			}
		}
		one = func(res *jsontree.Value, v string) tri {
			parts := splitEsc(v, '$')
			q, _ := parseQuantityParam(parts[1])
			return anyElem(c.elements(res, def), func(root *jsontree.Value) tri {
				code := anyElem(c.elements(root, def.comp[0]), func(e *jsontree.Value) tri { return tokenMatch(e, parts[0], false) })
				if code == triNo {
					return triNo
				}
				return and3(code, anyElem(c.elements(root, def.comp[1]), func(e *jsontree.Value) tri { return quantityMatch(e, q) }))
			})
		}
	}
	return func(res *jsontree.Value) tri {
		v := triNo
		for _, a := range alts {
			if v = or3(v, one(res, a)); v == triYes {
				break
			}
		}
		if mod == "not" {
			// :not is the complement of the unmodified search, so it includes resources that do
			// not have the element at all.
			return not3(v)
		}
		return v
	}, nil
}

// compileChain evaluates "ref[:Type].param" by resolving each reference in the corpus and testing
// the chained parameter (which may carry its own modifier or chain) on the target.
func (c *corpus) compileChain(def paramDef, typeMod, chain, value string) (func(*jsontree.Value) tri, error) {
	if def.kind != kReference {
		return nil, fmt.Errorf("evaluator: chain through a non-reference parameter")
	}
	targetType := typeMod
	if targetType == "" {
		if len(def.targets) != 1 {
			return nil, fmt.Errorf("evaluator: chain through a parameter with several target types needs :Type")
		}
		targetType = def.targets[0]
	}
	inner, err := c.compile(targetType, chain, value)
	if err != nil {
		return nil, err
	}
	return func(res *jsontree.Value) tri {
		return anyElem(c.elements(res, def), func(e *jsontree.Value) tri {
			typ, id, ok := c.parseRef(e.GetString("reference"))
			if !ok || typ != targetType {
				return triNo
			}
			target := c.byRef[typ+"/"+id]
			if target == nil {
				return triNo
			}
			return inner(target)
		})
	}, nil
}

// compileHas evaluates "_has:Type:refParam:param" (reverse chaining): resources referenced through
// refParam by some Type resource that matches param=value.
func (c *corpus) compileHas(typ, rest, value string) (func(*jsontree.Value) tri, error) {
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("evaluator: _has:%s", rest)
	}
	srcType, refName, key := parts[0], parts[1], parts[2]
	refDef, ok := params[srcType][refName]
	if !ok || refDef.kind != kReference {
		return nil, fmt.Errorf("evaluator: _has reference parameter %s:%s", srcType, refName)
	}
	inner, err := c.compile(srcType, key, value)
	if err != nil {
		return nil, err
	}
	referenced := map[string]tri{}
	for _, src := range c.byType[srcType] {
		v := inner(src)
		if v == triNo {
			continue
		}
		for _, e := range c.elements(src, refDef) {
			if t, id, ok := c.parseRef(e.GetString("reference")); ok && t == typ {
				referenced[id] = or3(referenced[id], v)
			}
		}
	}
	return func(res *jsontree.Value) tri { return referenced[res.GetString("id")] }, nil
}

// elements returns what a parameter indexes on res (or on a composite's root element).
func (c *corpus) elements(res *jsontree.Value, def paramDef) []*jsontree.Value {
	var out []*jsontree.Value
	for _, p := range def.paths {
		out = append(out, pathValues(res, p)...)
	}
	if def.target != "" {
		out = slices.DeleteFunc(out, func(e *jsontree.Value) bool {
			typ, _, ok := c.parseRef(e.GetString("reference"))
			return !ok || typ != def.target
		})
	}
	return out
}

// walk follows a dotted path from v, flattening arrays at every step; "" is v itself.
func pathValues(v *jsontree.Value, path string) []*jsontree.Value {
	cur := []*jsontree.Value{v}
	if path == "" {
		return cur
	}
	for _, step := range strings.Split(path, ".") {
		var next []*jsontree.Value
		for _, c := range cur {
			m := c.Get(step)
			if m == nil || m.Kind == jsontree.Null {
				continue
			}
			if m.Kind == jsontree.Array {
				next = append(next, m.Items...)
			} else {
				next = append(next, m)
			}
		}
		cur = next
	}
	return cur
}

func anyElem(es []*jsontree.Value, f func(*jsontree.Value) tri) tri {
	v := triNo
	for _, e := range es {
		if v = or3(v, f(e)); v == triYes {
			return triYes
		}
	}
	return v
}

func isTypeName(s string) bool {
	return s != "" && unicode.IsUpper(rune(s[0])) && !strings.ContainsAny(s, "./")
}

// splitEsc splits s at each sep not escaped by a backslash; escapes stay in the pieces.
func splitEsc(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unesc removes the search escapes: "\," "\|" "\$" "\\".
func unesc(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// fold is the string search normalisation: accents removed (decomposed, combining marks dropped)
// and case folded.
func fold(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// stringParts returns the strings a string parameter tests on an element: the element itself, or
// every part of a HumanName or Address.
func stringParts(e *jsontree.Value) []string {
	if e.Kind == jsontree.String {
		return []string{e.Str}
	}
	var keys []string
	switch {
	case e.Get("family") != nil || e.Get("given") != nil || e.Get("prefix") != nil || e.Get("suffix") != nil:
		keys = []string{"text", "family", "given", "prefix", "suffix"}
	default:
		keys = []string{"text", "line", "city", "district", "state", "postalCode", "country"}
	}
	var out []string
	for _, k := range keys {
		for _, s := range pathValues(e, k) {
			if s.Kind == jsontree.String {
				out = append(out, s.Str)
			}
		}
	}
	return out
}

func stringMatch(e *jsontree.Value, v, mod string) tri {
	for _, p := range stringParts(e) {
		var ok bool
		switch mod {
		case "exact":
			ok = p == v
		case "contains":
			ok = strings.Contains(fold(p), fold(v))
		default:
			ok = strings.HasPrefix(fold(p), fold(v))
		}
		if ok {
			return triYes
		}
	}
	return triNo
}

// tokenMatch tests one element against a token value ("code", "system|code", "|code", "system|"),
// or with text set against its text and displays.
func tokenMatch(e *jsontree.Value, raw string, text bool) tri {
	if text {
		want := unesc(raw)
		var texts []string
		switch {
		case e.Get("coding") != nil || e.Get("text") != nil:
			texts = append(texts, e.GetString("text"))
			for _, c := range pathValues(e, "coding") {
				texts = append(texts, c.GetString("display"))
			}
		case e.Get("code") != nil:
			texts = append(texts, e.GetString("display"))
		case e.Get("value") != nil:
			texts = append(texts, e.Get("type").GetString("text"))
		}
		for _, t := range texts {
			if t != "" && strings.HasPrefix(fold(t), fold(want)) {
				return triYes
			}
		}
		return triNo
	}
	parts := splitEsc(raw, '|')
	hasSystem := len(parts) > 1
	system, code := "", unesc(parts[0])
	if hasSystem {
		system, code = unesc(parts[0]), unesc(strings.Join(parts[1:], "|"))
	}
	pair := func(sys, c string) tri {
		switch {
		case !hasSystem:
			return boolTri(c == code)
		case system == "":
			return boolTri(sys == "" && c == code)
		case code == "":
			return boolTri(sys == system)
		default:
			return boolTri(sys == system && c == code)
		}
	}
	switch e.Kind {
	case jsontree.String, jsontree.Bool:
		// A code, id or boolean element has no system of its own; the specification does not say
		// whether "system|code" should match it.
		if hasSystem {
			if e.Str == code && system != "" {
				return triMaybe
			}
			return triNo
		}
		return boolTri(e.Str == code)
	case jsontree.Object:
		switch {
		case e.Get("coding") != nil || e.Get("text") != nil:
			return anyElem(pathValues(e, "coding"), func(c *jsontree.Value) tri { return pair(c.GetString("system"), c.GetString("code")) })
		case e.Get("code") != nil || e.Get("system") != nil && e.Get("value") == nil:
			return pair(e.GetString("system"), e.GetString("code"))
		default: // Identifier, ContactPoint
			return pair(e.GetString("system"), e.GetString("value"))
		}
	}
	return triNo
}

// ofTypeMatch tests an Identifier against system|code|value: a coding of its type, and its value.
func ofTypeMatch(e *jsontree.Value, raw string) tri {
	parts := splitEsc(raw, '|')
	if len(parts) != 3 {
		return triNo
	}
	system, code, value := unesc(parts[0]), unesc(parts[1]), unesc(parts[2])
	if e.GetString("value") != value {
		return triNo
	}
	for _, c := range pathValues(e, "type.coding") {
		if c.GetString("system") == system && c.GetString("code") == code {
			return triYes
		}
	}
	return triNo
}

// parseRef splits a stored reference into type and id; absolute references to this server count
// as relative ones.
func (c *corpus) parseRef(ref string) (typ, id string, ok bool) {
	if c.base != "" {
		ref = strings.TrimPrefix(ref, c.base+"/")
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	typ, id, ok = strings.Cut(ref, "/")
	if !ok || strings.Contains(id, "/") || !isTypeName(typ) || id == "" {
		return "", "", false
	}
	return typ, id, true
}

func (c *corpus) refMatch(e *jsontree.Value, v, typeMod string) tri {
	typ, id, ok := c.parseRef(e.GetString("reference"))
	if !ok {
		return triNo
	}
	if typeMod != "" && typ != typeMod {
		return triNo
	}
	if wt, wid, ok := c.parseRef(v); ok {
		return boolTri(typ == wt && id == wid)
	}
	return boolTri(id == v)
}

// Date ranges are half-open [lo, hi); an open end of a Period is the far past or future.
var (
	farPast   = time.Date(-100000, 1, 1, 0, 0, 0, 0, time.UTC)
	farFuture = time.Date(100000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// parseDateParam parses a date, dateTime or instant at any precision into the range it covers;
// loc is the zone assumed when the value has none.
func parseDateParam(s string, loc *time.Location) (lo, hi time.Time, err error) {
	layouts := []struct {
		layout string
		step   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{"2006-01-02T15:04Z07:00", func(t time.Time) time.Time { return t.Add(time.Minute) }},
		{"2006-01-02T15:04:05Z07:00", func(t time.Time) time.Time { return t.Add(time.Second) }},
		{"2006-01-02T15:04", func(t time.Time) time.Time { return t.Add(time.Minute) }},
		{"2006-01-02T15:04:05", func(t time.Time) time.Time { return t.Add(time.Second) }},
	}
	// Fractional seconds: the range is one unit of the last digit given. (time.Parse would accept
	// them under the whole-second layouts too, so they are looked at first.)
	if len(s) > 20 && s[19] == '.' {
		j := 20
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		digits := j - 20
		if digits > 0 && digits <= 9 {
			for _, layout := range []string{"2006-01-02T15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999"} {
				if t, err := time.ParseInLocation(layout, s, loc); err == nil {
					unit := time.Duration(1)
					for range 9 - digits {
						unit *= 10
					}
					return t, t.Add(unit), nil
				}
			}
		}
		return time.Time{}, time.Time{}, fmt.Errorf("evaluator: bad date %q", s)
	}
	for _, l := range layouts {
		if t, err := time.ParseInLocation(l.layout, s, loc); err == nil {
			return t, l.step(t), nil
		}
	}
	return time.Time{}, time.Time{}, fmt.Errorf("evaluator: bad date %q", s)
}

func validDate(s string) bool {
	_, _, err := parseDateParam(s, time.UTC)
	return err == nil
}

// zoneOf returns the fixed zone written in a dateTime, or nil.
func zoneOf(s string) *time.Location {
	if len(s) < 11 || s[10] != 'T' {
		return nil
	}
	if strings.HasSuffix(s, "Z") {
		return time.UTC
	}
	if len(s) >= 6 {
		tz := s[len(s)-6:]
		if (tz[0] == '+' || tz[0] == '-') && tz[3] == ':' {
			if t, err := time.Parse("-07:00", tz); err == nil {
				_, off := t.Zone()
				return time.FixedZone(tz, off)
			}
		}
	}
	return nil
}

// targetRange is the range a date, dateTime, instant or Period element covers.
func targetRange(e *jsontree.Value, loc *time.Location) (lo, hi time.Time, ok bool) {
	if e.Kind == jsontree.String {
		lo, hi, err := parseDateParam(e.Str, loc)
		return lo, hi, err == nil
	}
	start, end := e.GetString("start"), e.GetString("end")
	if start == "" && end == "" {
		return time.Time{}, time.Time{}, false
	}
	lo, hi = farPast, farFuture
	if start != "" {
		l, _, err := parseDateParam(start, loc)
		if err != nil {
			return time.Time{}, time.Time{}, false
		}
		lo = l
	}
	if end != "" {
		_, h, err := parseDateParam(end, loc)
		if err != nil {
			return time.Time{}, time.Time{}, false
		}
		hi = h
	}
	return lo, hi, true
}

func cutPrefix(v string) (string, string) {
	if len(v) >= 2 {
		switch v[:2] {
		case "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap":
			return v[:2], v[2:]
		}
	}
	return "eq", v
}

// dateMatch applies a [prefix]date value to a resource's date elements following the table of
// search.html#prefix, where both the search value and the target are ranges. A value without a
// zone is read in every zone a server could reasonably assume (UTC, the process's local zone, the
// other side's zone); if they disagree the verdict is maybe.
func dateMatch(es []*jsontree.Value, raw string) tri {
	prefix, val := cutPrefix(raw)
	zones := []*time.Location{time.UTC, time.Local}
	if z := zoneOf(val); z != nil {
		zones = append(zones, z)
	}
	for _, e := range es {
		for _, s := range []string{e.Str, e.GetString("start"), e.GetString("end")} {
			if z := zoneOf(s); z != nil {
				zones = append(zones, z)
			}
		}
	}
	var verdict tri
	for i, loc := range zones {
		ps, pe, err := parseDateParam(val, loc)
		if err != nil {
			return triNo
		}
		got := false
		for _, e := range es {
			rs, re, ok := targetRange(e, loc)
			if !ok {
				continue
			}
			contains := !rs.Before(ps) && !re.After(pe)
			var m bool
			switch prefix {
			case "eq":
				m = contains
			case "ne":
				m = !contains
			case "gt":
				m = re.After(pe)
			case "lt":
				m = rs.Before(ps)
			case "ge":
				m = re.After(pe) || contains
			case "le":
				m = rs.Before(ps) || contains
			case "sa":
				m = !rs.Before(pe)
			case "eb":
				m = !re.After(ps)
			default: // ap: left to the server
				return triMaybe
			}
			if m {
				got = true
				break
			}
		}
		if i == 0 {
			verdict = boolTri(got)
		} else if boolTri(got) != verdict {
			return triMaybe
		}
	}
	return verdict
}

// quantityParam is a parsed [prefix]number|system|code.
type quantityParam struct {
	prefix string
	num    *big.Rat
	half   *big.Rat // half a unit of the last digit given: the implicit precision
	// narrow is the half-width below which a value matches under every reading: the spec's own
	// example gives 1e2 the range [95, 105), a tenth of what its one significant figure says.
	narrow       *big.Rat
	system, code string
	hasUnit      bool
}

func parseQuantityParam(raw string) (quantityParam, error) {
	parts := splitEsc(raw, '|')
	if len(parts) != 1 && len(parts) != 3 {
		return quantityParam{}, fmt.Errorf("evaluator: quantity %q", raw)
	}
	var q quantityParam
	var num string
	q.prefix, num = cutPrefix(unesc(parts[0]))
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return quantityParam{}, fmt.Errorf("evaluator: number %q", num)
	}
	q.num = r
	// The precision is half a unit of the last digit written: 5.4 has [5.35, 5.45), and with an
	// exponent the mantissa's digits count.
	mantissa, exp := num, 0
	if i := strings.IndexAny(num, "eE"); i >= 0 {
		mantissa = num[:i]
		if _, err := fmt.Sscan(num[i+1:], &exp); err != nil {
			return quantityParam{}, fmt.Errorf("evaluator: exponent of %q", num)
		}
	}
	scale := exp
	if _, frac, ok := strings.Cut(mantissa, "."); ok {
		scale -= len(frac)
	}
	unit := big.NewRat(1, 1)
	ten := big.NewRat(10, 1)
	for ; scale > 0; scale-- {
		unit.Mul(unit, ten)
	}
	for ; scale < 0; scale++ {
		unit.Quo(unit, ten)
	}
	q.half = unit.Mul(unit, big.NewRat(1, 2))
	q.narrow = q.half
	if mantissa != num {
		q.narrow = new(big.Rat).Quo(q.half, ten)
	}
	if len(parts) == 3 {
		q.system, q.code, q.hasUnit = unesc(parts[1]), unesc(parts[2]), true
	}
	return q, nil
}

// quantityMatch follows search.html#number and #quantity: eq and ne use the implicit range of the
// search value ([99.5, 100.5) for 100), the others compare with the exact value ("gt100: greater
// than exactly 100"). Without a system, the code matches Quantity.code or Quantity.unit.
func quantityMatch(e *jsontree.Value, q quantityParam) tri {
	val := e.Get("value")
	if val == nil || val.Kind != jsontree.Number {
		return triNo
	}
	if q.hasUnit {
		switch {
		case q.system != "":
			if e.GetString("system") != q.system || e.GetString("code") != q.code {
				return triNo
			}
		case q.code != "":
			if e.GetString("code") != q.code && e.GetString("unit") != q.code {
				return triNo
			}
		}
	}
	v, ok := new(big.Rat).SetString(val.Str)
	if !ok {
		return triNo
	}
	lo := new(big.Rat).Sub(q.num, q.half)
	hi := new(big.Rat).Add(q.num, q.half)
	nlo := new(big.Rat).Sub(q.num, q.narrow)
	nhi := new(big.Rat).Add(q.num, q.narrow)
	inside := func() tri {
		// Whether the bounds belong to the range is not settled: treat them as either.
		switch {
		case v.Cmp(nlo) > 0 && v.Cmp(nhi) < 0:
			return triYes
		case v.Cmp(lo) < 0 || v.Cmp(hi) > 0:
			return triNo
		}
		return triMaybe
	}
	c := v.Cmp(q.num)
	switch q.prefix {
	case "eq":
		return inside()
	case "ne":
		return not3(inside())
	case "gt":
		return boolTri(c > 0)
	case "lt":
		return boolTri(c < 0)
	case "ge":
		return boolTri(c >= 0)
	case "le":
		return boolTri(c <= 0)
	}
	return triMaybe // sa, eb, ap on a point value are left to the server
}

// TestSearchDiffEvaluator pins the evaluator to worked examples of search.html, so that a
// disagreement with the server points at the server.
func TestSearchDiffEvaluator(t *testing.T) {
	t.Parallel()
	c := newCorpus("http://example.org/fhir")
	for _, raw := range []string{
		`{"resourceType":"Patient","id":"p1","gender":"female","birthDate":"1970-02-18",
		  "name":[{"family":"Guzmán","given":["María Eugenia"],"prefix":["Mrs."]}],
		  "identifier":[{"system":"urn:mrn","value":"M1","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}],"text":"Medical Record Number"}}],
		  "address":[{"line":["1 Main St"],"city":"Boston","state":"Massachusetts"}]}`,
		`{"resourceType":"Patient","id":"p2","gender":"male","birthDate":"1950","deceasedDateTime":"2001-02-17T10:10:39+00:00",
		  "name":[{"family":"O'Keefe","given":["Jake"]}]}`,
		`{"resourceType":"Observation","id":"o1","status":"final","subject":{"reference":"Patient/p1"},
		  "code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Heart rate"},
		  "effectiveDateTime":"2011-08-28T02:24:51+00:00",
		  "valueQuantity":{"value":5.42,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}}`,
		`{"resourceType":"Observation","id":"o2","status":"final","subject":{"reference":"http://example.org/fhir/Patient/p2"},
		  "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"effectivePeriod":{"start":"2015-01-01T10:00:00Z","end":"2015-01-01T11:00:00Z"},
		  "component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"code":"mm[Hg]"}},
		               {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"code":"mm[Hg]"}}]}`,
		`{"resourceType":"Observation","id":"o3","status":"amended","subject":{"reference":"Group/p1"},
		  "code":{"coding":[{"code":"nosys"}]},"effectivePeriod":{"start":"2015-06-01"},"valueQuantity":{"value":5.45}}`,
	} {
		v, err := jsontree.Parse([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		c.add(v)
	}
	tests := []struct {
		name  string
		typ   string
		query string // name=value pairs joined by & (values unencoded)
		want  string // yes ids, then "?" and maybe ids
	}{
		{"date year contains day", "Patient", "birthdate=1970", "p1"},
		{"date eq month", "Patient", "birthdate=eq1970-02", "p1"},
		{"date ne", "Patient", "birthdate=ne1970", "p2"},
		{"date gt day before", "Patient", "birthdate=gt1970-02-17", "p1"},
		{"date gt same day", "Patient", "birthdate=gt1970-02-18", ""},
		{"date gt inside a year value", "Patient", "birthdate=gt1950-06-01", "p1 p2"},
		{"date lt inside a year value", "Patient", "birthdate=lt1950-06-01", "p2"},
		{"date ge same day", "Patient", "birthdate=ge1970-02-18", "p1"},
		{"date le same day", "Patient", "birthdate=le1970-02-18", "p1 p2"},
		{"date sa", "Patient", "birthdate=sa1970-02-17", "p1"},
		{"date sa same day", "Patient", "birthdate=sa1970-02-18", ""},
		{"date eb", "Patient", "birthdate=eb1970-02-19", "p1 p2"},
		{"date eb overlapping year", "Patient", "birthdate=eb1950-12-31", ""},
		{"date and range", "Patient", "birthdate=ge1960&birthdate=lt1980", "p1"},
		{"date or", "Patient", "birthdate=1950,1970-02-18", "p1 p2"},
		{"dateTime day", "Observation", "date=2011-08-28", "o1"},
		{"dateTime second", "Observation", "date=2011-08-28T02:24:51Z", "o1"},
		{"dateTime other zone", "Observation", "date=2011-08-27T21:24:51-05:00", "o1"},
		{"dateTime next second", "Observation", "date=2011-08-28T02:24:52Z", ""},
		{"dateTime gt second before", "Observation", "date=gt2011-08-28T02:24:50Z&status=final", "o1 o2"},
		{"dateTime gt same second", "Observation", "date=gt2011-08-28T02:24:51+00:00&status=final", "o2"},
		{"period eq day", "Observation", "date=2015-01-01", "o2"},
		{"period gt inside", "Observation", "date=gt2015-01-01T10:30:00Z", "o2 o3"},
		{"period lt inside", "Observation", "date=lt2015-01-01T10:30:00Z", "o1 o2"},
		{"period eq inside", "Observation", "date=eq2015-01-01T10:30:00Z", ""},
		{"period ne inside", "Observation", "date=ne2015-01-01T10:30:00Z", "o1 o2 o3"},
		{"period sa", "Observation", "date=sa2014", "o2 o3"},
		{"period eb", "Observation", "date=eb2016", "o1 o2"},
		{"open period gt far", "Observation", "date=gt2100", "o3"},
		{"open period eq", "Observation", "date=2015", "o2"},
		{"date without zone against zoned value", "Patient", "birthdate=gt1970-02-18T20:00:00-05:00", "?p1"},
		{"quantity eq range", "Observation", "value-quantity=5.4", "o1 ?o3"},
		{"quantity eq more digits", "Observation", "value-quantity=5.420", "o1"},
		{"quantity eq miss", "Observation", "value-quantity=5.43", ""},
		{"quantity gt exact", "Observation", "value-quantity=gt5.4", "o1 o3"},
		{"quantity gt equal", "Observation", "value-quantity=gt5.42", "o3"},
		{"quantity ge", "Observation", "value-quantity=ge5.42", "o1 o3"},
		{"quantity ne", "Observation", "value-quantity=ne5.4", "?o3"},
		{"quantity system code", "Observation", "value-quantity=5.42|http://unitsofmeasure.org|mg/dL", "o1"},
		{"quantity wrong code", "Observation", "value-quantity=5.42|http://unitsofmeasure.org|mg", ""},
		{"quantity unit", "Observation", "value-quantity=5.42||mg/dL", "o1"},
		{"quantity exponent", "Observation", "value-quantity=5e0", "?o1 ?o3"},
		{"quantity exponent digits", "Observation", "value-quantity=5.4e0", "?o1 ?o3"},
		{"quantity exponent one figure", "Observation", "component-value-quantity=1e2", "?o2"},
		{"quantity exponent one figure inside", "Observation", "component-value-quantity=8e1", "o2"},
		{"quantity exponent two figures", "Observation", "component-value-quantity=1.1e2", ""},
		{"quantity integer", "Observation", "component-value-quantity=1.2e2", "o2"},
		{"string prefix accent", "Patient", "family=guzman", "p1"},
		{"string added accent", "Patient", "given=JÁKE", "p2"},
		{"string not infix", "Patient", "family=uzm", ""},
		{"string any part", "Patient", "name=mrs", "p1"},
		{"string given with space", "Patient", "given=maria e", "p1"},
		{"string second word", "Patient", "given=Eugenia", ""},
		{"string escape", "Patient", `family=o'k`, "p2"},
		{"exact", "Patient", "family:exact=Guzmán", "p1"},
		{"exact accent", "Patient", "family:exact=Guzman", ""},
		{"exact case", "Patient", "family:exact=guzmán", ""},
		{"contains", "Patient", "name:contains=UZM", "p1"},
		{"address line", "Patient", "address=1 ma", "p1"},
		{"address not a word inside", "Patient", "address=main", ""},
		{"address city", "Patient", "address-city=BOS", "p1"},
		{"token code", "Observation", "code=8867-4", "o1"},
		{"token system code", "Observation", "code=http://loinc.org|8867-4", "o1"},
		{"token no system", "Observation", "code=|8867-4", ""},
		{"token no system match", "Observation", "code=|nosys", "o3"},
		{"token system only", "Observation", "code=http://loinc.org|", "o1 o2"},
		{"token not", "Observation", "code:not=http://loinc.org|8867-4", "o2 o3"},
		{"token text", "Observation", "code:text=heart", "o1"},
		{"token text not infix", "Observation", "code:text=rate", ""},
		{"token code element", "Patient", "gender=female", "p1"},
		{"token code element or", "Patient", "gender=male,other", "p2"},
		{"token code element system", "Patient", "gender=http://hl7.org/fhir/administrative-gender|female", "?p1"},
		{"token not code element", "Patient", "gender:not=female", "p2"},
		{"identifier", "Patient", "identifier=urn:mrn|M1", "p1"},
		{"identifier value", "Patient", "identifier=M1", "p1"},
		{"identifier text", "Patient", "identifier:text=medical", "p1"},
		{"identifier of-type", "Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|M1", "p1"},
		{"identifier of-type wrong value", "Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|M2", ""},
		{"_id", "Patient", "_id=p2,nope", "p2"},
		{"missing true", "Patient", "death-date:missing=true", "p1"},
		{"missing false", "Observation", "value-quantity:missing=false", "o1 o3"},
		{"reference type/id", "Observation", "subject=Patient/p1", "o1"},
		{"reference id", "Observation", "subject=p1", "o1 o3"},
		{"reference type modifier", "Observation", "subject:Group=p1", "o3"},
		{"reference absolute", "Observation", "subject=Patient/p2", "o2"},
		{"patient excludes group", "Observation", "patient=p1", "o1"},
		{"patient missing", "Observation", "patient:missing=true", "o3"},
		{"chain", "Observation", "subject:Patient.gender=male", "o2"},
		{"chain date", "Observation", "patient.birthdate=lt1960", "o2"},
		{"chain string", "Observation", "patient.name=maría", "o1"},
		{"has", "Patient", "_has:Observation:patient:code=85354-9", "p2"},
		{"has none", "Patient", "_has:Observation:patient:code=nosys", ""},
		{"composite", "Observation", "code-value-quantity=http://loinc.org|8867-4$gt5", "o1"},
		{"composite other code", "Observation", "code-value-quantity=8480-6$gt5", ""},
		{"component composite same component", "Observation", "component-code-value-quantity=8480-6$120", "o2"},
		{"component composite crossed", "Observation", "component-code-value-quantity=8480-6$80", ""},
		{"component code and value apart", "Observation", "component-code=8480-6&component-value-quantity=80", "o2"},
		{"AND of two tokens", "Patient", "gender=female&gender=male", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var pairs [][2]string
			for _, kv := range strings.Split(tc.query, "&") {
				k, v, _ := strings.Cut(kv, "=")
				pairs = append(pairs, [2]string{k, v})
			}
			got, err := c.eval(tc.typ, pairs)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for id, v := range got {
				if v == triMaybe {
					id = "?" + id
				}
				ids = append(ids, id)
			}
			slices.SortFunc(ids, func(a, b string) int { return strings.Compare(strings.TrimPrefix(a, "?"), strings.TrimPrefix(b, "?")) })
			if diff := cmp.Diff(tc.want, strings.Join(ids, " ")); diff != "" {
				t.Errorf("%s?%s (-want +got):\n%s", tc.typ, tc.query, diff)
			}
		})
	}
}
