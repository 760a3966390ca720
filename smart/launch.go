package smart

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/iambilly/billy/smart/scope"
)

// launchLifetime is how long an EHR launch id may wait for the app's authorize request.
const launchLifetime = 10 * time.Minute

// launchRequest is the body of POST /oauth2/launch.
type launchRequest struct {
	Patient           string          `json:"patient"`
	Encounter         string          `json:"encounter"`
	FHIRUser          string          `json:"fhirUser"`
	Intent            string          `json:"intent"`
	SMARTStyleURL     string          `json:"smart_style_url"`
	NeedPatientBanner *bool           `json:"need_patient_banner"`
	FHIRContext       json.RawMessage `json:"fhirContext"`
}

// launch is POST /oauth2/launch: an EMR (a client holding a Billy token with system-level scopes)
// records the context of an EHR launch and gets the opaque launch id it puts on the app's launch URL
// (iss + launch).
func (s *Server) launch(w http.ResponseWriter, r *http.Request) {
	p, ok := s.adminPrincipal(w, r, scope.Read)
	if !ok {
		return
	}
	var req launchRequest
	if err := decodeJSON(r, &req); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body is not a launch context: "+err.Error())
		return
	}
	for name, ref := range map[string]string{"patient": req.Patient, "encounter": req.Encounter} {
		if strings.Contains(ref, "/") {
			oauthError(w, http.StatusBadRequest, "invalid_request", name+" is a logical id, not a reference")
			return
		}
	}
	if req.Patient != "" {
		if _, found, err := s.patients.Patient(r.Context(), req.Patient); err != nil || !found {
			oauthError(w, http.StatusBadRequest, "invalid_request", "Patient/"+req.Patient+" does not exist")
			return
		}
	}
	ctxJSON, err := json.Marshal(LaunchContext{Patient: req.Patient, Encounter: req.Encounter, FHIRUser: req.FHIRUser,
		Intent: req.Intent, SMARTStyleURL: req.SMARTStyleURL, NeedPatientBanner: req.NeedPatientBanner, FHIRContext: req.FHIRContext})
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	id := randomToken(16)
	exp := s.cfg.Now().Add(launchLifetime)
	if _, err := s.pool.Exec(r.Context(), `INSERT INTO smart_launches (id, context, created_by, expires_at) VALUES ($1, $2, $3, $4)`,
		id, ctxJSON, p.ClientID, exp); err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "the launch could not be stored")
		return
	}
	s.auditf(r, "launch", "success", p.ClientID, p.Subject, "")
	writeJSON(w, http.StatusCreated, map[string]any{"launch": id, "expires_at": exp.UTC().Format(time.RFC3339), "iss": s.cfg.FHIRBase})
}

// adminPrincipal authenticates a management request: a valid Billy or trusted token with a
// system-level scope granting perm on every type (system/*.r or more).
func (s *Server) adminPrincipal(w http.ResponseWriter, r *http.Request, perm scope.Perm) (*Principal, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="billy"`)
		oauthError(w, http.StatusUnauthorized, "invalid_token", "a Bearer token with system/ scopes is required")
		return nil, false
	}
	p, err := s.verifier.Verify(r.Context(), tok)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="billy", error="invalid_token"`)
		oauthError(w, http.StatusUnauthorized, "invalid_token", err.Error())
		return nil, false
	}
	for _, res := range p.Scopes.Resources {
		if res.Level == scope.System && res.Type == "*" && res.Perms&perm == perm && res.Query == nil {
			return p, true
		}
	}
	oauthError(w, http.StatusForbidden, "insufficient_scope", "this needs a system/* scope")
	return nil, false
}
