package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// postPrefer posts a resource (or a Bundle to the base when typ is "") with a Prefer header and
// returns the status and body.
func (c fhirClient) postPrefer(typ string, res map[string]any, prefer string) (int, map[string]any) {
	c.t.Helper()
	b, _ := json.Marshal(res)
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(c.base+"/fhir/"+typ, "/"), bytes.NewReader(b))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	if prefer != "" {
		req.Header.Set("Prefer", prefer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("POST %s: %d, not JSON: %.200s", typ, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// issues lists an OperationOutcome's issues as "severity code expression: diagnostics".
func issues(oo map[string]any) []string {
	var out []string
	list, _ := oo["issue"].([]any)
	for _, it := range list {
		it := it.(map[string]any)
		expr, _ := it["expression"].([]any)
		out = append(out, fmt.Sprintf("%v %v %v: %v", it["severity"], it["code"], expr, it["diagnostics"]))
	}
	return out
}

// TestDocumentReferenceWithoutRunSaysWhy is finding E2 of issue 10: a DocumentReference that cannot
// start a coding run was accepted with no signal to the EMR. The create answers a warning saying
// why: in the body with Prefer: return=OperationOutcome, in entry.response.outcome in a Bundle.
func TestDocumentReferenceWithoutRunSaysWhy(t *testing.T) {
	t.Parallel()
	c := fhirClient{t, startApp(t, testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1"))}
	patient, _ := c.patientAndEncounter()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	doc := func(status string, subject any, attachments ...map[string]any) map[string]any {
		d := map[string]any{"resourceType": "DocumentReference", "status": status}
		if subject != nil {
			d["subject"] = subject
		}
		var content []any
		for _, a := range attachments {
			content = append(content, map[string]any{"attachment": a})
		}
		d["content"] = content
		return d
	}
	text := map[string]any{"contentType": "text/plain", "data": b64("Patient reports a sore throat for three days.")}
	for _, tc := range []struct {
		name string
		doc  map[string]any
		want string // the warning; "" for a document that starts a run
	}{
		{"no contentType", doc("current", ref(patient), map[string]any{"data": b64("some text")}),
			"warning required [DocumentReference.content.attachment.contentType]: no coding run started: no attachment has a contentType"},
		{"a PDF", doc("current", ref(patient), map[string]any{"contentType": "application/pdf", "data": b64("%PDF-1.4")}),
			"warning not-supported [DocumentReference.content.attachment.contentType]: no coding run started: only text/plain transcripts are coded; this DocumentReference has application/pdf"},
		{"text without text", doc("current", ref(patient), map[string]any{"contentType": "application/pdf", "data": b64("%PDF")}, map[string]any{"contentType": "text/plain"}),
			"warning required [DocumentReference.content[1].attachment]: no coding run started: the text/plain attachment has no text"},
		{"empty text", doc("current", ref(patient), map[string]any{"contentType": "text/plain; charset=utf-8", "data": b64("  \n ")}),
			"warning value [DocumentReference.content[0].attachment.data]: no coding run started: the text/plain transcript is empty"},
		{"text elsewhere", doc("current", ref(patient), map[string]any{"contentType": "text/plain", "url": "https://emr.example/notes/1.txt"}),
			`warning not-supported [DocumentReference.content[0].attachment.url]: no coding run started: the text/plain attachment's url "https://emr.example/notes/1.txt" is not a Binary`},
		{"superseded", doc("superseded", ref(patient), text),
			`warning business-rule [DocumentReference.status]: no coding run started: only a current DocumentReference is coded (status is "superseded")`},
		{"no patient", doc("current", nil, text),
			"warning required [DocumentReference.subject]: no coding run started: a transcript needs a Patient subject"},
		{"a transcript", doc("current", ref(patient), map[string]any{"contentType": "application/pdf", "data": b64("%PDF")}, text), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, oo := c.postPrefer("DocumentReference", tc.doc, "return=OperationOutcome")
			got := issues(oo)
			if code != http.StatusCreated || oo["resourceType"] != "OperationOutcome" || len(got) == 0 || !strings.HasPrefix(got[0], "information informational []: created DocumentReference/") {
				t.Fatalf("create: %d %v", code, got)
			}
			id := strings.SplitN(got[0], "DocumentReference/", 2)[1]
			runs := c.search("Task?focus=DocumentReference/" + id)
			if tc.want == "" {
				if len(got) != 1 || len(runs) != 1 {
					t.Errorf("a transcript: issues %v, %d runs; want no warning and one run", got, len(runs))
				}
				return
			}
			if len(got) != 2 || !strings.HasPrefix(got[1], tc.want) {
				t.Errorf("issues:\n%s\nwant the second to start with:\n%s", strings.Join(got, "\n"), tc.want)
			}
			if len(runs) != 0 {
				t.Errorf("%d runs started", len(runs))
			}
		})
	}

	// In a transaction the warning is the entry's response.outcome, whatever Prefer says.
	code, bundle := c.postPrefer("", map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"request": map[string]any{"method": "POST", "url": "DocumentReference"},
			"resource": doc("current", ref(patient), map[string]any{"contentType": "application/pdf", "data": b64("%PDF")})},
		map[string]any{"request": map[string]any{"method": "POST", "url": "DocumentReference"}, "resource": doc("current", ref(patient), text)},
	}}, "")
	if code != http.StatusOK {
		t.Fatalf("transaction: %d %v", code, bundle)
	}
	entries := bundle["entry"].([]any)
	pdf := entries[0].(map[string]any)["response"].(map[string]any)
	if oo, _ := pdf["outcome"].(map[string]any); len(issues(oo)) != 1 || !strings.Contains(issues(oo)[0], "only text/plain transcripts are coded") {
		t.Errorf("the PDF entry's response: %v", pdf)
	}
	if r := entries[1].(map[string]any)["response"].(map[string]any); r["outcome"] != nil {
		t.Errorf("the transcript entry has an outcome: %v", r)
	}
	// Without Prefer a create answers the resource, as before.
	code, out := c.postPrefer("DocumentReference", doc("current", ref(patient), map[string]any{"contentType": "application/pdf", "data": b64("%PDF")}), "")
	if code != http.StatusCreated || out["resourceType"] != "DocumentReference" {
		t.Errorf("plain create: %d %v", code, out)
	}
}
