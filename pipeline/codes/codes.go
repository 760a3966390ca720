package codes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/pg"
)

// Code systems Billy knows (the system column of migration 005).
const (
	ICD10CM = "icd10cm"
	HCPCS   = "hcpcs"
	CPT     = "cpt"
)

// Systems lists the known code systems in a stable order.
var Systems = []string{ICD10CM, HCPCS, CPT}

// URL returns the canonical FHIR CodeSystem URL of system, or "" when it is unknown.
func URL(system string) string {
	switch system {
	case ICD10CM:
		return "http://hl7.org/fhir/sid/icd-10-cm"
	case HCPCS:
		return "urn:oid:2.16.840.1.113883.6.285"
	case CPT:
		return "http://www.ama-assn.org/go/cpt"
	}
	return ""
}

// ErrNotFound reports a code (or code system version) that is not in the loaded code sets.
var ErrNotFound = errors.New("code not found")

// ErrUnknownSystem reports a system name other than those in Systems.
var ErrUnknownSystem = errors.New("unknown code system")

// Code is one code of one version of a code system.
type Code struct {
	System       string
	Version      string
	Code         string // canonical form: ICD-10-CM dotted (E11.22); HCPCS and CPT as published
	Display      string // long description
	ShortDisplay string
	// Billable reports a code valid on a claim: an ICD-10-CM leaf (not a header such as E11), an
	// active HCPCS or CPT code.
	Billable        bool
	Category        string // ICD-10-CM 3-character category; HCPCS letter group
	Section         string // ICD-10-CM block (E08-E13); HCPCS group title
	Chapter         string // ICD-10-CM chapter number
	Status          string // active or terminated
	EffectiveDate   time.Time
	TerminationDate time.Time
	Edit            Edit
	Attrs           map[string]string
}

// Store answers lookups against the code tables. It is safe for concurrent use.
type Store struct {
	db *pgxpool.Pool
}

// NewStore returns a Store over db.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db} }

const codeColumns = `c.system, c.version, c.code, c.display, coalesce(c.short_display, ''), c.billable,
	coalesce(c.category, ''), coalesce(c.section, ''), coalesce(c.chapter, ''), c.status,
	c.effective_date, c.termination_date, c.sex, c.age_min, c.age_max, coalesce(c.edit_rule, ''), c.attrs`

func scanCode(row pgx.Row) (Code, error) {
	var (
		c              Code
		eff, term      *time.Time
		sex            *string
		ageMin, ageMax *int16
	)
	if err := row.Scan(&c.System, &c.Version, &c.Code, &c.Display, &c.ShortDisplay, &c.Billable,
		&c.Category, &c.Section, &c.Chapter, &c.Status, &eff, &term, &sex, &ageMin, &ageMax,
		&c.Edit.Rule, &c.Attrs); err != nil {
		return Code{}, err
	}
	if eff != nil {
		c.EffectiveDate = *eff
	}
	if term != nil {
		c.TerminationDate = *term
	}
	c.Edit.MaxAge = NoMaxAge
	if sex != nil {
		c.Edit.Sex = *sex
	}
	if ageMin != nil {
		c.Edit.MinAge = int(*ageMin)
	}
	if ageMax != nil {
		c.Edit.MaxAge = int(*ageMax)
	}
	return c, nil
}

// Lookup returns code of system from the system's current version. The code may be given with or
// without the ICD-10-CM dot and in any case. A missing code is ErrNotFound.
func (s *Store) Lookup(ctx context.Context, system, code string) (Code, error) {
	if !known(system) {
		return Code{}, fmt.Errorf("lookup %s: %w", system, ErrUnknownSystem)
	}
	norm := Normalize(system, code)
	row := s.db.QueryRow(ctx, `SELECT `+codeColumns+`
		FROM codes c JOIN code_systems s ON s.system = c.system AND s.current_version = c.version
		WHERE c.system = $1 AND c.code = $2`, system, norm)
	c, err := scanCode(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return Code{}, fmt.Errorf("lookup %s|%s: %w", system, code, ErrNotFound)
	}
	if err != nil {
		return Code{}, fmt.Errorf("lookup %s|%s: %w", system, code, err)
	}
	return c, nil
}

// Validate reports whether code exists in the current version of system and whether it is billable.
func (s *Store) Validate(ctx context.Context, system, code string) (exists, billable bool, err error) {
	c, err := s.Lookup(ctx, system, code)
	if errors.Is(err, ErrNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return true, c.Billable, nil
}

// SearchOptions narrows Store.Search.
type SearchOptions struct {
	Limit        int  // at most this many codes (default 20)
	BillableOnly bool // leave out headers and terminated codes
}

// Search finds codes of system's current version whose description matches text (PostgreSQL
// full-text search, English stemming, web-search syntax), best first. A text that looks like a
// code also matches codes starting with it.
func (s *Store) Search(ctx context.Context, system, text string, opt SearchOptions) ([]Code, error) {
	if !known(system) {
		return nil, fmt.Errorf("search %s: %w", system, ErrUnknownSystem)
	}
	if opt.Limit <= 0 {
		opt.Limit = 20
	}
	prefix := Normalize(system, strings.TrimSpace(text))
	rows, err := s.db.Query(ctx, `SELECT `+codeColumns+`
		FROM codes c JOIN code_systems s ON s.system = c.system AND s.current_version = c.version,
		     websearch_to_tsquery('english', $2) q
		WHERE c.system = $1 AND (c.search @@ q OR c.code LIKE $3 || '%')
		  AND (NOT $4 OR c.billable)
		ORDER BY (c.code = $3) DESC, ts_rank(c.search, q) DESC, length(c.display), c.code
		LIMIT $5`, system, text, prefix, opt.BillableOnly, opt.Limit)
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", system, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Code, error) { return scanCode(r) })
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", system, err)
	}
	return out, nil
}

// Version describes one imported version of a code system.
type Version struct {
	System     string
	Version    string
	Source     string
	ImportedAt time.Time
	Codes      int
	Current    bool
}

// Versions lists the imported versions of every system, newest import first.
func (s *Store) Versions(ctx context.Context) ([]Version, error) {
	rows, err := s.db.Query(ctx, `SELECT v.system, v.version, v.source, v.imported_at, v.code_count,
			coalesce(s.current_version = v.version, false)
		FROM code_system_versions v JOIN code_systems s USING (system)
		ORDER BY v.system, v.imported_at DESC`)
	if err != nil {
		return nil, fmt.Errorf("versions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Version, error) {
		var v Version
		err := r.Scan(&v.System, &v.Version, &v.Source, &v.ImportedAt, &v.Codes, &v.Current)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("versions: %w", err)
	}
	return out, nil
}

// Each calls fn for every code of system's current version, in code order, stopping at fn's first
// error. It streams, so the whole set is never held by the Store.
func (s *Store) Each(ctx context.Context, system string, fn func(Code) error) error {
	if !known(system) {
		return fmt.Errorf("each %s: %w", system, ErrUnknownSystem)
	}
	rows, err := s.db.Query(ctx, `SELECT `+codeColumns+`
		FROM codes c JOIN code_systems s ON s.system = c.system AND s.current_version = c.version
		WHERE c.system = $1 ORDER BY c.code`, system)
	if err != nil {
		return fmt.Errorf("each %s: %w", system, err)
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanCode(rows)
		if err != nil {
			return fmt.Errorf("each %s: %w", system, err)
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("each %s: %w", system, err)
	}
	return nil
}

// CurrentVersion returns the version lookups of system answer from, or ErrNotFound before the first
// import.
func (s *Store) CurrentVersion(ctx context.Context, system string) (string, error) {
	var v *string
	err := s.db.QueryRow(ctx, `SELECT current_version FROM code_systems WHERE system = $1`, system).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("version of %s: %w", system, ErrUnknownSystem)
	}
	if err != nil {
		return "", fmt.Errorf("version of %s: %w", system, err)
	}
	if v == nil {
		return "", fmt.Errorf("version of %s: nothing imported: %w", system, ErrNotFound)
	}
	return *v, nil
}

// SetCurrent makes version the one lookups of system answer from.
func (s *Store) SetCurrent(ctx context.Context, system, version string) error {
	tag, err := s.db.Exec(ctx, `UPDATE code_systems SET current_version = $2
		WHERE system = $1 AND EXISTS (SELECT 1 FROM code_system_versions WHERE system = $1 AND version = $2)`,
		system, version)
	if err != nil {
		return fmt.Errorf("set current %s %s: %w", system, version, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set current %s %s: %w", system, version, ErrNotFound)
	}
	return nil
}

// DeleteVersion removes an imported version and its codes; the system then has no current version
// if it was the current one.
func (s *Store) DeleteVersion(ctx context.Context, system, version string) error {
	var tag pgconn.CommandTag
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE code_systems SET current_version = NULL
			WHERE system = $1 AND current_version = $2`, system, version); err != nil {
			return err
		}
		var err error
		tag, err = tx.Exec(ctx, `DELETE FROM code_system_versions WHERE system = $1 AND version = $2`, system, version)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", system, version, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete %s %s: %w", system, version, ErrNotFound)
	}
	return nil
}

func known(system string) bool {
	switch system {
	case ICD10CM, HCPCS, CPT:
		return true
	}
	return false
}

// Normalize returns code in the canonical form of system: upper case without surrounding space;
// ICD-10-CM with a dot after the third character when it has more than three (E119 -> E11.9).
func Normalize(system, code string) string {
	c := strings.ToUpper(strings.TrimSpace(code))
	if system != ICD10CM {
		return c
	}
	c = strings.ReplaceAll(c, ".", "")
	if len(c) > 3 {
		c = c[:3] + "." + c[3:]
	}
	return c
}

// BillableOn reports whether the code may be billed for a service on date: a billable code, or a
// terminated one whose service date falls before its termination (and on or after its effective
// date). A zero date is "now": only Billable counts.
func (c Code) BillableOn(date time.Time) bool {
	if c.Billable {
		return c.EffectiveDate.IsZero() || date.IsZero() || !date.Before(c.EffectiveDate)
	}
	if c.Status != "terminated" || c.TerminationDate.IsZero() || date.IsZero() {
		return false
	}
	return !date.After(c.TerminationDate) && (c.EffectiveDate.IsZero() || !date.Before(c.EffectiveDate))
}
