package emr

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/fhir/audit"
)

// ErrBreakerOpen is returned without calling the EMR while its circuit breaker is open.
var ErrBreakerOpen = errors.New("emr: circuit breaker open (too many consecutive failures); calls resume after the cool-down")

// Options tune the outbound calls; zero values take the defaults.
type Options struct {
	// Timeout bounds one HTTP attempt (default 30 s).
	Timeout time.Duration
	// MaxAttempts per call, the first included (default 6).
	MaxAttempts int
	// BaseBackoff is the first retry's backoff ceiling, doubled each attempt (default 200 ms), capped
	// at MaxBackoff (default 30 s); Retry-After is honoured up to MaxBackoff.
	BaseBackoff, MaxBackoff time.Duration
	// BreakerThreshold consecutive failed calls open the breaker for BreakerCooldown (defaults 5, 30 s).
	BreakerThreshold int
	BreakerCooldown  time.Duration
	// HTTP is the transport (default a client with Timeout).
	HTTP *http.Client
	// Now and Sleep are the clock (tests inject them).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 6
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.BreakerThreshold <= 0 {
		o.BreakerThreshold = 5
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = 30 * time.Second
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: o.Timeout}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	return o
}

// breaker is a circuit breaker: open after threshold consecutive failures, half-open (one trial
// call) after the cool-down.
type breaker struct {
	mu        sync.Mutex
	failures  int
	openUntil time.Time
}

func (b *breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !now.Before(b.openUntil)
}

func (b *breaker) record(ok bool, now time.Time, o Options) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		b.failures = 0
		return
	}
	b.failures++
	if b.failures >= o.BreakerThreshold {
		b.openUntil = now.Add(o.BreakerCooldown)
		b.failures = o.BreakerThreshold - 1 // half-open: one more failure re-opens it
	}
}

// Client calls one EMR's FHIR API with Backend Services authorization.
type Client struct {
	sys    *System
	prof   *Profile
	signer crypto.Signer
	opt    Options
	pool   *pgxpool.Pool
	log    *slog.Logger
	brk    *breaker
	// tok is shared by the clients of one EMR (Service.clientFor): a token serves every sync and
	// write-back until shortly before it expires.
	tok *tokenCache
	// audit records each call in the audit trail (nil: none).
	audit Auditor
}

// Auditor records events in the audit trail (audit.Log).
type Auditor interface {
	Record(ctx context.Context, evs ...*audit.Event) error
}

// Agent is the client id the AuditEvents of EMR calls name: the adapter acts as a system principal.
const Agent = "billy-emr"

// tokenCache is an EMR's token endpoint and current access token.
type tokenCache struct {
	mu       sync.Mutex
	tokenURL string
	token    string
	tokenExp time.Time
}

// Response is an EMR's answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// HTTPError is a final non-2xx answer.
type HTTPError struct {
	Status int
	Body   []byte
}

func (e *HTTPError) Error() string { return fmt.Sprintf("emr answered %d", e.Status) }

func (c *Client) now() time.Time { return c.opt.Now() }

// discover reads .well-known/smart-configuration for the token endpoint.
func (c *Client) discover(ctx context.Context) (string, error) {
	c.tok.mu.Lock()
	u := c.tok.tokenURL
	c.tok.mu.Unlock()
	if u != "" {
		return u, nil
	}
	resp, err := c.attempts(ctx, "discovery", http.MethodGet, c.sys.Base+"/.well-known/smart-configuration", nil, nil, false)
	if err != nil {
		return "", fmt.Errorf("smart-configuration: %w", err)
	}
	var conf struct {
		TokenEndpoint string   `json:"token_endpoint"`
		AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := json.Unmarshal(resp.Body, &conf); err != nil || conf.TokenEndpoint == "" {
		return "", errors.New("smart-configuration has no token_endpoint")
	}
	if len(conf.AuthMethods) > 0 && !contains(conf.AuthMethods, "private_key_jwt") {
		return "", errors.New("the EMR does not offer private_key_jwt client authentication")
	}
	c.tok.mu.Lock()
	c.tok.tokenURL = conf.TokenEndpoint
	c.tok.mu.Unlock()
	return conf.TokenEndpoint, nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// accessToken returns the cached token, or a new one when it is missing or expires within a minute.
func (c *Client) accessToken(ctx context.Context) (string, error) {
	c.tok.mu.Lock()
	if c.tok.token != "" && c.now().Before(c.tok.tokenExp.Add(-time.Minute)) {
		t := c.tok.token
		c.tok.mu.Unlock()
		return t, nil
	}
	c.tok.mu.Unlock()
	tokenURL, err := c.discover(ctx)
	if err != nil {
		return "", err
	}
	assertion, err := c.assertion(tokenURL)
	if err != nil {
		return "", err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {c.sys.Scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	hdr := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Accept": {"application/json"}}
	resp, err := c.attempts(ctx, "token", http.MethodPost, tokenURL, []byte(form.Encode()), hdr, false)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(resp.Body, &tr); err != nil || tr.AccessToken == "" {
		return "", errors.New("token: the answer has no access_token")
	}
	if tr.ExpiresIn <= 0 {
		tr.ExpiresIn = 300
	}
	c.tok.mu.Lock()
	c.tok.token, c.tok.tokenExp = tr.AccessToken, c.now().Add(time.Duration(tr.ExpiresIn)*time.Second)
	c.tok.mu.Unlock()
	return tr.AccessToken, nil
}

func (c *Client) dropToken() {
	c.tok.mu.Lock()
	c.tok.token = ""
	c.tok.mu.Unlock()
}

// assertion is the signed client authentication JWT (SMART Backend Services): iss = sub = client
// id, aud = the token endpoint, a unique jti, five minutes of life.
func (c *Client) assertion(aud string) (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(c.sys.Alg), Key: c.signer},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", c.sys.KeyID))
	if err != nil {
		return "", err
	}
	jti := make([]byte, 16)
	_, _ = cryptoRand(jti)
	now := c.now()
	claims := josejwt.Claims{Issuer: c.sys.ClientID, Subject: c.sys.ClientID, Audience: josejwt.Audience{aud},
		ID: hex.EncodeToString(jti), IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(5 * time.Minute))}
	return josejwt.Signed(sig).Claims(claims).Serialize()
}

var cryptoRand = rand.Read

// Do calls the EMR's FHIR API (path relative to the base, or an absolute URL on it such as a next
// link) with a bearer token, retrying and renewing the token once on 401.
func (c *Client) Do(ctx context.Context, purpose, method, target string, body []byte, hdr http.Header) (*Response, error) {
	u := target
	if !strings.HasPrefix(target, "http://") && !strings.HasPrefix(target, "https://") {
		u = c.sys.Base + "/" + strings.TrimLeft(target, "/")
	} else if !strings.HasPrefix(target, c.sys.Base+"/") && target != c.sys.Base {
		return nil, fmt.Errorf("emr: refusing to follow a link off the EMR's base")
	}
	return c.attempts(ctx, purpose, method, u, body, hdr, true)
}

// attempts runs one call: breaker, retries with backoff, token renewal on 401 (authed calls).
func (c *Client) attempts(ctx context.Context, purpose, method, u string, body []byte, hdr http.Header, authed bool) (*Response, error) {
	if !c.brk.allow(c.now()) {
		c.record(ctx, purpose, method, u, 0, 0, "breaker-open", 1)
		return nil, ErrBreakerOpen
	}
	renewed := false
	var lastErr error
	for attempt := 1; attempt <= c.opt.MaxAttempts; attempt++ {
		var tok string
		if authed {
			t, err := c.accessToken(ctx)
			if err != nil {
				c.brk.record(false, c.now(), c.opt)
				return nil, err
			}
			tok = t
		}
		resp, err := c.once(ctx, purpose, method, u, body, hdr, tok, attempt)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = err
		case resp.Status == http.StatusUnauthorized && authed && !renewed:
			renewed = true
			c.dropToken()
			attempt-- // a renewal is not a retry
			continue
		case resp.Status == http.StatusTooManyRequests || resp.Status == http.StatusServiceUnavailable ||
			resp.Status == http.StatusBadGateway || resp.Status == http.StatusGatewayTimeout:
			lastErr = &HTTPError{Status: resp.Status, Body: resp.Body}
			wait = retryAfter(resp.Header.Get("Retry-After"), c.now())
		case resp.Status >= 300:
			c.brk.record(resp.Status < 500, c.now(), c.opt)
			return resp, &HTTPError{Status: resp.Status, Body: resp.Body}
		default:
			c.brk.record(true, c.now(), c.opt)
			return resp, nil
		}
		if attempt == c.opt.MaxAttempts {
			break
		}
		if wait <= 0 {
			ceil := c.opt.BaseBackoff << (attempt - 1)
			if ceil > c.opt.MaxBackoff || ceil <= 0 {
				ceil = c.opt.MaxBackoff
			}
			wait = time.Duration(mrand.Int64N(int64(ceil) + 1)) // full jitter
		}
		wait = min(wait, c.opt.MaxBackoff)
		if err := c.opt.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
	c.brk.record(false, c.now(), c.opt)
	return nil, fmt.Errorf("after %d attempts: %w", c.opt.MaxAttempts, lastErr)
}

// retryAfter reads a Retry-After header (seconds or an HTTP date).
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

func (c *Client) once(ctx context.Context, purpose, method, u string, body []byte, hdr http.Header, tok string, attempt int) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/fhir+json")
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	start := c.now()
	resp, err := c.opt.HTTP.Do(req)
	if err != nil {
		c.record(ctx, purpose, method, u, 0, time.Since(start), "network-error", attempt)
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		c.record(ctx, purpose, method, u, resp.StatusCode, time.Since(start), "network-error", attempt)
		return nil, err
	}
	outcome := "ok"
	if resp.StatusCode >= 300 {
		outcome = "http-error"
	}
	c.record(ctx, purpose, method, u, resp.StatusCode, time.Since(start), outcome, attempt)
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// record writes one attempt to emr_calls: the path and the names of the query parameters only.
func (c *Client) record(ctx context.Context, purpose, method, u string, status int, d time.Duration, outcome string, attempt int) {
	target := redact(u)
	if c.log != nil {
		c.log.Debug("emr call", "emr", c.sys.Name, "purpose", purpose, "method", method, "target", target, "status", status, "outcome", outcome)
	}
	if _, err := c.pool.Exec(context.WithoutCancel(ctx), `INSERT INTO emr_calls (emr, at, purpose, method, target, status, duration_ms, outcome, attempt)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`, c.sys.Name, c.now(), purpose, method, target, status, int(d.Milliseconds()), outcome, attempt); err != nil && c.log != nil {
		c.log.Warn("emr: the call record could not be written", "emr", c.sys.Name, "error", err.Error())
	}
	c.auditCall(ctx, purpose, method, target, status, outcome)
}

// auditCall records one call in the audit trail: which EMR, what was asked (the redacted target:
// path and parameter names) and how it ended. Patients are not named: the call speaks the EMR's ids.
func (c *Client) auditCall(ctx context.Context, purpose, method, target string, status int, outcome string) {
	if c.audit == nil {
		return
	}
	ev := &audit.Event{Kind: audit.KindEMR, Subtype: purpose, Action: actionOf(method), Outcome: audit.OutcomeSuccess,
		Agent: audit.Agent{ClientID: Agent}, Recorded: c.now(),
		Entities: []audit.Entity{{Description: "EMR " + c.sys.Name + ": " + method + " " + target}}}
	switch {
	case status == 0 || status >= 500:
		ev.Outcome = audit.OutcomeSerious
	case status >= 300:
		ev.Outcome = audit.OutcomeMinor
	}
	if ev.Outcome != audit.OutcomeSuccess {
		ev.OutcomeDesc = outcome
		if status > 0 {
			ev.OutcomeDesc += " " + strconv.Itoa(status)
		}
	}
	if err := c.audit.Record(context.WithoutCancel(ctx), ev); err != nil && c.log != nil {
		c.log.Warn("emr: the call's AuditEvent could not be written", "emr", c.sys.Name, "error", err.Error())
	}
}

// actionOf is AuditEvent.action for an HTTP method.
func actionOf(method string) string {
	switch method {
	case http.MethodPost:
		return audit.ActionCreate
	case http.MethodPut, http.MethodPatch:
		return audit.ActionUpdate
	case http.MethodDelete:
		return audit.ActionDelete
	}
	return audit.ActionRead
}

// redact keeps a URL's path and its query parameter names: ids in paths are the EMR's opaque ids,
// values of parameters (names, dates of birth in a search) could be PHI.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable)"
	}
	names := make([]string, 0, len(p.Query()))
	for k := range p.Query() {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return p.Path
	}
	return p.Path + "?" + strings.Join(names, "&")
}
