package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Payers: a Claim bundle by search, 837P by operation and by command, 835 back by operation and
// by command, through a whole Billy with authorization on.

// seedPayerWorld stores a practice that can bill (NPI, EIN, ZIP+4), a payer, a subscriber with
// a dependent, their coverages and two active Claims, plus a Claim whose practice cannot bill.
func seedPayerWorld(w *boundaryWorld) {
	claim := func(id, patient, cov, provider, code string) string {
		return `{"resourceType":"Claim","id":"` + id + `","status":"active","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claim-type","code":"professional"}]},"use":"claim",` +
			`"patient":{"reference":"Patient/` + patient + `"},"created":"2026-03-06","provider":{"reference":"Organization/` + provider + `"},"priority":{"coding":[{"code":"normal"}]},` +
			`"insurance":[{"sequence":1,"focal":true,"coverage":{"reference":"Coverage/` + cov + `"}}],` +
			`"diagnosis":[{"sequence":1,"diagnosisCodeableConcept":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"E11.9"}]}}],` +
			`"item":[{"sequence":1,"diagnosisSequence":[1],"productOrService":{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"` + code + `"}]},"servicedDate":"2026-03-05",` +
			`"locationCodeableConcept":{"coding":[{"system":"https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set","code":"11"}]},"quantity":{"value":1},"net":{"value":125,"currency":"USD"}}]}`
	}
	for _, r := range []string{
		`{"resourceType":"Organization","id":"practice","name":"Billy Family Practice","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1922334455"},{"system":"urn:oid:2.16.840.1.113883.4.4","value":"12-3456789"}],"telecom":[{"system":"phone","value":"555-0100"}],"address":[{"line":["100 Main Street"],"city":"Springfield","state":"IL","postalCode":"62701-1234"}]}`,
		`{"resourceType":"Organization","id":"nonpi","name":"Unbillable Clinic"}`,
		`{"resourceType":"Organization","id":"payer","name":"Demo Health Plan","identifier":[{"system":"http://example.org/payer-id","value":"DHP01"}]}`,
		`{"resourceType":"Patient","id":"maria","name":[{"family":"Rivera","given":["Maria"]}],"gender":"female","birthDate":"1968-04-12","address":[{"line":["42 Elm Street"],"city":"Springfield","state":"IL","postalCode":"62704"}]}`,
		`{"resourceType":"Patient","id":"leo","name":[{"family":"Rivera","given":["Leo"]}],"gender":"male","birthDate":"2015-09-01","address":[{"line":["42 Elm Street"],"city":"Springfield","state":"IL","postalCode":"62704"}]}`,
		`{"resourceType":"Coverage","id":"cov-maria","status":"active","subscriberId":"DHP-778899","beneficiary":{"reference":"Patient/maria"},"payor":[{"reference":"Organization/payer"}]}`,
		`{"resourceType":"Coverage","id":"cov-leo","status":"active","subscriberId":"DHP-778899","subscriber":{"reference":"Patient/maria"},"beneficiary":{"reference":"Patient/leo"},"relationship":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/subscriber-relationship","code":"child"}]},"payor":[{"reference":"Organization/payer"}]}`,
		claim("c1", "maria", "cov-maria", "practice", "99213"),
		claim("c2", "leo", "cov-leo", "practice", "99214"),
		strings.Replace(claim("bad", "maria", "cov-maria", "nonpi", "99213"), `"active"`, `"draft"`, 1),
	} {
		w.put(r, nil)
	}
}

func TestPayerClaimBundle(t *testing.T) {
	t.Parallel()
	w := newBoundaryWorldWith(t, false, false)
	seedPayerWorld(w)
	payer := w.mintAs("payer-app", "payer-app", "system/*.rs")
	q := "Claim?status=active&_lastUpdated=gt2020-01-01&_include=Claim:patient&_include=Claim:insurance&_include=Claim:provider&_include:iterate=Coverage:payor"
	a := w.do(payer, http.MethodGet, q, nil, http.Header{"Prefer": {"handling=strict"}})
	var b struct {
		Entry []struct {
			Resource struct{ ResourceType, ID string }
			Search   struct{ Mode string }
		}
	}
	if err := json.Unmarshal(a.body, &b); a.status != 200 || err != nil {
		t.Fatalf("%d %s", a.status, a.body)
	}
	got := map[string]string{}
	for _, e := range b.Entry {
		got[e.Resource.ResourceType+"/"+e.Resource.ID] = e.Search.Mode
	}
	want := map[string]string{"Claim/c1": "match", "Claim/c2": "match", "Patient/maria": "include", "Patient/leo": "include",
		"Coverage/cov-maria": "include", "Coverage/cov-leo": "include", "Organization/practice": "include", "Organization/payer": "include"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("bundle:\n got  %v\n want %v", got, want)
	}
}

func TestPayer837And835(t *testing.T) {
	t.Parallel()
	w := newBoundaryWorldWith(t, false, false)
	seedPayerWorld(w)
	biller := w.admin

	// One claim: the X12 text.
	resp, body := w.raw(biller, http.MethodGet, w.base+"/fhir/Claim/c1/$x12-837p", http.Header{"Accept": {"application/edi-x12"}})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/edi-x12" || !bytes.HasPrefix(body, []byte("ISA*00*")) ||
		!bytes.Contains(body, []byte("CLM*B000000001*125***11:B:1*Y*A*Y*Y~")) {
		t.Fatalf("Claim/c1/$x12-837p: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	// Missing data: 422 listing every element, no file.
	a := w.do(biller, http.MethodGet, "Claim/bad/$x12-837p", nil, nil)
	if a.status != 422 || !bytes.Contains(a.body, []byte("no NPI")) || !bytes.Contains(a.body, []byte("no tax id")) ||
		!bytes.Contains(a.body, []byte("status is draft")) || !bytes.Contains(a.body, []byte(`"expression":["Organization.address"]`)) {
		t.Errorf("Claim/bad/$x12-837p: %d %s", a.status, a.body)
	}
	// A batch by search criteria, the dependent in a 2000C.
	a = w.do(biller, http.MethodPost, "Claim/$x12-837p?status=active", nil, nil)
	if a.status != 200 || bytes.Count(a.body, []byte("~CLM*")) != 2 || !bytes.Contains(a.body, []byte("~PAT*19~NM1*QC*1*RIVERA*LEO~")) {
		t.Errorf("POST Claim/$x12-837p?status=active: %d %s", a.status, a.body)
	}
	// Not inside a Bundle: its body is X12, not a resource.
	bundle := `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Claim/c1/$x12-837p"}}]}`
	if a := w.do(biller, http.MethodPost, "", []byte(bundle), nil); a.status != 400 || !bytes.Contains(a.body, []byte("cannot be nested")) {
		t.Errorf("$x12-837p in a transaction: %d %s", a.status, a.body)
	}
	// Another patient's token reaches neither claim.
	other := w.mint("patient/*.rs", "a")
	if a := w.do(other, http.MethodGet, "Claim/c1/$x12-837p", nil, nil); a.status != 403 {
		t.Errorf("a's token: %d %s", a.status, a.body)
	}

	// The command writes the file; the claims keep their patient control numbers.
	var out, errb bytes.Buffer
	if err := run(t.Context(), []string{"claims", "x12", "--since", "2020-01-01", "--payer", "payer"}, w.env, &out, &errb); err != nil {
		t.Fatalf("claims x12: %v %s", err, errb.String())
	}
	if !bytes.Contains(out.Bytes(), []byte("CLM*B000000001*")) || !bytes.Contains(out.Bytes(), []byte("CLM*B000000002*")) || !bytes.HasSuffix(out.Bytes(), []byte("~")) {
		t.Errorf("claims x12 wrote:\n%s", out.String())
	}
	out.Reset()
	errb.Reset()
	if err := run(t.Context(), []string{"claims", "x12", "--claim", "bad"}, w.env, &out, &errb); err == nil || out.Len() != 0 || !strings.Contains(errb.String(), "no NPI") {
		t.Errorf("claims x12 of a claim missing data: %v, stdout %q, stderr %s", err, out.String(), errb.String())
	}

	// The 835 comes back: c1 paid, c2 denied, one claim Billy never sent.
	era := "ISA*00*          *00*          *ZZ*DHP01          *ZZ*BILLY          *260320*0900*^*00501*000000777*0*P*:~" +
		"GS*HP*DHP01*BILLY*20260320*0900*777*X*005010X221A1~ST*835*0001~BPR*I*100*C*CHK************20260320~TRN*1*CHK100200*1512345678~" +
		"N1*PR*DEMO HEALTH PLAN~REF*2U*DHP01~N1*PE*BILLY FAMILY PRACTICE*XX*1922334455~LX*1~" +
		"CLP*B000000001*1*125*100*25*12*PCLM1*11*1~CAS*PR*1*25~SVC*HC:99213*125*100**1~DTM*472*20260305~" +
		"CLP*B000000002*4*125*0*0*12*PCLM2*11*1~CAS*CO*50*125~" +
		"CLP*ZZUNKNOWN*1*50*0*50*12*PCLM3*11*1~CAS*PR*1*50~SE*16*0001~GE*1*777~IEA*1*000000777~"
	if a := w.do(w.mint("patient/*.cruds", "maria"), http.MethodPost, "$x12-835", []byte(era), http.Header{"Content-Type": {"application/edi-x12"}}); a.status != 403 {
		t.Errorf("a patient's token imports an 835: %d %s", a.status, a.body)
	}
	a = w.do(biller, http.MethodPost, "$x12-835", []byte(era), http.Header{"Content-Type": {"application/edi-x12"}})
	if a.status != 200 || !bytes.Contains(a.body, []byte("Claim/c1 paid")) || !bytes.Contains(a.body, []byte("Claim/c2 denied")) ||
		!bytes.Contains(a.body, []byte(`"severity":"warning","code":"not-found","diagnostics":"CLP ZZUNKNOWN`)) {
		t.Fatalf("$x12-835: %d %s", a.status, a.body)
	}
	c1 := w.do(biller, http.MethodGet, "Claim/c1", nil, nil)
	if !bytes.Contains(c1.body, []byte(`{"system":"https://iambilly.github.io/billy/fhir/CodeSystem/claim-payment","code":"paid"}`)) {
		t.Errorf("Claim/c1 not tagged paid: %s", c1.body)
	}
	if a := w.do(biller, http.MethodGet, "ClaimResponse?request=Claim/c2", nil, nil); !bytes.Contains(a.body, []byte(`"disposition":"denied"`)) {
		t.Errorf("c2's ClaimResponse: %s", a.body)
	}
	// The command imports the same 835: nothing changes, and it says so.
	file := filepath.Join(t.TempDir(), "era.x12")
	if err := os.WriteFile(file, []byte(era), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(t.Context(), []string{"remit", "import", file}, w.env, &out, io.Discard); err != nil || !strings.Contains(out.String(), "imported before: nothing changed") {
		t.Errorf("remit import: %v %s", err, out.String())
	}
	if again := w.do(biller, http.MethodGet, "Claim/c1", nil, nil); !bytes.Equal(again.body, c1.body) {
		t.Errorf("a second import changed Claim/c1")
	}
}
