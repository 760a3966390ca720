package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/iambilly/billy/conformance"
	"github.com/iambilly/billy/internal/npmtest"
)

// chromiumRun runs headless Debian Chromium (scripts/browser-deps.sh installs it) with args.
func chromiumRun(t *testing.T, chromium string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=3000"}
	out, err := exec.CommandContext(ctx, chromium, append(base, args...)...).Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return out
}

// TestConformanceReportInBrowser opens the HTML report of a run against Billy in Chromium: a
// screenshot of the whole report, and the DOM with a status filter given in the URL's hash, where
// only the failed checks may be shown. Billy runs behind the fault proxy ignoring If-Match, so the
// report has failures to show.
func TestConformanceReportInBrowser(t *testing.T) {
	t.Parallel()
	chromium := npmtest.Tool(t, "chromium")
	p, b := startFaultyBilly(t)
	p.cur.Store(faultNamed(t, "If-Match ignored"))
	cfg := b.config(t)
	cfg.Progress = nil
	cfg.Only = regexp.MustCompile(`^(crud|errors|smart|conditional)/`)
	rep, err := conformance.Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	failed := rep.Counts[conformance.SHALL][conformance.Fail] + rep.Counts[conformance.SHOULD][conformance.Fail] + rep.Counts[conformance.MAY][conformance.Fail]
	if failed == 0 {
		t.Fatal("the run has no failure to show")
	}
	dir := t.TempDir()
	if d := os.Getenv("BILLY_CONFORMANCE_REPORT_DIR"); d != "" {
		dir = d
	}
	page := filepath.Join(dir, "browser-report.html")
	if err := writeReports(rep, page, ""); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "browser-report.png")
	chromiumRun(t, chromium, "--window-size=1280,1400", "--screenshot="+shot, "file://"+page)
	if st, err := os.Stat(shot); err != nil || st.Size() < 10000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)

	dom := string(chromiumRun(t, chromium, "--dump-dom", "file://"+page+"#status=fail&level=SHALL"))
	checkRE := regexp.MustCompile(`<div class="check (\w+)( hidden)?" data-status="(\w+)" data-level="(\w+)"`)
	shown := 0
	for _, m := range checkRE.FindAllStringSubmatch(dom, -1) {
		visible := m[2] == ""
		want := m[3] == "fail" && m[4] == "SHALL"
		if visible != want {
			t.Errorf("filter status=fail&level=SHALL: a %s %s check is visible=%v", m[4], m[3], visible)
		}
		if visible {
			shown++
		}
	}
	if shown != rep.Counts[conformance.SHALL][conformance.Fail] || shown == 0 {
		t.Errorf("%d checks shown, want the %d failed SHALL checks", shown, rep.Counts[conformance.SHALL][conformance.Fail])
	}
	if !strings.Contains(dom, `<option selected="">fail</option>`) && !strings.Contains(dom, "checks shown") {
		t.Errorf("the filter controls do not reflect the hash")
	}
	if want := regexp.MustCompile(`>\d+ of \d+ checks shown<`); !want.MatchString(dom) {
		t.Error("no count of the checks shown")
	}
}
