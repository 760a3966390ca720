package coder

import (
	"math"
	"regexp"
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
	pkScreen               // standardized instrument (96127)
)

// procDef is one procedure the built-in coder recognises.
type procDef struct {
	id     string
	terms  []string
	code   string
	kind   pkind
	groups []string // diagnosis groups the line points to
	self   bool     // the phrase itself reports the service done ("counseled on smoking cessation")
}

// Procedure codes after which the E/M needs modifier 25 (a significant, separately identifiable
// E/M on the day of a procedure with a global period or an NCCI edit against the E/M): minor
// surgery (10004-69990) other than venipuncture, vaccine and drug administration, inhalation
// treatment and tobacco counseling.
func needs25(code string) bool {
	switch code {
	case "36415":
		return false
	case "90460", "90461", "90471", "90472", "90473", "90474", "96372", "96373", "96374", "94640", "99406", "99407", "G0008", "G0009":
		return true
	}
	return len(code) == 5 && code >= "10004" && code <= "69990" && isDigits(code)
}

var procedures = []procDef{
	{id: "ecg", code: "93000", kind: pkTest, groups: []string{"cardio", "chest", "cardio:hf", "neuro:dizzy"},
		terms: []string{"ECG", "EKG", "ecg", "ekg", "electrocardiogram", "12-lead", "12 lead"}},
	{id: "spirometry", code: "94010", kind: pkTest, groups: []string{"resp"}, terms: []string{"spirometry", "pulmonary function test", "pulmonary function testing", "PFT", "PFTs"}},
	{id: "neb", code: "94640", kind: pkProc, groups: []string{"resp"}, terms: []string{"nebulizer treatment", "neb treatment", "nebulized albuterol", "albuterol nebulizer",
		"albuterol neb", "duoneb", "DuoNeb", "nebulizer", "breathing treatment"}},
	{id: "rapid-strep", code: "87880", kind: pkTest, groups: []string{"throat"}, terms: []string{"rapid strep", "rapid strep test", "rapid antigen strep", "strep test", "rapid streptococcal"}},
	{id: "rapid-flu", code: "87804", kind: pkTest, groups: []string{"resp", "infection", "general"}, terms: []string{"rapid flu", "rapid influenza", "flu test", "influenza test", "flu swab", "FLU test", "FLU swab"}},
	{id: "rapid-covid", code: "87811", kind: pkTest, groups: []string{"resp", "infection", "general"}, terms: []string{"rapid covid", "covid antigen", "COVID antigen", "COVID test", "covid test", "rapid COVID", "COVID-19 antigen"}},
	{id: "ua", code: "81002", kind: pkTest, groups: []string{"gu"}, terms: []string{"urinalysis", "UA", "urine dip", "urine dipstick", "dipstick urinalysis", "urine dipstick test"}},
	{id: "upt", code: "81025", kind: pkTest, groups: []string{"gu"}, terms: []string{"urine pregnancy test", "urine hcg", "urine pregnancy", "pregnancy test"}},
	{id: "glucose", code: "82962", kind: pkTest, groups: []string{"endo"}, terms: []string{"fingerstick glucose", "finger stick glucose", "point of care glucose", "POC glucose", "accucheck", "accu-check", "glucometer reading"}},
	{id: "poc-a1c", code: "83036", kind: pkTest, groups: []string{"endo"}, terms: []string{"point of care a1c", "point-of-care a1c", "POC A1c", "poc a1c", "in-office a1c", "a1c in office", "a1c in clinic", "office a1c"}},
	{id: "poc-inr", code: "85610", kind: pkTest, groups: []string{"cardio"}, terms: []string{"PT/INR", "pt/inr", "fingerstick inr", "point of care inr", "POC INR", "coaguchek", "INR performed", "inr performed"}},
	{id: "venipuncture", code: "36415", kind: pkTest, groups: []string{"*"}, terms: []string{"venipuncture", "blood drawn", "blood draw", "labs drawn", "phlebotomy", "drew blood", "blood was drawn", "labs were drawn"}},
	{id: "phq9", code: "96127", kind: pkScreen, groups: []string{"psych"}, terms: []string{"PHQ-9", "PHQ9", "phq-9", "phq 9", "GAD-7", "gad-7", "GAD7", "gad 7", "PHQ-2", "phq-2", "edinburgh postnatal depression scale", "EPDS", "M-CHAT", "vanderbilt"}},
	{id: "hearing", code: "92551", kind: pkTest, groups: []string{"wellness"}, terms: []string{"hearing screen", "hearing screening", "audiometry screening", "screening audiometry"}},
	{id: "vision", code: "99173", kind: pkTest, groups: []string{"wellness"}, terms: []string{"vision screen", "vision screening", "visual acuity screening", "snellen"}},
	{id: "developmental", code: "96110", kind: pkTest, groups: []string{"wellness"}, terms: []string{"developmental screening", "ASQ", "ages and stages questionnaire"}},
	{id: "tobacco-counsel", code: "99406", kind: pkProc, self: true, groups: []string{"psych"}, terms: []string{"smoking cessation counseling", "tobacco cessation counseling", "counseled on smoking cessation",
		"counseled on tobacco cessation", "counseling on smoking cessation", "counseled regarding smoking cessation", "counseled about smoking cessation", "cessation counseling"}},
	{id: "cerumen-removal", code: "69210", kind: pkProc, groups: []string{"ear"}, terms: []string{"cerumen removal", "earwax removal", "ear wax removal", "cerumen was removed",
		"removed cerumen", "removal of cerumen", "cerumen disimpaction", "disimpaction", "ear irrigation", "ear lavage", "irrigated * ear", "irrigated the * ear", "ears irrigated", "ear was irrigated", "ears were irrigated", "cerumen removed"}},
	{id: "i-and-d", code: "10060", kind: pkProc, groups: []string{"skin"}, terms: []string{"incision and drainage", "incised and drained", "I&D"}},
	{id: "lac-repair", code: "12001", kind: pkProc, groups: []string{"skin:forearm", "skin:hand", "skin:leg", "skin:knee", "skin:scalp", "skin"},
		terms: []string{"laceration repair", "repair of * laceration", "repaired with", "simple repair", "sutured", "closed with", "simple interrupted sutures", "wound was closed", "laceration was closed", "laceration was repaired"}},
	{id: "shave-biopsy", code: "11102", kind: pkProc, groups: []string{"skin"}, terms: []string{"shave biopsy", "tangential biopsy"}},
	{id: "punch-biopsy", code: "11104", kind: pkProc, groups: []string{"skin"}, terms: []string{"punch biopsy"}},
	{id: "cryo", code: "17110", kind: pkProc, groups: []string{"skin"}, terms: []string{"cryotherapy", "liquid nitrogen", "cryosurgery", "cryo", "destruction of"}},
	{id: "joint-injection", code: "20610", kind: pkJoint, groups: []string{"msk"}, terms: []string{"joint injection", "intra-articular injection", "intraarticular injection",
		"steroid injection", "corticosteroid injection", "cortisone injection", "cortisone shot", "steroid shot", "arthrocentesis", "aspiration of * knee", "injected * knee",
		"injected the * knee", "knee injection", "shoulder injection", "subacromial injection", "bursa injection", "injection of * knee", "injection into * knee",
		"injection of the * knee", "injection into the * knee", "injected the * shoulder", "injection of the * shoulder", "injection into the subacromial", "injected the subacromial",
		"trochanteric bursa injection", "injected the * trochanteric", "injection of the * trochanteric", "injected the * hip", "injection into the * shoulder",
		"knee was injected", "shoulder was injected", "hip was injected", "joint was injected", "bursa was injected", "knee joint was injected",
		"subacromial space was injected", "subacromial bursa was injected", "space was injected"}},
	{id: "trigger-point", code: "20552", kind: pkProc, groups: []string{"msk"}, terms: []string{"trigger point injection", "trigger point injections"}},
	{id: "splint-arm", code: "29125", kind: pkProc, groups: []string{"msk:wrist", "msk:forearm"}, terms: []string{"short arm splint", "volar splint", "wrist splint applied", "sugar tong splint", "thumb spica splint", "ulnar gutter splint", "volar wrist splint"}},
	{id: "splint-leg", code: "29515", kind: pkProc, groups: []string{"msk:ankle", "msk:foot"}, terms: []string{"short leg splint", "posterior splint", "posterior leg splint", "ankle splint applied", "posterior short leg splint"}},
	{id: "awv", code: "G0439", kind: pkTest, groups: []string{"wellness"}, terms: []string{"annual wellness visit", "medicare wellness visit", "AWV"}},

	{id: "vax-flu", kind: pkVaccine, groups: []string{"vaccine"}, terms: []string{"influenza vaccine", "flu vaccine", "flu shot", "influenza immunization", "flu vaccination",
		"influenza vaccination", "fluzone", "flucelvax", "afluria", "fluarix", "flulaval", "FLU vaccine", "FLU shot", "high-dose flu", "fluzone high-dose"}},
	{id: "vax-tdap", code: "90715", kind: pkVaccine, groups: []string{"vaccine"}, terms: []string{"tdap", "Tdap", "TDAP", "boostrix", "adacel"}},
	{id: "vax-td", code: "90714", kind: pkVaccine, groups: []string{"vaccine"}, terms: []string{"td vaccine", "Td vaccine", "tenivac"}},
	{id: "vax-pcv20", code: "90677", kind: pkVaccine, groups: []string{"vaccine"}, terms: []string{"prevnar 20", "prevnar-20", "pcv20", "PCV20", "PCV 20", "pneumococcal conjugate vaccine"}},
	{id: "vax-ppsv23", code: "90732", kind: pkVaccine, groups: []string{"vaccine"}, terms: []string{"pneumovax", "ppsv23", "PPSV23", "PPSV 23", "pneumococcal polysaccharide vaccine"}},
	{id: "vax-zoster", code: "90750", kind: pkVaccine, groups: []string{"vaccine"}, terms: []string{"shingrix", "zoster vaccine", "shingles vaccine", "recombinant zoster vaccine"}},
	{id: "vax-hepb", code: "90746", kind: pkVaccine, groups: []string{"vaccine"}, terms: []string{"hepatitis b vaccine", "engerix", "engerix-b", "recombivax"}},
	{id: "vax-hpv", code: "90651", kind: pkVaccine, groups: []string{"vaccine"}, terms: []string{"gardasil", "hpv vaccine", "HPV vaccine", "gardasil 9"}},
	{id: "vax-mmr", code: "90707", kind: pkVaccine, groups: []string{"vaccine"}, terms: []string{"mmr", "MMR vaccine", "mmr vaccine", "measles mumps rubella vaccine"}},

	{id: "drug-ketorolac", code: "J1885", kind: pkDrug, groups: []string{"msk", "neuro:head", "abdomen", "gu", "chest"}, terms: []string{"ketorolac", "toradol"}},
	{id: "drug-ceftriaxone", code: "J0696", kind: pkDrug, groups: []string{"infection"}, terms: []string{"ceftriaxone", "rocephin"}},
	{id: "drug-methylpred", code: "J1010", kind: pkDrug, groups: []string{"msk", "resp", "skin"}, terms: []string{"depo-medrol", "depo medrol", "depomedrol", "methylprednisolone acetate"}},
	{id: "drug-triamcinolone", code: "J3301", kind: pkDrug, groups: []string{"msk", "skin", "resp"}, terms: []string{"kenalog", "triamcinolone acetonide", "triamcinolone"}},
	{id: "drug-dexamethasone", code: "J1100", kind: pkDrug, groups: []string{"resp", "throat", "skin", "msk"}, terms: []string{"dexamethasone", "decadron"}},
	{id: "drug-betamethasone", code: "J0702", kind: pkDrug, groups: []string{"msk", "skin"}, terms: []string{"celestone", "betamethasone"}},
	{id: "drug-bicillin", code: "J0561", kind: pkDrug, groups: []string{"throat", "infection"}, terms: []string{"bicillin", "bicillin l-a", "penicillin g benzathine", "benzathine penicillin"}},
	{id: "drug-b12", code: "J3420", kind: pkDrug, groups: []string{"endo"}, terms: []string{"b12 injection", "vitamin b12 injection", "cyanocobalamin", "B12 injection", "b12 shot"}},
	{id: "drug-testosterone", code: "J1071", kind: pkDrug, groups: []string{"endo"}, terms: []string{"testosterone cypionate", "depo-testosterone"}},
	{id: "drug-depo-provera", code: "J1050", kind: pkDrug, groups: []string{"contraception"}, terms: []string{"depo-provera", "depo provera", "medroxyprogesterone"}},
	{id: "drug-promethazine", code: "J2550", kind: pkDrug, groups: []string{"gi"}, terms: []string{"promethazine", "phenergan"}},
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
	if def.self && !s.has(strongNotPerformed...) {
		return true
	}
	if s.has(strongNotPerformed...) && !s.has("performed today", "given today", "administered today", "done today", "in office today", "today in office", "today in clinic") {
		return false
	}
	if s.section == secProcedure {
		return true
	}
	if s.has(pastCues...) || a.Historical {
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

// procMention is one recognised, performed procedure.
type procMention struct {
	def *procDef
	s   *sentence
	ts  int
	te  int
}

var (
	doseRe    = regexp.MustCompile(`(?i)(\d+(?:\.\d+)?)\s*(mg|milligrams?|g|grams?|mcg|micrograms?|million units|units|ml|cc)\b`)
	lengthRe  = regexp.MustCompile(`(?i)(\d+(?:\.\d+)?)\s*(?:cm|centimeters?)\b`)
	minutesRe = regexp.MustCompile(`(?i)(\d{1,3})\s*(?:-\s*)?(?:minutes?|mins?)\b`)
	countRe   = regexp.MustCompile(`(?i)\b(\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty)\s+(?:\w+\s+){0,2}(?:lesions?|warts?|actinic keratos[ie]s|aks?|keratoses|spots?)\b`)
	idRe      = regexp.MustCompile(`(?i)\bI\s*&\s*D\b`)
)

var numberWords = map[string]int{"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
	"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20}

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
		if s.section == secFH || s.section == secPMH || s.section == secPSH || s.section == secAllergies || s.section == secMeds {
			continue
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
			Evidence: []Span{spanOf(c.n, pm.s.start, pm.s.end)}}, groups: groups, sent: pm.s}
		byCode[code] = l
		out = append(out, l)
		return l
	}
	vaccines := 0
	jointSentences := map[*sentence]bool{}
	for _, pm := range found {
		if pm.def.kind == pkJoint {
			jointSentences[pm.s] = true
		}
	}
	injections := 0
	for _, pm := range found {
		def := pm.def
		switch def.kind {
		case pkTest:
			code := def.code
			if def.id == "spirometry" && pm.s.has("pre and post", "before and after", "post-bronchodilator", "post bronchodilator", "pre- and post", "bronchodilator response") {
				code = "94060"
			}
			if def.id == "ua" && pm.s.has("automated") {
				code = "81003"
			}
			if def.id == "awv" && pm.s.has("initial", "first") {
				code = "G0438"
			}
			add(code, 1, pm, def.groups)
		case pkScreen:
			add(def.code, 1, pm, def.groups)
		case pkProc:
			code, units, mods := def.code, 1, []string(nil)
			switch def.id {
			case "tobacco-counsel":
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
			case "cerumen-removal":
				if pm.s.has("irrigation", "irrigated", "lavage", "flushed") && !pm.s.has("curette", "curet", "instrumentation", "forceps", "suction", "loop", "instrument") {
					code = "69209"
				}
				if sideWordsIn(pm.s) == 'B' || pm.s.has("ears", "both ears", "bilateral") {
					mods = []string{"50"}
				}
			case "lac-repair":
				code = c.repairCode(pm.s)
			case "cryo":
				if pm.s.has("actinic keratosis", "actinic keratoses", "AK", "AKs", "aks", "precancerous", "solar keratosis", "solar keratoses") {
					n := countIn(pm.s)
					add("17000", 1, pm, def.groups)
					if n > 1 {
						add("17003", min(n-1, 13), pm, def.groups)
					}
					continue
				}
				if !pm.s.has("wart", "warts", "verruca", "molluscum", "skin tag", "skin tags") {
					continue
				}
			case "neb":
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
			var mods []string
			side := sideWordsIn(pm.s)
			if side == 0 {
				side = c.procedureSide()
			}
			switch side {
			case 'R':
				mods = []string{"RT"}
			case 'L':
				mods = []string{"LT"}
			case 'B':
				mods = []string{"50"}
			}
			part := "msk"
			for _, p := range []string{"knee", "shoulder", "hip", "elbow", "wrist", "ankle"} {
				if pm.s.has(p) {
					part = "msk:" + p
					break
				}
			}
			add(code, 1, pm, []string{part, "msk"}, mods...)
		case pkVaccine:
			code := def.code
			if def.id == "vax-flu" {
				code = fluVaccineCode(pm.s, c.in.ServiceDate)
			}
			if _, dup := byCode[code]; !dup {
				vaccines++
			}
			add(code, 1, pm, def.groups)
		case pkDrug:
			steroid := pm.def.id == "drug-triamcinolone" || pm.def.id == "drug-methylpred" || pm.def.id == "drug-betamethasone" || pm.def.id == "drug-dexamethasone"
			if steroid && len(jointSentences) > 0 && !pm.s.has("IM", "intramuscular", "intramuscularly", "gluteal", "gluteus", "deltoid") {
				jointSentences[pm.s] = true // the steroid of the joint injection, included in its code's administration
			}
			l := c.drugLine(pm, jointSentences[pm.s], add)
			if l != nil && !jointSentences[pm.s] {
				injections++
			}
		}
	}
	if vaccines > 0 {
		first := procMention{s: firstVaccineSentence(out), def: &procDef{kind: pkVaccine}}
		add("90471", 1, first, []string{"vaccine"}).admin = true
		if vaccines > 1 {
			add("90472", vaccines-1, first, []string{"vaccine"}).admin = true
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
	return out
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
	switch pm.def.id {
	case "drug-ketorolac":
		units = per(15)
	case "drug-ceftriaxone":
		units = per(250)
	case "drug-methylpred":
		if !c.in.ServiceDate.IsZero() && c.in.ServiceDate.Before(time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)) {
			code = "J1030"
			if amount >= 80 {
				code = "J1040"
			}
			units = 1
		} else {
			units = per(1)
		}
	case "drug-triamcinolone":
		units = per(10)
	case "drug-dexamethasone":
		units = per(1)
	case "drug-betamethasone":
		units = per(6)
	case "drug-bicillin":
		if unit == "units" {
			units = per(100000)
		}
	case "drug-testosterone", "drug-depo-provera":
		units = per(1)
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

func countIn(s *sentence) int {
	m := countRe.FindStringSubmatch(s.raw)
	if m == nil {
		return 1
	}
	if n, err := strconv.Atoi(m[1]); err == nil {
		return n
	}
	return numberWords[strings.ToLower(m[1])]
}
