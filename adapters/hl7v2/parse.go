package hl7v2

import (
	"errors"
	"fmt"
	"strings"
)

// Message is a parsed HL7 v2 message: its segments in order and its delimiters.
type Message struct {
	Segments []Segment
	// Field, Component, Repetition, Escape and Subcomponent are the delimiters of MSH-1 and MSH-2.
	Field, Component, Repetition, Escape, Subcomponent byte
}

// Segment is one segment: its name and its fields, numbered as HL7 numbers them (Fields[1] is
// field 1; for MSH, field 1 is the field separator and field 2 the encoding characters).
type Segment struct {
	Name   string
	Fields []string
}

// ParseError is a message that cannot be read at all (it is rejected, not acknowledged AE).
type ParseError struct{ Reason string }

func (e *ParseError) Error() string { return "hl7v2: " + e.Reason }

// MaxSegments bounds a message's segment count.
const MaxSegments = 10000

// Parse reads a message. Segments end with CR (LF and CRLF are accepted too); empty lines are
// ignored. It checks the structure (MSH first with its delimiters, segment names of three upper-case
// letters or digits) and nothing of the content.
func Parse(data []byte) (*Message, error) {
	s := string(data)
	if !strings.HasPrefix(s, "MSH") || len(s) < 8 {
		return nil, &ParseError{"the message does not start with an MSH segment"}
	}
	m := &Message{Field: s[3]}
	enc := s[4:]
	if i := strings.IndexByte(enc, m.Field); i >= 0 {
		enc = enc[:i]
	} else {
		return nil, &ParseError{"MSH-2 (encoding characters) is not terminated"}
	}
	if len(enc) < 4 || len(enc) > 5 {
		return nil, &ParseError{"MSH-2 must hold 4 or 5 encoding characters"}
	}
	m.Component, m.Repetition, m.Escape, m.Subcomponent = enc[0], enc[1], enc[2], enc[3]
	delims := string([]byte{m.Field, m.Component, m.Repetition, m.Escape, m.Subcomponent})
	for i := range len(delims) {
		if delims[i] == '\r' || delims[i] == '\n' || strings.IndexByte(delims[i+1:], delims[i]) >= 0 || isAlnum(delims[i]) {
			return nil, &ParseError{"the delimiters must be distinct non-alphanumeric characters"}
		}
	}
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' })
	if len(lines) > MaxSegments {
		return nil, &ParseError{fmt.Sprintf("more than %d segments", MaxSegments)}
	}
	for n, line := range lines {
		if len(line) < 3 {
			return nil, &ParseError{fmt.Sprintf("segment %d has no name", n+1)}
		}
		name := line[:3]
		for i := range 3 {
			if !(name[i] >= 'A' && name[i] <= 'Z' || name[i] >= '0' && name[i] <= '9') {
				return nil, &ParseError{fmt.Sprintf("segment %d: %q is not a segment name", n+1, sanitize(name))}
			}
		}
		if len(line) > 3 && line[3] != m.Field {
			return nil, &ParseError{fmt.Sprintf("segment %d (%s): the name is not followed by the field separator", n+1, name)}
		}
		seg := Segment{Name: name}
		if name == "MSH" {
			if n != 0 {
				return nil, &ParseError{"a second MSH segment"}
			}
			rest := line[4:]
			parts := strings.Split(rest, string(m.Field))
			seg.Fields = append([]string{"MSH", string(m.Field)}, parts...)
		} else {
			seg.Fields = strings.Split(line, string(m.Field))
		}
		m.Segments = append(m.Segments, seg)
	}
	return m, nil
}

func isAlnum(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// sanitize keeps printable ASCII for error messages.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// Seg returns the first segment named name, or nil.
func (m *Message) Seg(name string) *Segment {
	for i := range m.Segments {
		if m.Segments[i].Name == name {
			return &m.Segments[i]
		}
	}
	return nil
}

// All returns every segment named name.
func (m *Message) All(name string) []*Segment {
	var out []*Segment
	for i := range m.Segments {
		if m.Segments[i].Name == name {
			out = append(out, &m.Segments[i])
		}
	}
	return out
}

// Raw returns field n as written (all repetitions), "" when absent.
func (s *Segment) Raw(n int) string {
	if s == nil || n < 1 || n >= len(s.Fields) {
		return ""
	}
	return s.Fields[n]
}

// Get returns component c (1-based; 0 = the whole first repetition) of the first repetition of
// field n, unescaped.
func (m *Message) Get(s *Segment, n, c int) string {
	return m.GetRep(s, n, 0, c)
}

// GetRep is Get of repetition rep (0-based).
func (m *Message) GetRep(s *Segment, n, rep, c int) string {
	f := s.Raw(n)
	if f == "" {
		return ""
	}
	if s.Name == "MSH" && n <= 2 {
		return f
	}
	reps := strings.Split(f, string(m.Repetition))
	if rep >= len(reps) {
		return ""
	}
	v := reps[rep]
	if c > 0 {
		comps := strings.Split(v, string(m.Component))
		if c > len(comps) {
			return ""
		}
		v = comps[c-1]
		if i := strings.IndexByte(v, m.Subcomponent); i >= 0 {
			v = v[:i]
		}
	}
	return m.unescape(v)
}

// Reps is the number of repetitions of field n.
func (m *Message) Reps(s *Segment, n int) int {
	f := s.Raw(n)
	if f == "" {
		return 0
	}
	return strings.Count(f, string(m.Repetition)) + 1
}

// unescape decodes the escape sequences \F\ \S\ \T\ \R\ \E\ (others are dropped).
func (m *Message) unescape(v string) string {
	if strings.IndexByte(v, m.Escape) < 0 {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != m.Escape {
			b.WriteByte(v[i])
			continue
		}
		j := strings.IndexByte(v[i+1:], m.Escape)
		if j < 0 {
			b.WriteString(v[i:])
			break
		}
		switch v[i+1 : i+1+j] {
		case "F":
			b.WriteByte(m.Field)
		case "S":
			b.WriteByte(m.Component)
		case "T":
			b.WriteByte(m.Subcomponent)
		case "R":
			b.WriteByte(m.Repetition)
		case "E":
			b.WriteByte(m.Escape)
		}
		i += j + 1
	}
	return b.String()
}

// Header is what every message's MSH says.
type Header struct {
	SendingApp, SendingFacility, ReceivingApp, ReceivingFacility string
	Type, Event, Structure                                       string
	ControlID, ProcessingID, Version                             string
	// AcceptAck and AppAck are MSH-15 and MSH-16 (enhanced mode when MSH-15 is set).
	AcceptAck, AppAck string
}

// Header reads the MSH.
func (m *Message) Header() (Header, error) {
	h := m.Seg("MSH")
	if h == nil {
		return Header{}, errors.New("no MSH")
	}
	return Header{
		SendingApp: m.Get(h, 3, 1), SendingFacility: m.Get(h, 4, 1), ReceivingApp: m.Get(h, 5, 1), ReceivingFacility: m.Get(h, 6, 1),
		Type: m.Get(h, 9, 1), Event: m.Get(h, 9, 2), Structure: m.Get(h, 9, 3),
		ControlID: m.Get(h, 10, 0), ProcessingID: m.Get(h, 11, 1), Version: m.Get(h, 12, 1),
		AcceptAck: m.Get(h, 15, 0), AppAck: m.Get(h, 16, 0),
	}, nil
}
