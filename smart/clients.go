package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/iambilly/billy/smart/scope"
)

// ClientSpec describes a client to register.
type ClientSpec struct {
	// ID is the client id to use; a random one when empty.
	ID           string
	Name         string
	Kind         string // KindPublic, KindSymmetric or KindAsymmetric
	RedirectURIs []string
	Scopes       []string
	JWKS         json.RawMessage // inline JWKS of an asymmetric client
	JWKSURI      string          // or its URL
	AuthAlg      string          // RS384 or ES384
	// Native marks a native app (RFC 7591 application_type native): its loopback redirect URIs
	// match on any port (RFC 8252 section 7.3). Web apps' redirect URIs match exactly.
	Native bool
	// GrantTypes asked for (RFC 7591 grant_types); all those the client may use when empty.
	GrantTypes []string
}

// grantTypes are the grant types the client gets: those asked for, or all its kind may use, less
// the authorization code flow (and so refresh) when it has no redirect URI to receive a code.
func (c ClientSpec) grantTypes() ([]string, error) {
	allowed := map[string]bool{}
	var all []string
	for _, g := range grantTypesOf[c.Kind] {
		if (g == "authorization_code" || g == "refresh_token") && len(c.RedirectURIs) == 0 {
			continue
		}
		allowed[g] = true
		all = append(all, g)
	}
	if len(c.GrantTypes) == 0 {
		return all, nil
	}
	for _, g := range c.GrantTypes {
		if !allowed[g] {
			return nil, fmt.Errorf("grant type %q is not available to this client (available: %s)", g, strings.Join(all, ", "))
		}
	}
	return c.GrantTypes, nil
}

// grantTypesOf are the grants each kind of client may use: backend services (client_credentials)
// need an asymmetric key.
var grantTypesOf = map[string][]string{
	KindPublic:     {"authorization_code", "refresh_token"},
	KindSymmetric:  {"authorization_code", "refresh_token", tokenExchangeGrant},
	KindAsymmetric: {"authorization_code", "refresh_token", "client_credentials", tokenExchangeGrant},
}

// validate checks a client description and returns what is wrong with it.
func (c ClientSpec) validate() error {
	var errs []error
	if strings.TrimSpace(c.Name) == "" {
		errs = append(errs, errors.New("a name is required"))
	}
	if grantTypesOf[c.Kind] == nil {
		errs = append(errs, fmt.Errorf("kind %q: want public, confidential-symmetric or confidential-asymmetric", c.Kind))
	}
	for _, u := range c.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			errs = append(errs, err)
		}
	}
	if len(c.RedirectURIs) == 0 && c.Kind != KindAsymmetric {
		errs = append(errs, errors.New("at least one redirect URI is required"))
	}
	if len(c.Scopes) == 0 {
		errs = append(errs, errors.New("at least one scope is required"))
	}
	for _, s := range c.Scopes {
		if _, _, err := scope.ParseResource(s); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Kind == KindAsymmetric {
		if (len(c.JWKS) == 0) == (c.JWKSURI == "") {
			errs = append(errs, errors.New("an asymmetric client has a JWKS or a JWKS URL (one of them)"))
		}
		if c.AuthAlg != "RS384" && c.AuthAlg != "ES384" {
			errs = append(errs, fmt.Errorf("signing algorithm %q: want RS384 or ES384", c.AuthAlg))
		}
		if len(c.JWKS) > 0 {
			var set josev3.JSONWebKeySet
			if err := json.Unmarshal(c.JWKS, &set); err != nil || len(set.Keys) == 0 {
				errs = append(errs, errors.New("the JWKS is not a key set with keys"))
			}
			for _, k := range set.Keys {
				if !k.IsPublic() {
					errs = append(errs, errors.New("the JWKS holds a private key: register public keys only"))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// CreateClient registers (or, for a given ID, re-registers) a client and returns its id, and for a symmetric client its secret (shown
// once; only its hash is kept).
func (s *Server) CreateClient(ctx context.Context, c ClientSpec) (id, secret string, err error) {
	if err := c.validate(); err != nil {
		return "", "", err
	}
	grants, err := c.grantTypes()
	if err != nil {
		return "", "", err
	}
	id = c.ID
	if id == "" {
		id = randomToken(12)
	}
	var hash []byte
	if c.Kind == KindSymmetric {
		secret = randomToken(24)
		if hash, err = bcrypt.GenerateFromPassword([]byte(secret), 10); err != nil {
			return "", "", err
		}
	}
	if c.RedirectURIs == nil {
		c.RedirectURIs = []string{}
	}
	var jwks []byte
	if len(c.JWKS) > 0 {
		jwks = c.JWKS
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO oauth_clients (id, name, kind, secret_hash, redirect_uris, scopes, grant_types, jwks, jwks_uri, auth_alg, application_type)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULLIF($9, ''), NULLIF($10, ''), $11)
		ON CONFLICT (id) DO UPDATE SET name = $2, kind = $3, secret_hash = $4, redirect_uris = $5, scopes = $6, grant_types = $7,
		jwks = $8, jwks_uri = NULLIF($9, ''), auth_alg = NULLIF($10, ''), application_type = $11`,
		id, c.Name, c.Kind, hash, c.RedirectURIs, c.Scopes, grants, jwks, c.JWKSURI, c.AuthAlg, applicationType(c.Native))
	if err != nil {
		return "", "", fmt.Errorf("register client: %w", err)
	}
	s.cors.invalidate()
	return id, secret, nil
}

// ListClients returns the registered clients.
func (s *Server) ListClients(ctx context.Context) ([]*Client, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+clientColumns+` FROM oauth_clients ORDER BY name, id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Client, error) { return s.store.scanClient(r) })
}

// DeleteClient removes a client; its tokens stop working when they next need the client (refresh,
// introspection) and its access tokens are revoked.
func (s *Server) DeleteClient(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM oauth_clients WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("no client %q", id)
	}
	_, err = s.pool.Exec(ctx, `UPDATE oauth_requests SET active = false WHERE client_id = $1`, id)
	s.cors.invalidate()
	return err
}

// SetUser creates or updates a user of the login page, with the FHIR resource the user is
// ("Practitioner/123"), which becomes the fhirUser claim.
func (s *Server) SetUser(ctx context.Context, name, password, fhirUser string) error {
	if name == "" || len(password) < 8 {
		return errors.New("a user needs a name and a password of at least 8 characters")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), 10)
	if err != nil {
		return err
	}
	var fu *string
	if fhirUser != "" {
		fu = &fhirUser
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO smart_users (username, password_hash, fhir_user) VALUES ($1, $2, $3)
		ON CONFLICT (username) DO UPDATE SET password_hash = $2, fhir_user = $3`, name, hash, fu)
	return err
}

// applicationType is RFC 7591's name for a client's Native flag.
func applicationType(native bool) string {
	if native {
		return "native"
	}
	return "web"
}

// register is the admin API: POST /oauth2/register takes an RFC 7591-style client description
// (client_name, redirect_uris, scope, token_endpoint_auth_method, jwks or jwks_uri,
// token_endpoint_auth_signing_alg, application_type web or native, grant_types) from a token with
// system/*.cruds, and answers the metadata registered: the redirect URIs and the grant types granted.
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	p, ok := s.adminPrincipal(w, r, scope.Create|scope.Read|scope.Update|scope.Delete)
	if !ok {
		return
	}
	var req struct {
		Name         string          `json:"client_name"`
		RedirectURIs []string        `json:"redirect_uris"`
		Scope        string          `json:"scope"`
		AuthMethod   string          `json:"token_endpoint_auth_method"`
		JWKS         json.RawMessage `json:"jwks"`
		JWKSURI      string          `json:"jwks_uri"`
		Alg          string          `json:"token_endpoint_auth_signing_alg"`
		AppType      string          `json:"application_type"`
		GrantTypes   []string        `json:"grant_types"`
	}
	if err := decodeJSON(r, &req); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", err.Error())
		return
	}
	if req.AppType != "" && req.AppType != "web" && req.AppType != "native" {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", fmt.Sprintf("application_type %q: want web or native", req.AppType))
		return
	}
	for _, u := range req.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_redirect_uri", err.Error()) // RFC 7591 section 3.2.2
			return
		}
	}
	kind := map[string]string{"none": KindPublic, "client_secret_basic": KindSymmetric, "client_secret_post": KindSymmetric, "private_key_jwt": KindAsymmetric}[req.AuthMethod]
	if kind == "" {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", fmt.Sprintf("token_endpoint_auth_method %q: want none, client_secret_basic, client_secret_post or private_key_jwt", req.AuthMethod))
		return
	}
	if req.RedirectURIs == nil {
		req.RedirectURIs = []string{}
	}
	spec := ClientSpec{Name: req.Name, Kind: kind, RedirectURIs: req.RedirectURIs, Scopes: strings.Fields(req.Scope), JWKS: req.JWKS, JWKSURI: req.JWKSURI,
		AuthAlg: req.Alg, Native: req.AppType == "native", GrantTypes: req.GrantTypes}
	grants, err := spec.grantTypes()
	if err == nil {
		err = spec.validate()
	}
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", err.Error())
		return
	}
	id, secret, err := s.CreateClient(r.Context(), spec)
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", err.Error())
		return
	}
	s.auditf(r, "register", "success", p.ClientID, p.Subject, "client "+id)
	// RFC 7591 section 3.2.1: the metadata as registered, which may differ from the request.
	out := map[string]any{"client_id": id, "client_id_issued_at": s.cfg.Now().Unix(), "client_name": req.Name, "redirect_uris": req.RedirectURIs,
		"scope": strings.Join(spec.Scopes, " "), "token_endpoint_auth_method": req.AuthMethod, "grant_types": grants,
		"application_type": applicationType(spec.Native)}
	if kind == KindAsymmetric {
		out["token_endpoint_auth_signing_alg"] = req.Alg
		if req.JWKSURI != "" {
			out["jwks_uri"] = req.JWKSURI
		} else {
			out["jwks"] = req.JWKS
		}
	}
	out["response_types"] = []string{}
	if len(req.RedirectURIs) > 0 {
		out["response_types"] = []string{"code"}
	}
	if secret != "" {
		out["client_secret"] = secret
	}
	writeJSON(w, http.StatusCreated, out)
}
