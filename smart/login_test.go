package smart_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// from returns an HTTP client whose connections come from a loopback address of its own
// (127.0.0.0/8 is all loopback on Linux), so the server sees a different client address.
func from(t *testing.T, addr string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) { return d.DialContext(ctx, network, a) }}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestLoginThrottle: failures from one address throttle that address, not the user elsewhere;
// failures across addresses slow down, exponentially, the addresses that failed.
func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client, redirect := e.registerPublic(appScopes)
	_, challenge := pkce()
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "scope": {"patient/*.rs"},
		"state": {"state-123456"}, "aud": {e.fhir}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	page := e.do(mustReq(http.MethodGet, e.base+"/oauth2/authorize?"+q.Encode()))
	try := func(addr, pw string) resp {
		t.Helper()
		f := hidden(t, page.body)
		f.Set("username", "doc")
		f.Set("password", pw)
		req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth2/authorize", strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := from(t, addr).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return resp{status: res.StatusCode, header: res.Header, body: string(b)}
	}
	loggedIn := func(r resp) bool { return r.status == http.StatusOK && strings.Contains(r.body, `id="approve"`) }
	throttled := func(r resp, retryAfter string) bool {
		return r.status == http.StatusTooManyRequests && strings.Contains(r.body, "too many failed sign-ins") && r.header.Get("Retry-After") == retryAfter
	}
	const attacker, attacker2, clinician, clinician2 = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"
	const right = "correct horse battery"

	for i := 0; i < 5; i++ {
		if r := try(attacker, "wrong"); r.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, r.status)
		}
		e.clock.advance(time.Minute) // past the per-user delay, so that the count per address decides
	}
	// Five failures from the attacker's address: that address is locked for 15 minutes from the
	// fifth (a minute ago), even with the right password.
	if r := try(attacker, right); !throttled(r, "840") {
		t.Errorf("the attacker's address after 5 failures: %d %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	// The clinician, from an address that has not failed, signs in at once.
	if r := try(clinician, right); !loggedIn(r) {
		t.Errorf("the clinician from another address: %d %s", r.status, r.body)
	}
	// Failures across addresses: each further failure doubles the delay every failed address waits
	// (the sixth 2 s, then 4 s, 8 s), counted from the user's last failure.
	if r := try(attacker2, "wrong"); r.status != http.StatusUnauthorized {
		t.Fatalf("a new address's first attempt: %d", r.status)
	}
	for _, wait := range []int{2, 4, 8} {
		if r := try(attacker2, "wrong"); !throttled(r, strconv.Itoa(wait)) {
			t.Errorf("backoff after a failure: want Retry-After %d, got %d %q", wait, r.status, r.header.Get("Retry-After"))
		}
		e.clock.advance(time.Duration(wait)*time.Second - time.Millisecond)
		if r := try(attacker2, "wrong"); r.status != http.StatusTooManyRequests {
			t.Errorf("a millisecond early: %d", r.status)
		}
		e.clock.advance(time.Millisecond)
		if r := try(attacker2, "wrong"); r.status != http.StatusUnauthorized {
			t.Errorf("after %d s: %d %s", wait, r.status, r.body)
		}
	}
	// Clean addresses are never delayed, and a success clears its address.
	if r := try(clinician2, right); !loggedIn(r) {
		t.Errorf("the clinician from a third address during the backoff: %d %s", r.status, r.body)
	}
	if r := try(clinician, right); !loggedIn(r) {
		t.Errorf("the clinician again: %d %s", r.status, r.body)
	}
	// The attacker's address is still locked, until 15 minutes after its fifth failure.
	if r := try(attacker, right); r.status != http.StatusTooManyRequests {
		t.Errorf("the attacker's address during its lockout: %d", r.status)
	}
	e.clock.advance(15 * time.Minute)
	if r := try(attacker, right); !loggedIn(r) {
		t.Errorf("after the lockout (and the backoff): %d %s", r.status, r.body)
	}
	if n := e.audits.count("login", "failure"); n < 12 {
		t.Errorf("failed and throttled logins must be audited: %d", n)
	}
}

// TestLoginThrottleConcurrent: attempts sent at once from one address cannot slip past the limit
// while the first ones are being checked.
func TestLoginThrottleConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client, redirect := e.registerPublic(appScopes)
	_, challenge := pkce()
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "scope": {"patient/*.rs"},
		"state": {"state-123456"}, "aud": {e.fhir}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	f := hidden(t, e.do(mustReq(http.MethodGet, e.base+"/oauth2/authorize?"+q.Encode())).body)
	f.Set("username", "doc")
	f.Set("password", "wrong")
	c := from(t, "127.0.0.6")
	statuses := make(chan int, 20)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth2/authorize", strings.NewReader(f.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			res, err := c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses <- res.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[http.StatusUnauthorized] != 5 || count[http.StatusTooManyRequests] != 15 {
		t.Errorf("20 concurrent wrong passwords: %v, want 5 checked (401) and 15 refused (429)", count)
	}
}
