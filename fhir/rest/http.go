package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/logging"
)

// ContentType is the media type of every FHIR response body.
const ContentType = "application/fhir+json; charset=utf-8"

// request is one interaction, from an HTTP request or a Bundle entry.
type request struct {
	method string
	rt     route
	query  url.Values
	// The headers FHIR gives meaning to (for Bundle entries, from entry.request).
	ifMatch, ifNoneExist, ifNoneMatch, ifModifiedSince string
	prefer                                             prefer
	contentType, accept                                string
	body                                               []byte
	// tree is the already decoded resource of a Bundle entry (body is then unused).
	tree *jsontree.Value
	// blob is the content of a raw Binary upload, already in the blob store.
	blob *store.Blob
}

// prefer is the parsed Prefer header.
type prefer struct {
	ret     string // minimal, representation, OperationOutcome; "" = not given
	strict  bool   // handling=strict
	lenient bool   // handling=lenient
	async   bool   // respond-async
}

func parsePrefer(h string) prefer {
	var p prefer
	for _, part := range strings.Split(h, ",") {
		for _, kv := range strings.Split(part, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
			v = strings.Trim(strings.TrimSpace(v), `"`)
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "return":
				p.ret = v
			case "handling":
				p.strict = strings.EqualFold(v, "strict")
				p.lenient = strings.EqualFold(v, "lenient")
			case "respond-async":
				p.async = true
			}
		}
	}
	return p
}

// response is the outcome of one interaction.
type response struct {
	status int
	// version, when set, gives ETag and Last-Modified, and is the body when body is nil and the
	// interaction returns the resource.
	version *store.Version
	body    []byte
	// location is the Location header (create, update-as-create), relative to the base.
	location string
	// info is the message of an information OperationOutcome, for Prefer: return=OperationOutcome.
	info string
	// write marks a response whose body follows Prefer (create, update, patch).
	write bool
	// stream, when set, writes the body itself (Binary content): status, headers and all. An error
	// status it writes (http.ServeContent's 412 and 416) is answered with an OperationOutcome.
	stream func(w http.ResponseWriter, r *http.Request) error
	// size is the length of streamed content, for the Content-Range of a 416; 0 when unknown.
	size int64
	// contentType replaces ContentType for a body that is not FHIR JSON (a manifest, X12); header
	// holds further headers (Content-Location, X-Progress, Retry-After, Expires).
	contentType string
	header      http.Header
}

// outcomeWriter is the ResponseWriter of a stream. Error answers of a handler that writes its own
// (http.ServeContent answers 412 and 416 in text/plain) are held back at WriteHeader, their text
// becomes the diagnostics, and finish answers an OperationOutcome instead: every FHIR error body
// is one.
type outcomeWriter struct {
	http.ResponseWriter
	size   int64
	status int
	text   []byte // the held-back error text (up to maxErrorText)
}

const maxErrorText = 512

func (o *outcomeWriter) WriteHeader(status int) {
	if o.status != 0 {
		return
	}
	o.status = status
	if status < 400 {
		o.ResponseWriter.WriteHeader(status)
	}
}

func (o *outcomeWriter) Write(b []byte) (int, error) {
	if o.status == 0 {
		o.WriteHeader(http.StatusOK)
	}
	if o.status >= 400 {
		o.text = append(o.text, b[:min(len(b), maxErrorText-len(o.text))]...)
		return len(b), nil
	}
	return o.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (o *outcomeWriter) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// finish writes the OperationOutcome of a held-back error, and returns the status answered.
func (o *outcomeWriter) finish(pretty bool) int {
	switch {
	case o.status == 0:
		return http.StatusOK // nothing written: net/http answers 200 with no body
	case o.status < 400:
		return o.status
	}
	diag := strings.TrimSpace(strings.ToValidUTF8(string(o.text), "\uFFFD"))
	if diag == "" {
		diag = http.StatusText(o.status)
		if o.status == http.StatusPreconditionFailed {
			diag = "a precondition of the request (If-Match, If-Unmodified-Since) does not hold for the current version"
		}
	}
	code := defaultIssueCode[o.status]
	if code == "" {
		code = "processing"
	}
	body := outcomeJSON([]fhir.Issue{{Severity: fhir.SeverityError, Code: code, Diagnostics: diag}})
	if pretty {
		body = indent(body)
	}
	h := o.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if o.status == http.StatusRequestedRangeNotSatisfiable && h.Get("Content-Range") == "" && o.size > 0 {
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(o.size, 10)) // RFC 9110 15.5.17
	}
	o.ResponseWriter.WriteHeader(o.status)
	_, _ = o.ResponseWriter.Write(body) // net/http drops it for HEAD
	return o.status
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := r.Context()
	rid := r.Header.Get("X-Request-Id")
	if rid == "" || len(rid) > 128 {
		rid = newRequestID()
	}
	ctx = logging.WithRequestID(ctx, rid)
	w.Header().Set("X-Request-Id", rid)
	ctx, uploaded := withUploads(ctx)
	ctx = s.beginAudit(ctx, r)
	r = r.WithContext(ctx)

	var rt route
	var query url.Values
	resp, err := func() (resp *response, err error) {
		defer func() {
			if p := recover(); p != nil {
				s.log.ErrorContext(ctx, "panic serving request", "panic", fmt.Sprint(p), "method", r.Method, "interaction", rt.interaction)
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		if query, err = parseQuery(r.URL.RawQuery, "the query string"); err != nil {
			return nil, err
		}
		rt, err = s.parseRoute(r.Method, r.URL.Path, r.URL.RawQuery != "")
		if err != nil {
			return nil, err
		}
		auditFrom(ctx).setRoute(rt, r.Method, query)
		accept := r.Header.Get("Accept")
		if rt.typ == "Binary" && (rt.interaction == IRead || rt.interaction == IVRead) {
			accept = "" // a Binary read may Accept its own content type instead of FHIR; _format still names a FHIR format
		}
		if rt.interaction == IExportFile || (rt.ext != nil && rt.ext.ContentType != "") {
			accept = "" // NDJSON files and X12 answer their own types
		}
		if err := negotiate(accept, query.Get("_format")); err != nil {
			return nil, err
		}
		// Authorized before the body is read: a raw Binary upload streams into the blob store.
		perm := permOf(rt)
		policy, err := s.auth.Authorize(ctx, Access{Interaction: rt.interaction, Type: rt.typ, ID: rt.id, Operation: rt.op, Query: query, Perm: perm})
		if err != nil {
			return nil, err
		}
		ctx = withPolicy(ctx, policy)
		if perm != 0 && rt.typ != "" && rt.compartment == "" {
			if _, err := restriction(ctx, rt.typ, perm); err != nil {
				return nil, err
			}
		}
		req, err := s.readRequest(r, rt, query)
		if err != nil {
			return nil, err
		}
		return s.do(ctx, req)
	}()
	if s.cfg.Audit != nil {
		st := http.StatusOK
		if err != nil {
			st, _ = errorStatus(ctx, err)
		} else if resp.status != 0 {
			st = resp.status
		}
		if aerr := s.finishAudit(ctx, st); aerr != nil {
			resp, err = nil, aerr
		}
	}
	pretty := query.Get("_pretty") == "true"
	status := 0
	if err != nil {
		status = s.writeError(ctx, w, err, pretty)
		if err := uploaded.discard(ctx, s.cfg.Blobs); err != nil {
			s.log.ErrorContext(ctx, "deleting the blobs of a failed request", "err", err)
		}
	} else {
		status = s.writeResponse(w, r, resp, parsePrefer(r.Header.Get("Prefer")), pretty)
	}
	s.metrics.observe(rt.interaction, rt.typ, status, time.Since(start))
	if s.log.Enabled(ctx, slog.LevelInfo) {
		s.log.LogAttrs(ctx, slog.LevelInfo, "request",
			slog.String("method", r.Method), slog.String("interaction", rt.interaction), slog.String("type", rt.typ),
			slog.String("query", logging.MaskQuery(r.URL.RawQuery)), slog.Int("status", status),
			slog.Duration("elapsed", time.Since(start)))
	}
}

// parseQuery parses a query string (of the request URL, a POST _search body, a Bundle entry's
// request.url, an If-None-Exist header, a conditional reference). One that does not parse is an
// error, never partly read: url.ParseQuery drops a malformed pair and goes on, and a conditional
// delete must not act on the criteria that are left. Every name and value must then pass
// search.CheckQuery (no NUL byte, valid UTF-8).
func parseQuery(raw, what string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fhir.Errorf(fhir.ErrInvalid, "structure", "%s cannot be parsed (%v); escape %% as %%25 and separate parameters with &", what, err)
	}
	if err := search.CheckQuery(q); err != nil {
		return nil, err
	}
	return q, nil
}

// negotiate refuses what Billy cannot answer: XML (406) via Accept or _format.
func negotiate(accept, format string) error {
	if f := format; f != "" {
		switch strings.ToLower(f) {
		case "json", "application/json", "application/fhir+json", "application/json+fhir":
		default:
			return fhir.Errorf(fhir.ErrNotAcceptable, "not-supported", "_format=%s: this server speaks JSON only (application/fhir+json)", f)
		}
		return nil
	}
	switch accept {
	case "", "*/*", "application/fhir+json", "application/json":
		return nil // the common cases, without parsing
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if q, ok := params["q"]; ok && (q == "0" || q == "0.0" || q == "0.00" || q == "0.000") {
			continue
		}
		switch mt {
		case "*/*", "application/*", "application/json", "application/fhir+json", "application/json+fhir", "text/*", "text/json":
			return nil
		}
	}
	return fhir.Errorf(fhir.ErrNotAcceptable, "not-supported", "Accept: %s: this server answers application/fhir+json only", accept)
}

// readRequest reads the parts of an HTTP request an interaction uses, with the body size limit.
func (s *Server) readRequest(r *http.Request, rt route, query url.Values) (*request, error) {
	req := &request{
		method: r.Method, rt: rt, query: query,
		ifMatch: r.Header.Get("If-Match"), ifNoneExist: r.Header.Get("If-None-Exist"),
		ifNoneMatch: r.Header.Get("If-None-Match"), ifModifiedSince: r.Header.Get("If-Modified-Since"),
		prefer: parsePrefer(r.Header.Get("Prefer")), contentType: r.Header.Get("Content-Type"), accept: r.Header.Get("Accept"),
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut && r.Method != http.MethodPatch {
		return req, nil
	}
	if rt.typ == "Binary" && (rt.interaction == ICreate || rt.interaction == IUpdate) && req.contentType != "" && !isFHIRType(req.contentType) {
		return req, s.readRawBinary(r, req)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fhir.Errorf(fhir.ErrTooLarge, "too-costly", "the body is larger than the limit of %d bytes", s.cfg.MaxBodyBytes)
		}
		return nil, fhir.Errorf(fhir.ErrInvalid, "structure", "could not read the body: %v", err)
	}
	req.body = body
	// POST _search carries form-encoded parameters, which join those of the URL. Any other body
	// (a JSON one, say) would be read as nonsense parameters, ignored, and the search widened.
	if rt.interaction == ISearchType && r.Method == http.MethodPost {
		if ct := req.contentType; ct != "" {
			if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
				return nil, fhir.Errorf(fhir.ErrUnsupportedMedia, "not-supported", "POST _search takes its parameters as application/x-www-form-urlencoded, not %q", ct)
			}
		}
		form, err := parseQuery(string(body), "the _search body (application/x-www-form-urlencoded)")
		if err != nil {
			return nil, err
		}
		for k, vs := range form {
			req.query[k] = append(req.query[k], vs...)
		}
		req.body = nil
		return req, nil
	}
	if rt.ext != nil && rt.ext.RawBody {
		return req, nil
	}
	if err := checkContentType(req.contentType, rt, r.Method); err != nil {
		return nil, err
	}
	return req, nil
}

// checkContentType accepts FHIR JSON (and plain JSON) bodies; PATCH also takes JSON Patch. A
// missing Content-Type is read as FHIR JSON.
func checkContentType(ct string, rt route, method string) error {
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return fhir.Errorf(fhir.ErrUnsupportedMedia, "not-supported", "Content-Type %q cannot be parsed", ct)
	}
	switch mt {
	case "application/fhir+json", "application/json", "application/json+fhir":
		return nil
	case "application/json-patch+json":
		if method == http.MethodPatch {
			return nil
		}
	}
	return fhir.Errorf(fhir.ErrUnsupportedMedia, "not-supported", "Content-Type %s is not supported here: send application/fhir+json%s", mt,
		map[bool]string{true: " (or application/json-patch+json)", false: ""}[method == http.MethodPatch])
}

// writeResponse writes a successful response and returns its status.
func (s *Server) writeResponse(w http.ResponseWriter, r *http.Request, resp *response, pref prefer, pretty bool) int {
	head := r.Method == http.MethodHead
	h := w.Header()
	if v := resp.version; v != nil {
		h.Set("ETag", etag(v.Version))
		h.Set("Last-Modified", v.LastUpdated.UTC().Format(http.TimeFormat))
	}
	if resp.location != "" {
		h.Set("Location", s.cfg.Base+"/"+resp.location)
	}
	for k, vs := range resp.header {
		h[k] = vs
	}
	if resp.stream != nil {
		ow := &outcomeWriter{ResponseWriter: w, size: resp.size}
		if err := resp.stream(ow, r); err != nil {
			if ow.status == 0 {
				return s.writeError(r.Context(), w, err, pretty) // nothing sent yet (the blob would not open)
			}
			s.log.ErrorContext(r.Context(), "streaming a response failed", "error", err.Error())
		}
		return ow.finish(pretty)
	}
	body := resp.body
	if resp.write {
		switch pref.ret {
		case "minimal":
			body = nil
		case "OperationOutcome":
			body = outcomeJSON(writeOutcome(resp))
		default:
			if body == nil && resp.version != nil {
				body = resp.version.Content
			}
		}
	} else if body == nil && resp.version != nil && resp.status != http.StatusNoContent && resp.status != http.StatusNotModified {
		body = resp.version.Content
	}
	status := resp.status
	if body != nil && status == http.StatusNoContent {
		status = http.StatusOK // Prefer: return=OperationOutcome on a delete
	}
	if body != nil {
		switch {
		case resp.contentType != "":
			h.Set("Content-Type", resp.contentType)
		default:
			h.Set("Content-Type", ContentType)
			if pretty {
				body = indent(body)
			}
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(status)
	if body != nil && !head {
		_, _ = w.Write(body)
	}
	return status
}

// writeOutcome is the OperationOutcome of a write for Prefer: return=OperationOutcome: what was
// done, then the write hooks' warnings (why a DocumentReference starts no coding run, say). FHIR has
// no place for warnings next to the resource itself (return=representation or minimal); a
// transaction or batch also puts them in entry.response.outcome (bundleResponse).
func writeOutcome(resp *response) []fhir.Issue {
	issues := []fhir.Issue{{Severity: fhir.SeverityInformation, Code: "informational", Diagnostics: resp.info}}
	return append(issues, warningsOf(resp)...)
}

// warningsOf are the write hooks' warnings about the version a response wrote.
func warningsOf(resp *response) []fhir.Issue {
	if resp.version == nil {
		return nil
	}
	return resp.version.Warnings
}

func indent(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return b
	}
	return buf.Bytes()
}

func etag(version int) string { return `W/"` + strconv.Itoa(version) + `"` }

// parseETag reads W/"3" or "3" (and a bare 3).
func parseETag(s string) (int, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "W/")
	s = strings.Trim(s, `"`)
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}

// statusOf is the one table from error kinds to HTTP status codes.
var statusOf = []struct {
	kind   error
	status int
}{
	{fhir.ErrInvalid, http.StatusBadRequest},
	{fhir.ErrUnauthorized, http.StatusUnauthorized},
	{fhir.ErrForbidden, http.StatusForbidden},
	{fhir.ErrTooCostly, http.StatusForbidden},
	{fhir.ErrNotFound, http.StatusNotFound},
	{fhir.ErrMethodNotAllowed, http.StatusMethodNotAllowed},
	{fhir.ErrNotAcceptable, http.StatusNotAcceptable},
	{fhir.ErrConflict, http.StatusConflict},
	{fhir.ErrGone, http.StatusGone},
	{fhir.ErrPreconditionFailed, http.StatusPreconditionFailed},
	{fhir.ErrTooLarge, http.StatusRequestEntityTooLarge},
	{fhir.ErrUnsupportedMedia, http.StatusUnsupportedMediaType},
	{fhir.ErrUnprocessable, http.StatusUnprocessableEntity},
	{fhir.ErrNotImplemented, http.StatusNotImplemented},
}

// defaultIssueCode is the issue code of errors that carry no issues of their own.
var defaultIssueCode = map[int]string{
	http.StatusBadRequest: "invalid", http.StatusUnauthorized: "login", http.StatusForbidden: "forbidden",
	http.StatusNotFound: "not-found", http.StatusMethodNotAllowed: "not-supported", http.StatusNotAcceptable: "not-supported",
	http.StatusConflict: "conflict", http.StatusGone: "deleted", http.StatusPreconditionFailed: "conflict",
	http.StatusRequestedRangeNotSatisfiable: "value",
	http.StatusRequestEntityTooLarge:        "too-costly", http.StatusUnsupportedMediaType: "not-supported",
	http.StatusUnprocessableEntity: "processing", http.StatusNotImplemented: "not-supported",
	http.StatusInternalServerError: "exception", http.StatusServiceUnavailable: "transient",
}

// errorStatus maps err to its status and issues. Unknown errors are 500 with a diagnostic that
// names the request id and nothing of the error itself (it may hold PHI or internals).
func errorStatus(ctx context.Context, err error) (int, []fhir.Issue) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, context.Canceled):
		status = 499
	case errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	default:
		for _, m := range statusOf {
			if errors.Is(err, m.kind) {
				status = m.status
				break
			}
		}
	}
	if fe, ok := fhir.AsError(err); ok && len(fe.Issues) > 0 {
		return status, fe.Issues
	}
	code := defaultIssueCode[status]
	if code == "" {
		code = "exception"
	}
	diag := err.Error()
	if status >= 500 || status == 499 {
		diag = "internal error; quote request id " + logging.RequestIDFrom(ctx) + " when reporting it"
	}
	return status, []fhir.Issue{{Severity: fhir.SeverityError, Code: code, Diagnostics: diag}}
}

func (s *Server) writeError(ctx context.Context, w http.ResponseWriter, err error, pretty bool) int {
	status, issues := errorStatus(ctx, err)
	if status >= 500 {
		// Logged once, here, at the edge; the message can name database internals but not PHI
		// (store errors wrap driver errors, never resource content).
		s.log.ErrorContext(ctx, "request failed", "status", status, "error", err.Error())
	}
	var me *methodError
	if errors.As(err, &me) {
		w.Header().Set("Allow", strings.Join(me.allowed, ", "))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="billy"`)
	}
	if status == 499 {
		return status // the client is gone
	}
	body := outcomeJSON(issues)
	if pretty {
		body = indent(body)
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return status
}
