package rest_test

import (
	"net/http"
	"testing"
)

func TestConditionalCreate(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	cond := []string{"If-None-Exist", "identifier=http://example.org/mrn|M1"}
	first := s.do(http.MethodPost, "Patient", patientJSON, cond...).must(t, http.StatusCreated)
	again := s.do(http.MethodPost, "Patient", patientJSON, cond...)
	got := again.must(t, http.StatusOK)
	if got.GetString("id") != first.GetString("id") || metaVersion(got) != "1" {
		t.Errorf("a matching conditional create must return the existing resource unchanged: %s", got.Marshal())
	}
	// Token forms: code only, system|code; and a system-less identifier matched with |code.
	s.do(http.MethodPost, "Patient", patientJSON, "If-None-Exist", "identifier=M1").must(t, http.StatusOK)
	s.create(`{"resourceType":"Patient","identifier":[{"value":"NOSYS"}]}`)
	s.do(http.MethodPost, "Patient", `{"resourceType":"Patient"}`, "If-None-Exist", "identifier=|NOSYS").must(t, http.StatusOK)
	s.do(http.MethodPost, "Patient", `{"resourceType":"Patient"}`, "If-None-Exist", "identifier=http://example.org/mrn|NOSYS").must(t, http.StatusCreated)
	// Two matches.
	s.create(patientJSON)
	if code, _, _ := issue(t, s.do(http.MethodPost, "Patient", patientJSON, cond...).must(t, http.StatusPreconditionFailed)); code != "multiple-matches" {
		t.Errorf("code %q", code)
	}
	// _id criterion.
	s.do(http.MethodPost, "Patient", patientJSON, "If-None-Exist", "_id="+first.GetString("id")).must(t, http.StatusOK)
	// Unsupported criteria are refused, never ignored.
	_, expr, _ := issue(t, s.do(http.MethodPost, "Patient", patientJSON, "If-None-Exist", "nonsense=1").must(t, http.StatusBadRequest))
	if expr != "nonsense" {
		t.Errorf("expression %q", expr)
	}
}

func TestConditionalUpdate(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	q := "Patient?identifier=http://example.org/mrn|C1"
	body := `{"resourceType":"Patient","identifier":[{"system":"http://example.org/mrn","value":"C1"}],"gender":"male"}`
	created := s.do(http.MethodPut, q, body).must(t, http.StatusCreated)
	id := created.GetString("id")
	updated := s.do(http.MethodPut, q, `{"resourceType":"Patient","identifier":[{"system":"http://example.org/mrn","value":"C1"}],"gender":"female"}`).must(t, http.StatusOK)
	if updated.GetString("id") != id || metaVersion(updated) != "2" {
		t.Errorf("one match must update it: %s", updated.Marshal())
	}
	// Body id that disagrees with the match.
	s.do(http.MethodPut, q, `{"resourceType":"Patient","id":"other","identifier":[{"system":"http://example.org/mrn","value":"C1"}]}`).must(t, http.StatusBadRequest)
	// No match, body id of an existing resource that does not match: 409.
	s.do(http.MethodPut, "Patient?identifier=none", `{"resourceType":"Patient","id":"`+id+`"}`).must(t, http.StatusConflict)
	// No match, new body id: update-as-create with that id.
	if got := s.do(http.MethodPut, "Patient?identifier=none", `{"resourceType":"Patient","id":"chosen"}`).must(t, http.StatusCreated); got.GetString("id") != "chosen" {
		t.Errorf("id %q", got.GetString("id"))
	}
	// Multiple matches.
	s.create(body)
	s.do(http.MethodPut, q, body).must(t, http.StatusPreconditionFailed)
	// _lastUpdated criteria: everything was written after 2000.
	s.do(http.MethodPut, "Patient?_lastUpdated=gt2000-01-01&_id=chosen", `{"resourceType":"Patient","gender":"unknown"}`).must(t, http.StatusOK)
	s.do(http.MethodPut, "Patient?_lastUpdated=lt2000-01-01&_id=chosen2", `{"resourceType":"Patient","gender":"unknown"}`).must(t, http.StatusCreated)
	s.do(http.MethodPut, "Patient?_lastUpdated=2000-13", `{"resourceType":"Patient"}`).must(t, http.StatusBadRequest)
}

func TestConditionalDelete(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.do(http.MethodDelete, "Patient?identifier=nomatch", nil).must(t, http.StatusNoContent)
	id := s.create(patientJSON)
	s.do(http.MethodDelete, "Patient?identifier=http://example.org/mrn|M1", nil).must(t, http.StatusNoContent)
	s.do(http.MethodGet, "Patient/"+id, nil).must(t, http.StatusGone)
	s.create(patientJSON)
	s.create(patientJSON)
	s.do(http.MethodDelete, "Patient?identifier=M1", nil).must(t, http.StatusPreconditionFailed)
	// A deleted resource no longer matches criteria.
	s.do(http.MethodPost, "Patient", patientJSON, "If-None-Exist", "_id="+id).must(t, http.StatusCreated)
}
