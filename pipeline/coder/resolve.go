package coder

import (
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/iambilly/billy/pipeline/codes"
)

// Priorities order the diagnoses of a claim: the reason for a preventive visit first, then the
// conditions assessed in note order, then statuses, personal and family history.
const (
	prioWellness = iota
	prioCurrent
	prioStatus
	prioHistory
	prioFamily
)

// dxCand is a diagnosis the built-in coder proposes.
type dxCand struct {
	conf     float64 // confidence, 0-1 (see Dx.Confidence)
	note     string  // what lowered it
	code     string
	prio     int
	pos      int
	ev       []Span
	groups   []string
	typ      ctype
	concept  string
	mentions []*mention
}

func spanOf(n *note, start, end int) Span {
	return Span{Text: n.text[start:end], Start: start, End: end}
}

// evidence returns the span of a mention widened to a laterality word right before it.
func (m *mention) evidence(n *note) Span {
	start := m.start
	if m.ts > 0 && sideWord(m.s.toks[m.ts-1].norm) != 0 {
		start = m.s.toks[m.ts-1].start
	}
	return spanOf(n, start, m.end)
}

// coding is the state of one built-in coding run.
type coding struct {
	n       *note
	in      Input
	set     *codes.Set
	age     int
	ms      []*mention
	cands   map[string]*dxCand
	dropped []Dropped
	// groups of diagnoses documented as uncertain, for the symptom rule of guideline IV.H
	uncertain map[string]bool
	// encounter 7th character for injuries
	encounter byte
	// dmType is the diabetes category coded (E10, E11), "" when none
	dmType string
	// described are assessed conditions found in the whole code set (describe)
	described []*dxCand
	// assessmentNamesCondition caches reasonFallback's look at the spoken assessment
	assessmentNamesCondition *bool
	// uncertainAssessed: the assessment works up an uncertain diagnosis ("possible reflux")
	uncertainAssessed bool
}

func (c *coding) add(code string, prio int, ms []*mention, groups []string, typ ctype, concept string) *dxCand {
	if code == "" {
		return nil
	}
	d := c.cands[code]
	if d == nil {
		d = &dxCand{code: code, prio: prio, pos: 1 << 30, typ: typ, concept: concept, conf: 0.9}
		c.cands[code] = d
	}
	if prio < d.prio {
		d.prio = prio
	}
	for _, m := range ms {
		if m == nil {
			continue
		}
		ev := m.evidence(c.n)
		dup := false
		for _, e := range d.ev {
			dup = dup || (e.Start == ev.Start && e.End == ev.End)
		}
		if !dup {
			d.ev = append(d.ev, ev)
			d.mentions = append(d.mentions, m)
		}
		if m.start < d.pos {
			d.pos = m.start
		}
	}
	for _, g := range groups {
		if !containsStr(d.groups, g) {
			d.groups = append(d.groups, g)
		}
	}
	return d
}

func containsStr(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// eligible reports whether a current-condition mention may be coded given the note's structure:
// with an assessment, only conditions in the assessment and plan; without one, anything outside
// the review of systems, exam, results, medication and allergy lists.
func (c *coding) eligible(m *mention) bool {
	if c.n.hasAssessment {
		return m.s.inAP()
	}
	switch m.s.section {
	case secROS, secExam, secResults, secMeds, secAllergies, secFH, secTime:
		return false
	}
	return true
}

// resolve turns mentions into diagnosis candidates.
func (c *coding) resolve() {
	c.cands = map[string]*dxCand{}
	c.uncertain = map[string]bool{}
	current := map[string][]*mention{} // concept id -> eligible current mentions
	var order []string
	for _, m := range c.ms {
		a := m.a
		if c.n.dictated && !m.s.dictated {
			continue // in a recorded visit, what the clinician dictates is documented; the talk is not
		}
		switch {
		case a.Family && !a.Negated && !a.Uncertain && !a.Hypothetical:
			if m.c.fam != "" {
				c.add(m.c.fam, prioFamily, []*mention{m}, nil, cStatus, m.c.id)
			}
			continue
		case a.Negated || a.Family || a.Other || a.Hypothetical:
			continue
		case a.Uncertain:
			if c.eligible(m) || m.s.inAP() {
				for _, g := range m.c.groups {
					c.uncertain[g] = true
				}
				c.uncertainAssessed = c.uncertainAssessed || m.s.inAP()
			}
			continue
		}
		if a.Historical && (m.c.hist != "" && (a.Resolved || m.c.typ != cChronic || strings.HasPrefix(m.c.hist, "Z85") || m.c.id == "mi")) {
			c.add(m.c.hist, prioHistory, []*mention{m}, nil, cStatus, m.c.id)
			continue
		}
		if a.Historical && (a.Resolved || m.c.typ != cChronic) {
			continue // a past acute problem without a history code
		}
		if m.c.id == "fall-history" {
			c.add(m.c.hist, prioHistory, []*mention{m}, nil, cStatus, m.c.id)
			continue
		}
		if !c.eligible(m) && m.c.typ != cSymptom {
			continue
		}
		if _, ok := current[m.c.id]; !ok {
			order = append(order, m.c.id)
		}
		current[m.c.id] = append(current[m.c.id], m)
	}

	// Symptoms: coded from the assessment; from the complaint and history only when the assessed
	// diagnoses are uncertain in the same body system, or nothing was confirmed (guideline IV.H).
	confirmed := false
	for _, d := range c.described {
		if d.typ != cSymptom && d.typ != cStatus {
			confirmed = true
		}
		if prev := c.cands[d.code]; prev == nil {
			c.cands[d.code] = d
		} else {
			prev.ev = append(prev.ev, d.ev...)
			prev.mentions = append(prev.mentions, d.mentions...)
		}
	}
	for _, id := range order {
		ms := current[id]
		if ms[0].c.typ != cSymptom && c.eligible(ms[0]) {
			confirmed = true
		}
	}
	for _, id := range order {
		ms := current[id]
		if ms[0].c.typ != cSymptom {
			continue
		}
		var keep []*mention
		for _, m := range ms {
			switch {
			case c.eligible(m) && (m.s.inAP() || !c.n.hasAssessment):
				keep = append(keep, m)
			case c.n.dictated:
				// the dictation names the symptoms it assesses; the conversation only discusses them
			case (m.s.section == secCC || m.s.section == secHPI || m.s.section == secNone) && (!confirmed || overlaps(m.c.groups, c.uncertain)):
				keep = append(keep, m)
			}
		}
		current[id] = keep
	}

	has := func(id string) bool { return len(current[id]) > 0 }
	used := map[string]bool{}

	// Diabetes and its "with" complications (guideline I.A.15, I.C.4.a).
	if has("diabetes") || has("dm-neuropathy") || has("dm-retinopathy") || has("dm-nephropathy") {
		c.diabetes(current, used)
	}
	// Hypertension with heart failure and/or CKD (guideline I.C.9.a).
	c.hypertension(current, used)

	for _, id := range order {
		ms := current[id]
		if len(ms) == 0 || used[id] {
			continue
		}
		con := ms[0].c
		code := c.specific(con, ms)
		if code == "" {
			continue
		}
		prio := prioCurrent
		if con.typ == cStatus {
			prio = prioStatus
		}
		c.add(code, prio, ms, con.groups, con.typ, con.id)
	}
	c.tobacco()
	c.bmi()
	c.longTermDrugs()
	c.substances()
	c.integralSymptoms()
	c.included()
}

func overlaps(groups []string, set map[string]bool) bool {
	for _, g := range groups {
		if set[g] {
			return true
		}
		// "msk:knee" is covered by "msk"
		if i := strings.IndexByte(g, ':'); i > 0 && set[g[:i]] {
			return true
		}
	}
	return false
}

// overlapsEither is overlaps in both directions: a generic "msk" symptom also belongs to a
// confirmed "msk:back" diagnosis.
func overlapsEither(groups []string, set map[string]bool) bool {
	if overlaps(groups, set) {
		return true
	}
	for _, g := range groups {
		for k := range set {
			if strings.HasPrefix(k, g+":") {
				return true
			}
		}
	}
	return false
}

// specific picks the most specific code of a concept from its mentions.
func (c *coding) specific(con *concept, ms []*mention) string {
	switch con.id {
	case "ckd":
		return ckdCode(ms)
	case "heart-failure":
		return hfCode(ms)
	case "asthma":
		return asthmaCode(ms)
	case "copd":
		if anySentence(ms, exacerbationWords...) {
			return "J44.1"
		}
		return "J44.9"
	case "depression":
		return depressionCode(ms)
	case "afib":
		return afibCode(ms)
	case "influenza":
		for _, m := range ms {
			if m.s.has("influenza a", "influenza b", "flu a", "flu b", "positive") {
				return "J10.1"
			}
		}
		return "J11.1"
	case "neuropathy":
		return "G62.9"
	}
	code := con.code
	if con.male != "" && strings.EqualFold(c.in.Patient.Sex, "male") {
		code = con.male
	}
	if con.exac != "" && anySentence(ms, exacerbationWords...) {
		code = con.exac
	}
	if con.side != (sides{}) {
		var side byte
		for _, m := range ms {
			if sd := sideInSentence(m); sd != 0 {
				if side != 0 && side != sd {
					side = 'B'
					break
				}
				side = sd
			}
		}
		if side == 0 {
			side = sideOf(c.n, ms[0])
		}
		switch side {
		case 'R':
			code = pick(con.side.r, code)
		case 'L':
			code = pick(con.side.l, code)
		case 'B':
			code = pick(con.side.b, code)
		}
		if con.id == "breast-cancer" && strings.EqualFold(c.in.Patient.Sex, "male") {
			code = strings.Replace(code, "C50.91", "C50.92", 1)
		}
	}
	if con.seventh {
		seventh := c.encounterAt(ms[0].s)
		if strings.Contains(con.id, "fracture") && seventh == 'A' && anySentence(ms, "open fracture", "compound fracture") {
			seventh = 'B'
		}
		code = padSeventh(code) + string(seventh)
	}
	return code
}

func pick(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// padSeventh pads a code stem to six characters with the placeholder X (S06.0X0 stays).
func padSeventh(stem string) string {
	undotted := strings.ReplaceAll(stem, ".", "")
	for len(undotted) < 6 {
		undotted += "X"
	}
	return undotted[:3] + "." + undotted[3:]
}

var exacerbationWords = []string{"exacerbation", "flare", "flare up", "flare-up", "attack", "acute exacerbation", "exacerbated", "worsening"}

func anySentence(ms []*mention, phrases ...string) bool {
	for _, m := range ms {
		if m.s.has(phrases...) {
			return true
		}
	}
	return false
}

// injuryEncounter chooses the 7th character: D for a visit for routine healing, S for a sequela,
// A (active treatment) otherwise.
func (c *coding) injuryEncounter() byte {
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if s.section != secCC && s.section != secHPI && s.section != secNone && !s.inAP() {
			continue
		}
		if s.has("sequela", "late effect") {
			return 'S'
		}
		if s.has("routine healing", "healing well", "healing as expected", "follow up of * fracture", "subsequent encounter",
			"here for follow up of", "returns for follow up of", "fracture follow up", "cast check", "recheck of") {
			return 'D'
		}
	}
	return 'A'
}

var stageRe = regexp.MustCompile(`(?i)(?:stage|ckd)\s*-?\s*(5|4|3|2|1|iii|ii|iv|v|i)\s*([ab])?\b`)

func ckdCode(ms []*mention) string {
	for _, m := range ms {
		if m.s.has("ESRD", "esrd", "end stage renal disease", "end-stage renal disease", "dialysis") {
			return "N18.6"
		}
	}
	for _, m := range ms {
		t := m.s.textRaw()
		if sm := stageRe.FindStringSubmatch(t); sm != nil {
			stage := map[string]string{"1": "1", "i": "1", "2": "2", "ii": "2", "3": "3", "iii": "3", "4": "4", "iv": "4", "5": "5", "v": "5"}[strings.ToLower(sm[1])]
			switch stage {
			case "3":
				switch strings.ToLower(sm[2]) {
				case "a":
					return "N18.31"
				case "b":
					return "N18.32"
				}
				return "N18.30"
			case "":
				continue
			default:
				return "N18." + stage
			}
		}
	}
	return "N18.9"
}

func hfCode(ms []*mention) string {
	systolic := anySentence(ms, "systolic", "HFrEF", "hfref", "reduced ejection fraction", "reduced ef")
	diastolic := anySentence(ms, "diastolic", "HFpEF", "hfpef", "preserved ejection fraction", "preserved ef")
	acuity := "0"
	switch {
	case anySentence(ms, "acute on chronic"):
		acuity = "3"
	case anySentence(ms, "chronic", "compensated", "stable"):
		acuity = "2"
	case anySentence(ms, "acute", "decompensated", "exacerbation"):
		acuity = "1"
	}
	switch {
	case systolic && diastolic:
		return "I50.4" + acuity
	case systolic:
		return "I50.2" + acuity
	case diastolic:
		return "I50.3" + acuity
	}
	return "I50.9"
}

func asthmaCode(ms []*mention) string {
	sev := "J45.90"
	switch {
	case anySentence(ms, "mild intermittent"):
		sev = "J45.2"
	case anySentence(ms, "mild persistent"):
		sev = "J45.3"
	case anySentence(ms, "moderate persistent"):
		sev = "J45.4"
	case anySentence(ms, "severe persistent"):
		sev = "J45.5"
	}
	status := "0"
	switch {
	case anySentence(ms, "status asthmaticus"):
		status = "2"
	case anySentence(ms, exacerbationWords...):
		status = "1"
	}
	if sev == "J45.90" {
		return map[string]string{"0": "J45.909", "1": "J45.901", "2": "J45.902"}[status]
	}
	return sev + status
}

func depressionCode(ms []*mention) string {
	major := anySentence(ms, "major depressive", "major depression", "MDD", "mdd")
	recurrent := anySentence(ms, "recurrent")
	single := anySentence(ms, "single episode")
	if !major && !recurrent && !single {
		return "F32.A"
	}
	sev := "9"
	switch {
	case anySentence(ms, "full remission"):
		sev = "r2"
	case anySentence(ms, "partial remission"):
		sev = "r1"
	case anySentence(ms, "in remission"):
		sev = "r0"
	case anySentence(ms, "psychotic feature", "with psychosis"):
		sev = "3"
	case anySentence(ms, "severe"):
		sev = "2"
	case anySentence(ms, "moderate"):
		sev = "1"
	case anySentence(ms, "mild"):
		sev = "0"
	}
	if recurrent {
		switch sev {
		case "r2":
			return "F33.42"
		case "r1":
			return "F33.41"
		case "r0":
			return "F33.40"
		}
		return "F33." + sev
	}
	switch sev {
	case "r2":
		return "F32.5"
	case "r1", "r0":
		return "F32.4"
	}
	return "F32." + sev
}

func afibCode(ms []*mention) string {
	switch {
	case anySentence(ms, "paroxysmal"):
		return "I48.0"
	case anySentence(ms, "longstanding persistent", "long-standing persistent"):
		return "I48.11"
	case anySentence(ms, "persistent"):
		return "I48.19"
	case anySentence(ms, "permanent"):
		return "I48.21"
	case anySentence(ms, "chronic"):
		return "I48.20"
	}
	return "I48.91"
}

// textRaw returns the sentence's text.
func (s *sentence) textRaw() string { return s.raw }

// diabetes codes diabetes by type with each documented complication (the classification presumes
// the link for conditions under "with" in the Index), or "without complications".
func (c *coding) diabetes(current map[string][]*mention, used map[string]bool) {
	var dm []*mention
	for _, id := range []string{"diabetes", "dm-neuropathy", "dm-retinopathy", "dm-nephropathy"} {
		dm = append(dm, current[id]...)
	}
	if len(dm) == 0 {
		return
	}
	cat := "E11"
	for _, m := range current["diabetes"] {
		t := strings.ToLower(c.n.text[m.start:m.end])
		if strings.Contains(t, "type 1") || strings.Contains(t, "type i ") || strings.HasSuffix(t, "type i") || strings.Contains(t, "t1dm") ||
			strings.Contains(t, "dm1") || strings.Contains(t, "iddm") && !strings.Contains(t, "niddm") || strings.Contains(t, "juvenile") {
			cat = "E10"
		}
	}
	groups := []string{"endo"}
	var complications int
	addC := func(code string, ms ...*mention) {
		c.add(code, prioCurrent, append(append([]*mention{}, dm[0]), ms...), groups, cChronic, "diabetes")
		complications++
	}
	if ms := current["ckd"]; len(ms) > 0 {
		addC(cat+".22", ms...)
	} else if ms := current["dm-nephropathy"]; len(ms) > 0 {
		addC(cat+".21", ms...)
	}
	neu := append(append([]*mention{}, current["dm-neuropathy"]...), current["neuropathy"]...)
	if len(neu) > 0 {
		code := cat + ".40"
		for _, m := range neu {
			t := strings.ToLower(c.n.text[m.start:m.end])
			if strings.Contains(t, "peripheral") || strings.Contains(t, "poly") {
				code = cat + ".42"
			}
		}
		addC(code, neu...)
		used["neuropathy"], used["dm-neuropathy"] = true, true
	}
	if ms := current["dm-retinopathy"]; len(ms) > 0 {
		addC(cat+".319", ms...)
	}
	if ms := current["gastroparesis"]; len(ms) > 0 {
		addC(cat+".43", ms...)
	}
	if ms := current["pad"]; len(ms) > 0 {
		addC(cat+".51", ms...)
		used["pad"] = true
	}
	if ms := current["hypoglycemia"]; len(ms) > 0 {
		addC(cat+".649", ms...)
		used["hypoglycemia"] = true
	}
	control := current["hyperglycemia"]
	for _, m := range dm {
		if m.s.has("uncontrolled", "poorly controlled", "out of control", "inadequately controlled", "not well controlled", "with hyperglycemia", "not controlled") {
			control = append(control, m)
		}
	}
	if len(control) > 0 {
		addC(cat+".65", control...)
		used["hyperglycemia"] = true
	}
	if complications == 0 {
		c.add(cat+".9", prioCurrent, dm, groups, cChronic, "diabetes")
	}
	used["diabetes"], used["dm-retinopathy"], used["dm-nephropathy"], used["prediabetes"] = true, true, true, true
	c.dmType = cat
}

// hypertension applies the hypertension combination categories.
func (c *coding) hypertension(current map[string][]*mention, used map[string]bool) {
	htn := current["hypertension"]
	if len(htn) == 0 {
		return
	}
	ckd := current["ckd"]
	hf := current["heart-failure"]
	stage := ""
	if len(ckd) > 0 {
		stage = ckdCode(ckd)
	}
	late := stage == "N18.5" || stage == "N18.6"
	groups := []string{"cardio"}
	switch {
	case len(ckd) > 0 && len(hf) > 0:
		code := "I13.0"
		if late {
			code = "I13.2"
		}
		c.add(code, prioCurrent, append(append(append([]*mention{}, htn...), hf...), ckd...), groups, cChronic, "hypertension")
	case len(hf) > 0:
		c.add("I11.0", prioCurrent, append(append([]*mention{}, htn...), hf...), groups, cChronic, "hypertension")
	case len(ckd) == 0 && anyText(c.n, htn, "heart disease"):
		// hypertensive heart disease without heart failure (I.C.9.a.1)
		c.add("I11.9", prioCurrent, htn, groups, cChronic, "hypertension")
	case len(ckd) > 0:
		code := "I12.9"
		if late {
			code = "I12.0"
		}
		c.add(code, prioCurrent, append(append([]*mention{}, htn...), ckd...), groups, cChronic, "hypertension")
	default:
		c.add("I10", prioCurrent, htn, groups, cChronic, "hypertension")
	}
	used["hypertension"] = true
}

// anyText reports a mention whose own words contain phrase.
func anyText(n *note, ms []*mention, phrase string) bool {
	for _, m := range ms {
		if strings.Contains(strings.ToLower(n.text[m.start:m.end]), phrase) {
			return true
		}
	}
	return false
}

var bmiRe = regexp.MustCompile(`(?i)\bBMI\s*(?:is|of|was|:|=)?\s*(\d{2}(?:\.\d+)?)`)

// bmi adds the adult BMI code when obesity or overweight is diagnosed (guideline I.B.14: BMI is
// reported only with an associated diagnosis by the provider).
func (c *coding) bmi() {
	var weight *dxCand
	for _, d := range c.cands {
		if strings.HasPrefix(d.code, "E66") && d.prio == prioCurrent {
			weight = d
		}
	}
	if weight == nil || (c.age >= 0 && c.age < 20) {
		return
	}
	loc := bmiRe.FindStringSubmatchIndex(c.n.text)
	if loc == nil {
		return
	}
	v, err := strconv.ParseFloat(c.n.text[loc[2]:loc[3]], 64)
	if err != nil {
		return
	}
	var code string
	switch {
	case v < 20:
		code = "Z68.1"
	case v < 40:
		code = "Z68." + strconv.Itoa(int(v))
	case v < 45:
		code = "Z68.41"
	case v < 50:
		code = "Z68.42"
	case v < 60:
		code = "Z68.43"
	case v < 70:
		code = "Z68.44"
	default:
		code = "Z68.45"
	}
	d := c.add(code, prioStatus, nil, nil, cStatus, "bmi")
	d.ev = append(d.ev, spanOf(c.n, loc[0], loc[1]))
	d.pos = weight.pos + 1
}

var (
	cigaretteWords = []string{"cigarette", "cigarettes", "pack per day", "packs per day", "ppd", "PPD", "pack a day", "packs a day", "pack-year", "pack year", "cigs"}
	smokelessWords = []string{"chewing tobacco", "chews tobacco", "smokeless tobacco", "dip", "snuff"}
	vapeWords      = []string{"vape", "vapes", "vaping", "e-cigarette", "e-cigarettes"}
	formerSmoke    = []string{"former smoker", "ex-smoker", "ex smoker", "quit smoking", "stopped smoking", "quit tobacco", "quit cigarettes",
		"history of smoking", "remote smoking history", "former tobacco use", "previously smoked", "used to smoke", "quit * years ago", "quit in"}
	neverSmoke   = []string{"never smoker", "never smoked", "nonsmoker", "non-smoker", "non smoker", "does not smoke", "doesn't smoke", "denies tobacco", "denies smoking", "no tobacco", "never used tobacco", "no smoking", "not smoke"}
	currentSmoke = []string{"smokes", "smoker", "smoking", "current smoker", "every day smoker", "tobacco use", "uses tobacco", "tobacco dependence", "nicotine dependence", "smoke"}
)

// tobacco codes the patient's tobacco status from anywhere in the note: nicotine dependence by
// product (the Index sends "smoker" to dependence), or a history of dependence (Z87.891).
func (c *coding) tobacco() {
	var cur, former []*sentence
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if s.section == secFH || s.section == secROS || s.section == secExam || strings.HasSuffix(strings.TrimSpace(s.raw), "?") ||
			s.has("anyone", "at home", "household", "in the house", "around her", "around him") || s.speaker == spkFamily || s.speaker == spkOther {
			continue // a question, about others' smoking, or a relative speaking of themselves
		}
		if c.n.dictated && !s.dictated {
			continue
		}
		switch {
		case s.has(neverSmoke...):
		case s.has(formerSmoke...):
			former = append(former, s)
		case s.has(currentSmoke...) || s.has(vapeWords...) || s.has(smokelessWords...) || s.has(cigaretteWords...):
			if s.has("secondhand", "second hand", "exposure", "smoke detector", "smoke exposure", "family member", "husband", "wife", "mother", "father", "parents") {
				continue
			}
			if !s.has("cessation", "counsel", "counseled", "counseling", "smoke", "smokes", "smoker", "smoking", "tobacco", "vape", "vaping", "cigarette", "cigarettes") {
				continue
			}
			cur = append(cur, s)
		}
	}
	span := func(s *sentence) *mention {
		return &mention{s: s, start: s.start, end: s.end, ts: 0, te: len(s.toks)}
	}
	if len(cur) > 0 {
		code := "F17.200"
		switch {
		case anySent(cur, vapeWords...):
			code = "F17.290"
		case anySent(cur, smokelessWords...):
			code = "F17.220"
		case anySent(cur, cigaretteWords...) || anySent(cur, "smokes", "smoker", "smoking", "smoke"):
			code = "F17.210"
		}
		d := c.add(code, prioStatus, []*mention{span(cur[0])}, []string{"psych"}, cChronic, "tobacco")
		// Tobacco addressed in the assessment (cessation counseling, medication) is a managed problem.
		for _, s := range cur {
			if s.inAP() {
				d.prio = prioCurrent
			}
		}
		return
	}
	if len(former) > 0 {
		c.add("Z87.891", prioHistory, []*mention{span(former[0])}, nil, cStatus, "tobacco")
	}
}

func anySent(ss []*sentence, phrases ...string) bool {
	for _, s := range ss {
		if s.has(phrases...) {
			return true
		}
	}
	return false
}

var (
	insulinWords    = []string{"insulin", "glargine", "lantus", "basaglar", "toujeo", "lispro", "humalog", "aspart", "novolog", "detemir", "levemir", "degludec", "tresiba", "nph", "humulin", "novolin"}
	oralDMWords     = []string{"metformin", "glucophage", "glipizide", "glimepiride", "glyburide", "sitagliptin", "januvia", "janumet", "pioglitazone", "actos", "empagliflozin", "jardiance", "dapagliflozin", "farxiga", "canagliflozin", "invokana", "linagliptin", "tradjenta", "rybelsus", "synjardy", "xigduo"}
	injectableDM    = []string{"semaglutide", "ozempic", "dulaglutide", "trulicity", "liraglutide", "victoza", "tirzepatide", "mounjaro", "exenatide", "byetta", "bydureon"}
	anticoagulants  = []string{"apixaban", "eliquis", "rivaroxaban", "xarelto", "warfarin", "coumadin", "dabigatran", "pradaxa", "edoxaban", "savaysa"}
	stoppedDrugWord = []string{"stop", "stopped", "discontinue", "discontinued", "hold", "held", "allergic to", "allergy", "intolerant", "declined", "refused", "instead of"}
)

// longTermDrugs adds the "use additional code" statuses of diabetes treatment (guideline I.C.4.a.3)
// and anticoagulation.
func (c *coding) longTermDrugs() {
	find := func(words []string) *mention {
		for i := range c.n.sents {
			s := &c.n.sents[i]
			if s.section == secAllergies || s.section == secFH || (c.n.dictated && !s.dictated) {
				continue
			}
			if a, ok := assessPhrase(s, words...); ok && (a.Hypothetical || a.Negated || a.Uncertain) {
				continue
			}
			if s.has(words...) && !s.has(stoppedDrugWord...) {
				return &mention{s: s, start: s.start, end: s.end, te: len(s.toks)}
			}
		}
		return nil
	}
	if c.dmType == "E11" {
		for _, x := range []struct {
			words []string
			code  string
		}{{insulinWords, "Z79.4"}, {oralDMWords, "Z79.84"}, {injectableDM, "Z79.85"}} {
			if m := find(x.words); m != nil {
				c.add(x.code, prioStatus, []*mention{m}, nil, cStatus, "diabetes-drug")
			}
		}
	}
	for code := range c.cands {
		if strings.HasPrefix(code, "I48") || strings.HasPrefix(code, "I82") || strings.HasPrefix(code, "I26") {
			if m := find(anticoagulants); m != nil {
				c.add("Z79.01", prioStatus, []*mention{m}, nil, cStatus, "anticoagulant")
			}
			break
		}
	}
}

// integralSymptoms drops symptoms routinely associated with a confirmed diagnosis of the same body
// system (guideline I.B.5).
func (c *coding) integralSymptoms() {
	confirmed := map[string]bool{}
	for _, d := range c.cands {
		if d.typ != cSymptom && d.prio == prioCurrent {
			for _, g := range d.groups {
				confirmed[g] = true
			}
		}
	}
	var codesSorted []string
	for code := range c.cands {
		codesSorted = append(codesSorted, code)
	}
	sort.Strings(codesSorted)
	for _, code := range codesSorted {
		d := c.cands[code]
		if d.typ != cSymptom || d.prio != prioCurrent || c.additionalSymptom(code) {
			continue
		}
		// A symptom the assessment names in a clause of its own ("dysphagia, rule out stricture"
		// beside reflux) is assessed for itself; one named with the diagnosis ("otitis media with
		// fever") is part of it. Dictionary symptoms know their body systems finely; a symptom from
		// the description index is integral only when its sentence names the diagnosis.
		if strings.HasPrefix(d.concept, "desc:") && c.n.hasAssessment && !c.sharesSentence(d) {
			continue
		}
		if overlapsEither(d.groups, confirmed) {
			c.dropped = append(c.dropped, Dropped{Code: code, Reason: "symptom integral to a confirmed diagnosis of the same body system (guideline I.B.5)"})
			delete(c.cands, code)
		}
	}
}

// sharesSentence reports whether a symptom's sentence also names a confirmed (non-symptom) current
// diagnosis of its body system.
func (c *coding) sharesSentence(sym *dxCand) bool {
	for _, d := range c.cands {
		if d == sym || d.typ == cSymptom || d.typ == cStatus || d.prio != prioCurrent || !groupsMatch(d.groups, sym.groups) {
			continue
		}
		for _, a := range sym.mentions {
			for _, b := range d.mentions {
				if a.s == b.s {
					return true
				}
			}
		}
	}
	return false
}

// codeRule is one line of data/use-additional.txt or data/includes.txt: a code prefix and the code
// prefixes it relates to.
type codeRule struct {
	code    string
	related []string
	why     string
}

func readCodeRules(name string) []codeRule {
	var out []codeRule
	for _, f := range dataLines(name) {
		if len(f) != 3 {
			panic("coder: data/" + name + ": want CODE | related codes | why: " + strings.Join(f, "|"))
		}
		out = append(out, codeRule{code: f[0], related: strings.Fields(f[1]), why: f[2]})
	}
	return out
}

var (
	useAdditional = sync.OnceValue(func() []codeRule { return readCodeRules("use-additional.txt") })
	includesRules = sync.OnceValue(func() []codeRule { return readCodeRules("includes.txt") })
)

// additionalSymptom reports a symptom that a coded condition's note asks to report with it.
func (c *coding) additionalSymptom(code string) bool {
	for _, r := range useAdditional() {
		for other := range c.cands {
			if !strings.HasPrefix(other, r.code) {
				continue
			}
			for _, p := range r.related {
				if strings.HasPrefix(code, p) {
					return true
				}
			}
		}
	}
	return false
}

// included drops codes that a coded condition includes (data/includes.txt).
func (c *coding) included() {
	var drop []string
	keys := make([]string, 0, len(c.cands))
	for code := range c.cands {
		keys = append(keys, code)
	}
	sort.Strings(keys)
	for _, r := range includesRules() {
		for _, code := range keys {
			if !strings.HasPrefix(code, r.code) {
				continue
			}
			for _, other := range keys {
				for _, p := range r.related {
					if other != code && strings.HasPrefix(other, p) && !slices.Contains(drop, other) {
						drop = append(drop, other)
						c.dropped = append(c.dropped, Dropped{Code: other, Reason: code + " includes it: " + r.why})
					}
				}
			}
		}
	}
	for _, code := range drop {
		delete(c.cands, code)
	}
}

// sorted returns the candidates in claim order.
func (c *coding) sorted() []*dxCand {
	out := make([]*dxCand, 0, len(c.cands))
	for _, d := range c.cands {
		out = append(out, d)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].prio != out[j].prio {
			return out[i].prio < out[j].prio
		}
		if out[i].pos != out[j].pos {
			return out[i].pos < out[j].pos
		}
		return out[i].code < out[j].code
	})
	return out
}
