package coder

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/iambilly/billy/pipeline/codes"
)

// CodeSet is what the guards need from the loaded code sets; *codes.Set and *codes.Store satisfy it.
type CodeSet interface {
	Lookup(ctx context.Context, system, code string) (codes.Code, error)
}

var (
	_ CodeSet = (*codes.Set)(nil)
	_ CodeSet = (*codes.Store)(nil)
)

// Limits of a professional claim (CMS-1500 / 837P).
const (
	MaxDiagnoses = 12
	MaxPointers  = 4
)

// Guard checks a coding result against the loaded code sets and the transcript, whichever coder
// produced it, and moves everything it rejects to res.Dropped with a reason:
//
//   - every diagnosis exists in ICD-10-CM and is billable (a category such as E11 is not);
//   - its evidence quotes the transcript at the given offsets, and at least one quote asserts the
//     condition of the patient: not negated, not uncertain (outpatient guideline IV.H), not a family
//     member's (Z80-Z84 family-history codes need family evidence);
//   - the patient's sex and age fit the code's edits;
//   - no Excludes1 or combination-code pair is reported together (the better-supported code stays),
//     and no unspecified code sits beside a more specific code of the same category;
//   - at most 12 diagnoses, in rank order;
//   - every procedure line exists in CPT or HCPCS and is billable on the date of service, has units,
//     and points to 1-4 remaining diagnoses;
//   - the E/M code exists, fits new or established status, and carries modifier 25 exactly when a
//     procedure billed the same day requires it.
//
// Diagnosis pointers in res are indexes into res.Diagnoses as given; Guard renumbers them.
func Guard(ctx context.Context, cs CodeSet, in Input, res *Result) error {
	if res == nil {
		return errors.New("guard: nil result")
	}
	g := newGuard(in)
	g.ctx, g.cs, g.res = ctx, cs, res
	if err := g.diagnoses(); err != nil {
		return err
	}
	if err := g.lines(); err != nil {
		return err
	}
	if err := g.em(); err != nil {
		return err
	}
	g.review()
	return nil
}

// review lists the kept codes whose confidence is under ReviewBelow (a code without a confidence
// is not rated and not listed).
func (g *guard) review() {
	g.res.Review = nil
	add := func(code string, conf float64, note string) {
		if conf > 0 && conf < ReviewBelow {
			if note == "" {
				note = "low confidence"
			}
			g.res.Review = append(g.res.Review, Review{Code: code, Confidence: conf, Reason: note})
		}
	}
	for _, d := range g.res.Diagnoses {
		add(d.Code, d.Confidence, d.Note)
	}
	for _, l := range g.res.Lines {
		add(l.Code, l.Confidence, l.Note)
	}
	if em := g.res.EM; em != nil {
		add(em.Code, em.Confidence, em.Note)
	}
}

type guard struct {
	ctx   context.Context
	cs    CodeSet
	in    Input
	res   *Result
	n     *note
	ms    []*mention // dictionary concepts of the transcript, with their assertions
	age   int
	remap []int // old diagnosis index -> new index, -1 when dropped
}

func newGuard(in Input) *guard {
	n := parse(in.Transcript)
	return &guard{in: in, n: n, ms: findMentions(n), age: codes.AgeAt(in.Patient.BirthDate, in.ServiceDate)}
}

func (g *guard) drop(code, reason string) {
	g.res.Dropped = append(g.res.Dropped, Dropped{Code: code, Reason: reason})
}

// lookup returns the code, whether it exists, and a lookup failure other than not-found.
func (g *guard) lookup(system, code string) (codes.Code, bool, error) {
	c, err := g.cs.Lookup(g.ctx, system, code)
	if errors.Is(err, codes.ErrNotFound) {
		return codes.Code{}, false, nil
	}
	if err != nil {
		return codes.Code{}, false, fmt.Errorf("guard: %w", err)
	}
	return c, true, nil
}

type dxState struct {
	Dx
	orig     int
	info     codes.Code
	support  int // evidence quotes that assert the condition
	dropped  bool
	category string
}

func (g *guard) diagnoses() error {
	var kept []*dxState
	seen := map[string]*dxState{}
	g.remap = make([]int, len(g.res.Diagnoses))
	for i := range g.remap {
		g.remap[i] = -1
	}
	for i, d := range g.res.Diagnoses {
		code := codes.Normalize(codes.ICD10CM, d.Code)
		if prev := seen[code]; prev != nil {
			prev.Evidence = append(prev.Evidence, d.Evidence...)
			g.remap[i] = -2 - prev.orig // resolved below to the kept index of prev
			continue
		}
		info, ok, err := g.lookup(codes.ICD10CM, code)
		if err != nil {
			return err
		}
		if !ok {
			g.drop(code, "not an ICD-10-CM code (version "+g.version(codes.ICD10CM)+")")
			continue
		}
		if !info.Billable {
			g.drop(code, fmt.Sprintf("ICD-10-CM %s (%s) is a category or header, not billable: a more specific code is required", code, info.Display))
			continue
		}
		if ok, why := info.Edit.Check(g.in.Patient.Sex, g.age); !ok {
			g.drop(code, why)
			continue
		}
		st := &dxState{Dx: Dx{Code: code, Display: info.Display, Evidence: d.Evidence, Confidence: d.Confidence, Note: d.Note}, orig: i, info: info, category: code[:3]}
		var valid []Span
		for _, sp := range st.Evidence {
			if sp.Start < 0 || sp.End > len(g.in.Transcript) || sp.Start >= sp.End || g.in.Transcript[sp.Start:sp.End] != sp.Text {
				continue
			}
			valid = append(valid, sp)
			if g.asserts(code, sp) {
				st.support++
			}
		}
		st.Evidence = valid
		if len(valid) == 0 {
			g.drop(code, "no evidence in the transcript supports the code")
			continue
		}
		if st.support == 0 {
			g.drop(code, g.assertionReason(code, valid[0]))
			continue
		}
		seen[code] = st
		kept = append(kept, st)
	}

	// Excludes1 and combination pairs: keep the better-supported code (the combination code of a
	// combination pair).
	for i := 0; i < len(kept); i++ {
		for j := i + 1; j < len(kept); j++ {
			a, b := kept[i], kept[j]
			if a.dropped || b.dropped {
				continue
			}
			p, ok := codes.Conflict(a.Code, b.Code)
			if !ok {
				continue
			}
			loser := b
			switch {
			case p.Kind == codes.PairCombination:
				// the code in the pair's B span is the combination code that includes the other
				if inSpanPair(b.Code, p.B) && !inSpanPair(a.Code, p.B) {
					loser = a
				}
			case b.support > a.support:
				loser = a
			}
			loser.dropped = true
			other := a
			if loser == a {
				other = b
			}
			g.drop(loser.Code, fmt.Sprintf("%s with %s: %s", p.Kind, other.Code, p.Note))
			if p.Kind != codes.PairCombination {
				// two codes the note supports exclude each other: the human coder confirms the choice
				other.Confidence = min(nonZero(other.Confidence), 0.65)
				other.Note = fmt.Sprintf("%s conflict with %s, resolved for this code: %s", p.Kind, loser.Code, p.Note)
			}
		}
	}
	// An unspecified code (or "without complications") beside a more specific code of the same
	// condition: same category, and either the category's catch-all (.9) or a description whose
	// words the specific code's description contains (E78.5 "Hyperlipidemia, unspecified" beside
	// E78.2 "Mixed hyperlipidemia", but not G47.00 "Insomnia, unspecified" beside G47.33 sleep apnea).
	for _, a := range kept {
		if a.dropped || !vague(a.info.Display) {
			continue
		}
		for _, b := range kept {
			if b == a || b.dropped || b.category != a.category || vague(b.info.Display) && len(b.Code) <= len(a.Code) {
				continue
			}
			if !(len(a.Code) > 4 && a.Code[4] == '9') && !coreWithin(a.info.Display, b.info.Display) {
				continue
			}
			a.dropped = true
			g.drop(a.Code, fmt.Sprintf("less specific than %s of the same category", b.Code))
			break
		}
	}

	var final []*dxState
	for _, st := range kept {
		if !st.dropped {
			final = append(final, st)
		}
	}
	if len(final) > MaxDiagnoses {
		for _, st := range final[MaxDiagnoses:] {
			g.drop(st.Code, fmt.Sprintf("more than %d diagnoses: ranked below the first %d", MaxDiagnoses, MaxDiagnoses))
		}
		final = final[:MaxDiagnoses]
	}
	g.res.Diagnoses = g.res.Diagnoses[:0]
	for i, st := range final {
		g.res.Diagnoses = append(g.res.Diagnoses, st.Dx)
		g.remap[st.orig] = i
	}
	for i, r := range g.remap {
		if r <= -2 {
			g.remap[i] = g.remap[-2-r]
		}
	}
	return nil
}

func nonZero(c float64) float64 {
	if c == 0 {
		return 1
	}
	return c
}

// inSpanPair reports whether code lies in an ExclusionPair span ("I11-I13", "E11").
func inSpanPair(code, span string) bool {
	from, to, found := strings.Cut(span, "-")
	if !found {
		to = from
	}
	c := strings.ReplaceAll(code, ".", "")
	f, t := strings.ReplaceAll(from, ".", ""), strings.ReplaceAll(to, ".", "")
	if len(c) < len(f) || len(c) < len(t) {
		return false
	}
	return c[:len(f)] >= f && c[:len(t)] <= t
}

// coreWithin reports whether the words of the vague description (less "unspecified" and "without
// complications") all occur in the other description.
func coreWithin(vagueDisplay, other string) bool {
	words := func(s string) []string {
		s = strings.ToLower(s)
		s = strings.ReplaceAll(s, "without complications", "")
		return strings.FieldsFunc(s, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') })
	}
	have := map[string]bool{}
	for _, w := range words(other) {
		have[w] = true
	}
	n := 0
	for _, w := range words(vagueDisplay) {
		if w == "unspecified" || w == "of" || w == "in" || w == "site" {
			continue
		}
		if !have[w] {
			return false
		}
		n++
	}
	return n > 0
}

func vague(display string) bool {
	d := strings.ToLower(display)
	return strings.Contains(d, "unspecified") || strings.Contains(d, "without complications")
}

func (g *guard) version(system string) string {
	if s, ok := g.cs.(interface{ Version(string) string }); ok {
		return s.Version(system)
	}
	return "loaded"
}

// familyCode reports codes whose evidence is about a relative; historyCode reports codes whose
// evidence is about the past.
func familyCode(code string) bool {
	return code >= "Z80" && code < "Z85"
}

func historyCode(code string) bool {
	return (code >= "Z85" && code < "Z88") || strings.HasPrefix(code, "Z91.8") || code == "I25.2"
}

// encounterCode reports Z codes for the reason of the encounter or a status (examinations,
// immunization, BMI, long-term drug use): their evidence names a service or a measurement, not a
// condition, so assertion checks do not apply.
func encounterCode(code string) bool {
	return code >= "Z00" && code < "Z14" || code == "Z23" || strings.HasPrefix(code, "Z68") || strings.HasPrefix(code, "Z79") ||
		strings.HasPrefix(code, "Z30")
}

// quotesFamilyHistory reports a quote that says "family history".
func quotesFamilyHistory(q string) bool {
	l := strings.ToLower(q)
	return strings.Contains(l, "family history") || strings.Contains(l, "family hx") || strings.Contains(l, "fhx")
}

// sentenceOf returns the sentence containing the span, and the token range the span covers.
func (g *guard) sentenceOf(sp Span) (*sentence, int, int) {
	for i := range g.n.sents {
		s := &g.n.sents[i]
		if sp.Start >= s.end || sp.End <= s.start {
			continue
		}
		ts, te := -1, -1
		for j, t := range s.toks {
			if t.end > sp.Start && t.start < sp.End {
				if ts < 0 {
					ts = j
				}
				te = j + 1
			}
		}
		if ts < 0 {
			continue
		}
		return s, ts, te
	}
	return nil, 0, 0
}

// asserts reports whether an evidence quote supports code: a current, certain condition of the
// patient (family-history codes: a relative's condition; history and status codes: not negated).
func (g *guard) asserts(code string, sp Span) bool {
	if encounterCode(code) {
		return true
	}
	a, ok := g.assertionOf(code, sp)
	if !ok {
		return false
	}
	switch {
	case familyCode(code):
		// "Family history of glaucoma" names its own experiencer.
		return (a.Family || quotesFamilyHistory(sp.Text)) && !a.Negated
	case historyCode(code):
		return !a.Negated && !a.Other && (!a.Family || familyCode(code))
	}
	return !a.Negated && !a.Uncertain && !a.Family && !a.Other && !a.Hypothetical
}

// assertionOf judges a quote for code on the condition words it carries: the dictionary concepts
// inside it when there are any (a quote may include its own trigger, as in "denies chest pain"),
// else the first word of the quote that the code's description uses, else its last word, so that
// triggers earlier in the quote are in scope and qualifiers after the condition ("without
// dyskinesia", "adverse effect") are not.
func (g *guard) assertionOf(code string, sp Span) (Assertion, bool) {
	s, ts, te := g.sentenceOf(sp)
	if s == nil {
		return Assertion{}, false
	}
	var inside []*mention
	for _, m := range g.ms {
		if m.start >= sp.Start && m.end <= sp.End {
			inside = append(inside, m)
		}
	}
	if len(inside) > 0 {
		// the most assertive mention speaks for the quote
		best := inside[0].a
		for _, m := range inside[1:] {
			if m.a.Affirmed() && !best.Affirmed() {
				best = m.a
			}
		}
		return best, true
	}
	at := te - 1
	if g.cs == nil {
		// no code set to read the description from: judge at the quote's last word
	} else if info, err := g.cs.Lookup(g.ctx, codes.ICD10CM, code); err == nil {
		words := map[string]bool{}
		for _, w := range phraseTokens(strings.ToLower(info.Display)) {
			if !descStopwords[w] {
				words[w] = true
			}
		}
		for j := ts; j < te; j++ {
			if words[strings.TrimPrefix(s.toks[j].norm, "abbr:")] {
				at = j
				break
			}
		}
	}
	a := assess(s, at, at+1)
	if s.section == secFH {
		a.Family = true
	}
	return a, true
}

// descStopwords are description words that name no condition: they never anchor an assertion.
var descStopwords = map[string]bool{"of": true, "the": true, "and": true, "or": true, "with": true, "without": true, "in": true,
	"to": true, "due": true, "other": true, "unspecified": true, "specified": true, "type": true, "site": true, "a": true,
	"by": true, "for": true, "as": true, "not": true, "elsewhere": true, "classified": true, "encounter": true, "initial": true,
	"subsequent": true, "right": true, "left": true, "bilateral": true, "side": true, "nec": true, "nos": true}

func (g *guard) assertionReason(code string, sp Span) string {
	a, ok := g.assertionOf(code, sp)
	if !ok {
		return "evidence not found in the transcript"
	}
	switch {
	case familyCode(code):
		return fmt.Sprintf("family-history code without evidence about a relative: %q", sp.Text)
	case a.Negated:
		return fmt.Sprintf("evidence is negated (the patient denies it or it was ruled out): %q", sp.Text)
	case a.Family:
		return fmt.Sprintf("evidence describes a family member, not the patient (use a Z80-Z84 family-history code): %q", sp.Text)
	case a.Other:
		return fmt.Sprintf("evidence describes someone other than the patient: %q", sp.Text)
	case a.Uncertain:
		return fmt.Sprintf("uncertain diagnosis (probable, suspected, rule out): outpatient guideline IV.H codes the symptoms instead: %q", sp.Text)
	case a.Hypothetical:
		return fmt.Sprintf("evidence is hypothetical or preventive, not a condition present: %q", sp.Text)
	}
	return fmt.Sprintf("evidence does not assert the condition: %q", sp.Text)
}

func lineSystem(code string) string {
	if code != "" && code[0] >= 'A' && code[0] <= 'Z' {
		return codes.HCPCS
	}
	return codes.CPT
}

func (g *guard) lines() error {
	var out []Line
	for _, l := range g.res.Lines {
		l.Code = strings.ToUpper(strings.TrimSpace(l.Code))
		l.System = lineSystem(l.Code)
		info, ok, err := g.lookup(l.System, l.Code)
		if err != nil {
			return err
		}
		if !ok {
			g.drop(l.Code, fmt.Sprintf("not a %s code in the loaded code set", strings.ToUpper(l.System)))
			continue
		}
		if !info.BillableOn(g.in.ServiceDate) {
			why := "not billable"
			if !info.TerminationDate.IsZero() {
				why = "terminated on " + info.TerminationDate.Format("2006-01-02")
			}
			g.drop(l.Code, fmt.Sprintf("%s %s is %s for the date of service", strings.ToUpper(l.System), l.Code, why))
			continue
		}
		l.Display = info.Display
		if l.Units <= 0 {
			l.Units = 1
		}
		var mods []string
		for _, m := range l.Modifiers {
			m = strings.ToUpper(strings.TrimSpace(m))
			if len(m) != 2 || m == "25" || containsStr(mods, m) {
				if m == "25" {
					g.drop(l.Code+"-25", "modifier 25 belongs on the E/M, not on a procedure line")
				}
				continue
			}
			mods = append(mods, m)
		}
		l.Modifiers = mods
		var ptrs []int
		for _, p := range l.DiagnosisPointers {
			if p < 1 || p > len(g.remap) {
				continue
			}
			if np := g.remap[p-1]; np >= 0 && !containsInt(ptrs, np+1) {
				ptrs = append(ptrs, np+1)
			}
		}
		if len(ptrs) == 0 && len(g.res.Diagnoses) > 0 {
			ptrs = []int{1}
		}
		if len(ptrs) == 0 {
			g.drop(l.Code, "no remaining diagnosis supports the line")
			continue
		}
		if len(ptrs) > MaxPointers {
			g.drop(fmt.Sprintf("%s pointer %v", l.Code, ptrs[MaxPointers:]), fmt.Sprintf("a line points to at most %d diagnoses", MaxPointers))
			ptrs = ptrs[:MaxPointers]
		}
		l.DiagnosisPointers = ptrs
		out = append(out, l)
	}
	g.res.Lines = out
	return nil
}

func isPreventiveCode(code string) bool {
	return (code >= "99381" && code <= "99387") || (code >= "99391" && code <= "99397")
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// emNew maps each new-patient E/M code the guards accept (office/outpatient and preventive) to its
// established-patient counterpart.
var emNew = map[string]string{"99202": "99212", "99203": "99213", "99204": "99214", "99205": "99215",
	"99381": "99391", "99382": "99392", "99383": "99393", "99384": "99394", "99385": "99395", "99386": "99396", "99387": "99397"}

func (g *guard) em() error {
	em := g.res.EM
	if em == nil {
		return nil
	}
	code := strings.TrimSpace(em.Code)
	estOf := emNew
	newOf := map[string]string{}
	for n, e := range estOf {
		newOf[e] = n
	}
	switch {
	case g.in.Established && estOf[code] != "":
		g.drop(code, "patient is established (seen by the group within 3 years): reported as "+estOf[code])
		code = estOf[code]
	case !g.in.Established && newOf[code] != "":
		g.drop(code, "patient is new to the group: reported as "+newOf[code])
		code = newOf[code]
	case code == "99211" || estOf[code] != "" || newOf[code] != "":
	default:
		g.drop(code, "not an office/outpatient or preventive E/M code")
		g.res.EM = nil
		return nil
	}
	_, ok, err := g.lookup(codes.CPT, code)
	if err != nil {
		return err
	}
	if !ok {
		g.drop(code, "E/M code not in the loaded CPT code set")
		g.res.EM = nil
		return nil
	}
	if isPreventiveCode(code) && g.age >= 0 {
		if want := preventiveCode(g.age, g.in.Established); want != code {
			g.drop(code, fmt.Sprintf("preventive visit code does not fit the patient's age (%d): reported as %s", g.age, want))
			code = want
		}
	}
	em.Code = code
	var ev []Span
	for _, sp := range em.Evidence {
		if sp.Start >= 0 && sp.End <= len(g.in.Transcript) && sp.Start < sp.End && g.in.Transcript[sp.Start:sp.End] == sp.Text {
			ev = append(ev, sp)
		}
	}
	em.Evidence = ev
	// Modifier 25 exactly when a same-day procedure needs it.
	want25 := false
	for _, l := range g.res.Lines {
		if needs25(l.Code) {
			want25 = true
		}
	}
	var mods []string
	for _, m := range em.Modifiers {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "25" && !want25 {
			g.drop(code+"-25", "modifier 25 without a same-day procedure that requires it")
			continue
		}
		if len(m) == 2 && !containsStr(mods, m) {
			mods = append(mods, m)
		}
	}
	if want25 && !containsStr(mods, "25") {
		mods = append(mods, "25")
	}
	sort.Strings(mods)
	em.Modifiers = mods
	var ptrs []int
	for _, p := range em.DiagnosisPointers {
		if p < 1 || p > len(g.remap) {
			continue
		}
		if np := g.remap[p-1]; np >= 0 && !containsInt(ptrs, np+1) {
			ptrs = append(ptrs, np+1)
		}
	}
	if len(ptrs) == 0 {
		for i := 0; i < len(g.res.Diagnoses) && i < MaxPointers; i++ {
			ptrs = append(ptrs, i+1)
		}
	}
	if len(ptrs) > MaxPointers {
		ptrs = ptrs[:MaxPointers]
	}
	em.DiagnosisPointers = ptrs
	return nil
}
