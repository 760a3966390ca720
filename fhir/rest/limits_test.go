package rest_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/iambilly/billy/fhir/search"
)

// repeatParam is name=value repeated n times, as a query string.
func repeatParam(name, value string, n int) string {
	return strings.TrimSuffix(strings.Repeat(url.QueryEscape(name)+"="+url.QueryEscape(value)+"&", n), "&")
}

// TestSearchLimits checks the bounds on one search's conditions and values: past them the answer
// is a prompt 403 too-costly OperationOutcome, never a 500 and never a query PostgreSQL chews on
// for minutes.
func TestSearchLimits(t *testing.T) {
	t.Parallel()
	s := fixture(t)
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	tooCostly := []struct {
		name, method, path string
		body               any
		headers            []string
		wantExpr           string
	}{
		{name: "ten thousand repeats", path: "Observation?" + repeatParam("subject", "Patient/p1", 10000), wantExpr: "subject"},
		{name: "a thousand repeats", path: "Patient?" + repeatParam("identifier", "http://mrn|A1", 1000), wantExpr: "identifier"},
		{name: "one clause too many", path: "Patient?" + repeatParam("name", "mu", search.DefaultMaxClauses+1), wantExpr: "name"},
		{name: "too many values", path: "Patient?name=" + strings.Repeat("mu,", search.DefaultMaxValues) + "mu", wantExpr: "name"},
		{name: "too many chained", path: "Observation?" + repeatParam("subject:Patient.name", "mu", search.DefaultMaxClauses/2+1), wantExpr: "subject:Patient.name"},
		{name: "compartment", path: "Patient/p1/Observation?" + repeatParam("code", "8302-2", 10000), wantExpr: "code"},
		{name: "POST _search body", method: http.MethodPost, path: "Patient/_search", body: repeatParam("name", "mu", 10000), headers: form, wantExpr: "name"},
		{name: "conditional delete", method: http.MethodDelete, path: "Patient?" + repeatParam("gender", "female", 10000), wantExpr: "gender"},
		{name: "If-None-Exist", method: http.MethodPost, path: "Patient", body: `{"resourceType":"Patient"}`, headers: []string{"If-None-Exist", repeatParam("gender", "female", 10000)}, wantExpr: "gender"},
	}
	for _, tt := range tooCostly {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			start := time.Now()
			r := s.do(method, tt.path, tt.body, tt.headers...)
			code, expr, diag := issue(t, r.must(t, http.StatusForbidden))
			if code != "too-costly" || expr != tt.wantExpr || diag == "" {
				t.Errorf("issue %s at %q (%s), want too-costly at %q", code, expr, diag, tt.wantExpr)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("refusing took %v", d)
			}
		})
	}
	// At the bounds a search is served.
	s.do(http.MethodGet, "Patient?"+repeatParam("name", "mu", search.DefaultMaxClauses), nil).must(t, http.StatusOK)
	s.do(http.MethodGet, "Patient?name="+strings.Repeat("mu,", search.DefaultMaxValues-1)+"mu", nil).must(t, http.StatusOK)
	if ids := s.searchIDs(t, "Patient"); len(ids) != 3 {
		t.Errorf("patients %v: the refused conditional delete must not have deleted anything", ids)
	}

	// The bounds are settings.
	small := fixture(t, func(c *restConfig) { c.MaxSearchClauses, c.MaxSearchValues = 2, 3 })
	small.do(http.MethodGet, "Patient?name=mu&gender=male", nil).must(t, http.StatusOK)
	small.do(http.MethodGet, "Patient?name=mu&gender=male&birthdate=1987", nil).must(t, http.StatusForbidden)
	small.do(http.MethodGet, "Patient?name=mu,smi&gender=male,female", nil).must(t, http.StatusForbidden)
	small.do(http.MethodGet, "Patient?name=mu&_sort=birthdate,gender", nil).must(t, http.StatusForbidden)

	// Chains and _has reach through at most four references.
	s.do(http.MethodGet, "Observation?subject:Patient.organization.partof.partof.name=x", nil).must(t, http.StatusOK)
	_, expr, _ := issue(t, s.do(http.MethodGet, "Observation?subject:Patient.organization.partof.partof.partof.name=x", nil).must(t, http.StatusBadRequest))
	if expr != "subject:Patient.organization.partof.partof.partof.name" {
		t.Errorf("deep chain: expression %q", expr)
	}
	has := func(n int) string { return strings.Repeat("_has:Organization:partof:", n) + "name=x" }
	s.do(http.MethodGet, "Organization?"+has(4), nil).must(t, http.StatusOK)
	s.do(http.MethodGet, "Organization?"+has(5), nil).must(t, http.StatusBadRequest)
}

// TestStatementTimeout holds a lock on every table a query may read, so that whatever a request runs waits on
// it: the request must be answered too-costly once the statement timeout passes, and PostgreSQL must
// really have cancelled the statement (no backend still waiting on the lock), not merely the
// server have stopped waiting for it.
func TestStatementTimeout(t *testing.T) {
	t.Parallel()
	s := fixture(t, func(c *restConfig) { c.StatementTimeout = 300 * time.Millisecond })
	ctx := t.Context()
	conn, err := s.store.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	lock, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := lock.Exec(ctx, `LOCK TABLE resources, resource_history, search_token, search_string, search_date, search_number,
		search_quantity, search_reference, search_composite IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	for _, rq := range []struct{ method, path, body string }{
		{http.MethodGet, "Patient?name=mu", ""},
		{http.MethodGet, "Patient?name=mu&_count=0", ""},
		{http.MethodGet, "Patient/p1", ""},
		{http.MethodGet, "Patient/p1/_history", ""},
		{http.MethodGet, "Patient/p1/$everything", ""},
		{http.MethodGet, "Patient/p1/Observation", ""},
		{http.MethodPost, "Patient", patientJSON},
		{http.MethodPost, "", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient"}}]}`},
	} {
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		var body io.Reader
		if rq.body != "" {
			body = strings.NewReader(rq.body)
		}
		req, err := http.NewRequestWithContext(rctx, rq.method, s.base+"/"+rq.path, body)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		resp, err := s.http.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("%s %s: no answer within 20 s while the table is locked: %v", rq.method, rq.path, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		r := result{status: resp.StatusCode, header: resp.Header, body: raw}
		if code, _, _ := issue(t, r.must(t, http.StatusForbidden)); code != "too-costly" {
			t.Errorf("%s %s: issue code %q, want too-costly", rq.method, rq.path, code)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s %s: answered after %v", rq.method, rq.path, d)
		}
		var waiting int
		if err := lock.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting != 0 {
			t.Fatalf("%s %s: %d statements still wait on the lock: PostgreSQL did not cancel them", rq.method, rq.path, waiting)
		}
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing was written while refused, and the connections are fine afterwards.
	if ids := s.searchIDs(t, "Patient"); len(ids) != 3 {
		t.Errorf("patients after the refused writes: %v", ids)
	}
}
