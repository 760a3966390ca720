package hl7v2

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/store"
)

// receiver is an MLLP peer that records DFT messages and answers with code.
type receiver struct {
	mu   sync.Mutex
	got  []string
	code string
	addr string
}

func startReceiver(t *testing.T, code string) *receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r := &receiver{code: code, addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					raw, err := ReadFrame(br)
					if err != nil {
						return
					}
					m, err := Parse(raw)
					if err != nil {
						return
					}
					h, _ := m.Header()
					r.mu.Lock()
					r.got = append(r.got, string(raw))
					code := r.code
					r.mu.Unlock()
					var errs []FieldError
					if code != AA {
						errs = []FieldError{{Segment: "FT1", Seq: 1, Field: 7, Code: "103", Text: "unknown charge code"}}
					}
					_, _ = c.Write(Frame(BuildAck(h, code, errs, testNow)))
				}
			}()
		}
	}()
	return r
}

func (r *receiver) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

const testClaim = `{"resourceType":"Claim","status":"%s","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claim-type","code":"professional"}]},"use":"claim",
"patient":{"reference":"Patient/PATIENT"},"created":"2026-03-06","provider":{"reference":"Organization/practice"},"priority":{"coding":[{"code":"normal"}]},
"insurance":[{"sequence":1,"focal":true,"coverage":{"reference":"Coverage/cov"}}],
"diagnosis":[{"sequence":1,"diagnosisCodeableConcept":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"E11.9"}]}},{"sequence":2,"diagnosisCodeableConcept":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"I10"}]}}],
"item":[{"sequence":1,"diagnosisSequence":[1,2],"productOrService":{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"99213"}]},"servicedDate":"2026-03-05","encounter":[{"reference":"Encounter/ENCOUNTER"}],"quantity":{"value":1},"net":{"value":120.5,"currency":"USD"}},
{"sequence":2,"diagnosisSequence":[1],"productOrService":{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"82947"}]},"servicedDate":"2026-03-05","quantity":{"value":1},"net":{"value":15,"currency":"USD"}}]}`

// TestDFT: a Claim that becomes active is queued once (in its transaction); the DFT^P03 has an FT1
// per line with its diagnoses; a resend after the ACK changes nothing; an AE is final; a receiver
// that is down leaves the Claim queued for the retry.
func TestDFT(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t)
	c := dial(t, addr)
	if code := ackCode(c.send(t, message(msh("ADT^A01^ADT_A01", "X1"), pid("MRN500", "Doe", "19800115", "F"), pv1("O", "V500", "20260305090000", "")))); code != AA {
		t.Fatalf("A01: %s", code)
	}
	var queued []string
	enqueue := func(_ context.Context, _ pgx.Tx, typ string, payload any, key string) error {
		queued = append(queued, typ+" "+payload.(DFTPayload).Claim+" "+key)
		return nil
	}
	v, _ := resource.NewValidator()
	st := store.New(s.Pool, store.WithBase(testBase), store.WithHooks(DFTHook{Enabled: true, Enqueue: enqueue}))
	claimJSON := func(status string) string {
		j := strings.Replace(testClaim, "%s", status, 1)
		j = strings.Replace(j, "PATIENT", patientID("MRN500"), 1)
		return strings.Replace(j, "ENCOUNTER", derivedID("Encounter", "urn:billy:hl7:hosp", "V500"), 1)
	}
	write := func(id, status string) {
		t.Helper()
		tree, err := jsontree.Parse([]byte(claimJSON(status)))
		if err != nil {
			t.Fatal(err)
		}
		w, err := store.Prepare(v.Validate, testBase, "Claim", id, tree)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.InTx(t.Context(), func(tx *store.Tx) error { _, _, err := tx.Update(t.Context(), w, 0); return err }); err != nil {
			t.Fatal(err)
		}
	}
	write("c1", "draft")
	write("c1", "active")
	write("c1", "active") // an update of an active Claim queues nothing more
	if len(queued) != 1 || queued[0] != "hl7:dft c1 hl7-dft:c1" {
		t.Fatalf("queued: %q", queued)
	}

	// The receiver is down: an error for the retry, nothing recorded as sent or failed.
	down, _ := net.Listen("tcp", "127.0.0.1:0")
	downAddr := down.Addr().String()
	down.Close()
	d := &DFTSender{Store: st, Pool: s.Pool, Addr: downAddr, Now: func() time.Time { return testNow }, Timeout: 5 * time.Second}
	if err := d.Send(t.Context(), "c1"); err == nil || strings.Contains(err.Error(), "SkipRetry") {
		t.Errorf("receiver down: %v", err)
	}
	r := startReceiver(t, AA)
	d.Addr = r.addr
	for range 2 {
		if err := d.Send(t.Context(), "c1"); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	got := r.messages()
	if len(got) != 1 {
		t.Fatalf("the receiver got %d messages, want 1", len(got))
	}
	m, err := Parse([]byte(got[0]))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := m.Header()
	if h.Type != "DFT" || h.Event != "P03" || h.ControlID != dftControlID("c1") {
		t.Errorf("header: %+v", h)
	}
	if v := m.Get(m.Seg("PID"), 3, 1); v != "MRN500" {
		t.Errorf("PID-3: %q", v)
	}
	if v := m.Get(m.Seg("PV1"), 19, 0); v != "V500" {
		t.Errorf("PV1-19: %q", v)
	}
	ft1 := m.All("FT1")
	if len(ft1) != 2 {
		t.Fatalf("FT1 segments: %d", len(ft1))
	}
	for i, want := range []struct{ code, amount, dx string }{{"99213", "120.5", "E11.9^^I10~I10^^I10"}, {"82947", "15", "E11.9^^I10"}} {
		if m.Get(ft1[i], 25, 1) != want.code || m.Get(ft1[i], 11, 0) != want.amount || ft1[i].Raw(19) != want.dx || m.Get(ft1[i], 6, 0) != "CG" || m.Get(ft1[i], 4, 0) != "20260305" {
			t.Errorf("FT1 %d: %q", i+1, strings.Join(ft1[i].Fields, "|"))
		}
	}
	if len(m.All("DG1")) != 2 {
		t.Errorf("DG1 segments: %d", len(m.All("DG1")))
	}

	// An AE is final: recorded, not retried.
	write("c2", "active")
	r.mu.Lock()
	r.code = AE
	r.mu.Unlock()
	if err := d.Send(t.Context(), "c2"); err == nil || !strings.Contains(err.Error(), "unknown charge code") {
		t.Errorf("AE: %v", err)
	}
	n := len(r.messages())
	if err := d.Send(t.Context(), "c2"); err != nil || len(r.messages()) != n {
		t.Errorf("a failed DFT was sent again (%v)", err)
	}
}
