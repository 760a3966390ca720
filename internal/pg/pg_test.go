package pg_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/internal/pg"
	"github.com/iambilly/billy/internal/pg/pgtest"
)

func TestInTx(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	ctx := t.Context()
	pgtest.Exec(t, pool, "CREATE TABLE t (v int UNIQUE)")

	boom := errors.New("boom")
	err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO t VALUES (1)"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx error = %v, want boom", err)
	}
	func() {
		defer func() { _ = recover() }()
		_ = pg.InTx(ctx, pool, func(tx pgx.Tx) error {
			_, _ = tx.Exec(ctx, "INSERT INTO t VALUES (2)")
			panic("mid-transaction")
		})
	}()
	if err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO t VALUES (3)")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows = %d (%v), want only the committed one", n, err)
	}
	_, err = pool.Exec(ctx, "INSERT INTO t VALUES (3)")
	if !pg.IsUniqueViolation(err) {
		t.Errorf("IsUniqueViolation(%v) = false", err)
	}
}
