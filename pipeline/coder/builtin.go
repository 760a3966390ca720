package coder

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/iambilly/billy/pipeline/codes"
)

// BuiltinVersion identifies the built-in coder's rules; bump it when they change, so Provenance
// shows which rules coded a claim.
const BuiltinVersion = "2026.2"

// Builtin is the deterministic coder that needs no model: sentence and section segmentation (the
// clinician's dictation in a recorded visit), every billable ICD-10-CM code through its description
// (index.go) with a concept dictionary as a precision layer on top, NegEx/ConText assertion
// detection, specificity and combination rules from the ICD-10-CM guidelines, procedure detection,
// the 2021 office E/M rules, then Guard. It is safe for concurrent use.
type Builtin struct {
	set  *codes.Set
	ix   *descIndex
	retr Retriever
}

var _ Coder = (*Builtin)(nil)

// BuiltinOption configures NewBuiltin.
type BuiltinOption func(*Builtin)

// WithRetriever hands the built-in coder the knowledge base. The built-in coder no longer needs it
// for diagnoses: it reads every code description of the loaded set in memory (index.go), which is
// both exhaustive and exact where vector retrieval over descriptions is neither. The option stays so
// that callers (cmd/billy, the LLM coder) configure both coders alike.
func WithRetriever(r Retriever) BuiltinOption { return func(b *Builtin) { b.retr = r } }

// NewBuiltin returns the built-in coder over the loaded code sets (codes.LoadSet). It reads every
// billable ICD-10-CM description of set once (a few hundred milliseconds; shared by coders built
// over the same set).
func NewBuiltin(set *codes.Set, opts ...BuiltinOption) *Builtin {
	b := &Builtin{set: set, ix: indexFor(set)}
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
	c.encounter = c.injuryEncounter()
	c.describe(b.ix)
	c.resolve()
	lines := c.procedures()
	for _, l := range lines {
		if l.admin && (l.Code == "90471" || l.Code == "90472" || l.Code == "90460" || l.Code == "90461" || l.Code == "G0008" || l.Code == "G0009" || l.Code == "G0010") {
			c.add("Z23", prioCurrent, nil, []string{"vaccine"}, cStatus, "vaccine").ev = []Span{l.Evidence[0]}
		}
	}
	c.pregnancyTest(lines)
	if ok, s := c.isPreventive(); ok {
		code := "Z00.00"
		if c.age >= 0 && c.age < 18 {
			code = "Z00.129"
		}
		// A problem found and addressed at the preventive visit is an abnormal finding.
		abnormal := false
		for _, d := range c.cands {
			abnormal = abnormal || (d.prio == prioCurrent && d.typ != cStatus && d.code[0] != 'Z')
		}
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
		res.Diagnoses = append(res.Diagnoses, Dx{Code: d.code, Display: display, Evidence: d.ev, Confidence: d.conf, Note: d.note})
	}
	for _, l := range lines {
		l.DiagnosisPointers = pointers(l, cands)
		res.Lines = append(res.Lines, l.Line)
	}
	em, dropped := c.em(cands, lines)
	res.Dropped = append(res.Dropped, dropped...)
	if em != nil && em.Basis == BasisMDM || em != nil && em.Basis == BasisTime {
		if !c.separatelyIdentifiable(cands, lines) {
			res.Dropped = append(res.Dropped, Dropped{Code: em.Code, Reason: "every problem addressed is the one the minor procedure treats, with no other management: the E/M is not separately identifiable (CPT, NCCI)"})
			em = nil
		}
	}
	if s := c.globalPeriod(); s != nil && em == nil {
		// the post-operative visit of a global period, reported for the record at no charge
		res.Lines = append(res.Lines, Line{Code: "99024", System: codes.CPT, Units: 1, DiagnosisPointers: firstPointer(cands),
			Evidence: []Span{spanOf(n, s.start, s.end)}, Confidence: 0.85})
	}
	if em != nil && em.Basis == BasisPreventive {
		// A problem addressed beyond the preventive service is a separate problem-oriented E/M
		// (modifier 25); the preventive service becomes a line of its own.
		if p := c.preventiveProblemEM(cands, lines); p != nil {
			res.Lines = append(res.Lines, Line{Code: em.Code, System: codes.CPT, Units: 1, DiagnosisPointers: firstPointer(cands), Evidence: em.Evidence,
				Confidence: 0.85})
			em = p
			em.Confidence, em.Note = 0.65, "problem-oriented E/M beside a preventive service: check that the problem's work is significant and separately identifiable"
		}
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

// pregnancyTest adds the encounter for a pregnancy test (Z32.0-, by its result) when the visit
// performed one and is not a prenatal visit (a pregnant patient's visit is coded from chapter 15).
func (c *coding) pregnancyTest(lines []*lineCand) {
	for code, d := range c.cands {
		// a prenatal visit, or a test done on the way to treating something else, is not an
		// encounter for a pregnancy test
		if code[0] == 'O' || strings.HasPrefix(code, "Z3A") || strings.HasPrefix(code, "Z34") || (code[0] != 'Z' && d.prio == prioCurrent) {
			return
		}
	}
	for _, l := range lines {
		if l.Code != "81025" || l.sent == nil {
			continue
		}
		code := "Z32.00"
		switch {
		case l.sent.has("negative"):
			code = "Z32.02"
		case l.sent.has("positive"):
			code = "Z32.01"
		}
		d := c.add(code, prioWellness, nil, nil, cStatus, "pregnancy-test")
		d.ev, d.pos = []Span{l.Evidence[0]}, l.sent.start
		d.conf, d.note = 0.7, "encounter for a pregnancy test: check it was a reason for the visit"
	}
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
		Evidence: em.Evidence[:1], Confidence: 0.85}
}

// firstPointer points a line at the first diagnosis, when there is one.
func firstPointer(cands []*dxCand) []int {
	if len(cands) == 0 {
		return nil
	}
	return []int{1}
}

// managed reports a problem with management of its own in the sentences that name it and the two
// after: a prescription, an over-the-counter treatment, a procedure or a referral ("reassurance
// given" is not management).
func (c *coding) managed(d *dxCand) bool {
	for _, m := range d.mentions {
		for i := m.s.idx; i < len(c.n.sents) && i <= m.s.idx+2; i++ {
			s := &c.n.sents[i]
			if i > m.s.idx && s.line != m.s.line {
				break
			}
			if c.prescriptionManagement(s) || s.has(otcDrugs...) || s.has("treatment with", "treated with", "referral", "refer to",
				"separate problem", "separately identifiable", "cryotherapy", "prescribed", "start", "ordered") {
				return true
			}
		}
	}
	return false
}

// preventiveProblemEM returns the problem-oriented E/M of a preventive visit that also addresses a
// problem with its own management (a prescription, an over-the-counter treatment, a procedure, a
// referral): the problem's MDM, without the preventive service's work. Nil when none.
func (c *coding) preventiveProblemEM(cands []*dxCand, lines []*lineCand) *EMLevel {
	var probs []*dxCand
	for _, d := range cands {
		if d.prio == prioCurrent && d.typ != cStatus && d.code[0] != 'Z' {
			probs = append(probs, d)
		}
	}
	if len(probs) == 0 {
		return nil
	}
	managed := false
	for _, d := range probs {
		managed = managed || c.managed(d)
	}
	if !managed {
		return nil
	}
	em := c.problemEM(probs, nil)
	em.Modifiers = []string{"25"}
	return em
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
