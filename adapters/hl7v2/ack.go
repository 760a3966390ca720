package hl7v2

import (
	"fmt"
	"strings"
	"time"
)

// FieldError is a problem with one field: what an ERR segment reports (HL7 table 0357 codes: 100
// segment sequence error, 101 required field missing, 102 data type error, 103 table value not
// found, 200 unsupported message type, 201 unsupported event code, 207 application internal error).
type FieldError struct {
	Segment   string
	Seq       int // occurrence of the segment, from 1
	Field     int
	Component int
	Code      string
	Text      string
}

func (e FieldError) Error() string {
	return fmt.Sprintf("%s-%d: %s", e.Segment, e.Field, e.Text)
}

var errorCodeText = map[string]string{
	"100": "Segment sequence error", "101": "Required field missing", "102": "Data type error", "103": "Table value not found",
	"200": "Unsupported message type", "201": "Unsupported event code", "207": "Application internal error",
}

// Ack codes (original mode) and their enhanced-mode accept-acknowledgment counterparts.
const (
	AA = "AA" // accepted: the message is applied and committed
	AE = "AE" // error: bad content, nothing applied
	AR = "AR" // rejected: unsupported or unreadable, nothing applied
)

// BuildAck writes the acknowledgment of a message with header h. In enhanced mode (MSH-15 set) the
// code becomes CA, CE or CR, and none is sent (nil) when MSH-15 says so (NE, or ER on success, SU
// on error).
func BuildAck(h Header, code string, errs []FieldError, now time.Time) []byte {
	if h.AcceptAck != "" {
		enhanced := map[string]string{AA: "CA", AE: "CE", AR: "CR"}[code]
		switch h.AcceptAck {
		case "NE":
			return nil
		case "ER":
			if code == AA {
				return nil
			}
		case "SU":
			if code != AA {
				return nil
			}
		}
		code = enhanced
	}
	version := h.Version
	if version == "" {
		version = "2.5.1"
	}
	ctrl := "ACK" + h.ControlID
	if len(ctrl) > 20 {
		ctrl = ctrl[:20]
	}
	proc := h.ProcessingID
	if proc == "" {
		proc = "P"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "MSH|^~\\&|%s|%s|%s|%s|%s||ACK^%s^ACK|%s|%s|%s\r", esc(h.ReceivingApp), esc(h.ReceivingFacility), esc(h.SendingApp), esc(h.SendingFacility),
		now.UTC().Format("20060102150405-0700"), esc(h.Event), esc(ctrl), esc(proc), esc(version))
	fmt.Fprintf(&b, "MSA|%s|%s\r", code, esc(h.ControlID))
	for _, e := range errs {
		sev := "E"
		loc := ""
		if e.Segment != "" {
			loc = fmt.Sprintf("%s^%d^%d", e.Segment, max(e.Seq, 1), e.Field)
			if e.Component > 0 {
				loc += fmt.Sprintf("^1^%d", e.Component)
			}
		}
		fmt.Fprintf(&b, "ERR||%s|%s^%s^HL70357|%s||||%s\r", loc, e.Code, errorCodeText[e.Code], sev, esc(e.Text))
	}
	return []byte(b.String())
}

// esc escapes the default delimiters in a value written into a message.
func esc(s string) string {
	if !strings.ContainsAny(s, "|^~\\&\r\n") {
		return s
	}
	r := strings.NewReplacer(`\`, `\E\`, "|", `\F\`, "^", `\S\`, "~", `\R\`, "&", `\T\`, "\r", " ", "\n", " ")
	return r.Replace(s)
}
