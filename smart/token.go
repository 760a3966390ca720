package smart

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/iambilly/billy/smart/scope"
)

// tokenExchangeGrant is RFC 8693's grant type.
const tokenExchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange"

// supportedGrants are the grant types of /oauth2/token.
var supportedGrants = map[string]bool{"authorization_code": true, "refresh_token": true, "client_credentials": true, tokenExchangeGrant: true}

// token is /oauth2/token: authorization_code (with the PKCE verifier), refresh_token,
// client_credentials (backend services, private_key_jwt), and RFC 8693 token exchange.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !s.canonicalAssertion(w, r, "token") {
		return
	}
	if gt := r.PostFormValue("grant_type"); gt != "" && !supportedGrants[gt] {
		s.auditf(r, "token", "failure", r.PostFormValue("client_id"), "", "unsupported grant type")
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be one of authorization_code, refresh_token, client_credentials, "+tokenExchangeGrant)
		return
	}
	if r.PostFormValue("grant_type") == tokenExchangeGrant {
		s.tokenExchange(w, r)
		return
	}
	ar, err := s.provider.NewAccessRequest(ctx, r, newSession(s.cfg.BaseURL))
	if err != nil {
		s.auditf(r, "token", "failure", r.PostFormValue("client_id"), "", fosite.ErrorToRFC6749Error(err).ErrorField)
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	sess := ar.GetSession().(*Session)
	client := ar.GetClient()
	if ar.GetGrantTypes().ExactOne("refresh_token") && r.PostFormValue("scope") != "" {
		// Down-scoping on refresh (RFC 6749 section 6): a subset of the original grant, never more.
		original := ar.GetGrantedScopes()
		requested := strings.Fields(r.PostFormValue("scope"))
		for _, sc := range requested {
			if !scopeStrategy(original, sc) {
				err := fosite.ErrInvalidScope.WithHintf("%s was not granted originally", sc)
				s.auditf(r, "token", "failure", client.GetID(), sess.Subject, "refresh scope escalation: "+sc)
				s.provider.WriteAccessError(ctx, w, ar, err)
				return
			}
		}
		if areq, ok := ar.(*fosite.AccessRequest); ok {
			areq.GrantedScope = requested
		}
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		// Backend services: system-level scopes only, and only those the client is registered for
		// (fosite has checked the latter).
		for _, sc := range ar.GetRequestedScopes() {
			if r, isResource, _ := scope.ParseResource(sc); isResource && r.Level == scope.System {
				ar.GrantScope(sc)
			}
		}
		if len(ar.GetGrantedScopes()) == 0 {
			err := fosite.ErrInvalidScope.WithHint("backend services request system/ scopes")
			s.auditf(r, "token", "failure", client.GetID(), "", "no system scope")
			s.provider.WriteAccessError(ctx, w, ar, err)
			return
		}
		sess.Subject = client.GetID()
		ar.GrantAudience(s.cfg.FHIRBase)
	}
	if k, err := s.keys.signer(ctx); err == nil {
		sess.Kid = k.kid
		sess.DefaultSession.Headers.Extra = map[string]interface{}{"kid": k.kid}
	}
	sess.ClientID = client.GetID()
	sess.Issuer = s.cfg.BaseURL
	sess.JTI = randomToken(16)
	// fosite dates access tokens by the wall clock; the server's clock (Config.Now) decides here, so
	// that exp, iat and expires_in agree with the verifier's.
	now := s.cfg.Now().UTC().Truncate(time.Second)
	lifespan := userTokenLifetime
	if c, ok := client.(fosite.ClientWithCustomTokenLifespans); ok && len(ar.GetGrantTypes()) == 1 {
		lifespan = c.GetEffectiveLifespan(fosite.GrantType(ar.GetGrantTypes()[0]), fosite.AccessToken, userTokenLifetime)
	}
	sess.SetExpiresAt(fosite.AccessToken, now.Add(lifespan))
	sess.IssuedAt = now
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.auditf(r, "token", "failure", client.GetID(), sess.Subject, fosite.ErrorToRFC6749Error(err).ErrorField)
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	resp.SetExpiresIn(lifespan)
	l := sess.Launch
	if l.Patient != "" {
		resp.SetExtra("patient", l.Patient)
	}
	if l.Encounter != "" {
		resp.SetExtra("encounter", l.Encounter)
	}
	if l.NeedPatientBanner != nil {
		resp.SetExtra("need_patient_banner", *l.NeedPatientBanner)
	}
	if l.SMARTStyleURL != "" {
		resp.SetExtra("smart_style_url", l.SMARTStyleURL)
	}
	if len(l.FHIRContext) > 0 {
		resp.SetExtra("fhirContext", l.FHIRContext)
	}
	if l.Intent != "" {
		resp.SetExtra("intent", l.Intent)
	}
	s.auditf(r, "token", "success", client.GetID(), sess.Subject, strings.Join(ar.GetGrantTypes(), " ")+": "+strings.Join(ar.GetGrantedScopes(), " "))
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

// introspect is RFC 7662 introspection: active, scope, client_id, sub, exp, and the SMART context.
// The caller authenticates as a client (client_secret_basic/post, or private_key_jwt for backend
// services), or with a Billy access token of its own (resource servers and public apps). It learns
// about its own tokens only, unless its token is an administrator's (system/*.cruds): any other
// token is reported inactive, as RFC 7662 section 2.2 allows, so that no client can probe another's
// tokens. Tokens Billy did not issue (a trusted issuer's) are inactive here: their issuer answers
// for them. A token is inactive from its exp on (the API's clock-skew leeway is not applied).
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	if !s.canonicalAssertion(w, r, "introspect") {
		return
	}
	caller, admin := "", false
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		p, err := s.verifier.Verify(ctx, tok)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="billy", error="invalid_token"`)
			oauthError(w, http.StatusUnauthorized, "invalid_token", err.Error())
			return
		}
		caller, admin = p.ClientID, isAdmin(p)
	} else {
		c, err := s.authenticateClient(ctx, r, r.PostForm)
		if err != nil {
			s.auditf(r, "introspect", "failure", r.PostFormValue("client_id"), "", "client authentication")
			s.writeClientError(w, r, err)
			return
		}
		caller = c.GetID()
	}
	token := r.PostFormValue("token")
	if token == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	inactive := func(why string) {
		s.auditf(r, "introspect", "success", caller, "", "inactive: "+why)
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
	}
	p, err := s.verifier.Verify(ctx, token)
	switch {
	case err != nil:
		inactive("invalid token")
		return
	case p.External:
		inactive("not issued by Billy")
		return
	case !s.cfg.Now().Before(p.Expiry):
		inactive("expired")
		return
	}
	// The API may use a revocation list a few seconds old; introspection asks the database.
	active, found, err := s.store.accessTokenActive(ctx, p.TokenID, signatureOf(token))
	if err != nil {
		s.log.ErrorContext(ctx, "introspection: token registry", "error", err.Error())
		oauthError(w, http.StatusInternalServerError, "server_error", "the token registry is unavailable")
		return
	}
	if found && !active {
		inactive("revoked")
		return
	}
	if p.ClientID != caller && !admin {
		inactive("another client's token")
		return
	}
	s.auditf(r, "introspect", "success", caller, "", "")
	out := map[string]any{"active": true, "scope": p.Scopes.String(), "client_id": p.ClientID, "token_type": "Bearer",
		"exp": p.Expiry.Unix(), "iss": p.Issuer, "aud": s.cfg.FHIRBase}
	for k, v := range map[string]string{"sub": p.Subject, "patient": p.Patient, "encounter": p.Encounter, "fhirUser": p.FHIRUser} {
		if v != "" {
			out[k] = v
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// isAdmin reports whether p holds the administrator's scope (system/*.cruds, unconstrained).
func isAdmin(p *Principal) bool {
	all := scope.Create | scope.Read | scope.Update | scope.Delete | scope.Search
	for _, res := range p.Scopes.Resources {
		if res.Level == scope.System && res.Type == "*" && res.Perms&all == all && res.Query == nil {
			return true
		}
	}
	return false
}

// revoke is RFC 7009 revocation of access and refresh tokens. Revoking a token revokes the grant
// it belongs to (its access and refresh tokens). A token that is invalid, expired, unknown or
// already revoked answers 200, as section 2.2 says. A token issued to another client is refused
// (section 2.1) with 400 unauthorized_client: the caller did authenticate, so invalid_client (a
// failed authentication, 401) would mislead it; unauthorized_client is RFC 6749's code for an
// authenticated client that may not do what it asked.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	if !s.canonicalAssertion(w, r, "revoke") {
		return
	}
	c, err := s.authenticateClient(ctx, r, r.PostForm)
	if err != nil {
		s.auditf(r, "revoke", "failure", r.PostFormValue("client_id"), "", "client authentication")
		s.writeClientError(w, r, err)
		return
	}
	tok := r.PostFormValue("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	// An access token is looked up by its jti, which only a canonical spelling carries to the same
	// row reliably; another spelling is refused so the client never believes it revoked something.
	// (Refresh tokens have one dot, not two.)
	if strings.Count(tok, ".") == 2 && checkCanonicalJWS(tok) != nil {
		s.auditf(r, "revoke", "failure", c.GetID(), "", "token not in canonical base64url")
		oauthError(w, http.StatusBadRequest, "invalid_request", errNotCanonical.Error())
		return
	}
	owner, err := s.revokeToken(ctx, tok, c.GetID())
	if errors.Is(err, errUnknownToken) {
		err = nil // section 2.2: nothing to revoke is a success
	}
	switch {
	case errors.Is(err, errOtherClient):
		s.auditf(r, "revoke", "failure", c.GetID(), "", "another client's token (issued to "+owner+")")
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "the token was not issued to this client")
		return
	case err != nil:
		s.log.ErrorContext(ctx, "revocation", "error", err.Error())
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the token registry is unavailable; try again")
		return
	}
	s.auditf(r, "revoke", "success", c.GetID(), "", "")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// tokenExchange mints a Billy token for a token from a trusted external issuer (RFC 8693) to an
// authenticated confidential client: the subject token's principal and launch context, with the
// scopes asked for, which both the subject token and the client's registration must cover. The
// token lives an hour at most, and never longer than the subject token; it is recorded, so its
// client can revoke it.
func (s *Server) tokenExchange(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, err := s.authenticateClient(ctx, r, r.PostForm)
	if err != nil {
		s.auditf(r, "token", "failure", r.PostFormValue("client_id"), "", "token exchange: client authentication")
		s.writeClientError(w, r, err)
		return
	}
	client := c.(*Client)
	if client.IsPublic() {
		s.auditf(r, "token", "failure", client.ID, "", "token exchange: public client")
		oauthError(w, http.StatusUnauthorized, "invalid_client", "token exchange needs a confidential client (client_secret_basic, client_secret_post or private_key_jwt)")
		return
	}
	if r.PostFormValue("subject_token_type") != "urn:ietf:params:oauth:token-type:access_token" &&
		r.PostFormValue("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "subject_token_type must be an access_token or jwt token type")
		return
	}
	if r.PostFormValue("actor_token") != "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "actor_token is not supported")
		return
	}
	p, err := s.verifier.verifyExternal(ctx, r.PostFormValue("subject_token"))
	if err != nil {
		s.auditf(r, "token", "failure", client.ID, "", "token exchange: "+err.Error())
		oauthError(w, http.StatusBadRequest, "invalid_request", "the subject token is not valid: "+err.Error())
		return
	}
	now := s.cfg.Now()
	remaining := p.Expiry.Sub(now).Truncate(time.Second)
	if remaining <= 0 {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the subject token has expired")
		return
	}
	covered := func(sc string) bool {
		return scopeStrategy(strings.Fields(p.Scopes.String()), sc) && scopeStrategy(client.Scopes, sc)
	}
	var granted []string
	if req := r.PostFormValue("scope"); req != "" {
		for _, sc := range strings.Fields(req) {
			if !covered(sc) {
				oauthError(w, http.StatusBadRequest, "invalid_scope", "the subject token and the client's registration do not both grant "+sc)
				return
			}
			granted = append(granted, sc)
		}
	} else {
		for _, sc := range strings.Fields(p.Scopes.String()) {
			if covered(sc) {
				granted = append(granted, sc)
			}
		}
		if len(granted) == 0 {
			oauthError(w, http.StatusBadRequest, "invalid_scope", "the client is registered for none of the subject token's scopes")
			return
		}
	}
	scopes := strings.Join(granted, " ")
	tok, exp, err := s.verifier.mint(ctx, mintRequest{Subject: p.Subject, ClientID: client.ID, Scope: scopes,
		Launch: LaunchContext{Patient: p.Patient, Encounter: p.Encounter, FHIRUser: p.FHIRUser}, Lifetime: min(userTokenLifetime, remaining)})
	if err != nil {
		s.log.ErrorContext(ctx, "token exchange: mint", "error", err.Error())
		oauthError(w, http.StatusInternalServerError, "server_error", "could not sign the token")
		return
	}
	s.auditf(r, "token", "success", client.ID, p.Subject, "token exchange from "+p.Issuer+": "+scopes)
	out := map[string]any{
		"access_token": tok, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
		"token_type": "Bearer", "expires_in": int(exp.Sub(now).Seconds()), "scope": scopes,
	}
	if p.Patient != "" {
		out["patient"] = p.Patient
	}
	if p.Encounter != "" {
		out["encounter"] = p.Encounter
	}
	writeJSON(w, http.StatusOK, out)
}

// writeClientError answers a refused client authentication (401 invalid_client with its
// description), or a server error for anything else.
func (s *Server) writeClientError(w http.ResponseWriter, r *http.Request, err error) {
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) {
		if _, _, basic := r.BasicAuth(); basic && rfc.CodeField == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="billy"`)
		}
		oauthError(w, rfc.CodeField, rfc.ErrorField, rfc.DescriptionField)
		return
	}
	s.log.ErrorContext(r.Context(), "client authentication", "error", err.Error())
	oauthError(w, http.StatusInternalServerError, "server_error", "client authentication is unavailable")
}

// canonicalAssertion refuses a private_key_jwt client assertion that is not in canonical
// base64url (fosite's parser, like go-jose's, accepts other spellings of the same signature), and
// reports whether the request may go on.
func (s *Server) canonicalAssertion(w http.ResponseWriter, r *http.Request, action string) bool {
	a := r.PostFormValue("client_assertion")
	if a == "" || checkCanonicalJWS(a) == nil {
		return true
	}
	s.auditf(r, action, "failure", r.PostFormValue("client_id"), "", "client assertion not in canonical base64url")
	oauthError(w, http.StatusUnauthorized, "invalid_client", "the client assertion: "+errNotCanonical.Error())
	return false
}

// decodeJSON reads a JSON request body of at most 64 KiB.
func decodeJSON(r *http.Request, v any) error {
	return json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10)).Decode(v)
}
