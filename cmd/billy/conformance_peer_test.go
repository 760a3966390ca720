package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iambilly/billy/conformance"
)

// peerDir holds the second implementation: Medplum's FHIR router in memory behind node's http server.
var peerDir = filepath.Join("..", "..", "conformance", "testdata", "medplum-peer")

// startMedplumPeer installs the peer's pinned packages when they are missing (npm ci), starts it and
// returns its FHIR base. It skips only when node is absent.
func startMedplumPeer(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the Medplum peer needs it (scripts/browser-deps.sh installs node and npm)")
	}
	if _, err := os.Stat(filepath.Join(peerDir, "node_modules", "@medplum", "fhir-router")); err != nil {
		cmd := exec.CommandContext(t.Context(), "npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = peerDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", peerDir, err, out)
		}
	}
	args := []string{"server.mjs"}
	if v, err := exec.Command(node, "-p", "process.versions.node.split('.')[0]").Output(); err == nil {
		if major, _ := strconv.Atoi(strings.TrimSpace(string(v))); major < 22 {
			args = append([]string{"--experimental-websocket"}, args...) // @medplum/core needs the global WebSocket
		}
	}
	cmd := exec.Command(node, args...)
	cmd.Dir = peerDir
	cmd.Env = append(os.Environ(), "PORT=0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				lines <- u
			}
		}
	}()
	select {
	case u := <-lines:
		return u + "/fhir"
	case <-time.After(2 * time.Minute):
		t.Fatal("the Medplum peer did not start")
	}
	return ""
}

// medplumExpectedFailures are the checks the Medplum peer fails, each with why: the peer is wrong,
// the check is wrong, or the spec leaves room.
var medplumExpectedFailures = map[string]string{
	// SHALL
	"capability/Encounter/read-interactions":       "peer wrong: the router has no type-level _history route (404), which the peer's CapabilityStatement declares",
	"capability/Practitioner/read-interactions":    "peer wrong: no type-level _history (404)",
	"capability/Observation/history-type":          "peer wrong: no type-level _history (404)",
	"capability/Organization/history-type":         "peer wrong: no type-level _history (404)",
	"capability/Patient/history-type":              "peer wrong: no type-level _history (404)",
	"capability/RiskAssessment/history-type":       "peer wrong: no type-level _history (404)",
	"crud/history-type":                            "peer wrong: no type-level _history (404)",
	"capability/Observation/search/value-quantity": "peer wrong: the in-memory matcher does not match quantity parameters",
	"search/quantity":                              "peer wrong: the in-memory matcher does not match quantity parameters",
	"capability/RiskAssessment/search/probability": "peer wrong: the in-memory matcher does not match number parameters",
	"search/number":                                "peer wrong: the in-memory matcher does not match number parameters",
	"crud/history-deleted":                         "peer wrong: the history of a deleted resource answers 404",
	"bundle/transaction-atomic":                    "peer wrong: the in-memory repository does not roll a failed transaction back",
	"search/paging":                                "peer wrong: the router's searchsets carry no self link (Medplum's full server adds them)",
	"search/self-link":                             "peer wrong: no self link on searchsets",
	"search/string-accents":                        "peer wrong: string search does not ignore accents (Zoe does not find Zoë)",
	"search/string-exact":                          "peer wrong: :exact ignores case",
	"errors/invalid-resource":                      "peer wrong: the router stores a Patient with gender bogus and birthDate not-a-date (no validation in memory)",
	// SHOULD
	"crud/delete-absent":            "spec leaves room: R4 says should answer 200 or 204 for an absent resource; the peer answers 404",
	"search/has":                    "peer wrong: _has matches nothing in memory",
	"search/unknown-strict":         "spec leaves room: Prefer: handling=strict is a SHOULD; the peer ignores it",
	"errors/gone":                   "peer wrong: a deleted resource reads 404, not 410",
	"errors/not-acceptable":         "spec leaves room: 406 is a SHOULD; the peer answers JSON whatever Accept says",
	"errors/unsupported-media-type": "spec leaves room: 415 is a SHOULD; the peer's HTTP wrapper (server.mjs) answers 400 to a body it cannot parse",
	// MAY
	"crud/update-as-create": "peer wrong: an update that creates answers 200, not 201 Created",
}

func TestConformanceAgainstMedplumPeer(t *testing.T) {
	t.Parallel()
	base := startMedplumPeer(t)
	rep, err := conformance.Run(t.Context(), conformance.Config{Base: base, PollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		_, expected := medplumExpectedFailures[r.ID]
		switch {
		case r.Result.Status == conformance.Fail && !expected:
			t.Errorf("%s %s failed: %s\n%s", r.Level, r.ID, r.Result.Reason, exchangeText(r.Result.Exchange))
		case expected && r.Result.Status != conformance.Fail:
			t.Errorf("%s is an expected failure but %s: update medplumExpectedFailures", r.ID, r.Result.Status)
		}
	}
	for _, l := range conformance.Levels {
		t.Logf("%s: %v", l, rep.Counts[l])
	}
	if len(rep.Leftovers) > 0 {
		t.Logf("left behind (in memory, gone when the peer stops): %v", rep.Leftovers)
	}
	if dir := os.Getenv("BILLY_CONFORMANCE_REPORT_DIR"); dir != "" {
		if err := writeReports(rep, filepath.Join(dir, "medplum.html"), filepath.Join(dir, "medplum.json")); err != nil {
			t.Error(err)
		}
	}
}
