package x12_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	omniedi "github.com/jf-tech/omniparser/extensions/omniv21/fileformat/edi"
	"github.com/jf-tech/omniparser/idr"

	"github.com/iambilly/billy/adapters/x12"
)

// The 835 samples read by a second, independent reader: jf-tech/omniparser's EDI reader (v1.0.5),
// with the loops and segments of 005010X221A1 declared below. It enforces segment order and
// occurrence bounds (a segment out of place or a loop's first segment missing is an error), and
// its view of every claim must be Billy's.

func seg(name string, min, max int, elems ...omniedi.Elem) *omniedi.SegDecl {
	return &omniedi.SegDecl{Name: name, Min: &min, Max: &max, Elems: elems}
}

func loop(name string, min, max int, target bool, children ...*omniedi.SegDecl) *omniedi.SegDecl {
	group := "segment_group"
	return &omniedi.SegDecl{Name: name, Type: &group, Min: &min, Max: &max, IsTarget: target, Children: children}
}

func el(name string, index int) omniedi.Elem { return omniedi.Elem{Name: name, Index: index} }

func comp(name string, index, c int) omniedi.Elem {
	return omniedi.Elem{Name: name, Index: index, CompIndex: &c}
}

// decl835 is the 835's structure: the claim loop (2100) is the target, in or out of a 2000 (LX).
func decl835() *omniedi.FileDecl {
	many := -1
	claim := func() *omniedi.SegDecl {
		return loop("claim", 0, many, true,
			seg("CLP", 1, 1, el("pcn", 1), el("status", 2), el("charge", 3), el("paid", 4), el("patientResp", 5)),
			seg("CAS", 0, 99, el("group", 1), el("reason", 2), el("amount", 3)),
			seg("NM1", 0, 9), seg("MIA", 0, 1), seg("MOA", 0, 1), seg("REF", 0, 99), seg("DTM", 0, 9), seg("PER", 0, 3), seg("AMT", 0, 99), seg("QTY", 0, 99),
			loop("service", 0, 999, false,
				seg("SVC", 1, 1, comp("code", 1, 2), el("charge", 2), el("paid", 3)),
				seg("DTM", 0, 2), seg("CAS", 0, 99, el("group", 1), el("reason", 2), el("amount", 3)),
				seg("REF", 0, 99), seg("AMT", 0, 99), seg("QTY", 0, 99), seg("LQ", 0, 99)))
	}
	comp := ":"
	return &omniedi.FileDecl{SegDelim: "~", ElemDelim: "*", CompDelim: &comp, IgnoreCRLF: true, SegDecls: []*omniedi.SegDecl{
		seg("ISA", 1, 1), seg("GS", 1, 1),
		loop("transaction", 1, many, false,
			seg("ST", 1, 1), seg("BPR", 1, 1), seg("TRN", 1, 1), seg("CUR", 0, 1), seg("REF", 0, 2), seg("DTM", 0, 1),
			loop("1000A", 1, 1, false, seg("N1", 1, 1), seg("N3", 0, 1), seg("N4", 0, 1), seg("REF", 0, 4), seg("PER", 0, 3)),
			loop("1000B", 1, 1, false, seg("N1", 1, 1), seg("N3", 0, 1), seg("N4", 0, 1), seg("REF", 0, 4), seg("RDM", 0, 1)),
			loop("2000", 0, many, false, seg("LX", 1, 1), seg("TS3", 0, 1), seg("TS2", 0, 1), claim()),
			claim(),
			seg("PLB", 0, many), seg("SE", 1, 1)),
		seg("GE", 1, 1), seg("IEA", 1, 1),
	}}
}

// omniClaims reads an 835 with omniparser: per claim, its CLP and the sums of its service lines
// and adjustments, in cents.
func omniClaims(t *testing.T, data []byte) ([]string, error) {
	t.Helper()
	r, err := omniedi.NewReader("835", bytes.NewReader(data), decl835(), "")
	if err != nil {
		return nil, err
	}
	var out []string
	for {
		n, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		clp := child(n, "CLP")
		adj := sumCAS(n)
		var paid x12.Amount
		lines := children(n, "service")
		for _, svc := range lines {
			a, _ := x12.ParseAmount(text(child(svc, "SVC"), "paid"))
			paid += a
			adj += sumCAS(svc)
		}
		out = append(out, fmt.Sprintf("%s status %s charge %s paid %s: %d lines paying %s, adjustments %s",
			text(clp, "pcn"), text(clp, "status"), text(clp, "charge"), text(clp, "paid"), len(lines), paid, adj))
		r.Release(n)
	}
}

// children are n's element children named name.
func children(n *idr.Node, name string) []*idr.Node {
	var out []*idr.Node
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == idr.ElementNode && c.Data == name {
			out = append(out, c)
		}
	}
	return out
}

func child(n *idr.Node, name string) *idr.Node {
	if cs := children(n, name); len(cs) > 0 {
		return cs[0]
	}
	return nil
}

func text(n *idr.Node, name string) string {
	if n == nil {
		return ""
	}
	if c := child(n, name); c != nil {
		return c.InnerText()
	}
	return ""
}

// sumCAS adds up the CAS amounts directly under n.
func sumCAS(n *idr.Node) x12.Amount {
	var total x12.Amount
	for _, c := range children(n, "CAS") {
		a, _ := x12.ParseAmount(text(c, "amount"))
		total += a
	}
	return total
}

func billyClaims(t *testing.T, data []byte) []string {
	t.Helper()
	rs, err := x12.Parse835(data)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		for _, c := range r.Claims {
			var adj, paid x12.Amount
			for _, a := range c.Adjustments {
				adj += a.Amount
			}
			for _, l := range c.Lines {
				paid += l.Paid
				for _, a := range l.Adjustments {
					adj += a.Amount
				}
			}
			out = append(out, fmt.Sprintf("%s status %s charge %s paid %s: %d lines paying %s, adjustments %s", c.PCN, c.Status, c.Charge, c.Paid, len(c.Lines), paid, adj))
		}
	}
	return out
}

func TestOmniparserReads835SamplesAsBillyDoes(t *testing.T) {
	t.Parallel()
	samples := map[string][]byte{
		"paid, denied, partially paid, unknown, PLB": remittance("000000101", "360", "EFT0001", paidDeniedPartial),
		"reversal without LX":                        remittance("000000103", "0", "EFT0002", "CLP*B000000001*22*-125.5*-100*-20*12*PAYER0001*11*1\nCAS*PR*2*-20"),
	}
	for name, data := range samples {
		got, err := omniClaims(t, data)
		if err != nil {
			t.Fatalf("%s: omniparser: %v", name, err)
		}
		if want := billyClaims(t, data); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s:\n omniparser %v\n Billy      %v", name, got, want)
		}
	}
	// A segment out of place is refused by both readers.
	bad := bytes.Replace(samples["reversal without LX"], []byte("TRN*1*EFT0002*1512345678~"), []byte(""), 1)
	if _, err := omniClaims(t, bad); err == nil {
		t.Error("omniparser read an 835 without TRN")
	}
	if _, err := x12.Parse835(bad); err == nil {
		t.Error("Billy read an 835 without TRN")
	}
}
