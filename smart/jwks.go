package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The JWKS cache window of clients registered with a jwks_uri (SMART Backend Services): a fetched
// key set is kept as long as its Cache-Control max-age says, within these bounds, and five minutes
// when the answer says nothing. An assertion naming a kid the cached set does not hold re-fetches
// the set, at most once a minute per client: one fetch per minute is all an attacker sending made-up
// kids can cause.
const (
	jwksMinAge       = time.Minute
	jwksMaxAge       = time.Hour
	jwksDefaultAge   = 5 * time.Minute
	jwksFetchEvery   = time.Minute
	jwksFetchTimeout = 5 * time.Second
	jwksMaxBytes     = 256 << 10
	// jwksUserAgent names Billy's fetches in the client's access log.
	jwksUserAgent = "billy-jwks/1"
)

// jwksCache holds the key sets of clients registered by jwks_uri, per client, in this process.
// Each process fetches on its own (the window bounds how long a rotated-out key keeps working on
// any of them). Fetches are one GET each, never retried, with a timeout, no redirects, and one at a
// time per client (others wait for it).
type jwksCache struct {
	http *http.Client
	now  func() time.Time

	mu      sync.Mutex
	entries map[string]*jwksEntry
}

type jwksEntry struct {
	mu        sync.Mutex // held while fetching
	uri       string
	set       *jose.JSONWebKeySet
	expires   time.Time // of set
	lastFetch time.Time // last attempt, failed or not
	lastErr   error
}

func newJWKSCache(timeout time.Duration, now func() time.Time) *jwksCache {
	if timeout <= 0 {
		timeout = jwksFetchTimeout
	}
	return &jwksCache{
		http: &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("the JWKS URL redirects (not followed)")
		}},
		now:     now,
		entries: map[string]*jwksEntry{},
	}
}

// keys returns client's key set from uri. When kid is not empty and the cached set does not hold it,
// the set is fetched again if the last fetch is a minute old or more.
func (c *jwksCache) keys(ctx context.Context, clientID, uri, kid string) (*jose.JSONWebKeySet, error) {
	c.mu.Lock()
	e := c.entries[clientID]
	if e == nil || e.uri != uri {
		e = &jwksEntry{uri: uri}
		c.entries[clientID] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	now := c.now()
	fresh := e.set != nil && now.Before(e.expires)
	mayFetch := e.lastFetch.IsZero() || now.Sub(e.lastFetch) >= jwksFetchEvery
	switch {
	case fresh && (kid == "" || len(e.set.Key(kid)) > 0):
		return e.set, nil
	case fresh && !mayFetch:
		return e.set, nil // the kid is unknown; the caller refuses it
	case !fresh && !mayFetch:
		if e.lastErr != nil {
			return nil, e.lastErr
		}
		return nil, errors.New("the client's JWKS is being fetched too often")
	}
	e.lastFetch = now
	set, age, err := c.fetch(ctx, uri)
	if err != nil {
		e.lastErr = err
		// A set still within its window stays usable for the kids it holds.
		if fresh {
			return e.set, nil
		}
		e.set = nil
		return nil, err
	}
	e.set, e.expires, e.lastErr = set, now.Add(age), nil
	return set, nil
}

// fetch GETs a JWKS once and returns it with how long it may be kept.
func (c *jwksCache) fetch(ctx context.Context, uri string) (*jose.JSONWebKeySet, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("the JWKS URL: %w", err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	req.Header.Set("User-Agent", jwksUserAgent)
	res, err := c.http.Do(req)
	if err != nil {
		return nil, 0, errors.New("the client's JWKS could not be fetched (unreachable or too slow)")
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("the client's JWKS could not be fetched: its URL answered %d", res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, 0, errors.New("the client's JWKS could not be read")
	}
	if len(body) > jwksMaxBytes {
		return nil, 0, errors.New("the client's JWKS is larger than 256 KiB")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil || len(set.Keys) == 0 {
		return nil, 0, errors.New("the client's JWKS URL does not answer a key set with keys")
	}
	return &set, cacheAge(res.Header.Get("Cache-Control")), nil
}

// cacheAge reads max-age from a Cache-Control header, clamped to [jwksMinAge, jwksMaxAge];
// jwksDefaultAge without one. no-store and no-cache mean the minimum: refetching on every
// assertion would hand the fetch rate to whoever sends assertions.
func cacheAge(h string) time.Duration {
	age := jwksDefaultAge
	for _, d := range strings.Split(h, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-store" || d == "no-cache":
			return jwksMinAge
		case strings.HasPrefix(d, "max-age="):
			n, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(d, "max-age="), `"`), 10, 64)
			if err != nil || n < 0 {
				continue
			}
			if n > int64(jwksMaxAge/time.Second) {
				n = int64(jwksMaxAge / time.Second)
			}
			age = time.Duration(n) * time.Second
		}
	}
	return min(max(age, jwksMinAge), jwksMaxAge)
}
