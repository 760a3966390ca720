// Package pgtest gives each test its own PostgreSQL database, cloned from a template that has every
// migration applied, so test packages run in parallel against a real server.
//
// The server is BILLY_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/billy_test); the
// template's name carries the migrations' fingerprint, so a schema change builds a new one.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/pg"
	"github.com/iambilly/billy/migrations"
)

// DefaultURL is the test server when BILLY_TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/billy_test?sslmode=disable"

// ServerURL returns the configured test database URL.
func ServerURL() string {
	if u := os.Getenv("BILLY_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// NewDB creates a fresh migrated database for t, dropped when the test ends, and returns its URL.
func NewDB(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	base, err := url.Parse(ServerURL())
	if err != nil {
		t.Fatalf("pgtest: BILLY_TEST_DATABASE_URL: %v", err)
	}
	admin, err := pgx.Connect(ctx, withDB(base, "postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect to the test server (is PostgreSQL running? make test starts it): %v", err)
	}
	defer admin.Close(ctx)

	tmpl := "billy_tmpl_" + migrations.Fingerprint()
	if err := ensureTemplate(ctx, admin, base, tmpl); err != nil {
		t.Fatalf("pgtest: template: %v", err)
	}
	name := "billy_t_" + randomHex(8)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+tmpl); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), withDB(base, "postgres"))
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return withDB(base, name)
}

// NewPool is NewDB plus an open pool, closed when the test ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pg.Connect(context.Background(), NewDB(t), 0)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// ensureTemplate builds the template database once per migration set; concurrent test processes
// serialise on an advisory lock.
func ensureTemplate(ctx context.Context, admin *pgx.Conn, base *url.URL, tmpl string) error {
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(727001)"); err != nil {
		return err
	}
	defer admin.Exec(ctx, "SELECT pg_advisory_unlock(727001)") //nolint:errcheck
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", tmpl).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := tmpl + "_building"
	_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, withDB(base, building))
	if err != nil {
		return err
	}
	err = migrations.Apply(ctx, conn)
	conn.Close(ctx)
	if err != nil {
		return err
	}
	// Renaming last means a crash mid-build never leaves a half-migrated template behind.
	_, err = admin.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+tmpl)
	return err
}

func withDB(base *url.URL, name string) string {
	u := *base
	u.Path = "/" + name
	q := u.Query()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(hex.EncodeToString(b))
}

// Exec runs sql on the database at url; a test-setup convenience.
func Exec(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, fmt.Sprint(err))
	}
}
