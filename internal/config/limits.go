package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// validateLimits checks the abuse-limit, timeout and TLS settings.
func (c *Config) validateLimits() []error {
	var errs []error
	for name, v := range map[string]float64{"BILLY_RATE_LIMIT_ADDR_RATE": c.RateLimitAddrRate, "BILLY_RATE_LIMIT_CLIENT_RATE": c.RateLimitClientRate} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s=%g: want 0 (off) or a positive number of requests per second", name, v))
		}
	}
	for name, v := range map[string]int{"BILLY_RATE_LIMIT_ADDR_BURST": c.RateLimitAddrBurst, "BILLY_RATE_LIMIT_CLIENT_BURST": c.RateLimitClientBurst} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s=%d: want at least 1", name, v))
		}
	}
	if _, err := c.RateLimitExemptPrefixes(); err != nil {
		errs = append(errs, err)
	}
	for name, v := range map[string]time.Duration{"BILLY_HTTP_HEADER_TIMEOUT": c.HTTPHeaderTimeout, "BILLY_HTTP_BODY_TIMEOUT": c.HTTPBodyTimeout, "BILLY_HTTP_IDLE_TIMEOUT": c.HTTPIdleTimeout} {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s=%s: want a positive duration", name, v))
		}
	}
	if c.MasterKeyReload < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("BILLY_MASTER_KEY_RELOAD=%s: want at least 10ms", c.MasterKeyReload))
	}
	if c.HTTPBodyMinRate < 1 {
		errs = append(errs, fmt.Errorf("BILLY_HTTP_BODY_MIN_RATE=%d: want at least 1 byte per second", c.HTTPBodyMinRate))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, fmt.Errorf("BILLY_TLS_CERT_FILE and BILLY_TLS_KEY_FILE go together: set both or neither"))
	}
	if strings.TrimSpace(c.FrameAncestors) == "" || strings.ContainsAny(c.FrameAncestors, ";,\r\n") {
		errs = append(errs, fmt.Errorf("BILLY_FRAME_ANCESTORS=%q: want a space-separated CSP source list ('none', 'self', https://emr.example)", c.FrameAncestors))
	}
	return errs
}

// RateLimitExemptPrefixes parses BILLY_RATE_LIMIT_EXEMPT: CIDRs separated by spaces or commas.
func (c *Config) RateLimitExemptPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(c.RateLimitExempt, func(r rune) bool { return r == ' ' || r == ',' }) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("BILLY_RATE_LIMIT_EXEMPT: %q is not a CIDR (127.0.0.0/8, ::1/128)", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// TLSEnabled reports whether Billy terminates TLS itself.
func (c *Config) TLSEnabled() bool { return c.TLSCertFile != "" && c.TLSKeyFile != "" }

// BaseURLIsHTTPS reports whether clients reach Billy over HTTPS (its own TLS or a proxy's).
func (c *Config) BaseURLIsHTTPS() bool {
	return strings.HasPrefix(strings.ToLower(c.BaseURL), "https://")
}
