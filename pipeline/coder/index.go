package coder

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/iambilly/billy/pipeline/codes"
	"github.com/iambilly/billy/pipeline/embed"
)

// The description index makes every billable ICD-10-CM code a candidate: each long description is
// read as word requirements (ICD-10-CM conventions, Official Guidelines I.A), and an assessed
// sentence names a code when it asserts all of the description's essential words close together.
//
//   - Words in parentheses are nonessential modifiers (I.A.7): they may be present, and count in
//     favour of the code when they are.
//   - "Unspecified" and the qualifier after it (", unspecified ear") are the default when the note
//     says nothing more: never required.
//   - "without X" and "not X" describe absence: the note must not assert X; when the note negates X
//     too, the code fits better.
//   - "A and B", "A or B" of two nouns accept either ("Dizziness and giddiness"); of two adjectives
//     such as "acute and chronic" they need both.
//   - The 7th character's encounter ("initial encounter", "sequela") is chosen by the note's
//     encounter, not by words (I.C.19.a).
//   - "Other ..." residual codes rank below a named code with the same words.
//
// Synonyms and broader terms (data/synonyms.txt, data/broader.txt) and the abbreviations of
// pipeline/embed are applied to descriptions and transcript alike. Among the codes a sentence
// supports, the one that accounts for most of its words wins (the most specific code the text
// supports), and several codes may come from one sentence when their words do not overlap.

// wordGroup is one essential word of a description, or coordinated alternatives of which one must
// be present.
type wordGroup []string

// descEntry is one billable code's description read as requirements.
type descEntry struct {
	code    string
	req     []wordGroup
	opt     []string // nonessential words
	neg     []string // words the description excludes
	enc     byte     // 7th character of an injury code with an encounter, else 0
	fx      bool     // a fracture code: open and closed differ
	other   bool     // an "Other ..." residual code
	unspec  bool     // an "unspecified" code
	words   int      // essential and nonessential words, for ties
	family  bool     // a family-history code (Z80-Z84)
	history bool     // a personal history or status code
	expo    bool     // contact with or exposure to (the experiencer is someone else)
	manif   bool     // a manifestation code "in diseases classified elsewhere": only with its etiology
	// attached[i]: req[i] belongs to a "with ..." or "due to ..." part, which may lie further from
	// the condition's own words ("ulcerative pancolitis, ..., now with bloody stools")
	attached []bool
	dueTo    bool // "due to": an etiology combination
	// encounterFor: an "Encounter for ..." code, the reason for a visit; its words may also name a
	// condition coded on its own ("follow-up examination after treatment for malignant neoplasm" and
	// the personal history of that neoplasm)
	encounterFor bool
}

// descIndex indexes the entries by the rarest word of each (candidate generation); every candidate
// is then verified against all its requirements.
type descIndex struct {
	entries []descEntry
	post    map[string][]int32
}

var (
	parenRe   = regexp.MustCompile(`\([^()]*\)|\[[^\[\]]*\]`)
	indexOnce struct {
		mu  sync.Mutex
		set *codes.Set
		ix  *descIndex
	}
)

// indexFor returns the description index of set, built on first use and kept for the most recent
// set (a process codes with one set at a time; a reload after an import builds a new one).
func indexFor(set *codes.Set) *descIndex {
	indexOnce.mu.Lock()
	defer indexOnce.mu.Unlock()
	if indexOnce.set != set || indexOnce.ix == nil {
		indexOnce.set, indexOnce.ix = set, buildIndex(set)
	}
	return indexOnce.ix
}

// descStop are description words that carry no requirement.
var descStop = map[string]bool{"of": true, "the": true, "an": true, "in": true, "on": true, "to": true, "by": true, "after": true,
	"encounter": true,
	"for":       true, "due": true, "as": true, "at": true, "from": true, "other": true, "specified": true, "unspecified": true,
	"having": true, "achieved": true, "nec": true, "nos": true, "than": true, "which": true, "that": true, "is": true, "its": true,
	"type": true, "mellitus": true, "personal": true, "current": true, "into": true, "form": true}

// pairedAdjectives are words that, joined by "and", are both required ("acute and chronic").
var pairedAdjectives = map[string]bool{"acute": true, "chronic": true, "subacute": true, "recurrent": true, "right": true,
	"left": true, "upper": true, "lower": true, "anterior": true, "posterior": true, "superficial": true, "deep": true}

func buildIndex(set *codes.Set) *descIndex {
	syn := synonyms()
	ix := &descIndex{post: map[string][]int32{}}
	excl := indexExclusions()
	for _, c := range set.Codes(codes.ICD10CM) {
		if !c.Billable || excluded(excl, c.Code) {
			continue
		}
		e, ok := parseDesc(c.Code, c.Display, syn)
		if !ok {
			continue
		}
		ix.entries = append(ix.entries, e)
	}
	df := map[string]int{}
	for _, e := range ix.entries {
		for _, g := range e.req {
			for _, w := range g {
				df[w]++
			}
		}
	}
	// A code named by one everyday word ("Pain, unspecified") is too easily met in passing: only a
	// rare single word (a diagnosis such as "Rosacea" or "Nocturia") names a code alone.
	kept := ix.entries[:0]
	for _, e := range ix.entries {
		if len(e.req) == 1 && e.other {
			continue // "Other seizures": a residual category the Index reaches, words alone do not
		}
		if len(e.req) == 1 {
			n := 0
			for _, w := range e.req[0] {
				n += df[w]
			}
			if n > maxSingleWordDF {
				continue
			}
		}
		kept = append(kept, e)
	}
	ix.entries = kept
	for i, e := range ix.entries {
		best, bestDF := -1, 1<<30
		for gi, g := range e.req {
			n := 0
			for _, w := range g {
				n += df[w]
			}
			if n < bestDF {
				best, bestDF = gi, n
			}
		}
		for _, w := range e.req[best] {
			ix.post[w] = append(ix.post[w], int32(i))
		}
	}
	return ix
}

// maxSingleWordDF is how many descriptions may share the one essential word of a one-word code.
const maxSingleWordDF = 40

// indexExclusions are the code ranges of data/index-exclude.txt.
var indexExclusions = sync.OnceValue(func() [][2]string {
	var out [][2]string
	for _, f := range dataLines("index-exclude.txt") {
		from, to, ok := strings.Cut(f[0], "-")
		if !ok || len(f) != 2 {
			panic("coder: data/index-exclude.txt: want FROM-TO | why: " + strings.Join(f, "|"))
		}
		out = append(out, [2]string{strings.TrimSpace(from), strings.TrimSpace(to)})
	}
	return out
})

func excluded(ranges [][2]string, code string) bool {
	for _, r := range ranges {
		if code >= r[0] && (code <= r[1] || strings.HasPrefix(code, r[1])) {
			return true
		}
	}
	return false
}

// descTokens are the matching forms of a description fragment: lower case, singular.
func descTokens(s string) []string {
	var out []string
	for _, t := range wordTokens(s) {
		out = append(out, stemWord(strings.ToLower(t.Text)))
	}
	return out
}

// parseDesc reads one description (see the comment at the top of this file).
func parseDesc(code, display string, syn *phraseMap) (descEntry, bool) {
	e := descEntry{code: code}
	d := strings.ToLower(display)
	d = parenRe.ReplaceAllStringFunc(d, func(m string) string {
		e.opt = append(e.opt, syn.rewrite(descTokens(m[1:len(m)-1]))...)
		return " "
	})
	e.manif = strings.Contains(d, "in diseases classified elsewhere") || strings.Contains(d, "in other diseases classified elsewhere")
	e.dueTo = strings.Contains(d, "due to")
	for _, p := range []string{"in other diseases classified elsewhere", "in diseases classified elsewhere", "not elsewhere classified", "classified elsewhere"} {
		d = strings.ReplaceAll(d, p, " ")
	}
	fracture := strings.Contains(d, "fracture")
	segs := strings.Split(d, ",")
	undotted := strings.ReplaceAll(code, ".", "")
	if len(undotted) == 7 && (strings.Contains(d, "encounter") || strings.HasSuffix(strings.TrimSpace(d), "sequela")) {
		e.enc = undotted[6]
		e.fx = strings.Contains(d, "fracture")
		// drop the encounter segments ("initial encounter for closed fracture", "sequela")
		for len(segs) > 1 {
			last := strings.TrimSpace(segs[len(segs)-1])
			if strings.Contains(last, "encounter") || last == "sequela" || strings.HasPrefix(last, "type ") || strings.HasPrefix(last, "iiib") || strings.HasPrefix(last, "or ") {
				segs = segs[:len(segs)-1]
				continue
			}
			break
		}
	}
	// neg carries across the commas of a list ("without behavioral disturbance, psychotic
	// disturbance, ... and anxiety") but not into a side or site qualifier (", left ear").
	neg, attach := false, false
	negHead := ""
	for si, seg := range segs {
		toks := broaderJoin().rewrite(syn.rewrite(descTokens(seg)))
		if len(toks) == 0 {
			continue
		}
		if si > 0 && slices.Contains(toks, "unspecified") {
			e.unspec = true
			e.opt = append(e.opt, toks...)
			continue
		}
		// a negated list goes on in segments that start with "and"/"or" or end in the same noun
		// ("without behavioral disturbance, psychotic disturbance, ... and anxiety")
		if si > 0 && neg && !(toks[0] == "and" || toks[0] == "or" || toks[len(toks)-1] == negHead) {
			neg = false
		}
		join, afterUnspec := false, false
		for ti, w := range toks {
			// "unspecified ligament", "unspecified part": the word after "unspecified" is the default
			// when the note does not name it.
			if afterUnspec && !descStop[w] {
				e.opt = append(e.opt, w)
				afterUnspec = false
				continue
			}
			afterUnspec = false
			switch w {
			case "without", "not", "no":
				neg, join = true, false
				continue
			case "with":
				neg, join, attach = false, false, true
				continue
			case "due":
				if ti+1 < len(toks) && toks[ti+1] == "to" {
					attach = true
				}
			case "and", "or", "and/or":
				join = true
				continue
			case "unspecified":
				// only after the condition's own word: in "Unspecified mononeuropathy of ..." the
				// word after it is the condition
				e.unspec, afterUnspec = true, len(e.req) > 0
				continue
			case "other":
				e.other = true
				if ti+1 < len(toks) && toks[ti+1] == "than" {
					neg, join = true, false // "conditions other than malignant neoplasm"
				}
				continue
			}
			if descStop[w] || (fracture && w == "bone") {
				if w == "personal" || w == "type" || w == "mellitus" || w == "current" || w == "encounter" || w == "bone" {
					e.opt = append(e.opt, w)
				}
				continue
			}
			if neg {
				e.neg = append(e.neg, w)
				negHead = w
				continue
			}
			if join && len(e.req) > 0 {
				last := e.req[len(e.req)-1]
				if !(pairedAdjectives[last[len(last)-1]] && pairedAdjectives[w]) {
					e.req[len(e.req)-1] = append(last, w)
					join = false
					continue
				}
			}
			join = false
			if !containsGroupWord(e.req, w) {
				e.req = append(e.req, wordGroup{w})
				e.attached = append(e.attached, attach)
			}
		}
	}
	if len(e.req) == 0 {
		return e, false
	}
	e.words = len(e.opt)
	for _, g := range e.req {
		e.words += len(g)
	}
	cat := undotted[:3]
	e.family = cat >= "Z80" && cat <= "Z84"
	e.history = (cat >= "Z85" && cat <= "Z87") || cat == "Z91" || cat == "Z92" || (cat >= "Z93" && cat <= "Z99") || cat == "Z79" || cat == "Z88"
	e.expo = cat == "Z77" || cat == "Z20" || cat == "Z57"
	e.history = e.history || e.expo
	e.encounterFor = strings.HasPrefix(d, "encounter for")
	return e, true
}

func containsGroupWord(gs []wordGroup, w string) bool {
	for _, g := range gs {
		if slices.Contains(g, w) {
			return true
		}
	}
	return false
}

// phraseMap rewrites phrases (sequences of matching forms) to other phrases, longest match first.
type phraseMap struct {
	first map[string][]phraseRule // by first word
}

type phraseRule struct {
	from []string
	to   []string
}

func newPhraseMap() *phraseMap { return &phraseMap{first: map[string][]phraseRule{}} }

func (p *phraseMap) add(from, to []string) {
	if len(from) == 0 {
		return
	}
	p.first[from[0]] = append(p.first[from[0]], phraseRule{from: from, to: to})
	rs := p.first[from[0]]
	sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].from) > len(rs[j].from) })
}

// at returns the longest rule matching ws at i.
func (p *phraseMap) at(ws []string, i int) (phraseRule, bool) {
	for _, r := range p.first[ws[i]] {
		if i+len(r.from) <= len(ws) && slices.Equal(ws[i:i+len(r.from)], r.from) {
			return r, true
		}
	}
	return phraseRule{}, false
}

// rewrite replaces every variant phrase of ws by its canonical phrase.
func (p *phraseMap) rewrite(ws []string) []string {
	var out []string
	for i := 0; i < len(ws); {
		if r, ok := p.at(ws, i); ok {
			out = append(out, r.to...)
			i += len(r.from)
			continue
		}
		out = append(out, ws[i])
		i++
	}
	return out
}

// noExpand are abbreviations of tests, measures and drug classes (data/no-expand.txt), whose
// expansions name an organ or a substance, not a condition of the patient ("TSH" is not thyroid
// disease).
var noExpand = sync.OnceValue(func() map[string]bool {
	out := map[string]bool{}
	for _, f := range dataLines("no-expand.txt") {
		for _, w := range strings.Fields(f[0]) {
			out[strings.ToLower(w)] = true
		}
	}
	return out
})

// synonyms is data/synonyms.txt as a phrase map from each variant to its canonical phrase.
var synonyms = sync.OnceValue(func() *phraseMap { return readPhraseMap("synonyms.txt") })

// broader is data/broader.txt as a phrase map from each narrower term to its broader term, a
// broader term of several words being one word ("lower limb"), so that its parts do not match
// alone ("leg" is a lower limb, not "lower").
var broader = sync.OnceValue(func() *phraseMap {
	p := newPhraseMap()
	for _, f := range dataLines("broader.txt") {
		to := []string{strings.Join(descTokens(f[0]), " ")}
		for _, v := range f[1:] {
			p.add(descTokens(v), to)
		}
	}
	return p
})

// broaderJoin joins the words of each broader term in descriptions ("upper limb" is one word), as
// broader writes them in the transcript.
var broaderJoin = sync.OnceValue(func() *phraseMap {
	p := newPhraseMap()
	for _, f := range dataLines("broader.txt") {
		if ws := descTokens(f[0]); len(ws) > 1 {
			p.add(ws, []string{strings.Join(ws, " ")})
		}
	}
	return p
})

func readPhraseMap(name string) *phraseMap {
	p := newPhraseMap()
	for _, f := range dataLines(name) {
		if len(f) < 2 {
			panic("coder: data/" + name + ": want CANONICAL | variant ...: " + strings.Join(f, "|"))
		}
		to := descTokens(f[0])
		for _, v := range f[1:] {
			p.add(descTokens(v), to)
		}
	}
	// A canonical phrase may hold another line's variant ("poor urinary stream", "urinary" being a
	// variant of "urine"): write it in canonical words too, as descriptions are.
	for _, rs := range p.first {
		for i := range rs {
			rs[i].to = p.rewrite(rs[i].to)
		}
	}
	return p
}

// slots are the words each token of a sentence stands for: its own matching form, the expansion
// of an abbreviation, the canonical form of a synonym phrase it is part of, and broader terms.
func sentenceSlots(s *sentence) (slots [][]string, broad []map[string]bool) {
	syn, br := synonyms(), broader()
	var spelled []string
	var owner []int
	slots = make([][]string, len(s.toks))
	broad = make([]map[string]bool, len(s.toks))
	for i, t := range s.toks {
		w, isAbbr := strings.CutPrefix(t.norm, "abbr:")
		slots[i] = append(slots[i], w)
		if isAbbr && !noExpand()[w] {
			if exp, ok := embed.Abbreviation(w); ok {
				for _, x := range descTokens(exp) {
					spelled = append(spelled, x)
					owner = append(owner, i)
				}
				continue
			}
		}
		spelled = append(spelled, w)
		owner = append(owner, i)
	}
	for j, w := range spelled {
		if !slices.Contains(slots[owner[j]], w) {
			slots[owner[j]] = append(slots[owner[j]], w)
		}
	}
	for _, pm := range []*phraseMap{syn, br} {
		for j := 0; j < len(spelled); j++ {
			r, ok := pm.at(spelled, j)
			if !ok {
				continue
			}
			for k := j; k < j+len(r.from); k++ {
				o := owner[k]
				for _, w := range r.to {
					if slices.Contains(slots[o], w) {
						continue
					}
					slots[o] = append(slots[o], w)
					if pm == br {
						if broad[o] == nil {
							broad[o] = map[string]bool{}
						}
						broad[o][w] = true
					}
				}
			}
		}
	}
	// A drug of the Table of Drugs is also a "drug" ("Hypotension due to drugs").
	for _, d := range drugsIn(s) {
		for k := d.ts; k < d.te; k++ {
			if !slices.Contains(slots[k], "drug") {
				slots[k] = append(slots[k], "drug")
				if broad[k] == nil {
					broad[k] = map[string]bool{}
				}
				broad[k]["drug"] = true
			}
		}
	}
	for _, b := range s.blocked {
		for k := b[0]; k < b[1] && k < len(slots); k++ {
			slots[k] = nil
		}
	}
	return slots, broad
}

// descMatch is a code a sentence supports.
type descMatch struct {
	e          *descEntry
	lo, hi     int   // token window (inclusive)
	req        []int // token of each essential word
	score      float64
	assertedAt int  // token whose assertion decides
	spread     int  // words between the condition's own essential words
	missing    bool // one essential word of a long description is not in the sentence
	broad      int  // essential words met only as a broader term
	// alt is the best other code competing for the same words, and its score
	alt      string
	altScore float64
}

// maxWindow bounds how far apart the condition's own essential words may lie in the sentence.
func maxWindow(groups int) int { return 3*groups + 3 }

// maxAttachedWindow bounds the span of a condition with its "with ..." and "due to ..." parts.
const maxAttachedWindow = 30

// longDescription is the number of essential words from which one may be missing.
const longDescription = 6

// omissible are the generic nouns a long description may have that a note leaves out.
var omissible = map[string]bool{"syndrome": true, "condition": true, "disease": true, "disorder": true, "pectoris": true,
	"tissue": true, "region": true, "system": true, "structure": true, "organ": true, "process": true, "state": true}

// match returns the codes sentence s supports, best first, without overlapping essential words.
// as holds the assertion of each token; encOK says whether a 7th-character encounter fits the note.
func (ix *descIndex) match(s *sentence, as []Assertion, encOK func(enc byte, fx bool) bool) []descMatch {
	slots, broad := sentenceSlots(s)
	pos := map[string][]int{} // asserted (not negated) occurrences
	negPos := map[string][]int{}
	for i, ws := range slots {
		for _, w := range ws {
			if as[i].Negated {
				negPos[w] = append(negPos[w], i)
			} else {
				pos[w] = append(pos[w], i)
			}
		}
	}
	t := &sentWords{pos: pos, neg: negPos, broad: broad, dueTo: s.has("due to", "secondary to", "caused by", "induced")}
	seen := map[int32]bool{}
	var found []descMatch
	for w := range pos {
		for _, ei := range ix.post[w] {
			if seen[ei] {
				continue
			}
			seen[ei] = true
			if m, ok := ix.verify(&ix.entries[ei], t, encOK); ok {
				found = append(found, m)
			}
		}
	}
	// With its etiology in the sentence, a manifestation code is the specific one ("Dementia in other
	// diseases classified elsewhere, mild" beside Alzheimer's disease, not "Unspecified dementia").
	for i := range found {
		if found[i].e.manif && hasEtiology(found[i].e.code, found) {
			found[i].score += 8
		}
	}
	sort.Slice(found, func(i, j int) bool {
		a, b := found[i], found[j]
		if a.score != b.score {
			return a.score > b.score
		}
		if a.e.words != b.e.words {
			return a.e.words < b.e.words
		}
		return a.e.code < b.e.code
	})
	used := make([]bool, len(s.toks))
	var out []descMatch
	for i, m := range found {
		clash := false
		for _, p := range m.req {
			clash = clash || used[p]
		}
		if clash {
			continue
		}
		// the best other code for any of the same words: a close one makes the choice uncertain
		for _, f := range found[i+1:] {
			if f.e.code != m.e.code && sharesWord(f.req, m.req) {
				m.alt, m.altScore = f.e.code, f.score
				break
			}
		}
		if !m.e.encounterFor {
			for _, p := range m.req {
				used[p] = true
			}
		}
		out = append(out, m)
	}
	// A manifestation code goes with its etiology (I.A.13): only beside an etiology whose note asks
	// for it (data/manifestation.txt), named in the same sentence.
	kept := out[:0]
	for _, m := range out {
		if m.e.manif && !hasEtiology(m.e.code, out) {
			continue
		}
		kept = append(kept, m)
	}
	return kept
}

func sharesWord(a, b []int) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// hasEtiology reports whether ms hold an etiology of the manifestation code.
func hasEtiology(manif string, ms []descMatch) bool {
	for _, pair := range manifestations() {
		if !strings.HasPrefix(manif, pair[1]) {
			continue
		}
		for _, m := range ms {
			if strings.HasPrefix(m.e.code, pair[0]) {
				return true
			}
		}
	}
	return false
}

// manifestations are the (etiology, manifestation) prefix pairs of data/manifestation.txt.
var manifestations = sync.OnceValue(func() [][2]string {
	var out [][2]string
	for _, f := range dataLines("manifestation.txt") {
		if len(f) != 3 {
			panic("coder: data/manifestation.txt: want ETIOLOGY | MANIFESTATION | note: " + strings.Join(f, "|"))
		}
		out = append(out, [2]string{f[0], f[1]})
	}
	return out
})

// sentWords are a sentence's words for verification: asserted and negated occurrences by word,
// which words of a token are only broader terms, and whether the sentence names a cause.
type sentWords struct {
	pos, neg map[string][]int
	broad    []map[string]bool
	dueTo    bool
}

// verify checks one entry against a sentence's words and scores it.
func (ix *descIndex) verify(e *descEntry, t *sentWords, encOK func(byte, bool) bool) (descMatch, bool) {
	pos, negPos := t.pos, t.neg
	if e.enc != 0 && !encOK(e.enc, e.fx) {
		return descMatch{}, false
	}
	cands := make([][]int, len(e.req))
	anchor, missing := -1, -1
	for gi, g := range e.req {
		for _, w := range g {
			cands[gi] = append(cands[gi], pos[w]...)
		}
		if len(cands[gi]) == 0 {
			// A long description (six essential words or more) may miss one generic noun: notes
			// rarely repeat every word of "Localization-related symptomatic epilepsy and epileptic
			// syndromes with complex partial seizures". A missing modifier ("chemical" otitis
			// externa) is never assumed.
			if missing >= 0 || len(e.req) < longDescription || !omissible[g[0]] {
				return descMatch{}, false
			}
			missing = gi
			continue
		}
		if !e.attached[gi] && (anchor < 0 || len(cands[gi]) < len(cands[anchor])) {
			anchor = gi
		}
	}
	if anchor < 0 {
		return descMatch{}, false
	}
	heads := 0
	for gi := range e.req {
		if !e.attached[gi] && gi != missing {
			heads++
		}
	}
	best := descMatch{lo: -1}
	for _, p := range cands[anchor] {
		req := make([]int, 0, len(e.req))
		lo, hi := p, p
		hlo, hhi := p, p
		for gi := range e.req {
			if gi == missing {
				continue
			}
			q := nearest(cands[gi], p)
			req = append(req, q)
			lo, hi = min(lo, q), max(hi, q)
			if !e.attached[gi] {
				hlo, hhi = min(hlo, q), max(hhi, q)
			}
		}
		if hhi-hlo+1 > maxWindow(heads) || hi-lo+1 > maxAttachedWindow {
			continue
		}
		if best.lo < 0 || hi-lo < best.hi-best.lo {
			best = descMatch{e: e, lo: lo, hi: hi, req: req, spread: hhi - hlo + 1 - heads}
		}
	}
	if best.lo < 0 {
		return descMatch{}, false
	}
	near := func(ps []int, slack int) bool {
		for _, p := range ps {
			if p >= best.lo-slack && p <= best.hi+slack {
				return true
			}
		}
		return false
	}
	negHits := 0
	for _, w := range e.neg {
		if near(pos[w], 8) {
			return descMatch{}, false // the note asserts what the description excludes
		}
		if near(negPos[w], 8) {
			negHits++
		}
	}
	optHits := 0
	for _, w := range e.opt {
		if near(pos[w], 3) {
			optHits++
		}
	}
	// An essential word met only as a broader term of the note's word ("prostate" for "genital
	// organs") counts for less than the word itself, so the narrower code wins.
	req := 0.0
	k := 0
	for gi, g := range e.req {
		if gi == missing {
			req -= 2
			continue
		}
		p := best.req[k]
		k++
		direct := false
		for _, w := range g {
			if slices.Contains(pos[w], p) && (t.broad[p] == nil || !t.broad[p][w]) {
				direct = true
			}
		}
		if direct {
			req += 10
		} else {
			req += 6
			best.broad++
		}
	}
	best.missing = missing >= 0
	unmatchedAlt := 0
	for _, g := range e.req {
		for _, w := range g {
			if len(g) > 1 && !near(pos[w], 0) {
				unmatchedAlt++
			}
		}
	}
	best.score = req + 2*float64(optHits) + 3*float64(negHits) - float64(unmatchedAlt)
	// Words spread apart fit worse than words together.
	best.score -= 0.3 * float64(best.spread)
	if e.other {
		best.score -= 4
	}
	if e.manif {
		best.score -= 5
	}
	if e.dueTo && t.dueTo {
		best.score += 5 // the code accounts for the cause the note names too
	}
	best.assertedAt = slices.Min(best.req)
	return best, true
}

// nearest returns the element of ps closest to p.
func nearest(ps []int, p int) int {
	best := ps[0]
	for _, q := range ps[1:] {
		if abs(q-p) < abs(best-p) {
			best = q
		}
	}
	return best
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
