package coder

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestWordTokens: spoken English keeps its contractions and possessives whole, so the letters of a
// contraction never read as an abbreviation ("I'd" is not I&D).
func TestWordTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text string
		want []string
	}{
		{"I'd like to look at it.", []string{"I'd", "like", "to", "look", "at", "it"}},
		{"We'll see; don't worry, I’ll call.", []string{"We'll", "see", "don't", "worry", "I'll", "call"}},
		{"Meniere's disease and Parkinson’s disease", []string{"Meniere", "disease", "and", "Parkinson", "disease"}},
		{"I&D of the abscess, A&P reviewed", []string{"I&D", "of", "the", "abscess", "A&P", "reviewed"}},
		{"Rock & roll", []string{"Rock", "roll"}},
	}
	for _, tc := range tests {
		var got []string
		for _, tok := range wordTokens(tc.text) {
			got = append(got, tok.Text)
			if tc.text[tok.Start:tok.End] == "" {
				t.Errorf("%q: empty span for %q", tc.text, tok.Text)
			}
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%q (-want +got):\n%s", tc.text, d)
		}
	}
}

// TestAmbiguousAbbreviations: an abbreviation with a common non-clinical sense in speech names a
// condition only with a cue word of that condition in its sentence.
func TestAmbiguousAbbreviations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text, word, want string
	}{
		{"ED precautions were given.", "ED", "ed"},
		{"Return to the ED if worse.", "ED", "ed"},
		{"ED, improved on sildenafil.", "ED", "abbr:ed"},
		{"PE: lungs clear.", "PE", "pe"},
		{"PE on apixaban for six months.", "PE", "abbr:pe"},
		{"Saturation 97 percent on RA.", "RA", "ra"},
		{"RA on methotrexate, stable.", "RA", "abbr:ra"},
		{"HTN, controlled.", "HTN", "abbr:htn"},
	}
	for _, tc := range tests {
		got := ""
		for _, tok := range tokenize(tc.text, 0, len(tc.text)) {
			if tc.text[tok.start:tok.end] == tc.word {
				got = tok.norm
			}
		}
		if got != tc.want {
			t.Errorf("%q: %s reads as %q, want %q", tc.text, tc.word, got, tc.want)
		}
	}
}

// TestDictationSections: in a recorded visit the clinician's dictation is the note. Without a spoken
// "Assessment:" it is the assessment and plan; with one, what comes before it is history; spoken
// headers switch the section and are not part of the sentence; the conversation is not assessed.
func TestDictationSections(t *testing.T) {
	t.Parallel()
	type got struct{ Section, Text string }
	tests := []struct {
		name, text string
		want       []got
	}{
		{"no spoken assessment",
			"Patient: My knee hurts.\nDoctor: Let me dictate. Gout of the right knee. Exam: warm effusion. Plan: colchicine.",
			[]got{{secNone, "My knee hurts."}, {secNone, "Let me dictate."}, {secAssessment, "Gout of the right knee."},
				{secExam, "warm effusion."}, {secPlan, "colchicine."}}},
		{"spoken assessment",
			"Doctor: Let me dictate the note. Three days of cough. Assessment: acute bronchitis. Supportive care.\nPatient: Thanks.",
			[]got{{secNone, "Let me dictate the note."}, {secHPI, "Three days of cough."}, {secAssessment, "acute bronchitis."},
				{secAssessment, "Supportive care."}, {secNone, "Thanks."}}},
		{"a later turn is conversation again",
			"Doctor: Let me dictate. Hypertension, controlled.\nPatient: Can I ask about my back?\nDoctor: Sure, tell me.",
			[]got{{secNone, "Let me dictate."}, {secAssessment, "Hypertension, controlled."}, {secNone, "Can I ask about my back?"},
				{secNone, "Sure, tell me."}}},
	}
	for _, tc := range tests {
		n := parse(tc.text)
		var g []got
		for _, s := range n.sents {
			g = append(g, got{s.section, s.raw})
		}
		if d := cmp.Diff(tc.want, g); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, d)
		}
		if !n.dictated || !n.hasAssessment {
			t.Errorf("%s: dictated %v, hasAssessment %v", tc.name, n.dictated, n.hasAssessment)
		}
	}
}
