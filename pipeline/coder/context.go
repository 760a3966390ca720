package coder

import (
	"strings"
	"sync"
)

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
	if v, ok := triggerCache.Load(p); ok {
		return v.([]string)
	}
	var out []string
	for _, t := range phraseTokens(strings.ToLower(p)) {
		out = append(out, strings.TrimPrefix(t, "abbr:"))
	}
	triggerCache.Store(p, out)
	return out
}

// triggerCache holds the matching forms of the phrases the coder looks for (a few thousand
// constant phrases, tokenized once instead of on every look).
var triggerCache sync.Map

// Scope windows, in words.
const (
	preWindow  = 8
	postWindow = 6
)

// triggers are the ConText trigger phrases of data/context.txt.
var triggers = func() []trigger {
	kinds := map[string]trigKind{"pseudo": kPseudo, "negated": kNeg, "uncertain": kUnc, "hypothetical": kHyp, "historical": kHist,
		"resolved": kResolved, "family": kFam, "other": kOther, "terminate": kTerm, "experiencer-switch": kExpSwitch}
	var t []trigger
	for _, f := range dataLines("context.txt") {
		kind, ok := kinds[f[0]]
		if len(f) < 3 || !ok || (f[1] != "pre" && f[1] != "post") {
			panic("coder: data/context.txt: want KIND | pre or post | phrase...: " + strings.Join(f, " | "))
		}
		t = append(t, trig(kind, f[1] == "post", f[2:]...)...)
	}
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
// triggersByFirst indexes the triggers by their first word.
var triggersByFirst = sync.OnceValue(func() map[string][]int {
	out := map[string][]int{}
	for i, t := range triggers {
		if len(t.toks) > 0 {
			out[t.toks[0]] = append(out[t.toks[0]], i)
		}
	}
	return out
})

func findTriggers(ws []string) []found {
	var out []found
	covered := make([]bool, len(ws))
	for i := 0; i < len(ws); i++ {
		if covered[i] {
			continue
		}
		best := -1
		cands := triggersByFirst()[ws[i]]
		for _, ti := range cands {
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
		for _, ti := range cands {
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
	// "not in remission", "never resolved": a negated resolution trigger says the condition is
	// active.
	kept := out[:0]
	for _, f := range out {
		if f.kind == kResolved && f.from > 0 && (ws[f.from-1] == "not" || ws[f.from-1] == "never" || ws[f.from-1] == "yet") {
			continue
		}
		kept = append(kept, f)
	}
	return kept
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
	return assessTriggers(s.triggers(), commas(s), ms, me)
}

// triggers returns the ConText triggers of s, found once.
func (s *sentence) triggers() []found {
	if s.trs == nil {
		s.trs = findTriggers(s.normWords())
		if s.trs == nil {
			s.trs = []found{}
		}
	}
	return s.trs
}

// normWords returns the words of s without the abbreviation marker, computed once.
func (s *sentence) normWords() []string {
	if s.ws == nil {
		s.ws = normWords(s.toks)
	}
	return s.ws
}

// assertions returns the assertion of every word of s, each judged as a one-word mention.
func assertions(s *sentence) []Assertion {
	trs, cs := s.triggers(), commas(s)
	out := make([]Assertion, len(s.toks))
	for i := range out {
		out[i] = assessTriggers(trs, cs, i, i+1)
	}
	return out
}

// commas reports, for each word of s, whether a comma separates it from the word before.
func commas(s *sentence) []bool {
	out := make([]bool, len(s.toks))
	for i := 1; i < len(s.toks); i++ {
		out[i] = strings.Contains(s.raw[s.toks[i-1].end-s.start:s.toks[i].start-s.start], ",")
	}
	return out
}

// assessTriggers is assess over a sentence's triggers found beforehand. A date or time after a
// comma ("verruca vulgaris, right hand, previously treated three weeks ago") dates the clause it
// is in, not a condition named before the comma.
func assessTriggers(trs []found, commaAt []bool, ms, me int) Assertion {
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
				// a later trigger of another kind between this one and the mention (or opening at it:
				// the words of "status post" are themselves not negated by a "no" before them) takes over
				if g.from >= f.to && g.from <= ms && g.kind != f.kind && !g.post && g.kind != kPseudo && g.kind != kTerm && g.kind != kExpSwitch &&
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
			if f.kind == kHist {
				for k := me; k <= f.from && k < len(commaAt); k++ {
					if commaAt[k] {
						inScope = false
					}
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
