package coder

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/iambilly/billy/pipeline/codes"
)

// Visit-level decisions about the E/M service (CPT E/M guidelines, CMS global surgery rules,
// NCCI): a visit inside a global surgical period, a nurse visit, a visit that is only a minor
// procedure, and a preventive visit with a separately identifiable problem.

// BasisNurse is the basis of 99211: a visit with clinical staff under the physician's supervision,
// to which MDM and time thresholds do not apply.
const BasisNurse = "nurse"

// globalPeriodCues say the visit is post-operative follow-up included in a procedure's global
// period (CMS: no E/M; 99024 reports the visit).
var globalPeriodCues = []string{"within the global period", "in the global period", "during the global period", "global surgical period",
	"postoperative visit", "post-operative visit", "post-op visit", "postop visit", "postoperative check", "post-op check",
	"part of the fracture care", "included in the surgical package", "part of the global"}

// globalPeriod returns the sentence saying the visit lies in a global surgical period, or nil.
func (c *coding) globalPeriod() *sentence {
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if (c.n.dictated && !s.dictated) || !s.has(globalPeriodCues...) {
			continue
		}
		if a, ok := assessPhrase(s, globalPeriodCues...); ok && (a.Negated || a.Hypothetical) {
			continue
		}
		return s
	}
	return nil
}

// nurseVisitCues say clinical staff saw the patient without the physician's own service.
var nurseVisitCues = []string{"nurse visit", "nursing note", "nurse only visit", "nurse-only visit", "rn visit", "ma visit", "no provider visit"}

// nurseVisit reports a visit by clinical staff (99211 when nothing else is billed for it): the
// note says this visit is a nurse visit, not that one is planned ("nurse visit in two weeks").
func (c *coding) nurseVisit() bool {
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if (c.n.dictated && !s.dictated && !dictationRe.MatchString(s.raw)) || !s.has(nurseVisitCues...) || s.section == secPlan {
			continue
		}
		if a, ok := assessPhrase(s, nurseVisitCues...); ok && (a.Hypothetical || a.Negated) {
			continue
		}
		if s.has(strongNotPerformed...) || s.has("in two weeks", "in one week", "in a week", "next week", "in a month", "follow-up", "follow up") {
			continue
		}
		return true
	}
	return false
}

// adminOnly reports lines that are an injection or immunization and its administration: a nurse
// visit for them is reported by the administration code alone.
func adminOnly(lines []*lineCand) bool {
	for _, l := range lines {
		switch {
		case l.admin, strings.HasPrefix(l.Code, "J"), l.Code >= "90476" && l.Code <= "90759":
			return true
		}
	}
	return false
}

// minorProcedure reports a procedure whose global package includes the decision to perform it and
// the day's pre- and post-procedure work: a 0- or 10-day global period in the CMS fee schedule
// (casting and strapping aside, which do not cover the evaluation of an injury).
func minorProcedure(code string) bool {
	if code >= "29000" && code <= "29799" {
		return false
	}
	p, ok := codes.PaymentOf(code)
	return ok && p.MinorProcedure()
}

// separatelyIdentifiable reports whether the visit has E/M work beyond the minor procedures it
// bills (CPT: a significant, separately identifiable E/M, modifier 25): a current problem that no
// procedure treats, or prescription drug management outside the procedure's own sentences. It
// returns true when the visit has no minor procedure.
func (c *coding) separatelyIdentifiable(cands []*dxCand, lines []*lineCand) bool {
	var procs []*lineCand
	for _, l := range lines {
		if minorProcedure(l.Code) {
			procs = append(procs, l)
		}
	}
	if len(procs) == 0 {
		return true
	}
	for _, d := range cands {
		if d.prio != prioCurrent || d.typ == cStatus {
			continue
		}
		covered := false
		for _, l := range procs {
			covered = covered || c.treats(l, d) || soleProblem(l, d, cands)
		}
		// a minor problem only reassured is not a significant, separate evaluation
		if !covered && (d.typ != cMinor || c.managed(d)) {
			return true
		}
	}
	// Prescription management beside the procedure counts when the visit also works up another,
	// uncertain problem ("possible reflux; empiric omeprazole" beside a laryngoscopy).
	if !c.uncertainAssessed {
		return false
	}
	for i := range c.n.sents {
		s := &c.n.sents[i]
		if !s.inAP() || s.section == secProcedure || (c.n.dictated && !s.dictated) {
			continue
		}
		inProc := false
		for _, l := range procs {
			inProc = inProc || l.sent == s
		}
		if !inProc && c.prescriptionManagement(s) {
			return true
		}
	}
	return false
}

// treats reports whether a procedure line treats the diagnosis: the diagnosis is named in the
// procedure's sentence or in the sentences next to it, by its evidence or by a word of its code's
// description ("destruction of four benign warts" treats "common warts").
func (c *coding) treats(l *lineCand, d *dxCand) bool {
	if l.sent == nil {
		return false
	}
	for _, e := range d.ev {
		if e.Start >= l.sent.start && e.End <= l.sent.end {
			return true
		}
	}
	info, ok := c.set.Get(codes.ICD10CM, d.code)
	if !ok {
		return false
	}
	for _, w := range descTokens(info.Display) {
		if descStop[w] || genericWords[w] || len(w) < 4 {
			continue
		}
		if l.sent.has(w) {
			return true
		}
	}
	return false
}

// soleProblem reports d as the only current problem of the body system a procedure line is for
// (the actinic keratoses a cryotherapy treats, when the note names no other skin problem).
func soleProblem(l *lineCand, d *dxCand, cands []*dxCand) bool {
	if !groupsMatch(l.groups, d.groups) {
		return false
	}
	for _, o := range cands {
		if o != d && o.prio == prioCurrent && o.typ != cStatus && groupsMatch(l.groups, o.groups) {
			return false
		}
	}
	return true
}

// genericWords of descriptions name no particular condition.
var genericWords = map[string]bool{"disease": true, "disorder": true, "other": true, "unspecified": true, "left": true, "right": true,
	"bilateral": true, "acute": true, "chronic": true, "without": true, "with": true, "site": true, "part": true, "condition": true,
	"multiple": true, "initial": true, "subsequent": true, "encounter": true, "sequela": true, "lesion": true, "body": true}

// spokenMinutesRe finds minutes said in words ("forty-two minutes").
var spokenMinutesRe = regexp.MustCompile(`(?i)\b([a-z]+(?:[- ][a-z]+)?)\s+(minutes?|mins?)\b`)

// digitMinutes rewrites minutes said in words as digits, for the time statements of em.go.
func digitMinutes(s string) string {
	return spokenMinutesRe.ReplaceAllStringFunc(s, func(m string) string {
		sm := spokenMinutesRe.FindStringSubmatch(m)
		words, unit := sm[1], sm[2]
		prefix, last := "", words
		if i := strings.LastIndexAny(words, " -"); i >= 0 {
			prefix, last = words[:i+1], words[i+1:]
		}
		// "forty-two", "sixty five": one number
		if prefix != "" && tensWords[strings.ToLower(strings.TrimRight(prefix, " -"))] > 0 {
			if n := spokenNumber(words); n > 0 {
				return strconv.Itoa(n) + " " + unit
			}
		}
		if n := spokenNumber(last); n > 0 && unitsWords[strings.ToLower(last)]+tensWords[strings.ToLower(last)] > 0 {
			return prefix + strconv.Itoa(n) + " " + unit
		}
		return m
	})
}
