package smart

import (
	"html/template"
	"io"
	"net/http"

	"github.com/ory/fosite"
)

// The pages of /oauth2/authorize: sign-in, patient picker, consent. Each form carries every OAuth
// parameter as hidden fields (and, after sign-in, the login ticket), so each step re-runs the whole
// request. Each choice is a form of its own with one submit button, so pressing Enter, a script
// submitting the first form, or one clicking the first button, never lands on another choice (the
// patient picker used to share one form with its Find button). Cancel ends the authorization with
// access_denied, sent to the app's redirect URI with its state.
var pages = template.Must(template.New("page").Parse(`{{define "hidden"}}{{range $k, $v := .}}<input type="hidden" name="{{$k}}" value="{{$v}}">{{end}}{{end}}
{{- define "cancel"}}<form method="post" action="{{.Action}}" class="cancel">{{template "hidden" .Hidden}}<button type="submit" name="cancel" value="1" id="cancel">Cancel</button></form>{{end -}}
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Billy — {{.Title}}</title>
<style>body{font:16px system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em}label{display:block;margin:.8em 0 .2em}
input[type=text],input[type=password],input[type=search]{width:100%;padding:.4em;box-sizing:border-box}button{margin-top:1em;padding:.5em 1.2em}
.err{color:#b00}#user{color:#444;font-size:.9em}ul{padding:0;list-style:none}li{margin:.4em 0}
button.patient{display:block;width:100%;text-align:left;margin:0;padding:.6em}.patient .name{font-weight:bold;display:block}
.patient .facts{color:#444;font-size:.9em}.cancel button,#deny{background:none}</style></head>
<body>
{{if .User}}<p id="user">Signed in as <b>{{.User}}</b></p>{{end}}
<h1>{{.Title}}</h1>
<p><b>{{.Client}}</b> asks to use Billy.</p>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
{{- if eq .Step "login"}}
<form method="post" action="{{.Action}}" id="login-form">{{template "hidden" .Hidden}}
<label for="username">User name</label><input type="text" id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit" id="login">Sign in</button></form>
{{template "cancel" .}}
{{- else if eq .Step "patient"}}
<p>Choose the patient the app will work with{{if .Query}} (names starting with “{{.Query}}”){{end}}:</p>
<ul id="patients">
{{- range .Patients}}
<li><form method="post" action="{{$.Action}}">{{template "hidden" $.Hidden}}<button type="submit" class="patient" name="patient" value="{{.ID}}" id="patient-{{.ID}}">
<span class="name">{{if .Name}}{{.Name}}{{else}}(no name){{end}}</span>
<span class="facts"><span class="birth">{{if .BirthDate}}born {{.BirthDate}}{{else}}birth date unknown{{end}}</span> · <span class="sex">{{if .Sex}}{{.Sex}}{{else}}sex unknown{{end}}</span> · <span class="mrn">{{if .MRN}}MRN {{.MRN}}{{else}}no MRN{{end}}</span></span>
</button></form></li>
{{- else}}
<li>No patients found.</li>
{{- end}}
</ul>
<form method="post" action="{{.Action}}" id="search" role="search">{{template "hidden" .Hidden}}
<label for="q">Not listed? Find by name</label><input type="search" id="q" name="q" value="{{.Query}}">
<button type="submit" id="find">Find</button></form>
{{template "cancel" .}}
{{- else if eq .Step "consent"}}
{{if .Patient}}<p id="patient">For the patient <b class="name">{{if .Patient.Name}}{{.Patient.Name}}{{else}}(no name){{end}}</b>,
<span class="birth">{{if .Patient.BirthDate}}born {{.Patient.BirthDate}}{{else}}birth date unknown{{end}}</span>, it may:</p>
{{else if .MissingPatient}}<p id="patient" class="err">For a patient whose record cannot be found, it may:</p>
{{else}}<p>It may:</p>{{end}}
<ul id="scopes">{{range .Permissions}}<li>{{.}}</li>{{end}}</ul>
<details id="raw-scopes"><summary>Scopes as the app asked for them</summary><ul>{{range .Scopes}}<li><code>{{.}}</code></li>{{end}}</ul></details>
<form method="post" action="{{.Action}}" id="consent">{{template "hidden" .Hidden}}
<button type="submit" name="consent" value="approve" id="approve">Allow</button>
<button type="submit" name="consent" value="deny" id="deny">Deny</button></form>
{{- end}}
</body></html>`))

// pageData is what a page shows.
type pageData struct {
	Title, Client, Error, Action, Step, Query string
	// User is who is signed in (the picker and consent steps).
	User     string
	Hidden   map[string]string
	Patients []PatientSummary
	// Patient is the patient the consent is for; MissingPatient is set when there is one whose
	// record cannot be read.
	Patient        *PatientSummary
	MissingPatient bool
	// Permissions say in words what the scopes grant; Scopes are the scope strings.
	Permissions, Scopes []string
}

// notCarried are the form fields of one step that the next must not inherit.
var notCarried = map[string]bool{"username": true, "password": true, "consent": true, "patient": true, "find": true, "q": true, "cancel": true}

func (s *Server) render(w http.ResponseWriter, ar fosite.AuthorizeRequester, status int, d pageData) {
	d.Action = s.cfg.BaseURL + "/oauth2/authorize"
	d.Client = ar.GetClient().GetID()
	if c, ok := ar.GetClient().(*Client); ok && c.Name != "" {
		d.Client = c.Name
	}
	hidden := map[string]string{}
	for k, v := range ar.GetRequestForm() {
		if !notCarried[k] && len(v) > 0 {
			hidden[k] = v[0]
		}
	}
	for k, v := range d.Hidden {
		hidden[k] = v
	}
	d.Hidden = hidden
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
	writePage(w, status, formAction, d)
}

// writePage sends a page with the headers every page has.
func writePage(w http.ResponseWriter, status int, formAction string, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action "+formAction)
	w.WriteHeader(status)
	_ = executePage(w, d)
}

func executePage(w io.Writer, d pageData) error { return pages.Execute(w, d) }

// renderLogin renders the login page, with msg and status when a sign-in failed.
func (s *Server) renderLogin(w http.ResponseWriter, ar fosite.AuthorizeRequester, msg string, status int) {
	s.render(w, ar, status, pageData{Title: "Sign in", Step: "login", Error: msg, Hidden: map[string]string{"ticket": ""}})
}

// pickPatient renders the patient picker: the patients whose name starts with the query, or the
// first ones.
func (s *Server) pickPatient(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, u user, msg string) {
	q := r.PostFormValue("q")
	list, err := s.patients.FindPatients(r.Context(), q, 50)
	if err != nil {
		s.log.ErrorContext(r.Context(), "patient picker", "error", err.Error())
		msg = "The patient list is unavailable."
	}
	s.render(w, ar, http.StatusOK, pageData{Title: "Choose a patient", Step: "patient", Query: q, Patients: list, Error: msg, User: u.name,
		Hidden: map[string]string{"ticket": r.PostForm.Get("ticket")}})
}

// consent renders the consent page for the launch context l; picked is the patient chosen in the
// picker (nil after an EHR launch, whose patient is in l).
func (s *Server) consent(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, u user, l LaunchContext, picked *PatientSummary) {
	h := map[string]string{"ticket": r.PostForm.Get("ticket")}
	d := pageData{Title: "Allow access?", Step: "consent", User: u.name, Scopes: ar.GetRequestedScopes(),
		Permissions: describeScopes(ar.GetRequestedScopes()), Patient: picked}
	if picked != nil {
		h["patient"] = picked.ID
	} else if l.Patient != "" {
		p, found, err := s.patients.Patient(r.Context(), l.Patient)
		if err != nil {
			s.log.ErrorContext(r.Context(), "consent: the launch patient", "error", err.Error())
		}
		if found {
			d.Patient = &p
		} else {
			d.MissingPatient = true
		}
	}
	d.Hidden = h
	s.render(w, ar, http.StatusOK, d)
}
