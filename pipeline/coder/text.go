package coder

import (
	"regexp"
	"strings"
	"unicode"

	"github.com/iambilly/billy/pipeline/embed"
)

// Canonical note sections.
const (
	secNone       = ""
	secCC         = "cc"
	secHPI        = "hpi"
	secPMH        = "pmh"
	secPSH        = "psh"
	secMeds       = "meds"
	secAllergies  = "allergies"
	secFH         = "fh"
	secSH         = "sh"
	secROS        = "ros"
	secExam       = "exam"
	secResults    = "results"
	secAssessment = "assessment"
	secPlan       = "plan"
	secProcedure  = "procedure"
	secTime       = "time"
	secCounsel    = "counseling" // education and counseling: conditions discussed, not assessed
)

// sectionHeaders maps a lower-cased header (the words before a colon at the start of a line, or a
// line of its own) to its canonical section.
var sectionHeaders = map[string]string{
	"chief complaint": secCC, "cc": secCC, "reason for visit": secCC, "reason for encounter": secCC, "presenting complaint": secCC,
	"history of present illness": secHPI, "hpi": secHPI, "subjective": secHPI, "interval history": secHPI, "history": secHPI,
	"past medical history": secPMH, "pmh": secPMH, "medical history": secPMH, "past history": secPMH, "problem list": secPMH, "pmhx": secPMH,
	"past surgical history": secPSH, "psh": secPSH, "surgical history": secPSH,
	"medications": secMeds, "current medications": secMeds, "meds": secMeds, "medication list": secMeds, "home medications": secMeds,
	"allergies": secAllergies, "allergy": secAllergies, "drug allergies": secAllergies,
	"family history": secFH, "fh": secFH, "fhx": secFH, "family hx": secFH,
	"social history": secSH, "sh": secSH, "social hx": secSH, "social": secSH,
	"review of systems": secROS, "ros": secROS,
	"physical exam": secExam, "physical examination": secExam, "exam": secExam, "examination": secExam, "objective": secExam,
	"vitals": secExam, "vital signs": secExam, "pe": secExam,
	"labs": secResults, "results": secResults, "data": secResults, "data reviewed": secResults, "studies": secResults,
	"imaging": secResults, "diagnostics": secResults, "lab results": secResults, "point of care testing": secResults, "in-office testing": secResults,
	"assessment and plan": secAssessment, "assessment/plan": secAssessment, "a/p": secAssessment, "assessment": secAssessment,
	"impression": secAssessment, "diagnosis": secAssessment, "diagnoses": secAssessment, "impression and plan": secAssessment,
	"clinical impression": secAssessment, "assessment & plan": secAssessment, "a&p": secAssessment,
	"plan": secPlan, "orders": secPlan, "disposition": secPlan, "follow-up": secPlan, "follow up": secPlan, "counseling": secCounsel,
	"education": secCounsel, "patient education": secCounsel, "anticipatory guidance": secCounsel,
	"procedure": secProcedure, "procedures": secProcedure, "procedure note": secProcedure, "procedures performed": secProcedure,
	"immunizations given": secProcedure, "in-office procedures": secProcedure, "screening": secProcedure,
	"screenings": secProcedure, "developmental": secProcedure, "developmental screening": secProcedure,
	"time": secTime, "attestation": secTime, "time statement": secTime,
	// SOAP notes
	"s": secHPI, "o": secExam, "a": secAssessment, "p": secPlan,
}

// Speakers of a dialogue transcript.
const (
	spkNone      = ""
	spkClinician = "clinician"
	spkPatient   = "patient"
	spkFamily    = "family"
	spkOther     = "other"
)

var speakerLabels = map[string]string{
	"doctor": spkClinician, "dr": spkClinician, "physician": spkClinician, "provider": spkClinician, "clinician": spkClinician,
	"np": spkClinician, "pa": spkClinician, "nurse": spkClinician, "ma": spkClinician, "rn": spkClinician,
	"patient": spkPatient, "pt": spkPatient,
	"mother": spkFamily, "mom": spkFamily, "father": spkFamily, "dad": spkFamily, "parent": spkFamily, "guardian": spkFamily,
	"wife": spkOther, "husband": spkOther, "daughter": spkFamily, "son": spkFamily, "caregiver": spkOther, "spouse": spkOther,
}

// token is one word of the transcript. norm is the matching form: lower case and singular, or
// "abbr:<abbreviation>" for a recognised medical abbreviation (respecting embed's case rules).
type token struct {
	norm       string
	start, end int
}

// sentence is one sentence or clause (split at . ? ! ; and line ends) with its section and speaker.
type sentence struct {
	idx        int
	start, end int
	section    string
	speaker    string
	toks       []token
	line       int // index of the source line, to group list items
	turn       int // index of the speaker turn (a line with a speaker label starts one)
	raw        string
	dictated   bool     // part of the clinician's dictation
	blocked    [][2]int // token spans of phrases that name no condition ("flu vaccine", "blood pressure")
	ws         []string // normWords of toks, once computed
	trs        []found  // ConText triggers, once found
}

// note is a transcript segmented for coding.
type note struct {
	text          string
	sents         []sentence
	hasAssessment bool
	// dictated: a recorded visit whose clinician dictates the note aloud ("Let me dictate. ..."); the
	// dictation, not the conversation, is what the clinician documents and assesses.
	dictated  bool
	dialogue  bool
	historian bool // history given by a family member or caregiver
}

var headerRe = regexp.MustCompile(`^\s*(?:[-*#•]\s*)?([A-Za-z][A-Za-z/&\- ]{0,40}?)\s*:\s*`)

// normToken returns the matching form of a word.
func normToken(w string) string {
	if _, ok := embed.Abbreviation(w); ok {
		return "abbr:" + strings.ToLower(w)
	}
	return stemWord(strings.ToLower(w))
}

// stemWord is the matching form of a lower-case word that is not an abbreviation.
func stemWord(w string) string { return embed.Stem(w) }

// tokenize returns the tokens of text[start:end] with absolute offsets. An ambiguous abbreviation
// (data/ambiguous.txt) keeps its clinical sense only when a cue word of that sense is in the same
// text: "ED precautions" is not erectile dysfunction.
func tokenize(text string, start, end int) []token {
	var out []token
	ambiguous := false
	for _, t := range wordTokens(text[start:end]) {
		tok := token{norm: normToken(t.Text), start: start + t.Start, end: start + t.End}
		if a, ok := strings.CutPrefix(tok.norm, "abbr:"); ok && ambiguousAbbr()[a] != nil {
			ambiguous = true
		}
		out = append(out, tok)
	}
	if ambiguous {
		for i, t := range out {
			a, ok := strings.CutPrefix(t.norm, "abbr:")
			cues := ambiguousAbbr()[a]
			if !ok || cues == nil {
				continue
			}
			sense := false
			for j, o := range out {
				sense = sense || (j != i && cues[strings.TrimPrefix(o.norm, "abbr:")])
			}
			if !sense {
				out[i].norm = a
			}
		}
	}
	return out
}

// wordTokens splits text into words as embed.Tokenize does, then joins what spoken English writes
// with an apostrophe or an ampersand: a contraction stays one word ("I'd", "don't", "we'll", so
// "I'd like to" is not the letters of I&D), a possessive 's is dropped from its word ("Meniere's"
// matches "Meniere"), and single letters joined by "&" are one abbreviation ("I&D", "A&P").
func wordTokens(text string) []embed.Token {
	toks := embed.Tokenize(text)
	out := toks[:0:0]
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if i+1 < len(toks) {
			nx := toks[i+1]
			gap := text[t.End:nx.Start]
			switch {
			case gap == "'" || gap == "\u2019":
				switch strings.ToLower(nx.Text) {
				case "s":
					t.End = nx.End
					i++
				case "d", "ll", "ve", "re", "m", "t":
					t.Text, t.End = t.Text+"'"+nx.Text, nx.End
					i++
				}
			case gap == "&" && len(t.Text) == 1 && len(nx.Text) == 1:
				t.Text, t.End = t.Text+"&"+nx.Text, nx.End
				i++
			}
		}
		out = append(out, t)
	}
	return out
}

// parse segments a transcript into sections, speakers and sentences.
func parse(text string) *note {
	n := &note{text: text}
	section, speaker := secNone, spkNone
	speakersSeen := map[string]bool{}
	lineStart := 0
	lineNo, turn := 0, 0
	for lineStart <= len(text) {
		lineEnd := strings.IndexByte(text[lineStart:], '\n')
		if lineEnd < 0 {
			lineEnd = len(text)
		} else {
			lineEnd += lineStart
		}
		line := text[lineStart:lineEnd]
		contentStart := lineStart
		if m := headerRe.FindStringSubmatchIndex(line); m != nil {
			label := strings.ToLower(strings.TrimSpace(line[m[2]:m[3]]))
			label = strings.Join(strings.Fields(label), " ")
			if sec, ok := sectionHeaders[label]; ok {
				section = sec
				speaker = spkNone
				contentStart = lineStart + m[1]
			} else if spk, ok := speakerLabel(label); ok && section != secFH {
				speaker = spk
				speakersSeen[spk] = true
				turn++
				contentStart = lineStart + m[1]
			}
		} else if sec, ok := sectionHeaders[strings.ToLower(strings.TrimSpace(strings.TrimRight(strings.TrimSpace(line), ":")))]; ok && len(strings.Fields(line)) <= 5 {
			section, speaker = sec, spkNone
			contentStart = lineEnd
		}
		if section == secAssessment || section == secPlan {
			n.hasAssessment = n.hasAssessment || section == secAssessment
		}
		for _, s := range splitSentences(text, contentStart, lineEnd) {
			toks := tokenize(text, s[0], s[1])
			if len(toks) == 0 {
				continue
			}
			n.sents = append(n.sents, sentence{idx: len(n.sents), start: s[0], end: s[1], section: section, speaker: speaker, toks: toks, line: lineNo, turn: turn, raw: text[s[0]:s[1]]})
		}
		lineNo++
		lineStart = lineEnd + 1
	}
	n.dialogue = speakersSeen[spkClinician] && (speakersSeen[spkPatient] || speakersSeen[spkFamily])
	n.historian = speakersSeen[spkFamily] || speakersSeen[spkOther]
	n.markDictation()
	return n
}

// dictationRe opens the clinician's dictation in a recorded visit ("Let me dictate.", "Let me
// dictate the nursing note.").
var dictationRe = regexp.MustCompile(`(?i)\b(?:let me dictate|i(?:'| wi)ll dictate|i'm going to dictate|dictating (?:now|the note))\b`)

// resultLabelRe is a spoken label that introduces a test's result ("Comprehensive audiometry:",
// "Outside CT chest reviewed:", "X-rays of the right foot obtained and interpreted today:").
var resultLabelRe = regexp.MustCompile(`(?i)\b(?:x-?rays?|radiographs?|ct|mri|ultrasound|sonogram|echo(?:cardiogram)?|audiometry|audiogram|tympanometry|spirometry|pfts?|pulmonary function|ecg|ekg|labs?|pathology|biopsy|culture|cultures|urinalysis|dipstick|scan|interrogation|download|dexa|dxa|endoscopy|colonoscopy|holter|monitor)\b`)

// resultSentenceRe is a longer spoken label before a colon, for results.
var resultSentenceRe = regexp.MustCompile(`^([^:;.]{1,100}):\s`)

// inlineHeaderRe is a section header that opens a dictated sentence ("Assessment: ...").
var inlineHeaderRe = regexp.MustCompile(`^([A-Za-z][A-Za-z/&\- ]{0,30}?)\s*:\s*`)

// markDictation finds the clinician's dictation (the rest of the turn after "Let me dictate") and
// gives its sentences sections: headers spoken inline ("Exam: ...", "Assessment: ...", "Plan: ...")
// switch the section; without a spoken "Assessment:", the dictation itself is the assessment and
// plan, and with one, what precedes it is history.
func (n *note) markDictation() {
	start := -1
	for i := range n.sents {
		s := &n.sents[i]
		if s.speaker == spkClinician && s.section == secNone && dictationRe.MatchString(s.raw) {
			start = i
			break
		}
	}
	if start < 0 {
		return
	}
	var dict []*sentence
	for i := start + 1; i < len(n.sents) && n.sents[i].turn == n.sents[start].turn; i++ {
		dict = append(dict, &n.sents[i])
	}
	if len(dict) == 0 {
		return
	}
	headers := make([]string, len(dict))
	results := make([]bool, len(dict))
	explicit := false
	for i, s := range dict {
		m := inlineHeaderRe.FindStringSubmatchIndex(s.raw)
		if m == nil {
			if l := resultSentenceRe.FindStringSubmatch(s.raw); l != nil && resultLabelRe.MatchString(l[1]) {
				results[i] = true
			}
			continue
		}
		label := strings.Join(strings.Fields(strings.ToLower(s.raw[m[2]:m[3]])), " ")
		sec, ok := sectionHeaders[label]
		if !ok && (strings.HasSuffix(label, " exam") || strings.HasSuffix(label, " examination")) {
			sec, ok = secExam, true
		}
		if !ok && resultLabelRe.MatchString(label) {
			// "Two-view x-rays of the left knee obtained and interpreted today: ...", "Outside CT
			// chest reviewed: ...": a result, whose findings are not diagnoses unless assessed
			results[i] = true
			continue
		}
		if !ok {
			continue
		}
		headers[i] = sec
		explicit = explicit || sec == secAssessment
		// the header word is not part of what is said under it
		s.start += m[1]
		s.raw = n.text[s.start:s.end]
		s.toks = tokenize(n.text, s.start, s.end)
		s.ws, s.trs = nil, nil
	}
	section := secAssessment
	if explicit {
		section = secHPI
	}
	for i, s := range dict {
		if headers[i] != "" {
			section = headers[i]
		}
		s.section, s.dictated = section, true
		if results[i] && headers[i] == "" && section != secAssessment || results[i] && !explicit {
			s.section = secResults
			continue
		}
		// Without a spoken assessment, problems follow one another through the dictation: a spoken
		// "Exam:" or "Plan:" covers its own sentence (up to the full stop), then the dictation is the
		// assessment again.
		if !explicit && section != secAssessment && !strings.HasSuffix(s.raw, ";") {
			section = secAssessment
		}
	}
	n.dictated, n.hasAssessment = true, true
}

func speakerLabel(label string) (string, bool) {
	if s, ok := speakerLabels[label]; ok {
		return s, true
	}
	// "Dr. Smith", "Doctor Patel", "Patient (John)"
	first := strings.Fields(strings.Trim(label, ". "))
	if len(first) > 0 && len(first) <= 3 {
		if s, ok := speakerLabels[strings.TrimRight(first[0], ".")]; ok {
			return s, true
		}
	}
	return "", false
}

// abbrevDots are words ending in a period that do not end a sentence.
var abbrevDots = map[string]bool{"dr": true, "mr": true, "mrs": true, "ms": true, "vs": true, "approx": true, "st": true,
	"e.g": true, "i.e": true, "no": true, "pt": true, "b.i.d": true, "t.i.d": true, "q.d": true, "p.o": true, "etc": true, "wt": true, "ht": true}

// splitSentences splits text[start:end] (one line) at sentence ends and semicolons.
func splitSentences(text string, start, end int) [][2]int {
	var out [][2]int
	s := start
	for i := start; i < end; i++ {
		c := text[i]
		if c != '.' && c != '?' && c != '!' && c != ';' {
			continue
		}
		if c == '.' {
			// decimals (98.6) and abbreviations (Dr.) and list numbers (1.) do not end sentences
			if i+1 < end && !unicode.IsSpace(rune(text[i+1])) {
				continue
			}
			w := lastWord(text[s:i])
			if abbrevDots[strings.ToLower(w)] || (len(w) <= 2 && isDigits(w) && strings.TrimSpace(text[s:i]) == w) || (len(w) == 1 && unicode.IsUpper(rune(w[0]))) {
				continue
			}
		}
		if strings.TrimSpace(text[s:i]) != "" {
			out = append(out, [2]int{s, i + 1})
		}
		s = i + 1
	}
	if strings.TrimSpace(text[s:end]) != "" {
		out = append(out, [2]int{s, end})
	}
	// trim surrounding space from each span
	for i := range out {
		a, b := out[i][0], out[i][1]
		for a < b && unicode.IsSpace(rune(text[a])) {
			a++
		}
		for b > a && unicode.IsSpace(rune(text[b-1])) {
			b--
		}
		out[i] = [2]int{a, b}
	}
	return out
}

func lastWord(s string) string {
	s = strings.TrimRight(s, " ")
	i := strings.LastIndexAny(s, " \t(")
	return s[i+1:]
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// inAP reports whether a sentence is in the assessment or plan.
func (s *sentence) inAP() bool { return s.section == secAssessment || s.section == secPlan }

// words returns the norms of toks[i:j].
func words(toks []token, i, j int) []string {
	out := make([]string, 0, j-i)
	for _, t := range toks[i:j] {
		out = append(out, t.norm)
	}
	return out
}

// phraseTokens turns a dictionary phrase into matching forms. A word written in capitals that is a
// known abbreviation ("CP", "HTN") matches only that abbreviation; "*" is a gap of up to three words.
func phraseTokens(p string) []string {
	var out []string
	for _, f := range strings.Fields(p) {
		if f == "*" {
			out = append(out, "*")
			continue
		}
		for _, t := range wordTokens(f) {
			if t.Text == strings.ToUpper(t.Text) && strings.ToLower(t.Text) != t.Text {
				if _, ok := embed.Abbreviation(t.Text); ok {
					out = append(out, "abbr:"+strings.ToLower(t.Text))
					continue
				}
			}
			out = append(out, stemWord(strings.ToLower(t.Text)))
		}
	}
	return out
}
