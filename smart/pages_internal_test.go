package smart

import (
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDescribeScope(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"patient/Claim.rs":                           "Read this patient's claims",
		"patient/Claim.read":                         "Read this patient's claims",
		"patient/Observation.cu":                     "Create and update this patient's observations",
		"patient/Observation.write":                  "Create, update and delete this patient's observations",
		"patient/AllergyIntolerance.s":               "Search this patient's allergy intolerances",
		"patient/ImagingStudy.r":                     "Read this patient's imaging studies",
		"patient/ExplanationOfBenefit.rs":            "Read this patient's explanations of benefit",
		"patient/Patient.r":                          "Read this patient's demographic record",
		"patient/*.rs":                               "Read all of this patient's records",
		"patient/Observation.rs?category=laboratory": "Read this patient's observations (only those with category=laboratory)",
		"user/Patient.rs":                            "Read patients you have access to",
		"user/*.cruds":                               "Read, create, update and delete all records you have access to",
		"system/Claim.cud":                           "Create, update and delete all claims",
		"system/*.rs":                                "Read all records",
		"fhirUser":                                   "Your identity (fhirUser)",
		"offline_access":                             "Stay signed in (offline access)",
		"openid":                                     "Confirm who you are (OpenID Connect)",
		"launch/patient":                             "Know which patient you choose",
		"something-else":                             "Another permission: something-else",
		"patient/Nonsense.rs":                        "Another permission: patient/Nonsense.rs",
	}
	for s, want := range tests {
		if got := describeScope(s); got != want {
			t.Errorf("%s: %q, want %q", s, got, want)
		}
	}
	got := describeScopes([]string{"patient/*.read", "openid", "patient/*.rs"})
	if diff := cmp.Diff([]string{"Read all of this patient's records", "Confirm who you are (OpenID Connect)"}, got); diff != "" {
		t.Errorf("describeScopes (-want +got):\n%s", diff)
	}
}

func TestSummarizePatient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, json string
		want       PatientSummary
	}{
		{"official name, MR identifier not first",
			`{"resourceType":"Patient","name":[{"use":"old","family":"Former"},{"use":"official","prefix":["Dr"],"given":["Ann","Marie"],"family":"One","suffix":["Jr"]}],
			"gender":"female","birthDate":"1980-02-03","identifier":[{"value":"999"},{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"value":"MRN-1"}]}`,
			PatientSummary{ID: "p", Name: "Dr Ann Marie One Jr", BirthDate: "1980-02-03", Sex: "female", MRN: "MRN-1"}},
		{"text wins; first identifier without an MR",
			`{"resourceType":"Patient","name":[{"text":"  Bo Two ","family":"Ignored"}],"identifier":[{"system":"s"},{"value":"A-1"},{"value":"A-2"}]}`,
			PatientSummary{ID: "p", Name: "Bo Two", MRN: "A-1"}},
		{"usual over unmarked", `{"resourceType":"Patient","name":[{"family":"Plain"},{"use":"usual","given":["Nick"]}]}`,
			PatientSummary{ID: "p", Name: "Nick"}},
		{"nothing", `{"resourceType":"Patient"}`, PatientSummary{ID: "p"}},
	}
	for _, tt := range tests {
		got, err := SummarizePatient("p", []byte(tt.json))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
	if _, err := SummarizePatient("p", []byte(`{"name":"not a list"}`)); err == nil {
		t.Error("a malformed Patient must be an error")
	}
}

// forms splits a page into its forms' HTML.
var formRE = regexp.MustCompile(`(?s)<form\b.*?</form>`)

func renderPage(t *testing.T, d pageData) string {
	t.Helper()
	rec := httptest.NewRecorder()
	writePage(rec, 200, "'self'", d)
	if ct := rec.Header().Get("Content-Security-Policy"); !strings.Contains(ct, "default-src 'none'") {
		t.Errorf("CSP: %q", ct)
	}
	return rec.Body.String()
}

// hostile is text a patient record or a user name could hold.
const hostile = `<script>alert(1)</script>"><img src=x onerror=alert(2)>&amp;`

func TestPickerPage(t *testing.T) {
	t.Parallel()
	page := renderPage(t, pageData{Title: "Choose a patient", Step: "patient", Action: "/oauth2/authorize", Client: "App " + hostile,
		User: "doc" + hostile, Query: hostile, Hidden: map[string]string{"state": hostile, "ticket": "t"},
		Patients: []PatientSummary{
			{ID: "p1", Name: "Ann One", BirthDate: "1980-02-03", Sex: "female", MRN: "MRN-1"},
			{ID: "p2", Name: hostile, MRN: hostile},
		}})
	for _, bad := range []string{"<script>", "<img", `onerror=alert(2)>`} {
		if strings.Contains(page, bad) {
			t.Errorf("unescaped %q in the page:\n%s", bad, page)
		}
	}
	if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") || !strings.Contains(page, "&amp;amp;") {
		t.Errorf("hostile text must be shown escaped:\n%s", page)
	}
	if !strings.Contains(page, `<p id="user">Signed in as <b>doc&lt;script&gt;`) {
		t.Errorf("who is signed in:\n%s", page)
	}
	forms := formRE.FindAllString(page, -1)
	if len(forms) != 4 {
		t.Fatalf("%d forms, want one per patient, the search and Cancel:\n%s", len(forms), page)
	}
	buttonRE := regexp.MustCompile(`<button[^>]*\bid="([^"]+)"`)
	var layout [][]string
	for _, f := range forms {
		var ids []string
		for _, m := range buttonRE.FindAllStringSubmatch(f, -1) {
			ids = append(ids, m[1])
		}
		layout = append(layout, ids)
		if !strings.Contains(f, `name="ticket" value="t"`) || !strings.Contains(f, `name="state" value="&lt;script&gt;`) {
			t.Errorf("every form carries the request and the ticket: %s", f)
		}
	}
	if diff := cmp.Diff([][]string{{"patient-p1"}, {"patient-p2"}, {"find"}, {"cancel"}}, layout); diff != "" {
		t.Errorf("buttons per form (-want +got):\n%s", diff)
	}
	if !strings.Contains(forms[2], `id="q"`) || strings.Contains(forms[0], `id="q"`) {
		t.Error("the search field has a form of its own")
	}
	if !strings.Contains(forms[3], `name="cancel"`) {
		t.Errorf("cancel: %s", forms[3])
	}
	for _, want := range []string{`<span class="name">Ann One</span>`, `<span class="birth">born 1980-02-03</span>`, `<span class="sex">female</span>`,
		`<span class="mrn">MRN MRN-1</span>`, `<span class="birth">birth date unknown</span>`, `<span class="sex">sex unknown</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the picker lacks %s:\n%s", want, page)
		}
	}
}

func TestConsentPage(t *testing.T) {
	t.Parallel()
	scopes := []string{"openid", "fhirUser", "patient/Claim.rs", "patient/Observation.cu", "offline_access"}
	page := renderPage(t, pageData{Title: "Allow access?", Step: "consent", Action: "/oauth2/authorize", Client: "App", User: "doc",
		Hidden:  map[string]string{"ticket": "t", "patient": "p-123"},
		Patient: &PatientSummary{ID: "p-123", Name: hostile, BirthDate: "1980-02-03"}, Scopes: scopes, Permissions: describeScopes(scopes)})
	if strings.Contains(page, "<script>") || strings.Contains(page, "<img") {
		t.Errorf("unescaped patient name:\n%s", page)
	}
	who := regexp.MustCompile(`(?s)<p id="patient">.*?</p>`).FindString(page)
	if !strings.Contains(who, "&lt;script&gt;") || !strings.Contains(who, "born 1980-02-03") || strings.Contains(who, "p-123") {
		t.Errorf("the patient must be named with the birth date, never by id: %s", who)
	}
	list := regexp.MustCompile(`(?s)<ul id="scopes">(.*?)</ul>`).FindStringSubmatch(page)
	want := "<li>Confirm who you are (OpenID Connect)</li><li>Your identity (fhirUser)</li><li>Read this patient&#39;s claims</li>" +
		"<li>Create and update this patient&#39;s observations</li><li>Stay signed in (offline access)</li>"
	if list == nil || list[1] != want {
		t.Errorf("permissions in words: %v", list)
	}
	details := regexp.MustCompile(`(?s)<details id="raw-scopes">.*?</details>`).FindString(page)
	for _, s := range scopes {
		if !strings.Contains(details, "<code>"+s+"</code>") {
			t.Errorf("the scope %s is missing from the details: %s", s, details)
		}
	}
	if strings.Contains(details, " open") {
		t.Error("the scope strings are folded away")
	}
	if !strings.Contains(page, `id="approve"`) || !strings.Contains(page, `id="deny"`) || !strings.Contains(page, `<p id="user">Signed in as <b>doc</b>`) {
		t.Errorf("consent page:\n%s", page)
	}
	missing := renderPage(t, pageData{Step: "consent", MissingPatient: true, Scopes: scopes, Permissions: describeScopes(scopes)})
	if !strings.Contains(missing, "cannot be found") {
		t.Errorf("a launch patient without a record:\n%s", missing)
	}
}
