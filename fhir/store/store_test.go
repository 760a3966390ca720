package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/pg/pgtest"
)

func write(t *testing.T, typ, id, body string) *store.Write {
	t.Helper()
	tree, err := jsontree.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return &store.Write{Type: typ, ID: id, Tree: tree, Index: search.Extract(typ, tree, "")}
}

// hookRecorder records the changes it sees, and can fail.
type hookRecorder struct {
	mu      sync.Mutex
	changes []store.Change
	fail    bool
}

func (h *hookRecorder) AfterWrite(_ context.Context, _ *store.Tx, c store.Change) ([]fhir.Issue, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail {
		return nil, errors.New("hook failed")
	}
	h.changes = append(h.changes, c)
	return nil, nil
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	hook := &hookRecorder{}
	st := store.New(pgtest.NewPool(t), store.WithClock(func() time.Time { clock = clock.Add(time.Second); return clock }), store.WithHooks(hook))

	var created []*store.Version
	err := st.InTx(ctx, func(tx *store.Tx) error {
		var err error
		created, err = tx.Create(ctx, []*store.Write{
			write(t, "Patient", "a", `{"resourceType":"Patient","identifier":[{"system":"s","value":"1"}]}`),
			write(t, "Patient", "b", `{"resourceType":"Patient"}`),
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if created[0].RID == 0 || created[1].RID == 0 || created[0].RID == created[1].RID {
		t.Errorf("rids %d %d", created[0].RID, created[1].RID)
	}
	v, err := st.Read(ctx, "Patient", "a")
	if err != nil || v.Version != 1 || string(v.Content) != `{"resourceType":"Patient","id":"a","meta":{"versionId":"1","lastUpdated":"2026-01-02T03:04:06Z"},"identifier":[{"system":"s","value":"1"}]}` {
		t.Fatalf("read: %v %s", err, v.Content)
	}
	q, _ := search.Parse([]string{"Patient"}, map[string][]string{"identifier": {"s|1"}}, search.Options{Strict: true})
	if refs, err := st.Match(ctx, q, 2); err != nil || len(refs) != 1 || refs[0].ID != "a" {
		t.Fatalf("match: %v %v", refs, err)
	}

	// Update, with and without If-Match.
	err = st.InTx(ctx, func(tx *store.Tx) error {
		if _, _, err := tx.Update(ctx, write(t, "Patient", "a", `{"resourceType":"Patient","gender":"male"}`), 2); !errors.Is(err, fhir.ErrPreconditionFailed) {
			t.Errorf("stale If-Match: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.InTx(ctx, func(tx *store.Tx) error {
		v, isNew, err := tx.Update(ctx, write(t, "Patient", "a", `{"resourceType":"Patient","gender":"male"}`), 1)
		if err != nil || isNew || v.Version != 2 {
			t.Errorf("update: %v %v %+v", err, isNew, v)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The identifier went away with version 2: the index follows the current version.
	if refs, _ := st.Match(ctx, q, 2); len(refs) != 0 {
		t.Errorf("stale index rows still match: %v", refs)
	}
	old, err := st.VRead(ctx, "Patient", "a", 1)
	if err != nil || old.Version != 1 || old.Method != store.MethodCreate {
		t.Errorf("vread 1: %v %+v", err, old)
	}

	// Delete twice, then history.
	err = st.InTx(ctx, func(tx *store.Tx) error {
		v, changed, err := tx.Delete(ctx, "Patient", "a", 0)
		if err != nil || !changed || v.Version != 3 || !v.Deleted() {
			t.Errorf("delete: %v %v %+v", err, changed, v)
		}
		_, changed, err = tx.Delete(ctx, "Patient", "a", 0)
		if err != nil || changed {
			t.Errorf("second delete: %v %v", err, changed)
		}
		_, _, err = tx.Delete(ctx, "Patient", "zzz", 0)
		if !errors.Is(err, fhir.ErrNotFound) {
			t.Errorf("delete unknown: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	hist, err := st.History(ctx, store.HistoryQuery{Type: "Patient", ID: "a", Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, h := range hist {
		methods = append(methods, h.Method)
	}
	if len(hist) != 3 || methods[0] != "DELETE" || methods[1] != "PUT" || methods[2] != "POST" {
		t.Errorf("history methods %v", methods)
	}
	page, err := st.History(ctx, store.HistoryQuery{Count: 2, Before: &store.Cursor{LastUpdated: hist[0].LastUpdated, RID: hist[0].RID, Version: hist[0].Version}})
	if err != nil || len(page) != 2 || page[0].Version != 2 {
		t.Errorf("system history after the deletion: %v %+v", err, page)
	}
	if n := len(hook.changes); n != 4 {
		t.Errorf("hook saw %d changes, want 4 (2 creates, 1 update, 1 delete)", n)
	}
}

func TestHookFailureRollsBack(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	hook := &hookRecorder{fail: true}
	st := store.New(pgtest.NewPool(t), store.WithHooks(hook))
	err := st.InTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Create(ctx, []*store.Write{write(t, "Patient", "x", `{"resourceType":"Patient"}`)})
		return err
	})
	if err == nil {
		t.Fatal("a failing hook must fail the write")
	}
	if _, err := st.Read(ctx, "Patient", "x"); !errors.Is(err, fhir.ErrNotFound) {
		t.Errorf("the write survived its hook's failure: %v", err)
	}
}

func TestCreateDuplicateID(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := store.New(pgtest.NewPool(t))
	create := func() error {
		return st.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.Create(ctx, []*store.Write{write(t, "Patient", "dup", `{"resourceType":"Patient"}`)})
			return err
		})
	}
	if err := create(); err != nil {
		t.Fatal(err)
	}
	if err := create(); !errors.Is(err, fhir.ErrConflict) {
		t.Errorf("duplicate create: %v", err)
	}
}

func TestReindexRebuildsTheSameRows(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.NewPool(t)
	st := store.New(pool)
	err := st.InTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Create(ctx, []*store.Write{
			write(t, "Patient", "a", `{"resourceType":"Patient","name":[{"family":"Doe"}],"birthDate":"1970","generalPractitioner":[{"reference":"Practitioner/x"}]}`),
			write(t, "Observation", "o", `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"s","code":"c"}]},"valueQuantity":{"value":1.5,"code":"mg"}}`),
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
		var out string
		for _, table := range []string{"search_token", "search_string", "search_date", "search_quantity", "search_reference", "search_composite"} {
			var s string
			if err := pool.QueryRow(ctx, "SELECT coalesce(string_agg(t::text, ';' ORDER BY t::text), '') FROM "+table+" t").Scan(&s); err != nil {
				t.Fatal(err)
			}
			out += table + ":" + s + "\n"
		}
		return out
	}
	before := snapshot()
	if err := st.Reindex(ctx, 1, nil); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(); after != before {
		t.Errorf("reindex changed the index:\nbefore %s\nafter  %s", before, after)
	}
	if !strings.Contains(before, "search_quantity:") || strings.Count(before, "(") < 10 {
		t.Errorf("the fixture should populate the tables: %s", before)
	}
}
