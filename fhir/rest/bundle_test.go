package rest_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestTransaction(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.do(http.MethodPut, "Patient/old", `{"resourceType":"Patient","id":"old"}`).must(t, http.StatusCreated)
	s.create(`{"resourceType":"Organization","identifier":[{"system":"http://npi","value":"123"}],"name":"Clinic"}`)
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
	  {"request":{"method":"GET","url":"Patient/put1"}},
	  {"fullUrl":"urn:uuid:11111111-1111-1111-1111-111111111111","resource":{"resourceType":"Patient","name":[{"family":"New"}],
	     "managingOrganization":{"reference":"Organization?identifier=http://npi|123"},
	     "text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"urn:uuid:22222222-2222-2222-2222-222222222222\">enc</a></div>"}},
	   "request":{"method":"POST","url":"Patient"}},
	  {"fullUrl":"urn:uuid:22222222-2222-2222-2222-222222222222","resource":{"resourceType":"Encounter","status":"finished",
	     "class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},
	     "subject":{"reference":"urn:uuid:11111111-1111-1111-1111-111111111111"}},"request":{"method":"POST","url":"Encounter"}},
	  {"resource":{"resourceType":"Patient","id":"put1","link":[{"other":{"reference":"urn:uuid:11111111-1111-1111-1111-111111111111"},"type":"seealso"}]},
	   "request":{"method":"PUT","url":"Patient/put1"}},
	  {"request":{"method":"DELETE","url":"Patient/old"}}
	]}`
	resp := s.do(http.MethodPost, "", tx).must(t, http.StatusOK)
	if resp.GetString("type") != "transaction-response" {
		t.Fatalf("type %q", resp.GetString("type"))
	}
	entries := resp.Get("entry").Items
	if len(entries) != 5 {
		t.Fatalf("%d entries", len(entries))
	}
	status := func(i int) string { return entries[i].Get("response").GetString("status") }
	loc := func(i int) string { return entries[i].Get("response").GetString("location") }
	if !strings.HasPrefix(status(1), "201") || !strings.HasPrefix(status(2), "201") || !strings.HasPrefix(status(3), "201") || !strings.HasPrefix(status(4), "204") {
		t.Fatalf("statuses: %s", resp.Marshal())
	}
	patientRef := strings.Join(strings.Split(loc(1), "/")[:2], "/")
	encID := strings.Split(loc(2), "/")[1]
	enc := s.do(http.MethodGet, "Encounter/"+encID, nil).must(t, http.StatusOK)
	if got := enc.Get("subject").GetString("reference"); got != patientRef {
		t.Errorf("urn:uuid reference not rewritten: %q, want %q", got, patientRef)
	}
	pat := s.do(http.MethodGet, patientRef, nil).must(t, http.StatusOK)
	if org := pat.Get("managingOrganization").GetString("reference"); !strings.HasPrefix(org, "Organization/") || strings.Contains(org, "?") {
		t.Errorf("conditional reference not resolved: %q", org)
	}
	if div := pat.Get("text").GetString("div"); !strings.Contains(div, `href="Encounter/`+encID+`"`) {
		t.Errorf("narrative reference not rewritten: %s", div)
	}
	put := s.do(http.MethodGet, "Patient/put1", nil).must(t, http.StatusOK)
	if got := put.Get("link").Items[0].Get("other").GetString("reference"); got != patientRef {
		t.Errorf("PUT entry reference %q", got)
	}
	// Processing order: the GET (entry 0) ran after the PUT (entry 3) it reads, and the DELETE ran.
	if !strings.HasPrefix(status(0), "200") || entries[0].Get("resource").GetString("id") != "put1" {
		t.Errorf("GET entry: %s", entries[0].Marshal())
	}
	s.do(http.MethodGet, "Patient/old", nil).must(t, http.StatusGone)
}

func TestTransactionIsAtomic(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	count := func() int {
		var n int
		if err := s.store.Pool().QueryRow(t.Context(), "SELECT count(*) FROM resources").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	s.do(http.MethodPut, "Patient/keep", `{"resourceType":"Patient","id":"keep","gender":"male"}`).must(t, http.StatusCreated)
	tests := []struct {
		name     string
		entries  string
		status   int
		wantExpr string
	}{
		{"invalid resource in the last entry", `
		  {"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
		  {"request":{"method":"DELETE","url":"Patient/keep"}},
		  {"resource":{"resourceType":"Patient","id":"keep","gender":"female"},"request":{"method":"PUT","url":"Patient/keep"}},
		  {"resource":{"resourceType":"Patient","birthDate":"1990-13-45"},"request":{"method":"POST","url":"Patient"}}`,
			400, "Bundle.entry[3].resource.birthDate"},
		{"version conflict", `
		  {"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
		  {"resource":{"resourceType":"Patient","id":"keep"},"request":{"method":"PUT","url":"Patient/keep","ifMatch":"W/\"9\""}}`,
			412, "Bundle.entry[1]"},
		{"read of a missing resource", `
		  {"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
		  {"request":{"method":"GET","url":"Patient/missing"}}`,
			404, "Bundle.entry[1]"},
		{"unresolvable conditional reference", `
		  {"resource":{"resourceType":"Patient","managingOrganization":{"reference":"Organization?identifier=none"}},"request":{"method":"POST","url":"Patient"}}`,
			412, "Bundle.entry[0]"},
		{"missing request", `{"resource":{"resourceType":"Patient"}}`, 400, "Bundle.entry[0].request"},
		{"bad method", `{"resource":{"resourceType":"Patient"},"request":{"method":"FETCH","url":"Patient"}}`, 400, "Bundle.entry[0].request.method"},
		{"two writes to one resource", `
		  {"resource":{"resourceType":"Patient","id":"keep"},"request":{"method":"PUT","url":"Patient/keep"}},
		  {"request":{"method":"DELETE","url":"Patient/keep"}}`,
			400, "Bundle.entry[1]"},
	}
	before := count()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"resourceType":"Bundle","type":"transaction","entry":[` + tt.entries + `]}`
			oo := s.do(http.MethodPost, "", body).must(t, tt.status)
			_, expr, diag := issue(t, oo)
			if expr != tt.wantExpr {
				t.Errorf("expression %q, want %q (%s)", expr, tt.wantExpr, diag)
			}
			if !strings.Contains(diag, "Bundle.entry[") {
				t.Errorf("diagnostics must name the entry: %s", diag)
			}
			if n := count(); n != before {
				t.Errorf("a failed transaction left %d resources behind", n-before)
			}
			if got := s.do(http.MethodGet, "Patient/keep", nil).must(t, http.StatusOK); got.GetString("gender") != "male" || metaVersion(got) != "1" {
				t.Errorf("a failed transaction changed Patient/keep: %s", got.Marshal())
			}
		})
	}
}

func TestBatch(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	id := s.create(patientJSON)
	batch := `{"resourceType":"Bundle","type":"batch","entry":[
	  {"resource":{"resourceType":"Patient","gender":"male"},"request":{"method":"POST","url":"Patient"}},
	  {"resource":{"resourceType":"Patient","birthDate":"nope"},"request":{"method":"POST","url":"Patient"}},
	  {"request":{"method":"GET","url":"Patient/` + id + `"}},
	  {"request":{"method":"GET","url":"Patient/missing"}},
	  {"request":{"method":"FETCH","url":"Patient"}}
	]}`
	resp := s.do(http.MethodPost, "", batch, "Prefer", "return=representation").must(t, http.StatusOK)
	if resp.GetString("type") != "batch-response" {
		t.Fatalf("type %q", resp.GetString("type"))
	}
	entries := resp.Get("entry").Items
	want := []string{"201", "400", "200", "404", "400"}
	for i, w := range want {
		got := entries[i].Get("response").GetString("status")
		if !strings.HasPrefix(got, w) {
			t.Errorf("entry %d status %q, want %s", i, got, w)
		}
	}
	if entries[1].Get("response").Get("outcome") == nil {
		t.Error("a failed batch entry carries its OperationOutcome")
	}
	if entries[0].Get("resource") == nil || entries[2].Get("resource").GetString("id") != id {
		t.Error("representation and read results belong in the entries")
	}
}

func TestBundleLimits(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(c *restConfig) { c.MaxBundleEntries = 3 })
	var es []string
	for range 4 {
		es = append(es, `{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}`)
	}
	body := fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[%s]}`, strings.Join(es, ","))
	if code, _, _ := issue(t, s.do(http.MethodPost, "", body).must(t, http.StatusRequestEntityTooLarge)); code != "too-costly" {
		t.Errorf("code %q", code)
	}
	s.do(http.MethodPost, "", `{"resourceType":"Bundle","type":"collection"}`).must(t, http.StatusBadRequest)
	s.do(http.MethodPost, "", `{"resourceType":"Patient"}`).must(t, http.StatusBadRequest)
	// An empty transaction is fine.
	s.do(http.MethodPost, "", `{"resourceType":"Bundle","type":"transaction"}`).must(t, http.StatusOK)
}

func TestTransactionConditionalCreate(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
	  {"fullUrl":"urn:uuid:33333333-3333-3333-3333-333333333333","resource":{"resourceType":"Patient","identifier":[{"system":"s","value":"v"}]},
	   "request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=s|v"}},
	  {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:33333333-3333-3333-3333-333333333333"}},
	   "request":{"method":"POST","url":"Observation"}}
	]}`
	first := s.do(http.MethodPost, "", tx).must(t, http.StatusOK)
	second := s.do(http.MethodPost, "", tx).must(t, http.StatusOK)
	p1 := first.Get("entry").Items[0].Get("response")
	p2 := second.Get("entry").Items[0].Get("response")
	if !strings.HasPrefix(p1.GetString("status"), "201") || !strings.HasPrefix(p2.GetString("status"), "200") {
		t.Fatalf("statuses %s / %s", p1.GetString("status"), p2.GetString("status"))
	}
	obsLoc := second.Get("entry").Items[1].Get("response").GetString("location")
	obs := s.do(http.MethodGet, strings.Join(strings.Split(obsLoc, "/")[:2], "/"), nil).must(t, http.StatusOK)
	want := strings.Join(strings.Split(p1.GetString("location"), "/")[:2], "/")
	if got := obs.Get("subject").GetString("reference"); got != want {
		t.Errorf("reference to a matched conditional create: %q, want %q", got, want)
	}
}
