package x12

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/iambilly/billy/fhir"
)

// Remittance is one 835 transaction set: one payment (or notice) from a payer, and the claims it
// settles.
type Remittance struct {
	Interchange string // ISA13
	SetControl  string // ST02
	// BPR: Handling (I payment with remittance, H notice only, ...), Paid, CreditDebit (C or D),
	// Method (ACH, CHK, NON ...), PaymentDate.
	Handling, CreditDebit, Method string
	Paid                          Amount
	PaymentDate                   time.Time
	// TRN: the check or EFT trace number and the payer's id as originator.
	Trace, Originator string
	Production        time.Time // DTM*405
	Payer             Party     // 1000A N1*PR (id from REF*2U, else TRN03)
	Payee             Party     // 1000B N1*PE (id its NPI, else N104)
	Claims            []*ClaimPayment
	// ProviderAdjustments are PLB amounts (positive reduces the payment).
	ProviderAdjustments []Adjustment
}

// ClaimPayment is loop 2100 (CLP) and its service lines.
type ClaimPayment struct {
	PCN string // CLP01: the patient control number of the 837P
	// Status is CLP02: 1, 2, 3 processed as primary, secondary, tertiary; 4 denied; 19-21
	// processed and forwarded; 22 reversal of a previous payment; 23 not our claim.
	Status                    string
	Charge, Paid, PatientResp Amount
	FilingCode, PayerClaim    string // CLP06, CLP07
	Frequency                 string // CLP09
	Adjustments               []Adjustment
	Remarks                   []string // RARC codes (MOA)
	PatientLast, PatientFirst string
	PatientID                 string
	ServiceStart, ServiceEnd  time.Time
	Lines                     []*ServicePayment
}

// ServicePayment is loop 2110 (SVC).
type ServicePayment struct {
	Qualifier, Code string
	Modifiers       []string
	Charge, Paid    Amount
	Units           string
	Date            time.Time
	Adjustments     []Adjustment
	Remarks         []string // RARC codes (LQ*HE)
	LineControl     string   // REF*6R: the line item control number of the 837P
}

// Adjustment is one CAS adjustment (Group CO, PR, OA, PI, CR; Reason a CARC) or one PLB amount
// (Group PLB, Reason its adjustment code).
type Adjustment struct {
	Group, Reason string
	Amount        Amount
	Quantity      string
}

// MaxSegments bounds what Parse835 reads, whatever the body size limit.
const MaxSegments = 2_000_000

// segment is one X12 segment: its id and elements (Elems[0] is the id).
type segment struct {
	elems []string
	n     int // position in the interchange, for errors
}

func (s segment) id() string { return s.elems[0] }

// el returns element i (1-based), "" when absent.
func (s segment) el(i int) string {
	if i < len(s.elems) {
		return s.elems[i]
	}
	return ""
}

type delims struct{ elem, comp, rep, term byte }

// tokenize splits an interchange into segments, with the delimiters its ISA declares.
func tokenize(data []byte) ([]segment, delims, error) {
	var d delims
	data = bytes.TrimLeft(data, " \t\r\n\ufeff")
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if len(data) < 106 || string(data[:3]) != "ISA" {
		return nil, d, invalid835(0, "ISA", "the body is not an X12 interchange: it must start with a 106-character ISA segment")
	}
	d = delims{elem: data[3], rep: data[82], comp: data[104], term: data[105]}
	seen := map[byte]bool{}
	for _, c := range []byte{d.elem, d.comp, d.term} {
		if seen[c] || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ' ' {
			return nil, d, invalid835(1, "ISA", "the ISA declares unusable delimiters (element %q, component %q, segment %q)", d.elem, d.comp, d.term)
		}
		seen[c] = true
	}
	var segs []segment
	for i, raw := range bytes.Split(data, []byte{d.term}) {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		if len(segs) >= MaxSegments {
			return nil, d, invalid835(i+1, "", "more than %d segments", MaxSegments)
		}
		parts := strings.Split(string(raw), string(d.elem))
		if parts[0] == "" || len(parts[0]) > 3 {
			return nil, d, invalid835(len(segs)+1, parts[0], "not a segment id: %q", firstN(parts[0], 10))
		}
		segs = append(segs, segment{elems: parts, n: len(segs) + 1})
	}
	return segs, d, nil
}

func invalid835(n int, id, format string, args ...any) error {
	where := "the 835"
	if n > 0 {
		where = fmt.Sprintf("segment %d", n)
		if id != "" {
			where += " (" + id + ")"
		}
	}
	return fhir.Errorf(fhir.ErrInvalid, "structure", "%s: %s", where, fmt.Sprintf(format, args...))
}

// Parse835 reads an X12 interchange of 835 transaction sets. It checks the envelope (ISA/IEA,
// GS/GE, ST/SE counts and control numbers) and the segments it maps, and refuses anything else in
// the position of a loop's first segment; a malformed amount or date is an error naming its
// segment, never a zero.
func Parse835(data []byte) ([]*Remittance, error) {
	segs, d, err := tokenize(data)
	if err != nil {
		return nil, err
	}
	p := &parser835{segs: segs, d: d}
	return p.parse()
}

type parser835 struct {
	segs []segment
	d    delims
	i    int
}

func (p *parser835) peek() *segment {
	if p.i < len(p.segs) {
		return &p.segs[p.i]
	}
	return nil
}

func (p *parser835) next(want string) (segment, error) {
	s := p.peek()
	if s == nil {
		return segment{}, invalid835(0, "", "ends where %s was expected", want)
	}
	if s.id() != want {
		return segment{}, invalid835(s.n, s.id(), "%s expected", want)
	}
	p.i++
	return *s, nil
}

func (p *parser835) amount(s segment, i int, required bool) (Amount, error) {
	v := s.el(i)
	if v == "" {
		if required {
			return 0, invalid835(s.n, s.id(), "element %02d (an amount) is required", i)
		}
		return 0, nil
	}
	a, err := ParseAmount(v)
	if err != nil {
		return 0, invalid835(s.n, s.id(), "element %02d: %q is not an amount", i, firstN(v, 20))
	}
	return a, nil
}

func (p *parser835) date(s segment, i int) (time.Time, error) {
	v := s.el(i)
	t, err := time.Parse("20060102", v)
	if err != nil {
		return time.Time{}, invalid835(s.n, s.id(), "element %02d: %q is not a date CCYYMMDD", i, firstN(v, 20))
	}
	return t, nil
}

func (p *parser835) parse() ([]*Remittance, error) {
	isa, err := p.next("ISA")
	if err != nil {
		return nil, err
	}
	if len(isa.elems) != 17 {
		return nil, invalid835(isa.n, "ISA", "has %d elements, not 16", len(isa.elems)-1)
	}
	ctl := strings.TrimSpace(isa.el(13))
	var out []*Remittance
	groups := 0
	for p.peek() != nil && p.peek().id() == "GS" {
		gs, _ := p.next("GS")
		groups++
		if gs.el(1) != "HP" {
			return nil, invalid835(gs.n, "GS", "functional group %q is not HP (health care claim payment/advice)", gs.el(1))
		}
		sets := 0
		for p.peek() != nil && p.peek().id() == "ST" {
			r, err := p.transaction(ctl)
			if err != nil {
				return nil, err
			}
			sets++
			out = append(out, r)
		}
		ge, err := p.next("GE")
		if err != nil {
			return nil, err
		}
		if ge.el(1) != strconv.Itoa(sets) || ge.el(2) != gs.el(6) {
			return nil, invalid835(ge.n, "GE", "counts %s transaction sets of group %s; the group has %d, numbered %s", ge.el(1), ge.el(2), sets, gs.el(6))
		}
	}
	iea, err := p.next("IEA")
	if err != nil {
		return nil, err
	}
	if iea.el(1) != strconv.Itoa(groups) || strings.TrimSpace(iea.el(2)) != ctl {
		return nil, invalid835(iea.n, "IEA", "counts %s groups of interchange %s; it has %d, numbered %s", iea.el(1), iea.el(2), groups, ctl)
	}
	if s := p.peek(); s != nil {
		return nil, invalid835(s.n, s.id(), "after the IEA: one interchange per body")
	}
	if len(out) == 0 {
		return nil, invalid835(0, "", "no 835 transaction set")
	}
	return out, nil
}

// transaction reads ST ... SE.
func (p *parser835) transaction(ctl string) (*Remittance, error) {
	st, _ := p.next("ST")
	start := p.i - 1
	if st.el(1) != "835" {
		return nil, invalid835(st.n, "ST", "transaction set %q is not an 835", st.el(1))
	}
	r := &Remittance{Interchange: ctl, SetControl: st.el(2)}
	bpr, err := p.next("BPR")
	if err != nil {
		return nil, err
	}
	r.Handling, r.CreditDebit, r.Method = bpr.el(1), bpr.el(3), bpr.el(4)
	if r.Paid, err = p.amount(bpr, 2, true); err != nil {
		return nil, err
	}
	if r.PaymentDate, err = p.date(bpr, 16); err != nil {
		return nil, err
	}
	trn, err := p.next("TRN")
	if err != nil {
		return nil, err
	}
	r.Trace, r.Originator = trn.el(2), trn.el(3)
	if r.Trace == "" {
		return nil, invalid835(trn.n, "TRN", "element 02 (the check or EFT trace number) is required")
	}
	var claim *ClaimPayment
	var line *ServicePayment
	party := ""
	for {
		s := p.peek()
		if s == nil {
			return nil, invalid835(0, "", "transaction set %s has no SE", r.SetControl)
		}
		p.i++
		switch s.id() {
		case "SE":
			if s.el(1) != strconv.Itoa(p.i-start) || s.el(2) != r.SetControl {
				return nil, invalid835(s.n, "SE", "counts %s segments of set %s; it has %d, numbered %s", s.el(1), s.el(2), p.i-start, r.SetControl)
			}
			if r.Payer.ID == "" {
				r.Payer.ID = r.Originator
			}
			return r, nil
		case "CUR", "LX", "TS3", "TS2", "MIA", "PER", "AMT", "QTY", "RDM", "N3", "N4":
			// Read and not mapped: totals and addresses Billy recomputes or does not keep.
		case "DTM":
			switch {
			case claim == nil && s.el(1) == "405":
				if r.Production, err = p.date(*s, 2); err != nil {
					return nil, err
				}
			case line != nil && (s.el(1) == "472" || s.el(1) == "150"):
				if line.Date, err = p.date(*s, 2); err != nil {
					return nil, err
				}
			case claim != nil && line == nil && s.el(1) == "232":
				if claim.ServiceStart, err = p.date(*s, 2); err != nil {
					return nil, err
				}
			case claim != nil && line == nil && s.el(1) == "233":
				if claim.ServiceEnd, err = p.date(*s, 2); err != nil {
					return nil, err
				}
			}
		case "N1":
			if claim != nil {
				return nil, invalid835(s.n, "N1", "a payer or payee (N1) after the first claim")
			}
			party = s.el(1)
			switch party {
			case "PR":
				r.Payer.Name = s.el(2)
				if s.el(3) == "XV" {
					r.Payer.ID = s.el(4)
				}
			case "PE":
				r.Payee = Party{Name: s.el(2), ID: s.el(4)}
			}
		case "REF":
			switch {
			case claim == nil && party == "PR" && s.el(1) == "2U":
				r.Payer.ID = s.el(2)
			case line != nil && s.el(1) == "6R":
				line.LineControl = s.el(2)
			}
		case "CLP":
			claim, line = &ClaimPayment{}, nil
			r.Claims = append(r.Claims, claim)
			claim.PCN, claim.Status, claim.FilingCode, claim.PayerClaim, claim.Frequency = s.el(1), s.el(2), s.el(6), s.el(7), s.el(9)
			if claim.PCN == "" || claim.Status == "" {
				return nil, invalid835(s.n, "CLP", "elements 01 (patient control number) and 02 (status) are required")
			}
			if claim.Charge, err = p.amount(*s, 3, true); err != nil {
				return nil, err
			}
			if claim.Paid, err = p.amount(*s, 4, true); err != nil {
				return nil, err
			}
			if claim.PatientResp, err = p.amount(*s, 5, false); err != nil {
				return nil, err
			}
		case "CAS":
			if claim == nil {
				return nil, invalid835(s.n, "CAS", "an adjustment outside a claim")
			}
			adjs, err := p.cas(*s)
			if err != nil {
				return nil, err
			}
			if line != nil {
				line.Adjustments = append(line.Adjustments, adjs...)
			} else {
				claim.Adjustments = append(claim.Adjustments, adjs...)
			}
		case "NM1":
			if claim != nil && line == nil && s.el(1) == "QC" {
				claim.PatientLast, claim.PatientFirst, claim.PatientID = s.el(3), s.el(4), s.el(9)
			}
		case "MOA":
			if claim != nil {
				for i := 3; i <= 7; i++ {
					if v := s.el(i); v != "" {
						claim.Remarks = append(claim.Remarks, v)
					}
				}
			}
		case "SVC":
			if claim == nil {
				return nil, invalid835(s.n, "SVC", "a service line outside a claim")
			}
			line = &ServicePayment{}
			claim.Lines = append(claim.Lines, line)
			c := strings.Split(s.el(1), string(p.d.comp))
			line.Qualifier = c[0]
			if len(c) > 1 {
				line.Code = c[1]
			}
			for _, m := range c[min(2, len(c)):] {
				if m != "" && len(line.Modifiers) < 4 {
					line.Modifiers = append(line.Modifiers, m)
				}
			}
			if line.Code == "" {
				return nil, invalid835(s.n, "SVC", "element 01 has no procedure code")
			}
			if line.Charge, err = p.amount(*s, 2, true); err != nil {
				return nil, err
			}
			if line.Paid, err = p.amount(*s, 3, true); err != nil {
				return nil, err
			}
			line.Units = s.el(5)
			if line.Units == "" {
				line.Units = "1"
			}
		case "LQ":
			if line != nil && s.el(1) == "HE" && s.el(2) != "" {
				line.Remarks = append(line.Remarks, s.el(2))
			}
		case "PLB":
			for i := 3; i+1 <= len(s.elems)-1; i += 2 {
				code, ref, _ := strings.Cut(s.el(i), string(p.d.comp))
				a, err := p.amount(*s, i+1, true)
				if err != nil {
					return nil, err
				}
				r.ProviderAdjustments = append(r.ProviderAdjustments, Adjustment{Group: "PLB", Reason: code, Amount: a, Quantity: ref})
			}
			claim, line = nil, nil
		default:
			return nil, invalid835(s.n, s.id(), "segment %s does not belong in an 835", s.id())
		}
	}
}

// cas reads CAS: a group code and up to six reason, amount, quantity triplets.
func (p *parser835) cas(s segment) ([]Adjustment, error) {
	group := s.el(1)
	switch group {
	case "CO", "PR", "OA", "PI", "CR":
	default:
		return nil, invalid835(s.n, "CAS", "group code %q is not CO, PR, OA, PI or CR", firstN(group, 10))
	}
	var out []Adjustment
	for i := 2; i < len(s.elems) && i <= 17; i += 3 {
		if s.el(i) == "" {
			continue
		}
		a, err := p.amount(s, i+1, true)
		if err != nil {
			return nil, err
		}
		out = append(out, Adjustment{Group: group, Reason: s.el(i), Amount: a, Quantity: s.el(i + 2)})
	}
	if len(out) == 0 {
		return nil, invalid835(s.n, "CAS", "no adjustment reason")
	}
	return out, nil
}
