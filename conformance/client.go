package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Resp is an answer with the exchange that produced it.
type Resp struct {
	Status   int
	Header   http.Header
	Body     []byte
	Exchange Exchange
	parsed   map[string]any
	once     sync.Once // checks share answers (the SMART configuration, the export's status)
}

// JSON is the body parsed as a JSON object (nil when it is not one). Callers must not change it.
func (r *Resp) JSON() map[string]any {
	r.once.Do(func() {
		if json.Unmarshal(r.Body, &r.parsed) != nil {
			r.parsed = nil
		}
	})
	return r.parsed
}

// ResourceType is the body's resourceType ("" when there is none).
func (r *Resp) ResourceType() string { return str(r.JSON()["resourceType"]) }

// client sends requests to one FHIR base.
type client struct {
	base  string // ends with "/"
	http  *http.Client
	token string
}

// req describes a request: path is relative to the base unless it is an absolute URL.
type req struct {
	method, path string
	body         any // []byte, string, or a value marshalled to JSON
	header       http.Header
	noAuth       bool
	token        string // overrides the client's token
}

// do sends a request and reads its whole answer. A transport error is returned as an error; any
// HTTP answer is a Resp.
func (c *client) do(ctx context.Context, q req) (*Resp, error) {
	u := q.path
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		u = c.base + strings.TrimPrefix(u, "/")
	}
	var body []byte
	switch b := q.body.(type) {
	case nil:
	case []byte:
		body = b
	case string:
		body = []byte(b)
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			return nil, err
		}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, q.method, u, rd)
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		hr.Header.Set("Content-Type", "application/fhir+json")
	}
	for k, vs := range q.header {
		hr.Header[http.CanonicalHeaderKey(k)] = vs
	}
	tok := c.token
	if q.token != "" {
		tok = q.token
	}
	if tok != "" && !q.noAuth && hr.Header.Get("Authorization") == "" {
		hr.Header.Set("Authorization", "Bearer "+tok)
	}
	ex := Exchange{Method: q.method, URL: u, RequestHeaders: headerMap(hr.Header), RequestBody: redact(truncate(body))}
	resp, err := c.send(ctx, hr, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", q.method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", q.method, u, err)
	}
	ex.Status, ex.ResponseHeaders, ex.ResponseBody = resp.StatusCode, headerMap(resp.Header), redact(truncate(raw))
	return &Resp{Status: resp.StatusCode, Header: resp.Header, Body: raw, Exchange: ex}, nil
}

// secretRE matches the credentials an exchange may carry: client assertions in token requests,
// access and refresh tokens in token answers.
var secretRE = regexp.MustCompile(`((?:client_assertion|client_secret)=)[^&\s]+|("(?:access_token|refresh_token|id_token)"\s*:\s*")[^"]+`)

// redact masks credentials, so that reports can be shared.
func redact(s string) string { return secretRE.ReplaceAllString(s, "$1$2…") }

// get, post, put and del are the common requests; hdr is name, value pairs.
func (c *client) get(ctx context.Context, path string, hdr ...string) (*Resp, error) {
	return c.do(ctx, req{method: http.MethodGet, path: path, header: headers(hdr)})
}

func (c *client) post(ctx context.Context, path string, body any, hdr ...string) (*Resp, error) {
	return c.do(ctx, req{method: http.MethodPost, path: path, body: body, header: headers(hdr)})
}

func (c *client) put(ctx context.Context, path string, body any, hdr ...string) (*Resp, error) {
	return c.do(ctx, req{method: http.MethodPut, path: path, body: body, header: headers(hdr)})
}

func (c *client) del(ctx context.Context, path string, hdr ...string) (*Resp, error) {
	return c.do(ctx, req{method: http.MethodDelete, path: path, header: headers(hdr)})
}

func headers(kv []string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// JSON helpers over decoded values.

func str(v any) string {
	s, _ := v.(string)
	return s
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func arr(v any) []any {
	a, _ := v.([]any)
	return a
}

func itoa(i int) string { return strconv.Itoa(i) }

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}

// entries lists a Bundle's entries.
func entries(b map[string]any) []map[string]any {
	var out []map[string]any
	for _, e := range arr(b["entry"]) {
		if m := obj(e); m != nil {
			out = append(out, m)
		}
	}
	return out
}

// refsOf lists "Type/id" of a Bundle's entries, of one search mode when mode is set.
func refsOf(b map[string]any, mode string) []string {
	var out []string
	for _, e := range entries(b) {
		if mode != "" && str(obj(e["search"])["mode"]) != mode {
			continue
		}
		r := obj(e["resource"])
		out = append(out, str(r["resourceType"])+"/"+str(r["id"]))
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// link is the URL of a Bundle's link with relation rel.
func link(b map[string]any, rel string) string {
	for _, l := range arr(b["link"]) {
		if str(obj(l)["relation"]) == rel {
			return str(obj(l)["url"])
		}
	}
	return ""
}

// isOutcome reports whether the body is an OperationOutcome with at least one issue that has a
// severity and a code.
func isOutcome(r *Resp) bool {
	m := r.JSON()
	if str(m["resourceType"]) != "OperationOutcome" {
		return false
	}
	issues := arr(m["issue"])
	for _, i := range issues {
		if str(obj(i)["severity"]) == "" || str(obj(i)["code"]) == "" {
			return false
		}
	}
	return len(issues) > 0
}

// q escapes a search value.
func q(s string) string { return url.QueryEscape(s) }

// etagVersion is the versionId of a weak ETag (W/"x" → x).
func etagVersion(etag string) string {
	etag = strings.TrimPrefix(etag, "W/")
	return strings.Trim(etag, `"`)
}

// maxThrottled is how many times a request answered 429 is sent again; throttleWait caps the
// Retry-After the suite honours (a server asking for longer is reported as it answered).
const (
	maxThrottled = 5
	throttleWait = 10 * time.Second
)

// send sends hr, and sends it again after the server's Retry-After when it answers 429 Too Many
// Requests: a production server's rate limit is not a conformance failure, and the suite must not
// hammer it.
func (c *client) send(ctx context.Context, hr *http.Request, body []byte) (*http.Response, error) {
	for i := 0; ; i++ {
		if body != nil {
			hr.Body = io.NopCloser(bytes.NewReader(body))
		}
		resp, err := c.http.Do(hr)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || i == maxThrottled {
			return resp, err
		}
		wait, perr := strconv.Atoi(resp.Header.Get("Retry-After"))
		if perr != nil || wait < 0 || time.Duration(wait)*time.Second > throttleWait {
			return resp, nil
		}
		resp.Body.Close()
		t := time.NewTimer(time.Duration(wait)*time.Second + 50*time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
