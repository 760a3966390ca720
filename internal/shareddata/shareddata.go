// Package shareddata finds the shared test and benchmark data (ICD-10-CM, HCPCS, Synthea) that lives
// beside the project checkout in ../shared/data, or where BILLY_SHARED_DATA points.
package shareddata

import (
	"errors"
	"os"
	"path/filepath"
)

// Dir returns the shared data directory: $BILLY_SHARED_DATA, else ../shared/data relative to the
// directory holding go.mod (found by walking up from the working directory).
func Dir() (string, error) {
	if d := os.Getenv("BILLY_SHARED_DATA"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(dir, "..", "shared", "data")
			if _, err := os.Stat(d); err != nil {
				return "", errors.New("shared data not found at ../shared/data next to the checkout; set BILLY_SHARED_DATA")
			}
			return filepath.Clean(d), nil
		}
		if filepath.Dir(dir) == dir {
			return "", errors.New("go.mod not found above the working directory; set BILLY_SHARED_DATA")
		}
	}
}

// SyntheaBundles lists the Synthea R4 transaction Bundle files.
func SyntheaBundles() ([]string, error) {
	d, err := Dir()
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(d, "synthea", "bundles", "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("no Synthea bundles in " + filepath.Join(d, "synthea", "bundles"))
	}
	return files, nil
}
