package rest_test

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
)

// Concurrent updates never lose a version and never number two versions alike.
func TestConcurrentUpdates(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	const writers = 32
	var wg sync.WaitGroup
	versions := make(chan string, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"resourceType":"Patient","id":"race","name":[{"family":"W%d"}]}`, i)
			r := s.do(http.MethodPut, "Patient/race", body)
			if r.status != http.StatusOK && r.status != http.StatusCreated {
				t.Errorf("writer %d: %d %s", i, r.status, r.body)
				return
			}
			versions <- metaVersion(r.tree(t))
		}()
	}
	wg.Wait()
	close(versions)
	var got []int
	for v := range versions {
		var n int
		fmt.Sscan(v, &n)
		got = append(got, n)
	}
	sort.Ints(got)
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("versions %v: want 1..%d each exactly once", got, writers)
		}
	}
	h := s.do(http.MethodGet, "Patient/race/_history?_count=100", nil).must(t, http.StatusOK)
	if n := len(h.Get("entry").Items); n != writers {
		t.Errorf("history has %d versions, want %d", n, writers)
	}
}

// With If-Match, exactly one of the writers racing from the same version wins.
func TestConcurrentIfMatch(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.do(http.MethodPut, "Patient/ifm", `{"resourceType":"Patient","id":"ifm"}`).must(t, http.StatusCreated)
	const writers = 32
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"resourceType":"Patient","id":"ifm","name":[{"family":"W%d"}]}`, i)
			r := s.do(http.MethodPut, "Patient/ifm", body, "If-Match", `W/"1"`)
			mu.Lock()
			codes[r.status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[http.StatusOK] != 1 || codes[http.StatusPreconditionFailed] != writers-1 {
		t.Errorf("status counts %v: want one 200 and %d 412", codes, writers-1)
	}
}

// Concurrent conditional creates with the same criteria create one resource.
func TestConcurrentConditionalCreate(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.do(http.MethodPost, "Patient", patientJSON, "If-None-Exist", "identifier=http://example.org/mrn|M1")
		}()
	}
	wg.Wait()
	var n int
	if err := s.store.Pool().QueryRow(t.Context(), "SELECT count(*) FROM resources").Scan(&n); err != nil || n != 1 {
		t.Errorf("%d patients created, want 1 (%v)", n, err)
	}
}
