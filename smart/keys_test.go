package smart_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/smart"
	"github.com/iambilly/billy/smart/directory"
)

// storedKey is a row of smart_keys as the test compares it.
type storedKey struct {
	Kid     string
	Retired bool
}

func (e *env) storedKeys() []storedKey {
	e.t.Helper()
	rows, err := e.pool.Query(e.t.Context(), `SELECT kid, retired_at IS NOT NULL FROM smart_keys ORDER BY created_at, kid`)
	if err != nil {
		e.t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowToStructByPos[storedKey])
	if err != nil {
		e.t.Fatal(err)
	}
	return keys
}

// newServerWithKey starts another authorization server on the env's database, as a second process
// (or billy dev-token) would, with the given master key.
func (e *env) newServerWithKey(master string) (*smart.Server, error) {
	return smart.New(e.t.Context(), smart.Config{BaseURL: e.base, FHIRBase: e.fhir, MasterKey: []byte(master), Now: e.clock.now},
		e.pool, directory.Store{St: e.st}, e.audits, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// TestWrongMasterKeyRotatesNothing: a process started with another master key than the one that
// sealed the signing keys refuses to start, and leaves the keys (and so the tokens the server
// issued) alone.
func TestWrongMasterKeyRotatesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.mint("user/*.rs", "")
	before := e.storedKeys()
	if len(before) != 1 || before[0].Retired {
		t.Fatalf("keys at start: %+v", before)
	}
	_, err := e.newServerWithKey("another master key, 32 bytes....")
	if !errors.Is(err, smart.ErrMasterKeyMismatch) || !strings.Contains(err.Error(), "the master key opens none of the stored signing keys") {
		t.Errorf("a wrong master key: %v", err)
	}
	if diff := cmp.Diff(before, e.storedKeys()); diff != "" {
		t.Errorf("the signing keys changed (-before +after):\n%s", diff)
	}
	e.clock.advance(2 * time.Minute) // the server reloads its keys
	if r := e.fhirDo(http.MethodGet, "Patient/"+e.p1, tok, ""); r.status != http.StatusOK {
		t.Errorf("the server's token after the refused start: %d %s", r.status, r.body)
	}
	if _, err := e.newServerWithKey("0123456789abcdef0123456789abcdef"); err != nil {
		t.Errorf("the right master key: %v", err)
	}
}

// TestUnopenableCurrentKeyIsNotRetired: when the keys it can open are due for rotation but a
// fresher key is sealed with another master key, the server refuses to rotate rather than retire a
// key that may be signing tokens elsewhere.
func TestUnopenableCurrentKeyIsNotRetired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.pool.Exec(t.Context(), `INSERT INTO smart_keys (kid, alg, private_enc, public_jwk, created_at) VALUES ('elsewhere', 'RS256', '\x00112233445566778899aabbccddeeff', '{}', $1)`,
		e.clock.now().Add(30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.advance(31 * 24 * time.Hour) // the server's own key is now past its lifetime
	before := e.storedKeys()
	_, err = e.newServerWithKey("0123456789abcdef0123456789abcdef")
	if err == nil || !strings.Contains(err.Error(), "elsewhere") {
		t.Errorf("rotation past an unopenable key: %v", err)
	}
	if diff := cmp.Diff(before, e.storedKeys()); diff != "" {
		t.Errorf("the signing keys changed (-before +after):\n%s", diff)
	}
}
