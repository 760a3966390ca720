package main

import (
	"context"
	"fmt"

	"github.com/iambilly/billy/internal/benchkit"
)

// auditResult is what auditing costs reads: the rate with the audit trail on (every read appends
// an AuditEvent, committed before the answer) and off (BILLY_AUDIT=off, dev only), measured in
// alternating phases against two Billy processes on the same database.
type auditResult struct {
	on, off       float64
	onLat, offLat latencies
	rows          int64
}

// measureAudit starts a second Billy with the audit trail off next to base (on), and measures
// reads on each in turn, off-on-off-on, each phase o.readFor long, so that neither mode gets the
// warmer caches.
func measureAudit(ctx context.Context, o options, dbURL, base string, refs []string) (*auditResult, error) {
	p, err := benchkit.Serve(ctx, o.billy, []string{"--worker=false"}, []string{"BILLY_DATABASE_URL=" + dbURL,
		"BILLY_REDIS_URL=" + o.redisURL, "BILLY_LOG_LEVEL=warn", "BILLY_AUDIT=off"})
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	res := &auditResult{}
	var onN, offN float64
	for phase := range 4 {
		target, on := p.Base, false
		if phase%2 == 1 {
			target, on = base, true
		}
		rate, lat, err := billyRead(ctx, target, refs, o)
		if err != nil {
			return nil, fmt.Errorf("billy read (audit on=%v): %w", on, err)
		}
		if on {
			res.on += rate
			res.onLat = append(res.onLat, lat...)
			onN++
		} else {
			res.off += rate
			res.offLat = append(res.offLat, lat...)
			offN++
		}
	}
	res.on /= onN
	res.off /= offN
	return res, nil
}
