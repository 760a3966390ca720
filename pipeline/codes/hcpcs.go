package codes

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// HCPCS and CPT input formats the importers detect.
const (
	FormatHCPCS2025  = "hcpcs-level2-csv" // code,short,long,status,termination_date,group_code,category,text_source
	FormatHCPCSANWEB = "hcpcs-cms-anweb"  // the CMS quarterly "Alpha-Numeric HCPCS" record layout as CSV
	FormatCPTCSV     = "cpt-csv"          // code,description[,...]
)

// ImportHCPCS imports HCPCS Level II codes from r: either the Level II CSV (columns code, short,
// long, status, termination_date, group_code, category, text_source) or the CMS ANWEB quarterly file
// saved as CSV (HCPC, SEQNUM, RECID, LONG DESCRIPTION, SHORT DESCRIPTION, ..., ADD DT, ACT EFF DT,
// TERM DT, ACTION CD), detected from the header. Active codes are billable; terminated ones are kept,
// not billable, with their termination date (Code.BillableOn answers for a date of service). ANWEB
// modifier records (RECID 7) are kept as non-billable rows of category "modifier".
func ImportHCPCS(ctx context.Context, db *pgxpool.Pool, r io.Reader, opt ImportOptions) (ImportStats, error) {
	started := time.Now()
	cr := csv.NewReader(newCountingReader(r, opt.Progress))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = false
	head, err := cr.Read()
	if err != nil {
		return ImportStats{}, fmt.Errorf("import hcpcs: header: %w", err)
	}
	cols := index(head)
	var (
		rows   []row
		format string
	)
	switch {
	case has(cols, "code", "long", "status"):
		format = FormatHCPCS2025
		rows, err = readHCPCS2025(cr, cols)
	case has(cols, "hcpc", "recid", "long description"):
		format = FormatHCPCSANWEB
		rows, err = readANWEB(cr, cols)
	default:
		err = fmt.Errorf("header %q: %w", strings.Join(head, ","), ErrFormat)
	}
	if err != nil {
		return ImportStats{}, fmt.Errorf("import hcpcs: %w", err)
	}
	if len(rows) == 0 {
		return ImportStats{}, fmt.Errorf("import hcpcs: no codes: %w", ErrFormat)
	}
	return store(ctx, db, HCPCS, format, rows, opt, started)
}

func index(head []string) map[string]int {
	m := make(map[string]int, len(head))
	for i, h := range head {
		m[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	return m
}

func has(cols map[string]int, names ...string) bool {
	for _, n := range names {
		if _, ok := cols[n]; !ok {
			return false
		}
	}
	return true
}

func field(rec []string, cols map[string]int, name string) string {
	i, ok := cols[name]
	if !ok || i >= len(rec) {
		return ""
	}
	return strings.TrimSpace(rec[i])
}

func validHCPCS(c string) bool {
	if len(c) != 5 || c[0] < 'A' || c[0] > 'V' {
		return false
	}
	for i := 1; i < 5; i++ {
		if c[i] < '0' || c[i] > '9' {
			return false
		}
	}
	return true
}

func readHCPCS2025(cr *csv.Reader, cols map[string]int) ([]row, error) {
	var rows []row
	seen := map[string]bool{}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		code := strings.ToUpper(field(rec, cols, "code"))
		if !validHCPCS(code) {
			return nil, fmt.Errorf("line %d: %q is not a HCPCS Level II code: %w", line, code, ErrFormat)
		}
		if seen[code] {
			return nil, fmt.Errorf("line %d: code %s repeats: %w", line, code, ErrFormat)
		}
		seen[code] = true
		r := row{code: code, display: field(rec, cols, "long"), short: field(rec, cols, "short"),
			category: field(rec, cols, "group_code"), section: field(rec, cols, "category"),
			status: strings.ToLower(field(rec, cols, "status"))}
		if r.display == "" {
			r.display = r.short
		}
		switch r.status {
		case "", "active":
			r.status, r.billable = "active", true
		case "terminated":
			if d := field(rec, cols, "termination_date"); d != "" {
				t, err := time.Parse("2006-01-02", d)
				if err != nil {
					return nil, fmt.Errorf("line %d: termination_date %q: %w", line, d, ErrFormat)
				}
				r.terminated = t
			}
		default:
			return nil, fmt.Errorf("line %d: status %q: %w", line, r.status, ErrFormat)
		}
		if ts := field(rec, cols, "text_source"); ts != "" {
			r.attrs = map[string]string{"text_source": ts}
		}
		rows = append(rows, r)
	}
}

// anwebAttrs are the ANWEB columns kept in attrs (lower-cased header name -> attrs key).
var anwebAttrs = map[string]string{"cov": "coverage", "betos": "betos", "tos1": "tos1", "tos2": "tos2",
	"tos3": "tos3", "mult_pi": "pricing_indicator", "action cd": "action", "asc_grp": "asc_group",
	"labcert1": "labcert1", "statute": "statute", "xref1": "xref1"}

func yyyymmdd(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse("20060102", s)
}

func readANWEB(cr *csv.Reader, cols map[string]int) ([]row, error) {
	var rows []row
	at := map[string]int{}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		code := strings.ToUpper(field(rec, cols, "hcpc"))
		long := field(rec, cols, "long description")
		switch field(rec, cols, "recid") {
		case "4": // continuation of the previous record's long description
			i, ok := at[code]
			if !ok {
				return nil, fmt.Errorf("line %d: continuation of unknown code %s: %w", line, code, ErrFormat)
			}
			rows[i].display = strings.TrimSpace(rows[i].display + " " + long)
			continue
		case "3", "7":
		default:
			return nil, fmt.Errorf("line %d: RECID %q: %w", line, field(rec, cols, "recid"), ErrFormat)
		}
		modifier := field(rec, cols, "recid") == "7"
		if modifier && (len(code) != 2) || !modifier && !validHCPCS(code) {
			return nil, fmt.Errorf("line %d: %q is not a HCPCS code or modifier: %w", line, code, ErrFormat)
		}
		if _, dup := at[code]; dup {
			return nil, fmt.Errorf("line %d: code %s repeats: %w", line, code, ErrFormat)
		}
		r := row{code: code, display: long, short: field(rec, cols, "short description"), status: "active",
			billable: !modifier, attrs: map[string]string{}}
		if r.display == "" {
			r.display = r.short
		}
		if modifier {
			r.category = "modifier"
		} else {
			r.category = code[:1]
		}
		for col, key := range anwebAttrs {
			if v := field(rec, cols, col); v != "" {
				r.attrs[key] = v
			}
		}
		if r.effective, err = yyyymmdd(field(rec, cols, "act eff dt")); err != nil {
			return nil, fmt.Errorf("line %d: ACT EFF DT: %w", line, ErrFormat)
		}
		if r.terminated, err = yyyymmdd(field(rec, cols, "term dt")); err != nil {
			return nil, fmt.Errorf("line %d: TERM DT: %w", line, ErrFormat)
		}
		if add := field(rec, cols, "add dt"); add != "" {
			r.attrs["added"] = add
		}
		if !r.terminated.IsZero() {
			r.status, r.billable = "terminated", false
		}
		at[code] = len(rows)
		rows = append(rows, r)
	}
}

// ImportCPT imports CPT codes from a user-supplied CSV: code,description[,...] with or without a
// header row. CPT is licensed by the AMA: the file is the user's, is never committed, and its text
// stays in the user's database. Codes are 4 digits followed by a digit or F, T, U or M.
func ImportCPT(ctx context.Context, db *pgxpool.Pool, r io.Reader, opt ImportOptions) (ImportStats, error) {
	started := time.Now()
	cr := csv.NewReader(newCountingReader(r, opt.Progress))
	cr.FieldsPerRecord = -1
	var rows []row
	seen := map[string]bool{}
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return ImportStats{}, fmt.Errorf("import cpt: line %d: %w", line, err)
		}
		if len(rec) == 0 || (len(rec) == 1 && strings.TrimSpace(rec[0]) == "") {
			continue
		}
		code := strings.ToUpper(strings.TrimSpace(strings.TrimPrefix(rec[0], "\ufeff")))
		if !validCPT(code) {
			if line == 1 {
				continue // a header row
			}
			return ImportStats{}, fmt.Errorf("import cpt: line %d: %q is not a CPT code: %w", line, code, ErrFormat)
		}
		if len(rec) < 2 || strings.TrimSpace(rec[1]) == "" {
			return ImportStats{}, fmt.Errorf("import cpt: line %d: no description: %w", line, ErrFormat)
		}
		if seen[code] {
			return ImportStats{}, fmt.Errorf("import cpt: line %d: code %s repeats: %w", line, code, ErrFormat)
		}
		seen[code] = true
		rows = append(rows, row{code: code, display: strings.TrimSpace(rec[1]), billable: true, status: "active",
			category: cptSection(code)})
	}
	if len(rows) == 0 {
		return ImportStats{}, fmt.Errorf("import cpt: no codes: %w", ErrFormat)
	}
	return store(ctx, db, CPT, FormatCPTCSV, rows, opt, started)
}

func validCPT(c string) bool {
	if len(c) != 5 {
		return false
	}
	for i := 0; i < 4; i++ {
		if c[i] < '0' || c[i] > '9' {
			return false
		}
	}
	switch l := c[4]; {
	case l >= '0' && l <= '9', l == 'F', l == 'T', l == 'U', l == 'M':
		return true
	}
	return false
}

// cptSection names the CPT range a code falls in (category I sections by number; II, III, PLA by
// letter), Billy's own coarse grouping.
func cptSection(c string) string {
	switch c[4] {
	case 'F':
		return "category-ii"
	case 'T':
		return "category-iii"
	case 'U':
		return "pla"
	case 'M':
		return "maaa"
	}
	switch {
	case c >= "99091" && c <= "99499":
		return "evaluation-management"
	case c >= "00100" && c <= "01999":
		return "anesthesia"
	case c >= "10004" && c <= "69990":
		return "surgery"
	case c >= "70010" && c <= "79999":
		return "radiology"
	case c >= "80047" && c <= "89398":
		return "pathology-laboratory"
	default:
		return "medicine"
	}
}
