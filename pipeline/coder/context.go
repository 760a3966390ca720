package coder

import "strings"

// Assertion is what a transcript says about a mentioned condition, found by a NegEx/ConText-style
// analysis: trigger phrases open a scope forward (pre) or backward (post) over a bounded window of
// words, closed early by termination terms; pseudo-triggers ("no change", "mother says") match first
// and block the shorter trigger inside them.
type Assertion struct {
	Negated      bool // "denies chest pain", "no fever", "strep was ruled out"
	Uncertain    bool // "rule out", "possible", "suspected", "likely", "consistent with" (guideline IV.H)
	Hypothetical bool // "return if fever develops", "risk of", "screening for", "prevent"
	Historical   bool // "history of", "s/p", "resolved", "years ago"
	Family       bool // the experiencer is a blood relative ("mother had")
	Other        bool // the experiencer is someone else (spouse, coworker, sick contacts)
	Resolved     bool // explicitly resolved / in remission / no longer
}

// Affirmed reports a current condition of the patient, asserted without doubt.
func (a Assertion) Affirmed() bool {
	return !a.Negated && !a.Uncertain && !a.Hypothetical && !a.Family && !a.Other
}

type trigKind int

const (
	kNeg trigKind = iota
	kUnc
	kHyp
	kHist
	kFam
	kOther
	kResolved
	kPseudo
	kTerm
	kExpSwitch // ends an experiencer (family/other) scope: "he", "she", "patient", "I"
)

type trigger struct {
	toks []string
	kind trigKind
	post bool // scope runs backward from the trigger
}

func trig(kind trigKind, post bool, phrases ...string) []trigger {
	var out []trigger
	for _, p := range phrases {
		out = append(out, trigger{toks: triggerTokens(p), kind: kind, post: post})
	}
	return out
}

// triggerTokens are lower-cased, singular, without the abbreviation marker.
func triggerTokens(p string) []string {
	var out []string
	for _, t := range phraseTokens(strings.ToLower(p)) {
		out = append(out, strings.TrimPrefix(t, "abbr:"))
	}
	return out
}

// Scope windows, in words.
const (
	preWindow  = 8
	postWindow = 6
)

var triggers = func() []trigger {
	var t []trigger
	t = append(t, trig(kPseudo, false,
		"no increase", "no change", "no significant change", "not only", "no further", "not necessarily", "without difficulty",
		"gram negative", "not certain whether", "no improvement", "not improved", "not resolved", "has not resolved", "hasn't resolved",
		"not helped", "no relief", "without relief", "not been able", "not responded", "unable to rule out", "not ruled out",
		"mother say", "mother report", "mother state", "mother note", "mother noticed", "mother is concerned", "mother concerned",
		"mother is worried", "mom say", "mom report", "mom noticed", "mom is worried", "mom state", "per mother", "per mom",
		"according to mother", "according to his mother", "according to her mother", "mother brought", "brought in by",
		"accompanied by", "parents report", "parent report", "dad say", "father report", "father say", "wife report", "husband report",
		"wife say", "husband say", "family report", "history obtained from", "history provided by", "history from",
		"not a history of", "denies any change", "no new", "not new", "no history of trauma")...)
	t = append(t, trig(kNeg, false,
		"no", "not", "denies", "denied", "denying", "deny", "without", "negative for", "free of", "absence of", "absent",
		"no evidence of", "no sign of", "no signs of", "no symptoms of", "no history of", "no hx of", "never had", "never",
		"has not had", "hasn't had", "has not been", "doesn't have", "does not have", "don't have", "do not have",
		"haven't had", "have not had", "not had", "no complaints of", "not experiencing", "nor", "fails to reveal",
		"ruled out", "resolution of", "non", "negative", "declined", "declines", "refused", "refuses", "deferred",
		"no longer has", "not having", "hasn't been", "haven't been", "didn't have", "did not have", "isn't", "wasn't")...)
	t = append(t, trig(kNeg, true,
		"was ruled out", "is ruled out", "been ruled out", "ruled out", "unlikely", "not likely", "is negative", "was negative",
		"negative", "not seen", "denied", "absent", "not present", "not found", "none", "declined", "refused", "deferred")...)
	t = append(t, trig(kUnc, false,
		"rule out", "r/o", "ruling out", "to rule out", "possible", "possibly", "probable", "probably", "likely", "most likely",
		"suspected", "suspect", "suspicious for", "suspicion of", "suspicion for", "concern for", "concerning for", "worrisome for",
		"questionable", "question of", "query", "cannot rule out", "can't rule out", "cannot exclude", "can't exclude",
		"differential", "differential diagnosis", "ddx", "versus", "vs", "may be", "may have", "might be", "might have",
		"could be", "could have", "evaluate for", "evaluation for", "workup for", "work up for", "work-up for", "assess for",
		"to exclude", "presumed", "presumptive", "working diagnosis", "consistent with", "compatible with", "suggestive of",
		"suggests", "thought to be", "appears to be", "seems", "borderline", "concern about", "worried about", "wonder if",
		"not sure if", "maybe", "perhaps", "check for", "test for", "testing for", "screen for")...)
	t = append(t, trig(kUnc, true,
		"is suspected", "suspected", "is possible", "is likely", "is questionable", "not excluded",
		"cannot be excluded", "cannot be ruled out", "vs", "versus", "is a possibility", "on the differential", "is considered")...)
	t = append(t, trig(kHyp, false,
		"if", "return if", "call if", "should", "in case", "watch for", "monitor for", "signs of", "warning signs", "risk of",
		"risks of", "risk for", "at risk for", "to prevent", "prevent", "prevention", "prevention of", "prophylaxis", "screening for",
		"screening", "screened for", "precautions", "avoid", "in order to avoid", "unless", "develops", "develop",
		"concern about developing", "vaccine for", "vaccination for", "vaccinated against", "immunization for")...)
	t = append(t, trig(kHyp, true, "develops", "develop", "occurs", "recur", "return", "returns", "worsens", "prophylaxis")...)
	t = append(t, trig(kHist, false,
		"history of", "hx of", "h/o", "past history of", "personal history of", "prior", "previous", "previously", "remote",
		"status post", "s/p", "old", "former", "in the past", "formerly", "childhood", "as a child", "was treated for")...)
	t = append(t, trig(kHist, true, "in the past", "years ago", "year ago", "month ago", "months ago", "as a child", "in childhood",
		"in college", "previously")...)
	t = append(t, trig(kResolved, false, "resolved", "no longer", "in remission", "cured", "outgrew", "recovered from")...)
	t = append(t, trig(kResolved, true, "resolved", "has resolved", "which resolved", "now resolved", "in remission", "remission",
		"cured", "completely resolved", "fully resolved", "went away")...)
	t = append(t, trig(kFam, false,
		"family history of", "family history", "fhx", "family hx", "fh of", "mother", "mom", "father", "dad", "brother", "sister",
		"sibling", "aunt", "uncle", "grandmother", "grandfather", "grandparent", "grandma", "grandpa", "parent", "son",
		"daughter", "cousin", "maternal", "paternal", "relative", "twin", "niece", "nephew")...)
	t = append(t, trig(kFam, true, "in the family", "runs in the family", "runs in his family", "runs in her family", "runs in family")...)
	t = append(t, trig(kOther, false, "husband", "wife", "spouse", "partner", "boyfriend", "girlfriend", "roommate", "coworker",
		"co-worker", "friend", "classmate", "sick contact", "sick contacts", "exposure to", "exposed to", "daycare", "classmates",
		"teacher", "neighbor", "everyone at home", "kids at home", "household contact", "close contact")...)
	t = append(t, trig(kTerm, false,
		"but", "however", "although", "though", "except", "aside from", "apart from", "yet", "nevertheless", "still",
		"which", "because", "secondary to", "due to", "as well as", "positive for", "reports", "endorses", "complains of",
		"presents with", "presents for", "here for", "now has", "now with", "currently has", "is having", "has been having",
		"c/o", "notes", "admits to", "otherwise", "whereas", "while", "plus")...)
	t = append(t, trig(kExpSwitch, false, "he", "she", "patient", "pt", "i", "he has", "she has", "the patient", "himself",
		"herself", "me", "my", "his", "her", "they")...)
	return t
}()

// match reports whether trig matches words at i.
func (tr *trigger) match(ws []string, i int) bool {
	if i+len(tr.toks) > len(ws) {
		return false
	}
	for j, t := range tr.toks {
		if ws[i+j] != t {
			return false
		}
	}
	return true
}

type found struct {
	kind     trigKind
	post     bool
	from, to int // word span of the trigger
}

// findTriggers returns the triggers of a sentence, longest first at each position, skipping words
// covered by a pseudo-trigger.
func findTriggers(ws []string) []found {
	var out []found
	covered := make([]bool, len(ws))
	for i := 0; i < len(ws); i++ {
		if covered[i] {
			continue
		}
		best := -1
		for ti := range triggers {
			tr := &triggers[ti]
			if tr.match(ws, i) && (best < 0 || len(tr.toks) > len(triggers[best].toks)) {
				best = ti
			}
		}
		if best < 0 {
			continue
		}
		tr := triggers[best]
		// The same phrase may be both a pre- and a post-trigger ("ruled out", "negative"): record
		// every trigger of that length at i.
		for ti := range triggers {
			o := &triggers[ti]
			if len(o.toks) == len(tr.toks) && o.match(ws, i) {
				out = append(out, found{kind: o.kind, post: o.post, from: i, to: i + len(o.toks)})
			}
		}
		if tr.kind == kPseudo {
			for j := i; j < i+len(tr.toks); j++ {
				covered[j] = true
			}
		}
		i += len(tr.toks) - 1
	}
	return out
}

// normWords strips the abbreviation marker, so triggers match "hx" written either way.
func normWords(toks []token) []string {
	ws := make([]string, len(toks))
	for i, t := range toks {
		ws[i] = strings.TrimPrefix(t.norm, "abbr:")
	}
	return ws
}

// assess returns the assertion of the mention at words [ms, me) of sentence s.
func assess(s *sentence, ms, me int) Assertion {
	ws := normWords(s.toks)
	trs := findTriggers(ws)
	var a Assertion
	isTerm := func(k trigKind) bool { return k == kTerm }
	for _, f := range trs {
		if f.kind == kPseudo || f.kind == kTerm || f.kind == kExpSwitch {
			continue
		}
		if f.from < me && f.to > ms {
			continue // the trigger is part of the mention itself
		}
		inScope := false
		if !f.post && f.to <= ms {
			inScope = ms-f.to <= preWindow
			for _, g := range trs {
				if g.from >= f.to && g.from < ms && (isTerm(g.kind) || (g.kind == kExpSwitch && (f.kind == kFam || f.kind == kOther))) {
					inScope = false
				}
				// a later trigger of another kind between this one and the mention takes over
				if g.from >= f.to && g.to <= ms && g.kind != f.kind && !g.post && g.kind != kPseudo && g.kind != kTerm && g.kind != kExpSwitch &&
					(f.kind == kNeg || f.kind == kHist) && (g.kind == kNeg || g.kind == kHist) {
					inScope = false
				}
			}
		}
		if f.post && f.from >= me {
			inScope = f.from-me <= postWindow
			for _, g := range trs {
				if g.from >= me && g.to <= f.from && isTerm(g.kind) {
					inScope = false
				}
			}
		}
		if !inScope {
			continue
		}
		switch f.kind {
		case kNeg:
			a.Negated = true
		case kUnc:
			a.Uncertain = true
		case kHyp:
			a.Hypothetical = true
		case kHist:
			a.Historical = true
		case kResolved:
			a.Resolved, a.Historical = true, true
		case kFam:
			a.Family = true
		case kOther:
			a.Other = true
		}
	}
	return a
}
