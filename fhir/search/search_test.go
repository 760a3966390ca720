package search

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
)

func TestParseDateRange(t *testing.T) {
	t.Parallel()
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	tests := []struct {
		in     string
		lo, hi string
	}{
		{"2026", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"1987-02", "1987-02-01T00:00:00Z", "1987-03-01T00:00:00Z"},
		{"2024-02-29", "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"},
		{"2026-03-05T10:00Z", "2026-03-05T10:00:00Z", "2026-03-05T10:01:00Z"},
		{"2026-03-05T10:00:30+02:00", "2026-03-05T08:00:30Z", "2026-03-05T08:00:31Z"},
		{"2026-03-05T10:00:30.12Z", "2026-03-05T10:00:30.12Z", "2026-03-05T10:00:30.13Z"},
		{"2026-03-05T10:00:30", "2026-03-05T10:00:30Z", "2026-03-05T10:00:31Z"},
	}
	for _, tt := range tests {
		lo, hi, ok := ParseDateRange(tt.in)
		if !ok || !lo.Equal(utc(tt.lo)) || !hi.Equal(utc(tt.hi)) {
			t.Errorf("ParseDateRange(%q) = [%v, %v) %v, want [%s, %s)", tt.in, lo, hi, ok, tt.lo, tt.hi)
		}
	}
	for _, bad := range []string{"", "2026-13", "2023-02-29", "2026-03-05T25:00Z", "26", "2026/03", "2026-03-05T10", "yesterday", "2026-01-01T00:00+15:00"} {
		if _, _, ok := ParseDateRange(bad); ok {
			t.Errorf("ParseDateRange(%q) accepted", bad)
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	q, err := Parse([]string{"Patient"}, url.Values{
		"identifier":   {`http://a|1,|2,3,sys\|x|4\,5`},
		"_id":          {"a,b"},
		"_lastUpdated": {"ge2026-01", "lt2026-02-10"},
		"_count":       {"10"},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range q.Clauses {
		for _, v := range c.Values {
			got = append(got, c.Code+":"+string(v.Prefix)+":"+v.System+"|"+v.Code+map[bool]string{true: "!", false: ""}[v.HasSystem])
		}
	}
	want := []string{"_id::|a", "_id::|b", "_lastUpdated:ge:|", "_lastUpdated:lt:|",
		"identifier::http://a|1!", "identifier::|2!", "identifier::|3", "identifier::sys|x|4,5!"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("clauses (-want +got):\n%s", diff)
	}
	if q.Clauses[0].ParamID != 0 || q.Clauses[3].ParamID != ParamID("Patient", "identifier") || q.Count != 10 {
		t.Error("ParamID")
	}
}

func TestParseUnsupportedAndInvalid(t *testing.T) {
	t.Parallel()
	lenient, err := Parse([]string{"Patient"}, url.Values{"nonsense": {"1"}, "name": {"x"}, "identifier": {"a"}, "_text": {"y"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ignored []string
	for _, ig := range lenient.Ignored {
		ignored = append(ignored, ig.Name)
	}
	if diff := cmp.Diff([]string{"_text", "nonsense"}, ignored); diff != "" || len(lenient.Clauses) != 2 {
		t.Errorf("lenient ignored (-want +got):\n%s", diff)
	}
	for name, params := range map[string]url.Values{
		"unknown strict":  {"nonsense": {"1"}},
		"bad date":        {"_lastUpdated": {"2026-13"}},
		"bad modifier":    {"_id:exact": {"a"}},
		"unknown modifer": {"identifier:bogus": {"a"}},
	} {
		if _, err := Parse([]string{"Patient"}, params, Options{Strict: true}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A malformed value is an error even when lenient.
	if _, err := Parse([]string{"Patient"}, url.Values{"_lastUpdated": {"gt-1"}}, Options{}); err == nil {
		t.Error("bad date accepted in lenient mode")
	}
}

// TestParseRefusesNULAndInvalidUTF8 checks the parser itself, which conditional criteria, SMART
// constraints and Bundle entries reach without the HTTP edge: a NUL byte or invalid UTF-8 in any
// name or value, known parameter or not, lenient or strict, is a 400 naming the parameter.
func TestParseRefusesNULAndInvalidUTF8(t *testing.T) {
	t.Parallel()
	tests := []struct {
		types    []string
		params   url.Values
		wantExpr string
	}{
		{[]string{"Patient"}, url.Values{"name": {"a\x00"}}, "name"},
		{[]string{"Patient"}, url.Values{"name": {"ok", "a\x00"}}, "name"},
		{[]string{"Patient"}, url.Values{"identifier": {"s|\x00"}}, "identifier"},
		{[]string{"Patient"}, url.Values{"_id": {"x\x00"}}, "_id"},
		{[]string{"Patient"}, url.Values{"_tag": {"\x00"}}, "_tag"},
		{[]string{"Patient"}, url.Values{"organization.name": {"\x00"}}, "organization.name"},
		{[]string{"Patient"}, url.Values{"_has:Observation:patient:code": {"\x00"}}, "_has:Observation:patient:code"},
		{[]string{"Patient"}, url.Values{"nonsense": {"\x00"}}, "nonsense"}, // ignored when lenient, but not this
		{[]string{"Patient"}, url.Values{"_sort": {"\x00"}}, "_sort"},
		{[]string{"Patient"}, url.Values{"name": {"\xff"}}, "name"},
		{[]string{"Patient"}, url.Values{"na\x00me": {"x"}}, "na\uFFFDme"},
		{[]string{"Patient"}, url.Values{"na\xffme": {"x"}}, "na\uFFFDme"},
		{[]string{"Observation", "Patient"}, url.Values{"_id": {"\x00"}}, "_id"},
	}
	for _, tt := range tests {
		for _, strict := range []bool{false, true} {
			_, err := Parse(tt.types, tt.params, Options{Strict: strict})
			fe, ok := fhir.AsError(err)
			if !ok || !errors.Is(err, fhir.ErrInvalid) || len(fe.Issues) != 1 {
				t.Errorf("Parse(%q, strict %v) = %v, want one invalid issue", tt.params, strict, err)
				continue
			}
			if diff := cmp.Diff([]string{tt.wantExpr}, fe.Issues[0].Expression); diff != "" {
				t.Errorf("Parse(%q): expression (-want +got):\n%s", tt.params, diff)
			}
		}
	}
}

func TestDecimalRange(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"100": "99.5..100.5", "5.4": "5.35..5.45", "5.40": "5.395..5.405", "1e2": "50..150", "-1.5": "-1.55..-1.45", "0": "-0.5..0.5",
	} {
		lo, hi, ok := DecimalRange(in)
		if got := lo + ".." + hi; !ok || got != want {
			t.Errorf("DecimalRange(%q) = %s, want %s", in, got, want)
		}
	}
	for _, bad := range []string{"", "1.", ".5", "abc", "1e", "01"} {
		if _, _, ok := DecimalRange(bad); ok {
			t.Errorf("DecimalRange(%q) accepted", bad)
		}
	}
	// Size bounds: the cost grows with the digits and the exponent (1e1000000 took minutes).
	for in, want := range map[string]bool{
		"1e1000": true, "1e-1000": true, "-1.5E+1000": true, strings.Repeat("9", 100): true, "0." + strings.Repeat("0", 97) + "1": true,
		"1e1001": false, "1e-1001": false, "1e1000000": false, "1e-1000000": false, "1e99999999999999999999": false,
		strings.Repeat("9", 101): false, "0." + strings.Repeat("0", 50000) + "1": false, strings.Repeat("9", 50000): false,
	} {
		done := make(chan bool, 1)
		go func() { _, _, ok := DecimalRange(in); done <- ok }()
		select {
		case ok := <-done:
			if ok != want {
				t.Errorf("DecimalRange(%.30q...) ok = %v, want %v", in, ok, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("DecimalRange(%.30q...) still running after 5 s", in)
		}
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"Müller": "muller", "  ÉLISE  Ångström ": "elise angstrom", "O'Brien": "o'brien", "ǅ": "ǆ"} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseChainsAndResults(t *testing.T) {
	t.Parallel()
	q, err := Parse([]string{"Observation"}, url.Values{
		"subject:Patient.organization.name": {"acme"},
		"_has:Provenance:target:agent":      {"Practitioner/1"},
		"_sort":                             {"-date,code"},
		"_include":                          {"Observation:subject", "Observation:*"},
		"_revinclude:iterate":               {"Provenance:target"},
		"_summary":                          {"true"},
		"_elements":                         {"status,code"},
		"_total":                            {"accurate"},
	}, Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	var chain, has *Clause
	for _, c := range q.Clauses {
		if len(c.Chain) > 0 {
			chain = c
		}
		if c.Has != nil {
			has = c
		}
	}
	if chain == nil || chain.TargetTypes[0] != "Patient" || len(chain.Chain[0].Chain) != 1 || chain.Chain[0].Chain[0].Code != "name" {
		t.Errorf("two-level chain: %+v", chain)
	}
	if has == nil || has.HasType != "Provenance" || has.Has.Code != "agent" {
		t.Errorf("_has: %+v", has)
	}
	if len(q.Sort) != 2 || !q.Sort[0].Desc || q.Sort[1].Code != "code" {
		t.Errorf("_sort: %+v", q.Sort)
	}
	if len(q.Include) != 2 || !q.Include[1].Wildcard || len(q.RevInclude) != 1 || !q.RevInclude[0].Iterate {
		t.Errorf("includes: %+v %+v", q.Include, q.RevInclude)
	}
	if q.Summary != "true" || len(q.Elements) != 2 || q.Total != "accurate" {
		t.Errorf("result parameters: %+v", q)
	}
	for name, params := range map[string]url.Values{
		"chain on a non-reference": {"status.foo": {"x"}},
		"chain to nowhere":         {"subject:Patient.nonsense": {"x"}},
		"bad _has":                 {"_has:Nope:x:y": {"1"}},
		"_has on unrelated type":   {"_has:Organization:partof:name": {"x"}},
		"wrong target type":        {"subject:Claim": {"1"}},
		"deep chain":               {"subject.organization.partof.partof.partof.partof.name": {"x"}},
	} {
		if _, err := Parse([]string{"Observation"}, params, Options{Strict: true}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestParseLimits checks the bounds on what one search may ask of the database: conditions
// (parameters, each chained or _has level, _sort keys, includes), values across all parameters,
// and the nesting depth of chains and _has.
func TestParseLimits(t *testing.T) {
	t.Parallel()
	repeat := func(name, value string, n int) url.Values {
		vs := make([]string, n)
		for i := range vs {
			vs[i] = value
		}
		return url.Values{name: vs}
	}
	values := func(n int) string { return strings.TrimSuffix(strings.Repeat("x,", n), ",") }
	tests := []struct {
		name   string
		types  []string
		params url.Values
		opt    Options
		want   error // nil, fhir.ErrTooCostly or fhir.ErrInvalid
	}{
		{"default clauses", []string{"Patient"}, repeat("name", "x", DefaultMaxClauses), Options{}, nil},
		{"one clause too many", []string{"Patient"}, repeat("name", "x", DefaultMaxClauses+1), Options{}, fhir.ErrTooCostly},
		{"ten thousand repeats", []string{"Patient"}, repeat("identifier", "x", 10000), Options{}, fhir.ErrTooCostly},
		{"ten thousand repeats of an unknown parameter", []string{"Patient"}, repeat("nonsense", "x", 10000), Options{}, nil},
		{"default values", []string{"Patient"}, url.Values{"name": {values(DefaultMaxValues)}}, Options{}, nil},
		{"one value too many", []string{"Patient"}, url.Values{"name": {values(DefaultMaxValues + 1)}}, Options{}, fhir.ErrTooCostly},
		{"values across parameters", []string{"Patient"}, url.Values{"name": {values(600)}, "family": {values(401)}}, Options{}, fhir.ErrTooCostly},
		{"configured clauses", []string{"Patient"}, url.Values{"name": {"a", "b"}, "gender": {"male", "female"}}, Options{MaxClauses: 3}, fhir.ErrTooCostly},
		{"configured values", []string{"Patient"}, url.Values{"name": {"a,b"}, "gender": {"male,female"}}, Options{MaxValues: 3}, fhir.ErrTooCostly},
		// subject.name goes through Patient and Location (the subjects with a name): three
		// conditions, and each value twice.
		{"chain fan-out counts", []string{"Observation"}, url.Values{"subject.name": {"x"}}, Options{MaxClauses: 2}, fhir.ErrTooCostly},
		{"chain fan-out fits", []string{"Observation"}, url.Values{"subject.name": {"x"}}, Options{MaxClauses: 3}, nil},
		{"chain fan-out values", []string{"Observation"}, url.Values{"subject.name": {"x,y"}}, Options{MaxValues: 3}, fhir.ErrTooCostly},
		{"_has counts", []string{"Patient"}, url.Values{"_has:Observation:patient:code": {"x"}, "name": {"y"}}, Options{MaxClauses: 2}, fhir.ErrTooCostly},
		{"_sort keys count", []string{"Patient"}, url.Values{"_sort": {"name,birthdate,gender"}}, Options{MaxClauses: 2}, fhir.ErrTooCostly},
		{"includes count", []string{"Observation"}, url.Values{"_include": {"Observation:subject", "Observation:encounter"}, "_revinclude": {"Provenance:target"}}, Options{MaxClauses: 2}, fhir.ErrTooCostly},
		// Chains and _has nest at most four levels.
		{"chain of four", []string{"Observation"}, url.Values{"subject:Patient.organization.partof.partof.name": {"x"}}, Options{}, nil},
		{"chain of five", []string{"Observation"}, url.Values{"subject:Patient.organization.partof.partof.partof.name": {"x"}}, Options{}, fhir.ErrInvalid},
		{"_has of four", []string{"Organization"}, url.Values{strings.Repeat("_has:Organization:partof:", 4) + "name": {"x"}}, Options{}, nil},
		{"_has of five", []string{"Organization"}, url.Values{strings.Repeat("_has:Organization:partof:", 5) + "name": {"x"}}, Options{}, fhir.ErrInvalid},
		{"_has and chain of five", []string{"Organization"}, url.Values{strings.Repeat("_has:Organization:partof:", 3) + "partof.partof.name": {"x"}}, Options{}, fhir.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(tt.types, tt.params, tt.opt)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("Parse = %v, want it accepted", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("Parse = %v, want %v", err, tt.want)
			case tt.want == fhir.ErrTooCostly:
				if fe, ok := fhir.AsError(err); !ok || fe.Issues[0].Code != "too-costly" || len(fe.Issues[0].Expression) != 1 {
					t.Errorf("issue %+v, want code too-costly naming the parameter", fe)
				}
			}
		})
	}
}

func TestExtractAllTypes(t *testing.T) {
	t.Parallel()
	obs, err := jsontree.Parse([]byte(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9","display":"Blood pressure"}]},
		"subject":{"reference":"http://billy.example/fhir/Patient/p1"},"effectivePeriod":{"start":"2026-01-01"},"note":[{"text":"x"}],
		"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120.5,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ix := Extract("Observation", obs, "http://billy.example/fhir")
	var refs []string
	for _, r := range ix.References {
		if r.Param == ParamID("Observation", "subject") {
			refs = append(refs, r.Type+"/"+r.ID)
		}
	}
	if len(refs) != 1 || refs[0] != "Patient/p1" {
		t.Errorf("absolute reference to this server indexes as local: %v", refs)
	}
	var dates []Date
	for _, d := range ix.Dates {
		if d.Param == ParamID("Observation", "date") {
			dates = append(dates, d)
		}
	}
	if len(dates) != 1 || !dates[0].Hi.IsZero() || dates[0].Lo.Year() != 2026 {
		t.Errorf("open period: %+v", dates)
	}
	found := false
	for _, c := range ix.Composites {
		if c.Param == ParamID("Observation", "component-code-value-quantity") && c.Parts[0].Code == "8480-6" && c.Parts[1].Lo == "120.5" && c.Parts[1].Code == "mm[Hg]" {
			found = true
		}
	}
	if !found {
		t.Errorf("composite component-code-value-quantity missing: %+v", ix.Composites)
	}
	texts := 0
	for _, s := range ix.Strings {
		if s.Param == ParamID("Observation", "code:text") && s.Norm == "blood pressure" {
			texts++
		}
	}
	if texts != 1 {
		t.Errorf(":text rows: %+v", ix.Strings)
	}
}

func TestExtractTokens(t *testing.T) {
	t.Parallel()
	tree, err := jsontree.Parse([]byte(`{"resourceType":"Patient","identifier":[{"system":"http://a","value":"1"},{"value":"2"}],"gender":"female","active":true}`))
	if err != nil {
		t.Fatal(err)
	}
	ix := Extract("Patient", tree, "")
	has := map[Token]bool{}
	for _, tk := range ix.Tokens {
		has[tk] = true
	}
	for _, want := range []Token{
		{Param: ParamID("Patient", "identifier"), System: "http://a", Code: "1"},
		{Param: ParamID("Patient", "identifier"), Code: "2"},
		{Param: ParamID("Patient", "gender"), Code: "female"},
		{Param: ParamID("Patient", "active"), Code: "true"},
	} {
		if !has[want] {
			t.Errorf("missing token %+v in %+v", want, ix.Tokens)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"identifier=a|b", "_lastUpdated=ge2026-01-01T00:00Z", `identifier=a\,b,c\|d`, "_id=x,y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		params, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		_, _ = Parse([]string{"Patient"}, params, Options{Strict: true})
		_, _ = Parse([]string{"Observation"}, params, Options{})
	})
}

func FuzzNormalizeASCIIPath(f *testing.F) {
	f.Add("  Hello\tWorld  ")
	f.Fuzz(func(t *testing.T, s string) {
		if !ascii(s) {
			return
		}
		// The fast path must agree with the general one.
		want := strings.Join(strings.Fields(strings.ToLower(s)), " ")
		if got := Normalize(s); got != want {
			t.Fatalf("Normalize(%q) = %q, want %q", s, got, want)
		}
	})
}
