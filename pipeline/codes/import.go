package codes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/pg"
)

// ErrFormat reports an input file that is not in any format the importer reads; the message names
// the line.
var ErrFormat = errors.New("unrecognised code file format")

// Progress is one progress report of an import: Stage "read" counts input bytes (Total is the file
// size when known, else -1), Stage "load" counts rows copied into PostgreSQL out of Total.
type Progress struct {
	Stage string
	Done  int64
	Total int64
}

// ProgressFunc receives progress reports, for a terminal progress bar. It is called from the
// importing goroutine, at most every few thousand rows, and once at the end of each stage.
type ProgressFunc func(Progress)

// ImportOptions are common to all importers.
type ImportOptions struct {
	// Version names what is imported (e.g. "2026" for ICD-10-CM FY2026, "2025-10" for a HCPCS
	// quarter). Required. Importing a version that exists replaces it.
	Version string
	// Source is recorded with the version (file names); optional.
	Source string
	// KeepCurrent leaves the system's current version as it is; by default the imported version
	// becomes current.
	KeepCurrent bool
	// Progress, when set, receives progress reports.
	Progress ProgressFunc
}

// ImportStats summarises an import.
type ImportStats struct {
	System   string
	Version  string
	Format   string // the input format detected
	Codes    int    // rows stored, headers included
	Billable int
	Elapsed  time.Duration
}

// row is one code ready for COPY.
type row struct {
	code, display, short  string
	billable              bool
	category, section     string
	chapter, status       string
	effective, terminated time.Time
	edit                  Edit
	attrs                 map[string]string
}

var copyColumns = []string{"system", "version", "code", "display", "short_display", "billable",
	"category", "section", "chapter", "status", "effective_date", "termination_date",
	"sex", "age_min", "age_max", "edit_rule", "attrs"}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullDate(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// store replaces system/version with rows in one transaction, loading them with COPY.
func store(ctx context.Context, db *pgxpool.Pool, system, format string, rows []row, opt ImportOptions, started time.Time) (ImportStats, error) {
	if opt.Version == "" {
		return ImportStats{}, fmt.Errorf("import %s: a version is required", system)
	}
	src := opt.Source
	if src == "" {
		src = format
	}
	st := ImportStats{System: system, Version: opt.Version, Format: format, Codes: len(rows)}
	for _, r := range rows {
		if r.billable {
			st.Billable++
		}
	}
	total := int64(len(rows))
	err := pg.InTx(ctx, db, func(tx pgx.Tx) error {
		// Serialise imports of one system so two concurrent re-imports cannot interleave.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('billy.codes.import.' || $1::text))`, system); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM code_system_versions WHERE system = $1 AND version = $2`, system, opt.Version); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO code_system_versions (system, version, source, code_count)
			VALUES ($1, $2, $3, $4)`, system, opt.Version, src, len(rows)); err != nil {
			return err
		}
		i := 0
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"codes"}, copyColumns, pgx.CopyFromFunc(func() ([]any, error) {
			if i >= len(rows) {
				return nil, nil
			}
			r := rows[i]
			i++
			if opt.Progress != nil && i%5000 == 0 {
				opt.Progress(Progress{Stage: "load", Done: int64(i), Total: total})
			}
			var sex, ageMin, ageMax any
			if r.edit.Rule != "" {
				sex = nullStr(r.edit.Sex)
				ageMin, ageMax = int16(r.edit.MinAge), int16(r.edit.MaxAge)
			}
			attrs := r.attrs
			if attrs == nil {
				attrs = map[string]string{}
			}
			status := r.status
			if status == "" {
				status = "active"
			}
			return []any{system, opt.Version, r.code, r.display, nullStr(r.short), r.billable,
				nullStr(r.category), nullStr(r.section), nullStr(r.chapter), status,
				nullDate(r.effective), nullDate(r.terminated), sex, ageMin, ageMax,
				nullStr(r.edit.Rule), attrs}, nil
		}))
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		if n != total {
			return fmt.Errorf("copy: %d of %d rows", n, total)
		}
		if !opt.KeepCurrent {
			if _, err := tx.Exec(ctx, `UPDATE code_systems SET current_version = $2 WHERE system = $1`, system, opt.Version); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ImportStats{}, fmt.Errorf("import %s %s: %w", system, opt.Version, err)
	}
	// Fresh statistics at once: until autovacuum gets to the table the planner guesses, and the
	// searches (the description index, the code ranges) run 10-100 times slower.
	if _, err := db.Exec(ctx, `ANALYZE codes`); err != nil {
		return ImportStats{}, fmt.Errorf("import %s %s: analyze: %w", system, opt.Version, err)
	}
	if opt.Progress != nil {
		opt.Progress(Progress{Stage: "load", Done: total, Total: total})
	}
	st.Elapsed = time.Since(started)
	return st, nil
}

// countingReader counts bytes read for progress reports.
type countingReader struct {
	r     io.Reader
	n     int64
	total int64
	next  int64
	fn    ProgressFunc
}

func newCountingReader(r io.Reader, fn ProgressFunc) *countingReader {
	return &countingReader{r: r, total: sizeOf(r), fn: fn}
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.fn != nil && (c.n >= c.next || err == io.EOF) {
		c.fn(Progress{Stage: "read", Done: c.n, Total: c.total})
		c.next = c.n + 256<<10
	}
	return n, err
}

// sizeOf returns the size of r when it is a file or an in-memory reader, else -1.
func sizeOf(r io.Reader) int64 {
	switch v := r.(type) {
	case *os.File:
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	case interface{ Size() int64 }:
		return v.Size()
	case interface{ Len() int }:
		return int64(v.Len())
	}
	return -1
}
