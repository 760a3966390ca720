// Package rest is Billy's FHIR R4 REST API: the HTTP edge and the interactions behind it.
//
// It owns routing under the FHIR base, content negotiation, the FHIR HTTP semantics (status codes,
// ETag/If-Match/If-None-Match/If-Modified-Since, Location, Prefer), every interaction of http.html
// (read, vread, update, patch, delete, history, create, conditional variants, batch, transaction),
// $validate and $meta*, and the single table that maps fhir errors to status codes and
// OperationOutcomes. It must not contain SQL (fhir/store) or validation rules (fhir/resource), and
// knows SMART only through the Authorizer it is given. With Config.Audit it records an AuditEvent for
// every request and Bundle entry, and serves the audit trail (audit.go; the trail itself is
// fhir/audit).
//
// Interactions run in two phases: prepare (decode, validate, extract index values: CPU work done
// before any database lock is taken) and apply (inside one database transaction). A single HTTP
// request runs both; a transaction Bundle prepares every entry, validating in parallel, and then
// applies all of them in one transaction.
package rest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/audit"
	"github.com/iambilly/billy/fhir/bulk"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/blob"
)

// Config holds the settings of the API.
type Config struct {
	// Base is the public base URL of the FHIR API ("https://billy.example/fhir"), used in Location
	// headers, fullUrls and links.
	Base string
	// MaxBodyBytes bounds request bodies (413 beyond).
	MaxBodyBytes int64
	// MaxBundleEntries bounds batch and transaction Bundles (413 beyond).
	MaxBundleEntries int
	// Software names the server in the CapabilityStatement.
	SoftwareName, SoftwareVersion string
	// OAuth, when set, is advertised in the CapabilityStatement's security (SMART oauth-uris).
	OAuth *OAuthURLs
	// Blobs keeps Binary content (encrypted); MaxBinaryBytes bounds a raw Binary upload.
	Blobs          blob.Store
	MaxBinaryBytes int64
	// Operations are operations provided by other packages (extop.go).
	Operations []*Operation
	// StatementTimeout bounds every SQL statement a request runs (each runs in a transaction with
	// SET LOCAL statement_timeout): PostgreSQL cancels what runs longer and the request is answered
	// 403 too-costly. 0 means DefaultStatementTimeout; negative leaves PostgreSQL's own setting.
	StatementTimeout time.Duration
	// MaxSearchClauses and MaxSearchValues bound one search (search.Options); 0 means the search
	// package's defaults.
	MaxSearchClauses, MaxSearchValues int
	// Now is the server's clock (Bundle timestamps, the CapabilityStatement's date); nil means
	// time.Now. Tests set it, and give the store the same clock (store.WithClock), so that nothing
	// they check depends on the day they run.
	Now func() time.Time
	// Exports runs Bulk Data exports ($export); nil serves none.
	Exports *bulk.Service
	// Requester names who a request acts for (the client, and its user or patient), to bind
	// asynchronous results (exports) to it; nil or "" when authorization is off.
	Requester func(ctx context.Context) string
	// Audit, when set, records an AuditEvent for every request and Bundle entry (audit.go) and
	// serves the trail as the AuditEvent type and Patient/{id}/$access-log. The Store must then
	// carry AuditHook. Agent names who a request acts for, for its AuditEvent.
	Audit AuditLog
	Agent func(ctx context.Context) audit.Agent
}

// OAuthURLs are the authorization server's endpoints.
type OAuthURLs struct {
	Authorize, Token, Introspect, Revoke string
}

// Access describes one interaction a principal asks to perform, for authorization.
type Access struct {
	Interaction string // one of the I* constants
	Type        string // resource type; "" for system-level interactions
	ID          string
	Operation   string
	Query       url.Values
	// Perm is what the interaction needs on Type (0 when it needs nothing of one type, as batch,
	// system history and system search, which are checked per type as they go).
	Perm Perm
}

// Perm is a SMART v2 permission: create, read, update, delete, search.
type Perm byte

// The permissions interactions need.
const (
	PermCreate Perm = 'c'
	PermRead   Perm = 'r'
	PermUpdate Perm = 'u'
	PermDelete Perm = 'd'
	PermSearch Perm = 's'
)

// Restriction limits the resources of one type a principal may reach with a permission.
type Restriction struct {
	// Patient, when set, admits only resources in that patient's compartment (patient-level scopes).
	Patient string
	// Constraints, when set, admit only resources matching one of these searches (SMART v2 query
	// constraints, such as category=laboratory).
	Constraints []url.Values
}

// Policy is what the principal of a request may do, per resource type and permission.
type Policy interface {
	Allow(typ string, perm Perm) (Restriction, bool)
}

// Authorizer authenticates the principal in ctx and authorizes an access. It returns the principal's
// policy, or an error wrapping fhir.ErrUnauthorized (no or bad credentials) or fhir.ErrForbidden.
// The server applies the policy to everything the request touches (included resources, history
// entries, transaction entries). SMART plugs in here; with authorization disabled for development
// the server uses AllowAll.
type Authorizer interface {
	Authorize(ctx context.Context, a Access) (Policy, error)
}

// AllowAll is the Authorizer of a server running without authorization (BILLY_AUTH=none, dev only).
type AllowAll struct{}

// Authorize allows everything, without restriction.
func (AllowAll) Authorize(context.Context, Access) (Policy, error) { return allowAll{}, nil }

type allowAll struct{}

func (allowAll) Allow(string, Perm) (Restriction, bool) { return Restriction{}, true }

// DefaultStatementTimeout is Config.StatementTimeout when none is given.
const DefaultStatementTimeout = 30 * time.Second

// Server serves the FHIR API.
type Server struct {
	cfg       Config
	store     *store.Store
	validator *resource.Validator
	auth      Authorizer
	log       *slog.Logger
	metrics   *metrics
	capJSON   []byte
	ops       map[string]*Operation // "Type/name"
}

// New returns a Server. auth must not be nil: pass AllowAll explicitly to disable authorization.
func New(cfg Config, st *store.Store, v *resource.Validator, auth Authorizer, log *slog.Logger, reg Registerer) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StatementTimeout == 0 {
		cfg.StatementTimeout = DefaultStatementTimeout
	}
	s := &Server{cfg: cfg, store: st, validator: v, auth: auth, log: log, metrics: newMetrics(reg), ops: map[string]*Operation{}}
	if cfg.Audit != nil {
		s.cfg.Operations = append(s.cfg.Operations[:len(cfg.Operations):len(cfg.Operations)], s.accessLogOperation())
	}
	for _, op := range s.cfg.Operations {
		if op.SystemLevel {
			s.ops["/"+op.Name] = op
		}
		for _, t := range op.Types {
			s.ops[t+"/"+op.Name] = op
		}
	}
	s.capJSON = s.capabilityStatement()
	return s
}

// inTx runs fn in one store transaction whose statements are bounded by the statement timeout
// (SET LOCAL, sent with the BEGIN). Every interaction that writes goes through it; those that only
// read go through readOnly. Either way no request keeps PostgreSQL busy longer than the timeout.
//
// The request's AuditEvents not yet stored are appended last, in the same transaction.
func (s *Server) inTx(ctx context.Context, fn func(*store.Tx) error) error {
	var audited []*audit.Event
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		var err error
		audited, err = s.appendAudit(ctx, tx)
		return err
	}, store.StatementTimeout(s.cfg.StatementTimeout))
	if err != nil && audited != nil {
		auditFrom(ctx).unmark(audited) // the commit failed: they are recorded with the failure
	}
	return err
}

// readOnly runs an interaction that only reads, outside a transaction, with the statement timeout
// as its deadline: when it passes, pgx asks PostgreSQL to cancel the running statement (a cancel
// request, internal/pg). A transaction with SET LOCAL would cost a read two more round trips.
func (s *Server) readOnly(ctx context.Context, fn func(context.Context, reads) (*response, error)) (*response, error) {
	if s.cfg.StatementTimeout <= 0 {
		return fn(ctx, s.store)
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.StatementTimeout)
	defer cancel()
	resp, err := fn(rctx, s.store)
	if err != nil && errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return nil, fhir.Errorf(fhir.ErrTooCostly, "too-costly", "the request ran longer than the statement timeout (%s) and was cancelled", s.cfg.StatementTimeout)
	}
	return resp, err
}

// searchOptions are the parse options of a search by the server's settings.
func (s *Server) searchOptions(strict bool) search.Options {
	return search.Options{Strict: strict, Base: s.cfg.Base, MaxClauses: s.cfg.MaxSearchClauses, MaxValues: s.cfg.MaxSearchValues}
}

// Handler returns the HTTP handler of the FHIR API, to be mounted at the path of Config.Base.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}
