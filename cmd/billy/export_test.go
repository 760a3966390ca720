package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/fhir/resource"
)

// The Bulk Data Access IG's checks, against a whole Billy with its worker: kick-off, status,
// manifest, download with and without a token, cancel, _since, _type, _typeFilter, every line
// valid FHIR, two patients and every type seeded. The patient boundary of exports is attacked in
// TestExportBoundary; TestPatientBoundary attacks the status and file URLs of another patient's
// export through the route table.

type exportManifest struct {
	TransactionTime     string
	Request             string
	RequiresAccessToken bool
	Output              []exportFile
	Error               []exportFile
}

type exportFile struct {
	Type  string
	URL   string
	Count int
}

// raw sends a request to an absolute URL.
func (w *boundaryWorld) raw(token, method, u string, h http.Header) (*http.Response, []byte) {
	w.t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// kickoff starts an export at path (under the FHIR base) and returns its status URL, or fails
// the test.
func (w *boundaryWorld) kickoff(token, path string, h http.Header) string {
	w.t.Helper()
	resp, body := w.kickoffRaw(token, path, h)
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Content-Location") == "" {
		w.t.Fatalf("kick-off %s: %d %q %s", path, resp.StatusCode, resp.Header.Get("Content-Location"), body)
	}
	return resp.Header.Get("Content-Location")
}

func (w *boundaryWorld) kickoffRaw(token, path string, h http.Header) (*http.Response, []byte) {
	w.t.Helper()
	hh := http.Header{"Prefer": {"respond-async"}, "Accept": {"application/fhir+json"}}
	for k, vs := range h {
		hh[k] = vs
	}
	return w.raw(token, http.MethodGet, w.base+"/fhir/"+path, hh)
}

// await polls a status URL until the export is complete and returns its manifest.
func (w *boundaryWorld) await(token, status string) exportManifest {
	w.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		resp, body := w.raw(token, http.MethodGet, status, nil)
		switch resp.StatusCode {
		case http.StatusAccepted:
			if resp.Header.Get("X-Progress") == "" || resp.Header.Get("Retry-After") == "" {
				w.t.Errorf("in-progress status without X-Progress or Retry-After: %v", resp.Header)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		case http.StatusOK:
			var m exportManifest
			if err := json.Unmarshal(body, &m); err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || resp.Header.Get("Expires") == "" {
				w.t.Fatalf("manifest: %v %v %s", err, resp.Header, body)
			}
			return m
		default:
			w.t.Fatalf("status %s: %d %s", status, resp.StatusCode, body)
		}
	}
	w.t.Fatalf("export %s did not complete", status)
	return exportManifest{}
}

// download returns the lines of every output file of m, by type, checking each file's count.
func (w *boundaryWorld) download(token string, m exportManifest) map[string][]string {
	w.t.Helper()
	out := map[string][]string{}
	for _, f := range m.Output {
		resp, body := w.raw(token, http.MethodGet, f.URL, http.Header{"Accept": {"application/fhir+ndjson"}})
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/fhir+ndjson" {
			w.t.Fatalf("download %s: %d %v %.200s", f.URL, resp.StatusCode, resp.Header, body)
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 16<<20)
		n := 0
		for sc.Scan() {
			out[f.Type] = append(out[f.Type], sc.Text())
			n++
		}
		if n != f.Count {
			w.t.Errorf("%s: %d lines, manifest count %d", f.URL, n, f.Count)
		}
	}
	return out
}

// exportAll kicks off an export, waits for it and downloads it.
func (w *boundaryWorld) exportAll(token, path string) (exportManifest, map[string][]string) {
	w.t.Helper()
	m := w.await(token, w.kickoff(token, path, nil))
	return m, w.download(token, m)
}

func (w *boundaryWorld) dbCounts() map[string]int {
	w.t.Helper()
	dbURL, _ := w.env.Lookup("BILLY_DATABASE_URL")
	db, err := pgx.Connect(w.t.Context(), dbURL)
	if err != nil {
		w.t.Fatal(err)
	}
	defer db.Close(w.t.Context())
	rows, err := db.Query(w.t.Context(), `SELECT type, count(*) FROM resources WHERE content IS NOT NULL GROUP BY type`)
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var typ string
		var n int
		if err := rows.Scan(&typ, &n); err != nil {
			w.t.Fatal(err)
		}
		out[typ] = n
	}
	return out
}

func TestBulkExport(t *testing.T) {
	t.Parallel()
	w := newBoundaryWorldWith(t, true, true, "BILLY_EXPORT_FILE_RESOURCES", "3")
	payer := w.mintAs("payer-app", "payer-app", "system/*.rs")

	// Kick-off refusals: each an OperationOutcome naming what is wrong.
	for _, tc := range []struct {
		path   string
		h      http.Header
		status int
		want   string
	}{
		{"$export", http.Header{"Prefer": {""}}, 400, "respond-async"},
		{"$export?_outputFormat=text/csv", nil, 400, "_outputFormat"},
		{"$export?_since=yesterday", nil, 400, "_since"},
		{"$export?_type=Nope", nil, 400, "Nope"},
		{"$export?_elements=id", nil, 400, "_elements"},
		{"$export?_typeFilter=Observation?_count=2", nil, 400, "_count"},
		{"$export?_typeFilter=Observation?nonsense=1", nil, 400, "nonsense"},
		{"Patient/$export?_type=Organization", nil, 400, "compartment"},
		{"Group/nope/$export", nil, 404, "Group/nope"},
		{"Observation/$export", nil, 404, "$export"},
	} {
		resp, body := w.kickoffRaw(payer, tc.path, tc.h)
		if resp.StatusCode != tc.status || !bytes.Contains(body, []byte("OperationOutcome")) || !bytes.Contains(body, []byte(tc.want)) {
			t.Errorf("%s: %d %s, want %d naming %s", tc.path, resp.StatusCode, body, tc.status, tc.want)
		}
	}

	// Everything, by a Backend Services token: every type stored, every resource once, in files
	// of at most 3, every line valid FHIR.
	m, lines := w.exportAll(payer, "$export")
	if _, err := time.Parse(time.RFC3339Nano, m.TransactionTime); err != nil || !m.RequiresAccessToken ||
		m.Request != w.base+"/fhir/$export" || len(m.Error) != 0 {
		t.Errorf("manifest: %+v", m)
	}
	want := w.dbCounts()
	got := map[string]int{}
	for typ, ls := range lines {
		got[typ] = len(ls)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("exported by type %v, stored %v", got, want)
	}
	if len(want) < 15 {
		t.Errorf("only %d types seeded", len(want))
	}
	for _, f := range m.Output {
		if f.Count > 3 {
			t.Errorf("%s holds %d resources, limit 3", f.URL, f.Count)
		}
	}
	v, err := resource.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for typ, ls := range lines {
		for _, l := range ls {
			var r struct{ ResourceType, ID string }
			if err := json.Unmarshal([]byte(l), &r); err != nil || r.ResourceType != typ {
				t.Fatalf("%s line %.100s: %v", typ, l, err)
			}
			if err := v.Validate([]byte(l)); err != nil {
				t.Errorf("%s/%s is not valid FHIR: %v", typ, r.ID, err)
			}
			if seen[typ+"/"+r.ID] {
				t.Errorf("%s/%s exported twice", typ, r.ID)
			}
			seen[typ+"/"+r.ID] = true
		}
	}

	// Files need the requester's token: none is 401, another client's (or another user's of the
	// same client) 404; the status likewise.
	f := m.Output[0].URL
	if resp, _ := w.raw("", http.MethodGet, f, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("download without a token: %d", resp.StatusCode)
	}
	for _, other := range []string{w.mintAs("other-app", "other-app", "system/*.rs"), w.mintAs("payer-app", "someone-else", "user/*.rs"), w.admin} {
		if resp, body := w.raw(other, http.MethodGet, f, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("download with another requester's token: %d %s", resp.StatusCode, body)
		}
	}

	// _type and _typeFilter (a filter per type; several for one type are ORed).
	_, lines = w.exportAll(payer, "$export?_type=Patient,Observation,Claim&_typeFilter="+url.QueryEscape("Observation?code:text=glucose,Observation?code:text=panel,Claim?status=active"))
	if keys := sortedKeys(lines); fmt.Sprint(keys) != "[Observation Patient]" {
		t.Errorf("_type with filters exported %v", keys)
	}
	if n := len(lines["Observation"]); n != 4 { // a-obs, a-obs2, b-obs, b-obs2
		t.Errorf("%d Observations match the filters, want 4: %v", n, lines["Observation"])
	}

	// _since: only what changed after the last export's transactionTime.
	if a := w.do(w.admin, http.MethodPut, "Observation/a-obs", []byte(`{"resourceType":"Observation","id":"a-obs","status":"amended","code":{"text":"glucose"},"subject":{"reference":"Patient/a"}}`), nil); a.status != 200 {
		t.Fatalf("update: %d %s", a.status, a.body)
	}
	_, lines = w.exportAll(payer, "$export?_since="+url.QueryEscape(m.TransactionTime))
	if fmt.Sprint(sortedKeys(lines)) != "[Observation]" || len(lines["Observation"]) != 1 || !strings.Contains(lines["Observation"][0], `"amended"`) {
		t.Errorf("_since exported %v", lines)
	}

	// Lenient handling: an unsupported parameter is reported in the error file.
	st := w.kickoff(payer, "$export?_type=Patient&_elements=id", http.Header{"Prefer": {"respond-async, handling=lenient"}})
	lm := w.await(payer, st)
	if len(lm.Error) != 1 {
		t.Fatalf("lenient manifest: %+v", lm)
	}
	if resp, body := w.raw(payer, http.MethodGet, lm.Error[0].URL, nil); resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"OperationOutcome"`)) || !bytes.Contains(body, []byte("_elements")) {
		t.Errorf("error file: %d %s", resp.StatusCode, body)
	}

	// Group: its members' compartments only.
	_, lines = w.exportAll(payer, "Group/a-grp/$export")
	for typ, ls := range lines {
		for _, l := range ls {
			if strings.Contains(l, bMarker) || (typ != "Patient" && !strings.Contains(l, `"Patient/a"`)) {
				t.Errorf("Group a-grp exported %s: %.200s", typ, l)
			}
		}
	}
	if len(lines["Patient"]) != 1 || len(lines["Claim"]) != 1 {
		t.Errorf("Group a-grp: %d Patients, %d Claims", len(lines["Patient"]), len(lines["Claim"]))
	}

	// Cancel: the status and the files are gone.
	done := w.kickoff(payer, "$export?_type=Patient", nil)
	dm := w.await(payer, done)
	for _, u := range []string{done, w.kickoff(payer, "$export", nil)} {
		if resp, body := w.raw(payer, http.MethodDelete, u, nil); resp.StatusCode != http.StatusAccepted {
			t.Errorf("cancel %s: %d %s", u, resp.StatusCode, body)
		}
		if resp, _ := w.raw(payer, http.MethodGet, u, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("status after cancel: %d", resp.StatusCode)
		}
	}
	if resp, _ := w.raw(payer, http.MethodGet, dm.Output[0].URL, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("file after cancel: %d", resp.StatusCode)
	}
}

// mintAs signs a token for a client and subject.
func (w *boundaryWorld) mintAs(client, sub, scope string) string {
	w.t.Helper()
	var out bytes.Buffer
	if err := run(w.t.Context(), []string{"dev-token", "--client", client, "--sub", sub, "--scope", scope}, w.env, &out, io.Discard); err != nil {
		w.t.Fatalf("dev-token: %v", err)
	}
	return strings.TrimSpace(out.String())
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestExportBoundary: patient a's tokens export the same data whether or not patient b's records
// exist, at every level and with filters aimed at b; none of it carries b's marker.
func TestExportBoundary(t *testing.T) {
	t.Parallel()
	both, onlyA := newBoundaryWorldWith(t, true, true), newBoundaryWorldWith(t, false, true)
	paths := []string{"$export", "Patient/$export", "Group/a-grp/$export", "$export?_type=Observation,Binary,Task,Provenance",
		"$export?_typeFilter=" + url.QueryEscape("Observation?performer:Patient.name=Famb"),
		"$export?_typeFilter=" + url.QueryEscape("Patient?_has:Observation:subject:code:text=glucose")}
	normalize := func(w *boundaryWorld, lines map[string][]string) string {
		var all []string
		for _, ls := range lines {
			for _, l := range ls {
				var v map[string]any
				_ = json.Unmarshal([]byte(strings.ReplaceAll(l, w.base, "BASE")), &v)
				if meta, ok := v["meta"].(map[string]any); ok {
					delete(meta, "lastUpdated")
				}
				b, _ := json.Marshal(v)
				all = append(all, string(b))
			}
		}
		slices.Sort(all)
		return strings.Join(all, "\n")
	}
	for name := range both.tokens {
		for _, p := range paths {
			_, got := both.exportAll(both.tokens[name], p)
			_, want := onlyA.exportAll(onlyA.tokens[name], p)
			g, wn := normalize(both, got), normalize(onlyA, want)
			if strings.Contains(g, bMarker) {
				t.Errorf("%s %s: b's data exported", name, p)
			}
			if g != wn {
				t.Errorf("%s %s exports differently when b's records exist:\n with b:    %.600s\n without b: %.600s", name, p, g, wn)
			}
			if g == "" {
				t.Errorf("%s %s exported nothing", name, p)
			}
		}
	}
	// b's group is outside a's reach: refused in both worlds.
	for _, w := range []*boundaryWorld{both, onlyA} {
		if resp, body := w.kickoffRaw(w.tokens["patient/*.rs"], "Group/b-grp/$export", nil); resp.StatusCode != 403 && resp.StatusCode != 404 {
			t.Errorf("a's token exports b's Group: %d %s", resp.StatusCode, body)
		}
	}
	// b's own export: a's tokens reach neither its status nor its files.
	bTok := both.mint("patient/*.rs", "b")
	bm := both.await(bTok, both.kickoff(bTok, "Patient/$export", nil))
	for name, tok := range both.tokens {
		for _, f := range bm.Output {
			if resp, body := both.raw(tok, http.MethodGet, f.URL, nil); resp.StatusCode != http.StatusNotFound || bytes.Contains(body, []byte(bMarker)) {
				t.Errorf("%s downloads b's %s: %d", name, f.URL, resp.StatusCode)
			}
		}
	}
}

// TestExportWorkerKilled kills the worker process (SIGKILL) in the middle of an export, while it
// is recording a file, starts another, and checks that the export completes with every resource
// exactly once, continuing after the files recorded before the kill (their blobs unchanged).
func TestExportWorkerKilled(t *testing.T) {
	t.Parallel()
	env := envMap(t, "BILLY_AUTH", "none", "BILLY_DEV", "1")
	env["BILLY_EXPORT_FILE_RESOURCES"] = "10"
	c := fhirClient{t, startAppWith(t, lookuper(env), false)} // API, relay and export maintenance
	const patients = 4000
	for i := 0; i < patients; i += 500 {
		var entries []string
		for j := i; j < i+500; j++ {
			entries = append(entries, fmt.Sprintf(`{"resource":{"resourceType":"Patient","id":"p%d","name":[{"family":"F%d"}]},"request":{"method":"PUT","url":"Patient/p%d"}}`, j, j, j))
		}
		code, _, out := c.do(http.MethodPost, "", strings.NewReader(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries, ",")+`]}`), "application/fhir+json")
		if code != http.StatusOK {
			t.Fatalf("seed: %d %v", code, out)
		}
	}
	db, err := pgx.Connect(t.Context(), env["BILLY_DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(t.Context())
	worker := startProcess(t, "worker", env)
	w := &boundaryWorld{t: t, base: c.base}
	status := w.kickoff("", "$export?_type=Patient", nil)

	files := func() map[string]string {
		rows, err := db.Query(t.Context(), `SELECT name, blob_id FROM bulk_export_files`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for rows.Next() {
			var n, b string
			if err := rows.Scan(&n, &b); err != nil {
				t.Fatal(err)
			}
			out[n] = b
		}
		return out
	}
	for deadline := time.Now().Add(time.Minute); len(files()) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no file was written")
		}
	}
	// Hold the file table: the worker writes its next file into the blob store, then blocks
	// recording it. Kill it there.
	lock, err := db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(t.Context(), `LOCK TABLE bulk_export_files IN SHARE ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	rows, _ := lock.Query(t.Context(), `SELECT name, blob_id FROM bulk_export_files`)
	for rows.Next() {
		var n, b string
		_ = rows.Scan(&n, &b)
		before[n] = b
	}
	if len(before) == 0 || len(before) >= patients/10 {
		t.Fatalf("%d files before the kill: not in the middle", len(before))
	}
	// A lock on the table waited for, not pg_stat_activity's query text: a connection that has not
	// prepared the INSERT yet waits while parsing it, and still shows its previous statement.
	blocked := func() bool {
		var n int
		err := db.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'bulk_export_files'::regclass`).Scan(&n)
		return err == nil && n > 0
	}
	for deadline := time.Now().Add(time.Minute); !blocked(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			rows, _ := db.Query(t.Context(), `SELECT coalesce(wait_event_type, '') || ' ' || coalesce(wait_event, '') || ' ' || state || ': ' || left(query, 160) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
			sessions, _ := pgx.CollectRows(rows, pgx.RowTo[string])
			var job string
			_ = db.QueryRow(t.Context(), `SELECT status || ' next_type=' || next_type || ' after_rid=' || after_rid || ' exported=' || exported FROM bulk_exports`).Scan(&job)
			t.Fatalf("timed out waiting for the worker to block recording a file; export %s; sessions:\n%s", job, strings.Join(sessions, "\n"))
		}
	}
	if err := worker.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = worker.Wait()
	if err := lock.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "worker", env)
	m := w.await("", status)
	lines := w.download("", m)
	ids := map[string]int{}
	for _, l := range lines["Patient"] {
		var r struct{ ID string }
		_ = json.Unmarshal([]byte(l), &r)
		ids[r.ID]++
	}
	if len(ids) != patients || len(lines["Patient"]) != patients {
		t.Errorf("%d Patients exported (%d distinct), want %d", len(lines["Patient"]), len(ids), patients)
	}
	after := files()
	for n, b := range before {
		if after[n] != b {
			t.Errorf("file %s was rewritten after the kill (blob %s, then %s): the export restarted instead of resuming", n, b, after[n])
		}
	}
	if len(after) != patients/10 {
		t.Errorf("%d files, want %d", len(after), patients/10)
	}
}
