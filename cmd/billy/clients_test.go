package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestClientsCreateNative: --native registers a native app (loopback redirect URIs on any port);
// without it a client is a web app, and redirect URIs with userinfo are refused.
func TestClientsCreateNative(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	create := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(t.Context(), append([]string{"clients", "create", "--scope", "patient/*.rs"}, args...), env, &out, io.Discard)
		id, _ := strings.CutPrefix(strings.TrimSpace(out.String()), "client_id: ")
		return id, err
	}
	native, err := create("--name", "CLI", "--native", "--redirect-uri", "http://127.0.0.1/callback")
	if err != nil {
		t.Fatal(err)
	}
	web, err := create("--name", "Web", "--redirect-uri", "https://app.example/callback")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := create("--name", "Evil", "--native", "--redirect-uri", "http://evil%2f@127.0.0.1:8765/callback"); err == nil || !strings.Contains(err.Error(), "userinfo") {
		t.Errorf("a redirect URI with userinfo: %v", err)
	}
	dbURL, _ := env.Lookup("BILLY_DATABASE_URL")
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for id, want := range map[string]string{native: "native", web: "web"} {
		var got string
		if err := conn.QueryRow(t.Context(), `SELECT application_type FROM oauth_clients WHERE id = $1`, id).Scan(&got); err != nil || got != want {
			t.Errorf("client %s: application_type %q (%v), want %q", id, got, err, want)
		}
	}
}
