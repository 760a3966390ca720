package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/internal/config"
)

// overlay is an environment with some variables replaced.
type overlay struct {
	config.Lookuper
	set map[string]string
}

func (o overlay) Lookup(key string) (string, bool) {
	if v, ok := o.set[key]; ok {
		return v, true
	}
	return o.Lookuper.Lookup(key)
}

// TestWrongMasterKeyIsRefused: billy dev-token, and serve's start-up, given another master key
// than the one that sealed the stored signing keys, refuse and change no key; before, dev-token
// made a new signing key and retired the server's.
func TestWrongMasterKeyIsRefused(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	var out bytes.Buffer
	if err := run(t.Context(), []string{"dev-token"}, env, &out, io.Discard); err != nil || strings.Count(out.String(), ".") != 2 {
		t.Fatalf("dev-token with the right master key: %v %q", err, out.String())
	}
	before := signingKeys(t, env)
	wrong := overlay{env, map[string]string{"BILLY_MASTER_KEY": "YW5vdGhlciBtYXN0ZXIga2V5LCAzMiBieXRlcy4uLi4="}}
	const want = "the master key opens none of the stored signing keys"
	out.Reset()
	if err := run(t.Context(), []string{"dev-token"}, wrong, &out, io.Discard); err == nil || !strings.Contains(err.Error(), want) || out.Len() != 0 {
		t.Errorf("dev-token with a wrong master key: %v, printed %q", err, out.String())
	}
	cfg, err := loadConfig(t.Context(), wrong)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := newApp(t.Context(), cfg, newLogger(cfg, io.Discard)); err == nil || !strings.Contains(err.Error(), want) {
		if a != nil {
			a.Close()
		}
		t.Errorf("serve's start-up with a wrong master key: %v", err)
	}
	if after := signingKeys(t, env); after != before {
		t.Errorf("the signing keys changed: %s, then %s", before, after)
	}
	if err := run(t.Context(), []string{"dev-token"}, env, io.Discard, io.Discard); err != nil {
		t.Errorf("dev-token with the right master key afterwards: %v", err)
	}
}

// signingKeys describes smart_keys: each kid, and whether it is retired.
func signingKeys(t *testing.T, env config.Lookuper) string {
	t.Helper()
	dbURL, _ := env.Lookup("BILLY_DATABASE_URL")
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(t.Context(), `SELECT coalesce(string_agg(kid || ':' || (retired_at IS NOT NULL)::text, ',' ORDER BY kid), '') FROM smart_keys`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}
