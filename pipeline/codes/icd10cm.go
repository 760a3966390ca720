package codes

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ICD10CMOptions configures ImportICD10CM. The three CSV readers are optional; without Categories
// the 3-character headers are missing and codes carry no section or chapter.
type ICD10CMOptions struct {
	ImportOptions
	// Categories is a CSV with header "code,description,section,chapter" (the shared
	// icd10cm-categories-*.csv): non-billable 3-character headers with their block and chapter.
	Categories io.Reader
	// Sections is a CSV "section_range,chapter,description"; titles are kept on the headers.
	Sections io.Reader
	// Chapters is a CSV "chapter,description"; titles are kept on the headers.
	Chapters io.Reader
}

// ICD-10-CM input formats ImportICD10CM detects.
const (
	FormatICD10CMCodes = "icd10cm-codes" // code (7, space-padded) + space + long description
	FormatICD10CMOrder = "icd10cm-order" // order(5) code(7) billable(1) short(60) long
)

// ImportICD10CM imports an ICD-10-CM release from r, which is either the codes file
// (icd10cm-codes-YYYY.txt: every line a billable code) or the order file (icd10cm-order-YYYY.txt:
// headers and billable codes with a 0/1 flag and short descriptions); the format is detected from
// the first line. The version replaces any version of the same name, in one transaction.
func ImportICD10CM(ctx context.Context, db *pgxpool.Pool, r io.Reader, opt ICD10CMOptions) (ImportStats, error) {
	started := time.Now()
	rows, format, err := parseICD10CM(newCountingReader(r, opt.Progress))
	if err != nil {
		return ImportStats{}, fmt.Errorf("import icd10cm: %w", err)
	}
	cats, err := readCategories(opt.Categories, opt.Sections, opt.Chapters)
	if err != nil {
		return ImportStats{}, fmt.Errorf("import icd10cm: %w", err)
	}
	rows = mergeICD10CM(rows, cats)
	if opt.Source == "" {
		opt.Source = format
	}
	return store(ctx, db, ICD10CM, format, rows, opt.ImportOptions, started)
}

// parseICD10CM reads the codes file or the order file and returns its codes (dotted) and the format
// detected.
func parseICD10CM(r io.Reader) ([]row, string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var (
		rows   []row
		format string
		line   int
		seen   = map[string]int{}
	)
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r\n")
		if strings.TrimSpace(text) == "" {
			continue
		}
		if line == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
		}
		if format == "" {
			if isOrderLine(text) {
				format = FormatICD10CMOrder
			} else {
				format = FormatICD10CMCodes
			}
		}
		var rw row
		var err error
		if format == FormatICD10CMOrder {
			rw, err = parseOrderLine(text)
		} else {
			rw, err = parseCodesLine(text)
		}
		if err != nil {
			return nil, "", fmt.Errorf("line %d: %w", line, err)
		}
		if prev, dup := seen[rw.code]; dup {
			return nil, "", fmt.Errorf("line %d: code %s repeats line %d: %w", line, rw.code, prev, ErrFormat)
		}
		seen[rw.code] = line
		rows = append(rows, rw)
	}
	if err := sc.Err(); err != nil {
		return nil, "", fmt.Errorf("read: %w", err)
	}
	if len(rows) == 0 {
		return nil, "", fmt.Errorf("no codes: %w", ErrFormat)
	}
	return rows, format, nil
}

// validICD10CM checks the shape of an undotted ICD-10-CM code: a letter, then 2 to 6 letters or
// digits (FY2026 has codes such as QA00101, so the second character may be a letter).
func validICD10CM(c string) bool {
	if len(c) < 3 || len(c) > 7 || c[0] < 'A' || c[0] > 'Z' {
		return false
	}
	for i := 1; i < len(c); i++ {
		ch := c[i]
		if !(ch >= '0' && ch <= '9' || ch >= 'A' && ch <= 'Z') {
			return false
		}
	}
	return true
}

func isOrderLine(s string) bool {
	if len(s) < 17 {
		return false
	}
	for i := 0; i < 5; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s[5] == ' ' && s[13] == ' ' && (s[14] == '0' || s[14] == '1') && s[15] == ' '
}

func parseCodesLine(s string) (row, error) {
	if len(s) < 9 || s[7] != ' ' {
		// Tolerate the codes file re-wrapped with a single separator: split on the first space run.
		code, desc, ok := strings.Cut(strings.TrimSpace(s), " ")
		if !ok || !validICD10CM(code) {
			return row{}, fmt.Errorf("%q: %w", trunc(s), ErrFormat)
		}
		return icdRow(code, strings.TrimSpace(desc), "", true), nil
	}
	code := strings.TrimSpace(s[:8])
	desc := strings.TrimSpace(s[8:])
	if !validICD10CM(code) || desc == "" {
		return row{}, fmt.Errorf("%q: %w", trunc(s), ErrFormat)
	}
	return icdRow(code, desc, "", true), nil
}

func parseOrderLine(s string) (row, error) {
	if !isOrderLine(s) {
		return row{}, fmt.Errorf("%q: not an order-file line: %w", trunc(s), ErrFormat)
	}
	code := strings.TrimSpace(s[6:13])
	billable := s[14] == '1'
	var short, long string
	if len(s) > 16 {
		rest := s[16:]
		if len(rest) > 60 {
			short, long = rest[:60], rest[60:]
		} else {
			short = rest
		}
	}
	short, long = strings.TrimSpace(short), strings.TrimSpace(long)
	if long == "" {
		long = short
	}
	if !validICD10CM(code) || long == "" {
		return row{}, fmt.Errorf("%q: %w", trunc(s), ErrFormat)
	}
	return icdRow(code, long, short, billable), nil
}

func icdRow(undotted, display, short string, billable bool) row {
	code := Normalize(ICD10CM, undotted)
	return row{code: code, display: display, short: short, billable: billable,
		category: undotted[:3], edit: EditFor(code, display)}
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// category is one 3-character header from the categories CSV.
type category struct {
	code, display, section, chapter string
	sectionTitle, chapterTitle      string
}

func readCSV(r io.Reader, name string, minCols int) ([][]string, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	recs, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(recs) < 2 {
		return nil, fmt.Errorf("%s: no rows: %w", name, ErrFormat)
	}
	for i, rec := range recs[1:] {
		if len(rec) < minCols {
			return nil, fmt.Errorf("%s line %d: %d columns, want %d: %w", name, i+2, len(rec), minCols, ErrFormat)
		}
	}
	return recs[1:], nil // the header row is dropped
}

func readCategories(cats, sections, chapters io.Reader) (map[string]category, error) {
	if cats == nil {
		return nil, nil
	}
	secTitle := map[string]string{}
	if sections != nil {
		recs, err := readCSV(sections, "sections", 3)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			secTitle[strings.TrimSpace(r[0])] = strings.TrimSpace(r[2])
		}
	}
	chTitle := map[string]string{}
	if chapters != nil {
		recs, err := readCSV(chapters, "chapters", 2)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			chTitle[strings.TrimSpace(r[0])] = strings.TrimSpace(r[1])
		}
	}
	recs, err := readCSV(cats, "categories", 4)
	if err != nil {
		return nil, err
	}
	out := make(map[string]category, len(recs))
	for i, r := range recs {
		c := category{code: strings.ToUpper(strings.TrimSpace(r[0])), display: strings.TrimSpace(r[1]),
			section: strings.TrimSpace(r[2]), chapter: strings.TrimSpace(r[3])}
		if len(c.code) != 3 || !validICD10CM(c.code) {
			return nil, fmt.Errorf("categories line %d: %q is not a category: %w", i+2, c.code, ErrFormat)
		}
		c.sectionTitle, c.chapterTitle = secTitle[c.section], chTitle[c.chapter]
		out[c.code] = c
	}
	return out, nil
}

// mergeICD10CM adds block and chapter to every code and the category headers the file lacks.
func mergeICD10CM(rows []row, cats map[string]category) []row {
	if cats == nil {
		return rows
	}
	have := make(map[string]int, len(rows))
	for i := range rows {
		r := &rows[i]
		have[r.code] = i
		if c, ok := cats[r.category]; ok {
			r.section, r.chapter = c.section, c.chapter
		}
	}
	keys := make([]string, 0, len(cats))
	for k := range cats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c := cats[k]
		attrs := map[string]string{}
		if c.sectionTitle != "" {
			attrs["section_title"] = c.sectionTitle
		}
		if c.chapterTitle != "" {
			attrs["chapter_title"] = c.chapterTitle
		}
		if i, ok := have[k]; ok {
			// A billable 3-character code (I10) is its own category: keep its row, add the titles.
			rows[i].attrs = attrs
			continue
		}
		rows = append(rows, row{code: k, display: c.display, billable: false, category: k,
			section: c.section, chapter: c.chapter, edit: EditFor(k, c.display), attrs: attrs})
	}
	return rows
}
