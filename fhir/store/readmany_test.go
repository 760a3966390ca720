package store_test

import (
	"testing"
	"time"

	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/pg/pgtest"
)

// TestReadMany: one round trip answers the current versions of the keys that exist, deletions
// included (no content), and nothing for the others.
func TestReadMany(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := store.New(pgtest.NewPool(t), store.WithClock(func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }))
	err := st.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Create(ctx, []*store.Write{
			write(t, "Patient", "a", `{"resourceType":"Patient"}`),
			write(t, "Patient", "b", `{"resourceType":"Patient"}`),
			write(t, "Encounter", "a", `{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"}}`),
		}); err != nil {
			return err
		}
		if _, _, err := tx.Update(ctx, write(t, "Patient", "a", `{"resourceType":"Patient","gender":"male"}`), 0); err != nil {
			return err
		}
		_, _, err := tx.Delete(ctx, "Patient", "b", 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.ReadMany(ctx, []store.Key{{"Patient", "a"}, {"Patient", "b"}, {"Patient", "c"}, {"Encounter", "a"}, {"Encounter", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("found %d, want 3", len(got))
	}
	if v := got[store.Key{Type: "Patient", ID: "a"}]; v == nil || v.Version != 2 || v.Deleted() {
		t.Errorf("Patient/a: %+v", v)
	}
	if v := got[store.Key{Type: "Patient", ID: "b"}]; v == nil || !v.Deleted() {
		t.Errorf("Patient/b (deleted): %+v", v)
	}
	if v := got[store.Key{Type: "Encounter", ID: "a"}]; v == nil || v.Version != 1 {
		t.Errorf("Encounter/a: %+v", v)
	}
	if empty, err := st.ReadMany(ctx, nil); err != nil || len(empty) != 0 {
		t.Errorf("no keys: %v %v", empty, err)
	}
}
