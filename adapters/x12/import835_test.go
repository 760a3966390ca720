package x12_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/iambilly/billy/adapters/x12"
	"github.com/iambilly/billy/fhir"
)

// remittance builds an 835 interchange (one transaction set) around body, the segments after TRN:
// the envelope's counts and control numbers come out right, as a payer's would.
func remittance(ctl, paid, trace, body string) []byte {
	segs := []string{
		"ST*835*0001",
		"BPR*I*" + paid + "*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*888888888*DA*7654321*20260320",
		"TRN*1*" + trace + "*1512345678",
		"DTM*405*20260319",
		"N1*PR*DEMO HEALTH PLAN", "N3*PO BOX 100", "N4*SPRINGFIELD*IL*62701", "REF*2U*DHP01", "PER*BL*CLAIMS*TE*5550199",
		"N1*PE*BILLY FAMILY PRACTICE*XX*1922334455", "N3*100 MAIN STREET", "N4*SPRINGFIELD*IL*627011234", "REF*TJ*123456789",
	}
	segs = append(segs, strings.Split(strings.TrimSpace(body), "\n")...)
	segs = append(segs, fmt.Sprintf("SE*%d*0001", len(segs)+1))
	return []byte("ISA*00*          *00*          *ZZ*DHP01          *ZZ*BILLYTEST      *260320*0900*^*00501*" + ctl + "*0*P*:~\n" +
		"GS*HP*DHP01*BILLYTEST*20260320*0900*" + strings.TrimLeft(ctl, "0") + "*X*005010X221A1~\n" +
		strings.Join(segs, "~\n") + "~\n" + "GE*1*" + strings.TrimLeft(ctl, "0") + "~\nIEA*1*" + ctl + "~\n")
}

// paidDeniedPartial settles the three claims of the world (one paid, eight denied, twelve
// partially paid) and one claim Billy never sent.
var paidDeniedPartial = `
LX*1
TS3*1922334455*11*20261231*4*1106.75
CLP*B000000001*1*125.5*100*20*12*PAYER0001*11*1
NM1*QC*1*RIVERA*MARIA****MI*DHP-778899
DTM*232*20260305
SVC*HC:99213*125.5*100**1
DTM*472*20260305
CAS*CO*45*5.5
CAS*PR*2*20
AMT*B6*120
LQ*HE*N130
CLP*B000000002*4*450.75*0*0*12*PAYER0002*11*1
CAS*CO*50*450.75
NM1*QC*1*RIVERA*MARIA****MI*DHP-778899
MOA***MA130
CLP*B000000003*1*450.75*200*0*12*PAYER0003*11*1
NM1*QC*1*RIVERA*LEO
SVC*HC:99214:25*180*150**1
CAS*CO*45*30
SVC*HC:20610:RT:59*270.75*50**3
CAS*CO*45*20
CLP*B000000099*1*80*60*20*12*PAYER0004*11*1
CAS*PR*1*20
NM1*QC*1*NOBODY*KNOWN
PLB*1922334455*20261231*WO:PAYER0009*10`

// settle sends the world's three claims, so that Billy has given them patient control numbers.
func settle(t *testing.T) *world {
	w := newWorld(t)
	w.seed()
	lines := line(1, "99214", []string{"25"}, 1, "180", 1) + "," + line(2, "20610", []string{"RT", "59"}, 3, "270.75", 1)
	w.put(
		claimJSON("one", "maria", "cov-maria", []string{"E11.9"}, line(1, "99213", nil, 1, "125.50", 1), ""),
		claimJSON("eight", "maria", "cov-maria", []string{"I10"}, lines, ""),
		claimJSON("twelve", "leo", "cov-leo", []string{"J45.909"}, lines, ""),
	)
	for _, id := range []string{"one", "eight", "twelve"} { // in this order: B000000001, 2, 3
		if _, _, err := x12.Generate(t.Context(), w.pool, x12.StoreSource{Store: w.store}, w.svc.Settings, []string{id}, w.now); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w *world) importer() *x12.Importer {
	return &x12.Importer{Pool: w.pool, Store: w.store, Validate: w.v.Validate, Base: base, Source: x12.StoreSource{Store: w.store}}
}

func (w *world) read(typ, id string) map[string]any {
	w.t.Helper()
	v, err := w.store.Read(w.t.Context(), typ, id)
	if err != nil {
		w.t.Fatalf("read %s/%s: %v", typ, id, err)
	}
	var m map[string]any
	_ = json.Unmarshal(v.Content, &m)
	return m
}

func (w *world) versions() map[string]string {
	out := map[string]string{}
	for _, id := range []string{"one", "eight", "twelve"} {
		out[id] = fmt.Sprint(w.read("Claim", id)["meta"])
	}
	var n int
	_ = w.pool.QueryRow(w.t.Context(), `SELECT count(*) FROM resources WHERE type IN ('ClaimResponse', 'PaymentReconciliation')`).Scan(&n)
	out["responses"] = fmt.Sprint(n)
	return out
}

func tagOf(claim map[string]any) string {
	m, _ := claim["meta"].(map[string]any)
	tags, _ := m["tag"].([]any)
	for _, t := range tags {
		t := t.(map[string]any)
		if t["system"] == x12.SystemClaimPayment {
			return t["code"].(string)
		}
	}
	return ""
}

func TestImport835(t *testing.T) {
	t.Parallel()
	w := settle(t)
	im := w.importer()
	data := remittance("000000101", "360", "EFT0001", paidDeniedPartial)
	rep, err := im.Import(t.Context(), data, w.now)
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]string{}
	for _, c := range rep.Claims {
		outcomes[c.PCN] = c.Claim + " " + c.Outcome
	}
	want := map[string]string{"B000000001": "one paid", "B000000002": "eight denied", "B000000003": "twelve partially-paid", "B000000099": " unknown-claim"}
	if fmt.Sprint(outcomes) != fmt.Sprint(want) || len(rep.Reconciliations) != 1 || rep.Already {
		t.Errorf("report %+v", rep)
	}
	for id, tag := range map[string]string{"one": "paid", "eight": "denied", "twelve": "partially-paid"} {
		if got := tagOf(w.read("Claim", id)); got != tag {
			t.Errorf("Claim/%s tagged %q, want %q", id, got, tag)
		}
	}
	// The paid claim's ClaimResponse: linked, totals, adjudication per line with CARC and RARC.
	var paid x12.ClaimReport
	for _, c := range rep.Claims {
		if c.Claim == "one" {
			paid = c
		}
	}
	cr := w.read("ClaimResponse", paid.ClaimResponse)
	js, _ := json.Marshal(cr)
	for _, want := range []string{`"request":{"reference":"Claim/one"}`, `"patient":{"reference":"Patient/maria"}`, `"insurer":{"reference":"Organization/payer"}`,
		`"outcome":"complete"`, `"value":"B000000001"`, `"value":"PAYER0001"`, `"code":"45"`, `"code":"CO"`, `"code":"2"`, `"code":"PR"`,
		`"text":"RARC N130"`, `"itemSequence":1`, `"code":"memberliability"`, `"amount":{"currency":"USD","value":100}`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("ClaimResponse lacks %s: %s", want, js)
		}
	}
	// The payment: every CLP in its details, the unknown claim included, and the PLB.
	pr := w.read("PaymentReconciliation", rep.Reconciliations[0])
	pjs, _ := json.Marshal(pr)
	for _, want := range []string{`"paymentAmount":{"currency":"USD","value":360}`, `"value":"EFT0001"`, `"paymentDate":"2026-03-20"`,
		`"value":"B000000099"`, `"code":"adjustment"`, `"response":{"reference":"ClaimResponse/` + paid.ClaimResponse + `"}`} {
		if !strings.Contains(string(pjs), want) {
			t.Errorf("PaymentReconciliation lacks %s: %s", want, pjs)
		}
	}
	if details, _ := pr["detail"].([]any); len(details) != 5 {
		t.Errorf("%d details, want 5 (four claims and the PLB)", len(details))
	}
	// The report names the unknown claim as a warning.
	issues := rep.Issues()
	if !strings.Contains(fmt.Sprint(issues), "B000000099") {
		t.Errorf("issues do not report the unknown claim: %v", issues)
	}

	// The same 835 again, and the same payment in another interchange: nothing changes.
	before := w.versions()
	again, err := im.Import(t.Context(), data, w.now)
	if err != nil || !again.Already {
		t.Errorf("second import: %+v %v", again, err)
	}
	if _, err := im.Import(t.Context(), remittance("000000102", "360", "EFT0001", paidDeniedPartial), w.now); err != nil {
		t.Fatal(err)
	}
	if after := w.versions(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("re-import changed things:\n before %v\n after  %v", before, after)
	}

	// A reversal of the paid claim, in a later payment.
	rev := `CLP*B000000001*22*-125.5*-100*-20*12*PAYER0001*11*1
CAS*PR*2*-20`
	rrep, err := im.Import(t.Context(), remittance("000000103", "0", "EFT0002", rev), w.now)
	if err != nil {
		t.Fatal(err)
	}
	if got := tagOf(w.read("Claim", "one")); got != "reversed" || rrep.Claims[0].Outcome != "reversed" {
		t.Errorf("after the reversal: tag %q, report %+v", got, rrep.Claims)
	}
}

func TestParse835Refuses(t *testing.T) {
	t.Parallel()
	good := string(remittance("000000101", "360", "EFT0001", paidDeniedPartial))
	for name, data := range map[string]string{
		"not X12":         "hello",
		"short ISA":       "ISA*00*~",
		"bad amount":      strings.Replace(good, "CLP*B000000001*1*125.5", "CLP*B000000001*1*12x.5", 1),
		"bad date":        strings.Replace(good, "DTM*472*20260305", "DTM*472*2026-03-05", 1),
		"wrong SE count":  strings.Replace(good, "SE*", "SE*9", 1),
		"wrong IEA":       strings.Replace(good, "IEA*1*000000101", "IEA*1*000000999", 1),
		"an 837":          strings.Replace(good, "ST*835", "ST*837", 1),
		"CAS group":       strings.Replace(good, "CAS*CO*45*5.5", "CAS*XX*45*5.5", 1),
		"unknown segment": strings.Replace(good, "LX*1", "ZZZ*1", 1),
		"no trace":        strings.Replace(good, "TRN*1*EFT0001", "TRN*1*", 1),
	} {
		_, err := x12.Parse835([]byte(data))
		if !errors.Is(err, fhir.ErrInvalid) {
			t.Errorf("%s: %v, want a 400", name, err)
		}
	}
	rs, err := x12.Parse835([]byte(good))
	if err != nil || len(rs) != 1 || len(rs[0].Claims) != 4 || rs[0].Paid != 36000 || len(rs[0].Claims[2].Lines) != 2 {
		t.Errorf("the good one: %+v %v", rs, err)
	}
}

func FuzzParse835(f *testing.F) {
	f.Add(remittance("000000101", "360", "EFT0001", paidDeniedPartial))
	f.Add(remittance("000000103", "0", "EFT0002", "CLP*B1*22*-1*-1*0\nCAS*PR*2*-1"))
	f.Add([]byte("ISA*00*          *00*          *ZZ*A              *ZZ*B              *260320*0900*^*00501*000000001*0*P*:~IEA*0*000000001~"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := x12.Parse835(data)
		if err != nil {
			if !errors.Is(err, fhir.ErrInvalid) {
				t.Fatalf("an error that is not a 400: %v", err)
			}
			return
		}
		for _, r := range rs {
			if r.Trace == "" {
				t.Fatal("a remittance without a trace number")
			}
			for _, c := range r.Claims {
				if c.PCN == "" || c.Status == "" {
					t.Fatal("a claim without its control number or status")
				}
			}
		}
	})
}
