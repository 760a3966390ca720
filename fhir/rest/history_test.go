package rest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestInstanceHistory(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.do(http.MethodPut, "Patient/h1", `{"resourceType":"Patient","id":"h1","gender":"male"}`).must(t, http.StatusCreated)
	s.do(http.MethodPut, "Patient/h1", `{"resourceType":"Patient","id":"h1","gender":"female"}`).must(t, http.StatusOK)
	s.do(http.MethodDelete, "Patient/h1", nil)
	h := s.do(http.MethodGet, "Patient/h1/_history", nil).must(t, http.StatusOK)
	if h.GetString("type") != "history" || h.Get("total").Str != "3" {
		t.Fatalf("history bundle: %s", h.Marshal())
	}
	es := h.Get("entry").Items
	wantMethods := []string{"DELETE", "PUT", "PUT"}
	for i, e := range es {
		if got := e.Get("request").GetString("method"); got != wantMethods[i] {
			t.Errorf("entry %d method %q, want %q", i, got, wantMethods[i])
		}
	}
	if es[0].Get("resource") != nil {
		t.Error("a deletion entry has no resource")
	}
	if es[1].Get("resource").GetString("gender") != "female" || !strings.Contains(es[1].Get("response").GetString("etag"), `"2"`) {
		t.Errorf("entry 1: %s", es[1].Marshal())
	}
	s.do(http.MethodGet, "Patient/nope/_history", nil).must(t, http.StatusNotFound)
	// _count=0: the total, no entries, no next page.
	h = s.do(http.MethodGet, "Patient/h1/_history?_count=0", nil).must(t, http.StatusOK)
	if h.Get("total").Str != "3" || h.Get("entry") != nil || link(h, "next") != "" {
		t.Errorf("_count=0: %s", h.Marshal())
	}
	if h := s.do(http.MethodGet, "_history?_count=0", nil).must(t, http.StatusOK); h.Get("entry") != nil || link(h, "next") != "" {
		t.Errorf("system history _count=0: %s", h.Marshal())
	}
}

// TestTypeAndSystemHistoryPaging runs at each of testDates: _since compares with the lastUpdated
// the injected clock stamped, never with the wall clock.
func TestTypeAndSystemHistoryPaging(t *testing.T) {
	t.Parallel()
	for _, now := range testDates {
		t.Run(now.Format("2006-01-02"), func(t *testing.T) {
			t.Parallel()
			testHistoryPagingAt(t, now)
		})
	}
}

func testHistoryPagingAt(t *testing.T, now time.Time) {
	clk := newClock(now)
	s := newServer(t, withClock(clk))
	s.create(`{"resourceType":"Patient","gender":"male"}`) // before _since below
	clk.Advance(time.Hour)
	start := clk.Now().UTC().Format(time.RFC3339)
	for range 5 {
		clk.Advance(time.Second)
		s.create(patientJSON)
	}
	s.create(`{"resourceType":"Organization","name":"x"}`)
	// Page through type history two at a time while new versions are written: pages must not repeat
	// or skip what existed when paging started.
	seen := map[string]bool{}
	next := s.base + "/Patient/_history?_count=2&_since=" + start
	pages := 0
	for next != "" {
		path := strings.TrimPrefix(next, s.base+"/")
		b := s.do(http.MethodGet, path, nil).must(t, http.StatusOK)
		for _, e := range b.Get("entry").Items {
			u := e.GetString("fullUrl") + e.Get("response").GetString("etag")
			if seen[u] {
				t.Errorf("entry %s seen twice", u)
			}
			seen[u] = true
		}
		next = ""
		for _, l := range b.Get("link").Items {
			if l.GetString("relation") == "next" {
				next = l.GetString("url")
			}
		}
		pages++
		s.create(patientJSON) // a concurrent writer
	}
	if len(seen) != 5 || pages != 3 {
		t.Errorf("saw %d versions in %d pages, want 5 in 3", len(seen), pages)
	}
	sys := s.do(http.MethodGet, "_history?_since="+start, nil).must(t, http.StatusOK)
	if n := len(sys.Get("entry").Items); n != 9 {
		t.Errorf("system history since start: %d entries, want 9", n)
	}
	if n := len(s.do(http.MethodGet, "_history", nil).must(t, http.StatusOK).Get("entry").Items); n != 10 {
		t.Errorf("system history: %d entries, want 10", n)
	}
	future := clk.Now().Add(time.Second).UTC().Format(time.RFC3339)
	if es := s.do(http.MethodGet, "_history?_since="+future, nil).must(t, http.StatusOK).Get("entry"); es != nil {
		t.Errorf("nothing happened after %s: %s", future, es.Marshal())
	}
	s.do(http.MethodGet, "_history?_since=yesterday", nil).must(t, http.StatusBadRequest)
	s.do(http.MethodGet, "_history?_page=garbage", nil).must(t, http.StatusBadRequest)
}

// TestHistoryAt moves the injected clock between two versions instead of sleeping through real
// seconds.
func TestHistoryAt(t *testing.T) {
	t.Parallel()
	for _, now := range testDates {
		t.Run(now.Format("2006-01-02"), func(t *testing.T) {
			t.Parallel()
			clk := newClock(now)
			s := newServer(t, withClock(clk))
			s.do(http.MethodPut, "Patient/at", `{"resourceType":"Patient","id":"at","gender":"male"}`).must(t, http.StatusCreated)
			clk.Advance(1100 * time.Millisecond)
			mid := clk.Now().UTC()
			clk.Advance(1100 * time.Millisecond)
			s.do(http.MethodPut, "Patient/at", `{"resourceType":"Patient","id":"at","gender":"female"}`).must(t, http.StatusOK)
			// At the second "mid" falls in, version 1 was current and version 2 did not exist yet.
			b := s.do(http.MethodGet, "Patient/at/_history?_at="+mid.Format("2006-01-02T15:04:05Z"), nil).must(t, http.StatusOK)
			es := b.Get("entry")
			if es == nil || len(es.Items) != 1 || es.Items[0].Get("resource").GetString("gender") != "male" {
				t.Errorf("_at: %s", b.Marshal())
			}
			// Each version carries the clock's time as lastUpdated.
			if got, want := es.Items[0].Get("resource").Get("meta").GetString("lastUpdated"), now.Format(time.RFC3339Nano); got != want {
				t.Errorf("lastUpdated %s, want %s", got, want)
			}
		})
	}
}
