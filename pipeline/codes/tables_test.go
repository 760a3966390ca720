package codes_test

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/iambilly/billy/internal/shareddata"
	"github.com/iambilly/billy/pipeline/codes"
)

// TestIndexTables spot-checks the embedded index tables against the published ones and checks that
// every complete code they name is a code of the FY2026 code file (T-codes with a 7th character).
func TestIndexTables(t *testing.T) {
	t.Parallel()
	find := func(ts []codes.IndexTerm, path ...string) codes.IndexTerm {
		for _, x := range ts {
			if slices.Equal(x.Path, path) {
				return x
			}
		}
		t.Fatalf("%v not found", path)
		return codes.IndexTerm{}
	}
	if got := find(codes.NeoplasmTable(), "Neoplasm, neoplastic", "lung").Codes; !slices.Equal(got, []string{"C34.9-", "C78.0-", "D02.2-", "D14.3-", "D38.1", "D49.1"}) {
		t.Errorf("neoplasm of lung = %v", got)
	}
	if got := find(codes.DrugTable(), "Acetaminophen").Codes; !slices.Equal(got, []string{"T39.1X1", "T39.1X2", "T39.1X3", "T39.1X4", "T39.1X5", "T39.1X6"}) {
		t.Errorf("acetaminophen = %v", got)
	}
	if got := find(codes.DrugTable(), "Levodopa", "with carbidopa").Codes[codes.DrugAdverseEffect]; got != "T42.8X5" {
		t.Errorf("levodopa with carbidopa, adverse effect = %v", got)
	}
	if n := len(codes.DrugTable()); n < 7000 {
		t.Errorf("%d drug terms", n)
	}
	if n := len(codes.ExternalCauseIndex()); n < 7000 {
		t.Errorf("%d external cause terms", n)
	}

	dir, err := shareddata.Dir()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "icd10cm", "icd10cm-codes-2026.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	billable := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if c := strings.TrimSpace(sc.Text()[:min(8, len(sc.Text()))]); c != "" {
			billable[c] = true
		}
	}
	for _, table := range [][]codes.IndexTerm{codes.DrugTable(), codes.NeoplasmTable(), codes.ExternalCauseIndex()} {
		for _, term := range table {
			for _, c := range term.Codes {
				if c == "" || strings.HasSuffix(c, "-") {
					continue
				}
				u := strings.ReplaceAll(c, ".", "")
				if strings.HasPrefix(u, "T") && len(u) == 6 {
					u += "A" // poisoning, adverse effect and underdosing take the encounter
				}
				if !billable[u] && !hasChildren(billable, u) {
					t.Errorf("%v: %s is not a code or category of the FY2026 code file", term.Path, c)
				}
			}
		}
	}
}

// hasChildren reports a non-billable header whose subdivisions are billable (C34.9 of C34.90...).
func hasChildren(billable map[string]bool, prefix string) bool {
	for c := range billable {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

// TestPayments spot-checks the embedded CMS fee-schedule and MUE data against the published rows.
func TestPayments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code           string
		global, bilat  string
		minor, addOn   bool
		mue            int
		nonFacilityRVU float64
	}{
		{"69210", "000", "2", true, false, 1, 1.44},
		{"17110", "010", "0", true, false, 1, 3.40},
		{"17003", "ZZZ", "0", false, true, 13, 0.20},
		{"20610", "000", "1", true, false, 2, 1.96},
		{"73630", "XXX", "3", false, false, 3, 1.02},
		{"95004", "XXX", "0", false, false, 80, 0.11},
	}
	for _, tc := range tests {
		p, ok := codes.PaymentOf(tc.code)
		if !ok {
			t.Errorf("%s: not found", tc.code)
			continue
		}
		if p.GlobalDays != tc.global || p.Bilateral != tc.bilat || p.MinorProcedure() != tc.minor || p.AddOn() != tc.addOn || p.NonFacilityRVU != tc.nonFacilityRVU {
			t.Errorf("%s = %+v", tc.code, p)
		}
		if tc.mue != 0 && p.MUE != tc.mue {
			t.Errorf("%s: MUE %d, want %d", tc.code, p.MUE, tc.mue)
		}
	}
	if p, _ := codes.PaymentOf("J3301"); p.MUE != 16 {
		t.Errorf("J3301 MUE %d, want 16", p.MUE)
	}
	if p, _ := codes.PaymentOf("20610"); p.Fee(false) < 63 || p.Fee(false) > 64 {
		t.Errorf("20610 office fee %.2f, want 1.96 RVU x 32.3465", p.Fee(false))
	}
}
