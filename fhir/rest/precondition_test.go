package rest_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestUpdateIfNoneMatch checks If-None-Match on PUT and PATCH (RFC 9110 §13.1.2): "*" is false when the
// resource has a current version, a list of ETags when one of them is the current version; a false
// condition is 412 and nothing changes.
func TestUpdateIfNoneMatch(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	put := func(id, gender string, inm string) result {
		t.Helper()
		return s.do(http.MethodPut, "Patient/"+id, `{"resourceType":"Patient","id":"`+id+`","gender":"`+gender+`"}`, "If-None-Match", inm)
	}
	current := func(id string) (version, gender string) {
		t.Helper()
		p := s.do(http.MethodGet, "Patient/"+id, nil).must(t, http.StatusOK)
		return metaVersion(p), p.GetString("gender")
	}
	// "*": create only.
	put("n1", "male", "*").must(t, http.StatusCreated)
	if code, _, diag := issue(t, put("n1", "female", "*").must(t, http.StatusPreconditionFailed)); code == "" || diag == "" {
		t.Errorf("412 without issue code or diagnostics")
	}
	if v, g := current("n1"); v != "1" || g != "male" {
		t.Errorf("If-None-Match: * overwrote the resource: version %s, gender %s", v, g)
	}
	// ETags: not when the current version is listed.
	put("n1", "female", `W/"1"`).must(t, http.StatusPreconditionFailed)
	put("n1", "female", `"1"`).must(t, http.StatusPreconditionFailed)
	put("n1", "female", `W/"7", W/"1"`).must(t, http.StatusPreconditionFailed)
	if v, _ := current("n1"); v != "1" {
		t.Errorf("version %s after refused updates, want 1", v)
	}
	put("n1", "female", `W/"7"`).must(t, http.StatusOK)
	put("n1", "other", `W/"1"`).must(t, http.StatusOK) // version 2 is current now
	if v, g := current("n1"); v != "3" || g != "other" {
		t.Errorf("version %s gender %s, want 3 other", v, g)
	}
	// PATCH evaluates it too.
	patch := func(inm string) result {
		return s.do(http.MethodPatch, "Patient/n1", `[{"op":"replace","path":"/gender","value":"male"}]`,
			"Content-Type", "application/json-patch+json", "If-None-Match", inm)
	}
	patch("*").must(t, http.StatusPreconditionFailed)
	patch(`W/"3"`).must(t, http.StatusPreconditionFailed)
	patch("nonsense").must(t, http.StatusBadRequest)
	if v, g := current("n1"); v != "3" || g != "other" {
		t.Errorf("refused patches changed n1: version %s gender %s", v, g)
	}
	patch(`W/"2"`).must(t, http.StatusOK)
	// A deleted resource has no current representation: "*" holds and the PUT re-creates it.
	s.do(http.MethodDelete, "Patient/n1", nil).must(t, http.StatusNoContent)
	put("n1", "male", "*").must(t, http.StatusCreated)
	// A malformed condition is a 400, not ignored.
	put("n1", "female", "yesterday").must(t, http.StatusBadRequest)
	// Conditional update: the condition applies to the resource the criteria match.
	s.do(http.MethodPut, "Patient/c1", `{"resourceType":"Patient","id":"c1","identifier":[{"system":"urn:s","value":"c1"}]}`).must(t, http.StatusCreated)
	s.do(http.MethodPut, "Patient?identifier=urn:s|c1", `{"resourceType":"Patient","identifier":[{"system":"urn:s","value":"c1"}],"gender":"male"}`,
		"If-None-Match", "*").must(t, http.StatusPreconditionFailed)
	s.do(http.MethodPut, "Patient?identifier=urn:s|c2", `{"resourceType":"Patient","identifier":[{"system":"urn:s","value":"c2"}]}`,
		"If-None-Match", "*").must(t, http.StatusCreated)
	if v, g := current("c1"); v != "1" || g != "" {
		t.Errorf("conditional update with If-None-Match: * changed c1: version %s gender %q", v, g)
	}
}

// TestBundleIfNoneMatch checks request.ifNoneMatch of PUT entries: a false condition fails a
// transaction (leaving nothing behind) and one batch entry (the others go ahead).
func TestBundleIfNoneMatch(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.do(http.MethodPut, "Patient/b1", `{"resourceType":"Patient","id":"b1","gender":"male"}`).must(t, http.StatusCreated)
	entry := func(id, inm string) string {
		return `{"request":{"method":"PUT","url":"Patient/` + id + `","ifNoneMatch":` + fmt.Sprintf("%q", inm) + `},"resource":{"resourceType":"Patient","id":"` + id + `","gender":"female"}}`
	}
	bundle := func(typ string, entries ...string) string {
		return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
	}
	s.do(http.MethodPost, "", bundle("transaction", entry("b2", "*"), entry("b1", "*"))).must(t, http.StatusPreconditionFailed)
	s.do(http.MethodPost, "", bundle("transaction", entry("b2", "*"), entry("b1", `W/"1"`))).must(t, http.StatusPreconditionFailed)
	s.do(http.MethodGet, "Patient/b2", nil).must(t, http.StatusNotFound) // rolled back
	if p := s.do(http.MethodGet, "Patient/b1", nil).must(t, http.StatusOK); metaVersion(p) != "1" || p.GetString("gender") != "male" {
		t.Errorf("b1 changed: %s", p.Marshal())
	}
	s.do(http.MethodPost, "", bundle("transaction", entry("b2", "*"), entry("b1", `W/"2"`))).must(t, http.StatusOK)

	b := s.do(http.MethodPost, "", bundle("batch", entry("b3", "*"), entry("b1", "*"), entry("b1", `W/"2"`))).must(t, http.StatusOK)
	var got []string
	for _, e := range b.Get("entry").Items {
		got = append(got, e.Get("response").GetString("status")[:3])
	}
	if strings.Join(got, ",") != "201,412,412" {
		t.Errorf("batch statuses %v, want 201,412,412", got)
	}
	if p := s.do(http.MethodGet, "Patient/b1", nil).must(t, http.StatusOK); metaVersion(p) != "2" {
		t.Errorf("b1 at version %s, want 2", metaVersion(p))
	}
}

// TestConcurrentIfNoneMatchStar races creators of one id with If-None-Match: *: exactly one creates
// it, all others get 412 (the condition is checked under the row lock, not before it).
func TestConcurrentIfNoneMatchStar(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	const writers = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.do(http.MethodPut, "Patient/once", fmt.Sprintf(`{"resourceType":"Patient","id":"once","name":[{"family":"W%d"}]}`, i), "If-None-Match", "*")
			mu.Lock()
			codes[r.status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[http.StatusCreated] != 1 || codes[http.StatusPreconditionFailed] != writers-1 {
		t.Errorf("statuses %v, want one 201 and %d 412", codes, writers-1)
	}
	if p := s.do(http.MethodGet, "Patient/once", nil).must(t, http.StatusOK); metaVersion(p) != "1" {
		t.Errorf("version %s, want 1", metaVersion(p))
	}
}
