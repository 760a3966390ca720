// Package migrations holds Billy's numbered SQL migrations, embedded in the binary, and applies them.
//
// Files are append-only: a shipped migration is never edited, each begins with a comment saying why
// it exists. Apply is idempotent and safe to run from several processes at once (tern takes an
// advisory lock).
package migrations

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// versionTable records the applied version.
const versionTable = "schema_version"

// Apply brings the database behind conn to the newest version.
func Apply(ctx context.Context, conn *pgx.Conn) error {
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return fmt.Errorf("migrate: load: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Fingerprint identifies the set of migrations, so test templates built from an older set are not
// reused.
func Fingerprint() string {
	entries, _ := files.ReadDir(".")
	h := uint64(14695981039346656037)
	for _, e := range entries {
		b, _ := files.ReadFile(e.Name())
		for _, c := range append([]byte(e.Name()), b...) {
			h ^= uint64(c)
			h *= 1099511628211
		}
	}
	return fmt.Sprintf("%016x", h)
}
