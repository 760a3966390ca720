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

// token is /oauth2/token: authorization_code (with the PKCE verifier), refresh_token,
// client_credentials (backend services, private_key_jwt), and RFC 8693 token exchange.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !s.canonicalAssertion(w, r, "token") {
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
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.auditf(r, "token", "failure", client.GetID(), sess.Subject, fosite.ErrorToRFC6749Error(err).ErrorField)
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
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
// services), or with a Billy access token of its own (resource servers and public apps).
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	if !s.canonicalAssertion(w, r, "introspect") {
		return
	}
	caller := ""
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		p, err := s.verifier.Verify(ctx, tok)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="billy", error="invalid_token"`)
			oauthError(w, http.StatusUnauthorized, "invalid_token", err.Error())
			return
		}
		caller = p.ClientID
	} else {
		c, err := s.provider.(*fosite.Fosite).AuthenticateClient(ctx, r, r.PostForm)
		if err != nil {
			s.auditf(r, "introspect", "failure", r.PostFormValue("client_id"), "", "client authentication")
			w.Header().Set("WWW-Authenticate", `Basic realm="billy"`)
			oauthError(w, http.StatusUnauthorized, "invalid_client", "the client could not authenticate")
			return
		}
		caller = c.GetID()
	}
	token := r.PostFormValue("token")
	p, err := s.verifier.Verify(ctx, token)
	if err == nil && !p.External {
		// The API may use a revocation list a few seconds old; introspection asks the database.
		active, found, qerr := s.store.accessTokenActive(ctx, p.TokenID, signatureOf(token))
		if qerr != nil {
			oauthError(w, http.StatusInternalServerError, "server_error", "the token registry is unavailable")
			return
		}
		if found && !active {
			err = errors.New("revoked")
		}
	}
	s.auditf(r, "introspect", "success", caller, "", "")
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	out := map[string]any{"active": true, "scope": p.Scopes.String(), "client_id": p.ClientID, "token_type": "Bearer",
		"exp": p.Expiry.Unix(), "iss": p.Issuer, "aud": s.cfg.FHIRBase}
	for k, v := range map[string]string{"sub": p.Subject, "patient": p.Patient, "encounter": p.Encounter, "fhirUser": p.FHIRUser} {
		if v != "" {
			out[k] = v
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// revoke is RFC 7009 revocation of access and refresh tokens.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !s.canonicalAssertion(w, r, "revoke") {
		return
	}
	// An access token is looked up by its signature's text: another spelling of it would not be
	// found, and the client would believe it revoked. (Refresh tokens have one dot, not two.)
	if tok := r.PostFormValue("token"); strings.Count(tok, ".") == 2 && checkCanonicalJWS(tok) != nil {
		s.auditf(r, "revoke", "failure", r.PostFormValue("client_id"), "", "token not in canonical base64url")
		oauthError(w, http.StatusBadRequest, "invalid_request", errNotCanonical.Error())
		return
	}
	err := s.provider.NewRevocationRequest(ctx, r)
	outcome := "success"
	if err != nil {
		outcome = "failure"
	}
	s.auditf(r, "revoke", outcome, r.PostFormValue("client_id"), "", "")
	s.provider.WriteRevocationResponse(ctx, w, err)
}

// tokenExchange mints a Billy token for a token from a trusted external issuer (RFC 8693): the
// subject token's principal and launch context, narrowed to the scopes asked for.
func (s *Server) tokenExchange(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.PostFormValue("subject_token_type") != "urn:ietf:params:oauth:token-type:access_token" &&
		r.PostFormValue("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "subject_token_type must be an access_token or jwt token type")
		return
	}
	p, err := s.verifier.verifyExternal(ctx, r.PostFormValue("subject_token"))
	if err != nil {
		s.auditf(r, "token", "failure", "", "", "token exchange: "+err.Error())
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the subject token is not valid: "+err.Error())
		return
	}
	granted := p.Scopes.String()
	if req := r.PostFormValue("scope"); req != "" {
		var keep []string
		for _, sc := range strings.Fields(req) {
			if scopeStrategy(strings.Fields(granted), sc) {
				keep = append(keep, sc)
			} else {
				oauthError(w, http.StatusBadRequest, "invalid_scope", "the subject token does not grant "+sc)
				return
			}
		}
		granted = strings.Join(keep, " ")
	}
	tok, exp, err := s.verifier.mint(ctx, mintRequest{Subject: p.Subject, ClientID: "exchange:" + p.Issuer, Scope: granted,
		Launch: LaunchContext{Patient: p.Patient, Encounter: p.Encounter, FHIRUser: p.FHIRUser}, Lifetime: userTokenLifetime})
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "could not sign the token")
		return
	}
	s.auditf(r, "token", "success", "exchange:"+p.Issuer, p.Subject, "token exchange: "+granted)
	out := map[string]any{
		"access_token": tok, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
		"token_type": "Bearer", "expires_in": int(time.Until(exp).Seconds()), "scope": granted,
	}
	if p.Patient != "" {
		out["patient"] = p.Patient
	}
	if p.Encounter != "" {
		out["encounter"] = p.Encounter
	}
	writeJSON(w, http.StatusOK, out)
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
