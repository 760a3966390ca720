// Package npmtest gives tests the command-line tools and pinned npm packages they drive (headless
// Chromium, node, playwright-core, axe-core, fhirclient). It owns only the test-time install cache;
// it never runs outside tests and touches nothing of Billy's.
//
// A missing tool or an unreachable registry skips the test on a developer's machine and fails it
// under CI (CI set), so coverage cannot quietly drop. Packages are installed with `npm ci` from a
// testdata directory's package.json and package-lock.json into the user's cache, once per version
// of the two files, through a temporary directory renamed into place: concurrent runs never see half
// an install.
package npmtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// Timeout bounds the one-time npm install.
const Timeout = 5 * time.Minute

// Tool finds a command a test needs (scripts/browser-deps.sh installs them).
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed: scripts/browser-deps.sh installs it", name)
		}
		t.Skipf("%s is not installed (run scripts/browser-deps.sh)", name)
	}
	return p
}

// offlineRE matches npm's errors for a registry it cannot reach.
var offlineRE = regexp.MustCompile(`\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ENETUNREACH|EHOSTUNREACH|ETIMEDOUT)\b`)

// Modules installs the packages pinned in src (a directory with package.json and
// package-lock.json) and returns their node_modules. An install counts as complete when every path
// of need exists below node_modules. flags are added to `npm ci` (e.g. --legacy-peer-deps).
func Modules(t testing.TB, src string, need []string, flags ...string) string {
	t.Helper()
	pkg, err := os.ReadFile(filepath.Join(src, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append(append(pkg, 0), lock...))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "billy-npmtest", filepath.Base(src)+"-"+hex.EncodeToString(sum[:8]))
	complete := func(d string) bool {
		for _, f := range need {
			if _, err := os.Stat(filepath.Join(d, "node_modules", f)); err != nil {
				return false
			}
		}
		return true
	}
	if complete(dir) {
		return filepath.Join(dir, "node_modules")
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	for name, b := range map[string][]byte{"package.json": pkg, "package-lock.json": lock} {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	// --ignore-scripts: nothing needs building, and no install script may fetch a browser.
	args := append([]string{"ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"}, flags...)
	cmd := exec.CommandContext(ctx, "npm", args...)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1", "npm_config_update_notifier=false")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		if offlineRE.Match(out) && os.Getenv("CI") == "" {
			t.Skipf("npm cannot reach its registry to install %s/package.json: %v\n%s", src, err, out)
		}
		t.Fatalf("npm ci in %s: %v\n%s", tmp, err, out)
	}
	t.Logf("installed %s's packages into %s in %s", src, dir, time.Since(start).Round(time.Second))
	if err := os.Rename(tmp, dir); err != nil && !complete(dir) {
		// Another run may have finished first; a leftover that is not complete is replaced.
		if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "node_modules")
}
