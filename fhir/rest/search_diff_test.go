package rest_test

import (
	"cmp"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/internal/shareddata"
)

const (
	diffQueries     = 500  // queries per run
	diffPageSize    = 50   // _count of every search
	diffMaxExpected = 600  // larger expected results are regenerated, to bound the run time...
	diffBigQueries  = 6    // ...except this many, which page through thousands of matches
	diffMaxReports  = 10   // mismatches reported before the test stops
	diffMaxPages    = 1000 // a next link chain longer than this is a loop
)

// TestSearchDifferential loads the Synthea bundles and compares the server's answer to a few hundred
// generated searches with what the in-memory evaluator of searchdiff_eval_test.go, written from
// search.html alone, says the answer is. The queries use real values of the data at random
// precisions, prefixes, modifiers, chains and combinations, so they land on the boundaries where
// servers disagree with the specification. Before searching, mutate updates and deletes some of
// the data, so that the index must also forget. The POST_search subtest checks that POST
// Type/_search with a form body finds what GET finds; it shares the load, the longest part.
func TestSearchDifferential(t *testing.T) {
	t.Parallel()
	s, c := loadSynthea(t)
	mutate(t, s, c)
	start := time.Now()
	queries := generateQueries(t, c, diffQueries)
	t.Logf("generated %d queries in %v", len(queries), time.Since(start).Round(time.Millisecond))
	t.Run("GET", func(t *testing.T) { diffGET(t, s, c, queries) })
	t.Run("POST_search", func(t *testing.T) { diffPOST(t, s, queries) })
}

// diffGET runs every query, pages through the answer and compares it with the evaluator's.
func diffGET(t *testing.T, s *server, c *corpus, queries []searchQuery) {
	var ran, matched, ids, nonEmpty, maybes int
	var mismatches []string
	type timed struct {
		q    searchQuery
		took time.Duration
	}
	var slow []timed
	start := time.Now()
	for _, q := range queries {
		ran++
		t0 := time.Now()
		got, err := fetchAll(s, q.typ, q.encode())
		slow = append(slow, timed{q, time.Since(t0)})
		if err != nil {
			mismatches = append(mismatches, fmt.Sprintf("%s\n    %v", q, err))
		} else if report := compareIDs(c, q, got); report != "" {
			mismatches = append(mismatches, report)
		} else {
			matched++
			ids += len(got)
			if len(got) > 0 {
				nonEmpty++
			}
		}
		for _, v := range q.want {
			if v == triMaybe {
				maybes++
			}
		}
		if len(mismatches) >= diffMaxReports {
			break
		}
	}
	t.Logf("differential search: %d of %d queries ran, %d agreed with the evaluator (%d non-empty, %d ids compared, %d resources left open by the specification) in %v",
		ran, len(queries), matched, nonEmpty, ids, maybes, time.Since(start).Round(time.Millisecond))
	touching := 0
	for _, q := range queries {
		for id := range q.want {
			if slices.Contains(c.changed[q.typ], id) {
				touching++
				break
			}
		}
	}
	t.Logf("%d queries expect a resource changed after the load", touching)
	t.Logf("coverage: %s", coverage(queries))
	slices.SortFunc(slow, func(a, b timed) int { return cmp.Compare(b.took, a.took) })
	for _, x := range slow[:min(5, len(slow))] {
		t.Logf("slow: %v (%d matches) %s", x.took.Round(time.Millisecond), len(x.q.want), x.q)
	}
	if len(mismatches) > 0 {
		t.Errorf("%d queries disagree with the evaluator (the test stops at %d):\n%s", len(mismatches), diffMaxReports, strings.Join(mismatches, "\n"))
	}
}

// diffPOST runs every eighth query both ways.
func diffPOST(t *testing.T, s *server, queries []searchQuery) {
	var ran int
	var problems []string
	for i, q := range queries {
		if len(problems) >= diffMaxReports {
			break
		}
		if i%8 != 0 {
			continue
		}
		ran++
		get, err := fetchAll(s, q.typ, q.encode())
		if err != nil {
			problems = append(problems, fmt.Sprintf("GET %s: %v", q, err))
			continue
		}
		post, err := fetchAllPOST(s, q.typ, q.encode())
		if err != nil {
			problems = append(problems, fmt.Sprintf("POST %s: %v", q, err))
			continue
		}
		slices.Sort(get)
		slices.Sort(post)
		if !slices.Equal(get, post) {
			problems = append(problems, fmt.Sprintf("%s: GET found %d, POST _search %d (GET only %v, POST only %v)",
				q, len(get), len(post), firstFew(without(get, post)), firstFew(without(post, get))))
		}
	}
	t.Logf("POST _search: %d queries compared with GET", ran)
	if len(problems) > 0 {
		t.Errorf("%d POST _search queries differ from GET:\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

// loadSynthea posts every Synthea bundle as a transaction and returns the server with the corpus of
// what it stored: the sent resources with the server's ids and the urn:uuid references rewritten.
func loadSynthea(t *testing.T) (*server, *corpus) {
	t.Helper()
	files, err := shareddata.SyntheaBundles()
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, func(c *restConfig) { c.MaxBodyBytes = 64 << 20; c.MaxBundleEntries = 10000 })
	c := newCorpus(s.base)
	start := time.Now()
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		resp := s.do(http.MethodPost, "", raw).must(t, http.StatusOK)
		sent, err := jsontree.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		sentEntries, gotEntries := sent.Get("entry").Items, resp.Get("entry").Items
		if len(gotEntries) != len(sentEntries) {
			t.Fatalf("%s: %d response entries for %d sent", filepath.Base(f), len(gotEntries), len(sentEntries))
		}
		refs := map[string]string{}
		ids := make([]string, len(sentEntries))
		for i, e := range gotEntries {
			parts := strings.Split(e.Get("response").GetString("location"), "/")
			if len(parts) < 2 {
				t.Fatalf("%s entry %d: no location: %s", filepath.Base(f), i, e.Marshal())
			}
			ids[i] = parts[1]
			refs[sentEntries[i].GetString("fullUrl")] = parts[0] + "/" + parts[1]
		}
		for i, e := range sentEntries {
			res := e.Get("resource")
			resource.RewriteReferences(res, refs)
			res.Set("id", jsontree.NewString(ids[i]))
			c.add(res)
		}
	}
	n := 0
	for _, rs := range c.byType {
		n += len(rs)
	}
	t.Logf("loaded %d resources from %d bundles in %v", n, len(files), time.Since(start).Round(time.Millisecond))
	return s, c
}

// mutate updates and deletes a few dozen of the loaded resources through the API, so that the
// searches also cover what the index must forget (old versions, deleted resources) and shapes the
// Synthea data lacks: Observation times as a date or a Period (open at either end), codings and
// identifiers without a system, units written differently from their code, partial birth dates,
// ongoing encounters, accented family names.
func mutate(t *testing.T, s *server, c *corpus) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 11))
	pick := func(typ, path string) *jsontree.Value {
		for {
			res := c.byType[typ][r.IntN(len(c.byType[typ]))]
			if path == "" || len(pathValues(res, path)) > 0 {
				return res.Clone()
			}
		}
	}
	updates, deletes := 0, 0
	update := func(res *jsontree.Value) {
		typ, id := res.GetString("resourceType"), res.GetString("id")
		s.do(http.MethodPut, typ+"/"+id, res.Marshal()).must(t, http.StatusOK)
		c.put(res)
		updates++
	}
	obj := func(kv ...string) *jsontree.Value {
		o := jsontree.NewObject()
		for i := 0; i+1 < len(kv); i += 2 {
			o.Set(kv[i], jsontree.NewString(kv[i+1]))
		}
		return o
	}
	unitWords := map[string]string{"mg/dL": "milligram per deciliter", "kg": "kilogram", "cm": "centimeter", "mm[Hg]": "millimeter of mercury", "%": "percent", "kg/m2": "kilogram per square meter", "/min": "per minute"}
	for i := range 12 {
		var o, vq *jsontree.Value
		if i%3 == 0 {
			o = pick("Observation", "component.valueQuantity")
			vq = pathValues(o, "component.valueQuantity")[0]
		} else {
			o = pick("Observation", "valueQuantity")
			vq = o.Get("valueQuantity")
		}
		w, ok := unitWords[vq.GetString("code")]
		if !ok {
			w = vq.GetString("code") + " units"
		}
		vq.Set("unit", jsontree.NewString(w))
		update(o)
	}
	for i := range 12 {
		o := pick("Observation", "effectiveDateTime")
		at := o.GetString("effectiveDateTime")
		start, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatal(err)
		}
		end := start.Add(time.Duration(1+r.IntN(72)) * time.Hour).Format(time.RFC3339)
		switch i % 4 {
		case 0:
			o.Delete("effectiveDateTime")
			o.Set("effectivePeriod", obj("start", at, "end", end))
		case 1:
			o.Delete("effectiveDateTime")
			o.Set("effectivePeriod", obj([]string{"start", "end"}[r.IntN(2)], at))
		case 2:
			o.Set("effectiveDateTime", jsontree.NewString(at[:10]))
		default:
			o.Set("effectiveDateTime", jsontree.NewString(at[:7]))
		}
		update(o)
	}
	for i := range 6 {
		o := pick("Observation", "code.coding")
		cs := o.Get("code").Get("coding")
		cs.Items = append(cs.Items, obj("code", []string{"local-a", "local-b"}[i%2], "display", "Local test code"))
		if i%3 == 0 {
			o.Set("status", jsontree.NewString("amended"))
		}
		update(o)
	}
	families := []string{"Müller", "Núñez", "Ångström", "Zoë", "Sánchez-Åberg"}
	for i, k := range r.Perm(len(c.byType["Patient"]))[:25] {
		p := c.byType["Patient"][k].Clone() // distinct patients: each change is on the original
		switch i % 5 {
		case 0:
			p.Set("birthDate", jsontree.NewString(p.GetString("birthDate")[:4]))
		case 1:
			p.Set("birthDate", jsontree.NewString(p.GetString("birthDate")[:7]))
		case 2:
			p.Get("name").Items[0].Set("family", jsontree.NewString(families[i/5]))
		case 3:
			p.Set("gender", jsontree.NewString(map[string]string{"male": "female", "female": "other"}[p.GetString("gender")]))
		default:
			ids := p.Get("identifier")
			ids.Items = append(ids.Items, obj("value", fmt.Sprintf("NOSYS-%d", i)))
		}
		update(p)
	}
	for i := range 6 {
		e := pick("Encounter", "period")
		e.Get("period").Delete([]string{"end", "start"}[i%2])
		update(e)
	}
	for _, del := range []struct {
		typ string
		n   int
	}{{"Observation", 10}, {"Encounter", 3}, {"Claim", 3}, {"Condition", 2}, {"Immunization", 2}, {"DiagnosticReport", 2}} {
		for range del.n {
			id := pick(del.typ, "").GetString("id")
			res := s.do(http.MethodDelete, del.typ+"/"+id, nil)
			if res.status != http.StatusOK && res.status != http.StatusNoContent {
				t.Fatalf("DELETE %s/%s: status %d: %s", del.typ, id, res.status, res.body)
			}
			c.remove(del.typ, id)
			deletes++
		}
	}
	t.Logf("changed the data: %d updates, %d deletes", updates, deletes)
}

// searchQuery is one generated search: a resource type and its parameters in order, as they go on
// the wire before URL encoding (FHIR backslash escapes included).
type searchQuery struct {
	typ   string
	pairs [][2]string
	want  map[string]tri // the evaluator's verdicts, filled in by generateQueries
}

// encode renders the query string, keeping the FHIR separators , | $ and : readable.
func (q searchQuery) encode() string {
	var b strings.Builder
	for i, kv := range q.pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(queryEscape(kv[1]))
	}
	return b.String()
}

func (q searchQuery) String() string {
	var parts []string
	for _, kv := range q.pairs {
		parts = append(parts, kv[0]+"="+kv[1])
	}
	return q.typ + "?" + strings.Join(parts, "&")
}

var keepReadable = strings.NewReplacer("%2C", ",", "%7C", "|", "%24", "$", "%3A", ":", "%2F", "/")

func queryEscape(s string) string { return keepReadable.Replace(url.QueryEscape(s)) }

// fetchAll runs GET Type?query&_count=50 and follows the next links, returning the ids of the
// match entries, or an error describing the first thing wrong with the response.
func fetchAll(s *server, typ, query string) ([]string, error) {
	return followPages(s, typ, s.do(http.MethodGet, typ+"?"+query+"&_count="+fmt.Sprint(diffPageSize), nil))
}

// fetchAllPOST runs the same search as POST Type/_search with a form body.
func fetchAllPOST(s *server, typ, query string) ([]string, error) {
	body := query + "&_count=" + fmt.Sprint(diffPageSize)
	return followPages(s, typ, s.do(http.MethodPost, typ+"/_search", body, "Content-Type", "application/x-www-form-urlencoded"))
}

func followPages(s *server, typ string, r result) ([]string, error) {
	var ids []string
	seen := map[string]int{}
	total := -1
	for page := 1; ; page++ {
		if r.status != http.StatusOK {
			return nil, fmt.Errorf("page %d: status %d: %.300s", page, r.status, r.body)
		}
		b, err := jsontree.Parse(r.body)
		if err != nil {
			return nil, fmt.Errorf("page %d: not JSON: %v", page, err)
		}
		if b.GetString("resourceType") != "Bundle" || b.GetString("type") != "searchset" {
			return nil, fmt.Errorf("page %d: not a searchset Bundle: %.200s", page, r.body)
		}
		if page == 1 {
			if tv := b.Get("total"); tv != nil {
				fmt.Sscan(tv.Str, &total)
			}
		}
		links := map[string]string{}
		for _, l := range itemsOf(b.Get("link")) {
			links[l.GetString("relation")] = l.GetString("url")
		}
		if links["self"] == "" {
			return nil, fmt.Errorf("page %d: no self link", page)
		}
		matches := 0
		for _, e := range itemsOf(b.Get("entry")) {
			mode := e.Get("search").GetString("mode")
			if mode != "" && mode != "match" {
				continue
			}
			res := e.Get("resource")
			id := res.GetString("id")
			if rt := res.GetString("resourceType"); rt != typ || id == "" {
				return nil, fmt.Errorf("page %d: match entry %s/%s in a %s search", page, rt, id, typ)
			}
			if p, dup := seen[id]; dup {
				return nil, fmt.Errorf("%s/%s is on page %d and page %d", typ, id, p, page)
			}
			seen[id] = page
			ids = append(ids, id)
			matches++
		}
		if matches > diffPageSize {
			return nil, fmt.Errorf("page %d has %d matches, _count was %d", page, matches, diffPageSize)
		}
		next := links["next"]
		if next == "" {
			break
		}
		if page >= diffMaxPages {
			return nil, fmt.Errorf("more than %d pages", diffMaxPages)
		}
		path, ok := strings.CutPrefix(next, s.base+"/")
		if !ok {
			return nil, fmt.Errorf("page %d: next link %q is not under the base %s", page, next, s.base)
		}
		r = s.do(http.MethodGet, path, nil)
	}
	if total >= 0 && total != len(ids) {
		return nil, fmt.Errorf("Bundle.total is %d but the pages hold %d matches", total, len(ids))
	}
	return ids, nil
}

func itemsOf(v *jsontree.Value) []*jsontree.Value {
	if v == nil {
		return nil
	}
	return v.Items
}

// compareIDs returns "" when the server's ids are what the evaluator allows (every yes, and nothing
// outside yes and maybe), else a report naming some ids on one side only with their relevant elements.
func compareIDs(c *corpus, q searchQuery, got []string) string {
	want := q.want
	gotSet := map[string]bool{}
	for _, id := range got {
		gotSet[id] = true
	}
	var missing, extra []string
	for id, v := range want {
		if v == triYes && !gotSet[id] {
			missing = append(missing, id)
		}
	}
	for _, id := range got {
		if want[id] == triNo {
			extra = append(extra, id)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return ""
	}
	sort.Strings(missing)
	sort.Strings(extra)
	var b strings.Builder
	expected := 0
	for _, v := range want {
		if v == triYes {
			expected++
		}
	}
	fmt.Fprintf(&b, "%s\n    server found %d, evaluator %d (+%d open)", q, len(got), expected, len(want)-expected)
	for _, side := range []struct {
		what string
		ids  []string
	}{{"missing from the server's answer", missing}, {"wrongly in the server's answer", extra}} {
		if len(side.ids) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n    %d %s, e.g.:", len(side.ids), side.what)
		for _, id := range side.ids[:min(3, len(side.ids))] {
			fmt.Fprintf(&b, "\n      %s/%s %s", q.typ, id, describe(c, q, id))
		}
	}
	return b.String()
}

// describe shows the elements of a resource that the query's parameters look at.
func describe(c *corpus, q searchQuery, id string) string {
	res := c.byRef[q.typ+"/"+id]
	var parts []string
	done := map[string]bool{}
	for _, kv := range q.pairs {
		name, chain, _ := strings.Cut(kv[0], ".")
		name, _, _ = strings.Cut(name, ":")
		def, ok := params[q.typ][name]
		if !ok || done[kv[0]] {
			continue
		}
		done[kv[0]] = true
		var vals []string
		elems := c.elements(res, def)
		if def.kind == kComposite {
			// Show the components of each root, not the root (the whole resource, for some).
			var parts []*jsontree.Value
			for _, root := range elems {
				for _, comp := range def.comp {
					parts = append(parts, c.elements(root, comp)...)
				}
			}
			elems = parts
		}
		for _, e := range elems {
			vals = append(vals, string(e.Marshal()))
			if chain != "" {
				// Show what the chain reaches: the target's chained element, one link deep.
				next, _, _ := strings.Cut(chain, ".")
				next, _, _ = strings.Cut(next, ":")
				typ, id, _ := c.parseRef(e.GetString("reference"))
				if target, tdef := c.byRef[typ+"/"+id], params[typ][next]; target != nil {
					for _, te := range c.elements(target, tdef) {
						vals = append(vals, "→ "+next+" "+string(te.Marshal()))
					}
				}
			}
		}
		if def.kind == kID {
			vals = []string{id}
		}
		s := strings.Join(vals, " ")
		if len(s) > 400 {
			s = s[:400] + "…"
		}
		parts = append(parts, strings.Split(kv[0], ":")[0]+": "+s)
	}
	return strings.Join(parts, "; ")
}

func without(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func firstFew(xs []string) []string { return xs[:min(3, len(xs))] }

// coverage summarises the parameters, modifiers and prefixes the queries use.
func coverage(queries []searchQuery) string {
	counts := map[string]int{}
	for _, q := range queries {
		for _, kv := range q.pairs {
			name := kv[0]
			if strings.HasPrefix(name, "_has:") {
				name = "_has"
			} else if head, _, ok := strings.Cut(name, "."); ok {
				name = head + ".(chain)"
			}
			counts[q.typ+"."+name]++
			if def := paramOf(q.typ, kv[0]); def.kind == kDate || def.kind == kQuantity || def.kind == kComposite {
				for _, v := range splitEsc(kv[1], ',') {
					if def.kind == kComposite {
						v = splitEsc(v, '$')[1]
					}
					p, rest := cutPrefix(v)
					if len(v) > 1 && v[:2] == p {
						counts["prefix "+p]++
					} else {
						counts["prefix (none)"]++
					}
					if def.kind != kDate && strings.ContainsAny(strings.Split(rest, "|")[0], "e") {
						counts["number with exponent"]++
					}
					if def.kind == kDate && strings.Contains(rest, ".") {
						counts["date with fractional seconds"]++
					}
				}
			}
			if strings.Contains(kv[1], ",") && !strings.Contains(kv[0], ":missing") {
				counts["OR list"]++
			}
		}
		seen := map[string]int{}
		for _, kv := range q.pairs {
			seen[kv[0]]++
		}
		for _, n := range seen {
			if n > 1 {
				counts["repeated parameter (AND)"]++
			}
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %-55s %d", k, counts[k])
	}
	return b.String()
}

// paramOf returns the definition a (possibly modified) parameter name refers to, or the zero one.
func paramOf(typ, key string) paramDef {
	if strings.HasPrefix(key, "_has:") || strings.Contains(key, ".") {
		return paramDef{kind: kString}
	}
	name, _, _ := strings.Cut(key, ":")
	if d, ok := params[typ][name]; ok {
		return d
	}
	return paramDef{kind: kString}
}

// gen draws queries from the corpus.
type gen struct {
	r *rand.Rand
	c *corpus
}

// generateQueries returns n queries, deterministic for a given corpus. Queries the evaluator
// expects to match more than diffMaxExpected resources are drawn again, except diffBigQueries.
func generateQueries(t *testing.T, c *corpus, n int) []searchQuery {
	t.Helper()
	g := &gen{r: rand.New(rand.NewPCG(20240917, 4)), c: c}
	type weighted struct {
		w int
		f func() (searchQuery, bool)
	}
	gens := []weighted{
		{3, g.patientGender}, {5, g.patientBirthdate}, {6, g.patientName}, {3, g.patientIdentifier},
		{3, g.patientAddress}, {2, g.patientID}, {2, g.patientDeath}, {4, g.patientHas}, {2, g.patientNegative},
		{6, g.observationCode}, {2, g.observationCategory}, {4, g.observationReference}, {8, g.observationDate},
		{6, g.observationValue}, {4, g.observationComponent}, {4, g.observationCodeValue}, {5, g.observationChain},
		{3, g.observationMissing},
		{3, g.encounterReference}, {6, g.encounterDate}, {3, g.encounterToken}, {2, g.encounterChain},
		{3, g.conditionToken}, {4, g.conditionDate},
		{2, g.claimReference}, {3, g.claimCreated}, {2, g.claimToken},
		{3, g.immunization}, {4, g.procedure}, {3, g.medicationRequest},
		{4, g.carePlan}, {4, g.diagnosticReport}, {2, g.allergy}, {2, g.fractionalSeconds}, {2, g.writtenUnit},
	}
	total := 0
	for _, w := range gens {
		total += w.w
	}
	var out []searchQuery
	for _, q := range fixedQueries(c) {
		want, err := c.eval(q.typ, q.pairs)
		if err != nil {
			t.Fatalf("fixed %s: %v", q, err)
		}
		q.want = want
		out = append(out, q)
	}
	large := 0
	for tries := 0; len(out) < n && tries < 50*n; tries++ {
		k := g.r.IntN(total)
		var f func() (searchQuery, bool)
		for _, w := range gens {
			if k < w.w {
				f = w.f
				break
			}
			k -= w.w
		}
		q, ok := f()
		if !ok {
			continue
		}
		want, err := c.eval(q.typ, q.pairs)
		if err != nil {
			t.Fatalf("generated %s: %v", q, err)
		}
		if len(want) > diffMaxExpected {
			if large >= diffBigQueries {
				continue
			}
			large++
		}
		q.want = want
		out = append(out, q)
	}
	return out
}

// fixedQueries are written by hand for the shapes mutate creates, which random picks reach only
// now and then: open periods, partial dates, values without a system, accented names.
func fixedQueries(c *corpus) []searchQuery {
	out := []searchQuery{
		newQuery("Encounter", "date", "gt2100"),
		newQuery("Encounter", "date", "lt1900"),
		newQuery("Encounter", "date", "ne2015"),
		newQuery("Encounter", "date", "sa1900", "date", "eb2100"),
		newQuery("CarePlan", "date", "gt2100"),
		newQuery("CarePlan", "date", "ge2020-01-01", "status", "active"),
		newQuery("Observation", "date", "gt2100"),
		newQuery("Observation", "date", "lt1900"),
		newQuery("Observation", "date:missing", "true"),
		newQuery("Observation", "code", "|local-a"),
		newQuery("Observation", "code", "local-b,local-a"),
		newQuery("Observation", "code:text", "local test"),
		newQuery("Observation", "status", "amended"),
		newQuery("Observation", "status:not", "final"),
		newQuery("Patient", "identifier", "|NOSYS-4"),
		newQuery("Patient", "identifier", "NOSYS-4,NOSYS-9"),
		newQuery("Patient", "family", "muller"),
		newQuery("Patient", "family", "MÜLL"),
		newQuery("Patient", "family:exact", "Müller"),
		newQuery("Patient", "family:exact", "Muller"),
		newQuery("Patient", "family", "sanchez-a"),
		newQuery("Patient", "family", "angst"),
		newQuery("Patient", "family:contains", "ÖM"),
		newQuery("Patient", "name", "zoe"),
		newQuery("Patient", "gender", "other"),
		newQuery("Patient", "gender:not", "male", "gender:not", "female"),
		newQuery("Patient", "birthdate:missing", "false", "birthdate", "ge1970"),
		newQuery("Patient", "given:exact", "María Eugenia"),
		newQuery("Patient", "given", "maria e"),
		newQuery("Patient", "given", "Eugenia"),
		newQuery("Patient", "name:contains", "eugenia"),
	}
	// Every patient whose birth date mutate cut to a year or month, at the other precisions.
	for _, id := range c.changed["Patient"] {
		p := c.byRef["Patient/"+id]
		bd := p.GetString("birthDate")
		if len(bd) >= 10 {
			continue
		}
		out = append(out,
			newQuery("Patient", "birthdate", bd[:4]+"-06-15", "_id", id),
			newQuery("Patient", "birthdate", "ge"+bd[:4]+"-06-15", "_id", id),
			newQuery("Patient", "birthdate", "le"+bd[:4]+"-06", "_id", id),
			newQuery("Patient", "birthdate", "ne"+bd, "_id", id),
			newQuery("Patient", "birthdate", "eq"+bd[:4], "_id", id))
	}
	return out
}

// Random choices.

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func (g *gen) oneOf(xs ...string) string { return xs[g.r.IntN(len(xs))] }

// pick returns a random resource of typ, often one that mutate changed.
func (g *gen) pick(typ string) *jsontree.Value {
	if ids := g.c.changed[typ]; len(ids) > 0 && g.chance(0.15) {
		return g.c.byRef[typ+"/"+ids[g.r.IntN(len(ids))]]
	}
	rs := g.c.byType[typ]
	return rs[g.r.IntN(len(rs))]
}

// pickWith picks a resource of typ whose path has a value, and that value.
func (g *gen) pickWith(typ, path string) (*jsontree.Value, *jsontree.Value) {
	for range 500 {
		res := g.pick(typ)
		if vs := pathValues(res, path); len(vs) > 0 {
			return res, vs[g.r.IntN(len(vs))]
		}
	}
	return nil, nil
}

func newQuery(typ string, kv ...string) searchQuery {
	out := searchQuery{typ: typ}
	for i := 0; i+1 < len(kv); i += 2 {
		out.pairs = append(out.pairs, [2]string{kv[i], kv[i+1]})
	}
	return out
}

func (sq searchQuery) and(kv ...string) searchQuery {
	for i := 0; i+1 < len(kv); i += 2 {
		sq.pairs = append(sq.pairs, [2]string{kv[i], kv[i+1]})
	}
	return sq
}

func refID(ref string) string {
	_, id, _ := strings.Cut(ref, "/")
	return id
}

// patientRef returns the id of the patient a resource points at through path.
func patientOf(res *jsontree.Value, path string) string {
	return refID(pathValues(res, path)[0].GetString("reference"))
}

// esc applies the FHIR search escapes to a literal value.
var fhirEscape = strings.NewReplacer(`\`, `\\`, `,`, `\,`, `|`, `\|`, `$`, `\$`).Replace

// Strings.

var accentable = map[rune]rune{'a': 'á', 'e': 'é', 'i': 'í', 'o': 'ó', 'u': 'ü', 'n': 'ñ', 'A': 'Á', 'E': 'É', 'I': 'Í', 'O': 'Ö', 'U': 'Ú', 'c': 'ç'}

// stringValue returns a prefix of s in random case, with accents stripped or added at random:
// string search must ignore both.
func (g *gen) stringValue(s string) string {
	rs := []rune(s)
	n := 1 + g.r.IntN(len(rs))
	if g.chance(0.3) {
		n = len(rs)
	}
	// A prefix ending in white space is left out: whether a server may collapse or trim white
	// space in a search value is not settled by search.html.
	v := strings.TrimRightFunc(string(rs[:n]), unicode.IsSpace)
	if v == "" {
		v = s
	}
	switch g.r.IntN(4) {
	case 1:
		v = strings.ToLower(v)
	case 2:
		v = strings.ToUpper(v)
	case 3:
		var b strings.Builder
		for _, r := range v {
			if g.chance(0.5) {
				r = unicode.ToUpper(r)
			} else {
				r = unicode.ToLower(r)
			}
			b.WriteRune(r)
		}
		v = b.String()
	}
	if g.chance(0.3) {
		v = stripAccents(v)
	} else if g.chance(0.3) {
		rs := []rune(v)
		for i, r := range rs {
			if a, ok := accentable[r]; ok && g.chance(0.5) {
				rs[i] = a
			}
		}
		v = string(rs)
	}
	return v
}

// stripAccents removes the accents of s and keeps its case.
func stripAccents(s string) string {
	folded, orig := []rune(fold(s)), []rune(s)
	if len(folded) != len(orig) {
		return string(folded)
	}
	for i, r := range orig {
		if unicode.IsUpper(r) {
			folded[i] = unicode.ToUpper(folded[i])
		}
	}
	return string(folded)
}

// substring returns a random non-empty infix of s.
func (g *gen) substring(s string) string {
	rs := []rune(s)
	i := g.r.IntN(len(rs))
	j := i + 1 + g.r.IntN(len(rs)-i)
	if v := strings.TrimSpace(string(rs[i:j])); v != "" {
		return v
	}
	return s
}

// Tokens.

// coding picks a Coding of the CodeableConcept cc.
func (g *gen) coding(cc *jsontree.Value) *jsontree.Value {
	cs := pathValues(cc, "coding")
	return cs[g.r.IntN(len(cs))]
}

// tokenValue renders a Coding as one of the token forms: system|code, code, |code (no system:
// matches nothing in Synthea, where every coding has one) or system| .
func (g *gen) tokenValue(c *jsontree.Value) string {
	sys, code := c.GetString("system"), c.GetString("code")
	if sys == "" {
		return g.oneOf("", "|") + fhirEscape(code)
	}
	switch k := g.r.IntN(10); {
	case k < 5:
		return fhirEscape(sys) + "|" + fhirEscape(code)
	case k < 8:
		return fhirEscape(code)
	case k < 9:
		return "|" + fhirEscape(code)
	default:
		return fhirEscape(sys) + "|"
	}
}

// textValue returns a prefix of a CodeableConcept's text or one of its displays, for :text.
func (g *gen) textValue(cc *jsontree.Value) string {
	texts := []string{}
	if t := cc.GetString("text"); t != "" {
		texts = append(texts, t)
	}
	for _, c := range pathValues(cc, "coding") {
		if d := c.GetString("display"); d != "" {
			texts = append(texts, d)
		}
	}
	if len(texts) == 0 {
		return "zz"
	}
	t := texts[g.r.IntN(len(texts))]
	rs := []rune(t)
	n := min(len(rs), 3+g.r.IntN(max(1, len(rs)-2)))
	v := strings.TrimRightFunc(string(rs[:n]), unicode.IsSpace)
	if g.chance(0.5) {
		v = strings.ToLower(v)
	}
	return fhirEscape(v)
}

// Dates.

var searchZones = []*time.Location{time.UTC, time.FixedZone("", -5*3600), time.FixedZone("", 2*3600), time.FixedZone("", 9*3600+1800)}

// dateValue renders the date or dateTime s at a random precision (year, month, day or second with
// a zone), sometimes moved by one unit of that precision, with a random prefix.
func (g *gen) dateValue(s string) string {
	hasTime := len(s) > 10
	var t time.Time
	var err error
	switch len(s) {
	case 4:
		t, err = time.Parse("2006", s)
	case 7:
		t, err = time.Parse("2006-01", s)
	case 10:
		t, err = time.Parse("2006-01-02", s)
	default:
		t, err = time.Parse(time.RFC3339, s)
	}
	if err != nil {
		return g.datePrefix() + "1900"
	}
	prec := g.r.IntN(4) // 0 year, 1 month, 2 day, 3 second, 4 millisecond
	if !hasTime && prec == 3 && g.chance(0.7) {
		prec = 2
	}
	if hasTime && (prec == 3 && g.chance(0.2) || strings.Contains(s, ".") && g.chance(0.5)) {
		prec = 4
	}
	shift := 0
	if g.chance(0.35) {
		shift = g.oneOf2(-1, 1)
	}
	var v string
	switch prec {
	case 0:
		v = t.AddDate(shift, 0, 0).Format("2006")
	case 1:
		v = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, shift, 0).Format("2006-01")
	case 2:
		v = t.AddDate(0, 0, shift).Format("2006-01-02")
	case 3:
		v = g.zoned(t.Add(time.Duration(shift)*time.Second), "2006-01-02T15:04:05Z07:00")
	default:
		// A millisecond inside the target's second (or the target's own millisecond): the search
		// range is one millisecond, the target's is its own precision.
		if !strings.Contains(s, ".") {
			t = t.Add(time.Duration(g.oneOf2(0, g.oneOf2(500, 999))) * time.Millisecond)
		}
		v = g.zoned(t.Add(time.Duration(shift)*time.Millisecond), "2006-01-02T15:04:05.000Z07:00")
	}
	return g.datePrefix() + v
}

// zoned formats t in a random zone, spelling UTC as Z or +00:00.
func (g *gen) zoned(t time.Time, layout string) string {
	z := searchZones[g.r.IntN(len(searchZones))]
	v := t.In(z).Format(layout)
	if z == time.UTC && g.chance(0.5) {
		v = strings.TrimSuffix(v, "Z") + "+00:00"
	}
	return v
}

func (g *gen) oneOf2(a, b int) int {
	if g.chance(0.5) {
		return a
	}
	return b
}

func (g *gen) datePrefix() string {
	return g.oneOf("", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
}

// Numbers.

// numberValue renders a decimal literal of the data at a random precision (kept as is, or rounded
// to 0-2 decimals), sometimes moved by one unit of the last digit, with a random prefix.
func (g *gen) numberValue(lit string) string {
	r, ok := new(big.Rat).SetString(lit)
	if !ok {
		return "0"
	}
	if g.chance(0.08) {
		// Exponent form: the mantissa's digits give the precision (1e2 is [95, 105)).
		f, _ := r.Float64()
		return g.oneOf("", "eq", "ne", "gt", "lt") + strconv.FormatFloat(f, 'e', g.r.IntN(3), 64)
	}
	v := lit
	if strings.ContainsAny(lit, "eE") || !g.chance(0.3) {
		d := g.r.IntN(3)
		if g.chance(0.3) {
			unit := new(big.Rat).SetFrac64(1, pow10(d))
			if g.chance(0.5) {
				unit.Neg(unit)
			}
			r.Add(r, unit)
		}
		v = r.FloatString(d)
	}
	return g.oneOf("", "eq", "ne", "gt", "lt", "ge", "le") + v
}

func pow10(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

// quantityValue renders a Quantity as number, number|system|code or number||unit.
func (g *gen) quantityValue(qv *jsontree.Value) string {
	num := g.numberValue(qv.Get("value").Str)
	switch g.r.IntN(3) {
	case 0:
		return num
	case 1:
		return num + "|" + fhirEscape(qv.GetString("system")) + "|" + fhirEscape(qv.GetString("code"))
	default:
		return num + "||" + fhirEscape(qv.GetString("unit"))
	}
}

// The generators, one per area of the data.

func (g *gen) patientGender() (searchQuery, bool) {
	p := g.pick("Patient")
	gender := p.GetString("gender")
	switch g.r.IntN(4) {
	case 0:
		return newQuery("Patient", "gender", gender), true
	case 1:
		return newQuery("Patient", "gender:not", gender), true
	case 2:
		return newQuery("Patient", "gender", "other,"+gender), true
	default:
		return newQuery("Patient", "gender", gender, "birthdate", g.dateValue(p.GetString("birthDate"))), true
	}
}

func (g *gen) patientBirthdate() (searchQuery, bool) {
	p := g.pick("Patient")
	sq := newQuery("Patient", "birthdate", g.dateValue(p.GetString("birthDate")))
	if g.chance(0.3) {
		// A range: two ANDed bounds around another patient's birth date.
		o := g.pick("Patient")
		sq = sq.and("birthdate", g.oneOf("lt", "le", "gt", "ge")+o.GetString("birthDate")[:4])
	}
	return sq, true
}

func (g *gen) patientName() (searchQuery, bool) {
	p, name := g.pickWith("Patient", "name")
	if p == nil {
		return searchQuery{}, false
	}
	family := name.GetString("family")
	given := pathValues(name, "given")[0].Str
	switch g.r.IntN(9) {
	case 0, 1:
		return newQuery("Patient", "family", fhirEscape(g.stringValue(family))), true
	case 2:
		return newQuery("Patient", "given", fhirEscape(g.stringValue(given))), true
	case 3, 4:
		parts := stringParts(name)
		return newQuery("Patient", "name", fhirEscape(g.stringValue(parts[g.r.IntN(len(parts))]))), true
	case 5:
		// :exact is case and accent sensitive: half the time the value is the family name with its
		// case or accents changed, which must not match.
		v := family
		if g.chance(0.5) {
			v = g.oneOf(strings.ToLower(family), strings.ToUpper(family), stripAccents(family))
		}
		return newQuery("Patient", "family:exact", fhirEscape(v)), true
	case 6:
		if g.chance(0.3) {
			parts := stringParts(name)
			return newQuery("Patient", g.oneOf("name:exact", "given:exact", "name:contains", "given:contains"), fhirEscape(parts[g.r.IntN(len(parts))])), true
		}
		return newQuery("Patient", "name:contains", fhirEscape(strings.ToLower(g.substring(family+given)))), true
	case 7:
		// OR of two names, ANDed with a given name.
		o := g.pick("Patient").Get("name").Items[0].GetString("family")
		return newQuery("Patient", "family", fhirEscape(g.stringValue(family))+","+fhirEscape(g.stringValue(o)), "given", fhirEscape(g.stringValue(given))), true
	default:
		return newQuery("Patient", "name", fhirEscape(g.stringValue(given)), "gender", p.GetString("gender")), true
	}
}

func (g *gen) patientIdentifier() (searchQuery, bool) {
	p, id := g.pickWith("Patient", "identifier")
	if p == nil {
		return searchQuery{}, false
	}
	sys, val := id.GetString("system"), id.GetString("value")
	switch g.r.IntN(6) {
	case 0, 1:
		return newQuery("Patient", "identifier", fhirEscape(sys)+"|"+fhirEscape(val)), true
	case 2:
		return newQuery("Patient", "identifier", fhirEscape(val)), true
	case 3:
		return newQuery("Patient", "identifier", "|"+fhirEscape(val)), true
	case 4:
		return newQuery("Patient", "identifier", fhirEscape(sys)+"|"), true
	default:
		if id.Get("type") == nil {
			return newQuery("Patient", "identifier", fhirEscape(sys)+"|"+fhirEscape(val)), true
		}
		if g.chance(0.5) {
			// :of-type is system|code|value: a coding of the identifier's type, then its value.
			tc := g.coding(id.Get("type"))
			v := val
			if g.chance(0.3) {
				v = g.pick("Patient").Get("identifier").Items[0].GetString("value")
			}
			return newQuery("Patient", "identifier:of-type", fhirEscape(tc.GetString("system"))+"|"+fhirEscape(tc.GetString("code"))+"|"+fhirEscape(v)), true
		}
		return newQuery("Patient", "identifier:text", g.textValue(id.Get("type"))), true
	}
}

func (g *gen) patientAddress() (searchQuery, bool) {
	p, addr := g.pickWith("Patient", "address")
	if p == nil {
		return searchQuery{}, false
	}
	switch g.r.IntN(6) {
	case 0, 1:
		return newQuery("Patient", "address-city", fhirEscape(g.stringValue(addr.GetString("city")))), true
	case 2:
		return newQuery("Patient", "address-state", fhirEscape(g.stringValue(addr.GetString("state")))), true
	case 3:
		parts := stringParts(addr)
		return newQuery("Patient", "address", fhirEscape(g.stringValue(parts[g.r.IntN(len(parts))]))), true
	case 4:
		city := addr.GetString("city")
		if g.chance(0.5) {
			city = strings.ToLower(city)
		}
		return newQuery("Patient", "address-city:exact", fhirEscape(city)), true
	default:
		return newQuery("Patient", "address-city:contains", fhirEscape(g.substring(addr.GetString("city")))), true
	}
}

func (g *gen) patientID() (searchQuery, bool) {
	a, b := g.pick("Patient").GetString("id"), g.pick("Patient").GetString("id")
	switch g.r.IntN(5) {
	case 0:
		return newQuery("Patient", "_id", a), true
	case 1:
		return newQuery("Patient", "_id", a+","+b), true
	case 2:
		return newQuery("Patient", "_id:not", a, "gender", g.oneOf("male", "female")), true
	case 3:
		// Reverse chaining to _id, which is not an element value of the source.
		return newQuery("Patient", "_has:Observation:patient:_id", g.pick("Observation").GetString("id")+","+g.pick("Observation").GetString("id")), true
	default:
		return newQuery("Patient", "_id", a+",no-such-id"), true
	}
}

func (g *gen) patientDeath() (searchQuery, bool) {
	switch g.r.IntN(3) {
	case 0:
		return newQuery("Patient", "death-date:missing", g.oneOf("true", "false")), true
	case 1:
		p, d := g.pickWith("Patient", "deceasedDateTime")
		if p == nil {
			return searchQuery{}, false
		}
		return newQuery("Patient", "death-date", g.dateValue(d.Str)), true
	default:
		param := g.oneOf("birthdate", "family", "identifier", "address-city", "name", "death-date")
		return newQuery("Patient", param+":missing", g.oneOf("true", "false"), "gender", g.oneOf("male", "female")), true
	}
}

func (g *gen) patientHas() (searchQuery, bool) {
	switch g.r.IntN(7) {
	case 4:
		e := g.pick("Encounter")
		return newQuery("Patient", "_has:Encounter:patient:class", e.Get("class").GetString("code"), "gender", g.oneOf("male", "female")), true
	case 5:
		_, cc := g.pickWith("Procedure", "code")
		return newQuery("Patient", "_has:Procedure:patient:code", g.tokenValue(g.coding(cc))), true
	case 6:
		// Through subject, whose references name their type.
		_, cc := g.pickWith("Observation", "code")
		return newQuery("Patient", "_has:Observation:subject:code", g.tokenValue(g.coding(cc)), "birthdate", g.dateValue(g.pick("Patient").GetString("birthDate"))), true
	case 0, 1:
		_, cc := g.pickWith("Observation", "code")
		return newQuery("Patient", "_has:Observation:patient:code", g.tokenValue(g.coding(cc))), true
	case 2:
		_, cc := g.pickWith("Condition", "code")
		sq := newQuery("Patient", "_has:Condition:patient:code", g.tokenValue(g.coding(cc)))
		if g.chance(0.5) {
			sq = sq.and("gender", g.oneOf("male", "female"))
		}
		return sq, true
	default:
		_, cc := g.pickWith("Immunization", "vaccineCode")
		return newQuery("Patient", "_has:Immunization:patient:vaccine-code", g.tokenValue(g.coding(cc)), "birthdate", g.oneOf("lt", "ge")+g.pick("Patient").GetString("birthDate")[:4]), true
	}
}

func (g *gen) patientNegative() (searchQuery, bool) {
	switch g.r.IntN(7) {
	case 5:
		// SQL LIKE wildcards are literal characters in a search value.
		return newQuery("Patient", g.oneOf("family", "given", "name:contains", "address-city"), g.oneOf("%", "_", "%a", "a_", `\\`)), true
	case 6:
		return newQuery("Patient", g.oneOf("name:contains", "family:contains"), g.oneOf("%", "_", "o%e")), true
	case 0:
		return newQuery("Patient", "family", "Zzqx"), true
	case 1:
		return newQuery("Patient", "identifier", "http://example.org/none|"+g.pick("Patient").Get("identifier").Items[0].GetString("value")), true
	case 2:
		return newQuery("Patient", "_id", "no-such-patient"), true
	case 3:
		return newQuery("Patient", "birthdate", "1800-01-01"), true
	default:
		return newQuery("Patient", "gender", "female", "gender", "male"), true
	}
}

// scope narrows a query to the patient res points at through path, most of the time, writing the
// reference in one of its forms.
func (g *gen) scope(sq searchQuery, res *jsontree.Value, path, param string) searchQuery {
	if g.chance(0.75) {
		id := patientOf(res, path)
		switch g.r.IntN(4) {
		case 0:
			return sq.and(param, "Patient/"+id)
		case 1:
			return sq.and(param, id)
		case 2:
			return sq.and(param+":Patient", id)
		default:
			return sq.and(param, id)
		}
	}
	return sq
}

func (g *gen) observationCode() (searchQuery, bool) {
	o, cc := g.pickWith("Observation", "code")
	switch g.r.IntN(6) {
	case 0, 1:
		return g.scope(newQuery("Observation", "code", g.tokenValue(g.coding(cc))), o, "subject", "patient"), true
	case 2:
		return g.scope(newQuery("Observation", "code:text", g.textValue(cc)), o, "subject", "subject"), true
	case 3:
		sq := newQuery("Observation", "code:not", g.tokenValue(g.coding(cc)), "patient", patientOf(o, "subject"))
		if g.chance(0.4) {
			_, other := g.pickWith("Observation", "code")
			sq = sq.and("code:not", g.tokenValue(g.coding(other)))
		}
		return sq, true
	case 4:
		_, other := g.pickWith("Observation", "code")
		return g.scope(newQuery("Observation", "code", g.tokenValue(g.coding(cc))+","+g.tokenValue(g.coding(other))), o, "subject", "patient"), true
	default:
		return newQuery("Observation", "code", g.tokenValue(g.coding(cc)), "status", g.oneOf("final", "amended", "final,amended"), "encounter", o.Get("encounter").GetString("reference")), true
	}
}

func (g *gen) observationCategory() (searchQuery, bool) {
	o, cc := g.pickWith("Observation", "category")
	sq := newQuery("Observation", "category", g.tokenValue(g.coding(cc)), "patient", patientOf(o, "subject"))
	if g.chance(0.4) {
		sq = newQuery("Observation", "category:not", g.tokenValue(g.coding(cc)), "patient", "Patient/"+patientOf(o, "subject"))
	}
	return sq, true
}

func (g *gen) observationReference() (searchQuery, bool) {
	o := g.pick("Observation")
	pid := patientOf(o, "subject")
	enc := o.Get("encounter").GetString("reference")
	switch g.r.IntN(7) {
	case 0:
		return newQuery("Observation", "subject", "Patient/"+pid), true
	case 1:
		return newQuery("Observation", "patient", pid, "status", "final"), true
	case 2:
		if g.chance(0.4) {
			// An absolute reference under the server's base is the same as the relative one.
			return newQuery("Observation", g.oneOf("subject", "patient"), g.c.base+"/Patient/"+pid, "category", "vital-signs"), true
		}
		return newQuery("Observation", "subject:Patient", pid), true
	case 3:
		return newQuery("Observation", "encounter", enc), true
	case 4:
		return newQuery("Observation", "encounter", refID(enc)+","+g.pick("Encounter").GetString("id")), true
	case 5:
		// A reference of the wrong type must not match; an OR of references.
		if g.chance(0.5) {
			return newQuery("Observation", "subject", "Group/"+pid), true
		}
		other := patientOf(g.pick("Observation"), "subject")
		return newQuery("Observation", "patient", pid+","+other, "category", g.oneOf("vital-signs,laboratory", "survey", "social-history,survey")), true
	default:
		return newQuery("Observation", "encounter:Encounter", refID(enc), "patient", "Patient/"+pid), true
	}
}

func (g *gen) observationDate() (searchQuery, bool) {
	o, d := g.pickWith("Observation", "effectiveDateTime")
	sq := newQuery("Observation", "date", g.dateValue(d.Str))
	switch g.r.IntN(5) {
	case 0:
		// A range of two ANDed prefixed bounds.
		_, d2 := g.pickWith("Observation", "effectiveDateTime")
		sq = sq.and("date", g.dateValue(d2.Str))
		return g.scope(sq, o, "subject", "patient"), true
	case 1:
		_, cc := g.pickWith("Observation", "code")
		return sq.and("code", fhirEscape(g.coding(cc).GetString("code"))), true
	case 2:
		// OR of two dates.
		_, d2 := g.pickWith("Observation", "effectiveDateTime")
		sq.pairs[0][1] += "," + g.dateValue(d2.Str)
		return sq.and("patient", patientOf(o, "subject")), true
	default:
		return sq.and("patient", patientOf(o, "subject")), true
	}
}

func (g *gen) observationValue() (searchQuery, bool) {
	o, qv := g.pickWith("Observation", "valueQuantity")
	code := g.coding(o.Get("code"))
	sq := newQuery("Observation", "value-quantity", g.quantityValue(qv), "code", fhirEscape(code.GetString("system"))+"|"+fhirEscape(code.GetString("code")))
	if g.chance(0.3) {
		sq = sq.and("value-quantity", g.quantityValue(qv))
	}
	if g.chance(0.3) {
		sq = sq.and("patient", patientOf(o, "subject"))
	}
	return sq, true
}

func (g *gen) observationComponent() (searchQuery, bool) {
	o, comp := g.pickWith("Observation", "component")
	if o == nil {
		return searchQuery{}, false
	}
	c := g.coding(comp.Get("code"))
	switch g.r.IntN(4) {
	case 0:
		return g.scope(newQuery("Observation", "component-code", g.tokenValue(c)), o, "subject", "patient"), true
	case 1:
		return newQuery("Observation", "component-value-quantity", g.quantityValue(comp.Get("valueQuantity")), "patient", patientOf(o, "subject")), true
	default:
		// The code and value must be those of one component: the value of the other component
		// of a blood pressure must not satisfy the pair.
		_, other := g.pickWith("Observation", "component.valueQuantity")
		vq := comp.Get("valueQuantity")
		if g.chance(0.3) {
			vq = other
		}
		return g.scope(newQuery("Observation", "component-code-value-quantity", fhirEscape(c.GetString("system"))+"|"+fhirEscape(c.GetString("code"))+"$"+g.quantityValue(vq)), o, "subject", "patient"), true
	}
}

func (g *gen) observationCodeValue() (searchQuery, bool) {
	o, qv := g.pickWith("Observation", "valueQuantity")
	c := g.coding(o.Get("code"))
	v := fhirEscape(c.GetString("system")) + "|" + fhirEscape(c.GetString("code")) + "$" + g.quantityValue(qv)
	if g.chance(0.3) {
		// The value of another observation, whose code differs most of the time.
		o2, qv2 := g.pickWith("Observation", "valueQuantity")
		c2 := g.coding(o2.Get("code"))
		v += "," + fhirEscape(c2.GetString("code")) + "$" + g.quantityValue(qv2)
	}
	return g.scope(newQuery("Observation", "code-value-quantity", v), o, "subject", "patient"), true
}

func (g *gen) observationChain() (searchQuery, bool) {
	o, cc := g.pickWith("Observation", "code")
	p := g.c.byRef["Patient/"+patientOf(o, "subject")]
	code := fhirEscape(g.coding(cc).GetString("system")) + "|" + fhirEscape(g.coding(cc).GetString("code"))
	enc := g.c.byRef[o.Get("encounter").GetString("reference")]
	switch g.r.IntN(9) {
	case 6:
		return newQuery("Observation", "encounter:Encounter.class", enc.Get("class").GetString("code"), "patient", p.GetString("id")), true
	case 7:
		// Two links: Observation → Encounter → Patient.
		return newQuery("Observation", "encounter:Encounter.patient.gender", p.GetString("gender"), "code", code), true
	case 8:
		return newQuery("Observation", "encounter:Encounter.date", g.dateValue(enc.Get("period").GetString(g.oneOf("start", "end"))), "patient", p.GetString("id")), true
	case 0:
		return newQuery("Observation", "subject:Patient.gender", p.GetString("gender"), "code", code), true
	case 1:
		return newQuery("Observation", "patient.birthdate", g.oneOf("lt", "gt", "le", "ge")+g.pick("Patient").GetString("birthDate")[:4], "code", code), true
	case 2:
		return newQuery("Observation", "patient.family", fhirEscape(g.stringValue(p.Get("name").Items[0].GetString("family"))), "code", code), true
	case 3:
		if g.chance(0.4) {
			return newQuery("Observation", "patient.death-date:missing", g.oneOf("true", "false"), "code", code), true
		}
		id := p.Get("identifier").Items[0]
		return newQuery("Observation", "patient.identifier", fhirEscape(id.GetString("system"))+"|"+fhirEscape(id.GetString("value")), "category", "vital-signs"), true
	case 4:
		if g.chance(0.5) {
			return newQuery("Observation", "patient.gender:not", p.GetString("gender"), "code", code), true
		}
		return newQuery("Observation", "subject:Patient.address-city", fhirEscape(g.stringValue(p.Get("address").Items[0].GetString("city"))), "code", code), true
	default:
		return newQuery("Observation", "patient._id", p.GetString("id"), "date", g.dateValue(o.GetString("effectiveDateTime"))), true
	}
}

func (g *gen) observationMissing() (searchQuery, bool) {
	o := g.pick("Observation")
	pid := patientOf(o, "subject")
	param := g.oneOf("value-quantity", "value-concept", "component-code", "encounter", "date")
	return newQuery("Observation", param+":missing", g.oneOf("true", "false"), "patient", pid), true
}

func (g *gen) encounterReference() (searchQuery, bool) {
	e := g.pick("Encounter")
	pid := patientOf(e, "subject")
	switch g.r.IntN(4) {
	case 0:
		return newQuery("Encounter", "patient", pid), true
	case 1:
		return newQuery("Encounter", "subject", "Patient/"+pid), true
	case 2:
		return newQuery("Encounter", "subject:Patient", pid, "status", "finished"), true
	default:
		return newQuery("Encounter", "service-provider", e.Get("serviceProvider").GetString("reference"), "patient", pid), true
	}
}

func (g *gen) encounterDate() (searchQuery, bool) {
	e := g.pick("Encounter")
	bound := e.Get("period").GetString(g.oneOf("start", "end"))
	sq := newQuery("Encounter", "date", g.dateValue(bound))
	if g.chance(0.3) {
		sq = sq.and("date", g.dateValue(e.Get("period").GetString(g.oneOf("start", "end"))))
	}
	if g.chance(0.8) {
		return sq.and("patient", patientOf(e, "subject")), true
	}
	return sq.and("class", e.Get("class").GetString("code")), true
}

func (g *gen) encounterToken() (searchQuery, bool) {
	e := g.pick("Encounter")
	pid := patientOf(e, "subject")
	cl := e.Get("class")
	switch g.r.IntN(5) {
	case 0:
		return newQuery("Encounter", g.oneOf("class", "class", "class:not"), g.tokenValue(cl), "patient", pid), true
	case 1:
		return newQuery("Encounter", "type", g.tokenValue(g.coding(e.Get("type").Items[0]))), true
	case 2:
		return newQuery("Encounter", "type:text", g.textValue(e.Get("type").Items[0]), "patient", pid), true
	case 3:
		return newQuery("Encounter", "type:not", g.tokenValue(g.coding(e.Get("type").Items[0])), "patient", pid), true
	default:
		return newQuery("Encounter", "status", g.oneOf("finished", "in-progress", "finished,cancelled"), "class", fhirEscape(cl.GetString("code")), "patient", pid), true
	}
}

func (g *gen) encounterChain() (searchQuery, bool) {
	e := g.pick("Encounter")
	p := g.c.byRef["Patient/"+patientOf(e, "subject")]
	switch g.r.IntN(2) {
	case 0:
		return newQuery("Encounter", "subject:Patient.name", fhirEscape(g.stringValue(p.Get("name").Items[0].GetString("family"))), "class", e.Get("class").GetString("code")), true
	default:
		return newQuery("Encounter", "patient.gender", p.GetString("gender"), "type", g.tokenValue(g.coding(e.Get("type").Items[0]))), true
	}
}

func (g *gen) conditionToken() (searchQuery, bool) {
	c := g.pick("Condition")
	switch g.r.IntN(4) {
	case 0:
		return newQuery("Condition", "code", g.tokenValue(g.coding(c.Get("code")))), true
	case 1:
		return newQuery("Condition", "clinical-status", g.oneOf("active", "resolved", "http://terminology.hl7.org/CodeSystem/condition-clinical|active"), "patient", patientOf(c, "subject")), true
	case 2:
		return newQuery("Condition", "code:text", g.textValue(c.Get("code"))), true
	default:
		return newQuery("Condition", "abatement-date:missing", g.oneOf("true", "false"), "patient", "Patient/"+patientOf(c, "subject")), true
	}
}

func (g *gen) conditionDate() (searchQuery, bool) {
	c := g.pick("Condition")
	sq := newQuery("Condition", "onset-date", g.dateValue(c.GetString("onsetDateTime")))
	if g.chance(0.3) {
		if _, a := g.pickWith("Condition", "abatementDateTime"); a != nil {
			sq = sq.and("abatement-date", g.dateValue(a.Str))
		}
	}
	if g.chance(0.6) {
		sq = sq.and("patient", patientOf(c, "subject"))
	}
	return sq, true
}

func (g *gen) claimReference() (searchQuery, bool) {
	c := g.pick("Claim")
	pid := refID(c.Get("patient").GetString("reference"))
	prov := c.Get("provider").GetString("reference")
	switch g.r.IntN(4) {
	case 0:
		return newQuery("Claim", "patient", pid), true
	case 1:
		return newQuery("Claim", "provider", prov), true
	case 2:
		return newQuery("Claim", "provider:Organization", refID(prov), "patient", "Patient/"+pid), true
	default:
		return newQuery("Claim", "provider:Practitioner", refID(prov)), true
	}
}

func (g *gen) claimCreated() (searchQuery, bool) {
	c := g.pick("Claim")
	sq := newQuery("Claim", "created", g.dateValue(c.GetString("created")))
	if g.chance(0.3) {
		sq = sq.and("created", g.dateValue(g.pick("Claim").GetString("created")))
	}
	if g.chance(0.7) {
		sq = sq.and("patient", refID(c.Get("patient").GetString("reference")))
	}
	return sq, true
}

func (g *gen) claimToken() (searchQuery, bool) {
	c := g.pick("Claim")
	pid := refID(c.Get("patient").GetString("reference"))
	switch g.r.IntN(3) {
	case 0:
		return newQuery("Claim", "status", g.oneOf("active", "cancelled", "active,draft"), "patient", pid), true
	case 1:
		return newQuery("Claim", "use", g.oneOf("claim", "preauthorization"), "patient", pid), true
	default:
		return newQuery("Claim", "use:not", "claim", "patient", pid), true
	}
}

func (g *gen) immunization() (searchQuery, bool) {
	im := g.pick("Immunization")
	pid := refID(im.Get("patient").GetString("reference"))
	switch g.r.IntN(4) {
	case 0:
		return newQuery("Immunization", "vaccine-code", g.tokenValue(g.coding(im.Get("vaccineCode")))), true
	case 1:
		return newQuery("Immunization", "date", g.dateValue(im.GetString("occurrenceDateTime")), "patient", pid), true
	case 2:
		return newQuery("Immunization", "vaccine-code:text", g.textValue(im.Get("vaccineCode")), "patient", "Patient/"+pid), true
	default:
		return newQuery("Immunization", "patient", pid, "date", g.oneOf("ge", "lt")+im.GetString("occurrenceDateTime")[:4]), true
	}
}

func (g *gen) procedure() (searchQuery, bool) {
	p := g.pick("Procedure")
	pid := patientOf(p, "subject")
	switch g.r.IntN(4) {
	case 0:
		return newQuery("Procedure", "code", g.tokenValue(g.coding(p.Get("code")))), true
	case 1, 2:
		// performedPeriod: the range of the target is start..end.
		bound := p.Get("performedPeriod").GetString(g.oneOf("start", "end"))
		return newQuery("Procedure", "date", g.dateValue(bound), "patient", pid), true
	default:
		return newQuery("Procedure", "code", g.tokenValue(g.coding(p.Get("code"))), "date", g.dateValue(p.Get("performedPeriod").GetString("start"))), true
	}
}

func (g *gen) medicationRequest() (searchQuery, bool) {
	m := g.pick("MedicationRequest")
	pid := patientOf(m, "subject")
	switch g.r.IntN(4) {
	case 0:
		return newQuery("MedicationRequest", "status", g.oneOf("active", "stopped", "active,completed"), "patient", pid), true
	case 1:
		return newQuery("MedicationRequest", "intent", g.oneOf("order", "plan"), "patient", "Patient/"+pid), true
	case 2:
		return newQuery("MedicationRequest", "authoredon", g.dateValue(m.GetString("authoredOn")), "patient", pid), true
	default:
		return newQuery("MedicationRequest", "code", g.tokenValue(g.coding(m.Get("medicationCodeableConcept"))), "status:not", "active"), true
	}
}

func (g *gen) carePlan() (searchQuery, bool) {
	cp := g.pick("CarePlan")
	pid := patientOf(cp, "subject")
	period := cp.Get("period")
	switch g.r.IntN(6) {
	case 0, 1, 2:
		// Many care plans have no end: their range runs on for ever.
		bound := period.GetString("start")
		if end := period.GetString("end"); end != "" && g.chance(0.5) {
			bound = end
		}
		sq := newQuery("CarePlan", "date", g.dateValue(bound))
		if g.chance(0.5) {
			sq = sq.and("patient", pid)
		}
		return sq, true
	case 3:
		return newQuery("CarePlan", "status", g.oneOf("active", "completed", "active,revoked"), "patient", pid), true
	case 4:
		return newQuery("CarePlan", "category", g.tokenValue(g.coding(cp.Get("category").Items[0])), "intent", "order"), true
	default:
		_, c := g.pickWith("CarePlan", "activity.detail.code")
		return newQuery("CarePlan", g.oneOf("activity-code", "activity-code:not"), g.tokenValue(g.coding(c)), "patient", "Patient/"+pid), true
	}
}

func (g *gen) diagnosticReport() (searchQuery, bool) {
	dr := g.pick("DiagnosticReport")
	pid := patientOf(dr, "subject")
	switch g.r.IntN(6) {
	case 0, 1:
		// issued is an instant with milliseconds: its range is that millisecond.
		return newQuery("DiagnosticReport", "issued", g.dateValue(dr.GetString("issued")), "patient", pid), true
	case 2:
		return newQuery("DiagnosticReport", "date", g.dateValue(dr.GetString("effectiveDateTime")), "code", g.tokenValue(g.coding(dr.Get("code")))), true
	case 3:
		// Chained through a repeating reference: any result may match.
		res := g.c.byRef[pathValues(dr, "result")[0].GetString("reference")]
		return newQuery("DiagnosticReport", "result.code", g.tokenValue(g.coding(res.Get("code"))), "patient", pid), true
	case 4:
		res := pathValues(dr, "result")
		return newQuery("DiagnosticReport", "result", res[g.r.IntN(len(res))].GetString("reference")), true
	default:
		return newQuery("DiagnosticReport", "category", g.tokenValue(g.coding(dr.Get("category").Items[0])), "status", "final", "patient", "Patient/"+pid), true
	}
}

func (g *gen) allergy() (searchQuery, bool) {
	a := g.pick("AllergyIntolerance")
	switch g.r.IntN(4) {
	case 0:
		return newQuery("AllergyIntolerance", "code", g.tokenValue(g.coding(a.Get("code")))), true
	case 1:
		// category is a repeating code.
		return newQuery("AllergyIntolerance", "category", g.oneOf("food", "medication", "environment", "food,medication")), true
	case 2:
		return newQuery("AllergyIntolerance", "criticality", g.oneOf("low", "high", "unable-to-assess"), "clinical-status", "active"), true
	default:
		return newQuery("AllergyIntolerance", "date", g.dateValue(a.GetString("recordedDate"))), true
	}
}

// fractionalSeconds searches second-precision data with millisecond values, and the
// Observations of a DiagnosticReport in reverse.
func (g *gen) fractionalSeconds() (searchQuery, bool) {
	switch g.r.IntN(3) {
	case 0:
		o := g.pick("Observation")
		t, err := time.Parse(time.RFC3339, o.GetString("effectiveDateTime"))
		if err != nil {
			return searchQuery{}, false
		}
		t = t.Add(time.Duration(g.oneOf2(0, 500)) * time.Millisecond)
		return newQuery("Observation", "date", g.datePrefix()+g.zoned(t, "2006-01-02T15:04:05.000Z07:00"), "patient", patientOf(o, "subject")), true
	case 1:
		e := g.pick("Encounter")
		t, err := time.Parse(time.RFC3339, e.Get("period").GetString(g.oneOf("start", "end")))
		if err != nil {
			return searchQuery{}, false
		}
		t = t.Add(time.Duration(g.oneOf2(-1, 999)) * time.Millisecond)
		return newQuery("Encounter", "date", g.datePrefix()+g.zoned(t, "2006-01-02T15:04:05.000Z07:00"), "patient", patientOf(e, "subject")), true
	default:
		dr := g.pick("DiagnosticReport")
		return newQuery("Observation", "_has:DiagnosticReport:result:code", g.tokenValue(g.coding(dr.Get("code"))), "patient", patientOf(dr, "subject")), true
	}
}

// writtenUnit searches the quantities whose unit mutate wrote differently from their code, by
// number||unit, which matches Quantity.code or Quantity.unit (search.html#quantity).
func (g *gen) writtenUnit() (searchQuery, bool) {
	var cands []*jsontree.Value
	for _, id := range g.c.changed["Observation"] {
		o := g.c.byRef["Observation/"+id]
		for _, vq := range pathValues(o, "valueQuantity") {
			if vq.GetString("unit") != vq.GetString("code") {
				cands = append(cands, o)
			}
		}
		for _, vq := range pathValues(o, "component.valueQuantity") {
			if vq.GetString("unit") != vq.GetString("code") {
				cands = append(cands, o)
			}
		}
	}
	if len(cands) == 0 {
		return searchQuery{}, false
	}
	o := cands[g.r.IntN(len(cands))]
	pid := patientOf(o, "subject")
	if vq := o.Get("valueQuantity"); vq != nil && vq.GetString("unit") != vq.GetString("code") {
		num := g.numberValue(vq.Get("value").Str)
		unit := fhirEscape(vq.GetString(g.oneOf("unit", "unit", "code")))
		c := g.coding(o.Get("code"))
		if g.chance(0.5) {
			return newQuery("Observation", "value-quantity", num+"||"+unit, "patient", pid), true
		}
		return newQuery("Observation", "code-value-quantity", fhirEscape(c.GetString("system"))+"|"+fhirEscape(c.GetString("code"))+"$"+num+"||"+unit, "patient", pid), true
	}
	for _, comp := range pathValues(o, "component") {
		vq := comp.Get("valueQuantity")
		if vq == nil || vq.GetString("unit") == vq.GetString("code") {
			continue
		}
		num := g.numberValue(vq.Get("value").Str)
		unit := fhirEscape(vq.GetString("unit"))
		c := g.coding(comp.Get("code"))
		if g.chance(0.5) {
			return newQuery("Observation", "component-value-quantity", num+"||"+unit, "patient", pid), true
		}
		return newQuery("Observation", "component-code-value-quantity", fhirEscape(c.GetString("system"))+"|"+fhirEscape(c.GetString("code"))+"$"+num+"||"+unit, "patient", pid), true
	}
	return searchQuery{}, false
}
