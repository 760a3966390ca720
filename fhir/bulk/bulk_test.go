package bulk_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/bulk"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/blob"
	"github.com/iambilly/billy/internal/crypto"
	"github.com/iambilly/billy/internal/pg"
	"github.com/iambilly/billy/internal/pg/pgtest"
)

// queue records the jobs queued; the tests run them themselves.
type queue struct {
	mu  sync.Mutex
	ids []string
}

func (q *queue) Enqueue(_ context.Context, _ pgx.Tx, id, _ string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ids = append(q.ids, id)
	return nil
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func setup(t *testing.T) (*bulk.Service, *queue, *clock, blob.Store) {
	t.Helper()
	pool, err := pg.Connect(t.Context(), pgtest.NewDB(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	clk := &clock{now: time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)}
	st := store.New(pool, store.WithClock(clk.Now))
	v, err := resource.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	err = st.InTx(t.Context(), func(tx *store.Tx) error {
		for _, r := range []string{`{"resourceType":"Patient","id":"p1"}`, `{"resourceType":"Patient","id":"p2"}`, `{"resourceType":"Patient","id":"p3"}`,
			`{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}}`} {
			tree, _ := jsontree.Parse([]byte(r))
			w, err := store.Prepare(v.Validate, "", resource.Type(tree), tree.GetString("id"), tree)
			if err != nil {
				return err
			}
			if _, _, err := tx.Update(t.Context(), w, 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	kr, err := crypto.ParseKeyring("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.NewFS(t.TempDir(), kr)
	if err != nil {
		t.Fatal(err)
	}
	q := &queue{}
	clk.Add(time.Second) // the export's transactionTime comes after the writes
	svc := bulk.New(bulk.Config{Pool: pool, Store: st, Blobs: blobs, Queue: q, Expiry: time.Hour, FileResources: 2, Now: clk.Now})
	return svc, q, clk, blobs
}

// TestExpiry: a finished export's status and files answer until it expires; then they are gone,
// and Maintain deletes the blobs.
func TestExpiry(t *testing.T) {
	t.Parallel()
	svc, q, clk, blobs := setup(t)
	id, err := svc.Kickoff(t.Context(), bulk.Request{Owner: "o", Level: bulk.LevelSystem, Types: []string{"Patient", "Observation"}})
	if err != nil || len(q.ids) != 1 || q.ids[0] != id {
		t.Fatalf("kick-off: %v %v", err, q.ids)
	}
	if err := svc.Run(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	j, err := svc.Job(t.Context(), id, "o")
	if err != nil || j.Status != bulk.StatusCompleted || len(j.Files) != 3 || j.Exported != 4 {
		t.Fatalf("job %+v %v", j, err)
	}
	if _, err := svc.Job(t.Context(), id, "someone else"); !errors.Is(err, fhir.ErrNotFound) {
		t.Errorf("another owner sees the job: %v", err)
	}
	obj, f, err := svc.Open(t.Context(), id, "o", "Patient-2.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(obj)
	obj.Close()
	if f.Count != 1 || !bytes.Contains(b, []byte(`"id":"p3"`)) || strings.Count(string(b), "\n") != 1 {
		t.Errorf("Patient-2.ndjson: %d %s", f.Count, b)
	}
	clk.Add(59 * time.Minute)
	if err := svc.Maintain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Job(t.Context(), id, "o"); err != nil {
		t.Errorf("before expiry: %v", err)
	}
	clk.Add(time.Minute)
	if _, err := svc.Job(t.Context(), id, "o"); !errors.Is(err, fhir.ErrNotFound) {
		t.Errorf("expired, yet: %v", err)
	}
	if err := svc.Maintain(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, f := range j.Files {
		if _, err := blobs.Open(t.Context(), f.BlobID); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("blob of %s still there after expiry: %v", f.Name, err)
		}
	}
}

// TestQueuedAndFinishedExports: Maintain leaves a queued export to its queue, and running a
// finished export again writes nothing. (A worker killed mid-export: cmd/billy
// TestExportWorkerKilled.)
func TestQueuedAndFinishedExports(t *testing.T) {
	t.Parallel()
	svc, q, _, _ := setup(t)
	id, err := svc.Kickoff(t.Context(), bulk.Request{Owner: "o", Level: bulk.LevelSystem, Types: []string{"Patient"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Maintain(t.Context()); err != nil || len(q.ids) != 1 {
		t.Fatalf("a queued export is left to its queue: %v %v", err, q.ids)
	}
	if err := svc.Run(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if err := svc.Run(t.Context(), id); err != nil {
		t.Errorf("running a completed export again: %v", err)
	}
	j, _ := svc.Job(t.Context(), id, "o")
	if len(j.Files) != 2 {
		t.Errorf("%d files after two runs, want 2", len(j.Files))
	}
}
