package x12_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	moovfile "github.com/moov-io/x12/pkg/file"
	moovloops "github.com/moov-io/x12/pkg/loops"
	moov837p "github.com/moov-io/x12/rule_5010_837p"

	"github.com/iambilly/billy/adapters/x12"
	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/pg"
	"github.com/iambilly/billy/internal/pg/pgtest"
)

const base = "http://billy.test/fhir"

// world is a migrated database with a store, and the X12 service over it.
type world struct {
	t     *testing.T
	pool  *pgxpool.Pool
	store *store.Store
	v     *resource.Validator
	svc   *x12.Service
	now   time.Time
}

func newWorld(t *testing.T) *world {
	t.Helper()
	pool, err := pg.Connect(t.Context(), pgtest.NewDB(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	v, err := resource.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 9, 14, 30, 0, 0, time.UTC)
	st := store.New(pool, store.WithBase(base), store.WithClock(func() time.Time { return now }))
	w := &world{t: t, pool: pool, store: st, v: v, now: now}
	w.svc = &x12.Service{Pool: pool, Store: st, Validate: v.Validate, Now: func() time.Time { return now },
		Settings: x12.Settings{Envelope: x12.Envelope{SenderQualifier: "ZZ", SenderID: "BILLYTEST", ReceiverQualifier: "ZZ", Usage: "T"},
			ContactPhone: "555-0100", Base: base}}
	return w
}

// put stores resources (JSON with their ids) as given.
func (w *world) put(resources ...string) {
	w.t.Helper()
	err := w.store.InTx(context.Background(), func(tx *store.Tx) error {
		for _, r := range resources {
			tree, err := jsontree.Parse([]byte(r))
			if err != nil {
				return fmt.Errorf("%s: %w", r, err)
			}
			wr, err := store.Prepare(w.v.Validate, base, resource.Type(tree), tree.GetString("id"), tree)
			if err != nil {
				return fmt.Errorf("%.80s: %w", r, err)
			}
			if _, _, err := tx.Update(context.Background(), wr, 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// seed stores a practice, a rendering doctor, a payer, a subscriber with a dependent, and their
// coverages.
func (w *world) seed() {
	w.put(
		`{"resourceType":"Organization","id":"practice","name":"Billy Family Practice","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1922334455"},{"system":"urn:oid:2.16.840.1.113883.4.4","value":"12-3456789"}],"telecom":[{"system":"phone","value":"555-0100"}],"address":[{"line":["100 Main Street"],"city":"Springfield","state":"IL","postalCode":"62701-1234"}]}`,
		`{"resourceType":"Organization","id":"payer","name":"Demo Health Plan","identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"NIIP"}]},"system":"urn:payer","value":"DHP01"}]}`,
		`{"resourceType":"Practitioner","id":"doc","name":[{"family":"Quinn","given":["Avery"]}],"identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1811223344"}]}`,
		`{"resourceType":"Patient","id":"maria","name":[{"use":"official","family":"Rivera","given":["María","Elena"]}],"gender":"female","birthDate":"1968-04-12","address":[{"line":["42 Elm Street"],"city":"Springfield","state":"IL","postalCode":"62704"}]}`,
		`{"resourceType":"Patient","id":"leo","name":[{"family":"Rivera","given":["Leo"]}],"gender":"male","birthDate":"2015-09-01","address":[{"line":["42 Elm Street"],"city":"Springfield","state":"IL","postalCode":"62704"}]}`,
		`{"resourceType":"Coverage","id":"cov-maria","status":"active","subscriberId":"DHP-778899","beneficiary":{"reference":"Patient/maria"},"relationship":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/subscriber-relationship","code":"self"}]},"payor":[{"reference":"Organization/payer"}],"class":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/coverage-class","code":"group"}]},"value":"GRP-1001"}]}`,
		`{"resourceType":"Coverage","id":"cov-leo","status":"active","subscriberId":"DHP-778899","subscriber":{"reference":"Patient/maria"},"beneficiary":{"reference":"Patient/leo"},"relationship":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/subscriber-relationship","code":"child"}]},"payor":[{"reference":"Organization/payer"}]}`,
	)
}

// claimJSON is an active professional Claim with diagnoses and lines.
func claimJSON(id, patient, coverage string, diagnoses []string, lines string, extra string) string {
	var dx []string
	for i, d := range diagnoses {
		dx = append(dx, fmt.Sprintf(`{"sequence":%d,"diagnosisCodeableConcept":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"%s"}]}}`, i+1, d))
	}
	return `{"resourceType":"Claim","id":"` + id + `","status":"active","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claim-type","code":"professional"}]},"use":"claim",` +
		`"patient":{"reference":"Patient/` + patient + `"},"created":"2026-03-06","provider":{"reference":"Organization/practice"},"priority":{"coding":[{"code":"normal"}]},` +
		`"insurance":[{"sequence":1,"focal":true,"coverage":{"reference":"Coverage/` + coverage + `"}}],"diagnosis":[` + strings.Join(dx, ",") + `],"item":[` + lines + `]` + extra + `}`
}

func line(seq int, code string, mods []string, units int, charge string, pointers ...int) string {
	var ms []string
	for _, m := range mods {
		ms = append(ms, `{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"`+m+`"}]}`)
	}
	ps, _ := json.Marshal(pointers)
	mod := ""
	if len(ms) > 0 {
		mod = `,"modifier":[` + strings.Join(ms, ",") + `]`
	}
	return fmt.Sprintf(`{"sequence":%d,"diagnosisSequence":%s,"productOrService":{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"%s"}]}%s,"servicedDate":"2026-03-05",`+
		`"locationCodeableConcept":{"coding":[{"system":"https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set","code":"11"}]},"quantity":{"value":%d},"net":{"value":%s,"currency":"USD"}}`,
		seq, ps, code, mod, units, charge)
}

// moovParse parses an 837P with moov-io/x12's 005010X222A1 rules, validates it, and returns the
// loops and segments it found, as "loop>loop: SEGMENT".
func moovParse(t *testing.T, out []byte) []string {
	t.Helper()
	ic := moovfile.NewInterchange(&moov837p.InterchangeRule)
	n, err := ic.Parse(string(out), ":")
	if err != nil {
		t.Fatalf("moov-io/x12 cannot parse Billy's 837P: %v\n%s", err, out)
	}
	if n != len(out) {
		t.Fatalf("moov-io/x12 parsed %d of %d bytes:\n%s", n, len(out), out[n:])
	}
	if err := ic.Validate(nil); err != nil {
		t.Fatalf("moov-io/x12 finds Billy's 837P invalid: %v", err)
	}
	if got := ic.String(":"); got != string(out) {
		t.Errorf("moov-io/x12 writes back another 837P:\nBilly: %s\nmoov:  %s", out, got)
	}
	var paths []string
	var walk func(prefix string, ls []moovloops.CompositeLoop)
	walk = func(prefix string, ls []moovloops.CompositeLoop) {
		for _, l := range ls {
			p := strings.TrimPrefix(prefix+">"+l.Name(), ">")
			for _, s := range l.Loop.Segments {
				paths = append(paths, p+": "+s.String(":"))
			}
			walk(p, l.SubLoops)
		}
	}
	for _, g := range ic.FunctionalGroups {
		for _, ts := range g.TransactionSets {
			walk("", ts.Loops)
		}
	}
	return paths
}

func has(paths []string, prefix string) bool {
	return slices.ContainsFunc(paths, func(p string) bool { return strings.HasPrefix(p, prefix) })
}

func TestGenerate837PRoundTrip(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.seed()
	eight := []string{"E11.9", "I10", "E78.5", "J45.909", "M54.5", "R51.9", "Z00.00", "K21.9"}
	twelve := append(slices.Clone(eight), "F41.1", "G47.00", "N39.0", "L70.0")
	rendering := `,"careTeam":[{"sequence":1,"provider":{"reference":"Practitioner/doc"},"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claimcareteamrole","code":"primary"}]}}],"total":{"value":450.75,"currency":"USD"}`
	lines := line(1, "99214", []string{"25"}, 1, "180", 1, 2, 3, 4) + "," + line(2, "20610", []string{"RT", "59"}, 3, "270.75", 5, 8)
	w.put(
		claimJSON("one", "maria", "cov-maria", []string{"E11.9"}, line(1, "99213", nil, 1, "125.50", 1), ""),
		claimJSON("eight", "maria", "cov-maria", eight, lines, rendering),
		claimJSON("twelve", "leo", "cov-leo", twelve, strings.Replace(lines, "5,8]", "5,12]", 1), rendering),
	)
	// The patient is the subscriber: validated and written back by moov-io/x12's 005010X222A1
	// rules, every loop and segment accounted for.
	out, b, err := x12.Generate(t.Context(), w.pool, x12.StoreSource{Store: w.store}, w.svc.Settings, []string{"one", "eight"}, w.now)
	if err != nil {
		t.Fatal(err)
	}
	paths := moovParse(t, out)
	want := []string{
		"1000A: NM1*41*2*BILLY FAMILY PRACTICE*****46*BILLYTEST~", "1000A: PER*IC*BILLY FAMILY PRACTICE*TE*5550100~",
		"1000B: NM1*40*2*DEMO HEALTH PLAN*****46*DHP01~",
		"2000A: HL*1**20*1~",
		"2000A>2010AA: NM1*85*2*BILLY FAMILY PRACTICE*****XX*1922334455~", "2000A>2010AA: N3*100 MAIN STREET~", "2000A>2010AA: N4*SPRINGFIELD*IL*627011234~", "2000A>2010AA: REF*EI*123456789~",
		"2000A>2000B: HL*2*1*22*0~", "2000A>2000B: SBR*P*18*GRP-1001******CI~",
		"2000A>2000B>2010BA: NM1*IL*1*RIVERA*MARIA*ELENA***MI*DHP-778899~", "2000A>2000B>2010BA: N3*42 ELM STREET~", "2000A>2000B>2010BA: N4*SPRINGFIELD*IL*62704~", "2000A>2000B>2010BA: DMG*D8*19680412*F~",
		"2000A>2000B>2010BB: NM1*PR*2*DEMO HEALTH PLAN*****PI*DHP01~",
		"2000A>2000B>2300: CLM*B000000001*125.5***11:B:1*Y*A*Y*Y~", "2000A>2000B>2300: HI*ABK:E119~",
		"2000A>2000B>2300>2400: LX*1~", "2000A>2000B>2300>2400: SV1*HC:99213*125.5*UN*1***1~", "2000A>2000B>2300>2400: DTP*472*D8*20260305~",
		"2000A>2000B>2300: CLM*B000000002*450.75***11:B:1*Y*A*Y*Y~", "2000A>2000B>2300: HI*ABK:E119*ABF:I10*ABF:E785*ABF:J45909*ABF:M545*ABF:R519*ABF:Z0000*ABF:K219~",
		"2000A>2000B>2300>2310B: NM1*82*1*QUINN*AVERY****XX*1811223344~",
		"2000A>2000B>2300>2400: LX*1~", "2000A>2000B>2300>2400: SV1*HC:99214:25*180*UN*1***1:2:3:4~", "2000A>2000B>2300>2400: DTP*472*D8*20260305~",
		"2000A>2000B>2300>2400: LX*2~", "2000A>2000B>2300>2400: SV1*HC:20610:RT:59*270.75*UN*3***5:8~", "2000A>2000B>2300>2400: DTP*472*D8*20260305~",
	}
	if diff := strings.Join(paths, "\n"); diff != strings.Join(want, "\n") {
		t.Errorf("loops and segments as moov-io/x12 read them:\n%s\nwant:\n%s", diff, strings.Join(want, "\n"))
	}
	if !strings.HasPrefix(string(out), "ISA*00*          *00*          *ZZ*BILLYTEST      *ZZ*DHP01          *260309*1430*^*00501*000000001*0*T*:~GS*HC*BILLYTEST*DHP01*20260309*1430*1*X*005010X222A1~ST*837*0001*005010X222A1~BHT*0019*00*000000001*20260309*1430*CH~") ||
		!strings.HasSuffix(string(out), "~SE*32*0001~GE*1*1~IEA*1*000000001~") {
		t.Errorf("envelope:\n%s", out)
	}
	if b.Interchange != 1 || b.Group != 1 {
		t.Errorf("control numbers %d %d", b.Interchange, b.Group)
	}

	// The patient is not the subscriber, with twelve diagnoses: moov-io/x12 v0.1.0 reads neither
	// (its HI takes 8 codes, its 2000C rules contradict the guide), so the segments are checked
	// one by one, with the HL hierarchy. Sent again, "eight" keeps its patient control number.
	out2, b2, err := x12.Generate(t.Context(), w.pool, x12.StoreSource{Store: w.store}, w.svc.Settings, []string{"twelve", "eight"}, w.now)
	if err != nil {
		t.Fatal(err)
	}
	segs, err := x12.Segments(out2)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range segs {
		got = append(got, strings.Join(s, "*"))
	}
	wantSegs := []string{
		"ISA*00*          *00*          *ZZ*BILLYTEST      *ZZ*DHP01          *260309*1430*^*00501*000000002*0*T*:",
		"GS*HC*BILLYTEST*DHP01*20260309*1430*2*X*005010X222A1", "ST*837*0001*005010X222A1", "BHT*0019*00*000000002*20260309*1430*CH",
		"NM1*41*2*BILLY FAMILY PRACTICE*****46*BILLYTEST", "PER*IC*BILLY FAMILY PRACTICE*TE*5550100", "NM1*40*2*DEMO HEALTH PLAN*****46*DHP01",
		"HL*1**20*1", "NM1*85*2*BILLY FAMILY PRACTICE*****XX*1922334455", "N3*100 MAIN STREET", "N4*SPRINGFIELD*IL*627011234", "REF*EI*123456789",
		// Maria as the subscriber of Leo's coverage: no claims of her own here, a child level.
		"HL*2*1*22*1", "SBR*P********CI", "NM1*IL*1*RIVERA*MARIA*ELENA***MI*DHP-778899", "DMG*D8*19680412*F", "NM1*PR*2*DEMO HEALTH PLAN*****PI*DHP01",
		"HL*3*2*23*0", "PAT*19", "NM1*QC*1*RIVERA*LEO", "N3*42 ELM STREET", "N4*SPRINGFIELD*IL*62704", "DMG*D8*20150901*M",
		"CLM*B000000003*450.75***11:B:1*Y*A*Y*Y",
		"HI*ABK:E119*ABF:I10*ABF:E785*ABF:J45909*ABF:M545*ABF:R519*ABF:Z0000*ABF:K219*ABF:F411*ABF:G4700*ABF:N390*ABF:L700",
		"NM1*82*1*QUINN*AVERY****XX*1811223344",
		"LX*1", "SV1*HC:99214:25*180*UN*1***1:2:3:4", "DTP*472*D8*20260305",
		"LX*2", "SV1*HC:20610:RT:59*270.75*UN*3***5:12", "DTP*472*D8*20260305",
		// Maria's own claim: another subscriber level.
		"HL*4*1*22*0", "SBR*P*18*GRP-1001******CI", "NM1*IL*1*RIVERA*MARIA*ELENA***MI*DHP-778899", "N3*42 ELM STREET", "N4*SPRINGFIELD*IL*62704", "DMG*D8*19680412*F",
		"NM1*PR*2*DEMO HEALTH PLAN*****PI*DHP01",
		"CLM*B000000002*450.75***11:B:1*Y*A*Y*Y",
	}
	if len(got) < len(wantSegs) || strings.Join(got[:len(wantSegs)], "\n") != strings.Join(wantSegs, "\n") {
		t.Errorf("segments:\n%s\nwant (first %d):\n%s", strings.Join(got, "\n"), len(wantSegs), strings.Join(wantSegs, "\n"))
	}
	if n := len(got); got[n-3] != fmt.Sprintf("SE*%d*0001", n-4) || got[n-2] != "GE*1*2" || got[n-1] != "IEA*1*000000002" {
		t.Errorf("trailer: %v", got[n-3:])
	}
	if b2.Interchange != 2 || b2.Group != 2 {
		t.Errorf("second batch's control numbers %d %d, want 2 2", b2.Interchange, b2.Group)
	}
}

func TestGenerate837PMissingData(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.seed()
	w.put(
		`{"resourceType":"Organization","id":"bare","name":"Bare Clinic"}`,
		`{"resourceType":"Organization","id":"nopayerid","name":"Mystery Payer"}`,
		`{"resourceType":"Patient","id":"anon","name":[{"family":"Doe"}]}`,
		`{"resourceType":"Coverage","id":"cov-anon","status":"active","beneficiary":{"reference":"Patient/anon"},"payor":[{"reference":"Organization/nopayerid"}]}`,
		strings.Replace(claimJSON("bad", "anon", "cov-anon", []string{"E11.9"}, line(1, "99213", nil, 1, "100", 1), ""), "Organization/practice", "Organization/bare", 1),
		claimJSON("good", "maria", "cov-maria", []string{"E11.9"}, line(1, "99213", nil, 1, "100", 1), ""),
		strings.Replace(claimJSON("draft", "maria", "cov-maria", []string{"E11.9"}, line(1, "99213", nil, 1, "100", 1), ""), `"active"`, `"draft"`, 1),
	)
	_, _, err := x12.Generate(t.Context(), w.pool, x12.StoreSource{Store: w.store}, w.svc.Settings, []string{"good", "bad", "draft"}, w.now)
	fe, ok := fhir.AsError(err)
	if !ok || !errors.Is(err, fhir.ErrUnprocessable) {
		t.Fatalf("want a 422 listing what is missing, got %v", err)
	}
	var got []string
	for _, is := range fe.Issues {
		got = append(got, strings.Join(is.Expression, ",")+" "+is.Diagnostics)
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"Organization.identifier Claim/bad: the billing provider Organization/bare has no NPI",
		"Organization.identifier Claim/bad: the billing provider Organization/bare has no tax id",
		"Organization.address Claim/bad: no address",
		"Organization.identifier Claim/bad: the payer Organization/nopayerid has no payer id",
		"Coverage.subscriberId Claim/bad: Coverage/cov-anon has no member id",
		"Patient.address Claim/bad: no address",
		"Patient.birthDate Claim/bad", "Patient.gender Claim/bad",
		"Claim.status Claim/draft: status is draft",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing issue %q in:\n%s", want, all)
		}
	}
	if strings.Contains(all, "Claim/good") {
		t.Errorf("issues about the good claim:\n%s", all)
	}
	// Nothing numbered, nothing recorded.
	var n int
	if err := w.pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM x12_claims) + (SELECT count(*) FROM x12_interchanges)`).Scan(&n); err != nil || n != 0 {
		t.Errorf("a refused batch left %d rows (%v)", n, err)
	}
	_, b, err := x12.Generate(t.Context(), w.pool, x12.StoreSource{Store: w.store}, w.svc.Settings, []string{"good"}, w.now)
	if err != nil || b.Interchange != 1 {
		t.Errorf("after a refused batch the next interchange is %v (%v), want 1", b, err)
	}
}
