package coder

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/iambilly/billy/pipeline/codes"
)

// The substance rules code what the Table of Drugs and Chemicals and the drug classes say about the
// drugs a dictation names (Official Guidelines I.C.19.e, I.C.21.c.3, I.C.15.b):
//
//   - an adverse effect of a drug taken as prescribed: the condition, then the drug's T-code with
//     6th character 5;
//   - underdosing: the condition, then the T-code with 6th character 6, then the intent (Z91.12-
//     intentional, with financial hardship or not; Z91.13- unintentional);
//   - poisoning: the T-code with 6th character 1 (accidental, also when the intent is not stated);
//   - long-term (current) drug therapy: Z79 by drug class (data/drug-classes.txt), never for a
//     drug started at this visit, never insulin or oral hypoglycemics with gestational diabetes;
//   - drug allergy status: Z88 by drug class;
//   - weeks of gestation (Z3A) beside a pregnancy code.

// drugName is a substance of the Table of Drugs as words.
type drugName struct {
	toks []string
	term *codes.IndexTerm
}

// drugVocab indexes the therapeutic substances of the Table of Drugs (those with an adverse-effect
// column) by their first word, longest name first: main terms, and two-level terms read as
// modifier + noun ("angiotensin-converting enzyme inhibitor").
var drugVocab = sync.OnceValue(func() map[string][]drugName {
	out := map[string][]drugName{}
	add := func(toks []string, t *codes.IndexTerm) {
		if len(toks) == 0 {
			return
		}
		out[toks[0]] = append(out[toks[0]], drugName{toks: toks, term: t})
	}
	table := codes.DrugTable()
	for i := range table {
		t := &table[i]
		if len(t.Codes) <= codes.DrugAdverseEffect || t.Codes[codes.DrugAdverseEffect] == "" {
			continue
		}
		switch len(t.Path) {
		case 1:
			add(drugTokens(t.Path[0]), t)
		case 2:
			if !strings.Contains(t.Path[1], "with") && !strings.Contains(t.Path[1], "NEC") {
				add(append(drugTokens(t.Path[1]), drugTokens(t.Path[0])...), t)
			}
		}
	}
	for _, f := range dataLines("drug-aliases.txt") {
		if len(f) != 2 {
			panic("coder: data/drug-aliases.txt: want DRUG | table term: " + strings.Join(f, "|"))
		}
		path := strings.Split(f[1], " > ")
		found := false
		for i := range table {
			if slices.Equal(table[i].Path, path) {
				add(drugTokens(f[0]), &table[i])
				found = true
				break
			}
		}
		if !found {
			panic("coder: data/drug-aliases.txt: no table term " + f[1])
		}
	}
	for k := range out {
		slices.SortStableFunc(out[k], func(a, b drugName) int { return len(b.toks) - len(a.toks) })
	}
	return out
})

func drugTokens(s string) []string {
	var out []string
	for _, w := range descTokens(s) {
		if w != "nec" && w != "nos" {
			out = append(out, w)
		}
	}
	return out
}

// drugHit is a drug named in a sentence.
type drugHit struct {
	ts, te int
	term   *codes.IndexTerm
	name   string
}

// drugsIn returns the drugs named in s, longest name first at each word.
func drugsIn(s *sentence) []drugHit {
	ws := s.normWords()
	var out []drugHit
	for i := 0; i < len(ws); i++ {
		for _, d := range drugVocab()[ws[i]] {
			if i+len(d.toks) <= len(ws) && slices.Equal(ws[i:i+len(d.toks)], d.toks) {
				out = append(out, drugHit{ts: i, te: i + len(d.toks), term: d.term, name: strings.Join(d.toks, " ")})
				i += len(d.toks) - 1
				break
			}
		}
	}
	return out
}

// substanceCues are the phrase lists of data/substance-cues.txt by kind.
var substanceCues = sync.OnceValue(func() map[string][]string {
	out := map[string][]string{}
	for _, f := range dataLines("substance-cues.txt") {
		out[f[0]] = append(out[f[0]], f[1:]...)
	}
	return out
})

func (s *sentence) cue(kind string) bool { return s.has(substanceCues()[kind]...) }

// drugClass is one line of data/drug-classes.txt.
type drugClass struct {
	code, use string
	names     [][]string
}

var drugClasses = sync.OnceValue(func() []drugClass {
	var out []drugClass
	for _, f := range dataLines("drug-classes.txt") {
		if len(f) < 3 || (f[1] != "long-term" && f[1] != "allergy") {
			panic("coder: data/drug-classes.txt: want CODE | long-term or allergy | names: " + strings.Join(f, "|"))
		}
		dc := drugClass{code: f[0], use: f[1]}
		for _, n := range f[2:] {
			dc.names = append(dc.names, descTokens(n))
		}
		out = append(out, dc)
	}
	return out
})

// classOf returns the code of the first class of use whose names occur in s at or after word from
// (within the next few words), and the word span of the name.
func classOf(s *sentence, use string) (code string, ts, te int) {
	ws := s.normWords()
	for _, dc := range drugClasses() {
		if dc.use != use {
			continue
		}
		for _, n := range dc.names {
			for i := 0; i+len(n) <= len(ws); i++ {
				if slices.Equal(ws[i:i+len(n)], n) {
					return dc.code, i, i + len(n)
				}
			}
		}
	}
	return "", -1, -1
}

// substances adds the codes of the substance rules from the assessed and dictated sentences.
func (c *coding) substances() {
	var prevDrugs []drugHit // drugs of the sentences before, for "...; underdosing, intentional"
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if c.n.dictated && !s.dictated {
			continue
		}
		drugs := drugsIn(s)
		if len(drugs) > 0 {
			prevDrugs = drugs
		}
		assessed := c.assessedSentence(s)
		if assessed {
			c.drugEvents(s, drugs, prevDrugs)
		}
		if assessed || s.dictated {
			c.longTerm(s)
			c.allergyStatus(s)
		}
	}
	c.gestationWeeks()
}

// causedByDrug reports a cause cue right before a drug name ("hypotension due to carbidopa").
func causedByDrug(s *sentence, drugs []drugHit) bool {
	ws := s.normWords()
	for _, cue := range substanceCues()["cause"] {
		ct := triggerTokens(cue)
		for _, d := range drugs {
			for gap := 0; gap <= 2; gap++ {
				at := d.ts - gap - len(ct)
				if at >= 0 && slices.Equal(ws[at:at+len(ct)], ct) {
					return true
				}
			}
		}
	}
	return false
}

// seventh is the 7th character of a poisoning, adverse-effect or underdosing code stated in s.
func (c *coding) seventh(s *sentence) string { return string(c.encounterAt(s)) }

// drugEvents codes an adverse effect, underdosing or poisoning stated in sentence s.
func (c *coding) drugEvents(s *sentence, drugs, prevDrugs []drugHit) {
	var col int
	switch {
	case s.cue("underdosing"):
		col = codes.DrugUnderdosing
	case s.cue("poisoning"):
		col = codes.DrugPoisoningAccidental
		if s.cue("intentional") || s.has("suicide attempt", "self-harm", "intentional overdose") {
			col = codes.DrugPoisoningIntentional
		}
	case len(drugs) > 0 && (s.cue("adverse") || causedByDrug(s, drugs)):
		col = codes.DrugAdverseEffect
	default:
		return
	}
	d := drugs
	if len(d) == 0 {
		d = prevDrugs
	}
	if len(d) == 0 {
		return
	}
	a := assess(s, d[0].ts, d[0].te)
	if s.section == secPlan || a.Negated || a.Uncertain || a.Family || a.Other {
		return
	}
	// An adverse-effect code says what caused a condition: without a condition coded from this
	// clause or the one before it on the line, a drug named with "side effects" is counselling.
	if col == codes.DrugAdverseEffect && !c.conditionNear(s) {
		return
	}
	stem := d[0].term.Codes[col]
	if stem == "" {
		return
	}
	code := padSeventh(stem) + c.seventh(s)
	if info, ok := c.set.Get(codes.ICD10CM, code); !ok || !info.Billable {
		return
	}
	ev := []Span{spanOf(c.n, s.start, s.end)}
	// An adverse effect or underdosing follows the condition it caused (prioStatus); a poisoning
	// is sequenced first, before its manifestations (I.C.19.e.5.b).
	prio := prioStatus
	if col <= codes.DrugPoisoningUndetermined {
		prio = prioWellness
	}
	dd := c.add(code, prio, nil, nil, cStatus, "substance")
	dd.ev, dd.pos = ev, s.start
	dd.conf, dd.note = 0.8, "T-code from the Table of Drugs for "+d[0].name
	if col != codes.DrugUnderdosing {
		return
	}
	intent := ""
	switch {
	case s.cue("intentional") || s.cue("financial"):
		intent = "Z91.128"
		if s.cue("financial") || c.nearby(s, "financial") {
			intent = "Z91.120"
		}
	case s.cue("unintentional") || s.cue("underdosing"):
		intent = "Z91.138"
		if s.cue("age-related") {
			intent = "Z91.130"
		}
	}
	if intent != "" {
		z := c.add(intent, prioStatus, nil, nil, cStatus, "underdosing-intent")
		z.ev, z.pos = ev, s.start+1
		z.conf, z.note = 0.7, "the intent of the underdosing is read from the note's words"
	}
}

// conditionNear reports a current condition coded from s or from the sentence before it on the
// same line.
func (c *coding) conditionNear(s *sentence) bool {
	from := s.start
	if s.idx > 0 && c.n.sents[s.idx-1].line == s.line {
		from = c.n.sents[s.idx-1].start
	}
	for _, d := range c.cands {
		if d.prio != prioCurrent || d.typ == cStatus {
			continue
		}
		for _, e := range d.ev {
			if e.Start >= from && e.End <= s.end {
				return true
			}
		}
	}
	return false
}

// nearby reports a cue of kind in the sentence before s on the same line (a clause split at ";").
func (c *coding) nearby(s *sentence, kind string) bool {
	return s.idx > 0 && c.n.sents[s.idx-1].line == s.line && c.n.sents[s.idx-1].cue(kind)
}

// longTerm codes long-term (current) drug therapy stated in s.
func (c *coding) longTerm(s *sentence) {
	if !s.cue("long-term") {
		return
	}
	if s.cue("started-today") && !s.has("continue", "continuing", "on long-term", "on long term") {
		return
	}
	code, ts, te := classOf(s, "long-term")
	if code == "" {
		if len(drugsIn(s)) == 0 {
			return
		}
		code = "Z79.899"
		d := drugsIn(s)[0]
		ts, te = d.ts, d.te
	}
	if a := assess(s, ts, te); a.Negated || a.Hypothetical || a.Family || a.Other {
		return
	}
	if (code == "Z79.4" || code == "Z79.84") && c.gestationalDiabetes() {
		return // I.C.15.g: not with gestational diabetes
	}
	d := c.add(code, prioStatus, nil, nil, cStatus, "long-term-drug")
	if len(d.ev) == 0 {
		d.ev, d.pos = []Span{spanOf(c.n, s.start, s.end)}, s.start
		d.conf = 0.85
		if code == "Z79.899" {
			d.conf, d.note = 0.7, "a long-term drug without a class of its own"
		}
	}
}

// gestationalDiabetes reports a gestational diabetes code among the candidates.
func (c *coding) gestationalDiabetes() bool {
	for code := range c.cands {
		if strings.HasPrefix(code, "O24.4") {
			return true
		}
	}
	for _, d := range c.described {
		if strings.HasPrefix(d.code, "O24.4") {
			return true
		}
	}
	return false
}

// allergyStatus codes a drug allergy (Z88) stated in s.
func (c *coding) allergyStatus(s *sentence) {
	if !s.cue("allergy") || s.has("no known drug allergies", "nkda", "no known allergies", "no drug allergies") {
		return
	}
	code, ts, te := classOf(s, "allergy")
	if code == "" {
		d := drugsIn(s)
		if len(d) == 0 {
			return
		}
		code, ts, te = "Z88.8", d[0].ts, d[0].te
	}
	if a := assess(s, ts, te); a.Negated || a.Hypothetical || a.Family || a.Other || a.Uncertain {
		return
	}
	d := c.add(code, prioStatus, nil, nil, cStatus, "allergy-status")
	if len(d.ev) == 0 {
		d.ev, d.pos = []Span{spanOf(c.n, s.start, s.end)}, s.start
	}
}

var weeksRe = regexp.MustCompile(`(?i)\b(\d{1,2}|[a-z]+(?:[- ][a-z]+)?)\s+weeks?\b`)

// gestationWeeks adds the weeks of gestation (Z3A) when a pregnancy code is coded (I.C.15.b: Z3A
// codes go with chapter 15 codes, for the weeks at the date of the encounter).
func (c *coding) gestationWeeks() {
	pregnant := false
	for code := range c.cands {
		pregnant = pregnant || (code[0] == 'O')
	}
	for _, d := range c.described {
		pregnant = pregnant || d.code[0] == 'O'
	}
	if !pregnant {
		return
	}
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if (c.n.dictated && !s.dictated) || !s.has("pregnancy", "gestation", "pregnant", "intrauterine pregnancy", "iup", "ega", "gestational age") {
			continue
		}
		for _, m := range weeksRe.FindAllStringSubmatchIndex(s.raw, -1) {
			n := spokenNumber(s.raw[m[2]:m[3]])
			if n <= 0 || n > 45 {
				continue
			}
			code := "Z3A.49"
			switch {
			case n < 8:
				code = "Z3A.01"
			case n <= 42:
				code = "Z3A." + strconv.Itoa(n)
				if n < 10 {
					code = "Z3A.0" + strconv.Itoa(n)
				}
			}
			if _, ok := c.set.Get(codes.ICD10CM, code); !ok {
				return
			}
			d := c.add(code, prioStatus, nil, nil, cStatus, "gestation")
			d.ev, d.pos = []Span{spanOf(c.n, s.start+m[0], s.start+m[1])}, s.start
			return
		}
	}
}

var unitsWords = map[string]int{"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
	"nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
	"seventeen": 17, "eighteen": 18, "nineteen": 19}

var tensWords = map[string]int{"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}

// spokenNumber reads a number written in digits or spoken words up to ninety-nine ("nine",
// "twenty-four", "thirty two"); -1 when it is not one.
func spokenNumber(s string) int {
	s = strings.ToLower(strings.TrimSpace(s))
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == ' ' })
	switch len(parts) {
	case 1:
		if n, ok := unitsWords[parts[0]]; ok {
			return n
		}
		if n, ok := tensWords[parts[0]]; ok {
			return n
		}
	case 2:
		t, ok1 := tensWords[parts[0]]
		u, ok2 := unitsWords[parts[1]]
		if ok1 && ok2 && u > 0 && u < 10 {
			return t + u
		}
		// "at nine weeks": the first word is not part of the number
		if n, ok := unitsWords[parts[1]]; ok {
			return n
		}
		if n, ok := tensWords[parts[1]]; ok {
			return n
		}
	}
	return -1
}
