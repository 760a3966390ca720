// Package config builds Billy's configuration from the environment (flags may override fields after).
//
// It owns the names, defaults and cross-field rules of every setting in DESIGN.md; it does not open
// connections or read keys' meaning. Secrets accept a NAME_FILE variant whose file holds the value,
// and are never printed: Config implements slog.LogValuer without them.
package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
)

// Config is the whole configuration of one billy process.
type Config struct {
	Addr        string `env:"BILLY_ADDR, default=:8080"`
	BaseURL     string `env:"BILLY_BASE_URL, default=http://localhost:8080"`
	DatabaseURL string `env:"BILLY_DATABASE_URL, default=postgres://postgres@127.0.0.1:5432/billy?sslmode=disable"`
	RedisURL    string `env:"BILLY_REDIS_URL, default=redis://127.0.0.1:6379/0"`
	// Auth is "smart" (default) or "none"; none is refused unless Dev is set.
	Auth      string `env:"BILLY_AUTH, default=smart"`
	Dev       bool   `env:"BILLY_DEV, default=false"`
	MasterKey string `env:"BILLY_MASTER_KEY"`
	DataDir   string `env:"BILLY_DATA_DIR, default=./data"`
	LogLevel  string `env:"BILLY_LOG_LEVEL, default=info"`

	// Audit is "on" (default): an AuditEvent for every access (fhir/audit). "off" exists for
	// benchmarks that measure what auditing costs, and is refused unless Dev is set.
	Audit string `env:"BILLY_AUDIT, default=on"`
	// AuditSyncCommit makes every batch of read AuditEvents wait for its WAL flush (audit.Writer);
	// off, they survive any crash of Billy but not one of PostgreSQL within 0.6 s.
	AuditSyncCommit bool `env:"BILLY_AUDIT_SYNC_COMMIT, default=false"`

	// MaxBodyBytes bounds every request body except streamed Binary uploads.
	MaxBodyBytes int64 `env:"BILLY_MAX_BODY_BYTES, default=16777216"`
	// MaxBinaryBytes bounds a raw Binary upload (streamed to the encrypted blob store).
	MaxBinaryBytes int64 `env:"BILLY_MAX_BINARY_BYTES, default=1073741824"`
	// MaxBundleEntries bounds batch and transaction Bundles.
	MaxBundleEntries int `env:"BILLY_MAX_BUNDLE_ENTRIES, default=10000"`
	// DBMaxConns sizes the PostgreSQL pool; 0 lets pgx choose (4 per CPU, at least 4).
	DBMaxConns int32 `env:"BILLY_DB_MAX_CONNS, default=0"`
	// PprofAddr, when set, serves net/http/pprof on that address (never on the API listener).
	PprofAddr string `env:"BILLY_PPROF_ADDR"`
	// TrustedIssuers is a JSON list of external token issuers: [{"issuer": "...", "jwks_uri": "...",
	// "audience": "..."}] (jwks_uri and audience optional).
	TrustedIssuers string `env:"BILLY_TRUSTED_ISSUERS"`
	// WorkerConcurrency is how many pipeline stages a worker runs at once.
	WorkerConcurrency int `env:"BILLY_WORKER_CONCURRENCY, default=2"`
	// PipelineQueue names the Redis queue of pipeline stages; Billy instances sharing one Redis
	// database need different names.
	PipelineQueue string `env:"BILLY_PIPELINE_QUEUE, default=pipeline"`
	// ReplayAfter is how long a relayed stage may be missing from Redis (flushed, failed over)
	// before the outbox enqueues it again.
	ReplayAfter time.Duration `env:"BILLY_PIPELINE_REPLAY_AFTER, default=1m"`
	// StatementTimeout bounds every SQL statement of a FHIR request; PostgreSQL cancels what runs
	// longer and the request is answered 403 too-costly.
	StatementTimeout time.Duration `env:"BILLY_STATEMENT_TIMEOUT, default=30s"`
	// SearchMaxClauses bounds the conditions of one search: each parameter occurrence, each chain
	// or _has level (once per type it goes through), each _sort key and include.
	SearchMaxClauses int `env:"BILLY_SEARCH_MAX_CLAUSES, default=100"`
	// SearchMaxValues bounds the values of one search, counted across all its parameters.
	SearchMaxValues int `env:"BILLY_SEARCH_MAX_VALUES, default=1000"`
	// ExportExpiry is how long the files of a finished Bulk Data export are kept (then deleted).
	ExportExpiry time.Duration `env:"BILLY_EXPORT_EXPIRY, default=24h"`
	// ExportFileResources bounds the resources of one export file; a type with more is split, and
	// a worker killed mid-export resumes after the last complete file.
	ExportFileResources int `env:"BILLY_EXPORT_FILE_RESOURCES, default=100000"`

	// X12 837P envelope: the sender (ISA05/06, GS02, 1000A NM109), the receiver (ISA07/08, GS03,
	// 1000B; the payer's id and name when unset), the submitter's name and contact (1000A; the
	// billing provider's when unset) and the usage indicator (ISA15: T test, P production).
	X12SenderQualifier   string `env:"BILLY_X12_SENDER_QUALIFIER, default=ZZ"`
	X12SenderID          string `env:"BILLY_X12_SENDER_ID, default=BILLY"`
	X12ReceiverQualifier string `env:"BILLY_X12_RECEIVER_QUALIFIER, default=ZZ"`
	X12ReceiverID        string `env:"BILLY_X12_RECEIVER_ID"`
	X12ReceiverName      string `env:"BILLY_X12_RECEIVER_NAME"`
	X12SubmitterName     string `env:"BILLY_X12_SUBMITTER_NAME"`
	X12ContactName       string `env:"BILLY_X12_CONTACT_NAME"`
	X12ContactPhone      string `env:"BILLY_X12_CONTACT_PHONE"`
	X12Usage             string `env:"BILLY_X12_USAGE, default=T"`

	// EMRSyncInterval is how often every connected EMR is synced by the worker (0 = only on demand).
	EMRSyncInterval time.Duration `env:"BILLY_EMR_SYNC_INTERVAL, default=15m"`
	// MLLPAddr is the HL7 v2 MLLP listener's address (unset = no listener); with MLLPTLSCert and
	// MLLPTLSKey it speaks TLS, and with MLLPTLSClientCA it requires client certificates.
	MLLPAddr        string `env:"BILLY_MLLP_ADDR"`
	MLLPTLSCert     string `env:"BILLY_MLLP_TLS_CERT"`
	MLLPTLSKey      string `env:"BILLY_MLLP_TLS_KEY"`
	MLLPTLSClientCA string `env:"BILLY_MLLP_TLS_CLIENT_CA"`
	// Abuse limits (README "Abuse limits"). Token buckets shared by every process of one installation
	// (in Redis): per source address on every request, per OAuth client id on FHIR requests with a
	// token. A rate of 0 switches that limit off. Addresses in RateLimitExempt (CIDRs) skip the
	// per-address limit.
	RateLimitAddrRate    float64 `env:"BILLY_RATE_LIMIT_ADDR_RATE, default=50"`
	RateLimitAddrBurst   int     `env:"BILLY_RATE_LIMIT_ADDR_BURST, default=200"`
	RateLimitClientRate  float64 `env:"BILLY_RATE_LIMIT_CLIENT_RATE, default=500"`
	RateLimitClientBurst int     `env:"BILLY_RATE_LIMIT_CLIENT_BURST, default=1000"`
	RateLimitExempt      string  `env:"BILLY_RATE_LIMIT_EXEMPT, default=127.0.0.0/8 ::1/128"`
	// Slow clients: the request headers must arrive within HTTPHeaderTimeout; a body within
	// HTTPBodyTimeout plus one second per HTTPBodyMinRate bytes received (so a large upload at a
	// decent rate is never cut, a trickle is); an idle keep-alive connection is closed after
	// HTTPIdleTimeout.
	HTTPHeaderTimeout time.Duration `env:"BILLY_HTTP_HEADER_TIMEOUT, default=10s"`
	HTTPBodyTimeout   time.Duration `env:"BILLY_HTTP_BODY_TIMEOUT, default=60s"`
	HTTPBodyMinRate   int64         `env:"BILLY_HTTP_BODY_MIN_RATE, default=16384"`
	HTTPIdleTimeout   time.Duration `env:"BILLY_HTTP_IDLE_TIMEOUT, default=120s"`
	// TLSCertFile and TLSKeyFile (PEM), when both set, make Billy serve HTTPS itself (TLS 1.2 or
	// newer) and send HSTS.
	TLSCertFile string `env:"BILLY_TLS_CERT_FILE"`
	TLSKeyFile  string `env:"BILLY_TLS_KEY_FILE"`
	// FrameAncestors is the CSP frame-ancestors source list of Billy's HTML pages: the EMR origins
	// allowed to embed them ('none' forbids framing).
	FrameAncestors string `env:"BILLY_FRAME_ANCESTORS, default='self'"`
	// MasterKeyReload is how often a running process re-reads BILLY_MASTER_KEY_FILE (a key rotation
	// takes effect without a restart) and tells the others, through the database, which keys it holds.
	MasterKeyReload time.Duration `env:"BILLY_MASTER_KEY_RELOAD, default=10s"`
	// DFTAddr is the MLLP host:port that receives a DFT^P03 for each Claim that becomes active
	// (unset = none are sent).
	DFTAddr string `env:"BILLY_DFT_ADDR"`
}

// Lookuper finds environment values; tests pass a map.
type Lookuper = envconfig.Lookuper

// MapLookuper returns a Lookuper over a fixed map.
func MapLookuper(m map[string]string) Lookuper { return envconfig.MapLookuper(m) }

// OSLookuper reads the process environment.
func OSLookuper() Lookuper { return envconfig.OsLookuper() }

// Load reads the configuration through l and validates it.
func Load(ctx context.Context, l Lookuper) (*Config, error) {
	var c Config
	fl := &fileLookuper{next: l}
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: fl}); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := errors.Join(fl.errs...); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// fileLookuper serves NAME from the file named by NAME_FILE when NAME itself is unset. An unreadable
// file is an error, never a silent fall-back to the default.
type fileLookuper struct {
	next Lookuper
	errs []error
}

func (f *fileLookuper) Lookup(key string) (string, bool) {
	if v, ok := f.next.Lookup(key); ok {
		return v, true
	}
	path, ok := f.next.Lookup(key + "_FILE")
	if !ok || path == "" {
		return "", false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		f.errs = append(f.errs, fmt.Errorf("%s_FILE: %w", key, err))
		return "", false
	}
	return strings.TrimRight(string(b), "\r\n"), true
}

// Validate checks values and the rules between them.
func (c *Config) Validate() error {
	var errs []error
	switch c.Auth {
	case "smart":
	case "none":
		if !c.Dev {
			errs = append(errs, errors.New("BILLY_AUTH=none switches authorization off and is refused unless BILLY_DEV=1 is also set"))
		}
	default:
		errs = append(errs, fmt.Errorf("BILLY_AUTH=%q: want smart or none", c.Auth))
	}
	switch c.Audit {
	case "on":
	case "off":
		if !c.Dev {
			errs = append(errs, errors.New("BILLY_AUDIT=off switches the audit trail off and is refused unless BILLY_DEV=1 is also set"))
		}
	default:
		errs = append(errs, fmt.Errorf("BILLY_AUDIT=%q: want on or off", c.Audit))
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("BILLY_BASE_URL=%q: want an absolute http(s) URL", c.BaseURL))
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("BILLY_MAX_BODY_BYTES=%d: want at least 1024", c.MaxBodyBytes))
	}
	if c.MaxBundleEntries < 1 {
		errs = append(errs, fmt.Errorf("BILLY_MAX_BUNDLE_ENTRIES=%d: want at least 1", c.MaxBundleEntries))
	}
	if c.StatementTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("BILLY_STATEMENT_TIMEOUT=%s: want at least 100ms", c.StatementTimeout))
	}
	if c.SearchMaxClauses < 1 {
		errs = append(errs, fmt.Errorf("BILLY_SEARCH_MAX_CLAUSES=%d: want at least 1", c.SearchMaxClauses))
	}
	if c.SearchMaxValues < 1 {
		errs = append(errs, fmt.Errorf("BILLY_SEARCH_MAX_VALUES=%d: want at least 1", c.SearchMaxValues))
	}
	if c.ExportExpiry < time.Minute {
		errs = append(errs, fmt.Errorf("BILLY_EXPORT_EXPIRY=%s: want at least 1m", c.ExportExpiry))
	}
	if c.X12Usage != "T" && c.X12Usage != "P" {
		errs = append(errs, fmt.Errorf("BILLY_X12_USAGE=%q: want T (test) or P (production)", c.X12Usage))
	}
	for name, v := range map[string]string{"BILLY_X12_SENDER_ID": c.X12SenderID, "BILLY_X12_RECEIVER_ID": c.X12ReceiverID} {
		if len(v) > 15 {
			errs = append(errs, fmt.Errorf("%s=%q: at most 15 characters (ISA06/ISA08)", name, v))
		}
	}
	for name, v := range map[string]string{"BILLY_X12_SENDER_QUALIFIER": c.X12SenderQualifier, "BILLY_X12_RECEIVER_QUALIFIER": c.X12ReceiverQualifier} {
		if len(v) != 2 {
			errs = append(errs, fmt.Errorf("%s=%q: two characters (ZZ, 01, 30 ...)", name, v))
		}
	}
	if c.ExportFileResources < 1 {
		errs = append(errs, fmt.Errorf("BILLY_EXPORT_FILE_RESOURCES=%d: want at least 1", c.ExportFileResources))
	}
	errs = append(errs, c.validateLimits()...)
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("BILLY_LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// AuthDisabled reports whether requests are served without authorization (development only).
func (c *Config) AuthDisabled() bool { return c.Auth == "none" && c.Dev }

// AuditDisabled reports whether the audit trail is off (development and benchmarks only).
func (c *Config) AuditDisabled() bool { return c.Audit == "off" && c.Dev }

// FHIRBase is the public base URL of the FHIR API.
func (c *Config) FHIRBase() string { return c.BaseURL + "/fhir" }

// LogValue prints the configuration without secrets or credentials.
func (c *Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("base_url", c.BaseURL),
		slog.String("database", redactURL(c.DatabaseURL)),
		slog.String("redis", redactURL(c.RedisURL)),
		slog.String("auth", c.Auth),
		slog.Bool("dev", c.Dev),
		slog.Bool("master_key_set", c.MasterKey != ""),
		slog.String("data_dir", c.DataDir),
		slog.Int64("max_body_bytes", c.MaxBodyBytes),
		slog.Int("max_bundle_entries", c.MaxBundleEntries),
		slog.Duration("statement_timeout", c.StatementTimeout),
		slog.Int("search_max_clauses", c.SearchMaxClauses),
		slog.Int("search_max_values", c.SearchMaxValues),
		slog.Duration("export_expiry", c.ExportExpiry),
		slog.Int("export_file_resources", c.ExportFileResources),
		slog.Float64("rate_limit_addr_rate", c.RateLimitAddrRate),
		slog.Int("rate_limit_addr_burst", c.RateLimitAddrBurst),
		slog.Float64("rate_limit_client_rate", c.RateLimitClientRate),
		slog.Int("rate_limit_client_burst", c.RateLimitClientBurst),
		slog.Bool("tls", c.TLSEnabled()),
	)
}

// redactURL keeps scheme, host and path of a connection URL and drops user info and query values.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable)"
	}
	u.User = nil
	u.RawQuery = ""
	return u.String()
}
