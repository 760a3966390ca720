package httpguard

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limit is a token bucket: Burst requests at once, refilled at Rate per second. A Rate of 0 means
// no limit.
type Limit struct {
	Rate  float64
	Burst int
}

// Off reports whether the limit lets everything through.
func (l Limit) Off() bool { return l.Rate <= 0 || l.Burst < 1 }

// gcra takes one token from the bucket KEYS[1] if it has one. ARGV: burst, emission interval in
// microseconds. Answers {1, 0} (allowed) or {0, microseconds until a token is there}. The theoretical
// arrival time (TAT) is kept in microseconds of the Redis clock, so processes with skewed clocks agree.
var gcra = redis.NewScript(`
local burst = tonumber(ARGV[1])
local emission = tonumber(ARGV[2])
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call("GET", KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + emission
local allow_at = new_tat - emission * burst
if now < allow_at then
  return {0, math.ceil(allow_at - now)}
end
redis.call("SET", KEYS[1], string.format("%.0f", new_tat), "PX", math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
`)

// Limiter checks token buckets kept in Redis under Prefix.
type Limiter struct {
	Redis  redis.Scripter
	Prefix string
	Log    *slog.Logger

	mu       sync.Mutex
	lastWarn time.Time
}

// Allow takes a token from the bucket key under lim. When none is left it answers false and how long
// until one is. A Redis failure is returned with ok true: the caller lets the request pass.
func (l *Limiter) Allow(ctx context.Context, key string, lim Limit) (ok bool, retry time.Duration, err error) {
	if lim.Off() {
		return true, 0, nil
	}
	emission := math.Max(1, math.Round(1e6/lim.Rate))
	res, err := gcra.Run(ctx, l.Redis, []string{l.Prefix + key}, lim.Burst, emission).Int64Slice()
	if err != nil || len(res) != 2 {
		return true, 0, fmt.Errorf("rate limit: %w", err)
	}
	if res[0] == 1 {
		return true, 0, nil
	}
	return false, time.Duration(res[1]) * time.Microsecond, nil
}

// check runs Allow for an HTTP request and answers 429 when the bucket is empty; it reports whether
// the request may go on.
func (l *Limiter) check(w http.ResponseWriter, r *http.Request, key string, lim Limit, what string) bool {
	ok, retry, err := l.Allow(r.Context(), key, lim)
	if err != nil {
		l.warn(err)
		return true
	}
	if ok {
		return true
	}
	secs := int(math.Ceil(retry.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	WriteOutcome(w, http.StatusTooManyRequests, "throttled",
		fmt.Sprintf("too many requests from this %s: retry after %d s", what, secs))
	return false
}

func (l *Limiter) warn(err error) {
	if l.Log == nil {
		return
	}
	l.mu.Lock()
	due := time.Since(l.lastWarn) > time.Minute
	if due {
		l.lastWarn = time.Now()
	}
	l.mu.Unlock()
	if due {
		l.Log.Warn("rate limits not enforced: Redis does not answer", "error", err.Error())
	}
}

// PerAddress limits every request by its source address (the TCP peer), except addresses in exempt.
func (l *Limiter) PerAddress(lim Limit, exempt []netip.Prefix, next http.Handler) http.Handler {
	if lim.Off() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr, ok := peer(r)
		if ok {
			for _, p := range exempt {
				if p.Contains(addr) {
					next.ServeHTTP(w, r)
					return
				}
			}
		}
		key := "addr:" + addr.String()
		if !ok {
			key = "addr:unknown"
		}
		if l.check(w, r, key, lim, "address") {
			next.ServeHTTP(w, r)
		}
	})
}

// PerClient limits requests by the OAuth client id clientID finds in their context; requests without
// one pass (they are refused by authorization, or limited per address).
func (l *Limiter) PerClient(lim Limit, clientID func(context.Context) string, next http.Handler) http.Handler {
	if lim.Off() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := clientID(r.Context())
		if id == "" || l.check(w, r, "client:"+id, lim, "client") {
			next.ServeHTTP(w, r)
		}
	})
}

// peer is the request's TCP source address, IPv4-mapped IPv6 unmapped.
func peer(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// WriteOutcome answers status with a one-issue FHIR OperationOutcome.
func WriteOutcome(w http.ResponseWriter, status int, code, diagnostics string) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":%q,"diagnostics":%q}]}`, code, diagnostics)
}
