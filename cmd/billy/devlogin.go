package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
	"golang.org/x/oauth2"

	"github.com/iambilly/billy/internal/config"
)

// billy dev-login is the SMART standalone launch of a public client done from the command line:
// the printed authorization example of make run, made runnable. It drives the server's own login,
// patient picker and consent pages as a browser would, so it finds its way by the forms' field
// names, never by their position on the page:
//
//   - the login form is the one with a "username" field (and "password");
//   - the patient picker offers "patient" as a submit button's or radio button's value; with
//     --patient the one with that value is chosen, otherwise the first;
//   - the consent form is the one whose submit button is consent=approve.
//
// Every other field of the chosen form (the OAuth parameters, the login ticket) is sent back as
// the page gave it.

// devLoginOptions are the flags of billy dev-login.
type devLoginOptions struct {
	base, client, user, password, scope, patient, redirect string
}

// devLoginFlags declares dev-login's flags; env gives the default base URL (nil: none, for help).
func devLoginFlags(fs *flag.FlagSet, env config.Lookuper) *devLoginOptions {
	o := &devLoginOptions{}
	base := ""
	if env != nil {
		base, _ = env.Lookup("BILLY_BASE_URL")
	}
	fs.StringVar(&o.base, "base", base, "the server's base URL (default $BILLY_BASE_URL, else http://localhost:8080)")
	fs.StringVar(&o.client, "client", demoClient, "a registered public client")
	fs.StringVar(&o.redirect, "redirect-uri", "http://localhost:9000/callback", "one of the client's registered redirect URIs (nothing needs to listen there)")
	fs.StringVar(&o.user, "user", demoUser, "user name on the login page")
	fs.StringVar(&o.password, "password", "", "the user's password (required)")
	fs.StringVar(&o.scope, "scope", "openid fhirUser launch/patient patient/*.rs", "scopes to ask for, space-separated")
	fs.StringVar(&o.patient, "patient", "", "the patient id to choose in the picker (default: the first listed)")
	return o
}

// devLoginCmd runs the flow and prints the access token on stdout, what happened on stderr.
func devLoginCmd(ctx context.Context, args []string, env config.Lookuper, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev-login", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := devLoginFlags(fs, env)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see billy dev-login --help)", fs.Arg(0))
	}
	if o.password == "" {
		return errors.New("dev-login: give the user's password with --password (make run's demo user: demo / billy-demo-password)")
	}
	if o.base == "" {
		o.base = "http://localhost:8080"
	}
	o.base = strings.TrimRight(o.base, "/")
	tok, err := devLogin(ctx, o, &http.Client{Timeout: 30 * time.Second}, stderr)
	if err != nil {
		return fmt.Errorf("dev-login: %w", err)
	}
	fmt.Fprintln(stdout, tok.AccessToken)
	return nil
}

// devLogin runs the authorization-code flow with PKCE S256 and returns the token.
func devLogin(ctx context.Context, o *devLoginOptions, hc *http.Client, log io.Writer) (*oauth2.Token, error) {
	conf := &oauth2.Config{
		ClientID:    o.client,
		Endpoint:    oauth2.Endpoint{AuthURL: o.base + "/oauth2/authorize", TokenURL: o.base + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: o.redirect,
		Scopes:      strings.Fields(o.scope),
	}
	state, verifier := randomState(), oauth2.GenerateVerifier()
	start := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", o.base+"/fhir"))

	// The pages redirect only at the end, to the client's redirect URI, which need not exist: the
	// redirect is read, never followed.
	browser := *hc
	browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, start, nil)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "dev-login: GET %s/oauth2/authorize (client %s, PKCE S256)\n", o.base, o.client)
	loggedIn := false
	for step := 0; ; step++ {
		if step == 8 {
			return nil, errors.New("the authorization pages did not end in a redirect after 8 steps")
		}
		resp, err := browser.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
			code, err := codeFrom(loc, o.redirect, state)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(log, "dev-login: redirected to %s with a code; exchanging it at %s\n", o.redirect, conf.Endpoint.TokenURL)
			tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, hc), code, oauth2.VerifierOption(verifier))
			if err != nil {
				return nil, fmt.Errorf("token exchange: %w", err)
			}
			if p, ok := tok.Extra("patient").(string); ok && p != "" {
				fmt.Fprintf(log, "dev-login: token for patient %s, scope %v, expires in %s\n", p, tok.Extra("scope"), time.Until(tok.Expiry).Round(time.Minute))
			} else {
				fmt.Fprintf(log, "dev-login: token with scope %v, expires in %s\n", tok.Extra("scope"), time.Until(tok.Expiry).Round(time.Minute))
			}
			return tok, nil
		}
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			return nil, fmt.Errorf("%s answered %s: %s", req.URL.Path, resp.Status, snippet(body))
		}
		page, err := parsePage(body, req.URL)
		if err != nil {
			return nil, err
		}
		f, values, what, err := page.next(o, loggedIn)
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", page.title, resp.Status, err)
		}
		loggedIn = loggedIn || what == "login"
		fmt.Fprintf(log, "dev-login: %s page: %s\n", page.title, what)
		if req, err = f.request(ctx, values); err != nil {
			return nil, err
		}
	}
}

// codeFrom reads the authorization code from the final redirect, checking it goes to the redirect
// URI and carries our state.
func codeFrom(loc, redirect, state string) (string, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("redirect %q: %w", loc, err)
	}
	if !strings.HasPrefix(loc, redirect) {
		return "", fmt.Errorf("redirected to %s, not to the redirect URI %s", u.Redacted(), redirect)
	}
	q := u.Query()
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("authorization refused: %s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != state {
		return "", errors.New("the redirect's state is not the one sent")
	}
	if q.Get("code") == "" {
		return "", errors.New("the redirect carries no code")
	}
	return q.Get("code"), nil
}

func randomState() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// htmlPage is what dev-login reads of a page: its title, alerts and forms.
type htmlPage struct {
	title  string
	alerts []string
	forms  []*htmlForm
}

// htmlForm is one form: where it posts, its fields, and its submit buttons.
type htmlForm struct {
	action *url.URL
	method string
	fields []formControl // text, password, hidden, radio and checkbox inputs, textareas
	submit []formControl // submit buttons (button elements and input type=submit)
}

// formControl is one named control of a form.
type formControl struct {
	typ, name, value string
	checked          bool
}

func (f *htmlForm) has(name string) bool {
	for _, c := range f.fields {
		if c.name == name {
			return true
		}
	}
	return false
}

// choice finds the submit button or radio button named name with the value, or the first one when
// value is empty.
func (f *htmlForm) choice(name, value string) (formControl, bool) {
	for _, cs := range [][]formControl{f.submit, f.fields} {
		for _, c := range cs {
			if c.name == name && (c.typ == "submit" || c.typ == "radio") && (value == "" || c.value == value) {
				return c, true
			}
		}
	}
	return formControl{}, false
}

// values are what a browser sends for the form when button (a submit or a radio) is chosen: every
// text, password and hidden field, the checked boxes, and the chosen control.
func (f *htmlForm) values(chosen formControl) url.Values {
	v := url.Values{}
	for _, c := range f.fields {
		switch c.typ {
		case "radio", "checkbox":
			if c.checked && !(c.typ == "radio" && c.name == chosen.name) {
				v.Add(c.name, c.value)
			}
		default:
			v.Add(c.name, c.value)
		}
	}
	if chosen.name != "" {
		v.Add(chosen.name, chosen.value)
	}
	return v
}

func (f *htmlForm) request(ctx context.Context, v url.Values) (*http.Request, error) {
	if strings.EqualFold(f.method, http.MethodGet) {
		u := *f.action
		u.RawQuery = v.Encode()
		return http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.action.String(), strings.NewReader(v.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req, nil
}

// next decides what to do on a page: sign in, allow, or choose the patient. It answers the form to
// send, its values, and what it did.
func (p *htmlPage) next(o *devLoginOptions, loggedIn bool) (*htmlForm, url.Values, string, error) {
	for _, f := range p.forms {
		if f.has("username") {
			if loggedIn {
				return nil, nil, "", fmt.Errorf("the login was refused: %s", p.reason())
			}
			v := f.values(mainSubmit(f))
			v.Set("username", o.user)
			v.Set("password", o.password)
			return f, v, "login", nil
		}
	}
	// Consent before the patient: the consent form carries the chosen patient as a hidden field.
	for _, f := range p.forms {
		if c, ok := f.choice("consent", "approve"); ok {
			return f, f.values(c), "allowed " + o.scope, nil
		}
	}
	var offered []string
	for _, f := range p.forms {
		// A patient is a submit button (name=patient value=ID), a radio button, or a form of its
		// own with a hidden patient field.
		if c, ok := f.choice("patient", o.patient); ok {
			v := f.values(c)
			if c.typ == "radio" { // the radio chooses; the form's own submit button sends
				for k, vs := range f.values(mainSubmit(f)) {
					if k != "patient" {
						v[k] = vs
					}
				}
			}
			return f, v, "chose patient " + c.value, nil
		}
		for _, c := range f.fields {
			if c.name == "patient" && c.typ == "hidden" && c.value != "" && (o.patient == "" || c.value == o.patient) {
				return f, f.values(mainSubmit(f)), "chose patient " + c.value, nil
			}
		}
		for _, c := range append(f.submit, f.fields...) {
			if c.name == "patient" && c.value != "" {
				offered = append(offered, c.value)
			}
		}
	}
	if len(offered) > 0 {
		return nil, nil, "", fmt.Errorf("patient %q is not offered by the picker (it offers %s)", o.patient, strings.Join(offered, ", "))
	}
	if p.isPicker() {
		return nil, nil, "", fmt.Errorf("the patient picker offers no patient: %s", p.reason())
	}
	return nil, nil, "", fmt.Errorf("no login, consent or patient form on the page: %s", p.reason())
}

func (p *htmlPage) isPicker() bool {
	for _, f := range p.forms {
		if f.has("q") {
			return true
		}
	}
	return false
}

func (p *htmlPage) reason() string {
	if len(p.alerts) > 0 {
		return strings.Join(p.alerts, "; ")
	}
	return "the page says nothing more"
}

// mainSubmit is the button that submits a form for what it is for: an unnamed one, else the first
// that does not search, cancel or deny.
func mainSubmit(f *htmlForm) formControl {
	for _, c := range f.submit {
		if c.name == "" {
			return c
		}
	}
	for _, c := range f.submit {
		if c.name != "find" && c.name != "cancel" && c.value != "cancel" && c.value != "deny" {
			return c
		}
	}
	return formControl{}
}

// parsePage reads the forms of a page served at base.
func parsePage(body []byte, base *url.URL) (*htmlPage, error) {
	doc, err := html.Parse(strings.NewReader(string(body)))
	if err != nil {
		return nil, fmt.Errorf("the page is not HTML: %w", err)
	}
	p := &htmlPage{}
	var form *htmlForm
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.DataAtom {
			case atom.Title:
				p.title = strings.TrimSpace(text(n))
			case atom.Form:
				action, err := base.Parse(attr(n, "action"))
				if err != nil {
					action = base
				}
				form = &htmlForm{action: action, method: attr(n, "method")}
				p.forms = append(p.forms, form)
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c)
				}
				form = nil
				return
			case atom.Input, atom.Button, atom.Textarea:
				if form != nil && attr(n, "name") != "" {
					addControl(form, n)
				}
			}
			if attr(n, "role") == "alert" {
				p.alerts = append(p.alerts, strings.TrimSpace(text(n)))
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return p, nil
}

func addControl(f *htmlForm, n *html.Node) {
	_, checked := attrOK(n, "checked")
	c := formControl{typ: strings.ToLower(attr(n, "type")), name: attr(n, "name"), value: attr(n, "value"), checked: checked}
	switch n.DataAtom {
	case atom.Button:
		if c.typ == "" || c.typ == "submit" {
			c.typ = "submit"
			f.submit = append(f.submit, c)
		}
	case atom.Textarea:
		c.typ, c.value = "textarea", text(n)
		f.fields = append(f.fields, c)
	default:
		switch c.typ {
		case "submit", "image":
			c.typ = "submit"
			f.submit = append(f.submit, c)
		case "button", "reset", "file":
		case "":
			c.typ = "text"
			f.fields = append(f.fields, c)
		default:
			if c.typ == "checkbox" && c.value == "" {
				c.value = "on"
			}
			f.fields = append(f.fields, c)
		}
	}
}

func attr(n *html.Node, key string) string {
	v, _ := attrOK(n, key)
	return v
}

func attrOK(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}
