package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"time"

	"github.com/iambilly/billy/internal/httpguard"
	"github.com/iambilly/billy/smart"
)

// guard wraps the whole HTTP surface in the abuse limits: security headers, the per-address rate
// limit and the slow-body deadline (README "Abuse limits").
func (a *app) guard(h http.Handler) http.Handler {
	exempt, _ := a.cfg.RateLimitExemptPrefixes() // validated by config.Load
	h = httpguard.BodyDeadline(a.cfg.HTTPBodyTimeout, a.cfg.HTTPBodyMinRate, time.Now, h)
	h = a.limiter().PerAddress(httpguard.Limit{Rate: a.cfg.RateLimitAddrRate, Burst: a.cfg.RateLimitAddrBurst}, exempt, h)
	return httpguard.Headers(httpguard.HeaderPolicy{HSTS: a.cfg.TLSEnabled() || a.cfg.BaseURLIsHTTPS(), FrameAncestors: a.cfg.FrameAncestors}, h)
}

// guardClient limits FHIR requests per OAuth client; it goes inside the token verifier, which puts
// the client id in the context.
func (a *app) guardClient(h http.Handler) http.Handler {
	return a.limiter().PerClient(httpguard.Limit{Rate: a.cfg.RateLimitClientRate, Burst: a.cfg.RateLimitClientBurst}, clientID, h)
}

func clientID(ctx context.Context) string {
	if p := smart.PrincipalFrom(ctx); p != nil {
		return p.ClientID
	}
	return ""
}

func (a *app) limiter() *httpguard.Limiter {
	return &httpguard.Limiter{Redis: a.redis, Prefix: rateLimitPrefix(a.cfg.DatabaseURL), Log: a.log}
}

// rateLimitPrefix names the buckets of one installation: the processes sharing a database share
// buckets; installations sharing a Redis (each with its own database) do not.
func rateLimitPrefix(databaseURL string) string {
	id := databaseURL
	if u, err := url.Parse(databaseURL); err == nil {
		id = u.Host + u.Path
	}
	sum := sha256.Sum256([]byte(id))
	return "billy:ratelimit:" + hex.EncodeToString(sum[:6]) + ":"
}
