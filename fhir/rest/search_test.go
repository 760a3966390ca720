package rest_test

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/iambilly/billy/fhir/jsontree"
)

// searchIDs runs a search and returns the ids of its match entries (first page only), in order.
func (s *server) searchIDs(t *testing.T, path string) []string {
	t.Helper()
	b := s.do(http.MethodGet, path, nil).must(t, http.StatusOK)
	return entryIDs(b, "match")
}

func entryIDs(b *jsontree.Value, mode string) []string {
	var ids []string
	if es := b.Get("entry"); es != nil {
		for _, e := range es.Items {
			if e.Get("search").GetString("mode") == mode {
				ids = append(ids, e.Get("resource").GetString("resourceType")+"/"+e.Get("resource").GetString("id"))
			}
		}
	}
	return ids
}

func link(b *jsontree.Value, rel string) string {
	for _, l := range b.Get("link").Items {
		if l.GetString("relation") == rel {
			return l.GetString("url")
		}
	}
	return ""
}

// fixture loads a small, fully known data set: three patients, their observations and encounters.
func fixture(t testing.TB, opts ...serverOpt) *server {
	t.Helper()
	s := newServer(t, opts...)
	put := func(body string) {
		t.Helper()
		tree, err := jsontree.Parse([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		s.do(http.MethodPut, tree.GetString("resourceType")+"/"+tree.GetString("id"), body).must(t, http.StatusCreated)
	}
	put(`{"resourceType":"Organization","id":"org1","name":"Springfield Clinic","identifier":[{"system":"http://npi","value":"111"}]}`)
	put(`{"resourceType":"Patient","id":"p1","name":[{"family":"Müller","given":["Anna"]}],"gender":"female","birthDate":"1970-02-18","managingOrganization":{"reference":"Organization/org1"},"address":[{"city":"Springfield","state":"IL"}],"identifier":[{"system":"http://mrn","value":"A1","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]}}]}`)
	put(`{"resourceType":"Patient","id":"p2","name":[{"family":"Mullen","given":["Bob"]}],"gender":"male","birthDate":"1987-02","address":[{"city":"Shelbyville"}]}`)
	put(`{"resourceType":"Patient","id":"p3","name":[{"family":"Smith","given":["Carol"]}],"gender":"female","birthDate":"1987-03-01","deceasedBoolean":false}`)
	put(`{"resourceType":"Encounter","id":"e1","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/p1"},"period":{"start":"2026-03-05T09:00:00Z","end":"2026-03-05T09:30:00Z"},"serviceProvider":{"reference":"Organization/org1"}}`)
	put(`{"resourceType":"Encounter","id":"e2","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"EMER"},"subject":{"reference":"Patient/p2"},"period":{"start":"2026-04-01"}}`)
	put(`{"resourceType":"Observation","id":"o1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body height"}],"text":"Height"},"subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/e1"},"effectiveDateTime":"2026-03-05T09:10:00Z","valueQuantity":{"value":165.1,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"},"note":[{"text":"standing"}]}`)
	put(`{"resourceType":"Observation","id":"o2","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7","display":"Body weight"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2025-12-01","valueQuantity":{"value":70,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`)
	put(`{"resourceType":"Observation","id":"o3","status":"amended","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"subject":{"reference":"Patient/p2"},"effectivePeriod":{"start":"2026-01-01","end":"2026-01-31"},` +
		`"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`)
	put(`{"resourceType":"Observation","id":"o4","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8302-2"}]},"subject":{"reference":"Patient/p3"},"effectiveDateTime":"2024-06-15","valueQuantity":{"value":180,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"}}`)
	put(`{"resourceType":"Observation","id":"o5","status":"preliminary","code":{"text":"orphan"},"subject":{"reference":"Patient/ghost"}}`)
	return s
}

// TestSearchSemantics runs every case at each of testDates: no answer may depend on the day the
// tests run. The cases whose answer does depend on the server's "now" (ap, _lastUpdated) say what
// they expect at each date.
func TestSearchSemantics(t *testing.T) {
	t.Parallel()
	for _, now := range testDates {
		t.Run(now.Format("2006-01-02"), func(t *testing.T) {
			t.Parallel()
			testSearchSemanticsAt(t, now)
		})
	}
}

func testSearchSemanticsAt(t *testing.T, now time.Time) {
	s := fixture(t, withClock(newClock(now)))
	// ap widens the value's range by 10 % of its distance from now on each side.
	var apDate, apEncounter []string
	switch now {
	case testDates[0]: // 2026-01-01: two weeks before the date, two months before the encounter
		apDate, apEncounter = []string{"o3"}, []string{"e1"}
	case testDates[1]: // 2026-03-05T12:00Z: hours after the encounter
		apDate, apEncounter = []string{"o3"}, []string{"e1"}
	case testDates[2]: // 2030-06-15: four years on, ap reaches five months either way
		apDate, apEncounter = []string{"o1", "o2", "o3"}, []string{"e1", "e2"}
	default:
		t.Fatalf("no expectations for %v", now)
	}
	today := now.Format("2006-01-02")
	if got := s.do(http.MethodGet, "Patient", nil).must(t, http.StatusOK).Get("meta").GetString("lastUpdated"); got != now.Format(time.RFC3339Nano) {
		t.Errorf("Bundle.meta.lastUpdated %s, want the clock's %s", got, now.Format(time.RFC3339Nano))
	}
	tests := []struct {
		query string
		want  []string // ids, any order
	}{
		// string: case- and accent-insensitive starts-with on any part; :exact; :contains
		{"Patient?name=mul", []string{"p1", "p2"}},
		{"Patient?name=MÜLL", []string{"p1", "p2"}},
		{"Patient?family=muller", []string{"p1"}},
		{"Patient?given=car", []string{"p3"}},
		{"Patient?family:exact=Müller", []string{"p1"}},
		{"Patient?family:exact=müller", nil},
		{"Patient?name:contains=ll", []string{"p1", "p2"}},
		{"Patient?address-city=spring", []string{"p1"}},
		// token forms and modifiers
		{"Patient?gender=female", []string{"p1", "p3"}},
		{"Patient?gender:not=female", []string{"p2"}},
		{"Observation?code=http://loinc.org|8302-2", []string{"o1", "o4"}},
		{"Observation?code=8302-2", []string{"o1", "o4"}},
		{"Observation?code=|8302-2", nil},
		{"Observation?code=http://loinc.org|", []string{"o1", "o2", "o3", "o4"}},
		{"Observation?code:text=orph", []string{"o5"}},
		{"Observation?code:text=body", []string{"o1", "o2"}},
		{"Observation?code:text=heig", []string{"o1"}},
		{"Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|A1", []string{"p1"}},
		{"Observation?status=final,amended&code=8302-2", []string{"o1", "o4"}},
		// dates: precision ranges and prefixes
		{"Patient?birthdate=1987-02", []string{"p2"}},
		{"Patient?birthdate=1987", []string{"p2", "p3"}},
		{"Patient?birthdate=lt1987-02-10", []string{"p1", "p2"}},
		{"Patient?birthdate=ge1987-02-10", []string{"p2", "p3"}},
		{"Observation?date=2026-01-15", nil},
		{"Observation?date=2026-01", []string{"o3"}},
		{"Observation?date=ap2026-01-15", apDate},
		{"Observation?date=ge2026-01-01&date=lt2026-04-01", []string{"o1", "o3"}},
		{"Encounter?date=2026-03-05", []string{"e1"}},
		{"Encounter?date=2026-03-05T04:05:00-05:00", nil},           // the minute 09:05Z lies inside e1, but e1 is longer than it
		{"Encounter?date=ap2026-03-05T04:05:00-05:00", apEncounter}, // overlaps
		{"Encounter?date=ge2026-03-05T04:29:00-05:00&date=le2026-03-05T10:30:00%2B01:00", []string{"e1"}},
		{"Observation?date=2026-03-05T10:10:00%2B01:00", []string{"o1"}}, // same instant, other zone
		{"Encounter?date=gt2026-05-01", []string{"e2"}},                  // open-ended period
		{"Encounter?date=sa2026-03-31", []string{"e2"}},
		{"Encounter?date=eb2026-03-31", []string{"e1"}},
		// quantity and number
		{"Observation?value-quantity=165.1", []string{"o1"}},
		{"Observation?value-quantity=165", []string{"o1"}}, // 165 means [164.5, 165.5)
		{"Observation?value-quantity=gt100|http://unitsofmeasure.org|cm", []string{"o1", "o4"}},
		{"Observation?value-quantity=lt100||kg", []string{"o2"}},
		{"Observation?value-quantity=le70", []string{"o2"}},
		// composite: code and value of the same component
		{"Observation?component-code-value-quantity=http://loinc.org|8480-6$gt100", []string{"o3"}},
		{"Observation?component-code-value-quantity=http://loinc.org|8462-4$gt100", nil},
		{"Observation?code-value-quantity=8302-2$gt170", []string{"o4"}},
		// references, chains, reverse chains
		{"Observation?subject=Patient/p1", []string{"o1", "o2"}},
		{"Observation?patient=p1", []string{"o1", "o2"}},
		{"Observation?subject:Patient=p1", []string{"o1", "o2"}},
		{"Observation?subject=" + url.QueryEscape("BASE/Patient/p1"), []string{"o1", "o2"}},
		{"Observation?subject:Patient.gender=male", []string{"o3"}},
		{"Observation?patient.birthdate=lt1980", []string{"o1", "o2"}},
		{"Observation?encounter.service-provider.name=spring", []string{"o1"}},
		{"Observation?encounter.date=2026-03-05", []string{"o1"}}, // untyped: Encounter or EpisodeOfCare, each by its own date
		{"Observation?subject:Patient.name=ghost", nil},           // o5 refers to a patient that does not exist
		{"Observation?subject=Patient/ghost", []string{"o5"}},     // but the reference itself is indexed
		{"Patient?_has:Observation:patient:code=8302-2", []string{"p1", "p3"}},
		{"Patient?_has:Encounter:patient:class=EMER", []string{"p2"}},
		{"Patient?_has:Observation:patient:status=amended&gender=male", []string{"p2"}},
		{"Organization?_has:Patient:organization:_has:Observation:patient:code=29463-7", []string{"org1"}},
		// :missing
		{"Patient?organization:missing=false", []string{"p1"}},
		{"Patient?deceased=false", []string{"p1", "p2", "p3"}}, // the R4 expression computes false when absent
		{"Patient?address:missing=true", []string{"p3"}},
		{"Observation?encounter:missing=true", []string{"o2", "o3", "o4", "o5"}},
		// _id, _lastUpdated
		{"Patient?_id=p1,p3", []string{"p1", "p3"}},
		{"Patient?_lastUpdated=gt2000", []string{"p1", "p2", "p3"}},
		{"Patient?_lastUpdated=" + today, []string{"p1", "p2", "p3"}}, // stamped by the injected clock
		{"Patient?_lastUpdated=lt" + today, nil},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q := strings.ReplaceAll(tt.query, "BASE", s.base)
			got := s.searchIDs(t, q)
			for i := range got {
				got[i] = strings.SplitN(got[i], "/", 2)[1]
			}
			sort.Strings(got)
			want := append([]string(nil), tt.want...)
			sort.Strings(want)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s: got %v, want %v", tt.query, got, want)
			}
		})
	}
}

func TestSearchErrorsAndLeniency(t *testing.T) {
	t.Parallel()
	s := fixture(t)
	// Unknown parameters: ignored, reported in an outcome entry, and left out of the self link.
	b := s.do(http.MethodGet, "Patient?gender=male&foo=bar", nil).must(t, http.StatusOK)
	if ids := entryIDs(b, "match"); len(ids) != 1 {
		t.Errorf("matches %v", ids)
	}
	es := b.Get("entry").Items
	last := es[len(es)-1]
	if last.Get("search").GetString("mode") != "outcome" || !strings.Contains(string(last.Marshal()), "foo") {
		t.Errorf("want an outcome entry naming foo: %s", last.Marshal())
	}
	if self := link(b, "self"); strings.Contains(self, "foo") || !strings.Contains(self, "gender=male") {
		t.Errorf("self link %q", self)
	}
	// Strict handling turns that into a 400.
	_, expr, _ := issue(t, s.do(http.MethodGet, "Patient?foo=bar", nil, "Prefer", "handling=strict").must(t, http.StatusBadRequest))
	if expr != "foo" {
		t.Errorf("strict: expression %q", expr)
	}
	// Malformed values and unknown modifiers are always errors, naming the parameter.
	for q, wantExpr := range map[string]string{
		"Patient?birthdate=1987-13":              "birthdate",
		"Patient?birthdate=xx1987":               "birthdate",
		"Patient?gender:bogus=male":              "gender:bogus",
		"Observation?value-quantity=abc":         "value-quantity",
		"Patient?_count=-1":                      "_count",
		"Patient?_sort=nonsense":                 "_sort",
		"Patient?_include=Observation:subject":   "_include",
		"Patient?_summary=maybe":                 "_summary",
		"Patient?deceased:missing=perhaps":       "deceased:missing",
		"Observation?subject=Patient/a_b":        "subject",
		"Observation?code-value-quantity=8302-2": "code-value-quantity",
	} {
		_, expr, _ := issue(t, s.do(http.MethodGet, q, nil).must(t, http.StatusBadRequest))
		if expr != wantExpr {
			t.Errorf("%s: expression %q, want %q", q, expr, wantExpr)
		}
	}
	// Injection attempts are values like any other.
	if ids := s.searchIDs(t, "Patient?name="+url.QueryEscape("x' OR '1'='1")); len(ids) != 0 {
		t.Errorf("injection matched %v", ids)
	}
	if ids := s.searchIDs(t, "Patient?name="+url.QueryEscape("%")); len(ids) != 0 {
		t.Errorf("a literal %% must not be a wildcard: %v", ids)
	}
}

func TestSearchSortAndPaging(t *testing.T) {
	t.Parallel()
	s := fixture(t)
	if got := s.searchIDs(t, "Patient?_sort=birthdate"); strings.Join(got, ",") != "Patient/p1,Patient/p2,Patient/p3" {
		t.Errorf("_sort=birthdate: %v", got)
	}
	if got := s.searchIDs(t, "Patient?_sort=-birthdate"); strings.Join(got, ",") != "Patient/p3,Patient/p2,Patient/p1" {
		t.Errorf("_sort=-birthdate: %v", got)
	}
	if got := s.searchIDs(t, "Patient?_sort=gender,-family"); strings.Join(got, ",") != "Patient/p3,Patient/p1,Patient/p2" {
		t.Errorf("_sort=gender,-family: %v", got)
	}
	// Ten and more keys (each has its own column in the SQL).
	if got := s.searchIDs(t, "Observation?_sort=status,code,date,subject,encounter,value-quantity,category,performer,based-on,device,focus,-_id"); strings.Join(got, ",") != "Observation/o3,Observation/o2,Observation/o4,Observation/o1,Observation/o5" { // status, then code, then date
		t.Errorf("_sort by twelve keys: %v", got)
	}
	// Missing sort values come last.
	if got := s.searchIDs(t, "Observation?_sort=encounter"); got[0] != "Observation/o1" {
		t.Errorf("_sort=encounter: %v", got)
	}
	// Page through Observations by -date, one at a time, while writing: no repeats, no gaps, and
	// previous links lead back.
	var seen []string
	next := "Observation?_sort=-date&_count=1"
	var pages []string
	for next != "" {
		b := s.do(http.MethodGet, next, nil).must(t, http.StatusOK)
		pages = append(pages, next)
		seen = append(seen, entryIDs(b, "match")...)
		next = strings.TrimPrefix(link(b, "next"), s.base+"/")
		s.create(`{"resourceType":"Patient"}`) // unrelated writes do not disturb paging
	}
	if strings.Join(seen, ",") != "Observation/o1,Observation/o3,Observation/o2,Observation/o4,Observation/o5" {
		t.Errorf("paging by -date: %v", seen)
	}
	b := s.do(http.MethodGet, pages[3], nil).must(t, http.StatusOK)
	prev := s.do(http.MethodGet, strings.TrimPrefix(link(b, "previous"), s.base+"/"), nil).must(t, http.StatusOK)
	if got := entryIDs(prev, "match"); len(got) != 1 || got[0] != "Observation/o2" {
		t.Errorf("previous page: %v", got)
	}
	// _count=0 is _summary=count (search.html): the total only; _total=accurate adds it to pages.
	for q, want := range map[string]string{
		"Observation?_summary=count":                  "5",
		"Observation?_count=0&_total=accurate":        "5",
		"Observation?_count=0":                        "5",
		"Observation?_count=0&code=8302-2":            "2",
		"Observation?_count=0&_sort=-date&_include=*": "5",
		"Patient/p1/Observation?_count=0":             "2",
		"?_type=Encounter,Organization&_count=0":      "3",
	} {
		b := s.do(http.MethodGet, q, nil).must(t, http.StatusOK)
		if b.Get("total") == nil || b.Get("total").Str != want || b.Get("entry") != nil {
			t.Errorf("%s: want total %s and no entries: %s", q, want, b.Marshal())
		}
	}
	// A parameter every type has (_tag) counts only the type searched: its index rows of other
	// types share the parameter's key (the conformance suite's search/summary-count found this).
	s.create(`{"resourceType":"Patient","meta":{"tag":[{"system":"urn:t","code":"shared"}]}}`)
	s.create(`{"resourceType":"Encounter","status":"planned","class":{"code":"AMB"},"meta":{"tag":[{"system":"urn:t","code":"shared"}]}}`)
	s.create(`{"resourceType":"Observation","status":"registered","code":{"text":"x"},"meta":{"tag":[{"system":"urn:t","code":"shared"}]}}`)
	for _, q := range []string{"Patient?_tag=urn:t|shared&_summary=count", "Patient?_tag=urn:t|shared&_total=accurate", "Encounter?_tag=urn:t|shared&_count=0"} {
		if b := s.do(http.MethodGet, q, nil).must(t, http.StatusOK); b.Get("total") == nil || b.Get("total").Str != "1" {
			t.Errorf("%s: want total 1: %s", q, b.Marshal())
		}
	}
	b = s.do(http.MethodPost, "Observation/_search", "_count=0&status=final", "Content-Type", "application/x-www-form-urlencoded").must(t, http.StatusOK)
	if b.Get("total") == nil || b.Get("total").Str != "3" || b.Get("entry") != nil {
		t.Errorf("POST _search _count=0: %s", b.Marshal())
	}
	b = s.do(http.MethodGet, "Observation?code=8302-2&_total=accurate&_count=1", nil).must(t, http.StatusOK)
	if b.Get("total").Str != "2" || len(b.Get("entry").Items) != 1 {
		t.Errorf("_total=accurate: %s", b.Marshal())
	}
	if b := s.do(http.MethodGet, "Observation?_count=2", nil).must(t, http.StatusOK); b.Get("total") != nil {
		t.Error("no total unless asked (_total defaults to none)")
	}
	s.do(http.MethodGet, "Observation?_page=garbage", nil).must(t, http.StatusBadRequest)
}

func TestSearchIncludes(t *testing.T) {
	t.Parallel()
	s := fixture(t)
	b := s.do(http.MethodGet, "Observation?code=8302-2&_include=Observation:subject", nil).must(t, http.StatusOK)
	if got := entryIDs(b, "include"); strings.Join(sorted(got), ",") != "Patient/p1,Patient/p3" {
		t.Errorf("_include: %v", got)
	}
	b = s.do(http.MethodGet, "Patient?_id=p1&_revinclude=Observation:subject&_revinclude=Encounter:patient", nil).must(t, http.StatusOK)
	if got := entryIDs(b, "include"); strings.Join(sorted(got), ",") != "Encounter/e1,Observation/o1,Observation/o2" {
		t.Errorf("_revinclude: %v", got)
	}
	// :iterate follows what was included: observations -> encounter -> organization.
	b = s.do(http.MethodGet, "Observation?_id=o1&_include=Observation:encounter&_include:iterate=Encounter:service-provider", nil).must(t, http.StatusOK)
	if got := entryIDs(b, "include"); strings.Join(sorted(got), ",") != "Encounter/e1,Organization/org1" {
		t.Errorf("_include:iterate: %v", got)
	}
	// A cycle ends: patient -> org, org <- patients.
	b = s.do(http.MethodGet, "Patient?_id=p1&_include=Patient:organization&_revinclude:iterate=Patient:organization", nil).must(t, http.StatusOK)
	if got := entryIDs(b, "include"); strings.Join(sorted(got), ",") != "Organization/org1" {
		t.Errorf("cycle: %v", got)
	}
	b = s.do(http.MethodGet, "Encounter?_id=e1&_include=*", nil).must(t, http.StatusOK)
	if got := entryIDs(b, "include"); strings.Join(sorted(got), ",") != "Organization/org1,Patient/p1" {
		t.Errorf("_include=*: %v", got)
	}
	b = s.do(http.MethodGet, "Observation?_id=o1&_include=Observation:subject:Group", nil).must(t, http.StatusOK)
	if got := entryIDs(b, "include"); len(got) != 0 {
		t.Errorf("_include with a target type that does not match: %v", got)
	}
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func TestSearchSummaryAndElements(t *testing.T) {
	t.Parallel()
	s := fixture(t)
	b := s.do(http.MethodGet, "Patient?_id=p1&_elements=gender", nil).must(t, http.StatusOK)
	p := b.Get("entry").Items[0].Get("resource")
	if p.Get("name") != nil || p.GetString("gender") != "female" || !strings.Contains(string(p.Get("meta").Marshal()), "SUBSETTED") {
		t.Errorf("_elements: %s", p.Marshal())
	}
	b = s.do(http.MethodGet, "Observation?_id=o1&_summary=true", nil).must(t, http.StatusOK)
	o := b.Get("entry").Items[0].Get("resource")
	// Observation.status and code are mandatory (and summary); encounter is a summary element too.
	if o.GetString("status") != "final" || o.Get("code") == nil || o.Get("note") != nil || !strings.Contains(string(o.Get("meta").Marshal()), "SUBSETTED") {
		t.Errorf("_summary=true: %s", o.Marshal())
	}
	b = s.do(http.MethodGet, "Observation?_id=o1&_summary=data", nil).must(t, http.StatusOK)
	if o := b.Get("entry").Items[0].Get("resource"); o.Get("valueQuantity") == nil || o.Get("note") == nil {
		t.Errorf("_summary=data keeps data: %s", o.Marshal())
	}
	// Without subsetting, stored bytes are served untouched.
	full := s.do(http.MethodGet, "Observation/o1", nil).must(t, http.StatusOK)
	b = s.do(http.MethodGet, "Observation?_id=o1", nil).must(t, http.StatusOK)
	if string(b.Get("entry").Items[0].Get("resource").Marshal()) != string(full.Marshal()) {
		t.Error("search entry differs from read")
	}
}

func TestCompartmentAndEverything(t *testing.T) {
	t.Parallel()
	s := fixture(t)
	if got := sorted(s.searchIDs(t, "Patient/p1/Observation")); strings.Join(got, ",") != "Observation/o1,Observation/o2" {
		t.Errorf("compartment search: %v", got)
	}
	if got := sorted(s.searchIDs(t, "Patient/p1/Observation?code=29463-7")); strings.Join(got, ",") != "Observation/o2" {
		t.Errorf("compartment search with a filter: %v", got)
	}
	if got := sorted(s.searchIDs(t, "Patient/p1/*")); strings.Join(got, ",") != "Encounter/e1,Observation/o1,Observation/o2,Patient/p1" {
		t.Errorf("compartment *: %v", got)
	}
	s.do(http.MethodGet, "Patient/p1/Organization", nil).must(t, http.StatusNotFound)
	// $everything: the patient, its compartment and what those refer to, paged.
	var all []string
	next := "Patient/p1/$everything?_count=2"
	for next != "" {
		b := s.do(http.MethodGet, next, nil).must(t, http.StatusOK)
		all = append(all, entryIDs(b, "match")...)
		next = strings.TrimPrefix(link(b, "next"), s.base+"/")
	}
	if got := strings.Join(sorted(all), ","); got != "Encounter/e1,Observation/o1,Observation/o2,Organization/org1,Patient/p1" {
		t.Errorf("$everything: %s", got)
	}
	b := s.do(http.MethodGet, "Patient/p1/$everything?_type=Observation", nil).must(t, http.StatusOK)
	if got := sorted(entryIDs(b, "match")); strings.Join(got, ",") != "Observation/o1,Observation/o2" {
		t.Errorf("$everything _type: %v", got)
	}
	b = s.do(http.MethodGet, "Encounter/e1/$everything", nil).must(t, http.StatusOK)
	if got := sorted(entryIDs(b, "match")); strings.Join(got, ",") != "Encounter/e1,Observation/o1,Organization/org1,Patient/p1" {
		t.Errorf("Encounter $everything: %v", got)
	}
	s.do(http.MethodGet, "Patient/nobody/$everything", nil).must(t, http.StatusNotFound)
}

func TestSystemSearchAndPOST(t *testing.T) {
	t.Parallel()
	s := fixture(t)
	b := s.do(http.MethodGet, "?_type=Patient,Organization&_id=p1,org1", nil).must(t, http.StatusOK)
	if got := sorted(entryIDs(b, "match")); strings.Join(got, ",") != "Organization/org1,Patient/p1" {
		t.Errorf("system search: %v", got)
	}
	s.do(http.MethodGet, "?_type=Patient,Observation&gender=male", nil, "Prefer", "handling=strict").must(t, http.StatusBadRequest)
	r := s.do(http.MethodPost, "Patient/_search", "gender=male", "Content-Type", "application/x-www-form-urlencoded")
	if got := entryIDs(r.must(t, http.StatusOK), "match"); len(got) != 1 || got[0] != "Patient/p2" {
		t.Errorf("POST _search: %v", got)
	}
	// Deleted resources are never found.
	s.do(http.MethodDelete, "Patient/p2", nil)
	if got := s.searchIDs(t, "Patient?gender=male"); len(got) != 0 {
		t.Errorf("a deleted resource was found: %v", got)
	}
	// Updates re-index: p3 becomes male.
	s.do(http.MethodPut, "Patient/p3", `{"resourceType":"Patient","id":"p3","gender":"male"}`).must(t, http.StatusOK)
	if got := s.searchIDs(t, "Patient?gender=male"); len(got) != 1 || got[0] != "Patient/p3" {
		t.Errorf("after update: %v", got)
	}
	if got := s.searchIDs(t, "Patient?given=carol"); len(got) != 0 {
		t.Errorf("old index values must go with the old version: %v", got)
	}
	// A search inside a transaction sees the transaction's own writes.
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
	  {"resource":{"resourceType":"Patient","gender":"other"},"request":{"method":"POST","url":"Patient"}},
	  {"request":{"method":"GET","url":"Patient?gender=other"}}]}`
	resp := s.do(http.MethodPost, "", tx).must(t, http.StatusOK)
	if n := resp.Get("entry").Items[1].Get("resource").Get("entry"); n == nil || len(n.Items) != 1 {
		t.Errorf("search entry in a transaction: %s", resp.Get("entry").Items[1].Marshal())
	}
	_ = fmt.Sprint
}
