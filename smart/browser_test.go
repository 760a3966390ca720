package smart_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iambilly/billy/internal/npmtest"
	"github.com/iambilly/billy/smart"
)

// The browser test runs a real SMART app: the SMART JS client (npm fhirclient) in Debian's headless
// Chromium, driven by playwright-core from testdata/browser/drive.js. Its npm packages are pinned in
// testdata/browser/package.json (and package-lock.json) and installed into the user's cache, never
// into the repository; scripts/browser-deps.sh installs chromium, node and npm.

const (
	// browserEHRScope and browserStandaloneScope are what the app asks for in each kind of launch.
	browserEHRScope        = "launch openid fhirUser patient/*.rs"
	browserStandaloneScope = "launch/patient openid fhirUser offline_access patient/*.rs"
	// browserRunTimeout bounds one launch in the browser, from Chromium's start to the app's result.
	browserRunTimeout = 90 * time.Second
)

// TestBrowserLaunch drives fhirclient in Chromium through an EHR launch and a standalone launch:
// Billy's login page, its patient picker (standalone only), its consent page, then the app's redirect
// URI, where fhirclient exchanges the code (PKCE S256, CORS) and the app reads its patient and
// searches that patient's Claims with the token. On the way it reads the picker and the consent
// page as a person sees them (names, with their HTML shown as text; birth date, sex and MRN; who is
// signed in; the permissions in words) and checks that each choice is a form of its own. A third
// launch cancels at the picker, which must bring the app back an access_denied with its state.
func TestBrowserLaunch(t *testing.T) {
	t.Parallel()
	chromium := npmtest.Tool(t, "chromium")
	npmtest.Tool(t, "node")
	npmtest.Tool(t, "npm")
	// --legacy-peer-deps: fhirclient's isomorphic-webcrypto lists React Native as a peer, which the
	// browser bundle never uses (it would add 200 packages).
	modules := npmtest.Modules(t, filepath.Join("testdata", "browser"), []string{"fhirclient/build/fhir-client.js", "playwright-core/package.json"}, "--legacy-peer-deps")

	e := newEnv(t)
	admin := e.mint("system/*.cruds", "")
	wantClaims := []string{
		e.create(admin, claimJSON(e.p1, "institutional", "2024-03-01")),
		e.create(admin, claimJSON(e.p1, "professional", "2024-04-15")),
	}
	slices.Sort(wantClaims)
	e.create(admin, claimJSON(e.p2, "professional", "2024-05-20")) // must not reach the app
	enc := e.create(admin, `{"resourceType":"Encounter","status":"finished",`+
		`"class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/`+e.p1+`"}}`)

	app := newBrowserApp(t, e, modules)

	// What the pages must show. The picker lists both patients, each in a form of its own.
	choice := func(id, name, birth, sex, mrn string) pickerPatient {
		return pickerPatient{ID: id, Name: name, Birth: birth, Sex: sex, MRN: mrn, FormButtons: []string{"patient-" + id}}
	}
	wantPicker := &pickerView{
		User: "Signed in as doc",
		Patients: []pickerPatient{
			choice(e.p1, patient1Name, "born 1980-02-03", "female", "MRN MRN-0001"),
			choice(e.p2, patient2Name, "born 1975", "male", "MRN ACC-<22>"),
		},
		FirstButtonIsAPatient: true,
		SearchFormButtons:     []string{"find"},
		CancelFormButtons:     []string{"cancel"},
	}
	slices.SortFunc(wantPicker.Patients, func(a, b pickerPatient) int { return strings.Compare(a.ID, b.ID) })
	consentFor := func(scope string, permissions ...string) *consentView {
		return &consentView{User: "Signed in as doc", PatientName: patient1Name, PatientBirth: "born 1980-02-03",
			Permissions: permissions, RawScopes: strings.Fields(scope), RawScopesFolded: true, Buttons: []string{"approve", "deny"}}
	}
	standaloneURL := func(*testing.T) string { return app.origin + "/launch.html?standalone=1" }

	tests := []struct {
		name          string
		launchURL     func(t *testing.T) string
		cancelAt      string
		wantSteps     []string
		wantEncounter string
		wantRefresh   bool
		wantPages     browserPages
	}{
		{
			name: "ehr",
			launchURL: func(t *testing.T) string {
				launch := e.ehrLaunch(t, `{"patient":"`+e.p1+`","encounter":"`+enc+`"}`)
				return app.origin + "/launch.html?" + url.Values{"iss": {e.fhir}, "launch": {launch}}.Encode()
			},
			wantSteps:     []string{"login", "consent", "result"},
			wantEncounter: enc,
			wantPages: browserPages{Consent: consentFor(browserEHRScope, "Open with the patient and encounter the EHR chose",
				"Confirm who you are (OpenID Connect)", "Your identity (fhirUser)", "Read all of this patient's records")},
		},
		{
			name:        "standalone",
			launchURL:   standaloneURL,
			wantSteps:   []string{"login", "picker", "consent", "result"},
			wantRefresh: true,
			wantPages: browserPages{Picker: wantPicker, Consent: consentFor(browserStandaloneScope, "Know which patient you choose",
				"Confirm who you are (OpenID Connect)", "Your identity (fhirUser)", "Stay signed in (offline access)", "Read all of this patient's records")},
		},
		{
			name:      "cancel at the picker",
			launchURL: standaloneURL,
			cancelAt:  "picker",
			wantSteps: []string{"login", "picker", "cancel"},
			wantPages: browserPages{Picker: wantPicker},
		},
	}
	// One after the other: each starts a Chromium, and the machine has two cores.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := app.drive(t, chromium, tt.launchURL(t), e.p1, tt.cancelAt)
			if run.Pages.Picker != nil {
				slices.SortFunc(run.Pages.Picker.Patients, func(a, b pickerPatient) int { return strings.Compare(a.ID, b.ID) })
				run.Pages.Picker.FirstButtonIsAPatient = strings.HasPrefix(run.Pages.Picker.FirstButton, "patient-")
				run.Pages.Picker.FirstButton = ""
			}
			if diff := cmp.Diff(tt.wantPages, run.Pages); diff != "" {
				t.Errorf("the pages as the browser showed them (-want +got):\n%s", diff)
			}
			if tt.cancelAt != "" {
				if diff := cmp.Diff(tt.wantSteps, run.Steps); diff != "" {
					t.Errorf("steps (-want +got):\n%s", diff)
				}
				if run.Redirect == nil || run.Redirect.Error != "access_denied" || run.Redirect.State == "" || run.Redirect.State != run.SentState ||
					!strings.Contains(run.AppError, "access_denied") {
					t.Errorf("cancel: back at the app with %+v (the app sent state %q), app error %q", run.Redirect, run.SentState, run.AppError)
				}
				return
			}
			r := run.Result
			got := browserSummary{
				Steps:          run.Steps,
				PatientID:      r.PatientID,
				Patient:        r.Patient.ResourceType + "/" + r.Patient.ID,
				EncounterID:    r.EncounterID,
				FHIRUser:       r.FHIRUser,
				TokenPatient:   r.TokenResponse["patient"],
				TokenEncounter: r.TokenResponse["encounter"],
				AccessToken:    redactedLength(r.TokenResponse["access_token"]) > 0,
				RefreshToken:   redactedLength(r.TokenResponse["refresh_token"]) > 0,
				IDToken:        redactedLength(r.TokenResponse["id_token"]) > 0,
				TokenType:      strings.ToLower(fmt.Sprint(r.TokenResponse["token_type"])),
			}
			for _, n := range r.Patient.Name {
				if n.Use == "official" {
					got.Family = n.Family
				}
			}
			if r.Encounter != nil {
				got.Encounter = r.Encounter.ResourceType + "/" + r.Encounter.ID
			}
			for _, c := range r.Claims {
				got.Claims = append(got.Claims, c.ID)
				if c.ResourceType != "Claim" || c.Patient.Reference != "Patient/"+e.p1 {
					t.Errorf("the Claim search returned %s/%s for %s", c.ResourceType, c.ID, c.Patient.Reference)
				}
			}
			slices.Sort(got.Claims)
			want := browserSummary{
				Steps:        tt.wantSteps,
				PatientID:    e.p1,
				Patient:      "Patient/" + e.p1,
				Family:       "One",
				FHIRUser:     "Practitioner/pr1",
				TokenPatient: e.p1,
				AccessToken:  true,
				RefreshToken: tt.wantRefresh,
				IDToken:      true,
				TokenType:    "bearer",
				Claims:       wantClaims,
			}
			if tt.wantEncounter != "" {
				want.EncounterID = tt.wantEncounter
				want.TokenEncounter = tt.wantEncounter
				want.Encounter = "Encounter/" + tt.wantEncounter
			}
			if diff := cmp.Diff(want, got); diff != "" {
				// The result has its tokens redacted by the app, so it is safe to print.
				t.Errorf("the app's view of the launch (-want +got):\n%s\nresult: %s", diff, run.raw)
			}
		})
	}
}

// browserSummary is what the test checks of one launch, as the app saw it.
type browserSummary struct {
	Steps          []string
	PatientID      string // client.patient.id
	Patient        string // the resource client.patient.read() returned
	Family         string
	EncounterID    string
	Encounter      string
	FHIRUser       string // from the id_token
	TokenPatient   any
	TokenEncounter any
	AccessToken    bool
	RefreshToken   bool
	IDToken        bool
	TokenType      string
	Claims         []string
}

// browserPages is what drive.js read of Billy's pages.
type browserPages struct {
	Picker  *pickerView  `json:"picker"`
	Consent *consentView `json:"consent"`
}

// pickerView is the patient picker as the browser showed it.
type pickerView struct {
	User                  string          `json:"user"`
	Patients              []pickerPatient `json:"patients"`
	FirstButton           string          `json:"firstButton"` // the id of the first button on the page
	FirstButtonIsAPatient bool            `json:"-"`
	SearchFormButtons     []string        `json:"searchFormButtons"` // the ids of the buttons in the form of the search field
	CancelFormButtons     []string        `json:"cancelFormButtons"`
}

// pickerPatient is one choice of the picker: its texts, and the buttons in its form.
type pickerPatient struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Birth       string   `json:"birth"`
	Sex         string   `json:"sex"`
	MRN         string   `json:"mrn"`
	FormButtons []string `json:"formButtons"`
}

// consentView is the consent page as the browser showed it.
type consentView struct {
	User            string   `json:"user"`
	PatientName     string   `json:"patientName"`
	PatientBirth    string   `json:"patientBirth"`
	Permissions     []string `json:"permissions"`
	RawScopes       []string `json:"rawScopes"`
	RawScopesFolded bool     `json:"rawScopesFolded"`
	Buttons         []string `json:"buttons"`
}

// browserRun is drive.js's output.
type browserRun struct {
	Steps []string     `json:"steps"`
	Pages browserPages `json:"pages"`
	// After a cancel: what the app reported, and where Billy sent the browser back.
	AppError string `json:"appError"`
	Redirect *struct {
		Error string `json:"error"`
		State string `json:"state"`
	} `json:"redirect"`
	SentState string `json:"sentState"`
	Result    struct {
		PatientID     string         `json:"patientId"`
		EncounterID   string         `json:"encounterId"`
		FHIRUser      string         `json:"fhirUser"`
		TokenResponse map[string]any `json:"tokenResponse"`
		Patient       struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
			Name         []struct {
				Use    string `json:"use"`
				Family string `json:"family"`
			} `json:"name"`
		} `json:"patient"`
		Encounter *struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		} `json:"encounter"`
		Claims []struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
			Patient      struct {
				Reference string `json:"reference"`
			} `json:"patient"`
		} `json:"claims"`
	} `json:"result"`
	raw string
}

// redactedLength reads the app's stand-in for a token, {"redacted": true, "length": n}.
func redactedLength(v any) int {
	m, ok := v.(map[string]any)
	if !ok || m["redacted"] != true {
		return 0
	}
	n, _ := m["length"].(float64)
	return int(n)
}

// claimJSON is a valid R4 Claim for a patient.
func claimJSON(patient, typ, created string) string {
	return `{"resourceType":"Claim","status":"active",
		"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claim-type","code":"` + typ + `"}]},
		"use":"claim","patient":{"reference":"Patient/` + patient + `"},"created":"` + created + `",
		"provider":{"reference":"Organization/org-1"},
		"priority":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/processpriority","code":"normal"}]},
		"insurance":[{"sequence":1,"focal":true,"coverage":{"reference":"Coverage/cov-1"}}],
		"item":[{"sequence":1,"productOrService":{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"99213"}]}}]}`
}

// ehrLaunch records an EHR launch context as an EMR would and returns the launch id.
func (e *env) ehrLaunch(t *testing.T, body string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth2/launch", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.mint("system/*.rs", ""))
	req.Header.Set("Content-Type", "application/json")
	r := e.do(req)
	if r.status != http.StatusCreated {
		t.Fatalf("POST /oauth2/launch: %d %s", r.status, r.body)
	}
	return r.json(t)["launch"].(string)
}

// browserApp is the SMART app under test, served from its own origin, as a registered public
// client whose redirect URI is the app's index.html.
type browserApp struct {
	origin   string
	modules  string // node_modules with fhirclient and playwright-core
	clientID string
}

func newBrowserApp(t *testing.T, e *env, modules string) *browserApp {
	t.Helper()
	// The listener first: the client's redirect URI, and so config.js, need the app's origin.
	ts := httptest.NewUnstartedServer(nil)
	app := &browserApp{origin: "http://" + ts.Listener.Addr().String(), modules: modules}
	id, _, err := e.srv.CreateClient(t.Context(), smart.ClientSpec{Name: "Browser app", Kind: smart.KindPublic,
		RedirectURIs: []string{app.origin + "/index.html"}, Scopes: strings.Fields("launch launch/patient openid fhirUser offline_access patient/*.rs")})
	if err != nil {
		t.Fatal(err)
	}
	app.clientID = id
	config, err := json.Marshal(map[string]string{"clientId": id, "fhirBase": e.fhir,
		"ehrScope": browserEHRScope, "standaloneScope": browserStandaloneScope})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"/config.js": []byte("window.BILLY_APP = " + string(config) + ";\n")}
	for name, path := range map[string]string{
		"/launch.html":    filepath.Join("testdata", "browser", "launch.html"),
		"/index.html":     filepath.Join("testdata", "browser", "index.html"),
		"/fhir-client.js": filepath.Join(modules, "fhirclient", "build", "fhir-client.js"),
	} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	// Served from memory: http.ServeFile would redirect /index.html to ./ and lose the code.
	ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if r.URL.Path == "/favicon.ico" {
			w.WriteHeader(http.StatusNoContent) // not a 404 in the browser's console
			return
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		ct := "text/html; charset=utf-8"
		if strings.HasSuffix(r.URL.Path, ".js") {
			ct = "text/javascript; charset=utf-8"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b)
	})
	ts.Start()
	t.Cleanup(ts.Close)
	return app
}

// drive runs drive.js on a launch URL and returns what the app wrote. On failure it prints the
// browser's console, page errors and failed requests, and where the screenshot is.
func (a *browserApp) drive(t *testing.T, chromium, launchURL, patient, cancelAt string) browserRun {
	t.Helper()
	// Kept after the test (only written on failure), for a person to look at.
	shot := filepath.Join(os.TempDir(), fmt.Sprintf("billy-browser-%s-%d.png", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano()))
	cfg, err := json.Marshal(map[string]any{
		"nodeModules": a.modules, "chromium": chromium, "userDataDir": t.TempDir(), "url": launchURL,
		"username": "doc", "password": "correct horse battery", "patient": patient,
		"screenshot": shot, "stepTimeoutMs": 20000, "cancelAt": cancelAt,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), browserRunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join("testdata", "browser", "drive.js"), string(cfg))
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	if err != nil {
		t.Fatalf("the browser did not complete the launch (%v after %s): %v\n%s", launchURL, time.Since(start).Round(time.Millisecond), err, stderr.String())
	}
	var run browserRun
	if err := json.Unmarshal(stdout.Bytes(), &run); err != nil {
		t.Fatalf("drive.js output is not JSON: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	run.raw = strings.TrimSpace(stdout.String())
	t.Logf("%s in %s", strings.Join(run.Steps, " → "), time.Since(start).Round(time.Millisecond))
	return run
}
