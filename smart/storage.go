package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/token/jwt"
)

// Client kinds (SMART client types).
const (
	KindPublic     = "public"
	KindSymmetric  = "confidential-symmetric"
	KindAsymmetric = "confidential-asymmetric"
)

// Client is a registered SMART client. It implements fosite's client interfaces.
type Client struct {
	ID           string
	Name         string
	Kind         string
	SecretHash   []byte
	RedirectURIs []string
	Scopes       []string
	GrantTypes   []string
	JWKS         *josev3.JSONWebKeySet
	JWKSURI      string
	AuthAlg      string // RS384 or ES384 for private_key_jwt
	// Native is set for native apps (application_type native): see matchRedirectURI.
	Native   bool
	audience []string
}

var (
	_ fosite.Client                         = (*Client)(nil)
	_ fosite.OpenIDConnectClient            = (*Client)(nil)
	_ fosite.ClientWithCustomTokenLifespans = (*Client)(nil)
)

// GetID returns the client id.
func (c *Client) GetID() string { return c.ID }

// GetHashedSecret returns the bcrypt hash of a symmetric client's secret.
func (c *Client) GetHashedSecret() []byte { return c.SecretHash }

// GetRedirectURIs returns the registered redirect URIs. fosite matches them more loosely than
// Billy does; the authorize endpoint applies matchRedirectURI first.
func (c *Client) GetRedirectURIs() []string { return c.RedirectURIs }

// GetGrantTypes returns the grant types the client may use.
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }

// GetResponseTypes returns code: SMART uses the authorization code flow only.
func (c *Client) GetResponseTypes() fosite.Arguments { return fosite.Arguments{"code"} }

// GetScopes returns the scopes the client may be granted.
func (c *Client) GetScopes() fosite.Arguments { return c.Scopes }

// IsPublic reports whether the client has no credentials.
func (c *Client) IsPublic() bool { return c.Kind == KindPublic }

// GetAudience returns the audiences tokens may be issued for: the FHIR base.
func (c *Client) GetAudience() fosite.Arguments { return c.audience }

// GetRequestURIs returns nothing: request objects are not supported.
func (c *Client) GetRequestURIs() []string { return nil }

// GetJSONWebKeys returns an asymmetric client's inline JWKS.
func (c *Client) GetJSONWebKeys() *josev3.JSONWebKeySet { return c.JWKS }

// GetJSONWebKeysURI returns an asymmetric client's JWKS URL.
func (c *Client) GetJSONWebKeysURI() string { return c.JWKSURI }

// GetRequestObjectSigningAlgorithm returns "": request objects are not supported.
func (c *Client) GetRequestObjectSigningAlgorithm() string { return "" }

// GetTokenEndpointAuthMethod maps the client kind to its token endpoint authentication.
func (c *Client) GetTokenEndpointAuthMethod() string {
	switch c.Kind {
	case KindSymmetric:
		return "client_secret_basic"
	case KindAsymmetric:
		return "private_key_jwt"
	}
	return "none"
}

// GetTokenEndpointAuthSigningAlgorithm returns the algorithm client assertions must use.
func (c *Client) GetTokenEndpointAuthSigningAlgorithm() string { return c.AuthAlg }

// GetEffectiveLifespan caps backend-services access tokens at five minutes.
func (c *Client) GetEffectiveLifespan(gt fosite.GrantType, tt fosite.TokenType, fallback time.Duration) time.Duration {
	if gt == fosite.GrantTypeClientCredentials && tt == fosite.AccessToken {
		return backendTokenLifetime
	}
	return fallback
}

// Session is what Billy keeps with an authorization: the user, the SMART launch context, and the
// id token's claims. It is the fosite session of every flow.
type Session struct {
	openid.DefaultSession `json:"oidc"`
	Launch                LaunchContext `json:"launch"`
	// Issuer of access tokens (the server's base URL).
	Issuer   string `json:"iss"`
	Kid      string `json:"kid"`
	ClientID string `json:"client_id"`
	// JTI is the id of the next access token issued with this session, chosen fresh for each one
	// (the token endpoint sets it), recorded with the token and used to revoke it.
	JTI string `json:"jti,omitempty"`
	// IssuedAt is the next access token's iat, by the server's clock (fosite would read the wall
	// clock).
	IssuedAt time.Time `json:"iat,omitempty"`
}

var (
	_ oauth2.JWTSessionContainer = (*Session)(nil)
	_ openid.Session             = (*Session)(nil)
)

// LaunchContext is the SMART context of an authorization: from an EHR launch, the patient picker,
// or a token exchange.
type LaunchContext struct {
	Patient           string          `json:"patient,omitempty"`
	Encounter         string          `json:"encounter,omitempty"`
	FHIRUser          string          `json:"fhirUser,omitempty"`
	Intent            string          `json:"intent,omitempty"`
	SMARTStyleURL     string          `json:"smart_style_url,omitempty"`
	NeedPatientBanner *bool           `json:"need_patient_banner,omitempty"`
	FHIRContext       json.RawMessage `json:"fhirContext,omitempty"`
}

func newSession(issuer string) *Session {
	return &Session{DefaultSession: openid.DefaultSession{Claims: &jwt.IDTokenClaims{}, Headers: &jwt.Headers{}}, Issuer: issuer}
}

// GetJWTClaims returns the access token's claims: the subject, client, and launch context, so the
// FHIR API can authorize from the token alone.
func (s *Session) GetJWTClaims() jwt.JWTClaimsContainer {
	extra := map[string]interface{}{"client_id": s.ClientID}
	if s.Launch.Patient != "" {
		extra["patient"] = s.Launch.Patient
	}
	if s.Launch.Encounter != "" {
		extra["encounter"] = s.Launch.Encounter
	}
	if s.Launch.FHIRUser != "" {
		extra["fhirUser"] = s.Launch.FHIRUser
	}
	return &jwt.JWTClaims{Subject: s.Subject, Issuer: s.Issuer, JTI: s.JTI, IssuedAt: s.IssuedAt, Extra: extra}
}

// GetJWTHeader names the signing key.
func (s *Session) GetJWTHeader() *jwt.Headers {
	return &jwt.Headers{Extra: map[string]interface{}{"kid": s.Kid, "typ": "at+jwt"}}
}

// Clone copies the session.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	if d, ok := s.DefaultSession.Clone().(*openid.DefaultSession); ok {
		c.DefaultSession = *d
	}
	return &c
}

// storage is fosite's storage in PostgreSQL: clients, and every code and token request by kind and
// signature (the request stored as JSON, its client looked up again when read).
type storage struct {
	pool     *pgxpool.Pool
	audience []string
	now      func() time.Time

	jtiMu     sync.Mutex
	jtiPurged time.Time // when this process last purged expired assertion ids (useJTI)
}

var (
	_ fosite.ClientManager               = (*storage)(nil)
	_ oauth2.CoreStorage                 = (*storage)(nil)
	_ oauth2.TokenRevocationStorage      = (*storage)(nil)
	_ pkce.PKCERequestStorage            = (*storage)(nil)
	_ openid.OpenIDConnectRequestStorage = (*storage)(nil)
)

const clientColumns = `id, name, kind, secret_hash, redirect_uris, scopes, grant_types, jwks, jwks_uri, auth_alg, application_type = 'native'`

func (st *storage) scanClient(row pgx.Row) (*Client, error) {
	c := &Client{audience: st.audience}
	var jwks []byte
	var jwksURI, alg *string
	if err := row.Scan(&c.ID, &c.Name, &c.Kind, &c.SecretHash, &c.RedirectURIs, &c.Scopes, &c.GrantTypes, &jwks, &jwksURI, &alg, &c.Native); err != nil {
		return nil, err
	}
	if jwks != nil {
		c.JWKS = &josev3.JSONWebKeySet{}
		if err := json.Unmarshal(jwks, c.JWKS); err != nil {
			return nil, fmt.Errorf("client %s: jwks: %w", c.ID, err)
		}
	}
	if jwksURI != nil {
		c.JWKSURI = *jwksURI
	}
	if alg != nil {
		c.AuthAlg = *alg
	}
	return c, nil
}

// GetClient loads a client.
func (st *storage) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := st.scanClient(st.pool.QueryRow(ctx, `SELECT `+clientColumns+` FROM oauth_clients WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fosite.ErrNotFound.WithHint("unknown client")
	}
	return c, err
}

// ClientAssertionJWTValid fails for a client assertion id already used.
func (st *storage) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	var exp time.Time
	err := st.pool.QueryRow(ctx, `SELECT expires_at FROM oauth_jti WHERE jti = $1`, jti).Scan(&exp)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && exp.Before(st.now())) {
		return nil
	}
	if err != nil {
		return err
	}
	return fosite.ErrJTIKnown
}

// SetClientAssertionJWT records a client assertion id until it expires. The insert fails on a
// concurrent replay of the same jti (primary key), which is what replay protection needs.
func (st *storage) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	if _, err := st.pool.Exec(ctx, `DELETE FROM oauth_jti WHERE expires_at < $1`, st.now()); err != nil {
		return err
	}
	_, err := st.pool.Exec(ctx, `INSERT INTO oauth_jti (jti, expires_at) VALUES ($1, $2)`, jti, exp)
	if err != nil {
		return fosite.ErrJTIKnown
	}
	return nil
}

// storedRequest is a fosite request as kept in oauth_requests.data.
type storedRequest struct {
	ID                string     `json:"id"`
	RequestedAt       time.Time  `json:"requestedAt"`
	ClientID          string     `json:"clientId"`
	RequestedScope    []string   `json:"scopes"`
	GrantedScope      []string   `json:"grantedScopes"`
	RequestedAudience []string   `json:"requestedAudience"`
	GrantedAudience   []string   `json:"grantedAudience"`
	Form              url.Values `json:"form"`
	Session           *Session   `json:"session"`
}

// The form fields worth keeping with a request (never a password or client secret).
var keptFormFields = []string{"redirect_uri", "code_challenge", "code_challenge_method", "nonce", "scope", "response_type", "state", "aud", "launch"}

func (st *storage) create(ctx context.Context, kind, signature string, req fosite.Requester) error {
	sess, ok := req.GetSession().(*Session)
	if !ok {
		return fmt.Errorf("unexpected session type %T", req.GetSession())
	}
	form := url.Values{}
	for _, k := range keptFormFields {
		if v := req.GetRequestForm().Get(k); v != "" {
			form.Set(k, v)
		}
	}
	data, err := json.Marshal(storedRequest{
		ID: req.GetID(), RequestedAt: req.GetRequestedAt(), ClientID: req.GetClient().GetID(),
		RequestedScope: req.GetRequestedScopes(), GrantedScope: req.GetGrantedScopes(),
		RequestedAudience: req.GetRequestedAudience(), GrantedAudience: req.GetGrantedAudience(),
		Form: form, Session: sess,
	})
	if err != nil {
		return err
	}
	exp := sess.GetExpiresAt(tokenTypeOf(kind))
	if exp.IsZero() {
		exp = st.now().Add(24 * time.Hour)
	}
	if kind == "refresh" && exp.Before(st.now().Add(90*24*time.Hour)) {
		exp = st.now().Add(90 * 24 * time.Hour)
	}
	// An access token is revoked by its jti, so one without a jti of Billy's choosing (fosite would
	// make one up and forget it) is never issued.
	var jti *string
	if kind == "access" {
		if sess.JTI == "" {
			return errors.New("an access token without a jti")
		}
		jti = &sess.JTI
	}
	_, err = st.pool.Exec(ctx, `INSERT INTO oauth_requests (signature, kind, request_id, client_id, data, expires_at, jti) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		signature, kind, req.GetID(), req.GetClient().GetID(), data, exp, jti)
	return err
}

func tokenTypeOf(kind string) fosite.TokenType {
	switch kind {
	case "code", "pkce", "oidc":
		return fosite.AuthorizeCode
	case "refresh":
		return fosite.RefreshToken
	}
	return fosite.AccessToken
}

// get loads a request. An inactive one is returned with errInactive so callers can tell a used
// authorization code (which fosite needs back to revoke what it issued) from an unknown one.
func (st *storage) get(ctx context.Context, kind, signature string) (fosite.Requester, bool, error) {
	var data []byte
	var active bool
	err := st.pool.QueryRow(ctx, `SELECT data, active FROM oauth_requests WHERE signature = $1 AND kind = $2`, signature, kind).Scan(&data, &active)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, fosite.ErrNotFound
	}
	if err != nil {
		return nil, false, err
	}
	var sr storedRequest
	if err := json.Unmarshal(data, &sr); err != nil {
		return nil, false, err
	}
	client, err := st.GetClient(ctx, sr.ClientID)
	if err != nil {
		return nil, false, err
	}
	if sr.Session == nil {
		sr.Session = newSession("")
	}
	req := &fosite.Request{
		ID: sr.ID, RequestedAt: sr.RequestedAt, Client: client,
		RequestedScope: sr.RequestedScope, GrantedScope: sr.GrantedScope,
		RequestedAudience: sr.RequestedAudience, GrantedAudience: sr.GrantedAudience,
		Form: sr.Form, Session: sr.Session,
	}
	return req, active, nil
}

func (st *storage) setInactive(ctx context.Context, kind, signature string) error {
	_, err := st.pool.Exec(ctx, `UPDATE oauth_requests SET active = false WHERE signature = $1 AND kind = $2`, signature, kind)
	return err
}

func (st *storage) delete(ctx context.Context, kind, signature string) error {
	_, err := st.pool.Exec(ctx, `DELETE FROM oauth_requests WHERE signature = $1 AND kind = $2`, signature, kind)
	return err
}

// CreateAuthorizeCodeSession stores an authorization code's request.
func (st *storage) CreateAuthorizeCodeSession(ctx context.Context, code string, req fosite.Requester) error {
	return st.create(ctx, "code", code, req)
}

// GetAuthorizeCodeSession loads it; a used code comes back with ErrInvalidatedAuthorizeCode.
func (st *storage) GetAuthorizeCodeSession(ctx context.Context, code string, _ fosite.Session) (fosite.Requester, error) {
	req, active, err := st.get(ctx, "code", code)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession marks a code used.
func (st *storage) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	return st.setInactive(ctx, "code", code)
}

// CreatePKCERequestSession stores the PKCE challenge of a code.
func (st *storage) CreatePKCERequestSession(ctx context.Context, sig string, req fosite.Requester) error {
	return st.create(ctx, "pkce", sig, req)
}

// GetPKCERequestSession loads it.
func (st *storage) GetPKCERequestSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	req, _, err := st.get(ctx, "pkce", sig)
	return req, err
}

// DeletePKCERequestSession removes it.
func (st *storage) DeletePKCERequestSession(ctx context.Context, sig string) error {
	return st.delete(ctx, "pkce", sig)
}

// CreateAccessTokenSession records an issued access token (for introspection and revocation).
func (st *storage) CreateAccessTokenSession(ctx context.Context, sig string, req fosite.Requester) error {
	return st.create(ctx, "access", sig, req)
}

// GetAccessTokenSession loads an access token's request; a revoked one is not found.
func (st *storage) GetAccessTokenSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	req, active, err := st.get(ctx, "access", sig)
	if err != nil {
		return nil, err
	}
	if !active {
		return nil, fosite.ErrNotFound
	}
	return req, nil
}

// DeleteAccessTokenSession revokes an access token (kept, inactive, until it expires, so the API's
// revocation list sees it).
func (st *storage) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	return st.setInactive(ctx, "access", sig)
}

// CreateRefreshTokenSession stores a refresh token's request.
func (st *storage) CreateRefreshTokenSession(ctx context.Context, sig, _ string, req fosite.Requester) error {
	return st.create(ctx, "refresh", sig, req)
}

// GetRefreshTokenSession loads it; a used or revoked refresh token is invalid.
func (st *storage) GetRefreshTokenSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	req, active, err := st.get(ctx, "refresh", sig)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteRefreshTokenSession retires a refresh token.
func (st *storage) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	return st.setInactive(ctx, "refresh", sig)
}

// RotateRefreshToken retires a request's refresh tokens when a new one is issued.
func (st *storage) RotateRefreshToken(ctx context.Context, requestID, _ string) error {
	return st.RevokeRefreshToken(ctx, requestID)
}

// RevokeRefreshToken retires every refresh token of a request.
func (st *storage) RevokeRefreshToken(ctx context.Context, requestID string) error {
	_, err := st.pool.Exec(ctx, `UPDATE oauth_requests SET active = false WHERE request_id = $1 AND kind = 'refresh'`, requestID)
	return err
}

// RevokeAccessToken revokes every access token of a request.
func (st *storage) RevokeAccessToken(ctx context.Context, requestID string) error {
	_, err := st.pool.Exec(ctx, `UPDATE oauth_requests SET active = false WHERE request_id = $1 AND kind = 'access'`, requestID)
	return err
}

// CreateOpenIDConnectSession stores the OpenID request of a code.
func (st *storage) CreateOpenIDConnectSession(ctx context.Context, code string, req fosite.Requester) error {
	return st.create(ctx, "oidc", code, req)
}

// GetOpenIDConnectSession loads it.
func (st *storage) GetOpenIDConnectSession(ctx context.Context, code string, _ fosite.Requester) (fosite.Requester, error) {
	req, _, err := st.get(ctx, "oidc", code)
	return req, err
}

// DeleteOpenIDConnectSession removes it.
func (st *storage) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	return st.delete(ctx, "oidc", code)
}

// revocationList is the access tokens revoked and not yet expired: by jti, and by signature those
// recorded before access tokens had their jti recorded (migration 013).
type revocationList struct {
	jtis, signatures map[string]bool
}

func (l *revocationList) has(jti, signature string) bool {
	if l == nil {
		return false
	}
	return l.jtis[jti] || l.signatures[signature]
}

// revoked lists the access tokens revoked and not yet expired.
func (st *storage) revoked(ctx context.Context) (*revocationList, error) {
	rows, err := st.pool.Query(ctx, `SELECT jti, signature FROM oauth_requests WHERE NOT active AND kind = 'access' AND expires_at > $1`, st.now())
	if err != nil {
		return nil, err
	}
	l := &revocationList{jtis: map[string]bool{}, signatures: map[string]bool{}}
	var jti *string
	var sig string
	_, err = pgx.ForEachRow(rows, []any{&jti, &sig}, func() error {
		if jti != nil {
			l.jtis[*jti] = true
		} else {
			l.signatures[sig] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// accessTokenActive reports whether the access token with this jti (or, recorded before jtis were,
// this signature) is recorded and not revoked. found is false for tokens Billy signed before it
// recorded those it signs outside fosite's flows (token exchange, MintToken).
func (st *storage) accessTokenActive(ctx context.Context, jti, signature string) (active, found bool, err error) {
	err = st.pool.QueryRow(ctx, `SELECT active FROM oauth_requests WHERE kind = 'access' AND (jti = $1 OR (jti IS NULL AND signature = $2))`,
		jti, signature).Scan(&active)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return active, true, nil
}
