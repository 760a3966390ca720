package coder

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iambilly/billy/pipeline/codes"
)

// pkind classifies a procedure for units, modifiers and pointers.
type pkind uint8

const (
	pkTest    pkind = iota // in-office test, no modifier 25 on the E/M
	pkProc                 // minor procedure: the E/M needs modifier 25
	pkVaccine              // vaccine product (+ administration)
	pkDrug                 // drug supplied (HCPCS J code)
	pkJoint                // joint injection or aspiration
	pkScreen               // standardized instrument (96127, 96110)
	pkImaging              // radiograph taken and read in the office (data/imaging.txt)
)

// procDef is one procedure the built-in coder recognises: one line of data/procedures.txt.
type procDef struct {
	id     string
	terms  []string
	code   string
	kind   pkind
	groups []string // diagnosis groups the line points to
	self   bool     // the phrase itself reports the service done ("counseled on smoking cessation")
	qw     bool     // CLIA-waived test reported with modifier QW
	side   bool     // laterality modifier RT/LT or 50
	count  bool     // units: the number of items counted in the sentence
	alts   []procAlt
	per    float64 // drug units: dose / per (rounded up); 0 means one unit
	perIU  bool    // per counts units (international units), not mg
	comps  int     // vaccine components
	rule   string  // an irregular rule (see lines)
}

// procAlt is another code of a procedure when one of its phrases is in the sentence.
type procAlt struct {
	code    string
	phrases []string
}

var pkinds = map[string]pkind{"test": pkTest, "proc": pkProc, "vaccine": pkVaccine, "drug": pkDrug, "joint": pkJoint, "screen": pkScreen,
	"imaging": pkImaging}

// procedures are the rows of data/procedures.txt.
var procedures = func() []procDef {
	var out []procDef
	for _, f := range dataLines("procedures.txt") {
		if len(f) < 6 {
			panic("coder: data/procedures.txt: want ID | CODE | KIND | GROUPS | OPTIONS | terms: " + strings.Join(f, "|"))
		}
		kind, ok := pkinds[f[2]]
		if !ok {
			panic("coder: data/procedures.txt: unknown kind " + f[2])
		}
		d := procDef{id: f[0], code: f[1], kind: kind, groups: strings.Fields(f[3]), terms: f[5:]}
		for _, o := range strings.Fields(f[4]) {
			k, v, _ := strings.Cut(o, "=")
			switch k {
			case "self":
				d.self = true
			case "qw":
				d.qw = true
			case "side":
				d.side = true
			case "count":
				d.count = true
			case "rule":
				d.rule = v
			case "components":
				d.comps, _ = strconv.Atoi(v)
			case "per":
				d.perIU = strings.HasSuffix(v, "units")
				d.per, _ = strconv.ParseFloat(strings.TrimSuffix(v, "units"), 64)
			case "alt":
				code, phrases, _ := strings.Cut(v, ":")
				d.alts = append(d.alts, procAlt{code: code, phrases: strings.Split(strings.ReplaceAll(phrases, "_", " "), "/")})
			default:
				panic("coder: data/procedures.txt: unknown option " + o)
			}
		}
		out = append(out, d)
	}
	return out
}()

// procedureByID returns the procedure of id.
func procedureByID(id string) *procDef {
	for i := range procedures {
		if procedures[i].id == id {
			return &procedures[i]
		}
	}
	return nil
}

// needs25 reports procedure codes after which the E/M needs modifier 25 (a significant,
// separately identifiable E/M on the day of a procedure with a global period or an NCCI edit
// against the E/M): minor procedures by their CMS global period (0 or 10 days), drug and vaccine
// administration, inhalation treatment, tobacco counselling, and a preventive service billed with a
// problem-oriented E/M. Tests without a global period (ECG, radiographs, bladder scans) do not.
func needs25(code string) bool {
	switch code {
	case "36415":
		return false
	case "90460", "90461", "90471", "90472", "90473", "90474", "96372", "96373", "96374", "94640", "99406", "99407", "G0008", "G0009":
		return true
	}
	if isPreventiveCode(code) || code == "G0438" || code == "G0439" {
		return true
	}
	if p, ok := codes.PaymentOf(code); ok {
		return p.MinorProcedure()
	}
	return len(code) == 5 && code >= "10004" && code <= "69990" && isDigits(code)
}

// procedureTrie indexes the procedure terms, built on first use.
var procedureTrie = sync.OnceValue(func() *trieNode {
	return buildTrie(len(procedures), func(i int) []string { return procedures[i].terms })
})

var (
	performedCues = []string{"performed", "done", "completed", "obtained", "administered", "given", "injected", "drawn", "placed", "applied",
		"removed", "irrigated", "repaired", "sutured", "incised", "drained", "excised", "biopsied", "treated", "frozen", "show", "shows",
		"showed", "reveal", "reveals", "revealed", "demonstrate", "demonstrates", "demonstrated", "interpreted", "positive", "negative",
		"normal", "abnormal", "today", "in office", "in clinic", "this visit", "tolerated", "received", "was", "were", "result", "score",
		"scored", "read", "notable", "nitrite", "leukocyte", "unremarkable", "sinus rhythm", "pass", "passed", "fev1", "FEV1", "reading"}
	// strongNotPerformed cues mean the procedure was not done at this visit, in any section.
	strongNotPerformed = []string{"will", "plan", "planned", "schedule", "scheduled", "next visit", "next time", "recommend",
		"recommended", "consider", "refer", "referral", "declined", "declines", "refused", "refuses", "deferred", "defer", "postpone",
		"due for", "will need", "at next", "return for", "outside", "pharmacy", "already had", "already received", "up to date",
		"not due", "wants to think", "would like to think"}
	// pastCues date a result to an earlier encounter.
	pastCues = []string{"prior", "previous", "previously", "last year", "last month", "last week", "ago", "yesterday", "at her last",
		"at his last", "in 20", "in 19", "from 20", "on file", "in the ed", "in the emergency", "at the hospital", "at urgent care",
		"last fall", "last spring", "last summer", "last winter", "record shows", "records show", "immunization record", "history of"}
	// weakNotPerformed cues (orders, conditionals) apply to narrative sentences.
	weakNotPerformed = []string{"ordered", "order", "if", "would", "could", "should", "may", "offered", "discussed", "needs", "prior to"}
)

// performed reports whether a procedure mention describes something done at this encounter.
func (c *coding) performed(s *sentence, ts, te int, def *procDef) bool {
	a := assess(s, ts, te)
	if def.kind == pkTest || def.kind == pkScreen {
		// A test's result is often "negative": that does not mean it was not done.
		a.Negated = s.has("declined", "refused", "not performed", "not done", "deferred", "unable to obtain", "not obtained", "not available")
		a.Hypothetical = a.Hypothetical && s.section != secProcedure && s.section != secResults
	}
	if a.Negated || a.Hypothetical || a.Family || a.Other {
		return false
	}
	if def.kind == pkTest && !s.has(strongNotPerformed...) && !s.has(pastCues...) && !futureRe.MatchString(s.raw) {
		// A test reported with its result ("post-void residual 60 milliliters", "INR 2.4",
		// "dipstick with three-plus ketones") was done at the visit; so was a venipuncture the
		// dictation names, which is an act, not an order.
		if resultRe.MatchString(s.raw[min(len(s.raw), s.toks[max(0, te-1)].end-s.start):]) || (def.code == "36415" && s.dictated) {
			return true
		}
	}
	if def.self && !s.has(strongNotPerformed...) {
		return true
	}
	if s.has(strongNotPerformed...) && !s.has("performed today", "given today", "administered today", "done today", "in office today", "today in office", "today in clinic") {
		return false
	}
	if s.section == secProcedure {
		return true
	}
	if clauseHas(s, ts, te, pastCues...) || a.Historical {
		return false
	}
	if s.section == secResults {
		return true
	}
	if s.has(weakNotPerformed...) && !s.has("performed", "administered", "given", "done", "drawn", "obtained", "in office", "in clinic", "today") {
		return false
	}
	return s.has(performedCues...)
}

// clauseHas reports one of the phrases in the comma-delimited clause of s that holds words
// [ts, te): "Tdap given today, last tetanus ten years ago" dates the tetanus, not the Tdap.
func clauseHas(s *sentence, ts, te int, phrases ...string) bool {
	cs := commas(s)
	lo, hi := ts, te
	for lo > 0 && !cs[lo] {
		lo--
	}
	for hi < len(s.toks) && !cs[hi] {
		hi++
	}
	ws := s.normWords()[lo:hi]
	for _, p := range phrases {
		pt := triggerTokens(p)
		for i := 0; i+len(pt) <= len(ws); i++ {
			if slices.Equal(ws[i:i+len(pt)], pt) {
				return true
			}
		}
	}
	return false
}

// procMention is one recognised, performed procedure.
type procMention struct {
	def *procDef
	s   *sentence
	ts  int
	te  int
}

var (
	// resultRe is a result after a test's name: a number, a plus count, or a qualitative result.
	resultRe = regexp.MustCompile(`(?i)^[^.;]{0,40}?(?:\b\d+(?:\.\d+)?\b|\b(?:one|two|three|four)[- ]plus\b|\btrace\b|\bpositive\b|\bnegative\b|\bnormal\b)`)
	// futureRe dates a test to a later visit.
	futureRe  = regexp.MustCompile(`(?i)\bin (?:\d+|one|two|three|four|six|eight|twelve) (?:days?|weeks?|months?)\b|\bnext (?:visit|week|month|year)\b`)
	doseRe    = regexp.MustCompile(`(?i)(\d+(?:\.\d+)?)\s*(mg|milligrams?|g|grams?|mcg|micrograms?|million units|units|ml|cc)\b`)
	lengthRe  = regexp.MustCompile(`(?i)(\d+(?:\.\d+)?)\s*(?:cm|centimeters?)\b`)
	minutesRe = regexp.MustCompile(`(?i)(\d{1,3})\s*(?:-\s*)?(?:minutes?|mins?)\b`)
	idRe      = regexp.MustCompile(`(?i)\bI\s*&\s*D\b`)
)

// dose returns the dose in mg (or units for unit-dosed drugs) nearest after the mention in its
// sentence, or 0.
func dose(s *sentence, from int) (float64, string) {
	t := s.raw
	rel := max(0, from-s.start)
	best, unit, bestDist := 0.0, "", 1<<30
	for _, m := range doseRe.FindAllStringSubmatchIndex(t, -1) {
		v, err := strconv.ParseFloat(t[m[2]:m[3]], 64)
		if err != nil {
			continue
		}
		d := m[0] - rel
		if d < 0 {
			d = -d * 2 // prefer a dose after the drug name
		}
		u := strings.ToLower(t[m[4]:m[5]])
		if u == "ml" || u == "cc" {
			continue
		}
		if d < bestDist {
			best, unit, bestDist = v, u, d
		}
	}
	switch {
	case strings.HasPrefix(unit, "g"):
		return best * 1000, "mg"
	case strings.HasPrefix(unit, "mcg"), strings.HasPrefix(unit, "microgram"):
		return best / 1000, "mg"
	case unit == "million units":
		return best * 1e6, "units"
	case unit == "units":
		return best, "units"
	}
	return best, "mg"
}

// procedures finds the procedures performed at the encounter and turns them into lines (pointers
// are resolved later against the final diagnosis order).
func (c *coding) procedures() []*lineCand {
	trie := procedureTrie()
	var found []procMention
	seen := map[string]bool{}
	for si := range c.n.sents {
		s := &c.n.sents[si]
		if s.section == secFH || s.section == secPMH || s.section == secPSH || s.section == secAllergies || s.section == secMeds ||
			(c.n.dictated && !s.dictated) {
			continue // in a recorded visit the dictation says what was done; the talk plans and explains
		}
		for i := 0; i < len(s.toks); {
			ms := trie.matchAt(s.toks, i, 0, nil)
			if len(ms) == 0 {
				i++
				continue
			}
			best := ms[0]
			for _, m := range ms[1:] {
				if m.end > best.end {
					best = m
				}
			}
			def := &procedures[best.id]
			key := def.id + "@" + strconv.Itoa(s.line)
			if def.kind == pkScreen {
				key = def.id + "@" + strings.Join(words(s.toks, i, best.end), " ") // one unit per instrument
			}
			if c.performed(s, i, best.end, def) && !seen[key] {
				found = append(found, procMention{def: def, s: s, ts: i, te: best.end})
				seen[key] = true
			}
			i = best.end
		}
		if idRe.MatchString(s.raw) && !seen["i-and-d"] && c.performed(s, 0, 0, &procedures[0]) {
			for i := range procedures {
				if procedures[i].id == "i-and-d" {
					found = append(found, procMention{def: &procedures[i], s: s, ts: 0, te: 0})
					seen["i-and-d"] = true
				}
			}
		}
	}
	return c.lines(found)
}

// lineCand is a procedure line before diagnosis pointers are resolved.
type lineCand struct {
	Line
	groups []string
	sent   *sentence
	admin  bool // an administration line that follows its product
}

func (c *coding) lines(found []procMention) []*lineCand {
	var out []*lineCand
	byCode := map[string]*lineCand{}
	add := func(code string, units int, pm procMention, groups []string, mods ...string) *lineCand {
		if l := byCode[code]; l != nil && code != "96372" {
			if pm.def.kind == pkScreen {
				l.Units += units
			}
			l.Evidence = append(l.Evidence, spanOf(c.n, pm.s.start, pm.s.end))
			return l
		}
		sys := codes.CPT
		if code[0] >= 'A' && code[0] <= 'Z' {
			sys = codes.HCPCS
		}
		l := &lineCand{Line: Line{Code: code, System: sys, Units: units, Modifiers: mods,
			Evidence: []Span{spanOf(c.n, pm.s.start, pm.s.end)}, Confidence: 0.9}, groups: groups, sent: pm.s}
		if pm.def.kind == pkImaging {
			l.Confidence, l.Note = 0.8, "radiograph code chosen by body part and number of views"
		}
		byCode[code] = l
		out = append(out, l)
		return l
	}
	vaccines, components := 0, 0
	var medicareAdmin []string // G0008/G0009/G0010 for Medicare's Part B vaccines
	jointSentences := map[*sentence]bool{}
	for _, pm := range found {
		if pm.def.kind == pkJoint {
			jointSentences[pm.s] = true
		}
	}
	injections := 0
	for _, pm := range found {
		def := pm.def
		code := def.code
		for _, alt := range def.alts {
			if pm.s.has(alt.phrases...) {
				code = alt.code
			}
		}
		var mods []string
		if def.qw {
			mods = append(mods, "QW")
		}
		units := 1
		if def.count {
			units = max(1, countIn(pm.s))
		}
		switch def.kind {
		case pkTest, pkScreen:
			add(code, units, pm, def.groups, mods...)
		case pkImaging:
			code, ok := c.imagingCode(pm.s)
			if !ok {
				continue
			}
			add(code, 1, pm, def.groups, c.sideModifiers(code, pm.s)...)
		case pkProc:
			switch def.rule {
			case "tobacco":
				mins := 0
				if m := minutesRe.FindStringSubmatch(pm.s.raw); m != nil {
					mins, _ = strconv.Atoi(m[1])
				}
				switch {
				case mins > 10:
					code = "99407"
				case mins >= 3:
					code = "99406"
				default:
					continue // under 3 minutes is not separately reported
				}
			case "cerumen":
				if pm.s.has("irrigation", "irrigated", "lavage", "flushed") && !pm.s.has("curette", "curet", "instrumentation", "forceps", "suction", "loop", "instrument") {
					code = "69209"
				}
			case "repair":
				code = c.repairCode(pm.s)
			case "destruction":
				c.destruction(pm, add)
				continue
			case "nails":
				// debridement of nails: 11720 for one to five, 11721 for six or more (one unit)
				if units >= 6 {
					code = "11721"
				}
				units = 1
			case "psychotherapy":
				// the psychotherapy add-on with an E/M by its time: 16-37, 38-52, 53 minutes or more
				mins := 0
				if m := minutesRe.FindStringSubmatch(digitMinutes(pm.s.raw)); m != nil {
					mins, _ = strconv.Atoi(m[1])
				}
				switch {
				case mins >= 53:
					code = "90838"
				case mins >= 38:
					code = "90836"
				case mins >= 16:
					code = "90833"
				default:
					continue // no time stated, or under 16 minutes: not reportable
				}
			}
			if def.side {
				mods = append(mods, c.sideModifiers(code, pm.s)...)
			}
			add(code, units, pm, def.groups, mods...)
		case pkJoint:
			code := "20610"
			switch {
			case pm.s.has("elbow", "wrist", "ankle"):
				code = "20605"
			case pm.s.has("finger", "toe", "thumb", "mcp", "pip", "dip joint"):
				code = "20600"
			}
			part := "msk"
			for _, p := range []string{"knee", "shoulder", "hip", "elbow", "wrist", "ankle"} {
				if pm.s.has(p) {
					part = "msk:" + p
					break
				}
			}
			add(code, 1, pm, []string{part, "msk"}, c.sideModifiers(code, pm.s)...)
		case pkVaccine:
			if def.rule == "flu" {
				code = fluVaccineCode(pm.s, c.in.ServiceDate)
			}
			if _, dup := byCode[code]; !dup {
				// Medicare pays influenza, pneumococcal and hepatitis B vaccines under Part B, with
				// their own administration codes
				if g := medicareVaccineAdmin[def.id]; g != "" && c.medicare() {
					medicareAdmin = append(medicareAdmin, g)
				} else {
					vaccines++
					components += max(1, def.comps)
				}
			}
			add(code, 1, pm, def.groups)
		case pkDrug:
			steroid := def.id == "drug-triamcinolone" || def.id == "drug-methylpred" || def.id == "drug-betamethasone" || def.id == "drug-dexamethasone"
			if steroid && len(jointSentences) > 0 && !pm.s.has("IM", "intramuscular", "intramuscularly", "gluteal", "gluteus", "deltoid") {
				jointSentences[pm.s] = true // the steroid of the joint injection, included in its code's administration
			}
			l := c.drugLine(pm, jointSentences[pm.s], add)
			if l != nil && !jointSentences[pm.s] {
				injections++
			}
		}
	}
	for _, g := range medicareAdmin {
		first := procMention{s: firstVaccineSentence(out), def: &procDef{kind: pkVaccine}}
		add(g, 1, first, []string{"vaccine"}).admin = true
	}
	if vaccines > 0 {
		first := procMention{s: firstVaccineSentence(out), def: &procDef{kind: pkVaccine}}
		if c.age >= 0 && c.age < 19 && c.vaccineCounselling() {
			// 90460 for each vaccine with counselling by the physician, 90461 for each component
			// after the first of each vaccine (patients through 18 years)
			add("90460", vaccines, first, []string{"vaccine"}).admin = true
			if components > vaccines {
				add("90461", components-vaccines, first, []string{"vaccine"}).admin = true
			}
		} else {
			add("90471", 1, first, []string{"vaccine"}).admin = true
			if vaccines > 1 {
				add("90472", vaccines-1, first, []string{"vaccine"}).admin = true
			}
		}
	}
	if injections > 0 {
		for _, l := range out {
			if l.System == codes.HCPCS && strings.HasPrefix(l.Code, "J") && !jointSentences[l.sent] {
				adm := add("96372", 1, procMention{s: l.sent, def: &procDef{kind: pkDrug}}, l.groups)
				adm.admin = true
				adm.Units = injections
				break
			}
		}
	}
	for _, l := range out {
		// Medically Unlikely Edits: no more units per day than CMS allows a practitioner.
		if p, ok := codes.PaymentOf(l.Code); ok && p.MUE > 0 && l.Units > p.MUE {
			c.dropped = append(c.dropped, Dropped{Code: l.Code, Reason: fmt.Sprintf("%d units capped at the practitioner MUE of %d", l.Units, p.MUE)})
			l.Confidence, l.Note = 0.6, fmt.Sprintf("the note counts %d units; capped at the MUE of %d", l.Units, p.MUE)
			l.Units = p.MUE
		}
	}
	return out
}

// medicareVaccineAdmin are the Medicare Part B administration codes of vaccines by procedure id.
var medicareVaccineAdmin = map[string]string{"vax-flu": "G0008", "vax-pcv20": "G0009", "vax-ppsv23": "G0009", "vax-hepb": "G0010"}

// medicare reports a note that names Medicare as the patient's coverage.
func (c *coding) medicare() bool {
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if s.has("medicare") {
			if a, ok := assessPhrase(s, "medicare"); ok && (a.Negated || a.Hypothetical || a.Other) {
				continue
			}
			return true
		}
	}
	return false
}

// vaccineCounselling reports counselling on the vaccines by the physician or other qualified
// professional (90460/90461 need it; without it, 90471/90472).
func (c *coding) vaccineCounselling() bool {
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if c.n.dictated && !s.dictated {
			continue
		}
		if s.has("vaccine counselling", "vaccine counseling", "counselled on each vaccine", "counseled on each vaccine", "vaccine counselling by me",
			"counseling on the vaccines", "counselled on the vaccines", "counseled on the vaccines", "vis reviewed", "counselled about the vaccines") {
			return true
		}
	}
	return false
}

// sideModifiers returns RT or LT for one side, 50 for both, from the sentence (or the procedure
// section), when the CMS bilateral indicator of code allows a side at all.
func (c *coding) sideModifiers(code string, s *sentence) []string {
	if p, ok := codes.PaymentOf(code); ok && (p.Bilateral == "0" || p.Bilateral == "9") && code != "69210" {
		return nil
	}
	side := sideWordsIn(s)
	if side == 0 || (side == 'B' && !s.has("both", "bilateral", "bilaterally", "ears", "knees", "both ears")) {
		if sd := c.procedureSide(); sd != 0 {
			side = sd
		}
	}
	switch side {
	case 'R':
		return []string{"RT"}
	case 'L':
		return []string{"LT"}
	case 'B':
		return []string{"50"}
	}
	return nil
}

// destruction codes cryotherapy and other destruction: premalignant lesions (actinic keratoses)
// 17000 for the first and 17003 for each of the 2nd-14th (17004 for 15 or more); benign lesions
// such as warts 17110 for up to 14, 17111 for 15 or more.
func (c *coding) destruction(pm procMention, add func(string, int, procMention, []string, ...string) *lineCand) {
	groups := pm.def.groups
	n := c.lesionCount(pm.s)
	switch {
	case c.lesionSentence(pm.s, "actinic keratosis", "actinic keratoses", "AK", "AKs", "aks", "precancerous", "premalignant", "solar keratosis", "solar keratoses"):
		if n >= 15 {
			add("17004", 1, pm, groups)
			return
		}
		add("17000", 1, pm, groups)
		if n > 1 {
			add("17003", n-1, pm, groups)
		}
	case c.lesionSentence(pm.s, "wart", "warts", "verruca", "molluscum", "skin tag", "skin tags", "benign lesion", "benign lesions"):
		if n >= 15 {
			add("17111", 1, pm, groups)
			return
		}
		add("17110", 1, pm, groups)
	}
}

// lesionSentence reports one of the lesion words in s or in the sentence before it on the line.
func (c *coding) lesionSentence(s *sentence, words ...string) bool {
	if s.has(words...) {
		return true
	}
	return s.idx > 0 && c.n.sents[s.idx-1].line == s.line && c.n.sents[s.idx-1].has(words...)
}

// lesionCount counts lesions in s, else in the sentence before it on the line.
func (c *coding) lesionCount(s *sentence) int {
	if n := countIn(s); n > 1 {
		return n
	}
	if s.idx > 0 && c.n.sents[s.idx-1].line == s.line {
		return countIn(&c.n.sents[s.idx-1])
	}
	return 1
}

// imagingRow is one line of data/imaging.txt.
type imagingRow struct {
	part     []string
	min, max int
	code     string
}

var imagingRows = sync.OnceValue(func() []imagingRow {
	var out []imagingRow
	for _, f := range dataLines("imaging.txt") {
		if len(f) != 4 {
			panic("coder: data/imaging.txt: want PART | min | max | CODE: " + strings.Join(f, "|"))
		}
		lo, _ := strconv.Atoi(f[1])
		hi, _ := strconv.Atoi(f[2])
		out = append(out, imagingRow{part: []string{f[0]}, min: lo, max: hi, code: f[3]})
	}
	return out
})

var viewsRe = regexp.MustCompile(`(?i)\b(\d|one|two|three|four|five|single)[- ]views?\b|\b(\d|one|two|three|four|five)\s+views?\b`)

// imagingCode returns the radiograph code of a sentence that says an x-ray was taken in the office
// today, by body part and number of views.
func (c *coding) imagingCode(s *sentence) (string, bool) {
	if !s.has("obtained", "taken today", "performed", "done today", "in the office", "in office", "in clinic", "interpreted today") ||
		s.has("urgent care", "emergency", "outside", "at the hospital", "ordered", "will obtain", "next visit") {
		return "", false
	}
	views := 0
	if m := viewsRe.FindStringSubmatch(s.raw); m != nil {
		w := m[1]
		if w == "" {
			w = m[2]
		}
		if w == "single" {
			views = 1
		} else {
			views = spokenNumber(w)
		}
	}
	for _, r := range imagingRows() {
		if !s.has(r.part...) {
			continue
		}
		if views == 0 || (views >= r.min && views <= r.max) {
			return r.code, true
		}
	}
	return "", false
}

func firstVaccineSentence(ls []*lineCand) *sentence {
	for _, l := range ls {
		if strings.HasPrefix(l.Code, "90") && l.Code >= "90476" && l.Code <= "90759" {
			return l.sent
		}
	}
	return ls[0].sent
}

// fluVaccineCode picks the influenza vaccine product: high dose, quadrivalent (through the 2023-24
// season) or trivalent (from the 2024-25 season, when US vaccines became trivalent).
func fluVaccineCode(s *sentence, date time.Time) string {
	switch {
	case s.has("high-dose", "high dose", "fluzone high-dose"):
		return "90662"
	case s.has("quadrivalent"):
		return "90686"
	case s.has("trivalent"):
		return "90656"
	case !date.IsZero() && date.Before(time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)):
		return "90686"
	}
	return "90656"
}

// drugLine adds the HCPCS line of a drug given in the office, with units from the dose.
func (c *coding) drugLine(pm procMention, inJoint bool, add func(string, int, procMention, []string, ...string) *lineCand) *lineCand {
	if !inJoint && !pm.s.has("IM", "im", "intramuscular", "intramuscularly", "injection", "injected", "subcutaneous", "subcutaneously", "SC", "given", "administered", "shot") {
		return nil
	}
	if pm.s.has("orally", "po", "PO", "by mouth", "oral", "tablet", "tablets", "taper", "dose pack", "prescribed", "prescription", "rx") && !pm.s.has("IM", "intramuscular", "intramuscularly", "injection", "injected") {
		return nil // a prescription or an oral dose, not a drug supplied by injection
	}
	amount, unit := dose(pm.s, pm.s.toks[pm.ts].start)
	code := pm.def.code
	units := 1
	per := func(size float64) int {
		if amount <= 0 {
			return 1
		}
		return int(math.Ceil(amount/size - 1e-9))
	}
	switch {
	case pm.def.rule == "methylprednisolone" && !c.in.ServiceDate.IsZero() && c.in.ServiceDate.Before(time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)):
		// J1030/J1040 (40/80 mg) until J1010 (per 1 mg) replaced them on 2024-04-01
		code = "J1030"
		if amount >= 80 {
			code = "J1040"
		}
	case pm.def.perIU:
		if unit == "units" {
			units = per(pm.def.per)
		}
	case pm.def.per > 0:
		units = per(pm.def.per)
	}
	if units < 1 {
		units = 1
	}
	return add(code, units, pm, pm.def.groups)
}

func (c *coding) repairCode(s *sentence) string {
	length := 0.0
	for i := range c.n.sents {
		o := &c.n.sents[i]
		if o.line != s.line && o.section != secProcedure && o != s {
			continue
		}
		if m := lengthRe.FindStringSubmatch(o.raw); m != nil {
			length, _ = strconv.ParseFloat(m[1], 64)
			break
		}
	}
	if length == 0 {
		if m := lengthRe.FindStringSubmatch(c.n.text); m != nil {
			length, _ = strconv.ParseFloat(m[1], 64)
		}
	}
	face := false
	for i := range c.n.sents {
		o := &c.n.sents[i]
		if (o.section == secProcedure || o == s) && o.has("face", "forehead", "cheek", "eyebrow", "lip", "nose", "chin", "ear", "eyelid") {
			face = true
		}
	}
	switch {
	case face && length > 2.5:
		return "12013"
	case face:
		return "12011"
	case length > 7.5:
		return "12004"
	case length > 2.5:
		return "12002"
	}
	return "12001"
}

// procedureSide returns the side named in the procedure section, or 0 (or ambiguity).
func (c *coding) procedureSide() byte {
	var side byte
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if s.section != secProcedure {
			continue
		}
		if sd := sideWordsIn(s); sd != 0 {
			if side != 0 && side != sd {
				return 0
			}
			side = sd
		}
	}
	return side
}

func sideWordsIn(s *sentence) byte {
	var r, l, b bool
	for _, t := range s.toks {
		switch sideWord(t.norm) {
		case 'R':
			r = true
		case 'L':
			l = true
		case 'B':
			b = true
		}
	}
	switch {
	case b || (r && l):
		return 'B'
	case r:
		return 'R'
	case l:
		return 'L'
	}
	return 0
}

// countNouns are the things a procedure's units count.
var countNouns = map[string]bool{"lesion": true, "wart": true, "keratosis": true, "keratose": true, "ak": true, "spot": true, "test": true,
	"nail": true, "toenail": true, "fingernail": true}

// countIn returns the number before a counted noun in s ("four benign warts", "forty tests"), or 1.
func countIn(s *sentence) int {
	for i, t := range s.toks {
		if !countNouns[strings.TrimPrefix(t.norm, "abbr:")] {
			continue
		}
		for j := i - 1; j >= 0 && j >= i-3; j-- {
			word := func(k int) string { return s.raw[s.toks[k].start-s.start : s.toks[k].end-s.start] }
			if j > 0 {
				// "twenty-two", "thirty five"
				if n := spokenNumber(s.raw[s.toks[j-1].start-s.start : s.toks[j].end-s.start]); n > 0 && tensWords[strings.ToLower(word(j-1))] > 0 {
					return n
				}
			}
			if n := spokenNumber(word(j)); n > 0 {
				return n
			}
		}
	}
	return 1
}
