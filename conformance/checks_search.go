package conformance

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// expect runs a search and returns a failure unless ref is (in) or is not (!in) among its matches;
// nil when it is as expected.
func (e *Env) expect(ctx context.Context, path, ref string, in bool) *Result {
	r, err := e.c.get(ctx, path)
	if err != nil {
		res := errResult(err)
		return &res
	}
	if r.Status != 200 || str(r.JSON()["type"]) != "searchset" {
		res := fail(r, "%s answered %d, want 200 with a searchset", path, r.Status)
		return &res
	}
	got := contains(refsOf(r.JSON(), "match"), ref) || (contains(refsOf(r.JSON(), ""), ref) && !hasModes(r.JSON()))
	if got != in {
		what := "does not match"
		if !in {
			what = "matches"
		}
		res := fail(r, "%s: %s %s", path, ref, what)
		return &res
	}
	return nil
}

// hasModes reports whether any entry carries search.mode.
func hasModes(b map[string]any) bool {
	for _, en := range entries(b) {
		if str(obj(en["search"])["mode"]) != "" {
			return true
		}
	}
	return false
}

// expectAll runs expectations in order: path → whether ref must match.
func (e *Env) expectAll(ctx context.Context, ref string, cases []expectation) Result {
	for _, c := range cases {
		if r := e.expect(ctx, c.path, ref, c.in); r != nil {
			return *r
		}
	}
	return pass()
}

type expectation struct {
	path string
	in   bool
}

// familyOf is the first family name of a Patient.
func familyOf(p map[string]any) string {
	for _, n := range arr(p["name"]) {
		if f := str(obj(n)["family"]); f != "" {
			return f
		}
	}
	return ""
}

// patientWith is patient A (or, read-only, the Patient found) when it has what need reports.
func (e *Env) patientWith(ctx context.Context, need func(map[string]any) bool) (map[string]any, string) {
	p := e.fixture(ctx, "patientA")
	if p == nil || !need(p) {
		return nil, ""
	}
	return p, "Patient/" + str(p["id"])
}

func searchChecks() []Check {
	hasFamily := func(p map[string]any) bool { return len([]rune(familyOf(p))) >= 4 }
	return []Check{
		chk("search/string-default", SHALL, searchSpec+"#string", "A string parameter matches, ignoring case, any value that starts with the given text", true, func(ctx context.Context, e *Env) Result {
			p, ref := e.patientWith(ctx, hasFamily)
			if p == nil {
				return skip("no Patient with a family name found")
			}
			fam := []rune(familyOf(p))
			prefix := strings.ToLower(string(fam[:len(fam)-2]))
			if e.fixtures == nil {
				prefix = strings.ToLower(string(fam[:len(fam)-1]))
			}
			id := "_id=" + q(str(p["id"])) + "&"
			return e.expectAll(ctx, ref, []expectation{
				{"Patient?" + id + "family=" + q(prefix), true},
				{"Patient?" + id + "family=" + q("zq"+prefix), false},
			})
		}),
		chk("search/string-accents", SHALL, searchSpec+"#string", "A string parameter matches regardless of accents (Zoe finds Zoë)", false, func(ctx context.Context, e *Env) Result {
			a := e.fixture(ctx, "patientA")
			if a == nil {
				return skip("no fixture")
			}
			plain := strings.NewReplacer("ë", "e").Replace(e.familyA())
			return e.expectAll(ctx, "Patient/"+str(a["id"]), []expectation{{"Patient?family=" + q(plain), true}})
		}),
		chk("search/string-exact", SHALL, searchSpec+"#modifiers", "family:exact matches the whole value, case and accents included", true, func(ctx context.Context, e *Env) Result {
			p, ref := e.patientWith(ctx, func(p map[string]any) bool { f := familyOf(p); return f != "" && strings.ToLower(f) != f })
			if p == nil {
				return skip("no Patient with a capitalised family name found")
			}
			fam := familyOf(p)
			id := "_id=" + q(str(p["id"])) + "&"
			return e.expectAll(ctx, ref, []expectation{
				{"Patient?" + id + "family:exact=" + q(fam), true},
				{"Patient?" + id + "family:exact=" + q(strings.ToLower(fam)), false},
				{"Patient?" + id + "family:exact=" + q(string([]rune(fam)[:len([]rune(fam))-1])), false},
			})
		}),
		chk("search/string-contains", SHALL, searchSpec+"#modifiers", "family:contains matches text anywhere in the value", true, func(ctx context.Context, e *Env) Result {
			p, ref := e.patientWith(ctx, func(p map[string]any) bool { return len([]rune(familyOf(p))) >= 5 })
			if p == nil {
				return skip("no Patient with a family name of 5 letters or more found")
			}
			fam := []rune(familyOf(p))
			mid := strings.ToLower(string(fam[2 : len(fam)-1]))
			id := "_id=" + q(str(p["id"])) + "&"
			return e.expectAll(ctx, ref, []expectation{
				{"Patient?" + id + "family:contains=" + q(mid), true},
				{"Patient?" + id + "family:contains=" + q(mid+"zq"), false},
			})
		}),
		chk("search/token-system-code", SHALL, searchSpec+"#token", "A token parameter given system|code matches that system and code only", true, func(ctx context.Context, e *Env) Result {
			var sys, val string
			p, ref := e.patientWith(ctx, func(p map[string]any) bool {
				for _, i := range arr(p["identifier"]) {
					if s, v := str(obj(i)["system"]), str(obj(i)["value"]); s != "" && v != "" {
						sys, val = s, v
						return true
					}
				}
				return false
			})
			if p == nil {
				return skip("no Patient with an identifier with a system found")
			}
			return e.expectAll(ctx, ref, []expectation{
				{"Patient?identifier=" + q(sys+"|"+val), true},
				{"Patient?identifier=" + q("urn:conformance:other|"+val), false},
				{"Patient?_id=" + q(str(p["id"])) + "&identifier=" + q(sys+"|"+val+"zq"), false},
			})
		}),
		chk("search/token-not", SHALL, searchSpec+"#modifiers", "A token parameter with :not matches what does not have the code", true, func(ctx context.Context, e *Env) Result {
			p, ref := e.patientWith(ctx, func(p map[string]any) bool { return str(p["gender"]) != "" })
			if p == nil {
				return skip("no Patient with a gender found")
			}
			g := str(p["gender"])
			other := "male"
			if g == "male" {
				other = "female"
			}
			id := "_id=" + q(str(p["id"])) + "&"
			return e.expectAll(ctx, ref, []expectation{
				{"Patient?" + id + "gender:not=" + g, false},
				{"Patient?" + id + "gender:not=" + other, true},
			})
		}),
		chk("search/date-prefixes", SHALL, searchSpec+"#prefix", "A date parameter honours eq, ne, gt, lt, ge, le and partial dates", true, func(ctx context.Context, e *Env) Result {
			p, ref := e.patientWith(ctx, func(p map[string]any) bool { return len(str(p["birthDate"])) == 10 })
			if p == nil {
				return skip("no Patient with a full birthDate found")
			}
			d := str(p["birthDate"])
			y, _ := strconv.Atoi(d[:4])
			id := "Patient?_id=" + q(str(p["id"])) + "&birthdate="
			return e.expectAll(ctx, ref, []expectation{
				{id + d, true}, {id + "eq" + d, true}, {id + "ne" + d, false},
				{id + "gt" + d, false}, {id + "ge" + d, true}, {id + "lt" + d, false}, {id + "le" + d, true},
				{id + d[:4], true}, {id + d[:7], true}, {id + strconv.Itoa(y+1), false},
				{id + "gt" + strconv.Itoa(y-1) + "-12-31", true}, {id + "lt" + strconv.Itoa(y+1) + "-01-01", true},
			})
		}),
		chk("search/number", SHALL, searchSpec+"#number", "A number parameter honours its value and prefixes (RiskAssessment probability)", true, func(ctx context.Context, e *Env) Result {
			r := e.fixture(ctx, "risk")
			var v float64
			ok := false
			if r != nil {
				for _, p := range arr(r["prediction"]) {
					if f, isNum := obj(p)["probabilityDecimal"].(float64); isNum {
						v, ok = f, true
						break
					}
				}
			}
			if !ok {
				return skip("no RiskAssessment with a prediction.probabilityDecimal found")
			}
			s := strconv.FormatFloat(v, 'f', -1, 64)
			id := "RiskAssessment?_id=" + q(str(r["id"])) + "&probability="
			return e.expectAll(ctx, "RiskAssessment/"+str(r["id"]), []expectation{
				{id + s, true}, {id + "gt" + s, false}, {id + "lt" + strconv.FormatFloat(v+0.1, 'f', -1, 64), true},
				{id + "gt" + strconv.FormatFloat(v-0.1, 'f', -1, 64), true}, {id + strconv.FormatFloat(v+0.1, 'f', -1, 64), false},
			})
		}),
		chk("search/quantity", SHALL, searchSpec+"#quantity", "A quantity parameter honours value|system|code and prefixes", true, func(ctx context.Context, e *Env) Result {
			o := e.fixture(ctx, "obsA")
			vq := obj(o["valueQuantity"])
			v, ok := vq["value"].(float64)
			if o == nil || !ok || str(vq["system"]) == "" || str(vq["code"]) == "" {
				return skip("no Observation with a coded valueQuantity found")
			}
			unit := "|" + str(vq["system"]) + "|" + str(vq["code"])
			s := strconv.FormatFloat(v, 'f', -1, 64)
			id := "Observation?_id=" + q(str(o["id"])) + "&value-quantity="
			return e.expectAll(ctx, "Observation/"+str(o["id"]), []expectation{
				{id + q(s+unit), true}, {id + q("gt"+s+unit), false}, {id + q("lt"+strconv.FormatFloat(v+1, 'f', -1, 64)+unit), true},
				{id + q(strconv.FormatFloat(v+1, 'f', -1, 64)+unit), false},
			})
		}),
		chk("search/reference-typed", SHALL, searchSpec+"#reference", "A reference parameter matches Type/id", true, func(ctx context.Context, e *Env) Result {
			o := e.fixture(ctx, "obsA")
			subj := str(obj(o["subject"])["reference"])
			if o == nil || !strings.HasPrefix(subj, "Patient/") {
				return skip("no Observation with a Patient subject found")
			}
			cases := []expectation{{"Observation?_id=" + q(str(o["id"])) + "&subject=" + q(subj), true},
				{"Observation?_id=" + q(str(o["id"])) + "&subject=" + q("Patient/"+e.absent()), false}}
			if b := e.fixture(ctx, "obsB"); b != nil && e.fixtures != nil {
				if r := e.expect(ctx, "Observation?subject="+q(subj), "Observation/"+str(b["id"]), false); r != nil {
					return *r
				}
			}
			return e.expectAll(ctx, "Observation/"+str(o["id"]), cases)
		}),
		chk("search/reference-bare-id", SHALL, searchSpec+"#reference", "A reference parameter with a single target type (Observation patient) matches a bare id", true, func(ctx context.Context, e *Env) Result {
			o := e.fixture(ctx, "obsA")
			subj := str(obj(o["subject"])["reference"])
			if o == nil || !strings.HasPrefix(subj, "Patient/") {
				return skip("no Observation with a Patient subject found")
			}
			return e.expectAll(ctx, "Observation/"+str(o["id"]), []expectation{
				{"Observation?patient=" + q(strings.TrimPrefix(subj, "Patient/")), true},
				{"Observation?_id=" + q(str(o["id"])) + "&patient=" + q(e.absent()), false},
			})
		}),
		chk("search/chain", SHOULD, searchSpec+"#chaining", "A chained parameter (subject:Patient.family) matches through the reference", false, func(ctx context.Context, e *Env) Result {
			o, b := e.fixture(ctx, "obsA"), e.fixture(ctx, "obsB")
			if o == nil || b == nil {
				return skip("no fixture")
			}
			path := "Observation?subject:Patient.family=" + q(e.familyA())
			if r := e.expect(ctx, path, "Observation/"+str(b["id"]), false); r != nil {
				return *r
			}
			return e.expectAll(ctx, "Observation/"+str(o["id"]), []expectation{{path, true}})
		}),
		chk("search/has", SHOULD, searchSpec+"#has", "_has:Observation:subject:code matches the Patients an Observation with that code points at", false, func(ctx context.Context, e *Env) Result {
			a, b := e.fixture(ctx, "patientA"), e.fixture(ctx, "patientB")
			if a == nil || b == nil {
				return skip("no fixture")
			}
			path := "Patient?_has:Observation:subject:code=" + q(CodeSystem+"|a-"+e.runID)
			if r := e.expect(ctx, path, "Patient/"+str(b["id"]), false); r != nil {
				return *r
			}
			return e.expectAll(ctx, "Patient/"+str(a["id"]), []expectation{{path, true}})
		}),
		chk("search/include", SHOULD, searchSpec+"#include", "_include=Observation:subject adds the subject with search.mode include", true, func(ctx context.Context, e *Env) Result {
			o := e.fixture(ctx, "obsA")
			subj := str(obj(o["subject"])["reference"])
			if o == nil || !strings.HasPrefix(subj, "Patient/") {
				return skip("no Observation with a Patient subject found")
			}
			r, err := e.c.get(ctx, "Observation?_id="+q(str(o["id"]))+"&_include=Observation:subject")
			if err != nil {
				return errResult(err)
			}
			if !contains(refsOf(r.JSON(), "include"), subj) {
				return fail(r, "%s is not included", subj)
			}
			return pass()
		}),
		chk("search/revinclude", SHOULD, searchSpec+"#revinclude", "_revinclude=Observation:subject adds the Observations that point at the match", true, func(ctx context.Context, e *Env) Result {
			o := e.fixture(ctx, "obsA")
			subj := str(obj(o["subject"])["reference"])
			if o == nil || !strings.HasPrefix(subj, "Patient/") {
				return skip("no Observation with a Patient subject found")
			}
			r, err := e.c.get(ctx, "Patient?_id="+q(strings.TrimPrefix(subj, "Patient/"))+"&_revinclude=Observation:subject")
			if err != nil {
				return errResult(err)
			}
			if !contains(refsOf(r.JSON(), "include"), "Observation/"+str(o["id"])) {
				return fail(r, "Observation/%s is not included", str(o["id"]))
			}
			return pass()
		}),
		chk("search/paging", SHALL, httpSpec+"#paging", "With _count=1, next links lead through every match exactly once; each page has a self link", false, func(ctx context.Context, e *Env) Result {
			a, b := e.fixture(ctx, "patientA"), e.fixture(ctx, "patientB")
			if a == nil || b == nil {
				return skip("no fixture")
			}
			next := "Patient?_tag=" + q(e.tag) + "&_count=1"
			var seen []string
			for pages := 0; next != "" && pages < 10; pages++ {
				r, err := e.c.get(ctx, next)
				if err != nil {
					return errResult(err)
				}
				if r.Status != 200 {
					return fail(r, "page %d answered %d", pages+1, r.Status)
				}
				if link(r.JSON(), "self") == "" {
					return fail(r, "page %d has no self link", pages+1)
				}
				m := refsOf(r.JSON(), "match")
				if len(m) > 1 {
					return fail(r, "page %d holds %d matches with _count=1", pages+1, len(m))
				}
				for _, ref := range m {
					if contains(seen, ref) {
						return fail(r, "%s is on two pages", ref)
					}
					seen = append(seen, ref)
				}
				next = link(r.JSON(), "next")
				if next == "" && len(seen) < 2 {
					return fail(r, "no next link after %d of 2 matches", len(seen))
				}
			}
			if !contains(seen, "Patient/"+str(a["id"])) || !contains(seen, "Patient/"+str(b["id"])) || len(seen) != 2 {
				return fail(nil, "the pages held %v, want the two tagged Patients", seen)
			}
			return pass()
		}),
		chk("search/self-link", SHALL, httpSpec+"#paging", "A searchset carries a self link", true, func(ctx context.Context, e *Env) Result {
			r, err := e.c.get(ctx, "Patient?_count=1")
			if err != nil {
				return errResult(err)
			}
			if r.Status != 200 || link(r.JSON(), "self") == "" {
				return fail(r, "answered %d without a self link", r.Status)
			}
			return pass()
		}),
		chk("search/sort", SHOULD, searchSpec+"#_sort", "_sort=birthdate and _sort=-birthdate order the matches", false, func(ctx context.Context, e *Env) Result {
			a, b := e.fixture(ctx, "patientA"), e.fixture(ctx, "patientB")
			if a == nil || b == nil {
				return skip("no fixture")
			}
			want := map[string][]string{"birthdate": {"Patient/" + str(a["id"]), "Patient/" + str(b["id"])}, "-birthdate": {"Patient/" + str(b["id"]), "Patient/" + str(a["id"])}}
			for _, s := range []string{"birthdate", "-birthdate"} {
				r, err := e.c.get(ctx, "Patient?_tag="+q(e.tag)+"&_sort="+s)
				if err != nil {
					return errResult(err)
				}
				if got := refsOf(r.JSON(), "match"); strings.Join(got, ",") != strings.Join(want[s], ",") {
					return fail(r, "_sort=%s gave %v, want %v", s, got, want[s])
				}
			}
			return pass()
		}),
		chk("search/total", SHOULD, searchSpec+"#total", "_total=accurate gives the exact number of matches", false, func(ctx context.Context, e *Env) Result {
			if e.fixtures == nil {
				return skip("no fixture")
			}
			r, err := e.c.get(ctx, "Patient?_tag="+q(e.tag)+"&_total=accurate&_count=1")
			if err != nil {
				return errResult(err)
			}
			if n, ok := r.JSON()["total"].(float64); !ok || n != 2 {
				return fail(r, "total %v, want 2", r.JSON()["total"])
			}
			return pass()
		}),
		chk("search/summary-count", SHOULD, searchSpec+"#summary", "_summary=count gives the number of matches of the type searched and no entries", false, func(ctx context.Context, e *Env) Result {
			if e.fixtures == nil {
				return skip("no fixture")
			}
			r, err := e.c.get(ctx, "Patient?_tag="+q(e.tag)+"&_summary=count")
			if err != nil {
				return errResult(err)
			}
			if n, ok := r.JSON()["total"].(float64); !ok || n != 2 || len(refsOf(r.JSON(), "match")) != 0 {
				return fail(r, "total %v with %d matches, want 2 and none", r.JSON()["total"], len(refsOf(r.JSON(), "match")))
			}
			return pass()
		}),
		chk("search/unknown-strict", SHOULD, searchSpec+"#errors", "An unknown parameter with Prefer: handling=strict answers 400 with an OperationOutcome", true, func(ctx context.Context, e *Env) Result {
			r, err := e.c.get(ctx, "Patient?conformance-unknown=1", "Prefer", "handling=strict")
			if err != nil {
				return errResult(err)
			}
			if r.Status != 400 || !isOutcome(r) {
				return fail(r, "answered %d %s, want 400 with an OperationOutcome", r.Status, r.ResourceType())
			}
			return pass()
		}),
		chk("search/unknown-lenient", SHOULD, searchSpec+"#errors", "An unknown parameter without Prefer is ignored: 200, and the self link leaves it out", true, func(ctx context.Context, e *Env) Result {
			r, err := e.c.get(ctx, "Patient?conformance-unknown=1&_count=1")
			if err != nil {
				return errResult(err)
			}
			if r.Status != 200 || strings.Contains(link(r.JSON(), "self"), "conformance-unknown") {
				return fail(r, "answered %d with self link %q", r.Status, link(r.JSON(), "self"))
			}
			return pass()
		}),
		chk("search/post", SHALL, httpSpec+"#search", "POST [type]/_search with a form body searches like GET", true, func(ctx context.Context, e *Env) Result {
			p := e.fixture(ctx, "patientA")
			if p == nil {
				return skip("no Patient found")
			}
			r, err := e.c.do(ctx, req{method: http.MethodPost, path: "Patient/_search", body: "_id=" + url.QueryEscape(str(p["id"])),
				header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}})
			if err != nil {
				return errResult(err)
			}
			if r.Status != 200 || !contains(refsOf(r.JSON(), ""), "Patient/"+str(p["id"])) {
				return fail(r, "answered %d without Patient/%s", r.Status, str(p["id"]))
			}
			return pass()
		}),
	}
}
