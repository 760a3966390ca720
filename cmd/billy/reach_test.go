package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/iambilly/billy/fhir/rest"
	"github.com/iambilly/billy/internal/config"
)

// The patient boundary under attack. Two Billys hold the same records of patient "a", resource
// for resource (same ids, same versions); one of them also holds patient "b": b's clinical data,
// audio Binaries (raw, raw with X-Security-Context, FHIR JSON, linked to b's Encounter, claimed by
// b's Media), pipeline-shaped Tasks, Provenance, and a Patient record that links to a (AuditEvents
// are the server's audit trail, beyond every patient scope's reach). Every route the API serves (rest.Routes) is requested with every type, b's ids, every
// operation the CapabilityStatement lists and search probes aimed at b (ids, references, chains,
// _has, includes, totals) using tokens of patient a. Reads must answer the same in both Billys
// (403 and 404 count as the same refusal): whatever b's data changes in an answer was returned,
// counted or matched. Then the same requests with write methods run against the Billy holding b,
// and b's records must be unchanged. No answer may carry b's marker.

const bMarker = "ZZBSECRET"

// boundaryWorld is one Billy for the boundary test.
type boundaryWorld struct {
	t      *testing.T
	base   string
	env    config.Lookuper
	admin  string
	tokens map[string]string // a's tokens by name
	// records caches b's records for write bodies.
	records map[string][]byte
	// export is the status URL's id of an export by b's token (a made-up one without b).
	export string
}

func newBoundaryWorld(t *testing.T, withB bool) *boundaryWorld {
	t.Helper()
	return newBoundaryWorldWith(t, withB, false)
}

// newBoundaryWorldWith is newBoundaryWorld, with the pipeline worker (which runs exports) when
// worker is set, and extra settings (name, value pairs).
func newBoundaryWorldWith(t *testing.T, withB, worker bool, extra ...string) *boundaryWorld {
	t.Helper()
	ln := listen(t)
	base := "http://" + ln.Addr().String()
	env := testEnv(t, append([]string{"BILLY_BASE_URL", base}, extra...)...)
	w := &boundaryWorld{t: t, env: env, base: serveApp(t, env, ln, worker)}
	w.admin = w.mint("user/*.cruds", "")
	w.tokens = map[string]string{
		"patient/*.rs":    w.mint("patient/*.rs", "a"),
		"patient/*.cruds": w.mint("patient/*.cruds", "a"),
		"patient/*.read":  w.mint("patient/*.read patient/*.write", "a"),
	}
	w.seed("a")
	w.export = "0c9e4a52-8a2b-4c1e-9f3a-5b6d7e8f9a0b"
	if withB {
		w.seed("b")
		loc := w.kickoff(w.mint("patient/*.rs", "b"), "Patient/$export", nil)
		w.export = loc[strings.LastIndex(loc, "/")+1:]
	}
	return w
}

func (w *boundaryWorld) mint(scope, patient string) string {
	w.t.Helper()
	args := []string{"dev-token", "--scope", scope}
	if patient != "" {
		args = append(args, "--patient", patient)
	}
	var out bytes.Buffer
	if err := run(w.t.Context(), args, w.env, &out, io.Discard); err != nil {
		w.t.Fatalf("dev-token: %v", err)
	}
	return strings.TrimSpace(out.String())
}

// answer is an HTTP answer.
type answer struct {
	status int
	body   []byte
}

func (w *boundaryWorld) do(token, method, path string, body []byte, header http.Header) answer {
	w.t.Helper()
	req, err := http.NewRequest(method, w.base+"/fhir/"+path, bytes.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if req.Header.Get("Content-Type") == "" && body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, raw}
}

// put stores a resource under its id as the administrator.
func (w *boundaryWorld) put(res string, header http.Header) {
	w.t.Helper()
	var m struct{ ResourceType, ID string }
	if err := json.Unmarshal([]byte(res), &m); err != nil {
		w.t.Fatalf("seed %s: %v", res, err)
	}
	if a := w.do(w.admin, http.MethodPut, m.ResourceType+"/"+m.ID, []byte(res), header); a.status != 201 {
		w.t.Fatalf("seed %s/%s: %d %s", m.ResourceType, m.ID, a.status, a.body)
	}
}

// seed stores patient p's records. Patient b's carry bMarker; a's are the same in both Billys.
// Nothing seeded starts a pipeline run (their ids would differ between the Billys), except b's
// transcript and recording, whose runs are b's too.
func (w *boundaryWorld) seed(p string) {
	mark := "plain"
	if p == "b" {
		mark = bMarker
	}
	r := func(format string) string {
		return strings.NewReplacer("{p}", p, "{mark}", mark).Replace(format)
	}
	if p == "a" {
		w.put(`{"resourceType":"Practitioner","id":"pr1","name":[{"family":"Shared"}]}`, nil)
		w.put(`{"resourceType":"Organization","id":"org1","name":"Payer"}`, nil)
		// a's record names b's: chains through these must not look into b's records.
		w.put(`{"resourceType":"Observation","id":"a-cross","status":"final","code":{"text":"cross"},"subject":{"reference":"Patient/a"},"performer":[{"reference":"Patient/b"}],"hasMember":[{"reference":"Observation/b-obs"}],"derivedFrom":[{"reference":"DocumentReference/b-doc"}]}`, nil)
	}
	patient := r(`{"resourceType":"Patient","id":"{p}","name":[{"family":"Fam{p}{mark}","given":["Gwen"]}],"birthDate":"1980-01-0` + map[string]string{"a": "1", "b": "2"}[p] + `","identifier":[{"system":"urn:mrn","value":"{p}{mark}"}]`)
	if p == "b" {
		patient += `,"link":[{"other":{"reference":"Patient/a"},"type":"seealso"}]` // b's record names a's: a still must not see b
	}
	w.put(patient+"}", nil)
	for _, res := range []string{
		`{"resourceType":"Encounter","id":"{p}-enc","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/{p}"},"participant":[{"individual":{"reference":"Practitioner/pr1"}}],"period":{"start":"2026-03-05"}}`,
		`{"resourceType":"Coverage","id":"{p}-cov","status":"active","beneficiary":{"reference":"Patient/{p}"},"payor":[{"reference":"Organization/org1"}],"subscriberId":"{mark}"}`,
		`{"resourceType":"Observation","id":"{p}-obs","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"text":"glucose {mark}"},"subject":{"reference":"Patient/{p}"},"encounter":{"reference":"Encounter/{p}-enc"},"effectiveDateTime":"2026-03-05","valueQuantity":{"value":101,"unit":"mg/dL"}}`,
		`{"resourceType":"Observation","id":"{p}-obs2","status":"final","code":{"text":"panel {mark}"},"subject":{"reference":"Patient/{p}"},"performer":[{"reference":"Patient/{p}"}],"hasMember":[{"reference":"Observation/{p}-obs"}]}`,
		`{"resourceType":"Condition","id":"{p}-cond","subject":{"reference":"Patient/{p}"},"code":{"text":"diabetes {mark}"},"encounter":{"reference":"Encounter/{p}-enc"}}`,
		`{"resourceType":"Claim","id":"{p}-claim","status":"draft","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claim-type","code":"professional"}]},"use":"claim","patient":{"reference":"Patient/{p}"},"created":"2026-03-05","provider":{"reference":"Practitioner/pr1"},"priority":{"coding":[{"code":"normal"}]},"insurance":[{"sequence":1,"focal":true,"coverage":{"reference":"Coverage/{p}-cov"}}],"diagnosis":[{"sequence":1,"diagnosisCodeableConcept":{"text":"{mark}"}}]}`,
		`{"resourceType":"Device","id":"{p}-dev","patient":{"reference":"Patient/{p}"},"deviceName":[{"name":"pump {mark}","type":"user-friendly-name"}]}`,
		`{"resourceType":"Group","id":"{p}-grp","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/{p}"}}],"name":"{mark}"}`,
		`{"resourceType":"List","id":"{p}-list","status":"current","mode":"working","subject":{"reference":"Patient/{p}"},"title":"{mark}","entry":[{"item":{"reference":"Observation/{p}-obs"}}]}`,
	} {
		w.put(r(res), nil)
	}
	// Audio: raw and claimed by a Media, raw with a security context, FHIR JSON linked to an
	// Encounter, and one nobody claims (outside every patient's reach).
	audio := []byte("RIFF" + mark + "audio of " + p)
	wav := http.Header{"Content-Type": {"audio/wav"}}
	w.putRaw("Binary/"+p+"-bin-raw", audio, wav)
	w.putRaw("Binary/"+p+"-bin-hdr", audio, http.Header{"Content-Type": {"audio/wav"}, "X-Security-Context": {"Patient/" + p}})
	w.putRaw("Binary/"+p+"-orphan", audio, wav)
	w.put(r(`{"resourceType":"Binary","id":"{p}-bin-json","contentType":"text/plain","securityContext":{"reference":"Encounter/{p}-enc"},"data":"`)+base64.StdEncoding.EncodeToString([]byte(mark+" note"))+`"}`, nil)
	status := map[string]string{"a": "in-progress", "b": "completed"}[p]
	w.put(r(`{"resourceType":"Media","id":"{p}-media","status":"`+status+`","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/media-type","code":"audio"}]},"subject":{"reference":"Patient/{p}"},"encounter":{"reference":"Encounter/{p}-enc"},"content":{"contentType":"audio/wav","url":"Binary/{p}-bin-raw","title":"{mark}"}}`), nil)
	docStatus := map[string]string{"a": "superseded", "b": "current"}[p]
	w.put(r(`{"resourceType":"DocumentReference","id":"{p}-doc","status":"`+docStatus+`","subject":{"reference":"Patient/{p}"},"content":[{"attachment":{"contentType":"text/plain","data":"`)+base64.StdEncoding.EncodeToString([]byte("Doctor: "+mark+" says hello"))+`"}}]}`, nil)
	for _, res := range []string{
		`{"resourceType":"Task","id":"{p}-task","status":"completed","intent":"order","for":{"reference":"Patient/{p}"},"owner":{"reference":"Patient/a"},"focus":{"reference":"Media/{p}-media"},"description":"{mark}"}`,
		`{"resourceType":"Task","id":"{p}-task2","status":"completed","intent":"order","focus":{"reference":"Media/{p}-media"},"description":"{mark}"}`,
		`{"resourceType":"Provenance","id":"{p}-prov","target":[{"reference":"Claim/{p}-claim"}],"recorded":"2026-03-05T10:00:00Z","agent":[{"who":{"reference":"Practitioner/pr1"}}],"reason":[{"text":"{mark}"}]}`,
	} {
		w.put(r(res), nil)
	}
}

func (w *boundaryWorld) putRaw(path string, body []byte, h http.Header) {
	w.t.Helper()
	if a := w.do(w.admin, http.MethodPut, path, body, h); a.status != 201 {
		w.t.Fatalf("seed %s: %d %s", path, a.status, a.body)
	}
}

// bRecords are b's resources, by type.
var bRecords = map[string][]string{
	"Patient": {"b"}, "Encounter": {"b-enc"}, "Coverage": {"b-cov"}, "Observation": {"b-obs", "b-obs2"},
	"Condition": {"b-cond"}, "Claim": {"b-claim"}, "Device": {"b-dev"}, "Group": {"b-grp"}, "List": {"b-list"},
	"Binary": {"b-bin-raw", "b-bin-hdr", "b-orphan", "b-bin-json"}, "Media": {"b-media"}, "DocumentReference": {"b-doc"},
	"Task": {"b-task", "b-task2"}, "Provenance": {"b-prov"},
}

// probe is one request.
type probe struct {
	method, path string
	body         []byte
	header       http.Header
}

func (p probe) String() string { return p.method + " " + p.path }

// probes generates requests from the route table: every route with every type b has data of (and
// the shared ones), b's ids (and a's, which must answer the same in both Billys), every operation,
// and search parameters aimed at b.
func (w *boundaryWorld) probes() []probe {
	ops := w.operations()
	types := []string{"Practitioner"}
	for t := range bRecords {
		types = append(types, t)
	}
	sort.Strings(types)
	idsOf := func(typ string) []string {
		out := slices.Clone(bRecords[typ])
		if typ == "Practitioner" {
			out = append(out, "pr1")
		} else if len(out) > 0 {
			out = append(out, strings.Replace(out[0], "b", "a", 1))
		}
		return out
	}
	var out []probe
	for _, rt := range rest.Routes {
		pats := []string{rt.Pattern}
		expand := func(name string, values func(pat string) []string) {
			var next []string
			for _, p := range pats {
				if !strings.Contains(p, name) {
					next = append(next, p)
					continue
				}
				for _, v := range values(p) {
					next = append(next, strings.Replace(p, name, v, 1))
				}
			}
			pats = next
		}
		expand("{type}", func(string) []string { return types })
		expand("{id}", func(p string) []string { return idsOf(strings.Split(p, "/")[0]) })
		expand("{vid}", func(string) []string { return []string{"1"} })
		expand("{compartment}", func(string) []string { return append([]string{"*"}, types...) })
		expand("{op}", func(p string) []string {
			if !strings.Contains(p, "/") {
				return ops[""]
			}
			return ops[strings.Split(p, "/")[0]]
		})
		expand("{job}", func(string) []string { return []string{w.export} })
		expand("{file}", func(string) []string { return []string{"Patient-1.ndjson", "Observation-1.ndjson"} })
		for _, path := range pats {
			typ := strings.Split(path, "/")[0]
			var qs []string
			switch rt.Interaction {
			case rest.IHistoryType, rest.IHistorySystem:
				qs = []string{"", "_count=1000"}
			case rest.ISearchSystem:
				qs = searchProbes("")
			case rest.ISearchType:
				if strings.Count(path, "/") == 2 { // a compartment
					if typ != "Patient" {
						continue
					}
					qs = searchProbes("*")
				} else {
					qs = searchProbes(typ)
				}
			}
			switch {
			case qs != nil && rt.Method == http.MethodPost && rt.Interaction == rest.ISearchType:
				for _, q := range qs {
					out = append(out, probe{method: rt.Method, path: path, body: []byte(q), header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}})
				}
			case qs != nil:
				for _, q := range qs {
					out = append(out, probe{method: rt.Method, path: withQuery(path, q)})
				}
			case rt.Interaction == rest.IBatch:
				for _, kind := range []string{"batch", "transaction"} {
					out = append(out, probe{method: rt.Method, path: path, body: w.bundleProbe(kind)})
				}
			case rt.Conditional:
				for _, id := range bRecords[typ] {
					out = append(out, probe{method: rt.Method, path: path + "?_id=" + id, body: w.writeBody(rt.Method, path, typ, id)})
				}
			default:
				var body []byte
				if rt.Method != http.MethodGet && rt.Method != http.MethodDelete {
					id := ""
					if segs := strings.Split(path, "/"); len(segs) > 1 {
						id = segs[1]
					} else if ids := bRecords[typ]; len(ids) > 0 {
						id = ids[0] // a create: b's record, still b's
					}
					body = w.writeBody(rt.Method, path, typ, id)
				}
				out = append(out, probe{method: rt.Method, path: path, body: body})
				if rt.Method == http.MethodGet {
					out = append(out, probe{method: http.MethodHead, path: path})
				}
			}
		}
	}
	return out
}

func withQuery(path, q string) string {
	if q == "" {
		return path
	}
	return path + "?" + q
}

// searchProbes are search parameters aimed at b's records, for a type ("" for the system, "*"
// for a compartment).
func searchProbes(typ string) []string {
	qs := []string{"", "_total=accurate", "_summary=count", "_revinclude=*&_include=*", "_include:iterate=*&_revinclude:iterate=*",
		"_sort=-_lastUpdated&_count=3", "_elements=id", "_count=1000", "_id=b", "_id=b-obs"}
	for _, id := range bRecords[typ] {
		qs = append(qs, "_id="+id)
	}
	if typ == "" || typ == "*" {
		return append(qs, "_type=Patient,Observation,Binary,Task", "_type=Binary", "_type=Task,Provenance,AuditEvent&_revinclude=*")
	}
	ref := map[string][]string{
		"Observation":       {"subject=Patient/b", "patient=b", "performer=Patient/b", "has-member=Observation/b-obs", "subject:Patient.name=Famb", "subject:Patient.identifier=b" + bMarker, "performer:Patient.birthdate=1980-01-02", "has-member:Observation.code:text=glucose", "code:text=glucose+" + bMarker, "encounter.subject=Patient/b", "derived-from:DocumentReference.status=current", "_id=a-cross&performer:Patient.name=Famb", "_has:List:item:title=" + bMarker},
		"Patient":           {"name=Famb", "name:contains=" + bMarker, "identifier=b" + bMarker, "birthdate=1980-01-02", "link=Patient/a", "_has:Observation:subject:code:text=glucose", "_has:Observation:patient:_id=b-obs", "_has:Claim:patient:status=draft", "_has:Task:for:description=" + bMarker, "_has:Task:owner:description=" + bMarker, "_has:Observation:performer:code:text=cross", "_has:Group:member:name=" + bMarker},
		"Encounter":         {"subject=Patient/b", "patient:Patient.name=Famb", "_has:Condition:encounter:code:text=diabetes", "date=2026-03-05"},
		"Task":              {"focus=Media/b-media", "for=Patient/b", "focus:Media.subject=Patient/b", "description=" + bMarker},
		"Provenance":        {"target=Claim/b-claim", "target:Claim.patient=Patient/b"},
		"Media":             {"subject=Patient/b", "subject:Patient.name=Famb"},
		"DocumentReference": {"subject=Patient/b", "patient=b"},
		"Claim":             {"patient=b", "patient.name=Famb", "_has:Provenance:target:_id=b-prov"},
		"Coverage":          {"beneficiary=Patient/b", "identifier=" + bMarker},
		"Group":             {"member=Patient/b", "member:Patient.name=Famb"},
		"Practitioner":      {"_has:Encounter:participant:subject=Patient/b", "_has:Claim:provider:patient=b", "_revinclude=Claim:provider"},
	}
	return append(qs, ref[typ]...)
}

// writeBody is the body of a write probe on path: a Parameters for an operation, a patch, or b's
// record typ/id (b's id kept, its subject turned to a where it names b, its marker removed so
// that an echo of the body is not mistaken for a leak). For b's ids that is an overwrite of b's
// record; for a create, b's record as it is.
func (w *boundaryWorld) writeBody(method, path, typ, id string) []byte {
	switch {
	case strings.Contains(path, "$"):
		return []byte(`{"resourceType":"Parameters","parameter":[{"name":"meta","valueMeta":{"tag":[{"code":"x"}]}}]}`)
	case method == http.MethodPatch:
		return []byte(`[{"op":"add","path":"/language","value":"en"}]`)
	case typ == "Binary":
		return []byte(`{"resourceType":"Binary","id":"` + id + `","contentType":"text/plain","securityContext":{"reference":"Patient/a"},"data":"aGVsbG8="}`)
	case id == "":
		return []byte(`{"resourceType":"` + typ + `"}`)
	}
	if w.records == nil {
		w.records = map[string][]byte{}
	}
	body, ok := w.records[typ+"/"+id]
	if !ok {
		body = bytes.ReplaceAll(w.do(w.admin, http.MethodGet, typ+"/"+id, nil, nil).body, []byte(bMarker), []byte("copied"))
		w.records[typ+"/"+id] = body
	}
	if method == http.MethodPost {
		return body
	}
	return bytes.ReplaceAll(body, []byte(`"Patient/b"`), []byte(`"Patient/a"`))
}

// bundleProbe is a batch or transaction reading, changing and deleting b's records.
func (w *boundaryWorld) bundleProbe(kind string) []byte {
	var entries []string
	for typ, ids := range bRecords {
		for _, id := range ids {
			entries = append(entries,
				`{"request":{"method":"GET","url":"`+typ+`/`+id+`"}}`,
				`{"request":{"method":"GET","url":"`+typ+`?_id=`+id+`"}}`,
				`{"request":{"method":"GET","url":"`+typ+`/`+id+`/_history"}}`,
				`{"request":{"method":"DELETE","url":"`+typ+`?_id=`+id+`"}}`)
		}
	}
	entries = append(entries,
		`{"request":{"method":"DELETE","url":"Observation/b-obs"}}`,
		`{"resource":`+string(w.writeBody(http.MethodPut, "Binary/b-bin-raw", "Binary", "b-bin-raw"))+`,"request":{"method":"PUT","url":"Binary/b-bin-raw"}}`,
		`{"resource":`+string(w.writeBody(http.MethodPut, "Observation/b-obs", "Observation", "b-obs"))+`,"request":{"method":"PUT","url":"Observation/b-obs"}}`,
		`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn:mrn|b`+bMarker+`"}},"request":{"method":"POST","url":"Observation"}}`)
	return []byte(`{"resourceType":"Bundle","type":"` + kind + `","entry":[` + strings.Join(entries, ",") + `]}`)
}

// operations lists, by type ("" for the system), the operations the CapabilityStatement declares.
func (w *boundaryWorld) operations() map[string][]string {
	w.t.Helper()
	a := w.do(w.admin, http.MethodGet, "metadata", nil, nil)
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type      string
				Operation []struct{ Name string }
			}
			Operation []struct{ Name string }
		}
	}
	if err := json.Unmarshal(a.body, &cs); err != nil || len(cs.Rest) == 0 {
		w.t.Fatalf("metadata: %v %.200s", err, a.body)
	}
	out := map[string][]string{}
	for _, r := range cs.Rest[0].Resource {
		for _, op := range r.Operation {
			out[r.Type] = append(out[r.Type], op.Name)
		}
	}
	for _, op := range cs.Rest[0].Operation {
		out[""] = append(out[""], op.Name)
	}
	return out
}

// normalize reduces an answer to what must not depend on b's records: refusals (403, 404) are one
// answer; JSON loses what differs between two Billys holding the same records (lastUpdated, links
// with cursors, request ids, base URLs) and bundle entries are sorted.
func normalize(a answer, base string) string {
	if a.status == http.StatusForbidden || a.status == http.StatusNotFound {
		return "refused"
	}
	body := bytes.ReplaceAll(a.body, []byte(base), []byte("BASE"))
	var v any
	if json.Unmarshal(body, &v) != nil {
		return fmt.Sprintf("%d %s", a.status, body)
	}
	var strip func(v any) any
	strip = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for _, k := range []string{"lastUpdated", "lastModified", "link", "timestamp", "diagnostics"} {
				delete(x, k)
			}
			switch x["resourceType"] {
			case "Bundle":
				delete(x, "id")
			case "CapabilityStatement":
				delete(x, "date")
			}
			for k, e := range x {
				x[k] = strip(e)
			}
			if es, ok := x["entry"].([]any); ok {
				sort.Slice(es, func(i, j int) bool { return fmt.Sprint(es[i]) < fmt.Sprint(es[j]) })
			}
		case []any:
			for i, e := range x {
				x[i] = strip(e)
			}
		}
		return v
	}
	out, _ := json.Marshal(strip(v))
	return fmt.Sprintf("%d %s", a.status, out)
}

// snapshot is every version of b's records, as the administrator sees them.
func (w *boundaryWorld) snapshot() map[string]string {
	out := map[string]string{}
	for typ, ids := range bRecords {
		for _, id := range ids {
			a := w.do(w.admin, http.MethodGet, typ+"/"+id+"/_history", nil, nil)
			out[typ+"/"+id] = normalize(a, w.base)
		}
	}
	return out
}

func TestPatientBoundary(t *testing.T) {
	t.Parallel()
	both, onlyA := newBoundaryWorld(t, true), newBoundaryWorld(t, false)
	probes := both.probes()
	if len(probes) < 2000 {
		t.Fatalf("only %d probes: the generator lost routes", len(probes))
	}
	leak := func(who string, p probe, a answer) {
		// An answer may echo the request (a search's self link); the comparison covers those.
		echo := strings.Contains(p.path, bMarker) || bytes.Contains(p.body, []byte(bMarker))
		if !echo && bytes.Contains(a.body, []byte(bMarker)) {
			t.Errorf("%s %s: b's data in the answer: %d %.300s", who, p, a.status, a.body)
		}
		if a.status >= 500 {
			t.Errorf("%s %s: %d %.300s", who, p, a.status, a.body)
		}
	}
	reads, writes := 0, 0
	for name := range both.tokens {
		for _, p := range probes {
			if !isRead(p) {
				continue
			}
			reads++
			got := both.do(both.tokens[name], p.method, p.path, p.body, p.header)
			leak(name, p, got)
			want := onlyA.do(onlyA.tokens[name], p.method, p.path, p.body, p.header)
			if g, w := normalize(got, both.base), normalize(want, onlyA.base); g != w {
				t.Errorf("%s %s answers differently when b's records exist:\n with b:    %.400s\n without b: %.400s", name, p, g, w)
			}
		}
	}
	before := both.snapshot()
	for name, tok := range both.tokens {
		for _, p := range probes {
			if isRead(p) {
				continue
			}
			writes++
			leak(name, p, both.do(tok, p.method, p.path, p.body, p.header))
		}
	}
	after := both.snapshot()
	for ref, v := range before {
		if after[ref] != v {
			t.Errorf("%s changed under a's tokens:\n before: %.300s\n after:  %.300s", ref, v, after[ref])
		}
	}
	t.Logf("%d read and %d write requests with a's tokens", reads, writes)
}

// isRead reports whether a probe asks for data only (a search by POST is one).
func isRead(p probe) bool {
	switch p.method {
	case http.MethodGet, http.MethodHead:
		return true
	case http.MethodPost:
		return strings.HasSuffix(strings.Split(p.path, "?")[0], "/_search")
	}
	return false
}

// TestPatientBoundaryHistory: a record that was b's and is now a's shows a only what is a's.
func TestPatientBoundaryHistory(t *testing.T) {
	t.Parallel()
	w := newBoundaryWorld(t, true)
	w.put(`{"resourceType":"Observation","id":"moved","status":"final","code":{"text":"`+bMarker+`"},"subject":{"reference":"Patient/b"}}`, nil)
	if a := w.do(w.admin, http.MethodPut, "Observation/moved", []byte(`{"resourceType":"Observation","id":"moved","status":"final","code":{"text":"now a's"},"subject":{"reference":"Patient/a"}}`), nil); a.status != 200 {
		t.Fatalf("move: %d %s", a.status, a.body)
	}
	tok := w.tokens["patient/*.rs"]
	if a := w.do(tok, http.MethodGet, "Observation/moved", nil, nil); a.status != 200 {
		t.Errorf("read of a's current version: %d %s", a.status, a.body)
	}
	if a := w.do(tok, http.MethodGet, "Observation/moved/_history/1", nil, nil); a.status != 403 {
		t.Errorf("vread of b's version: %d %s", a.status, a.body)
	}
	for _, path := range []string{"Observation/moved/_history", "Observation/_history", "_history", "Patient/a/$everything"} {
		a := w.do(tok, http.MethodGet, path, nil, nil)
		if a.status != 200 || bytes.Contains(a.body, []byte(bMarker)) || bytes.Contains(a.body, []byte(`"total"`)) && path == "Observation/moved/_history" {
			t.Errorf("%s: %d %.400s", path, a.status, a.body)
		}
	}
}

// TestBinaryFollowsItsRecording: a Binary uploaded raw is claimed by the first resource attaching
// it, and so reaches that resource's patient; one uploaded under a patient's token is that
// patient's.
func TestBinaryFollowsItsRecording(t *testing.T) {
	t.Parallel()
	w := newBoundaryWorld(t, true)
	securityContext := func(id string) string {
		var b struct{ SecurityContext struct{ Reference string } }
		_ = json.Unmarshal(w.do(w.admin, http.MethodGet, "Binary/"+id, nil, http.Header{"Accept": {"application/fhir+json"}}).body, &b)
		return b.SecurityContext.Reference
	}
	if got := securityContext("a-bin-raw"); got != "Media/a-media" {
		t.Errorf("a raw Binary described by a Media: securityContext %q", got)
	}
	if a := w.do(w.tokens["patient/*.rs"], http.MethodGet, "Binary/a-bin-raw", nil, nil); a.status != 200 || !bytes.Contains(a.body, []byte("audio of a")) {
		t.Errorf("a's own recording: %d %.100s", a.status, a.body)
	}
	// Another resource attaching it later does not take it over.
	w.put(`{"resourceType":"DocumentReference","id":"b-steal","status":"superseded","subject":{"reference":"Patient/b"},"content":[{"attachment":{"contentType":"audio/wav","url":"Binary/a-bin-raw"}}]}`, nil)
	if got := securityContext("a-bin-raw"); got != "Media/a-media" {
		t.Errorf("claimed twice: securityContext %q", got)
	}
	writer := w.tokens["patient/*.cruds"]
	up := w.do(writer, http.MethodPost, "Binary", []byte("RIFF a's upload"), http.Header{"Content-Type": {"audio/wav"}})
	var created struct {
		ID              string
		SecurityContext struct{ Reference string }
	}
	if err := json.Unmarshal(up.body, &created); up.status != 201 || err != nil || created.SecurityContext.Reference != "Patient/a" {
		t.Errorf("upload under a's token: %d %s", up.status, up.body)
	}
	if a := w.do(writer, http.MethodPost, "Binary", []byte("RIFF"), http.Header{"Content-Type": {"audio/wav"}, "X-Security-Context": {"Patient/b"}}); a.status != 403 {
		t.Errorf("upload into b's reach under a's token: %d %s", a.status, a.body)
	}
	// A patient's token cannot claim a Binary nobody has claimed.
	w.do(writer, http.MethodPost, "Media", []byte(`{"resourceType":"Media","status":"in-progress","subject":{"reference":"Patient/a"},"content":{"contentType":"audio/wav","url":"Binary/b-orphan"}}`), nil)
	if got := securityContext("b-orphan"); got != "" {
		t.Errorf("a patient token claimed an orphan Binary: %q", got)
	}
}

// TestUploadNeedsAuthorizationFirst: a raw upload is authorized before its body is read, so a
// request without a token (or without a Binary write scope) stores nothing in the blob store, and
// one refused after the upload leaves nothing behind either.
func TestUploadNeedsAuthorizationFirst(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ln := listen(t)
	base := "http://" + ln.Addr().String()
	env := testEnv(t, "BILLY_BASE_URL", base, "BILLY_DATA_DIR", dir)
	w := &boundaryWorld{t: t, env: env, base: serveApp(t, env, ln, false)}
	for _, tc := range []struct{ name, token, context string }{
		{"no token", "", ""},
		{"read-only token", w.mint("user/*.rs", ""), ""},
		{"another patient's security context", w.mint("patient/*.cruds", "a"), "Patient/b"},
	} {
		a := w.do(tc.token, http.MethodPost, "Binary", bytes.Repeat([]byte("x"), 1<<20), http.Header{"Content-Type": {"audio/wav"}, "X-Security-Context": {tc.context}})
		if a.status != 401 && a.status != 403 {
			t.Errorf("%s: %d %.200s", tc.name, a.status, a.body)
		}
	}
	var files []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(path, ".key") {
			files = append(files, path)
		}
		return nil
	})
	if len(files) > 0 {
		t.Errorf("refused uploads left blobs: %v", files)
	}
}
