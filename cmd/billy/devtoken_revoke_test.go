package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestDevTokenRevoke: a token from billy dev-token is recorded like the server's own, and
// billy dev-token --revoke revokes it (before, minted tokens were not recorded and revoking one
// answered 200 with no effect). The usage text names the flag.
func TestDevTokenRevoke(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	var out bytes.Buffer
	if err := run(t.Context(), []string{"dev-token", "--scope", "user/*.rs"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out.String())
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	if got := tokenState(t, env, sig); got != "active" {
		t.Fatalf("a new dev-token: %s, want active", got)
	}
	out.Reset()
	if err := run(t.Context(), []string{"dev-token", "--revoke", tok}, env, &out, io.Discard); err != nil || !strings.Contains(out.String(), "revoked") {
		t.Fatalf("dev-token --revoke: %v %q", err, out.String())
	}
	if got := tokenState(t, env, sig); got != "revoked" {
		t.Errorf("after dev-token --revoke: %s, want revoked", got)
	}
	if err := run(t.Context(), []string{"dev-token", "--revoke", "not-a-token"}, env, io.Discard, io.Discard); err == nil {
		t.Error("revoking garbage: no error")
	}
	var help bytes.Buffer
	_ = run(t.Context(), []string{"help", "dev-token"}, env, &help, &help)
	if !strings.Contains(help.String(), "--revoke") {
		t.Errorf("the usage text does not name --revoke:\n%s", help.String())
	}
}

// tokenState says whether the access token with this signature is recorded, and revoked.
func tokenState(t *testing.T, env interface{ Lookup(string) (string, bool) }, sig string) string {
	t.Helper()
	dbURL, _ := env.Lookup("BILLY_DATABASE_URL")
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var active bool
	err = conn.QueryRow(t.Context(), `SELECT active FROM oauth_requests WHERE kind = 'access' AND signature = $1`, sig).Scan(&active)
	switch {
	case err == pgx.ErrNoRows:
		return "not recorded"
	case err != nil:
		t.Fatal(err)
	case active:
		return "active"
	}
	return "revoked"
}
