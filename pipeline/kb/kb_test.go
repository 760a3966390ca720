package kb_test

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/pg/pgtest"
	"github.com/iambilly/billy/internal/shareddata"
	"github.com/iambilly/billy/pipeline/codes"
	"github.com/iambilly/billy/pipeline/embed"
	"github.com/iambilly/billy/pipeline/kb"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestChunkPages(t *testing.T) {
	t.Parallel()
	var sb strings.Builder
	for i := 0; sb.Len() < 5000; i++ {
		sb.WriteString("Sentence number ")
		sb.WriteString(strings.Repeat("x", i%7))
		sb.WriteString(" ends here. ")
	}
	long := sb.String()
	tests := []struct {
		name  string
		pages []kb.Page
		min   int
	}{
		{"one short page", []kb.Page{{Number: 1, Text: "Short text."}}, 1},
		{"long unpaged", []kb.Page{{Text: long}}, 6},
		{"two pages never merge", []kb.Page{{Number: 1, Text: "Page one text."}, {Number: 2, Text: long}}, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cs := kb.ChunkPages(tc.pages, kb.ChunkSize, kb.ChunkOverlap)
			if len(cs) < tc.min {
				t.Fatalf("%d chunks, want at least %d", len(cs), tc.min)
			}
			for i, c := range cs {
				if len(c.Text) > kb.ChunkSize {
					t.Errorf("chunk %d has %d bytes", i, len(c.Text))
				}
				if i > 0 && cs[i-1].Page == c.Page && len(c.Text) > 200 {
					// consecutive chunks overlap: the next starts with words the previous ended with
					head := strings.Fields(c.Text)[0]
					if !strings.Contains(cs[i-1].Text[len(cs[i-1].Text)/2:], head) {
						t.Errorf("chunk %d does not overlap its predecessor", i)
					}
				}
			}
			var pages []int
			for _, c := range cs {
				pages = append(pages, c.Page)
			}
			if tc.pages[0].Number == 1 && cs[0].Page != 1 {
				t.Errorf("first chunk page = %d", cs[0].Page)
			}
			if last := tc.pages[len(tc.pages)-1].Number; cs[len(cs)-1].Page != last {
				t.Errorf("last chunk page = %d, want %d", cs[len(cs)-1].Page, last)
			}
		})
	}
}

func TestReadDocumentPDF(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "guide.pdf")
	if err := os.WriteFile(path, minimalPDF([][]string{
		{"Section I.A Conventions", "Use of codes for reporting purposes."},
		{"Excludes1 means NOT CODED HERE.", "The two conditions cannot occur together."},
	}), 0o644); err != nil {
		t.Fatal(err)
	}
	_, pages, err := kb.ReadDocument(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 2 || pages[0].Number != 1 || pages[1].Number != 2 {
		t.Fatalf("pages = %+v", pages)
	}
	if !strings.Contains(pages[1].Text, "Excludes1 means NOT CODED HERE.") || !strings.Contains(pages[1].Text, "cannot occur together") {
		t.Errorf("page 2 text = %q", pages[1].Text)
	}
	if strings.Contains(pages[0].Text, "Excludes1") {
		t.Errorf("page 1 has page 2's text: %q", pages[0].Text)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.pdf"), []byte("%PDF-1.4 not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kb.ReadDocument(filepath.Join(dir, "broken.pdf")); err == nil {
		t.Error("a broken PDF must be an error")
	}
}

func newKB(t *testing.T, db *pgxpool.Pool) *kb.KB {
	t.Helper()
	k, err := kb.Open(t.Context(), db, embed.NewHash(0), kb.Options{Logger: quiet, ForceExact: true, RefreshEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestIngestDocuments(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t)
	ctx := t.Context()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	md := write("guidelines/outpatient.md", "# Outpatient guidelines\n\n## Uncertain diagnosis\n\nDo not code diagnoses documented as **probable**, "+
		"*suspected*, questionable, rule out, or working diagnosis. Rather, code the condition(s) to the highest degree of certainty "+
		"for that encounter, such as symptoms, signs, abnormal test results.\n\n| a | b |\n|---|---|\n| x | y |\n")
	write("notes/time.txt", "Total time on the date of the encounter includes preparing to see the patient, reviewing tests, and documenting in the record.")
	pdfPath := filepath.Join(dir, "manual.pdf")
	if err := os.WriteFile(pdfPath, minimalPDF([][]string{
		{"Chapter 9 Diseases of the circulatory system"},
		{"Hypertension with heart disease is assigned to category I11.", "A causal relationship is presumed."},
	}), 0o644); err != nil {
		t.Fatal(err)
	}
	write("ignored.docx", "binary")

	k := newKB(t, db)
	var stages []string
	st, err := k.Ingest(ctx, []string{dir, filepath.Join(dir, "ignored.docx")}, func(p kb.Progress) { stages = append(stages, p.Stage) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 3 || st.Chunks < 3 || len(st.Skipped) != 1 || !strings.Contains(st.Skipped[0], "unsupported") {
		t.Fatalf("stats = %+v", st)
	}
	if !strings.Contains(strings.Join(stages, ","), "embed") {
		t.Errorf("no embed progress: %v", stages)
	}

	tests := []struct {
		query    string
		source   string
		page     int
		contains string
	}{
		{"hypertension with heart disease category", pdfPath, 2, "category I11"},
		{"rule out suspected probable diagnosis uncertain", md, 0, "highest degree of certainty"},
		{"total time on the date of the encounter", filepath.Join(dir, "notes/time.txt"), 0, "documenting"},
	}
	for _, tc := range tests {
		hits, err := k.Search(ctx, tc.query, 3, kb.Filter{Kind: kb.KindManual})
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) == 0 || hits[0].Source != tc.source || hits[0].Page != tc.page || !strings.Contains(hits[0].Text, tc.contains) || hits[0].Kind != kb.KindManual {
			t.Errorf("Search(%q) top = %+v", tc.query, hits)
		}
	}
	if hits, _ := k.Search(ctx, "guidelines", 10, kb.Filter{}); strings.Contains(hits[0].Text, "**") || strings.Contains(hits[0].Text, "|---") {
		t.Errorf("markdown markup kept: %q", hits[0].Text)
	}

	// Unchanged files are skipped; a changed file replaces its chunks.
	again, err := k.Ingest(ctx, []string{dir}, nil)
	if err != nil || again.Files != 0 || len(again.Skipped) != 3 {
		t.Fatalf("re-ingest = %+v, %v", again, err)
	}
	write("notes/time.txt", "Prolonged services are reported when total time exceeds the highest level by 15 minutes.")
	changed, err := k.Ingest(ctx, []string{dir}, nil)
	if err != nil || changed.Files != 1 {
		t.Fatalf("changed ingest = %+v, %v", changed, err)
	}
	hits, _ := k.Search(ctx, "total time on the date of the encounter documenting", 10, kb.Filter{Kind: kb.KindManual})
	for _, h := range hits {
		if strings.Contains(h.Text, "preparing to see the patient") {
			t.Errorf("old chunk still searchable: %+v", h)
		}
	}
	srcs, err := k.Sources(ctx)
	if err != nil || len(srcs) != 3 {
		t.Fatalf("Sources = %+v, %v", srcs, err)
	}

	// Another process (a second KB on the same database) sees the same chunks, and a deletion.
	other := newKB(t, db)
	if other.Len() != k.Len() || k.Len() == 0 {
		t.Errorf("second KB holds %d vectors, first %d", other.Len(), k.Len())
	}
	if err := k.DeleteSource(ctx, md); err != nil {
		t.Fatal(err)
	}
	if err := other.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if other.Len() != k.Len() {
		t.Errorf("after delete: second KB holds %d vectors, first %d", other.Len(), k.Len())
	}
}

func TestIndexCodesAndSearch(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t)
	ctx := t.Context()
	dir, err := shareddata.Dir()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "icd10cm", "icd10cm-codes-2026.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := codes.ImportICD10CM(ctx, db, f, codes.ICD10CMOptions{ImportOptions: codes.ImportOptions{Version: "2026"}}); err != nil {
		t.Fatal(err)
	}
	k := newKB(t, db)
	st, err := k.IndexCodes(ctx, codes.NewStore(db), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 1 || st.Chunks != 74719 || k.Len() != 74719 {
		t.Fatalf("stats %+v, len %d", st, k.Len())
	}
	t.Logf("indexed %d codes in %v", st.Chunks, st.Elapsed)
	tests := []struct {
		query string
		want  string
		top   int
	}{
		{"HTN", "I10", 1},
		{"high blood pressure", "I10", 3},
		{"type 2 diabetes mellitus with diabetic chronic kidney disease", "E11.22", 1},
		{"T2DM with CKD", "E11.22", 5},
		{"sprain of right ankle initial encounter", "S93.401A", 10},
		{"acute upper respiratory infection", "J06.9", 3},
		{"low back pain", "M54.50", 3},
	}
	for _, tc := range tests {
		hits, err := k.Search(ctx, tc.query, tc.top, kb.Filter{Kind: kb.KindCode, System: codes.ICD10CM})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, h := range hits {
			found = found || h.Code == tc.want
			if h.Kind != kb.KindCode || h.System != codes.ICD10CM || h.Source != "codes:icd10cm@2026" {
				t.Errorf("hit %+v", h)
			}
		}
		if !found {
			t.Errorf("Search(%q) top %d = %v, want %s", tc.query, tc.top, codesOf(hits), tc.want)
		}
	}
	again, err := k.IndexCodes(ctx, codes.NewStore(db), nil)
	if err != nil || again.Files != 0 {
		t.Errorf("re-index = %+v, %v", again, err)
	}
}

func codesOf(hits []kb.Hit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.Code)
	}
	return out
}

// TestSearchWhileIngesting runs searches concurrently with ingests (meaningful under -race).
func TestSearchWhileIngesting(t *testing.T) {
	t.Parallel()
	db := pgtest.NewPool(t)
	ctx := t.Context()
	k := newKB(t, db)
	dir := t.TempDir()
	for i := range 4 {
		p := filepath.Join(dir, "doc"+string(rune('a'+i))+".txt")
		text := strings.Repeat("Hypertension with chronic kidney disease is coded to category I12. ", 20+i)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := k.Ingest(ctx, []string{dir}, nil)
		done <- err
	}()
	for range 50 {
		if _, err := k.Search(ctx, "hypertensive chronic kidney disease", 5, kb.Filter{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	hits, err := k.Search(ctx, "hypertensive chronic kidney disease", 5, kb.Filter{})
	if err != nil || len(hits) != 5 {
		t.Fatalf("after ingest: %d hits, %v", len(hits), err)
	}
}
