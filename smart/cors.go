package smart

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// corsPolicy allows browser apps to call Billy from JavaScript: the origins of registered redirect
// URIs may call the FHIR API and the token endpoint; anyone may read the discovery documents. The
// origin list is read from the client registry and cached for a few seconds.
type corsPolicy struct {
	pool *pgxpool.Pool
	now  func() time.Time

	mu      sync.Mutex
	origins map[string]bool
	loaded  time.Time
}

func newCORSPolicy(pool *pgxpool.Pool, now func() time.Time) *corsPolicy {
	return &corsPolicy{pool: pool, now: now}
}

func (c *corsPolicy) invalidate() {
	c.mu.Lock()
	c.loaded = time.Time{}
	c.mu.Unlock()
}

func (c *corsPolicy) allowed(ctx context.Context, origin string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.origins == nil || c.now().Sub(c.loaded) > 10*time.Second {
		rows, err := c.pool.Query(ctx, `SELECT DISTINCT unnest(redirect_uris) FROM oauth_clients`)
		if err == nil {
			uris, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err == nil {
				c.origins = map[string]bool{}
				for _, u := range uris {
					if p, err := url.Parse(u); err == nil && p.Host != "" {
						c.origins[p.Scheme+"://"+p.Host] = true
					}
				}
				c.loaded = c.now()
			}
		}
	}
	return c.origins[origin]
}

// discoveryPaths are public documents every origin may read.
var discoveryPaths = map[string]bool{
	"/fhir/.well-known/smart-configuration": true, "/.well-known/openid-configuration": true,
	"/oauth2/jwks": true, "/fhir/metadata": true,
}

// wrap adds CORS headers and answers preflight requests. oauth marks the authorization server's
// handler (which includes discovery); otherwise it wraps the FHIR API.
func (c *corsPolicy) wrap(next http.Handler, oauth bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		ok := discoveryPaths[r.URL.Path] || c.allowed(r.Context(), origin)
		if ok && (!oauth || discoveryPaths[r.URL.Path] || r.URL.Path == "/oauth2/token" || r.URL.Path == "/oauth2/introspect" || r.URL.Path == "/oauth2/revoke") {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Expose-Headers", "Location, ETag, Last-Modified, Content-Location, X-Request-Id, WWW-Authenticate")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, If-Match, If-None-Match, If-None-Exist, If-Modified-Since, Prefer, X-Request-Id")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
