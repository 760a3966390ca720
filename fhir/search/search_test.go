package search

import (
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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
	q, err := Parse("Patient", url.Values{
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
	if q.Clauses[0].ParamID != 0 || q.Clauses[3].ParamID != ParamID("Patient", "identifier") {
		t.Error("ParamID")
	}
}

func TestParseUnsupportedAndInvalid(t *testing.T) {
	t.Parallel()
	lenient, err := Parse("Patient", url.Values{"nonsense": {"1"}, "name": {"x"}, "identifier": {"a"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"name", "nonsense"}, lenient.Ignored); diff != "" || len(lenient.Clauses) != 1 {
		t.Errorf("lenient ignored (-want +got):\n%s", diff)
	}
	for name, params := range map[string]url.Values{
		"unknown strict":  {"nonsense": {"1"}},
		"bad date":        {"_lastUpdated": {"2026-13"}},
		"bad modifier":    {"_id:exact": {"a"}},
		"unknown modifer": {"identifier:bogus": {"a"}},
	} {
		if _, err := Parse("Patient", params, Options{Strict: true}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A malformed value is an error even when lenient.
	if _, err := Parse("Patient", url.Values{"_lastUpdated": {"gt-1"}}, Options{}); err == nil {
		t.Error("bad date accepted in lenient mode")
	}
}

func TestExtractTokens(t *testing.T) {
	t.Parallel()
	tree, err := jsontree.Parse([]byte(`{"resourceType":"Patient","identifier":[{"system":"http://a","value":"1"},{"value":"2"}],"gender":"female","active":true}`))
	if err != nil {
		t.Fatal(err)
	}
	ix := Extract("Patient", tree)
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
		_, _ = Parse("Patient", params, Options{Strict: true})
		_, _ = Parse("Observation", params, Options{})
	})
}
