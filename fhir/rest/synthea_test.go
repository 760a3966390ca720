package rest_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/internal/shareddata"
)

// TestSyntheaRoundTrip loads every Synthea bundle as a transaction and reads every resource back:
// it must be what was sent, apart from server-owned meta and the urn:uuid references the
// transaction rewrote to the new ids.
func TestSyntheaRoundTrip(t *testing.T) {
	t.Parallel()
	files, err := shareddata.SyntheaBundles()
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, func(c *restConfig) { c.MaxBodyBytes = 64 << 20; c.MaxBundleEntries = 10000 })
	total := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		resp := s.do(http.MethodPost, "", raw).must(t, http.StatusOK)
		sent, err := jsontree.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		refs := map[string]string{}
		sentEntries := sent.Get("entry").Items
		gotEntries := resp.Get("entry").Items
		if len(gotEntries) != len(sentEntries) {
			t.Fatalf("%s: %d response entries for %d sent", filepath.Base(f), len(gotEntries), len(sentEntries))
		}
		targets := make([]string, len(sentEntries))
		for i, e := range gotEntries {
			loc := e.Get("response").GetString("location")
			parts := strings.Split(loc, "/")
			if len(parts) < 2 || !strings.HasPrefix(e.Get("response").GetString("status"), "201") {
				t.Fatalf("%s entry %d: %s", filepath.Base(f), i, e.Marshal())
			}
			targets[i] = parts[0] + "/" + parts[1]
			refs[sentEntries[i].GetString("fullUrl")] = targets[i]
		}
		for i, e := range sentEntries {
			want := e.Get("resource")
			resource.RewriteReferences(want, refs)
			got := s.do(http.MethodGet, targets[i], nil).must(t, http.StatusOK)
			if got.GetString("id") != strings.Split(targets[i], "/")[1] || metaVersion(got) != "1" {
				t.Fatalf("%s: server meta of %s: %s", filepath.Base(f), targets[i], got.Get("meta").Marshal())
			}
			stripServerOwned(want)
			stripServerOwned(got)
			if !jsontree.Equal(want, got) {
				t.Fatalf("%s: %s differs from what was sent\nsent: %s\ngot:  %s", filepath.Base(f), targets[i], want.Marshal(), got.Marshal())
			}
			total++
		}
	}
	if total < 10000 {
		t.Errorf("round-tripped %d resources, want all 10,157", total)
	}
	t.Logf("round-tripped %d resources from %d bundles", total, len(files))
}

func stripServerOwned(v *jsontree.Value) {
	v.Delete("id")
	resource.StripServerMeta(v)
}
