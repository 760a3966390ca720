package coder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/iambilly/billy/pipeline/codes"
	"github.com/iambilly/billy/pipeline/embed"
	"github.com/iambilly/billy/pipeline/kb"
)

// BuiltinVersion identifies the built-in coder's rules; bump it when they change, so Provenance
// shows which rules coded a claim.
const BuiltinVersion = "2026.1"

// Builtin is the deterministic coder that needs no model: sentence and section segmentation, a
// concept dictionary matched on word tokens (with medical abbreviations), NegEx/ConText assertion
// detection, specificity and combination rules from the ICD-10-CM guidelines, procedure detection,
// the 2021 office E/M rules, then Guard. It is safe for concurrent use.
type Builtin struct {
	set  *codes.Set
	retr Retriever
}

var _ Coder = (*Builtin)(nil)

// BuiltinOption configures NewBuiltin.
type BuiltinOption func(*Builtin)

// WithRetriever lets the built-in coder look up assessed conditions its dictionary does not know in
// the knowledge base's code descriptions (and synonyms). A retrieved code is accepted only when every
// content word of its description occurs in the assessment sentence, so retrieval adds recall for
// plainly worded diagnoses without guessing.
func WithRetriever(r Retriever) BuiltinOption { return func(b *Builtin) { b.retr = r } }

// NewBuiltin returns the built-in coder over the loaded code sets (codes.LoadSet).
func NewBuiltin(set *codes.Set, opts ...BuiltinOption) *Builtin {
	b := &Builtin{set: set}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Info names the coder.
func (b *Builtin) Info() (name, version, model string) { return "builtin", BuiltinVersion, "" }

// Code codes one transcript.
func (b *Builtin) Code(ctx context.Context, in Input) (*Result, error) {
	if strings.TrimSpace(in.Transcript) == "" {
		return nil, errors.New("coder: empty transcript")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res, _, err := b.code(ctx, in)
	if err != nil {
		return nil, err
	}
	if err := Guard(ctx, b.set, in, res); err != nil {
		return nil, err
	}
	return res, nil
}

// code runs the built-in rules without the guards; it also returns the coding state, which the LLM
// coder uses for candidates.
func (b *Builtin) code(ctx context.Context, in Input) (*Result, *coding, error) {
	n := parse(in.Transcript)
	if len(n.sents) == 0 {
		return nil, nil, errors.New("coder: the transcript has no words")
	}
	c := &coding{n: n, in: in, set: b.set, age: codes.AgeAt(in.Patient.BirthDate, in.ServiceDate)}
	c.ms = findMentions(n)
	if b.retr != nil {
		if err := c.retrieve(ctx, b.retr); err != nil {
			return nil, nil, err
		}
	}
	c.resolve()
	lines := c.procedures()
	for _, l := range lines {
		if l.admin && (l.Code == "90471" || l.Code == "90472") {
			c.add("Z23", prioCurrent, nil, []string{"vaccine"}, cStatus, "vaccine").ev = []Span{l.Evidence[0]}
		}
	}
	if ok, s := c.isPreventive(); ok {
		code := "Z00.00"
		if c.age >= 0 && c.age < 18 {
			code = "Z00.129"
		}
		abnormal := false
		for i := range n.sents {
			if s2 := &n.sents[i]; s2.inAP() {
				if a, ok := assessPhrase(s2, "abnormal finding", "abnormal findings", "abnormal result"); ok && !a.Negated {
					abnormal = true
				}
			}
		}
		if abnormal {
			code = map[string]string{"Z00.00": "Z00.01", "Z00.129": "Z00.121"}[code]
		}
		d := c.add(code, prioWellness, nil, []string{"wellness"}, cStatus, "wellness")
		d.ev = []Span{spanOf(n, s.start, s.end)}
		d.pos = s.start
	}
	cands := c.sorted()
	res := &Result{Dropped: c.dropped}
	for _, d := range cands {
		display := ""
		if info, ok := b.set.Get(codes.ICD10CM, d.code); ok {
			display = info.Display
		}
		res.Diagnoses = append(res.Diagnoses, Dx{Code: d.code, Display: display, Evidence: d.ev})
	}
	for _, l := range lines {
		l.DiagnosisPointers = pointers(l, cands)
		res.Lines = append(res.Lines, l.Line)
	}
	em, dropped := c.em(cands, lines)
	res.Dropped = append(res.Dropped, dropped...)
	if em != nil && em.Basis != BasisPreventive && coveredByProcedure(cands, lines) {
		res.Dropped = append(res.Dropped, Dropped{Code: em.Code, Reason: "every problem addressed is the one the minor procedure treats: the E/M is not separately identifiable (NCCI)"})
		em = nil
	}
	if em != nil {
		for i, d := range cands {
			if d.prio == prioCurrent || d.prio == prioWellness {
				em.DiagnosisPointers = append(em.DiagnosisPointers, i+1)
			}
			if len(em.DiagnosisPointers) == MaxPointers {
				break
			}
		}
		res.EM = em
		if l := prolonged(em, c.in.Established); l != nil {
			res.Lines = append(res.Lines, *l)
		}
	}
	return res, c, nil
}

// retrieve codes assessment sentences that name no dictionary concept by searching the code
// descriptions, accepting a hit only when all its content words are in the sentence.
func (c *coding) retrieve(ctx context.Context, r Retriever) error {
	covered := map[*sentence]bool{}
	for _, m := range c.ms {
		covered[m.s] = true
	}
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if !s.inAP() || covered[s] || len(s.toks) < 2 || len(s.toks) > 25 {
			continue
		}
		hits, err := r.Search(ctx, s.raw, 5, kb.Filter{Kind: kb.KindCode, System: codes.ICD10CM})
		if err != nil {
			return fmt.Errorf("coder: retrieve: %w", err)
		}
		have := map[string]bool{}
		for _, w := range embed.Terms(s.raw) {
			have[w] = true
		}
		// The verified hit naming the most documented words is the most specific.
		var best *codes.Code
		var bestWords []string
		for _, h := range hits {
			info, ok := c.set.Get(codes.ICD10CM, h.Code)
			if !ok || !info.Billable {
				continue
			}
			words := contentWords(info.Display)
			if len(words) < 2 || !allIn(words, have) || len(words) <= len(bestWords) {
				continue
			}
			best, bestWords = info, words
		}
		if best == nil {
			continue
		}
		ts, _, _ := s.find(bestWords...)
		if !assess(s, ts, ts+1).Affirmed() {
			continue
		}
		c.retrieved = append(c.retrieved, &dxCand{code: best.Code, prio: prioCurrent, pos: s.start, typ: cAcute,
			concept: "retrieved:" + best.Code, ev: []Span{spanOf(c.n, s.start, s.end)},
			mentions: []*mention{{s: s, te: len(s.toks), start: s.start, end: s.end}}})
	}
	return nil
}

// contentWords are the description's words that must all be documented: its terms less the words
// that only qualify specificity ("unspecified", "other", "encounter").
func contentWords(display string) []string {
	var out []string
	for _, w := range embed.Terms(display) {
		switch w {
		case "unspecified", "other", "specified", "encounter", "initial", "subsequent", "without", "with", "due", "site", "type", "nec":
			continue
		}
		out = append(out, w)
	}
	return out
}

func allIn(words []string, have map[string]bool) bool {
	for _, w := range words {
		if !have[w] {
			return false
		}
	}
	return true
}

// prolonged returns the prolonged-service line (CPT 99417, each full 15 minutes beyond the top
// level's minimum: from 75 minutes for 99205, 55 for 99215) for a time-based E/M, or nil.
func prolonged(em *EMLevel, established bool) *Line {
	if em.Basis != BasisTime {
		return nil
	}
	base := 60
	if established {
		base = 40
	}
	if (established && em.Code != "99215") || (!established && em.Code != "99205") || em.Minutes < base+15 {
		return nil
	}
	return &Line{Code: "99417", System: codes.CPT, Units: (em.Minutes - base) / 15, DiagnosisPointers: slices.Clone(em.DiagnosisPointers),
		Evidence: em.Evidence[:1]}
}

// coveredByProcedure reports whether every problem addressed is treated by a minor surgical
// procedure of the visit (whose global package includes the decision to perform it). Casting and
// strapping (29000-29799) and venipuncture do not cover the evaluation of an injury.
func coveredByProcedure(cands []*dxCand, lines []*lineCand) bool {
	covered := map[int]bool{}
	any := false
	for _, l := range lines {
		if !needs25(l.Code) || !isDigits(l.Code) || l.Code < "10004" || l.Code > "69990" || (l.Code >= "29000" && l.Code <= "29799") {
			continue
		}
		any = true
		for _, p := range l.DiagnosisPointers {
			covered[p-1] = true
		}
	}
	if !any {
		return false
	}
	for i, d := range cands {
		if d.prio == prioCurrent && d.typ != cStatus && !covered[i] {
			return false
		}
	}
	return true
}

// pointers links a line to the diagnoses it supports: those of a matching body-system group, else
// those documented in the same sentence, else the first diagnosis.
func pointers(l *lineCand, cands []*dxCand) []int {
	var out []int
	if containsStr(l.groups, "*") {
		for i, d := range cands {
			if d.prio == prioCurrent && len(out) < MaxPointers {
				out = append(out, i+1)
			}
		}
	}
	for i, d := range cands {
		if len(out) == MaxPointers {
			break
		}
		if d.prio > prioStatus || containsInt(out, i+1) {
			continue
		}
		if groupsMatch(l.groups, d.groups) {
			out = append(out, i+1)
		}
	}
	if len(out) == 0 {
		for i, d := range cands {
			for _, e := range d.ev {
				if l.sent != nil && e.Start >= l.sent.start && e.End <= l.sent.end && len(out) < MaxPointers {
					out = append(out, i+1)
					break
				}
			}
		}
	}
	if len(out) == 0 && len(cands) > 0 {
		out = []int{1}
	}
	return out
}

// groupsMatch reports a shared body-system group; "msk" matches "msk:knee" both ways.
func groupsMatch(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y || strings.HasPrefix(y, x+":") || strings.HasPrefix(x, y+":") {
				return true
			}
		}
	}
	return false
}
