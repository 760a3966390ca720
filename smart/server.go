package smart

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/token/jwt"

	"github.com/iambilly/billy/internal/crypto"
	"github.com/iambilly/billy/smart/scope"
)

// Token lifetimes.
const (
	userTokenLifetime    = time.Hour
	backendTokenLifetime = 5 * time.Minute
	codeLifetime         = 5 * time.Minute
	refreshLifetime      = 90 * 24 * time.Hour
)

// Config configures the authorization server.
type Config struct {
	// BaseURL is the server's public base: the token issuer; endpoints are under BaseURL/oauth2.
	BaseURL string
	// FHIRBase is the FHIR API base: the audience every token is bound to.
	FHIRBase string
	// MasterKey seals signing keys and the stored secrets of codes, refresh tokens and login tickets
	// (as a keyring of that one key), unless Keys is set.
	MasterKey []byte
	// Keys, when set, is the master keyring (BILLY_MASTER_KEY with rotation) in place of MasterKey.
	Keys *crypto.Keyring
	// Trusted are external issuers whose tokens the API accepts and /oauth2/token exchanges.
	Trusted []TrustedIssuer
	// Now replaces time.Now in tests.
	Now func() time.Time
	// JWKSTimeout bounds the fetch of a client's jwks_uri (5 s when zero).
	JWKSTimeout time.Duration
}

// Auditor records security events (token issued or denied, login failed) as the core sees fit
// (AuditEvent resources). It must not fail the request it audits.
type Auditor interface {
	Audit(ctx context.Context, e AuditEntry)
}

// AuditEntry is one security event. It never holds a token, secret or password.
type AuditEntry struct {
	Action   string // "token", "login", "authorize", "introspect", "revoke", "launch"
	Outcome  string // "success" or "failure"
	ClientID string
	Subject  string
	Detail   string
	Remote   string
}

// Server is the SMART authorization server.
type Server struct {
	cfg        Config
	pool       *pgxpool.Pool
	log        *slog.Logger
	store      *storage
	keys       *keyring
	provider   fosite.OAuth2Provider
	verifier   *Verifier
	patients   PatientDirectory
	audit      Auditor
	ticket     []byte // HMAC key of login tickets
	cors       *corsPolicy
	clientJWKS *jwksCache
	// refreshSignature names a refresh token in storage (fosite's HMAC strategy).
	refreshSignature func(ctx context.Context, token string) string
}

// New builds the authorization server on pool and makes sure a signing key exists.
func New(ctx context.Context, cfg Config, pool *pgxpool.Pool, patients PatientDirectory, audit Auditor, log *slog.Logger) (*Server, error) {
	if cfg.Keys == nil {
		if len(cfg.MasterKey) < 32 {
			return nil, errors.New("smart: a 32-byte master key is required (BILLY_MASTER_KEY)")
		}
		kr, err := crypto.KeyringFromKey(cfg.MasterKey)
		if err != nil {
			return nil, err
		}
		cfg.Keys = kr
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	keys := newRing(pool, cfg.Keys, cfg.Now)
	if err := keys.load(ctx); err != nil {
		return nil, fmt.Errorf("smart: signing keys: %w", err)
	}
	fositeSecret, ticket, err := keys.secrets(ctx)
	if err != nil {
		return nil, fmt.Errorf("smart: %w", err)
	}
	st := &storage{pool: pool, audience: []string{cfg.FHIRBase}, now: cfg.Now}
	fc := &fosite.Config{
		AccessTokenLifespan:            userTokenLifetime,
		RefreshTokenLifespan:           refreshLifetime,
		AuthorizeCodeLifespan:          codeLifetime,
		IDTokenLifespan:                userTokenLifetime,
		IDTokenIssuer:                  cfg.BaseURL,
		AccessTokenIssuer:              cfg.BaseURL,
		TokenURL:                       cfg.BaseURL + "/oauth2/token",
		EnforcePKCE:                    true,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		ScopeStrategy:                  scopeStrategy,
		AudienceMatchingStrategy:       fosite.DefaultAudienceMatchingStrategy,
		RefreshTokenScopes:             []string{"offline_access", "online_access"},
		GlobalSecret:                   fositeSecret,
		JWTScopeClaimKey:               jwt.JWTScopeFieldString,
		HashCost:                       10,
		MinParameterEntropy:            8,
	}
	// Client authentication is Billy's own (clientauth.go); s is set below, before any request.
	var s *Server
	fc.ClientAuthenticationStrategy = func(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
		return s.authenticateClient(ctx, r, form)
	}
	keyGetter := func(ctx context.Context) (interface{}, error) {
		k, err := keys.signer(ctx)
		if err != nil {
			return nil, err
		}
		return &josev3.JSONWebKey{Key: k.private, KeyID: k.kid, Algorithm: signingAlg, Use: "sig"}, nil
	}
	hmacStrategy := compose.NewOAuth2HMACStrategy(fc)
	strategy := compose.CommonStrategy{
		CoreStrategy:               compose.NewOAuth2JWTStrategy(keyGetter, hmacStrategy, fc),
		OpenIDConnectTokenStrategy: compose.NewOpenIDConnectStrategy(keyGetter, fc),
		Signer:                     &jwt.DefaultSigner{GetPrivateKey: keyGetter},
	}
	provider := compose.Compose(fc, st, strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2PKCEFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
	)
	s = &Server{cfg: cfg, pool: pool, log: log, store: st, keys: keys, provider: provider, patients: patients, audit: audit,
		ticket: ticket, clientJWKS: newJWKSCache(cfg.JWKSTimeout, cfg.Now), refreshSignature: hmacStrategy.RefreshTokenSignature}
	s.verifier = newVerifier(cfg, keys, st, log)
	s.cors = newCORSPolicy(pool, cfg.Now)
	return s, nil
}

// scopeStrategy lets a client registered for broader scopes ask for narrower ones.
func scopeStrategy(granted []string, requested string) bool {
	for _, g := range granted {
		if scope.Covers(g, requested) {
			return true
		}
	}
	return false
}

// Verifier returns the token verifier the FHIR API authenticates with.
func (s *Server) Verifier() *Verifier { return s.verifier }

// Handler serves the OAuth endpoints and discovery documents; mount it on / (it answers only its own
// paths and 404s the rest): /oauth2/..., /.well-known/openid-configuration and
// /fhir/.well-known/smart-configuration.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/.well-known/smart-configuration", s.smartConfiguration)
	mux.HandleFunc("GET /.well-known/openid-configuration", s.openidConfiguration)
	mux.HandleFunc("GET /oauth2/jwks", s.jwks)
	mux.HandleFunc("GET /oauth2/authorize", s.authorize)
	mux.HandleFunc("POST /oauth2/authorize", s.authorize)
	mux.HandleFunc("POST /oauth2/token", s.token)
	mux.HandleFunc("POST /oauth2/introspect", s.introspect)
	mux.HandleFunc("POST /oauth2/revoke", s.revoke)
	mux.HandleFunc("POST /oauth2/launch", s.launch)
	mux.HandleFunc("POST /oauth2/register", s.register)
	return s.cors.wrap(mux, true)
}

// CORS wraps the FHIR API with CORS for the origins of registered browser apps.
func (s *Server) CORS(next http.Handler) http.Handler { return s.cors.wrap(next, false) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// oauthError writes an RFC 6749 error body.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func (s *Server) smartConfiguration(w http.ResponseWriter, _ *http.Request) {
	base := s.cfg.BaseURL + "/oauth2"
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.cfg.BaseURL,
		"jwks_uri":                              base + "/jwks",
		"authorization_endpoint":                base + "/authorize",
		"token_endpoint":                        base + "/token",
		"introspection_endpoint":                base + "/introspect",
		"revocation_endpoint":                   base + "/revoke",
		"registration_endpoint":                 base + "/register",
		"management_endpoint":                   s.cfg.BaseURL + "/oauth2/launch",
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "client_credentials", tokenExchangeGrant},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt", "client_secret_basic", "client_secret_post", "none"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS384", "ES384"},
		"scopes_supported": []string{"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter",
			"offline_access", "online_access", "patient/*.rs", "user/*.rs", "user/*.cruds", "system/*.rs", "system/*.cruds",
			"patient/*.read", "user/*.read", "user/*.write", "system/*.read", "system/*.write"},
		"response_types_supported":         []string{"code"},
		"code_challenge_methods_supported": []string{"S256"},
		"capabilities": []string{"launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
			"client-confidential-asymmetric", "context-ehr-patient", "context-ehr-encounter", "context-standalone-patient",
			"context-banner", "context-style", "sso-openid-connect", "permission-offline", "permission-online", "permission-patient",
			"permission-user", "permission-v1", "permission-v2", "authorize-post"},
	})
}

func (s *Server) openidConfiguration(w http.ResponseWriter, _ *http.Request) {
	base := s.cfg.BaseURL + "/oauth2"
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.cfg.BaseURL,
		"authorization_endpoint":                base + "/authorize",
		"token_endpoint":                        base + "/token",
		"jwks_uri":                              base + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{signingAlg},
		"scopes_supported":                      []string{"openid", "fhirUser", "profile"},
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "fhirUser", "name"},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt", "client_secret_basic", "client_secret_post", "none"},
		"code_challenge_methods_supported":      []string{"S256"},
	})
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	set, err := s.keys.public(r.Context())
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "signing keys unavailable")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(set)
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) auditf(r *http.Request, action, outcome, clientID, subject, detail string) {
	if s.audit == nil {
		return
	}
	remote := r.RemoteAddr
	if i := strings.LastIndexByte(remote, ':'); i > 0 {
		remote = remote[:i]
	}
	s.audit.Audit(r.Context(), AuditEntry{Action: action, Outcome: outcome, ClientID: clientID, Subject: subject, Detail: detail, Remote: remote})
}
