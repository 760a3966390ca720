package emr

import (
	"context"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/fhir/store"
)

// EnqueueFunc records a job in the outbox in the caller's transaction (pipeline.Enqueue).
type EnqueueFunc func(ctx context.Context, tx pgx.Tx, taskType string, payload any, dedupeKey string) error

// Service syncs from and writes back to the registered EMRs.
type Service struct {
	Registry *Registry
	Store    *store.Store
	Validate store.Validate
	// Base is Billy's FHIR base URL (references are indexed with it).
	Base    string
	Log     *slog.Logger
	Options Options
	// Enqueue is the outbox (nil: write-backs are not queued).
	Enqueue EnqueueFunc
	// Audit records every outbound call in the audit trail (nil: emr_calls only).
	Audit Auditor

	mu       sync.Mutex
	breakers map[string]*breaker
	tokens   map[string]*tokenCache
}

// Client returns a client of the named EMR; clients of one EMR share its circuit breaker.
func (s *Service) Client(ctx context.Context, name string) (*Client, *Profile, error) {
	sys, err := s.Registry.Get(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	return s.clientFor(sys)
}

func (s *Service) clientFor(sys *System) (*Client, *Profile, error) {
	prof, err := LoadProfile(sys.Profile)
	if err != nil {
		return nil, nil, err
	}
	signer, err := s.Registry.signer(sys)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	if s.breakers == nil {
		s.breakers = map[string]*breaker{}
	}
	b := s.breakers[sys.Name]
	if b == nil {
		b = &breaker{}
		s.breakers[sys.Name] = b
	}
	if s.tokens == nil {
		s.tokens = map[string]*tokenCache{}
	}
	// A re-registered EMR (another key or client id) starts with no token.
	k := sys.Name + "|" + sys.KeyID + "|" + sys.ClientID + "|" + sys.Base
	tc := s.tokens[k]
	if tc == nil {
		tc = &tokenCache{}
		s.tokens[k] = tc
	}
	s.mu.Unlock()
	return &Client{sys: sys, prof: prof, signer: signer, opt: s.Options.withDefaults(), pool: s.Registry.Pool, log: s.Log, brk: b, tok: tc, audit: s.Audit}, prof, nil
}

// Call is one recorded outbound call.
type Call struct {
	ID         int64  `json:"id"`
	At         string `json:"at"`
	Purpose    string `json:"purpose"`
	Method     string `json:"method"`
	Target     string `json:"target"`
	Status     int    `json:"status"`
	DurationMS int    `json:"duration_ms"`
	Outcome    string `json:"outcome"`
	Attempt    int    `json:"attempt"`
}

// Calls returns the latest calls to the named EMR, newest first.
func (s *Service) Calls(ctx context.Context, name string, limit int) ([]Call, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.Registry.Pool.Query(ctx, `SELECT id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), purpose, method, target, status, duration_ms, outcome, attempt
		FROM emr_calls WHERE emr = $1 ORDER BY id DESC LIMIT $2`, name, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Call, error) {
		var c Call
		err := r.Scan(&c.ID, &c.At, &c.Purpose, &c.Method, &c.Target, &c.Status, &c.DurationMS, &c.Outcome, &c.Attempt)
		return c, err
	})
}
