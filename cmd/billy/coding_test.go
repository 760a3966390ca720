package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iambilly/billy/internal/shareddata"
)

// importICD10CM imports the shared ICD-10-CM file into the test's database through the CLI.
func importICD10CM(t *testing.T, env map[string]string) {
	t.Helper()
	dir, err := shareddata.Dir()
	if err != nil {
		t.Skip(err)
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"codes", "import", "icd10cm", filepath.Join(dir, "icd10cm", "icd10cm-codes-2026.txt"), "--no-index"},
		lookuper(env), &out, io.Discard); err != nil {
		t.Fatalf("codes import: %v", err)
	}
}

// TestCodingTranscriptToClaim posts a transcript DocumentReference as an EMR would and follows the
// coding run: on-hold without coverage, resumed by a Coverage, a draft Claim with evidence, a fee from
// the fee schedule, a Provenance; then a human edit keeps the machine's draft in history.
func TestCodingTranscriptToClaim(t *testing.T) {
	t.Parallel()
	env := envMap(t, "BILLY_AUTH", "none", "BILLY_DEV", "1")
	importICD10CM(t, env)
	c := fhirClient{t, startAppWith(t, lookuper(env), true)}

	transcript, err := os.ReadFile("../../pipeline/coder/testdata/07-knee-oa-injection-htn-mod25.txt")
	if err != nil {
		t.Fatal(err)
	}
	patient := "Patient/" + c.create("Patient", map[string]any{"resourceType": "Patient", "gender": "female", "birthDate": "1958-08-08",
		"name": []any{map[string]any{"family": "Okafor"}}})
	doctor := "Practitioner/" + c.create("Practitioner", map[string]any{"resourceType": "Practitioner", "name": []any{map[string]any{"family": "Quinn"}}})
	amb := map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}
	c.create("Encounter", map[string]any{"resourceType": "Encounter", "status": "finished", "class": amb, "subject": ref(patient),
		"period": map[string]any{"start": "2025-06-02T09:00:00Z"}})
	encounter := "Encounter/" + c.create("Encounter", map[string]any{"resourceType": "Encounter", "status": "finished", "class": amb,
		"subject": ref(patient), "period": map[string]any{"start": "2026-01-12T10:00:00Z", "end": "2026-01-12T10:25:00Z"},
		"participant": []any{map[string]any{"individual": ref(doctor)}}})
	c.create("ChargeItemDefinition", map[string]any{"resourceType": "ChargeItemDefinition", "url": "http://example.org/fees/99214", "status": "active",
		"identifier":    []any{map[string]any{"system": "urn:billy:fee-schedule", "value": "99214"}},
		"propertyGroup": []any{map[string]any{"priceComponent": []any{map[string]any{"type": "base", "amount": map[string]any{"value": 135, "currency": "USD"}}}}}})

	doc := c.create("DocumentReference", map[string]any{"resourceType": "DocumentReference", "status": "current", "subject": ref(patient),
		"context": map[string]any{"encounter": []any{ref(encounter)}},
		"content": []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain", "data": base64.StdEncoding.EncodeToString(transcript)}}}})

	// No coverage yet: the run waits.
	task := waitTask(t, c, "DocumentReference/"+doc, "on-hold")
	if fmt.Sprint(task["businessStatus"]) != "map[text:awaiting-coverage]" {
		t.Errorf("on-hold run: %v", task)
	}
	coverage := "Coverage/" + c.create("Coverage", map[string]any{"resourceType": "Coverage", "status": "active", "beneficiary": ref(patient),
		"payor": []any{map[string]any{"display": "Demo Health Plan"}}})
	task = c.runOf("DocumentReference/"+doc, "code", time.Minute)
	if task["status"] != "completed" {
		t.Fatalf("coding run: %v", task)
	}
	claimRef := outputOf(task, "claim")
	claim := c.read(claimRef)
	if testing.Verbose() {
		b, _ := json.MarshalIndent(claim, "", " ")
		t.Logf("claim: %s\ntask notes: %v", b, task["note"])
	}
	if claim["status"] != "draft" || claim["use"] != "claim" || refOf(claim["patient"]) != patient || refOf(claim["provider"]) != doctor ||
		!strings.Contains(fmt.Sprint(claim["type"]), "professional") {
		t.Errorf("claim header: %v", claim)
	}
	ins := claim["insurance"].([]any)[0].(map[string]any)
	if refOf(ins["coverage"]) != coverage || ins["focal"] != true {
		t.Errorf("claim insurance: %v", ins)
	}
	text := []rune(string(transcript))
	checkEvidence := func(what string, el map[string]any) {
		exts, _ := el["extension"].([]any)
		evidence, confidence := 0, 0.0
		for _, e := range exts {
			if e.(map[string]any)["url"] == "https://iambilly.github.io/billy/fhir/StructureDefinition/coder-confidence" {
				confidence, _ = e.(map[string]any)["valueDecimal"].(float64)
				continue
			}
			evidence++
			parts := map[string]any{}
			for _, p := range e.(map[string]any)["extension"].([]any) {
				p := p.(map[string]any)
				for k, v := range p {
					if k != "url" {
						parts[p["url"].(string)] = v
					}
				}
			}
			start, end := int(parts["start"].(float64)), int(parts["end"].(float64))
			if start < 0 || end > len(text) || string(text[start:end]) != parts["quote"] || refOf(parts["source"]) != "DocumentReference/"+doc {
				t.Errorf("%s evidence %v does not quote the transcript", what, parts)
			}
		}
		if evidence == 0 {
			t.Errorf("%s has no evidence", what)
		}
		// The coder's confidence in the code rides with it, for the human coder.
		if confidence <= 0 || confidence > 1 {
			t.Errorf("%s has no coder confidence in (0, 1]: %v", what, exts)
		}
	}
	var dx []string
	for _, d := range claim["diagnosis"].([]any) {
		d := d.(map[string]any)
		code := d["diagnosisCodeableConcept"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
		dx = append(dx, code)
		checkEvidence(code, d)
	}
	for _, want := range []string{"M17.12", "I10"} {
		if !slices.Contains(dx, want) {
			t.Errorf("diagnoses %v lack %s", dx, want)
		}
	}
	var em map[string]any
	for _, it := range claim["item"].([]any) {
		it := it.(map[string]any)
		code := it["productOrService"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
		checkEvidence(code, it)
		if strings.HasPrefix(code, "992") {
			em = it
		}
		if it["servicedDate"] != "2026-01-12" || len(it["diagnosisSequence"].([]any)) == 0 {
			t.Errorf("item %s: %v", code, it)
		}
	}
	if em == nil || !strings.Contains(fmt.Sprint(em["modifier"]), "25") {
		t.Fatalf("no E/M line with modifier 25: %v", claim["item"])
	}
	if fmt.Sprint(em["productOrService"]) != "map[coding:[map[code:99214 system:http://www.ama-assn.org/go/cpt]]]" ||
		fmt.Sprint(em["unitPrice"]) != "map[currency:USD value:135]" {
		t.Errorf("E/M line: %v", em)
	}
	// Lines without a fee leave the total out (a partial total would mislead).
	if _, ok := claim["total"]; ok && len(claim["item"].([]any)) > 1 {
		t.Errorf("total with unpriced lines: %v", claim["total"])
	}
	// The Claim is valid FHIR as stored, and its extension's definition is served.
	b, _ := json.Marshal(claim)
	if code, _, oo := c.do(http.MethodPost, "Claim/$validate", bytes.NewReader(b), "application/fhir+json"); code != 200 || strings.Contains(fmt.Sprint(oo), "error") {
		t.Errorf("$validate of the Claim: %d %v", code, oo)
	}
	if sd := c.read("StructureDefinition/evidence"); sd["url"] != "https://iambilly.github.io/billy/fhir/StructureDefinition/evidence" {
		t.Errorf("evidence StructureDefinition: %v", sd["url"])
	}
	if sd := c.read("StructureDefinition/coder-confidence"); sd["url"] != "https://iambilly.github.io/billy/fhir/StructureDefinition/coder-confidence" {
		t.Errorf("coder-confidence StructureDefinition: %v", sd["url"])
	}
	provs := c.search("Provenance?target=" + claimRef)
	if len(provs) != 1 || refOf(provs[0]["entity"].([]any)[0].(map[string]any)["what"]) != "DocumentReference/"+doc {
		t.Fatalf("claim Provenance: %v", provs)
	}
	coderDevice := c.read(refOf(provs[0]["agent"].([]any)[0].(map[string]any)["who"]))
	if !strings.Contains(fmt.Sprint(coderDevice["deviceName"]), "builtin") {
		t.Errorf("coder Device: %v", coderDevice)
	}
	// A human coder finalises the claim; the machine's draft stays in history.
	claim["status"] = "active"
	delete(claim, "meta")
	b, _ = json.Marshal(claim)
	if code, _, out := c.do(http.MethodPut, claimRef, bytes.NewReader(b), "application/fhir+json"); code != 200 {
		t.Fatalf("finalise the claim: %d %v", code, out)
	}
	if v1 := c.read(claimRef + "/_history/1"); v1["status"] != "draft" {
		t.Errorf("version 1 is not the machine's draft: %v", v1["status"])
	}
	// The edit starts nothing new.
	if tasks := c.search("Task?focus=DocumentReference/" + doc); len(tasks) != 1 {
		t.Errorf("%d coding runs after the edit", len(tasks))
	}

	// The code sets answer as FHIR.
	_, _, lk := c.do(http.MethodGet, "CodeSystem/$lookup?system="+url.QueryEscape("http://hl7.org/fhir/sid/icd-10-cm")+"&code=M17.12", nil, "")
	if !strings.Contains(fmt.Sprint(lk), "knee") {
		t.Errorf("$lookup: %v", lk)
	}
	_, _, vc := c.do(http.MethodGet, "CodeSystem/$validate-code?url="+url.QueryEscape("http://hl7.org/fhir/sid/icd-10-cm")+"&code=M17", nil, "")
	if !strings.Contains(fmt.Sprint(vc), "valueBoolean:false") || !strings.Contains(fmt.Sprint(vc), "not billable") {
		t.Errorf("$validate-code of a header: %v", vc)
	}
	if code, _, _ := c.do(http.MethodGet, "CodeSystem/$lookup?system="+url.QueryEscape("http://hl7.org/fhir/sid/icd-10-cm")+"&code=Q99.999", nil, ""); code != 404 {
		t.Errorf("$lookup of an invented code: %d", code)
	}
	if cs := c.read("CodeSystem/icd10cm"); cs["content"] != "not-present" || cs["version"] != "2026" {
		t.Errorf("CodeSystem resource: %v", cs)
	}
}

// waitTask waits for the single coding run of focus to reach status.
func waitTask(t *testing.T, c fhirClient, focus, status string) map[string]any {
	t.Helper()
	var last []map[string]any
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		last = c.search("Task?focus=" + url.QueryEscape(focus))
		if len(last) == 1 && last[0]["status"] == status {
			return last[0]
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no run of %s reached %s: %v", focus, status, last)
	return nil
}

// TestCodingWithLLM runs the coding stage with BILLY_LLM_URL pointing at a fake OpenAI-compatible
// chat server whose answer invents a code: the Claim carries the real codes only, the Task lists
// the dropped one, and the Provenance names the model.
func TestCodingWithLLM(t *testing.T) {
	t.Parallel()
	answer := `{"diagnoses":[
 {"code":"M17.12","evidence":["Primary osteoarthritis of the left knee"]},
 {"code":"Q99.999","evidence":["left knee"]}],
 "procedures":[],
 "em":{"code":"99213","basis":"mdm","minutes":0,"problems":"low","data":"minimal","risk":"low","evidence":["left knee"]}}`
	var calls atomic.Int32
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var req map[string]any
		if r.URL.Path != "/v1/chat/completions" || json.NewDecoder(r.Body).Decode(&req) != nil || req["model"] != "local-coder-7b" {
			t.Errorf("LLM request %s %v", r.URL.Path, req["model"])
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": "x", "object": "chat.completion", "model": "local-coder-7b",
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "message": map[string]any{"role": "assistant", "content": answer}}}})
	}))
	defer llm.Close()
	env := envMap(t, "BILLY_AUTH", "none", "BILLY_DEV", "1")
	env["BILLY_LLM_URL"], env["BILLY_LLM_MODEL"] = llm.URL, "local-coder-7b"
	importICD10CM(t, env)
	c := fhirClient{t, startAppWith(t, lookuper(env), true)}
	transcript, err := os.ReadFile("../../pipeline/coder/testdata/07-knee-oa-injection-htn-mod25.txt")
	if err != nil {
		t.Fatal(err)
	}
	patient := "Patient/" + c.create("Patient", map[string]any{"resourceType": "Patient", "gender": "female", "birthDate": "1958-08-08"})
	doctor := "Practitioner/" + c.create("Practitioner", map[string]any{"resourceType": "Practitioner"})
	c.create("Coverage", map[string]any{"resourceType": "Coverage", "status": "active", "beneficiary": ref(patient), "payor": []any{map[string]any{"display": "Plan"}}})
	doc := c.create("DocumentReference", map[string]any{"resourceType": "DocumentReference", "status": "current", "subject": ref(patient),
		"author":  []any{ref(doctor)},
		"content": []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain; charset=utf-8", "data": base64.StdEncoding.EncodeToString(transcript)}}}})
	task := c.runOf("DocumentReference/"+doc, "code", time.Minute)
	if task["status"] != "completed" {
		t.Fatalf("coding run: %v", task)
	}
	claim := c.read(outputOf(task, "claim"))
	dx := fmt.Sprint(claim["diagnosis"])
	if !strings.Contains(dx, "M17.12") || strings.Contains(dx, "Q99.999") || refOf(claim["provider"]) != doctor {
		t.Errorf("claim diagnoses %s, provider %v", dx, claim["provider"])
	}
	if !strings.Contains(fmt.Sprint(task["note"]), "Q99.999") {
		t.Errorf("the Task does not report the invented code: %v", task["note"])
	}
	prov := c.search("Provenance?target=Claim/" + claim["id"].(string))
	if len(prov) != 1 {
		t.Fatalf("%d Provenance", len(prov))
	}
	dev := c.read(refOf(prov[0]["agent"].([]any)[0].(map[string]any)["who"]))
	if !strings.Contains(fmt.Sprint(dev["deviceName"]), "local-coder-7b") || calls.Load() == 0 {
		t.Errorf("coder Device %v after %d LLM calls", dev["deviceName"], calls.Load())
	}
}

// TestCodeSearchAsYouType is the Review app's code search: ValueSet/$expand over a code system's
// implicit value set with a filter (description words or the start of a code), billable codes only,
// best first, bounded; bad requests are OperationOutcomes.
func TestCodeSearchAsYouType(t *testing.T) {
	t.Parallel()
	env := envMap(t, "BILLY_AUTH", "none", "BILLY_DEV", "1")
	importICD10CM(t, env)
	c := fhirClient{t, startAppWith(t, lookuper(env), false)}
	icd := url.QueryEscape("http://hl7.org/fhir/sid/icd-10-cm")
	codesOf := func(vs map[string]any) []string {
		var out []string
		exp, _ := vs["expansion"].(map[string]any)
		for _, e := range asList(exp["contains"]) {
			e := e.(map[string]any)
			if e["system"] != "http://hl7.org/fhir/sid/icd-10-cm" || e["display"] == "" {
				t.Errorf("contains %v", e)
			}
			out = append(out, e["code"].(string))
		}
		return out
	}
	tests := []struct {
		name, query string
		want        string // a code that must be among the results
		wantFirst   string
		max         int
	}{
		{name: "words", query: "url=" + icd + "&filter=osteoarthritis+left+knee", want: "M17.12", max: 20},
		{name: "code prefix", query: "url=" + icd + "%3Ffhir_vs&filter=M17.1&count=5", wantFirst: "M17.10", max: 5},
		{name: "exact code", query: "url=" + icd + "&filter=I10", wantFirst: "I10", max: 20},
		{name: "unfinished word", query: "url=" + icd + "&filter=hyperlipid", want: "E78.5", max: 20},
		{name: "unfinished words", query: "url=" + icd + "&filter=" + url.QueryEscape("osteoarth left kne"), want: "M17.12", max: 20},
		{name: "code typed without its dot", query: "url=" + icd + "&filter=m171&count=3", wantFirst: "M17.10", max: 3},
		{name: "code ending in its dot", query: "url=" + icd + "&filter=E78.", wantFirst: "E78.00", max: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, vs := c.do(http.MethodGet, "ValueSet/$expand?"+tt.query, nil, "")
			got := codesOf(vs)
			t.Logf("%s: %v", tt.query, got)
			if code != 200 || vs["resourceType"] != "ValueSet" || len(got) == 0 || len(got) > tt.max {
				t.Fatalf("%d %v", code, vs)
			}
			if tt.want != "" && !slices.Contains(got, tt.want) {
				t.Errorf("%v lacks %s", got, tt.want)
			}
			if tt.wantFirst != "" && got[0] != tt.wantFirst {
				t.Errorf("first %s, want %s (%v)", got[0], tt.wantFirst, got)
			}
			if slices.Contains(got, "M17") {
				t.Errorf("a header (not billable) in %v", got)
			}
		})
	}
	// Nothing to match is an empty expansion, not an error.
	for _, f := range []string{"%%%", "of the", "Q99.999"} {
		code, _, vs := c.do(http.MethodGet, "ValueSet/$expand?url="+icd+"&filter="+url.QueryEscape(f), nil, "")
		if code != 200 || len(codesOf(vs)) != 0 {
			t.Errorf("filter %q: %d %v", f, code, vs)
		}
	}
	// As the coder types: every prefix of a word and of a code is a request (timed, never asserted).
	var times []time.Duration
	for _, word := range []string{"hyperlipidemia", "osteoarthritis knee", "M17.12", "E78.5"} {
		for i := 1; i <= len(word); i++ {
			start := time.Now()
			if code, _, vs := c.do(http.MethodGet, "ValueSet/$expand?url="+icd+"&count=12&filter="+url.QueryEscape(word[:i]), nil, ""); code != 200 {
				t.Fatalf("%s: %d %v", word[:i], code, vs)
			}
			times = append(times, time.Since(start))
		}
	}
	slices.Sort(times)
	t.Logf("ValueSet/$expand as you type: %d requests, median %s, p90 %s, max %s", len(times), times[len(times)/2],
		times[len(times)*9/10], times[len(times)-1])
	for _, bad := range []struct {
		query  string
		status int
	}{
		{"filter=knee", 400},
		{"url=" + icd, 400},
		{"url=" + icd + "&filter=knee&count=-1", 400},
		{"url=http%3A%2F%2Fexample.org%2Fcs&filter=knee", 404},
	} {
		code, _, oo := c.do(http.MethodGet, "ValueSet/$expand?"+bad.query, nil, "")
		if code != bad.status || oo["resourceType"] != "OperationOutcome" {
			t.Errorf("%s: %d %v", bad.query, code, oo)
		}
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }
