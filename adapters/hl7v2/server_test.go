package hl7v2

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/store"
	billycrypto "github.com/iambilly/billy/internal/crypto"
	"github.com/iambilly/billy/internal/pg/pgtest"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const testBase = "http://billy.test/fhir"

// startServer runs a listener on a random port until the test ends.
func startServer(t testing.TB) (*Server, string) {
	t.Helper()
	return startServerWith(t, 0)
}

func startServerWith(t testing.TB, committers int) (*Server, string) {
	t.Helper()
	pool := pgtest.NewPool(t)
	v, err := resource.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := billycrypto.ParseKeyring("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Store: store.New(pool, store.WithBase(testBase), store.WithClock(func() time.Time { return testNow })), Pool: pool,
		Validate: v.Validate, Base: testBase, Keys: kr, Now: func() time.Time { return testNow }, Committers: committers}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

// seg writes a segment with the given fields (by HL7 number).
func seg(name string, fields map[int]string) string {
	n := 0
	for k := range fields {
		n = max(n, k)
	}
	parts := make([]string, n+1)
	parts[0] = name
	for k, v := range fields {
		parts[k] = v
	}
	return strings.Join(parts, "|")
}

func msh(typ, ctrl string, extra ...string) string {
	m := "MSH|^~\\&|EPICADT|HOSP|BILLY|BILLING|20260301120000||" + typ + "|" + ctrl + "|P|2.5.1"
	if len(extra) > 0 {
		m += "|||" + strings.Join(extra, "|")
	}
	return m
}

func pid(mrn, family, dob, sex string) string {
	return seg("PID", map[int]string{1: "1", 3: mrn + "^^^HOSP^MR", 5: family + "^Jane^Q", 7: dob, 8: sex, 11: "1 Main St^^Springfield^IL^62701", 13: "555-0100"})
}

func pv1(class, visit, admit, discharge string) string {
	return seg("PV1", map[int]string{1: "1", 2: class, 7: "1234^House^Gregory", 19: visit + "^^^HOSP^VN", 44: admit, 45: discharge})
}

func in1(company, plan, policy string) string {
	return seg("IN1", map[int]string{1: "1", 2: plan, 3: company, 4: "Acme Health", 12: "20260101", 13: "20261231", 17: "SEL", 36: policy})
}

func message(segs ...string) string { return strings.Join(segs, "\r") + "\r" }

// client is one MLLP connection.
type client struct {
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{conn: c, r: bufio.NewReader(c)}
}

// send writes a framed message and reads the acknowledgment.
func (c *client) send(t *testing.T, msg string) *Message {
	t.Helper()
	if _, err := c.conn.Write(Frame([]byte(msg))); err != nil {
		t.Fatal(err)
	}
	return c.read(t)
}

func (c *client) read(t *testing.T) *Message {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	raw, err := ReadFrame(c.r)
	if err != nil {
		t.Fatalf("read ACK: %v", err)
	}
	m, err := Parse(raw)
	if err != nil {
		t.Fatalf("ACK unreadable: %v %q", err, raw)
	}
	return m
}

func ackCode(m *Message) string { return m.Get(m.Seg("MSA"), 1, 0) }

func errLocations(m *Message) []string {
	var out []string
	for _, e := range m.All("ERR") {
		out = append(out, m.Get(e, 2, 0)+" "+m.Get(e, 3, 1))
	}
	return out
}

func read(t *testing.T, s *Server, typ, id string) string {
	t.Helper()
	v, err := s.Store.Read(t.Context(), typ, id)
	if err != nil {
		t.Fatalf("read %s/%s: %v", typ, id, err)
	}
	return string(v.Content)
}

func patientID(mrn string) string { return derivedID("Patient", "urn:billy:hl7:hosp", mrn) }

func TestADTAndSIU(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t)
	c := dial(t, addr)
	encID := derivedID("Encounter", "urn:billy:hl7:hosp", "V100")

	cases := []struct {
		name, msg string
		want      string
		check     func(t *testing.T)
	}{
		{"A01 admit with insurance", message(msh("ADT^A01^ADT_A01", "M1"), "EVN|A01|20260301120000", pid("MRN100", "Doe", "19800115", "F"),
			pv1("I", "V100", "20260301113000", ""), in1("INS01", "PLAN1", "POL123")), AA, func(t *testing.T) {
			p := read(t, s, "Patient", patientID("MRN100"))
			for _, want := range []string{`"family":"Doe"`, `"birthDate":"1980-01-15"`, `"gender":"female"`, `"value":"MRN100"`} {
				if !strings.Contains(p, want) {
					t.Errorf("Patient lacks %s: %s", want, p)
				}
			}
			e := read(t, s, "Encounter", encID)
			for _, want := range []string{`"status":"in-progress"`, `"code":"IMP"`, `"reference":"Patient/` + patientID("MRN100") + `"`, `"start":"2026-03-01T11:30:00Z"`} {
				if !strings.Contains(e, want) {
					t.Errorf("Encounter lacks %s: %s", want, e)
				}
			}
			cov := read(t, s, "Coverage", derivedID("Coverage", patientID("MRN100"), "INS01", "PLAN1", "POL123"))
			if !strings.Contains(cov, `"subscriberId":"POL123"`) || !strings.Contains(cov, `"reference":"Organization/`+derivedID("Organization", "insurer", "INS01")+`"`) {
				t.Errorf("Coverage: %s", cov)
			}
		}},
		{"A08 update", message(msh("ADT^A08^ADT_A01", "M2"), pid("MRN100", "Doe-Smith", "19800115", "F"), pv1("I", "V100", "20260301113000", "")), AA, func(t *testing.T) {
			if p := read(t, s, "Patient", patientID("MRN100")); !strings.Contains(p, "Doe-Smith") || !strings.Contains(p, `"versionId":"2"`) {
				t.Errorf("Patient after A08: %s", p)
			}
		}},
		{"A03 discharge", message(msh("ADT^A03^ADT_A03", "M3"), pid("MRN100", "Doe-Smith", "19800115", "F"), pv1("I", "V100", "20260301113000", "20260302090000")), AA, func(t *testing.T) {
			if e := read(t, s, "Encounter", encID); !strings.Contains(e, `"status":"finished"`) || !strings.Contains(e, `"end":"2026-03-02T09:00:00Z"`) {
				t.Errorf("Encounter after A03: %s", e)
			}
		}},
		{"A04 registration", message(msh("ADT^A04^ADT_A01", "M4"), pid("MRN200", "Roe", "19700101", "M"), pv1("O", "V200", "20260301100000", "")), AA, func(t *testing.T) {
			if e := read(t, s, "Encounter", derivedID("Encounter", "urn:billy:hl7:hosp", "V200")); !strings.Contains(e, `"status":"arrived"`) || !strings.Contains(e, `"code":"AMB"`) {
				t.Errorf("Encounter after A04: %s", e)
			}
		}},
		{"A31 patient update", message(msh("ADT^A31^ADT_A05", "M5"), pid("MRN200", "Roe", "19700102", "M")), AA, func(t *testing.T) {
			if p := read(t, s, "Patient", patientID("MRN200")); !strings.Contains(p, `"birthDate":"1970-01-02"`) {
				t.Errorf("Patient after A31: %s", p)
			}
		}},
		{"A40 merge", message(msh("ADT^A40^ADT_A39", "M6"), pid("MRN200", "Roe", "19700102", "M"), "MRG|MRN100^^^HOSP^MR"), AA, func(t *testing.T) {
			surv := read(t, s, "Patient", patientID("MRN200"))
			if !strings.Contains(surv, `"value":"MRN100"`) || !strings.Contains(surv, `"type":"replaces"`) {
				t.Errorf("surviving Patient: %s", surv)
			}
			merged := read(t, s, "Patient", patientID("MRN100"))
			if !strings.Contains(merged, `"type":"replaced-by"`) || !strings.Contains(merged, `"active":false`) || !strings.Contains(merged, patientID("MRN200")) {
				t.Errorf("merged Patient: %s", merged)
			}
		}},
		{"A08 after the merge keeps the merged identifiers", message(msh("ADT^A08^ADT_A01", "M7"), pid("MRN200", "Roe", "19700102", "M"), pv1("O", "V200", "20260301100000", "")), AA, func(t *testing.T) {
			if surv := read(t, s, "Patient", patientID("MRN200")); !strings.Contains(surv, `"value":"MRN100"`) || !strings.Contains(surv, `"type":"replaces"`) {
				t.Errorf("surviving Patient after A08: %s", surv)
			}
		}},
		{"S12 booked", message(msh("SIU^S12^SIU_S12", "M8"), "SCH|P1|F1^HOSP||||||Checkup^Annual checkup|||^^^202603031000^202603031030", pid("MRN200", "Roe", "19700102", "M"),
			"AIP|1||5678^Wilson^James"), AA, func(t *testing.T) {
			a := read(t, s, "Appointment", derivedID("Appointment", "urn:billy:hl7:hosp", "F1"))
			for _, want := range []string{`"status":"booked"`, `"start":"2026-03-03T10:00:00Z"`, `"end":"2026-03-03T10:30:00Z"`, "Wilson"} {
				if !strings.Contains(a, want) {
					t.Errorf("Appointment lacks %s: %s", want, a)
				}
			}
		}},
		{"S15 cancelled", message(msh("SIU^S15^SIU_S12", "M9"), "SCH|P1|F1^HOSP||||||||||^^^202603031000^202603031030", pid("MRN200", "Roe", "19700102", "M")), AA, func(t *testing.T) {
			if a := read(t, s, "Appointment", derivedID("Appointment", "urn:billy:hl7:hosp", "F1")); !strings.Contains(a, `"status":"cancelled"`) {
				t.Errorf("Appointment after S15: %s", a)
			}
		}},
	}
	for _, tc := range cases {
		ack := c.send(t, tc.msg)
		if got := ackCode(ack); got != tc.want {
			t.Fatalf("%s: ACK %s %v, want %s", tc.name, got, errLocations(ack), tc.want)
		}
		h, _ := ack.Header()
		if h.Type != "ACK" || ack.Get(ack.Seg("MSA"), 2, 0) == "" || h.SendingApp != "BILLY" || h.ReceivingApp != "EPICADT" {
			t.Errorf("%s: ACK header %+v", tc.name, h)
		}
		t.Run(tc.name, tc.check)
	}
}

// TestRejections: AE with ERR naming the field, AR for unsupported or unreadable messages,
// nothing applied, each kept for inspection; duplicates acknowledged without being applied again.
func TestRejections(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t)
	c := dial(t, addr)
	good := message(msh("ADT^A04^ADT_A01", "D1"), pid("MRN300", "Poe", "19900101", "F"), pv1("O", "V300", "", ""))
	if code := ackCode(c.send(t, good)); code != AA {
		t.Fatalf("good message: %s", code)
	}
	if code := ackCode(c.send(t, good)); code != AA {
		t.Fatalf("duplicate: %s", code)
	}
	if p := read(t, s, "Patient", patientID("MRN300")); !strings.Contains(p, `"versionId":"1"`) {
		t.Errorf("the duplicate was applied again: %s", p)
	}
	cases := []struct {
		name, msg, code string
		loc             []string
	}{
		{"date of birth not a date", message(msh("ADT^A01^ADT_A01", "E1"), pid("MRN301", "Bad", "1990-13-45", "F"), pv1("I", "V301", "", "")), AE, []string{"PID^1^7^1^1 102"}},
		{"sex not in table 0001", message(msh("ADT^A01^ADT_A01", "E2"), pid("MRN302", "Bad", "19900101", "Q"), pv1("I", "V302", "", "")), AE, []string{"PID^1^8^1^1 103"}},
		{"admit time not a time", message(msh("ADT^A01^ADT_A01", "E3"), pid("MRN303", "Bad", "19900101", "F"), pv1("I", "V303", "yesterday", "")), AE, []string{"PV1^1^44^1^1 102"}},
		{"no visit number", message(msh("ADT^A01^ADT_A01", "E4"), pid("MRN304", "Bad", "19900101", "F"), pv1("I", "", "", "")), AE, []string{"PV1^1^19^1^1 101"}},
		{"no patient identifier", message(msh("ADT^A01^ADT_A01", "E5"), seg("PID", map[int]string{1: "1", 5: "Doe^J"}), pv1("I", "V305", "", "")), AE, []string{"PID^1^3^1^1 101"}},
		{"insurance without a company", message(msh("ADT^A01^ADT_A01", "E6"), pid("MRN306", "Bad", "19900101", "F"), pv1("I", "V306", "", ""), in1("", "P", "X")), AE, []string{"IN1^1^3^1^1 101"}},
		{"merge without MRG", message(msh("ADT^A40^ADT_A39", "E7"), pid("MRN307", "Bad", "19900101", "F")), AE, []string{"MRG^1^0 100"}},
		{"unsupported type", message(msh("ORU^R01^ORU_R01", "E8"), pid("MRN308", "Bad", "19900101", "F")), AR, []string{"MSH^1^9^1^1 200"}},
		{"unsupported event", message(msh("ADT^A99^ADT_A01", "E9"), pid("MRN309", "Bad", "19900101", "F")), AR, []string{"MSH^1^9^1^2 201"}},
		{"not HL7", "hello world\r", AR, []string{"MSH^1^0 100"}},
		{"bad segment name", message(msh("ADT^A01^ADT_A01", "E10"), "pid|1||MRN310"), AR, []string{"MSH^1^0 100"}},
		{"no control id", message(msh("ADT^A01^ADT_A01", ""), pid("MRN311", "Bad", "19900101", "F")), AR, []string{"MSH^1^10 101"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ack := c.send(t, tc.msg)
			if got := ackCode(ack); got != tc.code {
				t.Errorf("ACK %s, want %s", got, tc.code)
			}
			got := errLocations(ack)
			if strings.Join(got, ",") != strings.Join(tc.loc, ",") {
				t.Errorf("ERR %q, want %q", got, tc.loc)
			}
		})
	}
	for _, mrn := range []string{"MRN301", "MRN302", "MRN303", "MRN304", "MRN306", "MRN307"} {
		if _, err := s.Store.Read(t.Context(), "Patient", patientID(mrn)); !isNotFound(err) {
			t.Errorf("Patient %s of a rejected message was written (%v)", mrn, err)
		}
	}
	kept, err := s.Errors(t.Context(), 100)
	if err != nil || len(kept) != len(cases) {
		t.Fatalf("kept %d rejected messages (%v), want %d", len(kept), err, len(cases))
	}
	// The kept message is sealed, read back whole, and its replay is refused the same way.
	last := kept[len(kept)-1] // E1, the first rejected
	raw, err := s.Message(t.Context(), last.ID)
	if err != nil || string(raw) != cases[0].msg {
		t.Errorf("kept message: %q %v", raw, err)
	}
	var clear bool
	if err := s.Pool.QueryRow(t.Context(), `SELECT position('MRN301'::bytea in message) > 0 FROM hl7_errors WHERE id = $1`, last.ID).Scan(&clear); err != nil || clear {
		t.Errorf("the kept message is stored in clear (%v)", err)
	}
	if res, err := s.Replay(t.Context(), last.ID); err != nil || res.Code != AE {
		t.Errorf("replay of a bad message: %+v %v", res, err)
	}
	if again, _ := s.Errors(t.Context(), 100); len(again) != len(kept) {
		t.Errorf("a failed replay kept the message again: %d rows, was %d", len(again), len(kept))
	}
}

// TestFraming: data outside a frame is NAKed and the stream goes on; a connection dropped
// mid-message applies nothing; enhanced mode answers CA or nothing as MSH-15 asks.
func TestFraming(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t)
	c := dial(t, addr)
	good := message(msh("ADT^A04^ADT_A01", "F1"), pid("MRN400", "Fox", "19900101", "F"), pv1("O", "V400", "", ""))
	if _, err := c.conn.Write(append([]byte("garbage"), Frame([]byte(good))...)); err != nil {
		t.Fatal(err)
	}
	if nak := c.read(t); ackCode(nak) != AR {
		t.Errorf("data outside a frame: %s", ackCode(nak))
	}
	if ack := c.read(t); ackCode(ack) != AA || ack.Get(ack.Seg("MSA"), 2, 0) != "F1" {
		t.Errorf("the message after the garbage: %s", ackCode(ack))
	}
	// Start block inside a message: the broken one is NAKed, the next one applies.
	broken := "\x0b" + message(msh("ADT^A04^ADT_A01", "F2"), pid("MRN401", "Fox", "19900101", "F"))
	next := message(msh("ADT^A04^ADT_A01", "F3"), pid("MRN402", "Fox", "19900101", "F"), pv1("O", "V402", "", ""))
	if _, err := c.conn.Write(append([]byte(broken), Frame([]byte(next))...)); err != nil {
		t.Fatal(err)
	}
	if nak := c.read(t); ackCode(nak) != AR {
		t.Errorf("start block inside a message: %s", ackCode(nak))
	}
	if ack := c.read(t); ackCode(ack) != AA {
		t.Errorf("the message after the broken one: %s", ackCode(ack))
	}
	if _, err := s.Store.Read(t.Context(), "Patient", patientID("MRN401")); !isNotFound(err) {
		t.Errorf("the broken frame was applied (%v)", err)
	}

	// Dropped mid-message.
	d := dial(t, addr)
	full := Frame([]byte(message(msh("ADT^A04^ADT_A01", "F4"), pid("MRN403", "Fox", "19900101", "F"), pv1("O", "V403", "", ""))))
	if _, err := d.conn.Write(full[:len(full)/2]); err != nil {
		t.Fatal(err)
	}
	d.conn.Close()
	// The next message on another connection is acknowledged after the drop was handled.
	if ack := c.send(t, message(msh("ADT^A04^ADT_A01", "F5"), pid("MRN404", "Fox", "19900101", "F"), pv1("O", "V404", "", ""))); ackCode(ack) != AA {
		t.Fatalf("after a dropped connection: %s", ackCode(ack))
	}
	if _, err := s.Store.Read(t.Context(), "Patient", patientID("MRN403")); !isNotFound(err) {
		t.Errorf("half a message was applied (%v)", err)
	}

	// Enhanced mode: NE asks for no acknowledgment, AL for a commit acknowledgment.
	ne := message(msh("ADT^A04^ADT_A01", "F6", "NE", "NE"), pid("MRN405", "Fox", "19900101", "F"), pv1("O", "V405", "", ""))
	al := message(msh("ADT^A04^ADT_A01", "F7", "AL", "NE"), pid("MRN406", "Fox", "19900101", "F"), pv1("O", "V406", "", ""))
	if _, err := c.conn.Write(Frame([]byte(ne))); err != nil {
		t.Fatal(err)
	}
	ack := c.send(t, al)
	if ackCode(ack) != "CA" || ack.Get(ack.Seg("MSA"), 2, 0) != "F7" {
		t.Errorf("enhanced mode: %s for %s", ackCode(ack), ack.Get(ack.Seg("MSA"), 2, 0))
	}
	read(t, s, "Patient", patientID("MRN405"))
}

// TestConcurrentSenders: four connections at once, every message acknowledged AA and applied once.
func TestConcurrentSenders(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t)
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for conn := range 4 {
		c := dial(t, addr)
		wg.Go(func() {
			for i := range 25 {
				mrn := fmt.Sprintf("C%d-%d", conn, i)
				msg := message(msh("ADT^A04^ADT_A01", mrn), pid(mrn, "Par", "19900101", "F"), pv1("O", "V"+mrn, "", ""))
				if _, err := c.conn.Write(Frame([]byte(msg))); err != nil {
					errs <- err.Error()
					return
				}
				_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
				raw, err := ReadFrame(c.r)
				if err != nil {
					errs <- err.Error()
					return
				}
				if m, _ := Parse(raw); m == nil || ackCode(m) != AA || m.Get(m.Seg("MSA"), 2, 0) != mrn {
					errs <- "bad ACK for " + mrn
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	var n int
	if err := s.Pool.QueryRow(t.Context(), `SELECT count(*) FROM hl7_messages`).Scan(&n); err != nil || n != 100 {
		t.Errorf("messages applied: %d %v", n, err)
	}
	for conn := range 4 {
		read(t, s, "Encounter", derivedID("Encounter", "urn:billy:hl7:hosp", fmt.Sprintf("VC%d-24", conn)))
	}
}
