package smart

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
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
	if ar.GetRequestedScopes().Has("launch/patient") && launch.Patient == "" {
		p := r.PostFormValue("patient")
		if p == "" {
			s.pickPatient(w, r, ar, user)
			return
		}
		exists, err := s.patients.PatientExists(ctx, p)
		if err != nil || !exists {
			s.pickPatient(w, r, ar, user)
			return
		}
		launch.Patient = p
	}
	// Step 3: consent.
	switch r.PostFormValue("consent") {
	case "":
		s.consent(w, r, ar, user, launch)
		return
	case "approve":
	default:
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

// The pages. They carry every OAuth parameter as a hidden field, so each step re-runs the request.
var pages = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Billy — {{.Title}}</title>
<style>body{font:16px system-ui,sans-serif;max-width:32em;margin:3em auto;padding:0 1em}label{display:block;margin:.8em 0 .2em}
input[type=text],input[type=password]{width:100%;padding:.4em}button{margin-top:1em;padding:.5em 1.2em}.err{color:#b00}
li{margin:.3em 0}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Client}} asks to use Billy.</p>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">{{end}}
{{if eq .Step "login"}}
<label for="username">User name</label><input type="text" id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit" id="login">Sign in</button>
{{else if eq .Step "patient"}}
<p>Choose the patient:</p>
<label for="q">Find by name</label><input type="text" id="q" name="q" value="{{.Query}}"><button type="submit" name="find" value="1">Find</button>
<ul>{{range .Patients}}<li><button type="submit" name="patient" value="{{.ID}}" id="patient-{{.ID}}">{{.Name}}{{if .BirthDate}} ({{.BirthDate}}){{end}}</button></li>{{else}}<li>No patients found.</li>{{end}}</ul>
{{else if eq .Step "consent"}}
<p>{{if .Patient}}For patient <b>{{.Patient}}</b>, it{{else}}It{{end}} asks for:</p>
<ul>{{range .Scopes}}<li><code>{{.}}</code></li>{{end}}</ul>
<button type="submit" name="consent" value="approve" id="approve">Allow</button>
<button type="submit" name="consent" value="deny" id="deny">Deny</button>
{{end}}
</form></body></html>`))

type pageData struct {
	Title, Client, Error, Action, Step, Query, Patient string
	Hidden                                             map[string]string
	Patients                                           []PatientSummary
	Scopes                                             []string
}

func (s *Server) render(w http.ResponseWriter, ar fosite.AuthorizeRequester, status int, d pageData) {
	d.Action = s.cfg.BaseURL + "/oauth2/authorize"
	d.Client = ar.GetClient().GetID()
	if c, ok := ar.GetClient().(*Client); ok && c.Name != "" {
		d.Client = c.Name
	}
	hidden := map[string]string{}
	for k, v := range ar.GetRequestForm() {
		switch k {
		case "username", "password", "consent", "patient", "find", "q":
			continue
		}
		if len(v) > 0 {
			hidden[k] = v[0]
		}
	}
	for k, v := range d.Hidden {
		hidden[k] = v
	}
	d.Hidden = hidden
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	// Browsers apply form-action to the redirects that follow a form post too, so the app's redirect
	// URI (already matched against the registered ones) must be allowed, or the final redirect of the
	// consent page is blocked.
	formAction := "'self'"
	if u := ar.GetRedirectURI(); u != nil && u.Scheme != "" {
		if u.Host != "" {
			formAction += " " + u.Scheme + "://" + u.Host
		} else {
			formAction += " " + u.Scheme + ":"
		}
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action "+formAction)
	w.WriteHeader(status)
	_ = pages.Execute(w, d)
}

// renderLogin renders the login page, with msg and status when a sign-in failed.
func (s *Server) renderLogin(w http.ResponseWriter, ar fosite.AuthorizeRequester, msg string, status int) {
	s.render(w, ar, status, pageData{Title: "Sign in", Step: "login", Error: msg, Hidden: map[string]string{"ticket": ""}})
}

func (s *Server) pickPatient(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, u user) {
	q := r.PostFormValue("q")
	list, err := s.patients.FindPatients(r.Context(), q, 50)
	msg := ""
	if err != nil {
		msg = "the patient list is unavailable"
	}
	s.render(w, ar, http.StatusOK, pageData{Title: "Choose a patient", Step: "patient", Query: q, Patients: list, Error: msg,
		Hidden: map[string]string{"ticket": r.PostForm.Get("ticket")}})
}

func (s *Server) consent(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, u user, l LaunchContext) {
	h := map[string]string{"ticket": r.PostForm.Get("ticket")}
	if l.Patient != "" && r.PostFormValue("patient") != "" {
		h["patient"] = l.Patient
	}
	s.render(w, ar, http.StatusOK, pageData{Title: "Allow access?", Step: "consent", Scopes: ar.GetRequestedScopes(), Patient: l.Patient, Hidden: h})
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
