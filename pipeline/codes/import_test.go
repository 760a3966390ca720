package codes_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/pg/pgtest"
	"github.com/iambilly/billy/internal/shareddata"
	"github.com/iambilly/billy/pipeline/codes"
)

func sharedFile(t testing.TB, parts ...string) *os.File {
	t.Helper()
	dir, err := shareddata.Dir()
	if err != nil {
		t.Fatalf("shared data: %v", err)
	}
	f, err := os.Open(filepath.Join(append([]string{dir}, parts...)...))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// importICD10CM imports the shared FY2026 files with categories, sections and chapters.
func importICD10CM(t testing.TB, db *pgxpool.Pool, progress codes.ProgressFunc) codes.ImportStats {
	t.Helper()
	st, err := codes.ImportICD10CM(t.Context(), db, sharedFile(t, "icd10cm", "icd10cm-codes-2026.txt"), codes.ICD10CMOptions{
		ImportOptions: codes.ImportOptions{Version: "2026", Progress: progress},
		Categories:    sharedFile(t, "icd10cm", "icd10cm-categories-April-1-2026.csv"),
		Sections:      sharedFile(t, "icd10cm", "icd10cm-sections-April-1-2026.csv"),
		Chapters:      sharedFile(t, "icd10cm", "icd10cm-chapters-April-1-2026.csv"),
	})
	if err != nil {
		t.Fatalf("ImportICD10CM: %v", err)
	}
	return st
}

func TestImportICD10CMSharedRelease(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t)
	var mu sync.Mutex
	stages := map[string]codes.Progress{}
	st := importICD10CM(t, db, func(p codes.Progress) {
		mu.Lock()
		defer mu.Unlock()
		stages[p.Stage] = p
	})
	t.Logf("imported %d codes (%d billable) in %v", st.Codes, st.Billable, st.Elapsed)
	// 74,719 billable codes + the 1,918 categories less the 214 that are billable themselves.
	if st.Billable != 74719 || st.Codes != 74719+1918-214 || st.Format != codes.FormatICD10CMCodes {
		t.Errorf("stats = %+v", st)
	}
	if p := stages["load"]; p.Done != int64(st.Codes) || p.Total != int64(st.Codes) {
		t.Errorf("final load progress = %+v", p)
	}
	if p := stages["read"]; p.Done != 6413824 || p.Total != 6413824 {
		t.Errorf("final read progress = %+v", p)
	}

	store := codes.NewStore(db)
	ctx := t.Context()
	tests := []struct {
		code     string
		billable bool
		display  string
		section  string
		chapter  string
		sex      string
		ages     [2]int
	}{
		{"E11.9", true, "Type 2 diabetes mellitus without complications", "E08-E13", "4", "", [2]int{0, codes.NoMaxAge}},
		{"e119", true, "Type 2 diabetes mellitus without complications", "E08-E13", "4", "", [2]int{0, codes.NoMaxAge}},
		{"E11", false, "Type 2 diabetes mellitus", "E08-E13", "4", "", [2]int{0, codes.NoMaxAge}},
		{"I10", true, "Essential (primary) hypertension", "I10-I1A", "9", "", [2]int{0, codes.NoMaxAge}},
		{"O80", true, "Encounter for full-term uncomplicated delivery", "O80-O82", "15", "female", [2]int{9, 64}},
		{"N40.0", true, "Benign prostatic hyperplasia without lower urinary tract symptoms", "N40-N53", "14", "male", [2]int{0, codes.NoMaxAge}},
		{"C61", true, "Malignant neoplasm of prostate", "C60-C63", "2", "male", [2]int{0, codes.NoMaxAge}},
		{"C50.911", true, "Malignant neoplasm of unspecified site of right female breast", "C50", "2", "female", [2]int{0, codes.NoMaxAge}},
		{"C50.921", true, "Malignant neoplasm of unspecified site of right male breast", "C50", "2", "male", [2]int{0, codes.NoMaxAge}},
		{"P00.0", true, "Newborn affected by maternal hypertensive disorders", "P00-P04", "16", "", [2]int{0, 0}},
		{"Z00.129", true, "Encounter for routine child health examination without abnormal findings", "Z00-Z13", "21", "", [2]int{0, 17}},
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			c, err := store.Lookup(ctx, codes.ICD10CM, tc.code)
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			got := []any{c.Billable, c.Display, c.Section, c.Chapter, c.Edit.Sex, [2]int{c.Edit.MinAge, c.Edit.MaxAge}, c.Version}
			want := []any{tc.billable, tc.display, tc.section, tc.chapter, tc.sex, tc.ages, "2026"}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}

	if _, err := store.Lookup(ctx, codes.ICD10CM, "E11.99999"); !errors.Is(err, codes.ErrNotFound) {
		t.Errorf("Lookup invented code: err = %v, want ErrNotFound", err)
	}
	for _, tc := range []struct {
		code             string
		exists, billable bool
	}{{"E11.22", true, true}, {"E11", true, false}, {"M54.5", false, false}, {"M54.50", true, true}, {"ZZZ.9", false, false}} {
		exists, billable, err := store.Validate(ctx, codes.ICD10CM, tc.code)
		if err != nil || exists != tc.exists || billable != tc.billable {
			t.Errorf("Validate(%s) = %v, %v, %v; want %v, %v", tc.code, exists, billable, err, tc.exists, tc.billable)
		}
	}

	// Every code of the synonyms table exists and is billable in the release.
	for code := range codes.Synonyms {
		if exists, billable, err := store.Validate(ctx, codes.ICD10CM, code); err != nil || !exists || !billable {
			t.Errorf("Synonyms key %s: exists %v billable %v err %v", code, exists, billable, err)
		}
	}

	hits, err := store.Search(ctx, codes.ICD10CM, "type 2 diabetes chronic kidney disease", codes.SearchOptions{Limit: 5, BillableOnly: true})
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if len(hits) == 0 || hits[0].Code != "E11.22" {
		t.Errorf("Search top hit = %v, want E11.22", hits)
	}
	byCode, err := store.Search(ctx, codes.ICD10CM, "J45.9", codes.SearchOptions{Limit: 10})
	if err != nil || len(byCode) == 0 || !strings.HasPrefix(byCode[0].Code, "J45.9") {
		t.Errorf("Search by code prefix = %v, %v", byCode, err)
	}

	// Re-importing the same version replaces it: same counts, no duplicates.
	again := importICD10CM(t, db, nil)
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM codes WHERE system = 'icd10cm'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != again.Codes || again.Codes != st.Codes {
		t.Errorf("after re-import: %d rows, stats %d, first import %d", n, again.Codes, st.Codes)
	}
	vs, err := store.Versions(ctx)
	if err != nil || len(vs) != 1 || !vs[0].Current || vs[0].Codes != st.Codes {
		t.Errorf("Versions = %+v, %v", vs, err)
	}
}

func orderLine(n int, code string, billable bool, short, long string) string {
	b := 0
	if billable {
		b = 1
	}
	return fmt.Sprintf("%05d %-7s %d %-60s %s\r\n", n, code, b, short, long)
}

func TestImportICD10CMOrderFile(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t)
	lines := []string{
		orderLine(1, "E11", false, "Type 2 diabetes mellitus", "Type 2 diabetes mellitus"),
		orderLine(2, "E112", false, "Type 2 diabetes mellitus with kidney complications", "Type 2 diabetes mellitus with kidney complications"),
		orderLine(3, "E1122", true, "Type 2 diabetes mellitus w diabetic chronic kidney disease", "Type 2 diabetes mellitus with diabetic chronic kidney disease"),
		orderLine(4, "E119", true, "Type 2 diabetes mellitus without complications", "Type 2 diabetes mellitus without complications"),
		orderLine(5, "O80", true, "Encounter for full-term uncomplicated delivery", "Encounter for full-term uncomplicated delivery"),
	}
	st, err := codes.ImportICD10CM(t.Context(), db, strings.NewReader(strings.Join(lines, "")),
		codes.ICD10CMOptions{ImportOptions: codes.ImportOptions{Version: "sample"}})
	if err != nil {
		t.Fatalf("ImportICD10CM: %v", err)
	}
	if st.Format != codes.FormatICD10CMOrder || st.Codes != 5 || st.Billable != 3 {
		t.Errorf("stats = %+v", st)
	}
	set, err := codes.LoadSet(t.Context(), db, codes.ICD10CM)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		Billable     bool
		Display      string
		ShortDisplay string
		Sex          string
	}
	want := map[string]got{
		"E11":    {false, "Type 2 diabetes mellitus", "Type 2 diabetes mellitus", ""},
		"E11.2":  {false, "Type 2 diabetes mellitus with kidney complications", "Type 2 diabetes mellitus with kidney complications", ""},
		"E11.22": {true, "Type 2 diabetes mellitus with diabetic chronic kidney disease", "Type 2 diabetes mellitus w diabetic chronic kidney disease", ""},
		"E11.9":  {true, "Type 2 diabetes mellitus without complications", "Type 2 diabetes mellitus without complications", ""},
		"O80":    {true, "Encounter for full-term uncomplicated delivery", "Encounter for full-term uncomplicated delivery", "female"},
	}
	for code, w := range want {
		c, ok := set.Get(codes.ICD10CM, code)
		if !ok {
			t.Errorf("%s missing", code)
			continue
		}
		if d := cmp.Diff(w, got{c.Billable, c.Display, c.ShortDisplay, c.Edit.Sex}); d != "" {
			t.Errorf("%s (-want +got)\n%s", code, d)
		}
	}
}

func TestImportRejectsMalformedInputAndKeepsPreviousVersion(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t)
	ctx := t.Context()
	good := "E119    Type 2 diabetes mellitus without complications\r\nI10     Essential (primary) hypertension\r\n"
	if _, err := codes.ImportICD10CM(ctx, db, strings.NewReader(good), codes.ICD10CMOptions{ImportOptions: codes.ImportOptions{Version: "v1"}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		run  func() error
	}{
		{"icd duplicate code", func() error {
			_, err := codes.ImportICD10CM(ctx, db, strings.NewReader(good+"I10     Again\r\n"), codes.ICD10CMOptions{ImportOptions: codes.ImportOptions{Version: "v1"}})
			return err
		}},
		{"icd not a code", func() error {
			_, err := codes.ImportICD10CM(ctx, db, strings.NewReader("123     Not a code\n"), codes.ICD10CMOptions{ImportOptions: codes.ImportOptions{Version: "v1"}})
			return err
		}},
		{"icd order file with a bad line", func() error {
			in := orderLine(1, "E119", true, "x", "y") + "00002 E11\n"
			_, err := codes.ImportICD10CM(ctx, db, strings.NewReader(in), codes.ICD10CMOptions{ImportOptions: codes.ImportOptions{Version: "v1"}})
			return err
		}},
		{"hcpcs unknown header", func() error {
			_, err := codes.ImportHCPCS(ctx, db, strings.NewReader("a,b,c\n1,2,3\n"), codes.ImportOptions{Version: "x"})
			return err
		}},
		{"hcpcs bad code", func() error {
			_, err := codes.ImportHCPCS(ctx, db, strings.NewReader("code,short,long,status\n99213,x,y,active\n"), codes.ImportOptions{Version: "x"})
			return err
		}},
		{"cpt bad code", func() error {
			_, err := codes.ImportCPT(ctx, db, strings.NewReader("code,description\n99213,Visit\nE1130,Wheelchair\n"), codes.ImportOptions{Version: "x"})
			return err
		}},
		{"cpt empty", func() error {
			_, err := codes.ImportCPT(ctx, db, strings.NewReader("code,description\n"), codes.ImportOptions{Version: "x"})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); !errors.Is(err, codes.ErrFormat) {
				t.Errorf("err = %v, want ErrFormat", err)
			}
		})
	}
	if _, err := codes.ImportICD10CM(ctx, db, strings.NewReader(good), codes.ICD10CMOptions{}); err == nil {
		t.Error("import without a version succeeded")
	}
	st := codes.NewStore(db)
	if _, err := st.Lookup(ctx, codes.ICD10CM, "I10"); err != nil {
		t.Errorf("previous version damaged: %v", err)
	}
	if v, err := st.CurrentVersion(ctx, codes.HCPCS); !errors.Is(err, codes.ErrNotFound) {
		t.Errorf("HCPCS current version = %q, %v; want ErrNotFound", v, err)
	}
}

func TestImportHCPCSFormats(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t)
	ctx := t.Context()
	st2025, err := codes.ImportHCPCS(ctx, db, sharedFile(t, "hcpcs", "hcpcs_level2_2025.csv"), codes.ImportOptions{Version: "2025-10"})
	if err != nil {
		t.Fatalf("2025: %v", err)
	}
	if st2025.Format != codes.FormatHCPCS2025 || st2025.Codes != 8463 || st2025.Billable != 7258 {
		t.Errorf("2025 stats = %+v", st2025)
	}
	stANWEB, err := codes.ImportHCPCS(ctx, db, sharedFile(t, "hcpcs", "hcpcs_anweb_2020_oct_cms.csv"), codes.ImportOptions{Version: "2020-10", KeepCurrent: true})
	if err != nil {
		t.Fatalf("anweb: %v", err)
	}
	if stANWEB.Format != codes.FormatHCPCSANWEB || stANWEB.Codes != 6825+371 {
		t.Errorf("anweb stats = %+v", stANWEB)
	}
	store := codes.NewStore(db)
	if v, _ := store.CurrentVersion(ctx, codes.HCPCS); v != "2025-10" {
		t.Errorf("current version = %q, want 2025-10 (KeepCurrent)", v)
	}
	j, err := store.Lookup(ctx, codes.HCPCS, "j1885")
	if err != nil || j.Display != "Injection, ketorolac tromethamine, per 15 mg" || !j.Billable || j.Category != "J" {
		t.Errorf("J1885 = %+v, %v", j, err)
	}
	a, err := store.Lookup(ctx, codes.HCPCS, "A9155")
	if err != nil || a.Billable || a.Status != "terminated" || a.TerminationDate.Format(time.DateOnly) != "2025-03-31" {
		t.Errorf("A9155 = %+v, %v", a, err)
	}
	if !a.BillableOn(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)) || a.BillableOn(time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("A9155 BillableOn around its termination date is wrong")
	}

	// The 2020 quarter: the continuation record is appended, coverage kept, modifiers stored.
	if err := store.SetCurrent(ctx, codes.HCPCS, "2020-10"); err != nil {
		t.Fatal(err)
	}
	g, err := store.Lookup(ctx, codes.HCPCS, "G0503")
	if err != nil || !strings.HasSuffix(g.Display, "goals and are prepared for discharge from active treatment") {
		t.Errorf("G0503 continuation = %q, %v", g.Display, err)
	}
	j20, err := store.Lookup(ctx, codes.HCPCS, "J1885")
	if err != nil || j20.Attrs["coverage"] != "D" || j20.Attrs["betos"] != "O1E" || j20.EffectiveDate.Format("20060102") != "19970101" {
		t.Errorf("J1885 (2020) = %+v, %v", j20, err)
	}
	lt, err := store.Lookup(ctx, codes.HCPCS, "LT")
	if err != nil || lt.Billable || lt.Category != "modifier" {
		t.Errorf("LT modifier = %+v, %v", lt, err)
	}
}

func TestImportCPTUserFile(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t)
	ctx := t.Context()
	set0 := mustSet(t, db)
	if c, ok := set0.Get(codes.CPT, "99213"); !ok || c.Version != codes.BuiltinCPTVersion {
		t.Fatalf("before import, CPT 99213 = %+v, %v; want the built-in list", c, ok)
	}
	// A user file (descriptions invented for the test: real CPT text is AMA-licensed).
	in := "Code,Description,Extra\n99213,User text for an office visit,x\n0001F,User text for a category II code\n0042T,User text for a category III code\n"
	st, err := codes.ImportCPT(ctx, db, strings.NewReader(in), codes.ImportOptions{Version: "2026"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Codes != 3 || st.Billable != 3 {
		t.Errorf("stats = %+v", st)
	}
	set := mustSet(t, db)
	if c, ok := set.Get(codes.CPT, "99213"); !ok || c.Display != "User text for an office visit" || c.Category != "evaluation-management" {
		t.Errorf("99213 = %+v, %v", c, ok)
	}
	if _, ok := set.Get(codes.CPT, "93000"); ok {
		t.Error("with a CPT file imported the built-in list must not answer")
	}
}

func mustSet(t *testing.T, db *pgxpool.Pool) *codes.Set {
	t.Helper()
	s, err := codes.LoadSet(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
