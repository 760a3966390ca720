package x12

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Delimiters Billy writes: element *, repetition ^, component :, segment ~ (ISA11, ISA16, ISA's
// terminator).
const (
	elemSep = '*'
	repSep  = '^'
	compSep = ':'
	segTerm = '~'
)

// writer accumulates segments and counts those of the current transaction set (SE01).
type writer struct {
	buf   bytes.Buffer
	count int
}

// clean makes a value safe for X12: accents dropped (José → Jose), no delimiters, printable ASCII
// only, at most max characters.
func clean(s string, max int) string {
	if !isASCII(s) {
		s, _, _ = transform.String(transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC), s)
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == elemSep || r == repSep || r == compSep || r == segTerm || r < 0x20 || r > 0x7e:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	out := strings.Join(strings.Fields(b.String()), " ")
	if len(out) > max {
		out = strings.TrimSpace(out[:max])
	}
	return out
}

func upper(s string, max int) string { return strings.ToUpper(clean(s, max)) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// seg writes one segment; trailing empty elements are dropped, as X12 requires.
func (w *writer) seg(id string, elems ...string) {
	for len(elems) > 0 && elems[len(elems)-1] == "" {
		elems = elems[:len(elems)-1]
	}
	w.buf.WriteString(id)
	for _, e := range elems {
		w.buf.WriteByte(elemSep)
		w.buf.WriteString(e)
	}
	w.buf.WriteByte(segTerm)
	w.count++
}

// comp joins components, dropping trailing empty ones.
func comp(parts ...string) string {
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return strings.Join(parts, string(compSep))
}

func pad(s string, n int) string {
	if len(s) >= n {
		return s[:n]
	}
	return s + strings.Repeat(" ", n-len(s))
}

// Write renders the batch as X12 837P text. The batch must be complete (Build checks what the
// guide requires) and carry its control numbers.
func (b *Batch) Write() []byte {
	w := &writer{}
	w.buf.Grow(1024 + 700*b.claims())
	ctl := fmt.Sprintf("%09d", b.Interchange)
	gs := strconv.FormatInt(b.Group, 10)
	date, tm := b.Created.Format("20060102"), b.Created.Format("1504")
	w.seg("ISA", "00", pad("", 10), "00", pad("", 10), pad(b.SenderQualifier, 2), pad(upper(b.SenderID, 15), 15),
		pad(b.ReceiverQualifier, 2), pad(upper(b.ReceiverID, 15), 15), b.Created.Format("060102"), tm,
		string(repSep), "00501", ctl, "0", b.Usage, string(compSep))
	w.seg("GS", "HC", upper(b.SenderID, 15), upper(b.ReceiverID, 15), date, tm, gs, "X", "005010X222A1")
	w.count = 0
	w.seg("ST", "837", "0001", "005010X222A1")
	w.seg("BHT", "0019", "00", ctl, date, tm, "CH")
	w.seg("NM1", "41", "2", upper(b.Submitter.Name, 60), "", "", "", "", "46", upper(b.Submitter.ID, 80))
	w.seg("PER", "IC", upper(b.Submitter.ContactName, 60), "TE", digits(b.Submitter.Phone))
	w.seg("NM1", "40", "2", upper(b.Receiver.Name, 60), "", "", "", "", "46", upper(b.Receiver.ID, 80))
	hl := 0
	for _, bg := range b.Billing {
		hl++
		billingHL := hl
		w.seg("HL", strconv.Itoa(billingHL), "", "20", "1")
		p := bg.Provider
		if p.Taxonomy != "" {
			w.seg("PRV", "BI", "PXC", clean(p.Taxonomy, 50))
		}
		w.name("85", p)
		w.address(&p.Address)
		w.seg("REF", p.TaxIDQual, digits(p.TaxID))
		for _, sg := range bg.Subscribers {
			hl++
			subHL := hl
			child := "0"
			if len(sg.Dependents) > 0 {
				child = "1"
			}
			w.seg("HL", strconv.Itoa(subHL), strconv.Itoa(billingHL), "22", child)
			rel := "" // the builder never mixes the subscriber's own claims with dependents'
			if len(sg.Claims) > 0 {
				rel = "18"
			}
			w.seg("SBR", sg.Responsibility, rel, upper(sg.GroupNumber, 50), "", "", "", "", "", sg.FilingCode)
			s := sg.Subscriber
			w.seg("NM1", "IL", "1", upper(s.Last, 60), upper(s.First, 35), upper(s.Middle, 25), "", "", "MI", upper(s.MemberID, 80))
			if s.Address != nil {
				w.address(s.Address)
			}
			if !s.BirthDate.IsZero() {
				w.seg("DMG", "D8", s.BirthDate.Format("20060102"), s.Gender)
			}
			w.seg("NM1", "PR", "2", upper(sg.Payer.Name, 60), "", "", "", "", "PI", upper(sg.Payer.ID, 80))
			for _, c := range sg.Claims {
				w.claim(c)
			}
			for _, d := range sg.Dependents {
				hl++
				w.seg("HL", strconv.Itoa(hl), strconv.Itoa(subHL), "23", "0")
				w.seg("PAT", d.Relationship)
				pt := d.Patient
				w.seg("NM1", "QC", "1", upper(pt.Last, 60), upper(pt.First, 35), upper(pt.Middle, 25))
				w.address(pt.Address)
				w.seg("DMG", "D8", pt.BirthDate.Format("20060102"), pt.Gender)
				for _, c := range d.Claims {
					w.claim(c)
				}
			}
		}
	}
	w.seg("SE", strconv.Itoa(w.count+1), "0001")
	w.seg("GE", "1", gs)
	w.seg("IEA", "1", ctl)
	return w.buf.Bytes()
}

func (b *Batch) claims() int {
	n := 0
	for _, bg := range b.Billing {
		for _, sg := range bg.Subscribers {
			n += len(sg.Claims)
			for _, d := range sg.Dependents {
				n += len(d.Claims)
			}
		}
	}
	return n
}

// name writes NM1 of a provider with its NPI (XX).
func (w *writer) name(entity string, p Provider) {
	if p.Organization {
		w.seg("NM1", entity, "2", upper(p.Name, 60), "", "", "", "", "XX", p.NPI)
		return
	}
	w.seg("NM1", entity, "1", upper(p.Last, 60), upper(p.First, 35), "", "", "", "XX", p.NPI)
}

func (w *writer) address(a *Address) {
	if a == nil {
		return
	}
	line2 := ""
	if len(a.Lines) > 1 {
		line2 = upper(a.Lines[1], 55)
	}
	w.seg("N3", upper(a.Lines[0], 55), line2)
	w.seg("N4", upper(a.City, 30), upper(a.State, 2), digits(a.Zip))
}

func (w *writer) claim(c *Claim) {
	w.seg("CLM", clean(c.PCN, 38), c.Total.String(), "", "", comp(c.PlaceOfService, "B", c.Frequency), "Y", "A", "Y", "Y")
	if c.PriorClaim != "" {
		w.seg("REF", "F8", clean(c.PriorClaim, 50))
	}
	hi := make([]string, len(c.Diagnoses))
	for i, d := range c.Diagnoses {
		q := "ABF"
		if i == 0 {
			q = "ABK"
		}
		hi[i] = comp(q, strings.ReplaceAll(upper(d, 30), ".", ""))
	}
	w.seg("HI", hi...)
	if r := c.Rendering; r != nil {
		w.name("82", *r)
		if r.Taxonomy != "" {
			w.seg("PRV", "PE", "PXC", clean(r.Taxonomy, 50))
		}
	}
	for i, l := range c.Lines {
		w.seg("LX", strconv.Itoa(i+1))
		proc := append([]string{"HC", upper(l.Code, 48)}, l.Modifiers...)
		ptrs := make([]string, len(l.Pointers))
		for k, p := range l.Pointers {
			ptrs[k] = strconv.Itoa(p)
		}
		w.seg("SV1", comp(proc...), l.Charge.String(), "UN", l.Units, "", "", comp(ptrs...))
		w.seg("DTP", "472", "D8", l.Date.Format("20060102"))
	}
}

// digits keeps the digits of s (phone numbers, ZIP codes, tax ids).
func digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
