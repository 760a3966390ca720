package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestSearchLimitsFromEnvironment: the limits README documents are read from the environment and
// reach the API.
func TestSearchLimitsFromEnvironment(t *testing.T) {
	t.Parallel()
	base := startApp(t, testEnv(t, "BILLY_AUTH", "none", "BILLY_DEV", "1", "BILLY_SEARCH_MAX_CLAUSES", "2", "BILLY_SEARCH_MAX_VALUES", "3"))
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"Patient?name=a&gender=male", 200},
		{"Patient?name=a&gender=male&birthdate=2000", 403},
		{"Patient?name=a,b,c", 200},
		{"Patient?name=a,b,c,d", 403},
	} {
		code, _, body := get(t, base+"/fhir/"+tc.query)
		if code != tc.want || (code == http.StatusForbidden && !strings.Contains(body, "too-costly")) {
			t.Errorf("%s: %d %.200s, want %d", tc.query, code, body, tc.want)
		}
	}
}
