package rest_test

import (
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEveryErrorIsAnOperationOutcome walks a table of bad requests, one or more per error status
// the API answers, and checks that each error answer is a FHIR OperationOutcome with an issue code
// and diagnostics (for HEAD: the same status and FHIR headers, with no body), whichever layer
// produced it: the interactions, the HTTP edge, or net/http helpers such as http.ServeContent.
func TestEveryErrorIsAnOperationOutcome(t *testing.T) {
	t.Parallel()
	s := newServer(t, func(c *restConfig) { c.MaxBodyBytes, c.MaxBinaryBytes, c.MaxBundleEntries = 4096, 64, 2 })
	noBlobs := newServer(t, func(c *restConfig) { c.Blobs = nil })
	s.do(http.MethodPut, "Patient/p1", `{"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:s","value":"1"}]}`).must(t, http.StatusCreated)
	s.do(http.MethodPut, "Patient/gone", `{"resourceType":"Patient","id":"gone"}`).must(t, http.StatusCreated)
	s.do(http.MethodDelete, "Patient/gone", nil).must(t, http.StatusNoContent)
	bin := s.do(http.MethodPost, "Binary", "eleven byte", "Content-Type", "text/plain").must(t, http.StatusCreated).GetString("id")
	big := `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("x", 5000) + `"}]}`
	jsonPatch := []string{"Content-Type", "application/json-patch+json"}

	tests := []struct {
		name         string
		srv          *server
		method, path string
		body         string
		headers      []string
		want         int
	}{
		{name: "bad value", path: "Patient?_count=-1", want: 400},
		{name: "bad query string", path: "Patient?name=%zz", want: 400},
		{name: "NUL in a query", path: "Patient?name=%00", want: 400},
		{name: "bad id", path: "Patient/a_b", want: 400},
		{name: "malformed JSON", method: "POST", path: "Patient", body: `{"resourceType":`, want: 400},
		{name: "too costly", path: "Patient?" + repeatParam("name", "x", 10000), want: 403},
		{name: "unknown type", path: "Nope", want: 404},
		{name: "unknown resource", path: "Patient/nothere", want: 404},
		{name: "unknown route", path: "Patient/p1/_history/1/x/y", want: 404},
		{name: "unknown system operation", path: "$nope", want: 404},
		{name: "unknown operation", method: "POST", path: "Patient/$nope", body: "{}", want: 404},
		{name: "method not allowed", method: "DELETE", path: "metadata", want: 405},
		{name: "OPTIONS", method: "OPTIONS", path: "Patient", want: 405},
		{name: "Accept XML", path: "Patient/p1", headers: []string{"Accept", "application/fhir+xml"}, want: 406},
		{name: "_format XML", path: "Patient?_format=xml", want: 406},
		{name: "_format XML on a Binary", path: "Binary/" + bin + "?_format=xml", want: 406},
		{name: "conflict", method: "PUT", path: "Patient?identifier=urn:s|none", body: `{"resourceType":"Patient","id":"p1"}`, want: 409},
		{name: "gone", path: "Patient/gone", want: 410},
		{name: "If-Match", method: "PUT", path: "Patient/p1", body: `{"resourceType":"Patient","id":"p1"}`, headers: []string{"If-Match", `W/"9"`}, want: 412},
		{name: "If-None-Match", method: "PUT", path: "Patient/p1", body: `{"resourceType":"Patient","id":"p1"}`, headers: []string{"If-None-Match", "*"}, want: 412},
		{name: "If-Match on Binary content", path: "Binary/" + bin, headers: []string{"If-Match", `"x"`}, want: 412},
		{name: "If-Unmodified-Since on Binary content", path: "Binary/" + bin, headers: []string{"If-Unmodified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}, want: 412},
		{name: "body too large", method: "POST", path: "Patient", body: big, want: 413},
		{name: "Binary too large", method: "POST", path: "Binary", body: strings.Repeat("x", 100), headers: []string{"Content-Type", "text/plain"}, want: 413},
		{name: "Bundle too large", method: "POST", body: `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient"}},{"request":{"method":"GET","url":"Patient"}},{"request":{"method":"GET","url":"Patient"}}]}`, want: 413},
		{name: "unsupported media type", method: "POST", path: "Patient", body: "<Patient/>", headers: []string{"Content-Type", "application/fhir+xml"}, want: 415},
		{name: "unparseable media type", method: "POST", path: "Binary", body: "x", headers: []string{"Content-Type", "text/plain; ==="}, want: 415},
		{name: "POST _search not a form", method: "POST", path: "Patient/_search", body: `{"name":"x"}`, headers: []string{"Content-Type", "application/fhir+json"}, want: 415},
		{name: "unsatisfiable Range", path: "Binary/" + bin, headers: []string{"Range", "bytes=100-200"}, want: 416},
		{name: "malformed Range", path: "Binary/" + bin, headers: []string{"Range", "bytes=z-"}, want: 416},
		{name: "patch changes the id", method: "PATCH", path: "Patient/p1", body: `[{"op":"replace","path":"/id","value":"p2"}]`, headers: jsonPatch, want: 422},
		{name: "no blob store", srv: noBlobs, method: "POST", path: "Binary", body: "x", headers: []string{"Content-Type", "text/plain"}, want: 501},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.srv
			if srv == nil {
				srv = s
			}
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			var body any
			if tt.body != "" {
				body = tt.body
			}
			r := srv.do(method, tt.path, body, tt.headers...)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			checkOutcome(t, r)
			if r.status == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
			if r.status == http.StatusRequestedRangeNotSatisfiable && r.header.Get("Content-Range") != "bytes */11" {
				t.Errorf("416 Content-Range %q, want bytes */11", r.header.Get("Content-Range"))
			}
			if method != http.MethodGet {
				return
			}
			head := srv.do(http.MethodHead, tt.path, nil, tt.headers...)
			if head.status != tt.want || len(head.body) != 0 || !strings.HasPrefix(head.header.Get("Content-Type"), "application/fhir+json") {
				t.Errorf("HEAD: status %d, %d body bytes, Content-Type %q; want %d, none, FHIR JSON", head.status, len(head.body), head.header.Get("Content-Type"), tt.want)
			}
		})
	}
	// Content that cannot be opened (the blob is lost) is a 500 OperationOutcome, not an empty 200.
	lost := newServer(t)
	lostID := lost.do(http.MethodPost, "Binary", "soon lost", "Content-Type", "text/plain").must(t, http.StatusCreated).GetString("id")
	err := filepath.WalkDir(lost.blobDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			err = os.Remove(path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	r := lost.do(http.MethodGet, "Binary/"+lostID, nil)
	if r.status != http.StatusInternalServerError {
		t.Errorf("lost blob: status %d, want 500: %q", r.status, r.body)
	}
	checkOutcome(t, r)
	// The answers around the errors are still what they were: the content itself, and a range of it.
	if r := s.do(http.MethodGet, "Binary/"+bin, nil, "Range", "bytes=0-4"); r.status != http.StatusPartialContent || string(r.body) != "eleve" {
		t.Errorf("Range: %d %q", r.status, r.body)
	}
	if r := s.do(http.MethodGet, "Binary/"+bin, nil, "If-None-Match", `W/"1"`); r.status != http.StatusNotModified || len(r.body) != 0 {
		t.Errorf("If-None-Match: %d %q", r.status, r.body)
	}
	if r := s.do(http.MethodGet, "Binary/"+bin, nil, "Accept", "application/xml"); r.status != http.StatusOK || string(r.body) != "eleven byte" {
		t.Errorf("a Binary read asking for its own content type: %d %q", r.status, r.body)
	}
}

// checkOutcome fails the test unless r is a FHIR JSON OperationOutcome whose every issue has a code
// and diagnostics.
func checkOutcome(t *testing.T, r result) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type %q, want application/fhir+json: %q", ct, r.body)
		return
	}
	if n, err := strconv.Atoi(r.header.Get("Content-Length")); err == nil && n != len(r.body) {
		t.Errorf("Content-Length %d, body %d bytes", n, len(r.body))
	}
	oo := r.tree(t)
	if oo == nil || oo.GetString("resourceType") != "OperationOutcome" || oo.Get("issue") == nil || len(oo.Get("issue").Items) == 0 {
		t.Errorf("not an OperationOutcome with issues: %s", r.body)
		return
	}
	for _, is := range oo.Get("issue").Items {
		if is.GetString("code") == "" || is.GetString("diagnostics") == "" || is.GetString("severity") == "" {
			t.Errorf("issue without severity, code or diagnostics: %s", is.Marshal())
		}
	}
	if err := validator.Validate(r.body); err != nil {
		t.Errorf("the OperationOutcome is not valid FHIR: %v", err)
	}
}
