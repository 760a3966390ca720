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
