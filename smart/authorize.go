package smart

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/ory/fosite"
)

// authorize is /oauth2/authorize (GET and POST): the authorization code flow with PKCE S256, in
// steps rendered by the server: login, then (standalone launch) the patient picker, then consent.
// Every step posts back here with the original OAuth parameters, which fosite validates again.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	// Parsed as fosite parses it, so that the checks below run before fosite, which would send the
	// errors it finds to a redirect URI it matched more loosely than Billy does.
	if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the request is not a form")
		return
	}
	if c, err := s.store.GetClient(ctx, r.Form.Get("client_id")); err == nil {
		if err := matchRedirectURI(r.Form.Get("redirect_uri"), c.(*Client)); err != nil {
			s.auditf(r, "authorize", "failure", c.GetID(), "", "redirect_uri: "+err.Error())
			oauthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri: "+err.Error())
			return
		}
	}
	if h := r.Form.Get("id_token_hint"); h != "" && checkCanonicalJWS(h) != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "id_token_hint: "+errNotCanonical.Error())
		return
	}
	ar, err := s.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		s.auditf(r, "authorize", "failure", r.FormValue("client_id"), "", fosite.ErrorToRFC6749Error(err).ErrorField)
		s.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	form := ar.GetRequestForm()
	fail := func(e *fosite.RFC6749Error) {
		s.auditf(r, "authorize", "failure", ar.GetClient().GetID(), "", e.ErrorField+": "+e.HintField)
		s.provider.WriteAuthorizeError(ctx, w, ar, e)
	}
	if aud := form.Get("aud"); strings.TrimRight(aud, "/") != s.cfg.FHIRBase {
		fail(fosite.ErrInvalidRequest.WithHintf("aud must be this server's FHIR base URL, %s", s.cfg.FHIRBase))
		return
	}
	// fosite checks PKCE when it issues the code; refuse before the user types a password.
	if form.Get("code_challenge") == "" || form.Get("code_challenge_method") != "S256" {
		fail(fosite.ErrInvalidRequest.WithHint("PKCE is required, with code_challenge_method S256"))
		return
	}
	if r.PostFormValue("cancel") != "" {
		fail(fosite.ErrAccessDenied.WithHint("the user cancelled the authorization"))
		return
	}
	// Step 1: who is the user?
	user, ok := s.loginStep(w, r, ar)
	if !ok {
		return
	}
	// Step 2: the launch context.
	var launch LaunchContext
	if id := form.Get("launch"); id != "" {
		if !ar.GetRequestedScopes().Has("launch") {
			fail(fosite.ErrInvalidRequest.WithHint("an EHR launch requests the launch scope"))
			return
		}
		l, err := s.launchContext(ctx, id, r.PostFormValue("consent") == "approve")
		if err != nil {
			fail(fosite.ErrInvalidRequest.WithHint("the launch parameter is unknown or expired"))
			return
		}
		launch = *l
	}
	if launch.FHIRUser == "" {
		launch.FHIRUser = user.fhirUser
	}
	var picked *PatientSummary
	if ar.GetRequestedScopes().Has("launch/patient") && launch.Patient == "" {
		p := r.PostFormValue("patient")
		if p == "" {
			s.pickPatient(w, r, ar, user, "")
			return
		}
		sum, found, err := s.patients.Patient(ctx, p)
		if err != nil || !found {
			s.pickPatient(w, r, ar, user, "That patient cannot be found: choose again.")
			return
		}
		launch.Patient, picked = p, &sum
	}
	// Step 3: consent.
	switch r.PostFormValue("consent") {
	case "":
		s.consent(w, r, ar, user, launch, picked)
		return
	case "approve":
		s.auditf(r, "consent", "success", ar.GetClient().GetID(), user.name, "approved: "+strings.Join(ar.GetRequestedScopes(), " "))
	default:
		s.auditf(r, "consent", "failure", ar.GetClient().GetID(), user.name, "denied by the user")
		fail(fosite.ErrAccessDenied.WithHint("the user denied the authorization"))
		return
	}
	for _, sc := range ar.GetRequestedScopes() {
		ar.GrantScope(sc)
	}
	ar.GrantAudience(s.cfg.FHIRBase)
	sess := newSession(s.cfg.BaseURL)
	sess.Subject, sess.Username = user.name, user.name
	sess.Launch = launch
	sess.ClientID = ar.GetClient().GetID()
	now := s.cfg.Now().UTC()
	sess.Claims.Subject = user.name
	sess.Claims.Issuer = s.cfg.BaseURL
	sess.Claims.AuthTime = now
	sess.Claims.RequestedAt = now
	if launch.FHIRUser != "" && ar.GetRequestedScopes().Has("fhirUser") {
		sess.Claims.Extra = map[string]interface{}{"fhirUser": s.cfg.FHIRBase + "/" + launch.FHIRUser}
	}
	if k, err := s.keys.signer(ctx); err == nil {
		sess.Kid = k.kid
		sess.DefaultSession.Headers.Extra = map[string]interface{}{"kid": k.kid}
	}
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		rfc := fosite.ErrorToRFC6749Error(err)
		s.log.WarnContext(ctx, "authorization failed", "error", rfc.ErrorField, "debug", rfc.DebugField)
		s.auditf(r, "authorize", "failure", ar.GetClient().GetID(), user.name, rfc.ErrorField)
		s.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	s.auditf(r, "authorize", "success", ar.GetClient().GetID(), user.name, strings.Join(ar.GetGrantedScopes(), " "))
	s.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// launchContext reads an EHR launch made by POST /oauth2/launch. It serves the steps of one
// authorization and is consumed by the step that grants it: a used or expired launch is refused.
func (s *Server) launchContext(ctx context.Context, id string, consume bool) (*LaunchContext, error) {
	var raw []byte
	var err error
	if consume {
		err = s.pool.QueryRow(ctx, `UPDATE smart_launches SET used_at = $2 WHERE id = $1 AND expires_at > $2 AND used_at IS NULL RETURNING context`,
			id, s.cfg.Now()).Scan(&raw)
	} else {
		err = s.pool.QueryRow(ctx, `SELECT context FROM smart_launches WHERE id = $1 AND expires_at > $2 AND used_at IS NULL`, id, s.cfg.Now()).Scan(&raw)
	}
	if err != nil {
		return nil, err
	}
	var l LaunchContext
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, err
	}
	return &l, nil
}
