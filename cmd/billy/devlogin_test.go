package main

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestDevLogin is finding A4 of issue 10: the printed authorization example could not be run as
// printed. dev-login runs the real flow against a running server: login, patient picker, consent,
// redirect, code exchange with PKCE; the token it prints reads the chosen patient.
func TestDevLogin(t *testing.T) {
	t.Parallel()
	env := testEnv(t)
	if err := run(t.Context(), []string{"seed"}, env, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	base := startApp(t, env)
	var out, log bytes.Buffer
	if err := run(t.Context(), []string{"dev-login", "--base", base, "--password", demoPassword}, env, &out, &log); err != nil {
		t.Fatalf("dev-login: %v\n%s", err, log.String())
	}
	for _, want := range []string{"Sign in page: login", "chose patient", "allowed openid fhirUser launch/patient patient/*.rs", "token for patient"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, log.String())
		}
	}
	token := strings.TrimSpace(out.String())
	if strings.Count(token, ".") != 2 {
		t.Fatalf("not a JWT on stdout: %q", out.String())
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/fhir/Patient?name=rivera", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(body.String(), `"family":"Rivera"`) {
		t.Errorf("read with the token: %d %.300s", resp.StatusCode, body.String())
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--password", "wrong-password"}, "the login was refused: unknown user or wrong password"},
		{[]string{"--password", demoPassword, "--patient", "nobody"}, `patient "nobody" is not offered`},
		{[]string{"--password", demoPassword, "--client", "nope"}, "client"},
		{[]string{}, "--password"},
	} {
		err := run(t.Context(), append([]string{"dev-login", "--base", base}, tc.args...), env, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}

// TestDevLoginFindsFormsByFieldNames checks dev-login against other layouts of the same pages (the
// pages change: each patient in a form of its own, cancel buttons): it goes by field names.
func TestDevLoginFindsFormsByFieldNames(t *testing.T) {
	t.Parallel()
	base, _ := url.Parse("http://billy.test/oauth2/authorize")
	o := &devLoginOptions{user: "demo", password: "pw", scope: "openid patient/*.rs"}
	for _, tc := range []struct {
		name, page, patient string
		loggedIn            bool
		want                url.Values
		what                string
	}{{
		name: "login below a cancel form",
		page: `<form method="post" action="/oauth2/authorize"><input type="hidden" name="state" value="s"><button name="consent" value="deny">Cancel</button></form>
			<form method="post" action="/oauth2/authorize"><input type="hidden" name="client_id" value="demo-app"><input type="hidden" name="ticket" value="">
			<label>User <input name="username"></label><label>Password <input type="password" name="password"></label><button type="submit">Sign in</button></form>`,
		want: url.Values{"client_id": {"demo-app"}, "ticket": {""}, "username": {"demo"}, "password": {"pw"}},
		what: "login",
	}, {
		name: "each patient in its own form",
		page: `<form method="post" action="/oauth2/authorize"><input type="hidden" name="ticket" value="t"><input name="q"><button name="find" value="1">Find</button></form>
			<form method="post" action="/oauth2/authorize"><input type="hidden" name="ticket" value="t"><input type="hidden" name="patient" value="p1"><button type="submit">Ana</button></form>
			<form method="post" action="/oauth2/authorize"><input type="hidden" name="ticket" value="t"><input type="hidden" name="patient" value="p2"><button type="submit">Ben</button></form>
			<form method="post" action="/oauth2/authorize"><input type="hidden" name="ticket" value="t"><button name="cancel" value="1">Cancel</button></form>`,
		patient: "p2", loggedIn: true,
		want: url.Values{"ticket": {"t"}, "patient": {"p2"}},
		what: "chose patient p2",
	}, {
		name: "patients as buttons of one form",
		page: `<form method="post"><input type="hidden" name="ticket" value="t"><input name="q" value=""><button name="find" value="1">Find</button>
			<ul><li><button name="patient" value="p1">Ana</button></li><li><button name="patient" value="p2">Ben</button></li></ul></form>`,
		loggedIn: true,
		want:     url.Values{"ticket": {"t"}, "q": {""}, "patient": {"p1"}},
		what:     "chose patient p1",
	}, {
		name: "patients as radio buttons",
		page: `<form method="post"><input type="hidden" name="ticket" value="t"><input type="radio" name="patient" value="p1" checked><input type="radio" name="patient" value="p2">
			<button type="submit" name="choose" value="1">Continue</button></form>`,
		patient: "p2", loggedIn: true,
		want: url.Values{"ticket": {"t"}, "patient": {"p2"}, "choose": {"1"}},
		what: "chose patient p2",
	}, {
		name: "consent with cancel, allow last",
		page: `<form method="post"><input type="hidden" name="ticket" value="t"><input type="hidden" name="patient" value="p1"><button name="consent" value="deny">Deny</button></form>
			<form method="post"><input type="hidden" name="ticket" value="t"><input type="hidden" name="patient" value="p1"><button name="consent" value="approve">Allow</button></form>`,
		loggedIn: true,
		want:     url.Values{"ticket": {"t"}, "patient": {"p1"}, "consent": {"approve"}},
		what:     "allowed openid patient/*.rs",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			page, err := parsePage([]byte("<!doctype html><title>T</title><body>"+tc.page), base)
			if err != nil {
				t.Fatal(err)
			}
			opt := *o
			opt.patient = tc.patient
			f, v, what, err := page.next(&opt, tc.loggedIn)
			if err != nil {
				t.Fatal(err)
			}
			if what != tc.what || v.Encode() != tc.want.Encode() || f.action.String() != "http://billy.test/oauth2/authorize" {
				t.Errorf("got %q %s to %s, want %q %s", what, v.Encode(), f.action, tc.what, tc.want.Encode())
			}
		})
	}
	// A login page shown again after signing in is a refusal, with the page's reason.
	page, _ := parsePage([]byte(`<p role="alert">unknown user or wrong password</p><form method="post"><input name="username"><input type="password" name="password"></form>`), base)
	if _, _, _, err := page.next(o, true); err == nil || !strings.Contains(err.Error(), "unknown user or wrong password") {
		t.Errorf("second login page: %v", err)
	}
}
