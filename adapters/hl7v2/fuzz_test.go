package hl7v2

import (
	"bufio"
	"bytes"
	"testing"
	"time"
)

// FuzzParse: no input makes the parser, the framing reader or the mapping panic, and whatever
// parses has a readable header.
func FuzzParse(f *testing.F) {
	f.Add([]byte(message(msh("ADT^A01^ADT_A01", "M1"), pid("MRN100", "Doe", "19800115", "F"), pv1("I", "V100", "20260301113000", ""), in1("INS01", "PLAN1", "POL123"))))
	f.Add([]byte(message(msh("ADT^A40^ADT_A39", "M6"), pid("MRN200", "Roe", "19700102", "M"), "MRG|MRN100^^^HOSP^MR")))
	f.Add([]byte(message(msh("SIU^S12^SIU_S12", "M8"), "SCH|P1|F1^HOSP||||||Checkup|||^^^202603031000^202603031030", pid("MRN200", "Roe", "19700102", "M"))))
	f.Add([]byte("MSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.5.1\rPID|1||X\\F\\Y^^^H||N\\S\\M"))
	f.Add([]byte("MSH#$%*@|x"))
	f.Add(Frame([]byte("MSH|^~\\&|A")))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ReadFrame(bufio.NewReader(bytes.NewReader(data)))
		m, err := Parse(data)
		if err != nil {
			return
		}
		h, err := m.Header()
		if err != nil {
			t.Fatalf("parsed without a header: %v", err)
		}
		_, _ = build(m, h, time.UTC)
		_ = BuildAck(h, AE, []FieldError{{Segment: "PID", Seq: 1, Field: 3, Code: "101", Text: "x"}}, time.Unix(0, 0))
	})
}
