package rest

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/iambilly/billy/fhir/resource"
)

// TestRouteTable checks that Routes lists every route parseRoute serves, and nothing it does not:
// every path of up to five segments built from an alphabet of segment kinds, with every method,
// with and without a query. Tests that attack every route (cmd/billy) generate their requests from
// Routes, so a route added to parseRoute but not to the table fails here.
func TestRouteTable(t *testing.T) {
	t.Parallel()
	op := &Operation{Name: "x-op", Types: []string{"Patient"}, TypeLevel: true, InstanceLevel: true, SystemLevel: true, Safe: true}
	srv := &Server{ops: map[string]*Operation{"Patient/x-op": op, "/x-op": op}}
	alphabet := []string{"Patient", "x1", "1", "*", "_history", "_search", "metadata", "$meta", "$validate", "$x-op", "$x-unknown"}
	// The Bulk Data URLs are at most three segments long: the segments only they use join the
	// alphabet for paths of up to three (five segments of all fifteen would triple the test's time).
	bulkdata := append(slices.Clone(alphabet), "$export", "bulkdata", "0c9e4a52-8a2b-4c1e-9f3a-5b6d7e8f9a0b", "Claim-1.ndjson")
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}
	used := map[int]bool{}
	var paths [][]string
	var grow func(p []string, letters []string, max int, keep func([]string) bool)
	grow = func(p []string, letters []string, max int, keep func([]string) bool) {
		if keep(p) {
			paths = append(paths, p)
		}
		if len(p) == max {
			return
		}
		for _, s := range letters {
			grow(append(append([]string(nil), p...), s), letters, max, keep)
		}
	}
	grow(nil, alphabet, 5, func([]string) bool { return true })
	// Only the paths the first pass did not make: those with a Bulk Data segment.
	grow(nil, bulkdata, 3, func(p []string) bool {
		return slices.ContainsFunc(p, func(s string) bool { return !slices.Contains(alphabet, s) })
	})
	accepted := 0
	for _, segs := range paths {
		path := strings.Join(segs, "/")
		for _, m := range methods {
			for _, q := range []bool{false, true} {
				rt, err := srv.parseRoute(m, path, q)
				if err != nil {
					continue
				}
				accepted++
				i := matchRoute(m, segs, rt)
				if i < 0 {
					t.Errorf("%s %q (query %v) is served as %s, but Routes does not list it", m, path, q, rt.interaction)
					continue
				}
				used[i] = true
			}
		}
	}
	for i, r := range Routes {
		if !used[i] {
			t.Errorf("Routes lists %s %s, which parseRoute never serves", r.Method, r.Pattern)
		}
	}
	if accepted < 200 {
		t.Errorf("only %d requests accepted: the alphabet no longer reaches the routes", accepted)
	}
}

// matchRoute returns the index in Routes of the route a served request is, or -1.
func matchRoute(method string, segs []string, rt route) int {
	if method == http.MethodHead {
		method = http.MethodGet
	}
	for i, r := range Routes {
		if r.Method != method || r.Interaction != rt.interaction || r.Conditional != rt.conditional {
			continue
		}
		var pat []string
		if r.Pattern != "" {
			pat = strings.Split(r.Pattern, "/")
		}
		if len(pat) != len(segs) {
			continue
		}
		ok := true
		for k, p := range pat {
			s := segs[k]
			switch p {
			case "{type}":
				ok = resource.IsType(s)
			case "{id}":
				ok = resource.ValidID(s)
			case "{vid}":
				n, err := strconv.Atoi(s)
				ok = err == nil && n > 0
			case "{compartment}":
				ok = s == "*" || resource.IsType(s)
			case "${op}":
				ok = strings.HasPrefix(s, "$")
			case "{job}":
				ok = validJob(s)
			case "{file}":
				ok = validExportFile(s)
			default:
				ok = p == s
			}
			if !ok {
				break
			}
		}
		if ok {
			return i
		}
	}
	return -1
}
