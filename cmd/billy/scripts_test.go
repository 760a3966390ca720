package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The scripts make run uses are tested by running them with bash, with a stand-in for bin/billy
// that records its arguments: what they decide (which files, which commands, what they say) is
// theirs; bin/billy itself is tested elsewhere.

// fakeBilly writes an executable that appends its arguments to a log, and exits with code.
func fakeBilly(t *testing.T, code int) (bin, log string) {
	t.Helper()
	dir := t.TempDir()
	bin, log = filepath.Join(dir, "billy"), filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$*\" >> " + log + "\nexit " + string(rune('0'+code)) + "\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runScript runs scripts/NAME with bash in dir, with env added, and returns its output and exit
// error.
func runScript(t *testing.T, dir, name string, env ...string) (stdout, stderr string, err error) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", name))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func readCalls(t *testing.T, log string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// TestCodesScript is finding A1 of issue 10: without a CPT file (the normal case) codes.sh exited 1
// under set -e before importing anything, and make run stopped right after seeding.
func TestCodesScript(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		files     []string // relative to the work directory; shared/ is BILLY_SHARED_DATA
		exit      int      // of the stand-in billy
		wantErr   bool
		wantCalls []string
		wantSays  []string
	}{{
		name:  "ICD-10-CM and HCPCS shared, no CPT",
		files: []string{"shared/icd10cm/icd10cm-codes-2026.txt", "shared/hcpcs/hcpcs_level2_2025.csv"},
		wantCalls: []string{
			"codes import icd10cm shared/icd10cm/icd10cm-codes-2026.txt --if-missing",
			"codes import hcpcs shared/hcpcs/hcpcs_level2_2025.csv --if-missing",
		},
		wantSays: []string{"importing icd10cm from shared/icd10cm/icd10cm-codes-2026.txt", "no CPT file in data/codes"},
	}, {
		name:     "no code files at all",
		wantSays: []string{"No ICD-10-CM code file found", "no HCPCS Level II file found", "no CPT file"},
	}, {
		name: "data/codes first, the newest year, CPT only from there",
		files: []string{"data/codes/icd10cm-order-2025.txt", "data/codes/icd10cm-order-2026.txt", "shared/icd10cm/icd10cm-codes-2027.txt",
			"data/codes/cpt-2026.csv", "shared/cpt-leaked.csv"},
		wantCalls: []string{
			"codes import icd10cm data/codes/icd10cm-order-2026.txt --if-missing",
			"codes import cpt data/codes/cpt-2026.csv --if-missing",
		},
	}, {
		name:      "a failed import fails the script",
		files:     []string{"shared/icd10cm/icd10cm-codes-2026.txt"},
		exit:      1,
		wantErr:   true,
		wantCalls: []string{"codes import icd10cm shared/icd10cm/icd10cm-codes-2026.txt --if-missing"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for _, f := range tc.files {
				touch(t, filepath.Join(dir, f))
			}
			bin, log := fakeBilly(t, tc.exit)
			_, stderr, err := runScript(t, dir, "codes.sh", "BIN="+bin, "BILLY_SHARED_DATA=shared")
			if (err != nil) != tc.wantErr {
				t.Fatalf("exit: %v, want error %v; stderr:\n%s", err, tc.wantErr, stderr)
			}
			if got := readCalls(t, log); strings.Join(got, "\n") != strings.Join(tc.wantCalls, "\n") {
				t.Errorf("billy calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.wantCalls, "\n"))
			}
			for _, want := range tc.wantSays {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
}

// TestHelloScript checks what make run prints for another terminal: the commands name what differs
// from the defaults (the base URL is the tokens' issuer: a dev-token signed for the default one is
// refused by a server elsewhere), and never a secret's value.
func TestHelloScript(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const key = "c2VjcmV0LWtleS1ieXRlcy0wMTIzNDU2Nzg5MDEyMzQ1Njc4OTA="
	for _, tc := range []struct {
		name       string
		env        []string
		want, deny []string
	}{{
		name: "defaults",
		env:  []string{"BILLY_MASTER_KEY_FILE=" + filepath.Join(dir, "data", "master.key")},
		want: []string{"TOKEN=$(BILLY_MASTER_KEY_FILE=data/master.key bin/billy dev-token --scope 'user/*.cruds')", "FHIR=http://localhost:8080/fhir",
			"USER_TOKEN=$(bin/billy dev-login --password billy-demo-password)"},
		deny: []string{"BILLY_BASE_URL=", "BILLY_DATABASE_URL=", "--base"},
	}, {
		name: "elsewhere",
		env: []string{"BILLY_BASE_URL=http://127.0.0.1:9999/", "BILLY_DATABASE_URL=postgres://postgres@127.0.0.1:5432/other?sslmode=disable&x=1",
			"BILLY_MASTER_KEY=" + key, "BIN=/opt/billy"},
		want: []string{"TOKEN=$(BILLY_BASE_URL=http://127.0.0.1:9999 BILLY_DATABASE_URL='postgres://postgres@127.0.0.1:5432/other?sslmode=disable&x=1' /opt/billy dev-token",
			"# (dev-token needs BILLY_MASTER_KEY set as for the server)", "FHIR=http://127.0.0.1:9999/fhir", "/opt/billy dev-login --base http://127.0.0.1:9999 --password"},
		deny: []string{key},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := append([]string{"BILLY_BASE_URL=", "BILLY_DATABASE_URL=", "BILLY_MASTER_KEY=", "BILLY_MASTER_KEY_FILE=", "BIN="}, tc.env...)
			stdout, stderr, err := runScript(t, dir, "hello.sh", env...)
			if err != nil {
				t.Fatalf("%v: %s", err, stderr)
			}
			_, after, ok := strings.Cut(stdout, "\n### try it ###\n")
			try, _, ok2 := strings.Cut(after, "\n### end ###\n")
			if !ok || !ok2 {
				t.Fatalf("no commands between the markers:\n%s", stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(try, w) {
					t.Errorf("the commands lack %q:\n%s", w, try)
				}
			}
			for _, d := range tc.deny {
				if strings.Contains(stdout, d) {
					t.Errorf("the output has %q", d)
				}
			}
			if p := regexp.MustCompile(`@[A-Z]+@`).FindString(stdout); p != "" {
				t.Errorf("the placeholder %s is left:\n%s", p, stdout)
			}
		})
	}
}
