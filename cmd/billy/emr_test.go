package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/adapters/emr"
	"github.com/iambilly/billy/adapters/hl7v2"
	"github.com/iambilly/billy/internal/config"
)

// faultyProxy stands between Billy and the EMR (a second Billy): it rewrites the EMR's own base in
// answers to the proxy's, and can answer 429 to the next N requests or drop every connection.
type faultyProxy struct {
	srv      *httptest.Server
	storm    atomic.Int32 // requests still to answer 429
	dead     atomic.Bool  // drop every connection
	dieAfter atomic.Int32 // when > 0, searches left before dying
	unauth   atomic.Int32 // authorized requests still to answer 401 (an expired or revoked token)
}

func newFaultyProxy(t *testing.T, target string) *faultyProxy {
	t.Helper()
	u, _ := url.Parse(target)
	p := &faultyProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		resp.Body.Close()
		b = bytes.ReplaceAll(b, []byte(target+"/fhir/"), []byte(p.srv.URL+"/fhir/"))
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
		return nil
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.RawQuery != "" && p.dieAfter.Load() > 0 {
			if p.dieAfter.Add(-1) == 0 {
				p.dead.Store(true)
			}
		}
		if p.dead.Load() {
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
		if r.Header.Get("Authorization") != "" && p.unauth.Load() > 0 && p.unauth.Add(-1) >= 0 {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if p.storm.Load() > 0 && p.storm.Add(-1) >= 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// ehr is a second Billy acting as the EMR, with SMART authorization on.
type ehr struct {
	base, token string
	env         config.Lookuper
}

func startEHR(t *testing.T) *ehr {
	t.Helper()
	ln := listen(t)
	base := "http://" + ln.Addr().String()
	env := testEnv(t, "BILLY_BASE_URL", base)
	serveApp(t, env, ln, false)
	var out bytes.Buffer
	if err := run(t.Context(), []string{"dev-token", "--scope", "system/*.cruds", "--client", "ehr-admin"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	return &ehr{base: base, token: strings.TrimSpace(out.String()), env: env}
}

func do(t *testing.T, method, u, token, body string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// create posts a resource to the EHR and returns its id.
func (e *ehr) create(t *testing.T, typ, body string) string {
	t.Helper()
	code, _, b := do(t, http.MethodPost, e.base+"/fhir/"+typ, e.token, body)
	if code != http.StatusCreated {
		t.Fatalf("create %s at the EHR: %d %s", typ, code, b)
	}
	var r struct{ ID string }
	_ = json.Unmarshal(b, &r)
	return r.ID
}

// registerClient writes an ES384 key, registers its public half at the EHR as a Backend Services
// client and returns the key file and the client id.
func (e *ehr) registerClient(t *testing.T) (keyFile, clientID string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := t.TempDir()
	keyFile = filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: key.Public(), Algorithm: "ES384", Use: "sig"}
	tp, _ := jwk.Thumbprint(cryptoSHA256)
	jwk.KeyID = b64url(tp)
	jb, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	jwksFile := filepath.Join(dir, "jwks.json")
	_ = os.WriteFile(jwksFile, jb, 0o600)
	var out bytes.Buffer
	if err := run(t.Context(), []string{"clients", "create", "--name", "Billy", "--type", "confidential-asymmetric", "--jwks", jwksFile, "--alg", "ES384",
		"--scope", emr.DefaultScope + " " + emr.ClaimScope}, e.env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	id, _ := strings.CutPrefix(strings.TrimSpace(out.String()), "client_id: ")
	return keyFile, strings.Fields(id)[0]
}

// seed makes n patients, each with a coverage and two encounters, an organization and a
// practitioner; it returns the patient and encounter ids.
func (e *ehr) seed(t *testing.T, n int) (patients, encounters []string) {
	t.Helper()
	org := e.create(t, "Organization", `{"resourceType":"Organization","name":"Payer One"}`)
	prac := e.create(t, "Practitioner", `{"resourceType":"Practitioner","name":[{"family":"House"}]}`)
	for i := range n {
		p := e.create(t, "Patient", fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":"urn:ehr:mrn","value":"M%d"}],"name":[{"family":"Doe%d","given":["Jan"]}],"birthDate":"1980-01-0%d"}`, i, i, i%9+1))
		patients = append(patients, p)
		e.create(t, "Coverage", fmt.Sprintf(`{"resourceType":"Coverage","status":"active","beneficiary":{"reference":"Patient/%s"},"payor":[{"reference":"Organization/%s"}]}`, p, org))
		for range 2 {
			encounters = append(encounters, e.create(t, "Encounter", fmt.Sprintf(`{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/%s"},"participant":[{"individual":{"reference":"Practitioner/%s"}}]}`, p, prac)))
		}
	}
	return patients, encounters
}

// billyWithEMR is Billy (no authorization) with the EHR connected through a faulty proxy: its
// base URL, its EMR service (a second process on the same database, for the Go API) and the
// notification token.
func billyWithEMR(t *testing.T, e *ehr, proxy *faultyProxy, name string, addArgs ...string) (string, *emr.Service, string, config.Lookuper) {
	t.Helper()
	env := testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1")
	base := startApp(t, env)
	keyFile, clientID := e.registerClient(t)
	var out bytes.Buffer
	if err := run(t.Context(), append([]string{"emr", "add", name, "--base", proxy.srv.URL + "/fhir", "--client-id", clientID, "--key", keyFile}, addArgs...), env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	_, tok, _ := strings.Cut(out.String(), "Authorization: Bearer ")
	tok = strings.Fields(tok)[0]
	a, err := openApp(t.Context(), env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	a.emr.Options = emr.Options{Sleep: func(context.Context, time.Duration) error { return nil }, MaxAttempts: 6}
	return base, a.emr, tok, env
}

func countIdentified(t *testing.T, base, typ, system string) int {
	t.Helper()
	code, _, b := do(t, http.MethodGet, base+"/fhir/"+typ+"?_summary=count&identifier="+url.QueryEscape(system+"|"), "", "")
	if code != 200 {
		t.Fatalf("count %s: %d %s", typ, code, b)
	}
	var r struct{ Total int }
	_ = json.Unmarshal(b, &r)
	return r.Total
}

// TestEMRSyncFromSecondBilly: full sync, re-sync without duplicates, incremental sync of a changed
// resource, paging, a 429 storm, references rewritten, and the record of calls.
func TestEMRSyncFromSecondBilly(t *testing.T) {
	t.Parallel()
	e := startEHR(t)
	patients, encounters := e.seed(t, 3)
	proxy := newFaultyProxy(t, e.base)
	base, svc, _, env := billyWithEMR(t, e, proxy, "ehr")
	ctx := t.Context()

	var out bytes.Buffer
	if err := run(ctx, []string{"emr", "sync", "ehr"}, env, &out, io.Discard); err != nil {
		t.Fatalf("emr sync: %v", err)
	}
	// 1 organization + 1 practitioner + 3 patients + 3 coverages + 6 encounters (the patients
	// _included with the encounters again are skipped as unchanged)
	if got := strings.TrimSpace(out.String()); !strings.HasPrefix(got, "created 14, updated 0, ") || !strings.HasSuffix(got, ", failed 0") {
		t.Errorf("first sync: %q, want 14 created", got)
	}
	sys := emr.IdentifierSystem("ehr")
	for typ, want := range map[string]int{"Patient": 3, "Encounter": 6, "Coverage": 3, "Organization": 1, "Practitioner": 1} {
		if got := countIdentified(t, base, typ, sys); got != want {
			t.Errorf("%s in Billy: %d, want %d", typ, got, want)
		}
	}
	encLocal := emr.LocalID("ehr", "Encounter", encounters[0])
	code, _, b := do(t, http.MethodGet, base+"/fhir/Encounter/"+encLocal, "", "")
	if code != 200 || !strings.Contains(string(b), `"reference":"Patient/`+emr.LocalID("ehr", "Patient", patients[0])+`"`) {
		t.Errorf("the synced Encounter's subject is not rewritten to Billy's Patient: %d %s", code, b)
	}

	// A second sync reads from the high-water marks: nothing new, no duplicates.
	n, err := svc.Sync(ctx, "ehr", emr.SyncOptions{})
	if err != nil || n.Created != 0 || n.Updated != 0 {
		t.Errorf("re-sync: %+v %v", n, err)
	}
	// A change at the EHR becomes a new version in Billy.
	code, _, b = do(t, http.MethodPut, e.base+"/fhir/Patient/"+patients[1], e.token,
		fmt.Sprintf(`{"resourceType":"Patient","id":"%s","identifier":[{"system":"urn:ehr:mrn","value":"M1"}],"name":[{"family":"Doe-Smith","given":["Jan"]}]}`, patients[1]))
	if code != 200 {
		t.Fatalf("update at the EHR: %d %s", code, b)
	}
	n, err = svc.Sync(ctx, "ehr", emr.SyncOptions{})
	if err != nil || n.Created != 0 || n.Updated != 1 {
		t.Errorf("incremental sync after one change: %+v %v", n, err)
	}
	code, _, b = do(t, http.MethodGet, base+"/fhir/Patient/"+emr.LocalID("ehr", "Patient", patients[1]), "", "")
	if code != 200 || !strings.Contains(string(b), "Doe-Smith") || !strings.Contains(string(b), `"versionId":"2"`) {
		t.Errorf("the changed Patient in Billy: %d %s", code, b)
	}

	// Paging from the start, two per page, through a storm of 429s: all skipped, none duplicated.
	proxy.storm.Store(4)
	old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	n, err = svc.Sync(ctx, "ehr", emr.SyncOptions{Since: &old, PageSize: 2})
	if err != nil || n.Skipped < 14 || n.Created+n.Updated+n.Failed != 0 {
		t.Errorf("paged re-sync through 429s: %+v %v", n, err)
	}
	if got := countIdentified(t, base, "Encounter", sys); got != 6 {
		t.Errorf("Encounters after the paged re-sync: %d", got)
	}
	calls, err := svc.Calls(ctx, "ehr", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var n429, encPages int
	for _, c := range calls {
		if c.Status == 429 {
			n429++
		}
		if c.Purpose == "sync" && strings.HasSuffix(c.Target, "/fhir/Encounter") || strings.Contains(c.Target, "/fhir/Encounter?") && c.Status == 200 {
			encPages++
		}
		if strings.Contains(c.Target, "Doe") || strings.Contains(c.Target, "M1") {
			t.Errorf("a call record holds a value: %+v", c)
		}
	}
	if n429 != 4 || encPages < 3 {
		t.Errorf("calls recorded: %d answered 429 (want 4), %d Encounter pages (want ≥ 3)", n429, encPages)
	}
	// Every call is in the audit trail too, as the adapter's own principal, and without values.
	dbURL, _ := env.Lookup("BILLY_DATABASE_URL")
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	var nCalls, nEvents, nRefused, nValues int
	if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM emr_calls),
		count(*), count(*) FILTER (WHERE outcome = '4'), count(*) FILTER (WHERE content LIKE '%Doe%')
		FROM audit_log WHERE 'client|'||$1 = ANY(agents)`, emr.Agent).Scan(&nCalls, &nEvents, &nRefused, &nValues); err != nil {
		t.Fatal(err)
	}
	if nCalls == 0 || nEvents != nCalls || nRefused < n429 || nValues != 0 {
		t.Errorf("audit trail: %d events for %d calls, %d refused (≥ %d answered 429), %d with a value", nEvents, nCalls, nRefused, n429, nValues)
	}
	// One token per process served every call so far (the CLI's sync, then the three of svc): it is
	// cached until shortly before it expires; a 401 renews it.
	tokens := func() int {
		calls, err := svc.Calls(ctx, "ehr", 10000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range calls {
			if c.Purpose == "token" && c.Status == 200 {
				n++
			}
		}
		return n
	}
	if n := tokens(); n != 2 {
		t.Errorf("tokens requested over four syncs in two processes: %d, want 2", n)
	}
	proxy.unauth.Store(1)
	if _, err := svc.Sync(ctx, "ehr", emr.SyncOptions{Types: []string{"Patient"}}); err != nil {
		t.Errorf("sync through a 401: %v", err)
	}
	if n := tokens(); n != 3 {
		t.Errorf("tokens after a 401: %d, want 3", n)
	}
	out.Reset()
	if err := run(ctx, []string{"emr", "calls", "ehr", "--limit", "5"}, env, &out, io.Discard); err != nil || strings.Count(out.String(), "\n") != 6 {
		t.Errorf("emr calls: %v\n%s", err, out.String())
	}
}

// TestEMRSyncResumes: the EMR dies mid-sync; the next sync resumes from the high-water mark and
// makes no duplicates.
func TestEMRSyncResumes(t *testing.T) {
	t.Parallel()
	e := startEHR(t)
	e.seed(t, 4)
	proxy := newFaultyProxy(t, e.base)
	base, svc, _, _ := billyWithEMR(t, e, proxy, "ehr")
	svc.Options.MaxAttempts = 2
	ctx := t.Context()
	proxy.dieAfter.Store(5) // dies within the Patient pages
	first, err := svc.Sync(ctx, "ehr", emr.SyncOptions{PageSize: 1})
	if err == nil {
		t.Fatal("the sync went through a dead EMR")
	}
	proxy.dead.Store(false)
	second, err := svc.Sync(ctx, "ehr", emr.SyncOptions{PageSize: 1})
	if err != nil {
		t.Fatalf("resumed sync: %v", err)
	}
	// 1 + 1 + 4 + 4 + 8 resources, each created once over the two runs.
	if first.Created == 0 || first.Created+second.Created != 18 {
		t.Errorf("created %d then %d (skipped %d), want 18 in all", first.Created, second.Created, second.Skipped)
	}
	sys := emr.IdentifierSystem("ehr")
	for typ, want := range map[string]int{"Patient": 4, "Encounter": 8, "Coverage": 4} {
		if got := countIdentified(t, base, typ, sys); got != want {
			t.Errorf("%s in Billy after the resume: %d, want %d", typ, got, want)
		}
	}
}

// TestEMRWritebackAndNotify: a transcript DocumentReference written in Billy is queued through the
// outbox and written to the EMR once, however often the write-back runs; a Subscription
// notification syncs one resource, and unknown senders are refused.
func TestEMRWritebackAndNotify(t *testing.T) {
	t.Parallel()
	e := startEHR(t)
	patients, encounters := e.seed(t, 1)
	proxy := newFaultyProxy(t, e.base)
	base, svc, token, env := billyWithEMR(t, e, proxy, "ehr", "--writeback-claims")
	ctx := t.Context()
	if _, err := svc.Sync(ctx, "ehr", emr.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	pat, enc := emr.LocalID("ehr", "Patient", patients[0]), emr.LocalID("ehr", "Encounter", encounters[0])
	code, _, b := do(t, http.MethodPost, base+"/fhir/DocumentReference", "", fmt.Sprintf(`{"resourceType":"DocumentReference","status":"current",
		"type":{"coding":[{"system":"http://loinc.org","code":"34109-9"}],"text":"Encounter transcript"},
		"subject":{"reference":"Patient/%s"},"context":{"encounter":[{"reference":"Encounter/%s"}]},
		"content":[{"attachment":{"contentType":"text/plain; charset=utf-8","data":"SGVsbG8="}},{"attachment":{"contentType":"application/json","data":"e30="}}]}`, pat, enc))
	if code != 201 {
		t.Fatalf("create DocumentReference: %d %s", code, b)
	}
	var doc struct{ ID string }
	_ = json.Unmarshal(b, &doc)
	a, err := openApp(ctx, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var queued int
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE task_type = $1 AND payload->>'id' = $2`, emr.TaskWriteback, doc.ID).Scan(&queued); err != nil || queued != 1 {
		t.Fatalf("write-back jobs queued: %d %v", queued, err)
	}
	p := emr.WritebackPayload{EMR: "ehr", Type: "DocumentReference", ID: doc.ID}
	payload, _ := json.Marshal(p)
	var ids []string
	for i := range 3 {
		if i == 2 {
			// The remote id was lost (the job died after the POST): the conditional create finds it.
			if _, err := a.pool.Exec(ctx, `UPDATE emr_writebacks SET remote_id = NULL, status = 'pending'`); err != nil {
				t.Fatal(err)
			}
		}
		if err := svc.RunWriteback(ctx, payload); err != nil {
			t.Fatalf("write-back %d: %v", i, err)
		}
		id, err := svc.Writeback(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if ids[0] == "" || ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("remote ids of the write-backs: %v", ids)
	}
	code, _, b = do(t, http.MethodGet, e.base+"/fhir/DocumentReference?_summary=count&identifier="+url.QueryEscape(emr.WritebackSystem+"|"+doc.ID), e.token, "")
	if code != 200 || !strings.Contains(string(b), `"total":1`) {
		t.Errorf("documents at the EHR: %d %s", code, b)
	}
	code, _, b = do(t, http.MethodGet, e.base+"/fhir/DocumentReference/"+ids[0], e.token, "")
	if code != 200 || !strings.Contains(string(b), `"reference":"Encounter/`+encounters[0]+`"`) || strings.Contains(string(b), "application/json") {
		t.Errorf("the document at the EHR (its encounter should be the EHR's, only the text attachment): %d %s", code, b)
	}

	// A Claim that becomes active is written back once, with the EHR's ids.
	_, _, encBody := do(t, http.MethodGet, base+"/fhir/Encounter/"+enc, "", "")
	prac := regexp.MustCompile(`"reference":"(Practitioner/[^"]+)"`).FindStringSubmatch(string(encBody))
	_, _, covBody := do(t, http.MethodGet, base+"/fhir/Coverage?beneficiary=Patient/"+pat, "", "")
	cov := regexp.MustCompile(`"fullUrl":"[^"]*/(Coverage/[^"]+)"`).FindStringSubmatch(string(covBody))
	if prac == nil || cov == nil {
		t.Fatalf("synced practitioner or coverage not found: %s %s", encBody, covBody)
	}
	claim := func(status, provider string) string {
		return fmt.Sprintf(`{"resourceType":"Claim","status":"%s","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claim-type","code":"professional"}]},
			"use":"claim","patient":{"reference":"Patient/%s"},"created":"2026-03-06","provider":{"reference":"%s"},"priority":{"coding":[{"code":"normal"}]},
			"insurance":[{"sequence":1,"focal":true,"coverage":{"reference":"%s"}}],
			"item":[{"sequence":1,"productOrService":{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"99213"}]},"encounter":[{"reference":"Encounter/%s"}]}]}`, status, pat, provider, cov[1], enc)
	}
	code, _, b = do(t, http.MethodPost, base+"/fhir/Claim", "", claim("draft", prac[1]))
	if code != 201 {
		t.Fatalf("create Claim: %d %s", code, b)
	}
	var cl struct{ ID string }
	_ = json.Unmarshal(b, &cl)
	for range 2 { // active, then active again: queued once
		if code, _, b := do(t, http.MethodPut, base+"/fhir/Claim/"+cl.ID, "", strings.Replace(claim("active", prac[1]), `{"resourceType":"Claim",`, `{"resourceType":"Claim","id":"`+cl.ID+`",`, 1)); code != 200 {
			t.Fatalf("activate Claim: %d %s", code, b)
		}
	}
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE task_type = $1 AND payload->>'id' = $2`, emr.TaskWriteback, cl.ID).Scan(&queued); err != nil || queued != 1 {
		t.Fatalf("Claim write-back jobs queued: %d %v", queued, err)
	}
	cp := emr.WritebackPayload{EMR: "ehr", Type: "Claim", ID: cl.ID}
	first, err := svc.Writeback(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.pool.Exec(ctx, `UPDATE emr_writebacks SET remote_id = NULL WHERE type = 'Claim'`); err != nil {
		t.Fatal(err)
	}
	if again, err := svc.Writeback(ctx, cp); err != nil || again != first {
		t.Errorf("Claim write-back again: %q %v, want %q", again, err, first)
	}
	code, _, b = do(t, http.MethodGet, e.base+"/fhir/Claim/"+first, e.token, "")
	if code != 200 || !strings.Contains(string(b), `"reference":"Patient/`+patients[0]+`"`) || !strings.Contains(string(b), `"reference":"Encounter/`+encounters[0]+`"`) {
		t.Errorf("the Claim at the EHR: %d %s", code, b)
	}
	code, _, b = do(t, http.MethodPost, base+"/fhir/Claim", "", claim("active", "Organization/billy-only"))
	if code != 201 {
		t.Fatalf("create Claim: %d %s", code, b)
	}
	_ = json.Unmarshal(b, &cl)
	if _, err := svc.Writeback(ctx, emr.WritebackPayload{EMR: "ehr", Type: "Claim", ID: cl.ID}); err == nil || !strings.Contains(err.Error(), "Organization/billy-only") {
		t.Errorf("a Claim referring to a Billy-only provider: %v", err)
	}

	// Subscription notification: an Encounter changed at the EHR.
	code, _, b = do(t, http.MethodPut, e.base+"/fhir/Encounter/"+encounters[1], e.token, fmt.Sprintf(`{"resourceType":"Encounter","id":"%s","status":"cancelled",
		"class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/%s"}}`, encounters[1], patients[0]))
	if code != 200 {
		t.Fatalf("update at the EHR: %d %s", code, b)
	}
	notify := base + "/emr/ehr/notify/Encounter/" + encounters[1]
	for _, tc := range []struct{ url, token string }{{notify, ""}, {notify, "wrong"}, {base + "/emr/other/notify/Encounter/" + encounters[1], token}} {
		if code, _, _ := do(t, http.MethodPut, tc.url, tc.token, "{}"); code != http.StatusUnauthorized {
			t.Errorf("notification from an unknown sender (%s, %q): %d, want 401", tc.url, tc.token, code)
		}
	}
	if code, _, _ := do(t, http.MethodPut, base+"/emr/ehr/notify/Condition/1", token, "{}"); code != http.StatusBadRequest {
		t.Errorf("notification of a type not synced: %d, want 400", code)
	}
	code, _, b = do(t, http.MethodPut, notify, token, "{}")
	if code != 200 || !strings.Contains(string(b), `"updated":1`) {
		t.Errorf("notification: %d %s", code, b)
	}
	code, _, b = do(t, http.MethodGet, base+"/fhir/Encounter/"+emr.LocalID("ehr", "Encounter", encounters[1]), "", "")
	if code != 200 || !strings.Contains(string(b), `"cancelled"`) {
		t.Errorf("the notified Encounter in Billy: %d %s", code, b)
	}
}

var cryptoSHA256 = crypto.SHA256

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestServeMLLP: billy serve with BILLY_MLLP_ADDR applies v2 messages that the FHIR API then
// serves; a rejected one shows in billy hl7 errors and its replay is refused again.
func TestServeMLLP(t *testing.T) {
	t.Parallel()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mllpAddr := free.Addr().String()
	free.Close()
	env := testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1", "BILLY_MLLP_ADDR", mllpAddr)
	base := startApp(t, env)
	var conn net.Conn
	for range 50 {
		if conn, err = net.Dial("tcp", mllpAddr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	send := func(msg string) string {
		if _, err := conn.Write(hl7v2.Frame([]byte(msg))); err != nil {
			t.Fatal(err)
		}
		raw, err := hl7v2.ReadFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		m, err := hl7v2.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return m.Get(m.Seg("MSA"), 1, 0)
	}
	const mshA04 = "MSH|^~\\&|ADT|HOSP|BILLY|BILL|20260301120000||ADT^A04^ADT_A01|"
	if code := send(mshA04 + "S1|P|2.5.1\rPID|1||MRN9^^^HOSP^MR||Doe^Jane||19800115|F\rPV1|1|O|||||||||||||||||V9^^^HOSP^VN\r"); code != "AA" {
		t.Fatalf("A04: %s", code)
	}
	code, _, b := do(t, http.MethodGet, base+"/fhir/Patient?identifier="+url.QueryEscape("urn:billy:hl7:hosp|MRN9"), "", "")
	if code != 200 || strings.Count(string(b), `"fullUrl"`) != 1 || !strings.Contains(string(b), `"birthDate":"1980-01-15"`) {
		t.Errorf("the Patient over FHIR: %d %s", code, b)
	}
	if code := send(mshA04 + "S2|P|2.5.1\rPID|1||MRN10^^^HOSP^MR||Doe^Jane||1980011|F\rPV1|1|O|||||||||||||||||V10^^^HOSP^VN\r"); code != "AE" {
		t.Fatalf("bad A04: %s", code)
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"hl7", "errors"}, env, &out, io.Discard); err != nil || !strings.Contains(out.String(), "PID-7") {
		t.Fatalf("hl7 errors: %v\n%s", err, out.String())
	}
	id := strings.Fields(strings.Split(out.String(), "\n")[1])[0]
	out.Reset()
	if err := run(t.Context(), []string{"hl7", "replay", id}, env, &out, io.Discard); err == nil || !strings.HasPrefix(out.String(), "AE") {
		t.Errorf("hl7 replay of a bad message: %v %q", err, out.String())
	}
}

// TestEMRAdminAPI: /admin/emr needs a system/*.cruds token, registers an EMR, serves its JWKS and
// status, and removes it.
func TestEMRAdminAPI(t *testing.T) {
	t.Parallel()
	e := startEHR(t)
	if code, _, _ := do(t, http.MethodGet, e.base+"/admin/emr", "", ""); code != http.StatusUnauthorized {
		t.Errorf("without a token: %d", code)
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"dev-token", "--scope", "system/Patient.rs", "--client", "reader"}, e.env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := do(t, http.MethodGet, e.base+"/admin/emr", strings.TrimSpace(out.String()), ""); code != http.StatusForbidden {
		t.Errorf("with system/Patient.rs: %d", code)
	}
	code, _, b := do(t, http.MethodPost, e.base+"/admin/emr", e.token, `{"name":"epic-test","base":"https://fhir.example.org/api/FHIR/R4","client_id":"c1","profile":"epic"}`)
	if code != http.StatusCreated || !strings.Contains(string(b), `"notify_token"`) || strings.Contains(string(b), "PRIVATE") {
		t.Fatalf("add: %d %s", code, b)
	}
	for body, want := range map[string]int{
		`{"name":"epic-test","base":"https://fhir.example.org/r4","client_id":"c1"}`:               http.StatusConflict,
		`{"name":"Bad Name","base":"https://fhir.example.org/r4","client_id":"c1"}`:                http.StatusBadRequest,
		`{"name":"ora","base":"https://fhir.example.org/r4","client_id":"c1","profile":"oracle"}`:  http.StatusBadRequest,
		`{"name":"x","base":"https://fhir.example.org/r4","client_id":"c1","key_pem":"not a key"}`: http.StatusBadRequest,
		`{"name":"y","base":"https://fhir.example.org/r4","client_id":"c1","unknown":true}`:        http.StatusBadRequest,
		`{"name":"z","base":"ftp://fhir.example.org/r4","client_id":"c1"}`:                         http.StatusBadRequest,
	} {
		if code, _, b := do(t, http.MethodPost, e.base+"/admin/emr", e.token, body); code != want {
			t.Errorf("add %s: %d %s, want %d", body, code, b, want)
		}
	}
	code, _, b = do(t, http.MethodGet, e.base+"/admin/emr/epic-test/jwks", e.token, "")
	var set jose.JSONWebKeySet
	if code != 200 || json.Unmarshal(b, &set) != nil || len(set.Keys) != 1 || set.Keys[0].Algorithm != "ES384" || !set.Keys[0].IsPublic() {
		t.Errorf("jwks: %d %s", code, b)
	}
	if code, _, b := do(t, http.MethodGet, e.base+"/admin/emr/epic-test", e.token, ""); code != 200 || !strings.Contains(string(b), `"profile":"epic"`) {
		t.Errorf("show: %d %s", code, b)
	}
	if code, _, _ := do(t, http.MethodDelete, e.base+"/admin/emr/epic-test", e.token, ""); code != http.StatusNoContent {
		t.Errorf("remove: %d", code)
	}
	if code, _, _ := do(t, http.MethodGet, e.base+"/admin/emr/epic-test", e.token, ""); code != http.StatusNotFound {
		t.Errorf("show after remove: %d", code)
	}
}

// TestEMREpicProfile: the epic profile's rules come from its profile file: no _sort (the high-water
// mark moves when a type completes), one text attachment with Epic's note type, an Encounter required,
// and a search on Billy's identifier instead of a conditional create. A notification Bundle (R4B
// backport) syncs its focus.
func TestEMREpicProfile(t *testing.T) {
	t.Parallel()
	e := startEHR(t)
	patients, encounters := e.seed(t, 2)
	proxy := newFaultyProxy(t, e.base)
	env := testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1")
	base := startApp(t, env)
	keyFile, clientID := e.registerClient(t)
	var out bytes.Buffer
	if err := run(t.Context(), []string{"emr", "add", "epic", "--base", proxy.srv.URL + "/fhir", "--client-id", clientID, "--key", keyFile, "--profile", "epic"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	_, token, _ := strings.Cut(out.String(), "Authorization: Bearer ")
	token = strings.Fields(token)[0]
	a, err := openApp(t.Context(), env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	svc := a.emr
	ctx := t.Context()
	n, err := svc.Sync(ctx, "epic", emr.SyncOptions{PageSize: 2})
	if err != nil || n.Created != 2+2+4+1+1 {
		t.Fatalf("sync: %+v %v", n, err)
	}
	calls, _ := svc.Calls(ctx, "epic", 1000)
	for _, c := range calls {
		if strings.Contains(c.Target, "_sort") || strings.Contains(c.Target, "_include") {
			t.Errorf("the epic profile asked for %s", c.Target)
		}
	}
	if n, err := svc.Sync(ctx, "epic", emr.SyncOptions{}); err != nil || n.Created+n.Updated != 0 {
		t.Errorf("re-sync: %+v %v", n, err)
	}
	pat, enc := emr.LocalID("epic", "Patient", patients[0]), emr.LocalID("epic", "Encounter", encounters[0])
	post := func(body string) string {
		code, _, b := do(t, http.MethodPost, base+"/fhir/DocumentReference", "", body)
		if code != 201 {
			t.Fatalf("create DocumentReference: %d %s", code, b)
		}
		var doc struct{ ID string }
		_ = json.Unmarshal(b, &doc)
		return doc.ID
	}
	withEnc := post(fmt.Sprintf(`{"resourceType":"DocumentReference","status":"current","subject":{"reference":"Patient/%s"},"context":{"encounter":[{"reference":"Encounter/%s"}]},
		"content":[{"attachment":{"contentType":"application/pdf","data":"JVBERi0="}},{"attachment":{"contentType":"text/plain","data":"SGVsbG8="}},{"attachment":{"contentType":"text/html","data":"PHA+SGk8L3A+"}}]}`, pat, enc))
	noEnc := post(fmt.Sprintf(`{"resourceType":"DocumentReference","status":"current","subject":{"reference":"Patient/%s"},"content":[{"attachment":{"contentType":"text/plain","data":"SGVsbG8="}}]}`, pat))
	var ids []string
	for range 2 {
		id, err := svc.Writeback(ctx, emr.WritebackPayload{EMR: "epic", Type: "DocumentReference", ID: withEnc})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		// The stored remote id is lost: the search on Billy's identifier finds the document.
		if _, err := a.pool.Exec(ctx, `UPDATE emr_writebacks SET remote_id = NULL`); err != nil {
			t.Fatal(err)
		}
	}
	if ids[0] == "" || ids[0] != ids[1] {
		t.Errorf("write-backs: %v", ids)
	}
	code, _, b := do(t, http.MethodGet, e.base+"/fhir/DocumentReference/"+ids[0], e.token, "")
	body := string(b)
	if code != 200 || strings.Count(body, `"attachment"`) != 1 || !strings.Contains(body, `"text/plain"`) || !strings.Contains(body, `"code":"11506-3"`) {
		t.Errorf("the document at the EHR (one text attachment, Epic's note type): %d %s", code, body)
	}
	if _, err := svc.Writeback(ctx, emr.WritebackPayload{EMR: "epic", Type: "DocumentReference", ID: noEnc}); err == nil || !strings.Contains(err.Error(), "needs an Encounter") {
		t.Errorf("a document without an encounter: %v", err)
	}
	var status string
	if err := a.pool.QueryRow(ctx, `SELECT status FROM emr_writebacks WHERE local_id = $1`, noEnc).Scan(&status); err != nil || status != "failed" {
		t.Errorf("write-back without an encounter: %q %v", status, err)
	}

	// A notification Bundle (SubscriptionStatus with a focus).
	code, _, b = do(t, http.MethodPut, e.base+"/fhir/Patient/"+patients[1], e.token, fmt.Sprintf(`{"resourceType":"Patient","id":"%s","name":[{"family":"Renamed"}]}`, patients[1]))
	if code != 200 {
		t.Fatalf("update at the EHR: %d %s", code, b)
	}
	note := fmt.Sprintf(`{"resourceType":"Bundle","type":"history","entry":[{"resource":{"resourceType":"SubscriptionStatus","status":"active","type":"event-notification",
		"notificationEvent":[{"eventNumber":"1","focus":{"reference":"Patient/%s"}}],"subscription":{"reference":"Subscription/s1"}}}]}`, patients[1])
	code, _, b = do(t, http.MethodPost, base+"/emr/epic/notify", token, note)
	if code != 200 || !strings.Contains(string(b), `"updated":1`) {
		t.Errorf("notification Bundle: %d %s", code, b)
	}
	if code, _, b := do(t, http.MethodGet, base+"/fhir/Patient/"+emr.LocalID("epic", "Patient", patients[1]), "", ""); code != 200 || !strings.Contains(string(b), "Renamed") {
		t.Errorf("the notified Patient: %d %s", code, b)
	}
}

// TestEMRWorker: with the worker running, the periodic sync (BILLY_EMR_SYNC_INTERVAL, through the
// outbox and asynq) pulls the EHR's resources, and a DocumentReference written in Billy reaches the
// EHR through the write-back job.
func TestEMRWorker(t *testing.T) {
	t.Parallel()
	e := startEHR(t)
	patients, encounters := e.seed(t, 1)
	env := testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1", "BILLY_EMR_SYNC_INTERVAL", "200ms")
	keyFile, clientID := e.registerClient(t)
	if err := run(t.Context(), []string{"emr", "add", "ehr", "--base", e.base + "/fhir", "--client-id", clientID, "--key", keyFile}, env, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	base := startAppWith(t, env, true)
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for range 600 {
			if ok() {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s did not happen", what)
	}
	pat, enc := emr.LocalID("ehr", "Patient", patients[0]), emr.LocalID("ehr", "Encounter", encounters[0])
	waitFor("the periodic sync", func() bool {
		code, _, _ := do(t, http.MethodGet, base+"/fhir/Encounter/"+enc, "", "")
		return code == 200
	})
	code, _, b := do(t, http.MethodPost, base+"/fhir/DocumentReference", "", fmt.Sprintf(`{"resourceType":"DocumentReference","status":"current",
		"subject":{"reference":"Patient/%s"},"context":{"encounter":[{"reference":"Encounter/%s"}]},"content":[{"attachment":{"contentType":"text/plain","data":"SGVsbG8="}}]}`, pat, enc))
	if code != 201 {
		t.Fatalf("create DocumentReference: %d %s", code, b)
	}
	var doc struct{ ID string }
	_ = json.Unmarshal(b, &doc)
	waitFor("the write-back", func() bool {
		_, _, b := do(t, http.MethodGet, e.base+"/fhir/DocumentReference?identifier="+url.QueryEscape(emr.WritebackSystem+"|"+doc.ID), e.token, "")
		return strings.Contains(string(b), `"fullUrl"`)
	})
}
