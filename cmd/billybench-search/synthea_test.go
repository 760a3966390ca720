package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iambilly/billy/internal/shareddata"
)

type testBundle struct {
	Entry []struct {
		FullURL  string         `json:"fullUrl"`
		Resource map[string]any `json:"resource"`
	} `json:"entry"`
}

// TestCorpusCopies checks that copies of a patient Bundle are the original with fresh, consistent
// ids and distinct patient identifiers, and that names vary only in every fourth copy.
func TestCorpusCopies(t *testing.T) {
	t.Parallel()
	c, err := loadCorpus()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.bundles) != 47 || c.resources != 10157 {
		t.Fatalf("%d Bundles of %d resources, want 47 of 10,157", len(c.bundles), c.resources)
	}
	b := -1
	for i, bt := range c.bundles {
		if bt.family != "" {
			b = i
			break
		}
	}
	if b < 0 {
		t.Fatal("no patient Bundle")
	}
	files, err := shareddata.SyntheaBundles()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(files[0]), c.bundles[b].file))
	if err != nil {
		t.Fatal(err)
	}
	var original testBundle
	if err := json.Unmarshal(raw, &original); err != nil {
		t.Fatal(err)
	}
	read := func(n int) testBundle {
		t.Helper()
		var buf bytes.Buffer
		c.write(&buf, n, b)
		for _, e := range original.Entry {
			if id := strings.TrimPrefix(e.FullURL, "urn:uuid:"); bytes.Contains(buf.Bytes(), []byte(id)) {
				t.Fatalf("copy %d still holds the original id %s", n, id)
			}
		}
		var out testBundle
		if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
			t.Fatalf("copy %d: %v", n, err)
		}
		return out
	}
	seen := map[string]int{} // fullUrl -> copy
	patients := map[int]map[string]any{}
	for _, n := range []int{0, 1, 3} {
		bundle := read(n)
		if len(bundle.Entry) != c.bundles[b].resources {
			t.Fatalf("copy %d: %d entries, want %d", n, len(bundle.Entry), c.bundles[b].resources)
		}
		mine := map[string]bool{}
		for _, e := range bundle.Entry {
			if prev, dup := seen[e.FullURL]; dup {
				t.Fatalf("copy %d reuses fullUrl %s of copy %d", n, e.FullURL, prev)
			}
			seen[e.FullURL] = n
			mine[e.FullURL] = true
			if id, _ := e.Resource["id"].(string); "urn:uuid:"+id != e.FullURL {
				t.Errorf("copy %d: resource id %q, fullUrl %s", n, id, e.FullURL)
			}
			if e.Resource["resourceType"] == "Patient" {
				patients[n] = e.Resource
			}
		}
		for _, e := range bundle.Entry {
			raw, _ := json.Marshal(e.Resource)
			for _, part := range strings.Split(string(raw), `"reference":"`)[1:] {
				ref, _, _ := strings.Cut(part, `"`)
				if strings.HasPrefix(ref, "urn:uuid:") && !mine[ref] {
					t.Fatalf("copy %d: reference %s names no entry of the copy", n, ref)
				}
			}
		}
	}

	family := func(p map[string]any) string {
		return p["name"].([]any)[0].(map[string]any)["family"].(string)
	}
	ident := func(p map[string]any) string {
		return p["identifier"].([]any)[0].(map[string]any)["value"].(string)
	}
	orig := c.bundles[b].family
	if got := family(patients[0]); got != orig {
		t.Errorf("copy 0 family %q, want the original %q", got, orig)
	}
	if got := family(patients[1]); got != orig {
		t.Errorf("copy 1 family %q, want the original %q", got, orig)
	}
	if got := family(patients[3]); !strings.HasPrefix(got, orig+"-") || len(got) < len(orig)+3 {
		t.Errorf("copy 3 family %q, want %q and another name", got, orig)
	}
	if id0, id1 := ident(patients[0]), ident(patients[1]); id1 != id0+"-1" {
		t.Errorf("copy 1 identifier %q, want %q", id1, id0+"-1")
	}
}
