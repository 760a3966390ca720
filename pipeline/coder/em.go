package coder

import (
	"github.com/iambilly/billy/pipeline/codes"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// levelRank orders MDM levels; straightforward and minimal are the same rank.
var levelRank = map[string]int{LevelMinimal: 0, LevelStraightforward: 0, LevelLow: 1, LevelModerate: 2, LevelHigh: 3}

var rankLevel = []string{LevelStraightforward, LevelLow, LevelModerate, LevelHigh}

// EM codes by MDM rank (index 0 = straightforward).
var (
	newCodes         = []string{"99202", "99203", "99204", "99205"}
	establishedCodes = []string{"99212", "99213", "99214", "99215"}
)

// Time thresholds (2021 office/outpatient E/M, total time on the date of the encounter): the least
// minutes of each level.
var (
	newMinutes         = []int{15, 30, 45, 60}
	establishedMinutes = []int{10, 20, 30, 40}
)

// TimeCode returns the office/outpatient E/M code that minutes of total time support (2021 ranges:
// new 99202 15-29, 99203 30-44, 99204 45-59, 99205 60-74; established 99212 10-19, 99213 20-29,
// 99214 30-39, 99215 40-54), or "" below the lowest level. Time above the top range stays at the
// top level (prolonged services are reported separately).
func TimeCode(minutes int, established bool) string {
	mins, cs := newMinutes, newCodes
	if established {
		mins, cs = establishedMinutes, establishedCodes
	}
	code := ""
	for i, m := range mins {
		if minutes >= m {
			code = cs[i]
		}
	}
	return code
}

// MDMCode returns the office/outpatient E/M code of an MDM level.
func MDMCode(level string, established bool) string {
	r := levelRank[level]
	if established {
		return establishedCodes[r]
	}
	return newCodes[r]
}

// mdmLevel combines the three elements: the level is the one that two of three meet or exceed.
func mdmLevel(problems, data, risk string) string {
	rs := []int{levelRank[problems], levelRank[data], levelRank[risk]}
	sort.Ints(rs)
	return rankLevel[rs[1]]
}

var timeRes = []*regexp.Regexp{
	regexp.MustCompile(`(?i)(?:total time|time spent|i spent|spent a total of|spent|total of)[^.;]{0,80}?(\d{1,3})\s*(?:minutes|mins?)\b`),
	regexp.MustCompile(`(?i)(\d{1,3})\s*(?:minutes|mins?)\s+(?:were|was)?\s*spent`),
	regexp.MustCompile(`(?i)(\d{1,3})\s*(?:minutes|mins?)\s+(?:of\s+)?total\s+time`),
}

// totalTime finds the documented total time on the date of the encounter.
func (c *coding) totalTime() (int, *Span) {
	best, var_ := 0, (*Span)(nil)
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if s.has("smoking cessation", "tobacco cessation", "cessation counseling") && !s.has("total time", "total") {
			continue
		}
		if !strings.Contains(s.raw, "min") {
			continue // no minutes stated
		}
		raw := digitMinutes(s.raw)
		for _, re := range timeRes {
			m := re.FindStringSubmatchIndex(raw)
			if m == nil {
				continue
			}
			v, err := strconv.Atoi(raw[m[2]:m[3]])
			if err != nil || v <= 0 || v > 300 {
				continue
			}
			if v > best {
				sp := spanOf(c.n, s.start, s.end)
				best, var_ = v, &sp
			}
		}
	}
	return best, var_
}

// problemsLevel rates the number and complexity of problems addressed.
func (c *coding) problemsLevel(cands []*dxCand) (string, []string, []*mention) {
	type prob struct {
		kind string
		ms   []*mention
	}
	byConcept := map[string]*prob{}
	var reasons []string
	var ev []*mention
	for _, d := range cands {
		if d.prio != prioCurrent || d.typ == cStatus || d.typ == cBlock {
			continue
		}
		key := d.concept
		if key == "" {
			key = d.code
		}
		kind := ""
		switch d.typ {
		case cUrgent:
			kind = "threat"
		case cChronic:
			kind = "chronic-stable"
			if c.worsening(d) || strings.HasSuffix(d.code, ".65") || strings.HasSuffix(d.code, ".649") {
				kind = "chronic-exacerbation"
			}
			if c.severe(d) {
				kind = "threat"
			}
		case cAcuteSystemic:
			kind = "acute-systemic"
		case cAcute:
			kind = "acute"
			if c.systemic(d) {
				kind = "acute-systemic"
			}
		case cInjuryComplicated:
			kind = "injury-complicated"
		case cInjury:
			kind = "acute"
		case cMinor:
			kind = "minor"
		case cSymptom:
			kind = "acute"
			if overlaps(d.groups, c.uncertain) || c.undiagnosed(d) {
				kind = "undiagnosed"
			}
		}
		p := byConcept[key]
		if p == nil || kindRank[kind] > kindRank[p.kind] {
			byConcept[key] = &prob{kind: kind, ms: d.mentions}
		}
	}
	counts := map[string]int{}
	keys := make([]string, 0, len(byConcept))
	for k := range byConcept {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := byConcept[k]
		counts[p.kind]++
		reasons = append(reasons, k+": "+p.kind)
		if len(p.ms) > 0 {
			ev = append(ev, p.ms[0])
		}
	}
	level := LevelStraightforward
	switch {
	case counts["threat"] > 0:
		level = LevelHigh
	case counts["chronic-exacerbation"] > 0 || counts["chronic-stable"] >= 2 || counts["undiagnosed"] > 0 ||
		counts["acute-systemic"] > 0 || counts["injury-complicated"] > 0:
		level = LevelModerate
	case counts["chronic-stable"] == 1 || counts["acute"] > 0 || counts["minor"] >= 2:
		level = LevelLow
	}
	return level, reasons, ev
}

var kindRank = map[string]int{"minor": 0, "acute": 1, "chronic-stable": 2, "undiagnosed": 3, "acute-systemic": 3,
	"injury-complicated": 3, "chronic-exacerbation": 4, "threat": 5}

var worseningWords = []string{"worsening", "worse", "uncontrolled", "not controlled", "poorly controlled", "not at goal", "above goal",
	"exacerbation", "flare", "flare-up", "progression", "progressing", "progressed", "inadequately controlled", "suboptimal",
	"suboptimally controlled", "not well controlled", "side effect", "side effects", "elevated", "increased", "increasing", "rising",
	"deteriorating", "not improving", "persistent symptoms", "out of control", "not adequately controlled", "above target",
	"undertreated", "under-treated", "subtherapeutic", "attack", "not at target", "hypoglycemia", "hyperglycemia", "breakthrough",
	"fluctuation", "fluctuations", "wearing-off", "progressive", "newly diagnosed", "new diagnosis", "adverse effect", "side effect of",
	"recurrence", "relapse", "impaction", "despite"}

// worsening reports a chronic illness with exacerbation, progression or treatment side effects,
// read from the sentences that mention it in the assessment.
func (c *coding) worsening(d *dxCand) bool {
	for _, m := range d.mentions {
		if m.s.has(worseningWords...) {
			return true
		}
		// the assessment item continues on the next sentences of the same line (in a dictation,
		// which is one line, the clauses after a semicolon and the sentences that name the same
		// condition again: "Breakthrough complex partial seizure four days ago")
		words := c.conditionWords(d.code)
		for i := m.s.idx + 1; i < len(c.n.sents) && c.n.sents[i].line == m.s.line; i++ {
			s := &c.n.sents[i]
			if c.n.dictated && !strings.HasSuffix(c.n.sents[i-1].raw, ";") && !s.has(words...) {
				continue
			}
			if s.has(worseningWords...) {
				return true
			}
		}
	}
	return false
}

// systemic reports an acute illness documented with systemic symptoms or effects.
func (c *coding) systemic(d *dxCand) bool {
	for _, m := range d.mentions {
		if m.s.has("dehydration", "metabolic disturbance", "systemic", "ketosis", "fever", "febrile", "tachycardia", "sepsis", "rigors", "hypotension") {
			return true
		}
	}
	return false
}

// conditionWords are the particular words of a code's description ("seizure", "epilepsy"), to
// recognise the condition named again in other words.
func (c *coding) conditionWords(code string) []string {
	info, ok := c.set.Get(codes.ICD10CM, code)
	if !ok {
		return nil
	}
	var out []string
	for _, w := range descTokens(info.Display) {
		if !descStop[w] && !genericWords[w] && len(w) >= 5 && w != "without" && w != "unspecified" {
			out = append(out, w)
		}
	}
	return out
}

func (c *coding) severe(d *dxCand) bool {
	for _, m := range d.mentions {
		if m.s.has("severe exacerbation", "severe acute exacerbation", "status asthmaticus", "threat to life", "life-threatening", "impending") {
			return true
		}
	}
	return false
}

// undiagnosed reports a symptom whose assessment says the cause is not yet known.
func (c *coding) undiagnosed(d *dxCand) bool {
	for _, m := range d.mentions {
		if m.s.has("unclear etiology", "unknown etiology", "etiology unclear", "uncertain etiology", "undiagnosed", "unclear cause",
			"further workup", "further work-up", "workup", "work-up", "rule out", "r/o", "differential") {
			return true
		}
	}
	return false
}

var (
	testNames = []string{"cbc", "complete blood count", "cmp", "comprehensive metabolic panel", "bmp", "basic metabolic panel",
		"a1c", "hemoglobin a1c", "hba1c", "lipid panel", "lipids", "fasting lipid", "tsh", "thyroid function", "free t4",
		"urine culture", "throat culture", "culture", "x-ray", "xray", "x-rays", "radiograph", "radiographs", "mri", "ct", "ct scan",
		"ultrasound", "echocardiogram", "echo", "stress test", "holter", "psa", "vitamin d", "b12", "ferritin", "iron studies",
		"hepatic panel", "liver function", "lfts", "microalbumin", "urine albumin", "uacr", "albumin-to-creatinine", "inr",
		"magnesium", "covid pcr", "stool studies", "stool culture", "dexa", "bone density", "sleep study", "mammogram",
		"ecg", "ekg", "chest x-ray", "cxr", "creatinine", "egfr", "gfr", "potassium", "sed rate", "esr", "crp", "uric acid",
		"urinalysis", "ua", "monospot", "d-dimer", "troponin", "bnp", "hemoglobin", "pt/inr", "lipase", "hcg", "sti testing",
		"chlamydia", "gonorrhea", "hiv", "hepatitis c", "pap", "pap smear", "colonoscopy", "continuous glucose monitor", "cgm", "venous duplex", "duplex", "sodium", "level", "drug level", "calcium"}
	orderCues      = []string{"order", "ordered", "ordering", "will order", "check", "checking", "obtain", "will obtain", "get", "will get", "send", "sent", "draw", "drawing", "request", "requested", "repeat"}
	reviewCues     = []string{"reviewed", "review", "reviewing", "results", "result", "shows", "showed", "revealed", "came back", "recent", "was", "were", "is", "of"}
	externalCues   = []string{"outside records", "outside notes", "records from", "notes from", "discharge summary", "ed records", "er records", "consult note", "consultation note", "hospital records", "reviewed the note from", "reviewed notes", "reviewed records", "reviewed his records", "reviewed her records", "urgent care records", "specialist note", "cardiology note", "ophthalmology report", "eye exam report", "op note", "operative report"}
	historianCues  = []string{"history obtained from", "history provided by", "history from", "per mother", "per mom", "per father", "per dad", "per wife", "per husband", "per daughter", "per son", "per caregiver", "independent historian", "mother report", "mom report", "mother state", "mother say", "mom say", "father report", "parents report", "accompanied by * who", "daughter report", "son report", "wife report", "husband report", "caregiver report"}
	interpretCues  = []string{"personally reviewed the", "personally reviewed * images", "my interpretation", "independently interpreted", "independent interpretation", "my independent review", "my read", "i reviewed the images", "i personally viewed", "i personally reviewed"}
	discussionCues = []string{"discussed with dr", "discussed the case with", "discussed with * cardiology", "discussed with her cardiologist", "discussed with his cardiologist", "spoke with dr", "spoke with his", "spoke with her", "called dr", "discussed management with", "discussed with the on-call", "discussed with radiology", "discussed with the radiologist", "discussed with nephrology", "discussed with orthopedics", "discussed with dermatology", "discussed with * oncologist", "discussed with * nephrologist", "curbside"}
)

// dataLevel rates the amount and complexity of data reviewed and analysed. Tests billed on this
// claim (an ECG with interpretation, an in-office urinalysis) do not count again here.
func (c *coding) dataLevel(lines []*lineCand) (string, []string, []*sentence) {
	billed := map[string]bool{}
	for _, l := range lines {
		switch l.Code {
		case "93000":
			billed["ecg"], billed["ekg"] = true, true
		case "81002", "81003":
			billed["urinalysis"], billed["ua"] = true, true
		case "83036":
			billed["a1c"], billed["hemoglobin a1c"], billed["hba1c"] = true, true, true
		}
	}
	ordered, reviewed := map[string]bool{}, map[string]bool{}
	notes, historian, interp, discussion := 0, c.n.historian, false, false
	var ev []*sentence
	canon := func(t string) string {
		switch t {
		case "complete blood count":
			return "cbc"
		case "comprehensive metabolic panel":
			return "cmp"
		case "basic metabolic panel":
			return "bmp"
		case "hemoglobin a1c", "hba1c":
			return "a1c"
		case "lipids", "fasting lipid":
			return "lipid panel"
		case "xray", "x-rays", "radiograph", "radiographs":
			return "x-ray"
		case "ekg":
			return "ecg"
		case "echo":
			return "echocardiogram"
		case "ct scan":
			return "ct"
		case "ua":
			return "urinalysis"
		}
		return t
	}
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if s.section == secFH || s.section == secPMH || s.section == secPSH || s.section == secMeds || s.section == secAllergies || s.section == secROS {
			continue
		}
		hasTest := false
		var tests []string
		for _, t := range testNames {
			if billed[t] {
				continue
			}
			if s.has(t) {
				tests = append(tests, canon(t))
				hasTest = true
			}
		}
		if hasTest {
			a, _ := assessPhrase(s, testNames...)
			switch {
			case a.Negated && !s.has("reviewed"):
			case s.has(orderCues...) && (s.inAP() || s.section == secNone || s.section == secHPI):
				for _, t := range tests {
					ordered[t] = true
				}
				ev = append(ev, s)
			case s.has(reviewCues...) || s.section == secResults:
				for _, t := range tests {
					reviewed[t] = true
				}
				ev = append(ev, s)
			}
		}
		if s.has(externalCues...) {
			notes++
			ev = append(ev, s)
		}
		if s.has(historianCues...) {
			historian = true
			ev = append(ev, s)
		}
		if s.has(interpretCues...) {
			interp = true
			ev = append(ev, s)
		}
		if s.has(discussionCues...) {
			discussion = true
			ev = append(ev, s)
		}
	}
	for t := range ordered {
		delete(reviewed, t) // ordering a test includes reviewing its result
	}
	cat1 := len(ordered) + len(reviewed) + min(notes, 3)
	cat1h := cat1
	if historian {
		cat1h++
	}
	cats := 0
	if cat1h >= 3 {
		cats++
	}
	if interp {
		cats++
	}
	if discussion {
		cats++
	}
	level := LevelMinimal
	switch {
	case cats >= 2:
		level = LevelHigh
	case cats == 1:
		level = LevelModerate
	case cat1 >= 2 || historian:
		level = LevelLow
	}
	reasons := []string{
		"tests ordered: " + strconv.Itoa(len(ordered)) + ", results reviewed: " + strconv.Itoa(len(reviewed)) + ", external notes: " + strconv.Itoa(notes),
	}
	if historian {
		reasons = append(reasons, "independent historian")
	}
	if interp {
		reasons = append(reasons, "independent interpretation of a test")
	}
	if discussion {
		reasons = append(reasons, "discussion of management with an external physician")
	}
	return level, reasons, ev
}

var (
	highRiskCues = []string{"hospitalization", "hospitalize", "admit", "admitted to the hospital", "admission", "emergency department",
		"to the ed", "to the er", "sent to the emergency", "send to the emergency", "direct admission", "dnr", "do not resuscitate",
		"hospice", "intensive monitoring for toxicity", "escalation of care", "major surgery"}
	sdohCues     = []string{"cannot afford", "can't afford", "unable to afford", "cost of medication", "lack of transportation", "no transportation", "homeless", "housing insecurity", "food insecurity", "uninsured"}
	surgeryCues  = []string{"referred for surgery", "surgical referral", "refer to surgery", "knee replacement", "hip replacement", "arthroplasty", "surgical consultation", "cholecystectomy", "hernia repair"}
	lowRiskCues  = []string{"physical therapy", "PT referral", "occupational therapy", "home exercise program"}
	rxManageCues = []string{"prescribed", "prescription", "prescribe", "refill", "refilled", "e-prescribed", "sent to pharmacy", "rx", "start", "started", "starting", "continue", "continuing", "increase", "increased", "decrease", "decreased", "titrate", "switch", "switched", "change", "stop", "discontinue", "taper", "dose", "mg",
		"prescribing", "reduce", "reduced", "adjust", "adjusted", "renewed", "renew", "resume", "add", "added", "drop", "drops", "daily", "twice",
		"send", "sending", "i'll send", "i'm sending", "sent", "redistribute", "hold", "milligram", "milligrams", "nightly", "weekly",
		"three times daily", "as needed", "new prescription", "plan", "trial"}
)

// toxicityCues name drug therapy requiring intensive monitoring for toxicity (high risk).
var toxicityCues = []string{"intensive monitoring for toxicity", "intensive laboratory monitoring", "monitoring for toxicity",
	"toxicity monitoring", "intensive monitoring", "monitored for toxicity"}

// nonRxSubstances are substances of the Table of Drugs that are not prescription drug management
// when advised: supplements, minerals, foods.
var nonRxSubstances = map[string]bool{"calcium": true, "vitamin d": true, "vitamin": true, "folic acid": true, "iron": true, "salt": true,
	"honey": true, "water": true, "oxygen": true, "magnesium": true, "potassium": true, "sodium": true, "fiber": true, "caffeine": true,
	"alcohol": true, "lidocaine": true, "mineral oil": true, "oil": true, "salicylic acid": true, "psyllium": true, "peppermint oil": true,
	"peppermint": true, "zinc": true, "glucose": true, "saline": true}

// prescriptionManagement reports a plan sentence that manages a prescription drug: starting,
// continuing, changing, refilling or stopping one of the known prescription drugs, or any drug of
// the Table of Drugs that is not over the counter or a supplement.
func (c *coding) prescriptionManagement(s *sentence) bool {
	if s.has("allergic", "allergy", "declined", "refused") {
		return false
	}
	if s.has(rxDrugs...) && (s.has(rxManageCues...) || s.inAP()) {
		return true
	}
	if !s.has(rxManageCues...) {
		return false
	}
	for _, d := range drugsIn(s) {
		if nonRxSubstances[d.name] || s.has(otcDrugs...) && otcName(d.name) {
			continue
		}
		if a := assess(s, d.ts, d.te); a.Negated || a.Hypothetical || a.Family || a.Other {
			continue
		}
		return true
	}
	return false
}

// otcName reports a drug name of the over-the-counter list.
func otcName(name string) bool {
	for _, o := range otcDrugs {
		if strings.EqualFold(o, name) {
			return true
		}
	}
	return false
}

// riskLevel rates the risk of complications and morbidity of patient management.
func (c *coding) riskLevel(lines []*lineCand) (string, []string, []*sentence) {
	level := LevelMinimal
	var reasons []string
	var ev []*sentence
	raise := func(l, why string, s *sentence) {
		if levelRank[l] > levelRank[level] || (levelRank[l] == levelRank[level] && level == LevelMinimal && l != LevelMinimal) {
			level = l
			reasons = append(reasons, why)
			if s != nil {
				ev = append(ev, s)
			}
		}
	}
	for i := range c.n.sents {
		s := &c.n.sents[i]
		plan := s.inAP() || s.section == secProcedure || s.section == secCounsel || (!c.n.hasAssessment && s.section != secMeds && s.section != secAllergies && s.section != secFH && s.section != secPMH && s.section != secROS && s.section != secExam)
		if !plan {
			continue
		}
		conditional := s.has("if", "return precautions", "should", "unless", "call 911", "precautions", "warning signs")
		if s.has(highRiskCues...) && !conditional {
			if a, _ := assessPhrase(s, highRiskCues...); !a.Negated && !a.Hypothetical {
				raise(LevelHigh, "decision regarding hospitalization or escalation of care", s)
			}
		}
		if c.prescriptionManagement(s) {
			raise(LevelModerate, "prescription drug management", s)
		}
		if s.has(toxicityCues...) && !conditional {
			raise(LevelHigh, "drug therapy requiring intensive monitoring for toxicity", s)
		}
		if s.has(sdohCues...) {
			raise(LevelModerate, "social determinants of health limit diagnosis or treatment", s)
		}
		if s.has(surgeryCues...) && !conditional {
			raise(LevelModerate, "decision regarding elective major surgery", s)
		}
		if s.has(otcDrugs...) {
			raise(LevelLow, "over-the-counter drugs", s)
		}
		if s.has(lowRiskCues...) {
			raise(LevelLow, "physical or occupational therapy", s)
		}
	}
	for _, l := range lines {
		switch {
		case l.System == "hcpcs" && strings.HasPrefix(l.Code, "J"):
			raise(LevelModerate, "prescription drug administered in the office", l.sent)
		case needs25(l.Code) && !strings.HasPrefix(l.Code, "904") && l.Code != "96372" && l.Code != "99406" && l.Code != "99407":
			raise(LevelLow, "minor procedure without identified risk factors", l.sent)
		}
	}
	return level, reasons, ev
}

var (
	preventiveCues = []string{"annual physical", "annual exam", "complete physical", "wellness exam", "wellness visit", "well child",
		"well-child", "well visit", "preventive visit", "preventive exam", "routine physical", "health maintenance exam",
		"physical exam for", "yearly physical", "annual check-up", "annual checkup", "routine checkup", "routine check-up", "well woman exam",
		"well-woman exam", "preventive care visit", "well adult exam"}
	procedureOnlyRe = regexp.MustCompile(`(?i)\b(?:here|presents|comes in|returns)\s+(?:today\s+)?(?:for|to get)\s+(?:(?:his|her|a|the|their)\s+)?(?:scheduled\s+|monthly\s+|routine\s+|planned\s+|repeat\s+|next\s+|weekly\s+|quarterly\s+)*(?:vitamin\s+)?(?:b12|b-12|testosterone|depo|depo-provera|medroxyprogesterone|allergy|flu|influenza|tdap|shingrix|covid)\s*(?:injection|shot|vaccine|vaccination)s?\b|\bnurse visit\b|\binjection only\b`)
)

// isPreventive reports a preventive medicine visit (and not a Medicare annual wellness visit).
func (c *coding) isPreventive() (bool, *sentence) {
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if s.section != secCC && s.section != secHPI && s.section != secNone && !s.inAP() {
			continue
		}
		if s.has("annual wellness visit", "medicare wellness", "AWV") {
			return false, nil
		}
		if a, ok := assessPhrase(s, preventiveCues...); ok {
			if a.Negated || a.Hypothetical {
				continue
			}
			return true, s
		}
	}
	return false, nil
}

// isProcedureOnly reports a visit whose only purpose is a scheduled injection or a nurse visit: the
// procedure code covers the work, no E/M is reported.
func (c *coding) isProcedureOnly() bool {
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if (s.section == secCC || s.section == secHPI || s.section == secNone) && procedureOnlyRe.MatchString(s.raw) {
			return true
		}
	}
	return false
}

// preventiveCode returns the preventive medicine code for age (new 99381-99387, established
// 99391-99397).
func preventiveCode(age int, established bool) string {
	base := 99381
	if established {
		base = 99391
	}
	switch {
	case age < 1:
	case age <= 4:
		base++
	case age <= 11:
		base += 2
	case age <= 17:
		base += 3
	case age <= 39:
		base += 4
	case age <= 64:
		base += 5
	default:
		base += 6
	}
	return strconv.Itoa(base)
}

// officePOS reports places of service where office/outpatient E/M codes apply.
func officePOS(pos string) bool {
	switch pos {
	case "21", "23", "31", "32", "33", "12", "13", "34", "51", "61":
		return false
	}
	return true
}

// em chooses the E/M service of the encounter.
func (c *coding) em(cands []*dxCand, lines []*lineCand) (*EMLevel, []Dropped) {
	if !officePOS(c.in.PlaceOfService) {
		return nil, []Dropped{{Code: "E/M", Reason: "place of service " + c.in.PlaceOfService + " is not an office or outpatient setting: office E/M codes do not apply"}}
	}
	for _, l := range lines {
		if l.Code == "G0438" || l.Code == "G0439" {
			// the annual wellness visit is the service; problems managed beside it are a
			// separate problem-oriented E/M (modifier 25)
			if em := c.preventiveProblemEM(cands, lines); em != nil {
				em.Confidence, em.Note = 0.65, "problem-oriented E/M beside an annual wellness visit: check that it is separately identifiable"
				return em, nil
			}
			return nil, nil
		}
	}
	if s := c.globalPeriod(); s != nil {
		return nil, []Dropped{{Code: "E/M", Reason: "post-operative visit inside a global surgical period: included in the procedure (99024 reports it)"}}
	}
	if ok, s := c.isPreventive(); ok {
		if c.age < 0 {
			return nil, []Dropped{{Code: "preventive E/M", Reason: "patient age unknown: the preventive visit code depends on age"}}
		}
		return &EMLevel{Code: preventiveCode(c.age, c.in.Established), Basis: BasisPreventive,
			Evidence: []Span{spanOf(c.n, s.start, s.end)}, Confidence: 0.85}, nil
	}
	if c.nurseVisit() {
		if adminOnly(lines) || !c.in.Established {
			return nil, []Dropped{{Code: "E/M", Reason: "nurse visit for an injection or immunization: its administration code reports it"}}
		}
		s := c.firstAssessed()
		return &EMLevel{Code: "99211", Basis: BasisNurse, Evidence: []Span{spanOf(c.n, s.start, s.end)}, Confidence: 0.8}, nil
	}
	if c.isProcedureOnly() {
		return nil, []Dropped{{Code: "E/M", Reason: "visit only for a scheduled injection or procedure: no separately identifiable E/M"}}
	}
	return c.problemEM(cands, lines), nil
}

// problemEM rates the problem-oriented office E/M by MDM or total time, whichever is higher. The
// problems a minor procedure of the visit treats are the procedure's work, not the E/M's.
func (c *coding) problemEM(cands []*dxCand, lines []*lineCand) *EMLevel {
	var own []*dxCand
	for _, d := range cands {
		treated := false
		for _, l := range lines {
			treated = treated || (minorProcedure(l.Code) && c.treats(l, d))
		}
		if !treated {
			own = append(own, d)
		}
	}
	pl, preasons, pev := c.problemsLevel(own)
	dl, dreasons, dev := c.dataLevel(lines)
	rl, rreasons, rev := c.riskLevel(lines)
	level := mdmLevel(pl, dl, rl)
	mdm := &MDM{Level: level, Problems: pl, Data: dl, Risk: rl}
	mdm.Reasons = append(mdm.Reasons, prefixAll("problems: ", preasons)...)
	mdm.Reasons = append(mdm.Reasons, prefixAll("data: ", dreasons)...)
	mdm.Reasons = append(mdm.Reasons, prefixAll("risk: ", rreasons)...)
	// MDM is a judgment of three elements read from cues: less sure than a stated time.
	em := &EMLevel{Code: MDMCode(level, c.in.Established), Basis: BasisMDM, MDM: mdm, Confidence: 0.8}
	addEv := func(start, end int) {
		for _, e := range em.Evidence {
			if e.Start == start {
				return
			}
		}
		em.Evidence = append(em.Evidence, spanOf(c.n, start, end))
	}
	for _, m := range pev {
		addEv(m.s.start, m.s.end)
	}
	for _, s := range dev {
		addEv(s.start, s.end)
	}
	for _, s := range rev {
		addEv(s.start, s.end)
	}
	psychotherapy := false
	for _, l := range lines {
		psychotherapy = psychotherapy || l.Code == "90833" || l.Code == "90836" || l.Code == "90838"
	}
	// With a psychotherapy add-on the E/M is chosen by MDM alone: its time is the psychotherapy's.
	if mins, sp := c.totalTime(); mins > 0 && !psychotherapy {
		em.Minutes = mins
		if tc := TimeCode(mins, c.in.Established); tc != "" && tc > em.Code {
			em.Code, em.Basis, em.Confidence, em.Note = tc, BasisTime, 0.9, ""
			em.Evidence = append([]Span{*sp}, em.Evidence...)
		}
	}
	if len(em.Evidence) == 0 {
		// Nothing in the MDM elements to cite: the service is still documented by the note itself,
		// quoted from its assessment when there is one.
		s := c.firstAssessed()
		addEv(s.start, s.end)
	}
	if len(em.Evidence) > 6 {
		em.Evidence = em.Evidence[:6]
	}
	sort.SliceStable(em.Evidence, func(i, j int) bool { return em.Evidence[i].Start < em.Evidence[j].Start })
	return em
}

// firstAssessed returns the first sentence of the assessment and plan, or the note's first sentence.
func (c *coding) firstAssessed() *sentence {
	for i := range c.n.sents {
		if c.n.sents[i].inAP() {
			return &c.n.sents[i]
		}
	}
	return &c.n.sents[0]
}

func prefixAll(p string, xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = p + x
	}
	return out
}
