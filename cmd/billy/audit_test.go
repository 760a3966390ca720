package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/fhir/rest"
	"github.com/iambilly/billy/internal/benchkit"
	"github.com/iambilly/billy/internal/config"
)

// auditRow is one row of the audit trail, as the tests look at it.
type auditRow struct {
	seq                        int64
	subtype, action, outcome   string
	agents, patients, entities []string
	content                    string
}

func auditPool(t *testing.T, env config.Lookuper) *pgxpool.Pool {
	t.Helper()
	u, _ := env.Lookup("BILLY_DATABASE_URL")
	pool, err := pgxpool.New(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func auditHead(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	var seq int64
	if err := pool.QueryRow(t.Context(), `SELECT seq FROM audit_head`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	return seq
}

// auditRowsAfter are the rows appended after seq, oldest first.
func auditRowsAfter(t *testing.T, pool *pgxpool.Pool, seq int64) []auditRow {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT seq, subtype, action, outcome, agents, patients, entities, content FROM audit_log WHERE seq > $1 ORDER BY seq`, seq)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auditRow, error) {
		var a auditRow
		err := r.Scan(&a.seq, &a.subtype, &a.action, &a.outcome, &a.agents, &a.patients, &a.entities, &a.content)
		return a, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func outcomeOf(status int) string {
	switch {
	case status < 400:
		return "0"
	case status < 500:
		return "4"
	}
	return "8"
}

// auditProbe is the request a test makes for one route of rest.Routes.
type auditProbe struct {
	path   string
	body   string
	header http.Header
}

// auditProbes gives each route of the route table a request (seeded patient a's data, see
// boundaryWorld.seed). A route missing here fails TestAuditEveryRoute: a new route cannot go
// unaudited unnoticed.
var auditProbes = map[string]auditProbe{
	"GET ":                                  {path: ""},
	"POST ":                                 {path: "", body: `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/a"}}]}`},
	"GET ${op}":                             {path: "$export", header: http.Header{"Prefer": {"respond-async"}}},
	"POST ${op}":                            {path: "$x12-835", body: "ISA*"},
	"GET bulkdata/{job}":                    {path: "bulkdata/0c9e4a52-8a2b-4c1e-9f3a-5b6d7e8f9a0b"},
	"DELETE bulkdata/{job}":                 {path: "bulkdata/0c9e4a52-8a2b-4c1e-9f3a-5b6d7e8f9a0b"},
	"GET bulkdata/{job}/{file}":             {path: "bulkdata/0c9e4a52-8a2b-4c1e-9f3a-5b6d7e8f9a0b/Patient-1.ndjson"},
	"GET metadata":                          {path: "metadata"},
	"GET _history":                          {path: "_history?_count=2"},
	"GET {type}":                            {path: "Observation?patient=a"},
	"POST {type}":                           {path: "Observation", body: `{"resourceType":"Observation","status":"final","code":{"text":"new"},"subject":{"reference":"Patient/a"}}`},
	"PUT {type}":                            {path: "Observation?_id=a-obs2", body: `{"resourceType":"Observation","status":"amended","code":{"text":"panel"},"subject":{"reference":"Patient/a"}}`},
	"PATCH {type}":                          {path: "Observation?_id=a-obs2", body: `[{"op":"add","path":"/language","value":"en"}]`, header: http.Header{"Content-Type": {"application/json-patch+json"}}},
	"DELETE {type}":                         {path: "Observation?_id=a-obs2"},
	"POST {type}/_search":                   {path: "Observation/_search", body: "patient=a", header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}},
	"GET {type}/_history":                   {path: "Observation/_history"},
	"GET {type}/${op}":                      {path: "Patient/$export", header: http.Header{"Prefer": {"respond-async"}}},
	"POST {type}/${op}":                     {path: "Observation/$validate", body: `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Observation","status":"final","code":{"text":"x"}}}]}`},
	"GET {type}/{id}":                       {path: "Observation/a-obs"},
	"PUT {type}/{id}":                       {path: "Observation/a-new", body: `{"resourceType":"Observation","id":"a-new","status":"final","code":{"text":"put"},"subject":{"reference":"Patient/a"}}`},
	"PATCH {type}/{id}":                     {path: "Observation/a-obs", body: `[{"op":"add","path":"/language","value":"en"}]`, header: http.Header{"Content-Type": {"application/json-patch+json"}}},
	"DELETE {type}/{id}":                    {path: "Observation/a-new"},
	"GET {type}/{id}/_history":              {path: "Observation/a-obs/_history"},
	"GET {type}/{id}/${op}":                 {path: "Patient/a/$everything"},
	"POST {type}/{id}/${op}":                {path: "Observation/a-obs/$meta-add", body: `{"resourceType":"Parameters","parameter":[{"name":"meta","valueMeta":{"tag":[{"code":"x"}]}}]}`},
	"GET {type}/{id}/{compartment}":         {path: "Patient/a/Observation"},
	"GET {type}/{id}/_history/{vid}":        {path: "Observation/a-obs/_history/1"},
	"GET {type}/{id}/_history/{vid}/${op}":  {path: "Observation/a-obs/_history/1/$meta"},
	"POST {type}/{id}/_history/{vid}/${op}": {path: "Observation/a-obs/_history/1/$meta-add", body: `{"resourceType":"Parameters","parameter":[{"name":"meta","valueMeta":{"tag":[{"code":"y"}]}}]}`},
}

// TestAuditEveryRoute sends a request to every route of the route table and finds its
// AuditEvent: the interaction, the outcome the client was answered, the client.
func TestAuditEveryRoute(t *testing.T) {
	t.Parallel()
	w := newBoundaryWorld(t, false)
	pool := auditPool(t, w.env)
	for _, rt := range rest.Routes {
		key := rt.Method + " " + rt.Pattern
		p, ok := auditProbes[key]
		if !ok {
			t.Errorf("route %s has no probe in auditProbes: add one, so that its AuditEvent is checked", key)
			continue
		}
		before := auditHead(t, pool)
		var body []byte
		if p.body != "" {
			body = []byte(p.body)
		}
		a := w.do(w.admin, rt.Method, p.path, body, p.header)
		rows := auditRowsAfter(t, pool, before)
		if len(rows) == 0 {
			t.Errorf("%s %s (%d): no AuditEvent", rt.Method, p.path, a.status)
			continue
		}
		got := rows[0]
		if got.subtype != rt.Interaction || got.outcome != outcomeOf(a.status) || !slices.Contains(got.agents, "client|demo-app") {
			t.Errorf("%s %s (%d): AuditEvent %s/%s/%v, want interaction %s, outcome %s, client demo-app",
				rt.Method, p.path, a.status, got.subtype, got.outcome, got.agents, rt.Interaction, outcomeOf(a.status))
		}
		readsA := rt.Interaction == rest.IRead || rt.Interaction == rest.IVRead || rt.Interaction == rest.ISearchType ||
			rt.Interaction == rest.IHistoryInstance || rt.Interaction == rest.IHistoryType || strings.Contains(p.path, "$everything")
		if rt.Method == http.MethodGet && a.status == 200 && readsA && !slices.Contains(got.patients, "a") {
			t.Errorf("%s %s: the AuditEvent does not name patient a: %v", rt.Method, p.path, got.patients)
		}
	}
}

// TestAuditEventContent checks what the AuditEvents of reads, searches, writes, Bundles, refusals
// and the authorization server say, and serves them back to an auditor.
func TestAuditEventContent(t *testing.T) {
	t.Parallel()
	w := newBoundaryWorld(t, false)
	pool := auditPool(t, w.env)
	last := func(t *testing.T, before int64, n int) []auditRow {
		t.Helper()
		rows := auditRowsAfter(t, pool, before)
		if len(rows) != n {
			t.Fatalf("%d AuditEvents, want %d: %+v", len(rows), n, rows)
		}
		return rows
	}

	t.Run("read", func(t *testing.T) {
		before := auditHead(t, pool)
		w.do(w.admin, http.MethodGet, "Observation/a-obs", nil, http.Header{rest.PurposeOfUseHeader: {"TREAT, bad value!"}})
		r := last(t, before, 1)[0]
		if r.action != "R" || r.outcome != "0" || !slices.Equal(r.patients, []string{"a"}) || !slices.Equal(r.entities, []string{"Observation/a-obs"}) {
			t.Errorf("read: %+v", r)
		}
		for _, want := range []string{`"purposeOfUse":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"TREAT"}]}]`,
			`"network":{"address":"127.0.0.1","type":"2"}`, `"reference":"Observation/a-obs/_history/1"`} {
			if !strings.Contains(r.content, want) {
				t.Errorf("read AuditEvent lacks %s: %s", want, r.content)
			}
		}
		if strings.Contains(r.content, "bad value") {
			t.Errorf("a malformed purpose of use is recorded: %s", r.content)
		}
	})
	t.Run("search", func(t *testing.T) {
		before := auditHead(t, pool)
		w.do(w.admin, http.MethodGet, "Observation?code:text=glucose&_count=5", nil, nil)
		r := last(t, before, 1)[0]
		q := base64.StdEncoding.EncodeToString([]byte("_count=5&code%3Atext=glucose"))
		if r.subtype != "search-type" || !slices.Equal(r.patients, []string{"a"}) || !strings.Contains(r.content, q) {
			t.Errorf("search: %+v, want the query %s", r, q)
		}
	})
	t.Run("write", func(t *testing.T) {
		before := auditHead(t, pool)
		w.do(w.admin, http.MethodPut, "Condition/a-cond", []byte(`{"resourceType":"Condition","id":"a-cond","subject":{"reference":"Patient/a"},"code":{"text":"changed"}}`), nil)
		r := last(t, before, 1)[0]
		if r.subtype != "update" || r.action != "U" || r.outcome != "0" || !slices.Equal(r.entities, []string{"Condition/a-cond"}) || !strings.Contains(r.content, "Condition/a-cond/_history/2") {
			t.Errorf("update: %+v", r)
		}
	})
	t.Run("refused write", func(t *testing.T) {
		before := auditHead(t, pool)
		a := w.do(w.admin, http.MethodPut, "Condition/a-cond", []byte(`{"resourceType":"Condition","id":"a-cond","subject":{"reference":"Patient/a"},"code":{"text":"x"},"bogus":1}`), nil)
		r := last(t, before, 1)[0]
		if a.status != 400 || r.subtype != "update" || r.outcome != "4" || !strings.Contains(r.content, `"outcomeDesc":"HTTP 400"`) {
			t.Errorf("invalid update (%d): %+v", a.status, r)
		}
	})
	t.Run("unauthenticated", func(t *testing.T) {
		before := auditHead(t, pool)
		a := w.do("not-a-token", http.MethodGet, "Patient/a", nil, nil)
		r := last(t, before, 1)[0]
		if a.status != 401 || r.outcome != "4" || len(r.agents) != 0 || !slices.Equal(r.patients, []string{"a"}) {
			t.Errorf("unauthenticated read (%d): %+v", a.status, r)
		}
	})
	t.Run("batch", func(t *testing.T) {
		before := auditHead(t, pool)
		w.do(w.admin, http.MethodPost, "", []byte(`{"resourceType":"Bundle","type":"batch","entry":[
			{"request":{"method":"GET","url":"Patient/a"}},
			{"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","status":"final","code":{"text":"b1"},"subject":{"reference":"Patient/a"}}},
			{"request":{"method":"GET","url":"Nope/1"}}]}`), nil)
		rows := last(t, before, 4)
		var got []string
		for _, r := range rows {
			got = append(got, r.subtype+":"+r.outcome)
		}
		// The create commits with its own AuditEvent; the rest are recorded before the answer.
		if !slices.Equal(got, []string{"create:0", "batch:0", "read:0", "unknown:4"}) {
			t.Errorf("batch events: %v", got)
		}
	})
	t.Run("transaction", func(t *testing.T) {
		before := auditHead(t, pool)
		w.do(w.admin, http.MethodPost, "", []byte(`{"resourceType":"Bundle","type":"transaction","entry":[
			{"request":{"method":"PUT","url":"Observation/a-t1"},"resource":{"resourceType":"Observation","id":"a-t1","status":"final","code":{"text":"t1"},"subject":{"reference":"Patient/a"}}},
			{"request":{"method":"GET","url":"Patient/a"}}]}`), nil)
		rows := last(t, before, 3)
		var got []string
		for _, r := range rows {
			got = append(got, r.subtype+":"+r.outcome)
		}
		if !slices.Equal(got, []string{"batch:0", "update:0", "read:0"}) || !slices.Contains(rows[1].entities, "Observation/a-t1") {
			t.Errorf("transaction events: %v %+v", got, rows)
		}
	})
	t.Run("token refused", func(t *testing.T) {
		before := auditHead(t, pool)
		resp, err := http.PostForm(w.base+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"nobody"}, "client_secret": {"x"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		rows := last(t, before, 1)
		if rows[0].subtype != "token" || rows[0].outcome != "4" || !strings.Contains(rows[0].content, `"code":"110114"`) {
			t.Errorf("refused token: %+v", rows[0])
		}
	})

	auditor := w.mint("user/AuditEvent.rs", "")
	t.Run("search the trail", func(t *testing.T) {
		if a := w.do(w.admin, http.MethodGet, "AuditEvent?patient=a", nil, nil); a.status != http.StatusForbidden {
			t.Errorf("user/*.cruds reads the audit trail: %d", a.status)
		}
		if a := w.do(w.tokens["patient/*.rs"], http.MethodGet, "AuditEvent?patient=a", nil, nil); a.status != http.StatusForbidden {
			t.Errorf("patient/*.rs reads the audit trail: %d", a.status)
		}
		if a := w.do(w.admin, http.MethodPost, "AuditEvent", []byte(`{"resourceType":"AuditEvent"}`), nil); a.status != http.StatusForbidden && a.status != http.StatusMethodNotAllowed {
			t.Errorf("POST AuditEvent: %d", a.status)
		}
		a := w.do(auditor, http.MethodGet, "AuditEvent?patient=Patient/a&action=U&outcome=0&agent=demo-app&date=ge2020-01-01", nil, nil)
		var b struct {
			Entry []struct {
				FullURL  string
				Resource struct {
					ID      string
					Subtype []struct{ Code string }
				}
			}
		}
		if err := json.Unmarshal(a.body, &b); err != nil || a.status != 200 || len(b.Entry) == 0 {
			t.Fatalf("AuditEvent search: %d %.300s", a.status, a.body)
		}
		for _, e := range b.Entry {
			if c := e.Resource.Subtype[0].Code; c != "update" && c != "patch" && c != "batch" && c != "create" && c != "operation" {
				t.Errorf("action=U matched a %s", c)
			}
		}
		if r := w.do(auditor, http.MethodGet, "AuditEvent/"+b.Entry[0].Resource.ID, nil, nil); r.status != 200 || !bytes.Contains(r.body, []byte(`"resourceType":"AuditEvent"`)) {
			t.Errorf("AuditEvent read: %d %.200s", r.status, r.body)
		}
		if r := w.do(auditor, http.MethodGet, "AuditEvent?name=x", nil, nil); r.status != 400 {
			t.Errorf("an unsupported parameter: %d", r.status)
		}
	})
	t.Run("access log", func(t *testing.T) {
		if a := w.do(w.admin, http.MethodGet, "Patient/a/$access-log", nil, nil); a.status != http.StatusForbidden {
			t.Errorf("$access-log without the audit scope: %d", a.status)
		}
		auditorRead := w.mint("user/AuditEvent.rs user/Patient.rs", "")
		a := w.do(auditorRead, http.MethodGet, "Patient/a/$access-log", nil, nil)
		if a.status != 200 || !bytes.Contains(a.body, []byte(`{"name":"client","valueString":"demo-app"}`)) || !bytes.Contains(a.body, []byte(`{"name":"interaction","valueCode":"read"}`)) {
			t.Errorf("$access-log: %d %.500s", a.status, a.body)
		}
		def := w.do(w.admin, http.MethodGet, "OperationDefinition/Patient-access-log", nil, nil)
		if def.status != 200 {
			t.Errorf("the OperationDefinition of $access-log: %d", def.status)
		}
	})
	t.Run("verify and export", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(t.Context(), []string{"audit", "verify"}, w.env, &out, io.Discard); err != nil || !strings.Contains(out.String(), "verified") {
			t.Fatalf("verify: %v %s", err, out.String())
		}
		out.Reset()
		if err := run(t.Context(), []string{"audit", "export", "--since", "2000-01-01"}, w.env, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if n := auditHead(t, pool); int64(len(lines)) != n {
			t.Errorf("export wrote %d lines, the trail has %d rows", len(lines), n)
		}
		for _, l := range lines {
			if !json.Valid([]byte(l)) || !strings.HasPrefix(l, `{"resourceType":"AuditEvent"`) {
				t.Fatalf("export line: %.200s", l)
			}
		}
	})
}

// TestAuditVerifyCommandNamesTamperedRow: billy audit verify fails naming the row changed with SQL.
func TestAuditVerifyCommandNamesTamperedRow(t *testing.T) {
	t.Parallel()
	env := testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1")
	base := startApp(t, env)
	for i := range 5 {
		get(t, base+"/fhir/Patient?_count="+strconv.Itoa(i+1))
	}
	pool := auditPool(t, env)
	var id string
	if err := pool.QueryRow(t.Context(), `SELECT id FROM audit_log WHERE seq = 3`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(t.Context(), `SET LOCAL session_replication_role = replica; UPDATE audit_log SET outcome = '4' WHERE seq = 3`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = run(t.Context(), []string{"audit", "verify"}, env, &out, io.Discard)
	if err == nil || !strings.Contains(out.String(), "row 3 (AuditEvent/"+id+") changed") {
		t.Errorf("verify after an UPDATE: %v\n%s", err, out.String())
	}
}

// TestAuditSurvivesKill kills a serving billy (SIGKILL) right after it answered reads: every read
// answered has its AuditEvent once the trail is read again, and the chain verifies.
func TestAuditSurvivesKill(t *testing.T) {
	t.Parallel()
	addr, err := benchkit.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	env := envMap(t, "BILLY_AUTH", "none", "BILLY_DEV", "1")
	env["BILLY_ADDR"], env["BILLY_BASE_URL"] = addr, "http://"+addr
	p := startProcess(t, "serve --worker=false", env)
	base := "http://" + addr + "/fhir"
	waitFor(t, "billy serve", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	req, _ := http.NewRequest(http.MethodPut, base+"/Patient/k1", strings.NewReader(`{"resourceType":"Patient","id":"k1"}`))
	req.Header.Set("Content-Type", "application/fhir+json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("create: %v %v", resp, err)
	}
	const reads = 40
	answered := 0
	for i := range reads {
		resp, err := http.Get(base + "/Patient/k1?n=" + strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			answered++
		}
	}
	if err := p.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = p.Wait()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// Restarted: the trail, read back through the API.
	lk := lookuper(env)
	restarted := startApp(t, lk)
	var bundle struct{ Entry []json.RawMessage }
	c := &http.Client{}
	if err := benchkit.GetJSON(ctx, c, restarted+"/fhir/AuditEvent?subtype=read&entity=Patient/k1&_count=1000", &bundle); err != nil {
		t.Fatal(err)
	}
	if answered != reads || len(bundle.Entry) != answered {
		t.Errorf("%d reads answered, %d read AuditEvents after the kill", answered, len(bundle.Entry))
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"audit", "verify"}, lk, &out, io.Discard); err != nil {
		t.Errorf("verify after the kill: %v %s", err, out.String())
	}
}
