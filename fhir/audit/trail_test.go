package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/fhir/audit"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/internal/pg/pgtest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func newTrail(t *testing.T) (*audit.Trail, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.NewPool(t)
	return newTrailOn(pool), pool
}

func newTrailOn(pool *pgxpool.Pool) *audit.Trail {
	c := &clock{t: time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC)}
	return audit.New(pool, c.now)
}

func pgtestPool(tb testing.TB) *pgxpool.Pool { return pgtest.NewPool(tb) }

func readEvent(i int) *audit.Event {
	return &audit.Event{Kind: audit.KindREST, Subtype: "read", Action: audit.ActionRead, Outcome: audit.OutcomeSuccess,
		Agent:    audit.Agent{ClientID: "app1", User: "Practitioner/pr1", Subject: "alice", Address: "10.0.0.7"},
		Entities: []audit.Entity{{Type: "Observation", ID: fmt.Sprintf("obs%d", i), Version: 1}},
		Patients: []string{fmt.Sprintf("p%d", i%3)}}
}

func record(t *testing.T, tr *audit.Trail, n int) {
	t.Helper()
	for i := range n {
		if err := tr.Record(t.Context(), readEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// tamper runs SQL as someone who owns the database (a superuser bypassing the append-only
// trigger), the attacker the chain must catch.
func tamper(t *testing.T, pool *pgxpool.Pool, sql string) {
	t.Helper()
	err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		_, err := tx.Exec(t.Context(), sql)
		return err
	})
	if err != nil {
		t.Fatalf("tamper %q: %v", sql, err)
	}
}

func TestVerifyCleanChain(t *testing.T) {
	t.Parallel()
	tr, _ := newTrail(t)
	rep, err := tr.Verify(t.Context())
	if err != nil || rep.Problem != nil || rep.Rows != 0 {
		t.Fatalf("empty trail: %+v %v", rep, err)
	}
	record(t, tr, 5)
	rep, err = tr.Verify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem != nil || rep.Rows != 5 || rep.HeadSeq != 5 || len(rep.HeadHash) != 64 {
		t.Fatalf("clean trail: %+v", rep)
	}
}

// TestTamper changes, removes and inserts rows with SQL: Verify names the first row at fault.
func TestTamper(t *testing.T) {
	t.Parallel()
	forge := `INSERT INTO audit_log SELECT seq + 1, id || 'x', recorded, action, outcome, subtype, agents, patients, entities, content, hash, hash FROM audit_log WHERE seq = 6`
	for _, tc := range []struct {
		name     string
		sql      string
		kind     string
		seq      int64
		detailed string
	}{
		{"content changed", `UPDATE audit_log SET content = replace(content, 'obs2', 'obs9') WHERE seq = 3`, "changed", 3, "content"},
		{"patients changed", `UPDATE audit_log SET patients = '{}' WHERE seq = 4`, "changed", 4, "content"},
		{"recorded changed", `UPDATE audit_log SET recorded = recorded - interval '1 day' WHERE seq = 2`, "changed", 2, "content"},
		{"hash rewritten", `UPDATE audit_log SET hash = sha256(hash) WHERE seq = 2`, "changed", 2, ""},
		{"row removed", `DELETE FROM audit_log WHERE seq = 3`, "removed", 3, "missing"},
		{"last row removed", `DELETE FROM audit_log WHERE seq = 6`, "removed", 6, "end"},
		{"first row removed", `DELETE FROM audit_log WHERE seq = 1`, "removed", 1, "missing"},
		{"row inserted after the head", forge, "inserted", 7, "outside"},
		{"row inserted by renumbering", `UPDATE audit_log SET seq = -seq WHERE seq >= 4; UPDATE audit_log SET seq = 1 - seq WHERE seq < 0; ` +
			`INSERT INTO audit_log SELECT 4, 'forged', recorded, action, outcome, subtype, agents, patients, entities, content, prev_hash, hash FROM audit_log WHERE seq = 3`, "inserted", 4, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr, pool := newTrail(t)
			record(t, tr, 6)
			tamper(t, pool, tc.sql)
			rep, err := tr.Verify(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Problem == nil {
				t.Fatalf("the chain verifies after %q", tc.sql)
			}
			if rep.Problem.Kind != tc.kind || rep.Problem.Seq != tc.seq || !strings.Contains(rep.Problem.String(), tc.detailed) {
				t.Errorf("problem %q, want %s at row %d", rep.Problem, tc.kind, tc.seq)
			}
		})
	}
}

// TestAppendOnlyForTheAPIRole: the role the API runs as (a member of billy_api) may insert and
// read, never update or delete; and the trigger refuses changes even to the owner.
func TestAppendOnlyForTheAPIRole(t *testing.T) {
	t.Parallel()
	tr, pool := newTrail(t)
	record(t, tr, 2)
	// asAPI runs sql as billy_api, in a transaction rolled back whatever happens.
	errRollback := errors.New("rollback")
	asAPI := func(sql string) error {
		var stmtErr error
		err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(t.Context(), `SET LOCAL ROLE billy_api`); err != nil {
				return err
			}
			_, stmtErr = tx.Exec(t.Context(), sql)
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			return err
		}
		return stmtErr
	}
	for _, sql := range []string{
		`UPDATE audit_log SET outcome = '0' WHERE seq = 1`,
		`DELETE FROM audit_log WHERE seq = 1`,
		`TRUNCATE audit_log`,
		`ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update`,
		`UPDATE audit_head SET seq = 0`, // allowed as such, but...
	} {
		err := asAPI(sql)
		if strings.HasPrefix(sql, "UPDATE audit_head") {
			if err != nil {
				t.Errorf("the API role moves the head: %v", err)
			}
			continue
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s as billy_api: %v, want insufficient_privilege (42501)", sql, err)
		}
	}
	if err := asAPI(`SELECT count(*) FROM audit_log`); err != nil {
		t.Errorf("the API role reads the trail: %v", err)
	}
	// The API role appends through the chain.
	err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), `SET LOCAL ROLE billy_api`); err != nil {
			return err
		}
		_, err := tr.Append(t.Context(), tx, []*audit.Event{readEvent(9)})
		return err
	})
	if err != nil {
		t.Errorf("the API role appends: %v", err)
	}
	// Even the superuser's UPDATE meets the trigger.
	if _, err := pool.Exec(t.Context(), `UPDATE audit_log SET outcome = '8' WHERE seq = 1`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("UPDATE by the owner: %v, want the append-only trigger", err)
	}
}

// TestWriterGroupCommit: many concurrent writers, and appends in write transactions moving the
// chain under the writer's feet (it appends optimistically from where its last batch ended): one
// gapless chain.
func TestWriterGroupCommit(t *testing.T) {
	t.Parallel()
	tr, pool := newTrail(t)
	w := tr.NewWriter(false)
	var wg sync.WaitGroup
	errs := make(chan error, 220)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 20 {
			errs <- pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
				_, err := tr.Append(context.Background(), tx, []*audit.Event{readEvent(1000 + i)})
				return err
			})
		}
	}()
	for g := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				errs <- w.Record(context.Background(), readEvent(g*10+i))
			}
		}()
	}
	wg.Wait()
	w.Close()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Record(t.Context(), readEvent(0)); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Record after Close: %v", err)
	}
	rep, err := tr.Verify(t.Context())
	if err != nil || rep.Problem != nil || rep.Rows != 220 {
		t.Fatalf("after concurrent appends: %+v %v", rep, err)
	}
}

// TestEventsAreValidAuditEvents: every kind of event is a valid R4 AuditEvent.
func TestEventsAreValidAuditEvents(t *testing.T) {
	t.Parallel()
	v, err := resource.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC)
	for name, ev := range map[string]*audit.Event{
		"read": readEvent(1),
		"search": {Kind: audit.KindREST, Subtype: "search-type", Action: audit.ActionRead, Outcome: audit.OutcomeSuccess,
			Entities: []audit.Entity{{Type: "Patient", Query: "name=smith&_count=10"}}, Patients: []string{"a", "b"},
			PurposeOfUse: []string{"TREAT"}, Agent: audit.Agent{ClientID: "app"}},
		"refused": {Kind: audit.KindREST, Subtype: "read", Action: audit.ActionRead, Outcome: audit.OutcomeMinor, OutcomeDesc: "HTTP 403"},
		"operation": {Kind: audit.KindREST, Subtype: "operation", Action: audit.ActionExecute, Outcome: audit.OutcomeSuccess,
			Entities: []audit.Entity{{Type: "Patient", ID: "p1", Description: "$everything"}}},
		"login":    {Kind: audit.KindAuth, Subtype: "login", Action: audit.ActionExecute, Outcome: audit.OutcomeMinor, OutcomeDesc: "bad password", Agent: audit.Agent{Subject: "bob", Address: "::1"}},
		"pipeline": {Kind: audit.KindPipeline, Subtype: "transcribe", Action: audit.ActionExecute, Outcome: audit.OutcomeSuccess, Entities: []audit.Entity{{Type: "Media", ID: "m1"}}},
	} {
		ev.Recorded = at
		raw := ev.Resource("e1")
		if err := v.Validate(raw); err != nil {
			t.Errorf("%s: %v\n%s", name, err, raw)
		}
	}
	// The shape BALP asks for: type rest, the interaction as subtype, the query as base64, patients as entities.
	ev := &audit.Event{Kind: audit.KindREST, Subtype: "search-type", Action: "R", Outcome: "0", Recorded: at,
		Entities: []audit.Entity{{Type: "Observation", Query: "patient=p1"}}, Patients: []string{"p1"}, Agent: audit.Agent{ClientID: "c1", User: "Practitioner/1"}}
	var got struct {
		Type    struct{ Code string }
		Subtype []struct{ System, Code string }
		Agent   []struct {
			Who       struct{ Reference string }
			Requestor bool
		}
		Entity []struct {
			What  struct{ Reference string }
			Role  struct{ Code string }
			Query string
		}
	}
	if err := json.Unmarshal(ev.Resource("x"), &got); err != nil {
		t.Fatal(err)
	}
	if got.Type.Code != "rest" || got.Subtype[0].Code != "search-type" || got.Subtype[0].System != "http://hl7.org/fhir/restful-interaction" {
		t.Errorf("type/subtype: %+v", got)
	}
	if len(got.Agent) != 2 || !got.Agent[1].Requestor || got.Agent[1].Who.Reference != "Practitioner/1" {
		t.Errorf("agents: %+v", got.Agent)
	}
	if len(got.Entity) != 2 || got.Entity[0].Query != "cGF0aWVudD1wMQ==" || got.Entity[1].What.Reference != "Patient/p1" || got.Entity[1].Role.Code != "1" {
		t.Errorf("entities: %+v", got.Entity)
	}
}

func TestPatientsIn(t *testing.T) {
	t.Parallel()
	var got []string
	add := func(s string) { got = append(got, s) }
	audit.PatientsIn("Observation", "o1", []byte(`{"resourceType":"Observation","subject":{"reference":"Patient/p1"},"performer":[{"reference":"https://b.example/fhir/Patient/p2/_history/3"},{"reference":"Practitioner/x"}],"note":[{"text":"Patient/p9"}]}`), "https://b.example/fhir", add)
	audit.PatientsIn("Patient", "p3", []byte(`{"resourceType":"Patient"}`), "", add)
	if diff := cmp.Diff([]string{"p1", "p2", "p3"}, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

func TestSearchAndAccessLog(t *testing.T) {
	t.Parallel()
	tr, _ := newTrail(t)
	record(t, tr, 6) // patients p0 p1 p2 p0 p1 p2, at 10:00:01..10:00:06
	refused := &audit.Event{Kind: audit.KindREST, Subtype: "read", Action: "R", Outcome: audit.OutcomeMinor, OutcomeDesc: "HTTP 403",
		Agent: audit.Agent{ClientID: "other"}, Patients: []string{"p1"}}
	if err := tr.Record(t.Context(), refused); err != nil {
		t.Fatal(err)
	}
	ids := func(params string) []string {
		t.Helper()
		v, _ := url.ParseQuery(params)
		q, err := audit.ParseQuery(v)
		if err != nil {
			t.Fatalf("%s: %v", params, err)
		}
		recs, err := tr.Search(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			var e struct {
				Entity []struct{ What struct{ Reference string } }
			}
			_ = json.Unmarshal(r.Content, &e)
			out = append(out, e.Entity[0].What.Reference)
		}
		return out
	}
	for _, tc := range []struct {
		params string
		want   []string
	}{
		{"patient=Patient/p1", []string{"Patient/p1", "Observation/obs4/_history/1", "Observation/obs1/_history/1"}},
		{"patient=p1&outcome=0", []string{"Observation/obs4/_history/1", "Observation/obs1/_history/1"}},
		{"agent=other", []string{"Patient/p1"}},
		{"agent=Practitioner/pr1&_count=2", []string{"Observation/obs5/_history/1", "Observation/obs4/_history/1"}},
		{"agent=Practitioner/pr1&_count=2&_cursor=5", []string{"Observation/obs3/_history/1", "Observation/obs2/_history/1"}},
		{"date=ge2026-03-05T10:00:05Z&action=R", []string{"Patient/p1", "Observation/obs5/_history/1", "Observation/obs4/_history/1"}},
		{"date=lt2026-03-05T10:00:03Z", []string{"Observation/obs1/_history/1", "Observation/obs0/_history/1"}},
		{"date=2026-03-04", nil},
		{"entity=Observation/obs2&subtype=read", []string{"Observation/obs2/_history/1"}},
	} {
		if diff := cmp.Diff(tc.want, ids(tc.params)); diff != "" {
			t.Errorf("%s (-want +got)\n%s", tc.params, diff)
		}
	}
	if _, err := audit.ParseQuery(url.Values{"name": {"smith"}}); err == nil {
		t.Error("an unsupported parameter is refused, not ignored")
	}
	lines, err := tr.AccessLog(t.Context(), "p1", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || lines[0].Outcome != "4" || lines[0].Count != 1 || lines[1].Count != 2 || !bytes.Contains([]byte(strings.Join(lines[1].Agents, " ")), []byte("client|app1")) {
		t.Errorf("access log: %+v", lines)
	}
}
