package coder

import (
	"strings"
	"sync"
)

// trieNode is a node of a token trie over dictionary phrases.
type trieNode struct {
	next map[string]*trieNode
	gap  *trieNode // "*": one to three arbitrary words, then continue here
	ends []int     // indexes of the entries that end here
}

func newTrie() *trieNode { return &trieNode{next: map[string]*trieNode{}} }

func (n *trieNode) insert(toks []string, id int) {
	cur := n
	for _, t := range toks {
		if t == "*" {
			if cur.gap == nil {
				cur.gap = newTrie()
			}
			cur = cur.gap
			continue
		}
		nx := cur.next[t]
		if nx == nil {
			nx = newTrie()
			cur.next[t] = nx
		}
		cur = nx
	}
	cur.ends = append(cur.ends, id)
}

type trieMatch struct {
	end  int // exclusive token index
	id   int
	gaps int
}

// matchAt returns every entry matching toks from i.
func (n *trieNode) matchAt(toks []token, i int, gaps int, out []trieMatch) []trieMatch {
	for _, id := range n.ends {
		out = append(out, trieMatch{end: i, id: id, gaps: gaps})
	}
	if i >= len(toks) {
		return out
	}
	norm := toks[i].norm
	if nx := n.next[norm]; nx != nil {
		out = nx.matchAt(toks, i+1, gaps, out)
	}
	if plain, ok := strings.CutPrefix(norm, "abbr:"); ok {
		// a plain dictionary word matches an abbreviation written either way ("flu", "FLU")
		if nx := n.next[plain]; nx != nil {
			out = nx.matchAt(toks, i+1, gaps, out)
		}
	}
	if n.gap != nil {
		for k := 1; k <= 3 && i+k < len(toks); k++ {
			out = n.gap.matchAt(toks, i+k, gaps+1, out)
		}
	}
	return out
}

// conceptTrie indexes the dictionary's terms, built on first use.
var conceptTrie = sync.OnceValue(func() *trieNode {
	return buildTrie(len(dictionary), func(i int) []string { return dictionary[i].terms })
})

// buildTrie indexes the terms of entries 0..n-1 by their tokens.
func buildTrie(n int, terms func(i int) []string) *trieNode {
	t := newTrie()
	for i := range n {
		for _, term := range terms(i) {
			t.insert(phraseTokens(term), i)
		}
	}
	return t
}

// mention is one dictionary concept found in a sentence.
type mention struct {
	c          *concept
	s          *sentence
	ts, te     int // token span
	start, end int // byte span
	a          Assertion
}

// findMentions scans every sentence for dictionary concepts, longest match first, and assesses each.
func findMentions(n *note) []*mention {
	trie := conceptTrie()
	var out []*mention
	for si := range n.sents {
		s := &n.sents[si]
		for i := 0; i < len(s.toks); {
			ms := trie.matchAt(s.toks, i, 0, nil)
			if len(ms) == 0 {
				i++
				continue
			}
			best := ms[0]
			for _, m := range ms[1:] {
				if m.end > best.end || (m.end == best.end && (m.gaps < best.gaps || (m.gaps == best.gaps && m.id < best.id))) {
					best = m
				}
			}
			c := &dictionary[best.id]
			m := &mention{c: c, s: s, ts: i, te: best.end, start: s.toks[i].start, end: s.toks[best.end-1].end}
			m.a = assess(s, m.ts, m.te)
			// "pneumonia?" marks doubt
			if m.end < len(n.text) && n.text[m.end] == '?' {
				m.a.Uncertain = true
			}
			switch s.section {
			case secFH:
				m.a.Family = true
			case secPMH, secPSH:
				m.a.Historical = true
			}
			if strings.Contains(n.text[m.end:s.end], "?") || strings.HasSuffix(strings.TrimSpace(s.raw), "?") {
				answerQuestion(n, s, &m.a)
			}
			if c.typ != cBlock {
				out = append(out, m)
			} else {
				s.blocked = append(s.blocked, [2]int{m.ts, m.te})
			}
			i = best.end
		}
	}
	return out
}

// answerQuestion reads the reply to a question that mentions a condition ("Any fever?"): a
// following "No..." negates it, "Yes..." affirms it, anything else leaves it unasserted.
func answerQuestion(n *note, q *sentence, a *Assertion) {
	if a.Negated {
		return
	}
	var next *sentence
	for i := q.idx + 1; i < len(n.sents); i++ {
		if n.sents[i].line != q.line || n.sents[i].speaker != q.speaker {
			next = &n.sents[i]
			break
		}
	}
	if next == nil || len(next.toks) == 0 {
		a.Uncertain = true
		return
	}
	switch normWords(next.toks[:1])[0] {
	case "no", "nope", "none", "not", "never", "deny", "negative", "nah", "nothing":
		a.Negated = true
	case "yes", "yeah", "yep", "yup", "sometimes", "some", "occasionally", "definitely", "correct":
	default:
		if !next.has("i do", "i have", "a little", "a bit", "it does") {
			a.Uncertain = true
		}
	}
}

// sideInSentence returns the side word nearest the mention in its sentence (within 8 words), or 0.
func sideInSentence(m *mention) byte {
	best, bestDist := byte(0), 1<<30
	for i, t := range m.s.toks {
		sd := sideWord(t.norm)
		if sd == 0 {
			continue
		}
		d := 0
		switch {
		case i < m.ts:
			d = m.ts - i
		case i >= m.te:
			d = i - m.te + 1
		}
		if d <= 8 && d < bestDist {
			best, bestDist = sd, d
		}
	}
	return best
}

// sideOf finds laterality for a mention: a side word in its sentence (nearest wins), else a side
// word next to the concept's body part anywhere in the note. It returns 'R', 'L', 'B' or 0.
func sideOf(n *note, m *mention) byte {
	best := sideInSentence(m)
	if best != 0 {
		return best
	}
	if m.c.part == "" {
		return 0
	}
	part := phraseTokens(m.c.part)[0]
	found := map[byte]bool{}
	for si := range n.sents {
		s := &n.sents[si]
		for i, t := range s.toks {
			if t.norm != part && t.norm != part+"s" {
				continue
			}
			for j := max(0, i-3); j < i; j++ {
				if sd := sideWord(s.toks[j].norm); sd != 0 {
					found[sd] = true
				}
			}
		}
	}
	switch {
	case found['B'] || (found['R'] && found['L']):
		if found['B'] || m.c.side.b != "" {
			return 'B'
		}
		return 0
	case found['R']:
		return 'R'
	case found['L']:
		return 'L'
	}
	return 0
}

func sideWord(norm string) byte {
	switch strings.TrimPrefix(norm, "abbr:") {
	case "right", "rt", "r":
		return 'R'
	case "left", "lt", "l":
		return 'L'
	case "bilateral", "both", "bilaterally":
		return 'B'
	}
	return 0
}

// find returns the word span of the first of phrases found in s.
func (s *sentence) find(phrases ...string) (int, int, bool) {
	ws := s.normWords()
	best, bestEnd := -1, -1
	for _, p := range phrases {
		pt := triggerTokens(p)
		for i := 0; i+len(pt) <= len(ws); i++ {
			ok := true
			for j := range pt {
				if ws[i+j] != pt[j] {
					ok = false
					break
				}
			}
			if ok && (best < 0 || i < best) {
				best, bestEnd = i, i+len(pt)
			}
		}
	}
	return best, bestEnd, best >= 0
}

// assessPhrase is the assertion of the first of phrases in s; ok is false when none occurs.
func assessPhrase(s *sentence, phrases ...string) (Assertion, bool) {
	ts, te, ok := s.find(phrases...)
	if !ok {
		return Assertion{}, false
	}
	return assess(s, ts, te), true
}

// has reports whether sentence s contains any of the phrases (matched on token norms, abbreviation
// marker ignored).
func (s *sentence) has(phrases ...string) bool {
	ws := s.normWords()
	for _, p := range phrases {
		pt := triggerTokens(p)
		for i := 0; i+len(pt) <= len(ws); i++ {
			ok := true
			for j := range pt {
				if ws[i+j] != pt[j] {
					ok = false
					break
				}
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// text returns the sentence's text.
func (s *sentence) text(n *note) string { return n.text[s.start:s.end] }
