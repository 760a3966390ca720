package coder

import (
	"strings"
	"sync"

	"github.com/iambilly/billy/pipeline/codes"
)

// comboConcepts are dictionary concepts whose code depends on rules beyond their words (stage,
// type, acuity, the combination categories of diabetes and hypertension): where one of them is
// mentioned, the dictionary codes it and the description index does not compete.
var comboConcepts = map[string]bool{"diabetes": true, "dm-neuropathy": true, "dm-retinopathy": true, "dm-nephropathy": true,
	"hypertension": true, "ckd": true, "heart-failure": true, "asthma": true, "copd": true, "depression": true, "afib": true,
	"influenza": true, "neuropathy": true, "gastroparesis": true, "pad": true, "hypoglycemia": true, "hyperglycemia": true,
	"prediabetes": true}

// describe codes assessed sentences from the whole code set (index.go). A code found there replaces
// the dictionary concepts inside its words when it accounts for more of them ("chronic lymphocytic
// leukemia of B-cell type, not in remission" over "leukemia"), and gives way to a combination
// concept of the dictionary. History, status and family-history codes also come from the history
// part of a dictation.
func (c *coding) describe(ix *descIndex) {
	suppressed := map[*mention]bool{}
	for i := range c.n.sents {
		s := &c.n.sents[i]
		assessed := c.assessedSentence(s)
		historyOnly := !assessed && s.dictated && s.section == secHPI && !c.reasonFallback(s)
		if !assessed && !historyOnly {
			continue
		}
		as := assertions(s)
		for _, m := range ix.match(s, as, c.encounterFits(s)) {
			e := m.e
			if historyOnly && !e.history && !e.family {
				continue
			}
			// A plan names symptoms and injuries as the targets of treatment ("ibuprofen for pain"),
			// and encounters to come ("suture removal in ten days"), not diagnoses of this visit.
			if s.section == secPlan && (e.code[0] == 'R' || e.code[0] == 'S' || e.encounterFor) {
				continue
			}
			a := as[m.assertedAt]
			switch {
			case a.Uncertain && assessed && e.code[0] != 'Z':
				c.uncertainAssessed = true
				continue
			case a.Uncertain || a.Hypothetical:
				continue
			case e.family:
			case a.Family && assessed && e.code[0] != 'Z':
				c.familyHistory(s, m, e)
				continue
			case a.Family || (a.Other && !e.expo):
				continue
			case !e.history && (a.Historical || a.Resolved):
				continue
			}
			var inside []*mention
			protected := false
			for _, dm := range c.ms {
				if dm.s != s || dm.te <= m.lo || dm.ts > m.hi {
					continue
				}
				inside = append(inside, dm)
				protected = protected || comboConcepts[dm.c.id]
			}
			if protected {
				continue
			}
			longest := 0
			for _, dm := range inside {
				longest = max(longest, dm.te-dm.ts)
			}
			if len(inside) > 0 && len(e.req) <= longest {
				continue // the dictionary concept says as much, with its own rules
			}
			if !e.encounterFor { // "follow-up after treatment for malignant neoplasm" keeps the history code
				for _, dm := range inside {
					suppressed[dm] = true
				}
			}
			start, end := s.toks[m.lo].start, s.toks[m.hi].end
			display := ""
			if info, ok := c.set.Get(codes.ICD10CM, e.code); ok {
				display = info.Display
			}
			typ, groups := profile(e.code, display)
			d := &dxCand{code: e.code, prio: descPriority(e), pos: start, typ: typ, groups: groups, concept: "desc:" + e.code,
				ev:       []Span{spanOf(c.n, start, end)},
				mentions: []*mention{{s: s, ts: m.lo, te: m.hi + 1, start: start, end: end, a: a}}}
			d.conf, d.note = matchConfidence(m, s.section == secHPI)
			// The dictionary concept the code replaces knows its kind of problem ("pyelonephritis" is
			// an acute illness with systemic symptoms): keep that when it is the same category.
			for _, dm := range inside {
				if dm.c.code != "" && len(dm.c.code) >= 3 && dm.c.code[:3] == e.code[:3] {
					d.typ = dm.c.typ
					for _, g := range dm.c.groups {
						if !containsStr(d.groups, g) {
							d.groups = append(d.groups, g)
						}
					}
				}
			}
			c.described = append(c.described, d)
		}
	}
	if len(suppressed) > 0 {
		kept := c.ms[:0:0]
		for _, m := range c.ms {
			if !suppressed[m] {
				kept = append(kept, m)
			}
		}
		c.ms = kept
	}
}

// reasonCues state the reason for a visit in a dictation's history ("seen for routine follow-up of a
// fracture of the fifth metatarsal").
var reasonCues = []string{"seen for", "here for", "presenting for", "presents for", "follow-up of", "follow up of", "follow-up for",
	"referred for", "referred with", "returning for", "comes in for", "visit for"}

// reasonFallback reports a history sentence of a dictation that states the reason for the visit,
// when the spoken assessment itself names no condition ("Assessment: routine healing."): that
// sentence then names the diagnosis.
func (c *coding) reasonFallback(s *sentence) bool {
	if !s.dictated || s.section != secHPI || !s.has(reasonCues...) {
		return false
	}
	if c.assessmentNamesCondition == nil {
		named := false
		for _, m := range c.ms {
			if m.s.dictated && m.s.section == secAssessment && m.a.Affirmed() && m.c.typ != cStatus {
				named = true
			}
		}
		for i := range c.n.sents {
			o := &c.n.sents[i]
			if named || !o.dictated || o.section != secAssessment {
				continue
			}
			as := assertions(o)
			for _, m := range indexFor(c.set).match(o, as, c.encounterFits(o)) {
				if m.e.code[0] != 'Z' && as[m.assertedAt].Affirmed() {
					named = true
				}
			}
		}
		c.assessmentNamesCondition = &named
	}
	return !*c.assessmentNamesCondition
}

// familyHistory codes a relative's condition named in an assessed sentence ("family history of
// celiac disease in a sister") with the family-history code of its category
// (data/family-history.txt), unless a Z80-Z84 description in the sentence names it already.
func (c *coding) familyHistory(s *sentence, m descMatch, e *descEntry) {
	z := familyCodeFor(e.code)
	if z == "" {
		return
	}
	for _, d := range c.described {
		if d.code[:3] >= "Z80" && d.code[:3] <= "Z84" && d.ev[0].Start >= s.start && d.ev[0].End <= s.end {
			return
		}
	}
	start, end := s.toks[m.lo].start, s.toks[m.hi].end
	c.described = append(c.described, &dxCand{code: z, prio: prioFamily, pos: start, typ: cStatus, concept: "family:" + e.code,
		ev: []Span{spanOf(c.n, s.start, max(end, s.end))}, conf: 0.7,
		note: "family-history code chosen by the category of the relative's condition (" + e.code + ")"})
}

// familyCodeFor is the family-history code of a condition code, by the longest prefix of
// data/family-history.txt.
func familyCodeFor(code string) string {
	best, bestLen := "", 0
	for _, f := range familyTable() {
		if strings.HasPrefix(code, f[0]) && len(f[0]) > bestLen {
			best, bestLen = f[1], len(f[0])
		}
	}
	return best
}

var familyTable = sync.OnceValue(func() [][2]string {
	var out [][2]string
	for _, f := range dataLines("family-history.txt") {
		if len(f) != 2 {
			panic("coder: data/family-history.txt: want CODE | Z code: " + strings.Join(f, "|"))
		}
		out = append(out, [2]string{f[0], f[1]})
	}
	return out
})

// matchConfidence rates a code the description index found: high when every essential word of its
// description is in the sentence, close together, and no other code competes for the same words.
func matchConfidence(m descMatch, fromHistory bool) (float64, string) {
	conf := 0.95
	var why []string
	if m.missing {
		conf -= 0.25
		why = append(why, "one word of the code's description is not in the note")
	}
	if m.broad > 0 {
		conf -= 0.1 * float64(m.broad)
		why = append(why, "matched through a broader term")
	}
	if m.e.other {
		conf -= 0.1
		why = append(why, "an \"Other ...\" residual code")
	}
	conf -= min(0.15, 0.02*float64(m.spread))
	if m.alt != "" && m.score-m.altScore < 3 {
		conf -= 0.2
		why = append(why, "close alternative "+m.alt)
	}
	if fromHistory {
		conf -= 0.15
		why = append(why, "named in the history, not in the spoken assessment")
	}
	return max(0.3, min(0.99, conf)), strings.Join(why, "; ")
}

// assessedSentence reports a sentence whose conditions are diagnoses of the visit: the assessment
// and plan when the note has one, else anything outside the history lists, review of systems, exam
// and results.
func (c *coding) assessedSentence(s *sentence) bool {
	if c.n.hasAssessment {
		return s.inAP() || c.reasonFallback(s)
	}
	switch s.section {
	case secROS, secExam, secResults, secMeds, secAllergies, secFH, secTime, secPMH, secPSH, secSH, secCounsel:
		return false
	}
	return true
}

// encounterFits returns the filter of 7th-character encounters for sentence s: the note's
// encounter (initial, subsequent, sequela; with delayed healing, nonunion or malunion for
// fractures), and open fractures only when the sentence says open.
func (c *coding) encounterFits(s *sentence) func(byte, bool) bool {
	open := s.has("open fracture", "compound fracture", "open")
	delayed := s.has("delayed healing")
	nonunion := s.has("nonunion", "non-union")
	malunion := s.has("malunion", "mal-union")
	return func(enc byte, fx bool) bool {
		kind := enc
		openCode := false
		switch enc {
		case 'B', 'C':
			kind, openCode = 'A', true
		case 'E', 'F':
			kind, openCode = 'D', true
		case 'H', 'J':
			kind, openCode = 'G', true
		case 'M', 'N':
			kind, openCode = 'K', true
		case 'Q', 'R':
			kind, openCode = 'P', true
		}
		if fx && openCode != open {
			return false
		}
		want := c.encounterAt(s)
		if fx && want == 'D' {
			switch {
			case delayed:
				want = 'G'
			case nonunion:
				want = 'K'
			case malunion:
				want = 'P'
			}
		}
		return kind == want
	}
}

// encounterAt is the 7th-character encounter of a condition named in s: sequela when the sentence
// says so, else the note's encounter (initial or subsequent), never a sequela stated elsewhere.
func (c *coding) encounterAt(s *sentence) byte {
	switch {
	case s.has("sequela", "late effect", "sequelae"):
		return 'S'
	case c.encounter == 'S':
		return 'A'
	}
	return c.encounter
}

// descPriority places a code from the index in the claim: encounter reasons first (the reason for
// the visit, Section IV), then current conditions, statuses, personal and family history.
func descPriority(e *descEntry) int {
	cat := e.code[:3]
	switch {
	case e.family:
		return prioFamily
	case cat >= "Z85" && cat <= "Z87":
		return prioHistory
	case cat >= "Z00" && cat <= "Z13", cat >= "Z30" && cat <= "Z39" && cat != "Z3A":
		return prioWellness
	case cat[0] == 'Z':
		return prioStatus
	}
	return prioCurrent
}

// profile classifies a code for the E/M problem count and gives it the body-system groups that
// decide which symptoms are integral to it (guideline I.B.5), from its chapter and block.
func profile(code, display string) (ctype, []string) {
	cat := code[:3]
	switch {
	case cat[0] == 'Z':
		return cStatus, nil
	case cat[0] == 'R':
		return cSymptom, symptomGroups(cat)
	case symptomLike(code):
		return cSymptom, chapterGroups(cat)
	case cat[0] == 'S':
		d := strings.ToLower(display)
		switch {
		case strings.Contains(d, "fracture") || strings.Contains(d, "dislocation"):
			return cInjuryComplicated, []string{"msk"}
		case strings.Contains(d, "superficial") || strings.Contains(d, "abrasion") || strings.Contains(d, "insect bite") ||
			strings.Contains(d, "contusion") || strings.Contains(d, "blister"):
			return cMinor, []string{"msk", "skin"} // self-limited
		}
		return cInjury, []string{"msk", "skin"}
	case cat[0] == 'O':
		return cAcute, chapterGroups(cat)
	case cat[0] == 'T' || cat[0] >= 'V':
		return cStatus, nil
	case cat[0] == 'A' || cat[0] == 'B' || (cat >= "J00" && cat <= "J22") || (cat >= "H65" && cat <= "H67") || cat == "N30" || cat == "N39" ||
		(cat >= "N10" && cat <= "N12") || (cat >= "L00" && cat <= "L08") || cat == "K35" || cat == "K57" && strings.Contains(strings.ToLower(display), "itis"):
		return cAcute, append(chapterGroups(cat), "infection")
	}
	if d := strings.ToLower(display); strings.Contains(d, "acute") && !strings.Contains(d, "chronic") {
		return cAcute, chapterGroups(cat)
	}
	return cChronic, chapterGroups(cat)
}

// symptomLike reports codes outside chapter 18 that name a symptom (data/symptom-like.txt): pain
// in a joint or limb, muscle spasm, ear pain. They are integral to a confirmed diagnosis of their
// body system like any symptom.
func symptomLike(code string) bool {
	for _, p := range symptomLikePrefixes() {
		if strings.HasPrefix(code, p) {
			return true
		}
	}
	return false
}

var symptomLikePrefixes = sync.OnceValue(func() []string {
	var out []string
	for _, f := range dataLines("symptom-like.txt") {
		out = append(out, f[0])
	}
	return out
})

// chapterGroups are the dictionary's body-system groups of a disease category.
func chapterGroups(cat string) []string {
	switch {
	case cat[0] == 'I':
		return []string{"cardio"}
	case cat[0] == 'J':
		return []string{"resp"}
	case cat[0] == 'K':
		return []string{"gi"}
	case cat[0] == 'L':
		return []string{"skin"}
	case cat[0] == 'M':
		return []string{"msk"}
	case cat[0] == 'N':
		return []string{"gu"}
	case cat[0] == 'G':
		return []string{"neuro"}
	case cat >= "H60" && cat <= "H95":
		return []string{"ear"}
	case cat[0] == 'H':
		return []string{"eye"}
	case cat[0] == 'E':
		return []string{"endo"}
	case cat[0] == 'F':
		return []string{"psych"}
	case cat[0] == 'O':
		return []string{"pregnancy"}
	}
	return nil
}

// symptomGroups are the groups of a symptom category (chapter 18 blocks).
func symptomGroups(cat string) []string {
	switch {
	case cat <= "R03":
		return []string{"cardio"}
	case cat <= "R06", cat == "R09":
		return []string{"resp"}
	case cat == "R07":
		return []string{"chest"}
	case cat <= "R19":
		return []string{"gi"}
	case cat <= "R23":
		return []string{"skin"}
	case cat <= "R29":
		return []string{"neuro"}
	case cat <= "R39":
		return []string{"gu"}
	case cat <= "R46":
		return []string{"psych"}
	case cat <= "R49":
		return []string{"throat"}
	case cat == "R50":
		return []string{"infection"}
	case cat <= "R69":
		return []string{"general"}
	}
	return nil
}
