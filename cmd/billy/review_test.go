package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iambilly/billy/apps/review"
	"github.com/iambilly/billy/internal/npmtest"
)

// The Review app's browser test runs the app served by a real Billy (auth on, pipeline worker on)
// in Debian's headless Chromium, driven by playwright-core from testdata/review/drive.js, with
// axe-core checking accessibility. Its npm packages are pinned in testdata/review/package.json
// (and package-lock.json) and installed into the user's cache, never into the repository;
// scripts/browser-deps.sh installs chromium, node and npm. Screenshots go to
// $BILLY_REVIEW_ARTIFACTS when set, else to the test's temporary directory.

const (
	reviewRunTimeout = 3 * time.Minute
	coderUser        = "coder"
	coderPassword    = "coder-password-1"
)

// reviewRun is drive.js's output.
type reviewRun struct {
	Steps        []string  `json:"steps"`
	LaunchMs     float64   `json:"launchMs"`
	FirstPaintMs float64   `json:"firstPaintMs"`
	SearchMs     []float64 `json:"searchMs"`
	RenderMs     []float64 `json:"renderMs"`
	Shots        []string  `json:"shots"`
	Axe          []struct {
		Name       string `json:"name"`
		Passes     int    `json:"passes"`
		Violations []struct {
			ID     string   `json:"id"`
			Impact string   `json:"impact"`
			Help   string   `json:"help"`
			Nodes  []string `json:"nodes"`
		} `json:"violations"`
	} `json:"axe"`
	Privacy, PrivacyAfter struct {
		URL            string `json:"url"`
		LocalStorage   int    `json:"localStorage"`
		SessionStorage int    `json:"sessionStorage"`
	}
	InitialDx        []string `json:"initialDx"`
	InitialLines     []string `json:"initialLines"`
	EM               string   `json:"em"`
	HighlightTo      string   `json:"highlightTo"`
	EvidenceFocus    struct{ Tag, Title string }
	EvidenceText     string   `json:"evidenceText"`
	NextHighlightTo  string   `json:"nextHighlightTo"`
	Accepted         string   `json:"accepted"`
	SearchResults    []string `json:"searchResults"`
	Reordered        []string `json:"reordered"`
	LastLineUnits    string   `json:"lastLineUnits"`
	Conflict         string   `json:"conflict"`
	DxDuringConflict []string `json:"dxDuringConflict"`
	DxAfterReload    []string `json:"dxAfterReload"`
	ApprovedDx       []string `json:"approvedDx"`
	Versions         []struct {
		Version string `json:"version"`
		Status  string `json:"status"`
	} `json:"versions"`
	Message         string   `json:"message"`
	NarrowOverflow  int      `json:"narrowOverflow"`
	WaitingTasks    string   `json:"waitingTasks"`
	WaitingMessage  string   `json:"waitingMessage"`
	Reloaded        bool     `json:"reloaded"`
	TranscriptChars int      `json:"transcriptChars"`
	Marks           int      `json:"marks"`
	Choices         []string `json:"choices"`
	BeforeDrag      []string `json:"beforeDrag"`
	AfterDrag       []string `json:"afterDrag"`
}

// authed talks to one Billy with a bearer token.
type authed struct {
	t     *testing.T
	base  string
	token string
}

func (c authed) do(method, path string, body any, header ...string) (int, map[string]any) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/fhir+json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &m) != nil {
		c.t.Fatalf("%s %s: %d, not JSON: %.300s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, m
}

func (c authed) create(res map[string]any) string {
	c.t.Helper()
	code, out := c.do(http.MethodPost, "/fhir/"+res["resourceType"].(string), res)
	if code != http.StatusCreated {
		c.t.Fatalf("create %s: %d %v", res["resourceType"], code, out)
	}
	return res["resourceType"].(string) + "/" + out["id"].(string)
}

func (c authed) resources(query string) []map[string]any {
	c.t.Helper()
	code, b := c.do(http.MethodGet, "/fhir/"+query, nil)
	if code != http.StatusOK {
		c.t.Fatalf("%s: %d %v", query, code, b)
	}
	var out []map[string]any
	for _, e := range asList(b["entry"]) {
		out = append(out, e.(map[string]any)["resource"].(map[string]any))
	}
	return out
}

func codesOfClaim(claim map[string]any, list, concept string) []string {
	var out []string
	for _, x := range asList(claim[list]) {
		cc := x.(map[string]any)[concept].(map[string]any)
		out = append(out, cc["coding"].([]any)[0].(map[string]any)["code"].(string))
	}
	return out
}

// TestReviewAppInBrowser is the coder's review of a real draft Claim, end to end: the pipeline
// codes a transcript into a draft Claim; an EMR launches Billy Review for the patient and encounter
// (POST /oauth2/launch); in Chromium the coder signs in, consents, follows a highlight to its code
// and a code to its evidence, removes a diagnosis, adds one by searching as they type, moves it up,
// changes units, opens the shortcuts, and approves, which meets a conflicting edit made meanwhile
// (shown, nothing overwritten); after reloading and redoing the edits the approval makes the Claim
// active as a new version with a Provenance naming the coder. axe-core finds no WCAG 2.1 A/AA
// violation on any screen, and nothing of the launch stays in the URL or the browser's storage.
func TestReviewAppInBrowser(t *testing.T) {
	t.Parallel()
	chromium := npmtest.Tool(t, "chromium")
	npmtest.Tool(t, "node")
	npmtest.Tool(t, "npm")
	modules := npmtest.Modules(t, filepath.Join("testdata", "review"), []string{"axe-core/axe.min.js", "playwright-core/package.json"})

	ln := listen(t)
	base := "http://" + ln.Addr().String()
	env := envMap(t)
	env["BILLY_BASE_URL"] = base
	importICD10CM(t, env)
	serveApp(t, lookuper(env), ln, true)
	cli := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if err := run(t.Context(), args, lookuper(env), &out, &errb); err != nil {
			t.Fatalf("billy %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return strings.TrimSpace(out.String())
	}
	admin := authed{t, base, cli("dev-token", "--scope", "system/*.cruds", "--client", "test-emr")}
	// The app's registration, as the README documents it for an operator.
	if got := cli("clients", "create", "--id", review.ClientID, "--name", "Billy Review", "--type", "public",
		"--redirect-uri", base+review.Path, "--scope", "launch launch/patient "+review.Scopes); got != "client_id: "+review.ClientID {
		t.Fatalf("clients create: %q", got)
	}

	// The encounter, its transcript, and the pipeline's draft Claim.
	transcript, err := os.ReadFile("../../pipeline/coder/testdata/07-knee-oa-injection-htn-mod25.txt")
	if err != nil {
		t.Fatal(err)
	}
	patient := admin.create(map[string]any{"resourceType": "Patient", "gender": "female", "birthDate": "1958-08-08",
		"name": []any{map[string]any{"use": "official", "family": "Okafor", "given": []any{"Adaeze"}}}})
	doctor := admin.create(map[string]any{"resourceType": "Practitioner", "name": []any{map[string]any{"family": "Quinn"}}})
	coder := admin.create(map[string]any{"resourceType": "Practitioner", "name": []any{map[string]any{"family": "Reyes", "given": []any{"Coder"}}}})
	cli("users", "set", coderUser, "--password", coderPassword, "--fhir-user", coder)
	amb := map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}
	admin.create(map[string]any{"resourceType": "Encounter", "status": "finished", "class": amb, "subject": ref(patient),
		"period": map[string]any{"start": "2025-06-02T09:00:00Z"}})
	encounter := admin.create(map[string]any{"resourceType": "Encounter", "status": "finished", "class": amb, "subject": ref(patient),
		"period": map[string]any{"start": "2026-01-12T10:00:00Z", "end": "2026-01-12T10:25:00Z"}, "participant": []any{map[string]any{"individual": ref(doctor)}}})
	admin.create(map[string]any{"resourceType": "Coverage", "status": "active", "beneficiary": ref(patient), "payor": []any{map[string]any{"display": "Demo Health Plan"}}})
	for code, fee := range map[string]float64{"99214": 135, "20610": 88.5} {
		admin.create(map[string]any{"resourceType": "ChargeItemDefinition", "url": "http://example.org/fees/" + code, "status": "active",
			"identifier":    []any{map[string]any{"system": "urn:billy:fee-schedule", "value": code}},
			"propertyGroup": []any{map[string]any{"priceComponent": []any{map[string]any{"type": "base", "amount": map[string]any{"value": fee, "currency": "USD"}}}}}})
	}
	doc := admin.create(map[string]any{"resourceType": "DocumentReference", "status": "current", "subject": ref(patient),
		"context": map[string]any{"encounter": []any{ref(encounter)}},
		"content": []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain", "data": base64.StdEncoding.EncodeToString(transcript)}}}})
	var task map[string]any
	waitFor(t, "the coding run", func() bool {
		ts := admin.resources("Task?focus=" + url.QueryEscape(doc))
		if len(ts) == 1 && (ts[0]["status"] == "completed" || ts[0]["status"] == "failed") {
			task = ts[0]
			return true
		}
		return false
	})
	claimRef := outputOf(task, "claim")
	if task["status"] != "completed" || claimRef == "" {
		t.Fatalf("coding run: %v", task)
	}
	_, draft := admin.do(http.MethodGet, "/fhir/"+claimRef, nil)
	draftDx := codesOfClaim(draft, "diagnosis", "diagnosisCodeableConcept")
	t.Logf("draft Claim: diagnoses %v, lines %v", draftDx, codesOfClaim(draft, "item", "productOrService"))
	if len(draftDx) < 2 || draftDx[0] != "M17.12" || !slices.Contains(draftDx, "I10") {
		t.Fatalf("the draft's diagnoses are %v; the test expects M17.12 first, and I10", draftDx)
	}
	const addCode = "E78.5"
	removeCode := draftDx[len(draftDx)-1]

	// The EMR's launch.
	code, launch := admin.do(http.MethodPost, "/oauth2/launch", map[string]any{"patient": strings.TrimPrefix(patient, "Patient/"),
		"encounter": strings.TrimPrefix(encounter, "Encounter/")}, "Content-Type", "application/json")
	if code != http.StatusCreated {
		t.Fatalf("launch: %d %v", code, launch)
	}
	launchURL := base + review.Path + "?" + url.Values{"iss": {base + "/fhir"}, "launch": {launch["launch"].(string)}}.Encode()

	artifacts := os.Getenv("BILLY_REVIEW_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	} else if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	drive := func(t *testing.T, mode, url string, extra map[string]any) reviewRun {
		t.Helper()
		dir := filepath.Join(artifacts, mode)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg := map[string]any{"mode": mode, "nodeModules": modules, "chromium": chromium, "userDataDir": t.TempDir(), "url": url,
			"artifacts": dir, "stepTimeoutMs": 30000, "username": coderUser, "password": coderPassword,
			"fhirBase": base + "/fhir", "adminToken": admin.token}
		for k, v := range extra {
			cfg[k] = v
		}
		raw, _ := json.Marshal(cfg)
		ctx, cancel := context.WithTimeout(t.Context(), reviewRunTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", filepath.Join("testdata", "review", "drive.js"), string(raw))
		cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
		cmd.WaitDelay = 5 * time.Second
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("the %s run in the browser failed: %v\n%s", mode, err, stderr.String())
		}
		var r reviewRun
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			t.Fatalf("drive.js output is not JSON: %v\n%s\n%s", err, stdout.String(), stderr.String())
		}
		for _, a := range r.Axe {
			if a.Passes == 0 {
				t.Errorf("axe on %s checked nothing", a.Name)
			}
			for _, v := range a.Violations {
				t.Errorf("axe on %s: %s (%s): %s at %v", a.Name, v.ID, v.Impact, v.Help, v.Nodes)
			}
		}
		t.Logf("%s: %s; screenshots %v", mode, strings.Join(r.Steps, " → "), r.Shots)
		return r
	}
	r := drive(t, "review", launchURL, map[string]any{"claimId": strings.TrimPrefix(claimRef, "Claim/"),
		"highlightCode": "M17.12", "evidenceCode": "I10", "removeCode": removeCode, "searchText": "hyperlipidemia", "addCode": addCode})
	t.Logf("launch to claim on screen %.0f ms (app page to claim rendered %.0f ms); code search %v ms; re-renders %v ms",
		r.LaunchMs, r.FirstPaintMs, r.SearchMs, r.RenderMs)

	// What the coder saw and did.
	wantSteps := []string{"login", "consent", "loaded", "highlight → code", "code → evidence", "remove", "add via search", "reorder",
		"shortcuts", "conflict", "reload", "approve"}
	if diff := cmp.Diff(wantSteps, r.Steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(draftDx, r.InitialDx); diff != "" {
		t.Errorf("diagnoses on screen vs the draft Claim (-want +got):\n%s", diff)
	}
	if len(r.InitialLines) == 0 || !strings.HasPrefix(r.InitialLines[0], "992") {
		t.Errorf("lines on screen %v: the E/M line must come first", r.InitialLines)
	}
	if !strings.Contains(r.EM, "99214") || !strings.Contains(r.EM, "mdm") {
		t.Errorf("E/M basis on screen: %q", r.EM)
	}
	if r.HighlightTo != "M17.12" {
		t.Errorf("a highlight of M17.12's evidence led to %q", r.HighlightTo)
	}
	if r.EvidenceFocus.Tag != "MARK" || !strings.Contains(r.EvidenceFocus.Title, "I10") || r.EvidenceText == "" {
		t.Errorf("e on I10 focused %+v %q", r.EvidenceFocus, r.EvidenceText)
	}
	if r.NextHighlightTo == "" {
		t.Errorf("n, Enter in the transcript reached no code")
	}
	if r.Accepted != "true" {
		t.Errorf("a on the first diagnosis: aria-pressed %q", r.Accepted)
	}
	if len(r.SearchResults) == 0 || !slices.Contains(r.SearchResults, addCode) {
		t.Errorf("search results %v lack %s", r.SearchResults, addCode)
	}
	// After remove, add (appended) and Alt+↑ the new code sits one above the last place.
	want := slices.DeleteFunc(slices.Clone(draftDx), func(c string) bool { return c == removeCode })
	want = slices.Insert(want, len(want)-1, addCode)
	if diff := cmp.Diff(want, r.Reordered); diff != "" {
		t.Errorf("diagnoses after remove, add and reorder (-want +got):\n%s", diff)
	}
	if r.LastLineUnits != "2" {
		t.Errorf("units: %q", r.LastLineUnits)
	}
	if !strings.Contains(r.Conflict, "someone else changed") || !strings.Contains(r.Conflict, "version 2") {
		t.Errorf("conflict message: %q", r.Conflict)
	}
	if diff := cmp.Diff(want, r.DxDuringConflict); diff != "" {
		t.Errorf("the coder's edits must stay on screen during the conflict (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(draftDx, r.DxAfterReload); diff != "" {
		t.Errorf("after reload the screen shows the current version (-want +got):\n%s", diff)
	}
	var versions []string
	for _, v := range r.Versions {
		versions = append(versions, v.Version+":"+v.Status)
	}
	if diff := cmp.Diff([]string{"1:draft", "2:draft", "3:active"}, versions); diff != "" {
		t.Errorf("versions on screen (-want +got):\n%s", diff)
	}
	for _, p := range []struct {
		name string
		got  string
		ls   int
		ss   int
	}{{"after launch", r.Privacy.URL, r.Privacy.LocalStorage, r.Privacy.SessionStorage}, {"at the end", r.PrivacyAfter.URL, r.PrivacyAfter.LocalStorage, r.PrivacyAfter.SessionStorage}} {
		if p.got != base+review.Path || p.ls != 0 || p.ss != 0 {
			t.Errorf("%s: URL %q, localStorage %d items, sessionStorage %d items; want the bare app URL and nothing stored", p.name, p.got, p.ls, p.ss)
		}
	}
	if r.NarrowOverflow > 0 {
		t.Errorf("at 800 px the page scrolls sideways by %d px", r.NarrowOverflow)
	}
	if len(r.Axe) < 5 {
		t.Errorf("axe ran %d times", len(r.Axe))
	}

	// What the server has: the machine's draft, the other edit, and the approved version.
	_, hist := admin.do(http.MethodGet, "/fhir/"+claimRef+"/_history", nil)
	byVersion := map[string]map[string]any{}
	for _, e := range asList(hist["entry"]) {
		res := e.(map[string]any)["resource"].(map[string]any)
		byVersion[res["meta"].(map[string]any)["versionId"].(string)] = res
	}
	if len(byVersion) != 3 || byVersion["1"]["status"] != "draft" || byVersion["3"]["status"] != "active" {
		t.Fatalf("Claim history: %d versions, v1 %v, v3 %v", len(byVersion), byVersion["1"]["status"], byVersion["3"]["status"])
	}
	approved := byVersion["3"]
	if diff := cmp.Diff(want, codesOfClaim(approved, "diagnosis", "diagnosisCodeableConcept")); diff != "" {
		t.Errorf("the approved Claim's diagnoses (-want +got):\n%s", diff)
	}
	if !strings.Contains(fmt.Sprint(approved["priority"]), "stat") {
		t.Errorf("the approval lost the other edit (priority %v)", approved["priority"])
	}
	items := asList(approved["item"])
	if len(items) == 0 || fmt.Sprint(items[len(items)-1].(map[string]any)["quantity"]) != "map[value:3]" {
		t.Errorf("the units typed before Ctrl+Enter did not reach the approved Claim: %v", items)
	}
	for _, it := range items {
		for _, p := range asList(it.(map[string]any)["diagnosisSequence"]) {
			if n := int(p.(float64)); n < 1 || n > len(want) {
				t.Errorf("item pointer %d with %d diagnoses", n, len(want))
			}
		}
	}
	provs := admin.resources("Provenance?agent=" + url.QueryEscape(coder))
	if len(provs) != 1 {
		t.Fatalf("%d Provenance naming %s", len(provs), coder)
	}
	prov := provs[0]
	if got := fmt.Sprint(prov["target"]); got != "[map[reference:"+claimRef+"/_history/3]]" {
		t.Errorf("Provenance target %s", got)
	}
	if !strings.Contains(fmt.Sprint(prov["entity"]), claimRef+"/_history/2") || !strings.Contains(fmt.Sprint(prov["agent"]), "verifier") {
		t.Errorf("Provenance %v", prov)
	}

	// Live status on a ten-minute transcript: the run waits for a Coverage while the app is open;
	// when one arrives the Claim appears without a reload.
	long := longTranscript(t, 1500)
	patient2 := admin.create(map[string]any{"resourceType": "Patient", "gender": "male", "birthDate": "1950-03-04",
		"name": []any{map[string]any{"use": "official", "family": "Lindqvist", "given": []any{"Bo"}}}})
	encounter2 := admin.create(map[string]any{"resourceType": "Encounter", "status": "finished", "class": amb, "subject": ref(patient2),
		"period": map[string]any{"start": "2026-01-13T10:00:00Z"}, "participant": []any{map[string]any{"individual": ref(doctor)}}})
	doc2 := admin.create(map[string]any{"resourceType": "DocumentReference", "status": "current", "subject": ref(patient2),
		"context": map[string]any{"encounter": []any{ref(encounter2)}},
		"content": []any{map[string]any{"attachment": map[string]any{"contentType": "text/plain", "data": base64.StdEncoding.EncodeToString([]byte(long))}}}})
	waitFor(t, "the second run on hold", func() bool {
		ts := admin.resources("Task?focus=" + url.QueryEscape(doc2))
		return len(ts) == 1 && ts[0]["status"] == "on-hold"
	})
	code, launch = admin.do(http.MethodPost, "/oauth2/launch", map[string]any{"patient": strings.TrimPrefix(patient2, "Patient/"),
		"encounter": strings.TrimPrefix(encounter2, "Encounter/")}, "Content-Type", "application/json")
	if code != http.StatusCreated {
		t.Fatalf("launch: %d %v", code, launch)
	}
	lr := drive(t, "live", base+review.Path+"?"+url.Values{"iss": {base + "/fhir"}, "launch": {launch["launch"].(string)}}.Encode(),
		map[string]any{"coverage": map[string]any{"resourceType": "Coverage", "status": "active", "beneficiary": ref(patient2),
			"payor": []any{map[string]any{"display": "Demo Health Plan"}}}})
	t.Logf("live: %d-character transcript with %d highlights; re-renders %v ms", lr.TranscriptChars, lr.Marks, lr.RenderMs)
	if !strings.Contains(lr.WaitingTasks, "on-hold") || !strings.Contains(lr.WaitingTasks, "awaiting-coverage") {
		t.Errorf("while waiting the app showed the pipeline as %q (%q)", lr.WaitingTasks, lr.WaitingMessage)
	}
	if lr.Reloaded || len(lr.InitialDx) == 0 || lr.TranscriptChars < len([]rune(long))-10 || lr.Marks == 0 {
		t.Errorf("the claim appeared: reloaded %v, diagnoses %v, transcript %d characters of %d, %d highlights",
			lr.Reloaded, lr.InitialDx, lr.TranscriptChars, len([]rune(long)), lr.Marks)
	}

	if len(lr.BeforeDrag) < 4 {
		t.Errorf("too few diagnoses to drag: %v", lr.BeforeDrag)
	} else {
		want := append([]string{lr.BeforeDrag[3]}, slices.Delete(slices.Clone(lr.BeforeDrag), 3, 4)...)
		if diff := cmp.Diff(want, lr.AfterDrag); diff != "" {
			t.Errorf("dragging the fourth diagnosis onto the first (-want +got):\n%s", diff)
		}
	}

	// Standalone: the patient picker, then the patient's draft claims.
	sr := drive(t, "standalone", base+review.Path, map[string]any{"patient": strings.TrimPrefix(patient2, "Patient/")})
	t.Logf("standalone: choosing the claim to the claim on screen %.0f ms (%d-character transcript)", sr.FirstPaintMs, sr.TranscriptChars)
	if diff := cmp.Diff([]string{"login", "picker", "consent", "choose", "loaded"}, sr.Steps); diff != "" {
		t.Errorf("standalone steps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(lr.InitialDx, sr.InitialDx); len(sr.Choices) != 1 || diff != "" {
		// The live run only reordered on screen: the stored draft keeps the coder's order.
		t.Errorf("standalone: choices %v; diagnoses (-want +got):\n%s", sr.Choices, diff)
	}
	if sr.Privacy.URL != base+review.Path || sr.Privacy.LocalStorage != 0 || sr.Privacy.SessionStorage != 0 {
		t.Errorf("standalone: %+v", sr.Privacy)
	}
}

// longTranscript joins the coder's test transcripts until the text has at least words words (a
// ten-minute visit is about 1,500 spoken words).
func longTranscript(t *testing.T, words int) string {
	t.Helper()
	files, err := filepath.Glob("../../pipeline/coder/testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("transcripts: %v", err)
	}
	var b strings.Builder
	for _, f := range files {
		if len(strings.Fields(b.String())) >= words {
			break
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(raw)
		b.WriteString("\n\n")
	}
	return b.String()
}
