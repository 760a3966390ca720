package coder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/pg/pgtest"
	"github.com/iambilly/billy/internal/shareddata"
	"github.com/iambilly/billy/pipeline/coder"
	"github.com/iambilly/billy/pipeline/codes"
)

// devCase is one encounter of the development set: testdata/NN-slug.txt and its sidecar .json.
type devCase struct {
	Name    string
	Text    string
	Patient struct {
		BirthDate string `json:"birthDate"`
		Sex       string `json:"sex"`
	} `json:"patient"`
	ServiceDate    string   `json:"serviceDate"`
	Established    bool     `json:"established"`
	PlaceOfService string   `json:"placeOfService"`
	Diagnoses      []string `json:"diagnoses"`
	Procedures     []struct {
		Code      string   `json:"code"`
		Units     int      `json:"units"`
		Modifiers []string `json:"modifiers"`
	} `json:"procedures"`
	EM          string   `json:"em"`
	EMModifiers []string `json:"emModifiers"`
	Notes       string   `json:"notes"`
}

func (c devCase) input(t testing.TB) coder.Input {
	d, err := time.Parse(time.DateOnly, c.ServiceDate)
	if err != nil {
		t.Fatalf("%s: serviceDate: %v", c.Name, err)
	}
	return coder.Input{Transcript: c.Text, Patient: coder.Patient{BirthDate: c.Patient.BirthDate, Sex: c.Patient.Sex},
		ServiceDate: d, Established: c.Established, PlaceOfService: c.PlaceOfService}
}

func loadCases(t testing.TB) []devCase { return loadCasesFrom(t, "testdata") }

func loadCasesFrom(t testing.TB, dir string) []devCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no development cases: %v", err)
	}
	var out []devCase
	for _, f := range files {
		var c devCase
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		txt, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".txt")
		if err != nil {
			t.Fatal(err)
		}
		c.Name, c.Text = strings.TrimSuffix(filepath.Base(f), ".json"), string(txt)
		out = append(out, c)
	}
	return out
}

// importCodeSets loads the shared ICD-10-CM FY2026 and HCPCS 2025 files into a fresh database, as
// `make run` does (scripts/codes.sh → billy codes import): ICD-10-CM with the category, section and
// chapter tables next to the codes file, then HCPCS.
func importCodeSets(t testing.TB) *pgxpool.Pool {
	t.Helper()
	db := pgtest.NewPool(t)
	if err := importInto(db); err != nil {
		t.Fatal(err)
	}
	return db
}

func importInto(db *pgxpool.Pool) error {
	dir, err := shareddata.Dir()
	if err != nil {
		return err
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var openErr error
	open := func(parts ...string) *os.File {
		f, err := os.Open(filepath.Join(append([]string{dir}, parts...)...))
		if err != nil {
			openErr = err
			return nil
		}
		files = append(files, f)
		return f
	}
	icd, cats, secs, chaps := open("icd10cm", "icd10cm-codes-2026.txt"), open("icd10cm", "icd10cm-categories-April-1-2026.csv"),
		open("icd10cm", "icd10cm-sections-April-1-2026.csv"), open("icd10cm", "icd10cm-chapters-April-1-2026.csv")
	hcpcs := open("hcpcs", "hcpcs_level2_2025.csv")
	if openErr != nil {
		return openErr
	}
	ctx := context.Background()
	if _, err := codes.ImportICD10CM(ctx, db, icd, codes.ICD10CMOptions{
		ImportOptions: codes.ImportOptions{Version: "2026"}, Categories: cats, Sections: secs, Chapters: chaps,
	}); err != nil {
		return err
	}
	_, err = codes.ImportHCPCS(ctx, db, hcpcs, codes.ImportOptions{Version: "2025-10"})
	return err
}

// sharedSet is the code set most tests read: imported once per test binary (the import takes
// seconds; the set is read-only and stays valid after its database is dropped).
var sharedSet struct {
	once sync.Once
	set  *codes.Set
	err  error
}

// loadSet returns the shared ICD-10-CM, HCPCS and built-in CPT set (see importCodeSets).
func loadSet(t testing.TB) *codes.Set {
	t.Helper()
	sharedSet.once.Do(func() {
		db := pgtest.NewPool(t)
		if err := importInto(db); err != nil {
			sharedSet.err = err
			return
		}
		sharedSet.set, sharedSet.err = codes.LoadSet(context.Background(), db)
	})
	if sharedSet.err != nil {
		t.Fatal(sharedSet.err)
	}
	return sharedSet.set
}

type prf struct{ tp, fp, fn int }

func (s prf) scores() (p, r, f float64) {
	if s.tp+s.fp > 0 {
		p = float64(s.tp) / float64(s.tp+s.fp)
	}
	if s.tp+s.fn > 0 {
		r = float64(s.tp) / float64(s.tp+s.fn)
	}
	if p+r > 0 {
		f = 2 * p * r / (p + r)
	}
	return
}

func (s *prf) add(want, got []string) (missing, extra []string) {
	w := map[string]int{}
	for _, x := range want {
		w[x]++
	}
	for _, x := range got {
		if w[x] > 0 {
			w[x]--
			s.tp++
		} else {
			s.fp++
			extra = append(extra, x)
		}
	}
	for x, n := range w {
		for range n {
			s.fn++
			missing = append(missing, x)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return
}

func dedupe(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}

// TestDevelopmentSet scores the built-in coder on the 50 hand-written encounters of testdata/
// (expected codes written first, by hand, as a human coder would assign them): micro
// precision/recall/F1 for diagnoses and for procedure codes, and E/M accuracy (code; "no E/M" when
// none is expected). It fails below the floors.
//
// First honest measurement (the rules as first written, run once on the finished set before any
// change made in the light of it): diagnoses P 0.823 R 0.939 F1 0.877 (tp 93 fp 20 fn 6);
// procedures P 0.913 R 0.894 F1 0.903 (tp 42 fp 4 fn 5); E/M 43/50 = 0.860.
// Floors, set from that measurement less a margin for rule changes: diagnoses F1 0.85, procedures
// F1 0.85, E/M accuracy 0.80. The set was written by the engineer who wrote the rules, so these
// numbers are optimistic for unseen notes; they guard against regressions, they are not a claim of
// real-world accuracy.
func TestDevelopmentSet(t *testing.T) {
	t.Parallel()
	scoreSet(t, loadSet(t), loadCases(t), floorDxF1, floorProcF1, floorEMAccuracy)
}

// TestHeldOutSet scores the built-in coder on 10 encounters of testdata/heldout/, written after the
// rules were frozen and never used to change them: the honest estimate.
//
// First measurement, before any change: diagnoses P 0.950 R 1.000 F1 0.974 (tp 19 fp 1 fn 0);
// procedures P 0.857 R 0.667 F1 0.750 (tp 6 fp 1 fn 3); E/M 8/10. The misses showed generic gaps
// (SOAP "S:/O:/A:/P:" headers, a dialogue question about others' smoking, "X was injected" word
// order, an oral prescription "sent" in dialogue, POC INR missing from the procedure list), which
// were then fixed, so this set is no longer strictly held out; the numbers above are the honest
// estimate. Floors: dx F1 0.90, procedure F1 0.65, E/M 0.70.
func TestHeldOutSet(t *testing.T) {
	t.Parallel()
	scoreSet(t, loadSet(t), loadCasesFrom(t, filepath.Join("testdata", "heldout")), floorHeldOutDxF1, floorHeldOutProcF1, floorHeldOutEM)
}

// scoreSet codes every case, logs micro precision/recall/F1 and E/M accuracy, and fails below the
// floors.
func scoreSet(t *testing.T, set *codes.Set, cs []devCase, floorDx, floorProc, floorEM float64) {
	t.Helper()
	b := coder.NewBuiltin(set)
	var dx, px prf
	emOK, em25OK, unitsOK, unitsN := 0, 0, 0, 0
	var report strings.Builder
	for _, c := range cs {
		// The expected codes themselves must exist and be billable.
		for _, code := range c.Diagnoses {
			if cc, ok := set.Get(codes.ICD10CM, code); !ok || !cc.Billable {
				t.Errorf("%s: expected diagnosis %s is not a billable ICD-10-CM code", c.Name, code)
			}
		}
		in := c.input(t)
		res, err := b.Code(t.Context(), in)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		checkEvidence(t, c.Name, in.Transcript, res)
		var gotDx []string
		for _, d := range res.Diagnoses {
			gotDx = append(gotDx, d.Code)
		}
		dmiss, dextra := dx.add(dedupe(c.Diagnoses), gotDx)
		var wantP, gotP []string
		wantUnits := map[string]string{}
		for _, p := range c.Procedures {
			wantP = append(wantP, p.Code)
			wantUnits[p.Code] = fmt.Sprint(p.Units, p.Modifiers)
		}
		for _, l := range res.Lines {
			gotP = append(gotP, l.Code)
			if w, ok := wantUnits[l.Code]; ok {
				unitsN++
				mods := l.Modifiers
				if len(mods) == 0 {
					mods = nil
				}
				if w == fmt.Sprint(l.Units, mods) {
					unitsOK++
				} else {
					fmt.Fprintf(&report, "  %s: %s units/modifiers want %s got %d %v\n", c.Name, l.Code, w, l.Units, mods)
				}
			}
		}
		pmiss, pextra := px.add(wantP, gotP)
		gotEM, gotMods := "", []string(nil)
		if res.EM != nil {
			gotEM, gotMods = res.EM.Code, res.EM.Modifiers
		}
		if gotEM == c.EM {
			emOK++
			if fmt.Sprint(gotMods) == fmt.Sprint(c.EMModifiers) || (len(gotMods) == 0 && len(c.EMModifiers) == 0) {
				em25OK++
			} else {
				fmt.Fprintf(&report, "  %s: E/M modifiers want %v got %v\n", c.Name, c.EMModifiers, gotMods)
			}
		}
		if len(dmiss)+len(dextra)+len(pmiss)+len(pextra) > 0 || gotEM != c.EM {
			fmt.Fprintf(&report, "  %s: dx -%v +%v | proc -%v +%v | E/M want %q got %q", c.Name, dmiss, dextra, pmiss, pextra, c.EM, gotEM)
			if res.EM != nil && res.EM.MDM != nil {
				fmt.Fprintf(&report, " (MDM %s: problems %s, data %s, risk %s; %d min)", res.EM.MDM.Level, res.EM.MDM.Problems, res.EM.MDM.Data, res.EM.MDM.Risk, res.EM.Minutes)
			}
			report.WriteString("\n")
		}
	}
	dp, dr, df := dx.scores()
	pp, pr, pf := px.scores()
	emAcc := float64(emOK) / float64(len(cs))
	t.Logf("%d encounters", len(cs))
	t.Logf("diagnoses:  P %.3f R %.3f F1 %.3f (tp %d fp %d fn %d)", dp, dr, df, dx.tp, dx.fp, dx.fn)
	t.Logf("procedures: P %.3f R %.3f F1 %.3f (tp %d fp %d fn %d); units+modifiers exact on %d/%d matched lines", pp, pr, pf, px.tp, px.fp, px.fn, unitsOK, unitsN)
	t.Logf("E/M: %d/%d = %.3f exact code; %d/%d with modifiers", emOK, len(cs), emAcc, em25OK, len(cs))
	if testing.Verbose() || os.Getenv("BILLY_DEVSET_REPORT") != "" {
		t.Logf("misses:\n%s", report.String())
	}
	if df < floorDx || pf < floorProc || emAcc < floorEM {
		t.Errorf("below the floors (dx F1 %.2f, procedure F1 %.2f, E/M %.2f): dx F1 %.3f, procedure F1 %.3f, E/M %.3f\n%s",
			floorDx, floorProc, floorEM, df, pf, emAcc, report.String())
	}
}

// Floors of TestDevelopmentSet and TestHeldOutSet (see their doc comments).
const (
	floorDxF1       = 0.85
	floorProcF1     = 0.85
	floorEMAccuracy = 0.80

	floorHeldOutDxF1   = 0.90
	floorHeldOutProcF1 = 0.65
	floorHeldOutEM     = 0.70
)

// checkEvidence asserts every span quotes the transcript at its offsets.
func checkEvidence(t *testing.T, name, text string, res *coder.Result) {
	t.Helper()
	check := func(what string, sps []coder.Span) {
		if len(sps) == 0 {
			t.Errorf("%s: %s has no evidence", name, what)
		}
		for _, sp := range sps {
			if sp.Start < 0 || sp.End > len(text) || text[sp.Start:sp.End] != sp.Text {
				t.Errorf("%s: %s evidence %+v does not quote the transcript", name, what, sp)
			}
		}
	}
	for _, d := range res.Diagnoses {
		check("diagnosis "+d.Code, d.Evidence)
	}
	for _, l := range res.Lines {
		check("line "+l.Code, l.Evidence)
		if len(l.DiagnosisPointers) == 0 || len(l.DiagnosisPointers) > 4 {
			t.Errorf("%s: line %s has pointers %v", name, l.Code, l.DiagnosisPointers)
		}
		for _, p := range l.DiagnosisPointers {
			if p < 1 || p > len(res.Diagnoses) {
				t.Errorf("%s: line %s points to %d of %d diagnoses", name, l.Code, p, len(res.Diagnoses))
			}
		}
	}
	if res.EM != nil {
		check("E/M "+res.EM.Code, res.EM.Evidence)
	}
	if len(res.Diagnoses) > coder.MaxDiagnoses {
		t.Errorf("%s: %d diagnoses", name, len(res.Diagnoses))
	}
}

// TestDictionaryCodesExist checks that every code the built-in coder's tables can emit exists and
// is billable in the shared FY2026 ICD-10-CM and 2025 HCPCS files (CPT codes against Billy's
// built-in list), so a typo in the tables cannot reach a claim silently.
func TestDictionaryCodesExist(t *testing.T) {
	t.Parallel()
	set := loadSet(t)
	date := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
	for code, from := range coder.DictionaryCodes() {
		sys := codes.ICD10CM
		switch {
		case len(code) == 5 && code[0] >= '0' && code[0] <= '9':
			sys = codes.CPT
		case len(code) == 5 && !strings.Contains(code, "."):
			sys = codes.HCPCS
		}
		c, ok := set.Get(sys, code)
		if !ok || !c.BillableOn(date) {
			t.Errorf("%s (%s): %s code missing or not billable", code, from, sys)
		}
	}
}
