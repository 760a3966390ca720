package coder

import "testing"

// TestAssertions checks the NegEx/ConText analysis on the phrase of interest in one sentence.
func TestAssertions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text   string
		phrase string
		want   Assertion
	}{
		{"Patient denies chest pain.", "chest pain", Assertion{Negated: true}},
		{"No fever, chills, night sweats or weight loss.", "weight loss", Assertion{Negated: true}},
		{"No fever but has a productive cough.", "cough", Assertion{}},
		{"Cough for 3 days.", "cough", Assertion{}},
		{"Rule out community-acquired pneumonia.", "pneumonia", Assertion{Uncertain: true}},
		{"Chest wall pain, likely costochondritis.", "chest wall pain", Assertion{}},
		{"Chest wall pain, likely costochondritis.", "costochondritis", Assertion{Uncertain: true}},
		{"Her mother had breast cancer at 67.", "breast cancer", Assertion{Family: true}},
		{"Mother reports he has had a fever since yesterday.", "fever", Assertion{}},
		{"My wife had the flu last week.", "flu", Assertion{Other: true}},
		{"History of breast cancer treated in 2019.", "breast cancer", Assertion{Historical: true}},
		{"Pneumonia in 2019, resolved.", "Pneumonia", Assertion{Historical: true, Resolved: true}},
		{"Return if fever develops.", "fever", Assertion{Hypothetical: true}},
		{"Strep was ruled out.", "Strep", Assertion{Negated: true}},
		{"Never smoker.", "smoker", Assertion{Negated: true}},
		{"No family history of diabetes.", "diabetes", Assertion{Negated: true, Family: true}},
		{"Symptoms have not improved; cough persists.", "cough", Assertion{}},
		// Conditions named only in counselling, warnings, side-effect lists and prevention are not
		// present (Official Guidelines IV.J: code what exists at the encounter).
		{"Stroke warning signs reviewed.", "Stroke", Assertion{Hypothetical: true}},
		{"Counselled on warning signs of Lyme disease and tick prevention.", "Lyme disease", Assertion{Hypothetical: true}},
		{"Seizure precautions reviewed.", "Seizure", Assertion{Hypothetical: true}},
		{"Steroid side effects reviewed, including insomnia and hyperglycemia.", "insomnia", Assertion{Hypothetical: true}},
		{"It can cause genital yeast infections, so call me if you get itching.", "yeast infections", Assertion{Hypothetical: true}},
		{"Discussed skin cancer prevention and sunscreen.", "skin cancer", Assertion{Hypothetical: true}},
		{"Watch for headache or blurred vision.", "headache", Assertion{Hypothetical: true}},
		{"Educated on hypoglycemia symptoms.", "hypoglycemia", Assertion{Hypothetical: true}},
		{"Giant cell arteritis warning signs reviewed.", "Giant cell arteritis", Assertion{Hypothetical: true}},
		{"Headache since Monday, worse in the morning.", "Headache", Assertion{}},
		{"Parkinson disease without dyskinesia, with fluctuations.", "fluctuations", Assertion{}},
		{"Parkinson disease without dyskinesia, with fluctuations.", "dyskinesia", Assertion{Negated: true}},
		{"Pentosan deferred because of retinal maculopathy risk.", "maculopathy", Assertion{Hypothetical: true}},
		{"Personal history of a kidney stone in 2015, none since.", "kidney stone", Assertion{Historical: true}},
		{"Sixty-two-year-old man with coronary artery disease.", "coronary artery disease", Assertion{}},
		{"No rest pain, status post coronary stent in 2021.", "status post", Assertion{}},
		{"No rest pain, status post coronary stent in 2021.", "rest pain", Assertion{Negated: true}},
		{"Closed treatment without manipulation of a nondisplaced fracture of the fifth metatarsal.", "fracture", Assertion{}},
	}
	for _, tc := range tests {
		t.Run(tc.text+"/"+tc.phrase, func(t *testing.T) {
			t.Parallel()
			n := parse(tc.text)
			var got Assertion
			found := false
			for i := range n.sents {
				if a, ok := assessPhrase(&n.sents[i], tc.phrase); ok {
					got, found = a, true
				}
			}
			if !found {
				t.Fatalf("%q not found", tc.phrase)
			}
			if got != tc.want {
				t.Errorf("assess = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseSectionsAndDialogue(t *testing.T) {
	t.Parallel()
	n := parse("Chief complaint: Cough.\nHPI: Three days, no fever. Dr. Smith saw him.\nASSESSMENT AND PLAN:\n1. Acute bronchitis. Benzonatate.\nDoctor: Any wheezing?\nPatient: No.")
	want := []struct{ section, speaker, text string }{
		{secCC, "", "Cough."}, {secHPI, "", "Three days, no fever."}, {secHPI, "", "Dr. Smith saw him."},
		{secAssessment, "", "1. Acute bronchitis."}, {secAssessment, "", "Benzonatate."},
		{secAssessment, spkClinician, "Any wheezing?"}, {secAssessment, spkPatient, "No."},
	}
	if len(n.sents) != len(want) {
		t.Fatalf("%d sentences: %+v", len(n.sents), n.sents)
	}
	for i, w := range want {
		s := n.sents[i]
		if s.section != w.section || s.speaker != w.speaker || s.raw != w.text {
			t.Errorf("sentence %d = %q (%s, %s), want %q (%s, %s)", i, s.raw, s.section, s.speaker, w.text, w.section, w.speaker)
		}
	}
	if !n.hasAssessment || !n.dialogue {
		t.Errorf("hasAssessment %v dialogue %v", n.hasAssessment, n.dialogue)
	}
}

func TestTimeCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		minutes     int
		established bool
		want        string
	}{
		{9, true, ""}, {10, true, "99212"}, {19, true, "99212"}, {20, true, "99213"}, {35, true, "99214"}, {40, true, "99215"}, {54, true, "99215"}, {80, true, "99215"},
		{14, false, ""}, {15, false, "99202"}, {30, false, "99203"}, {45, false, "99204"}, {59, false, "99204"}, {60, false, "99205"}, {74, false, "99205"},
	}
	for _, tc := range tests {
		if got := TimeCode(tc.minutes, tc.established); got != tc.want {
			t.Errorf("TimeCode(%d, %v) = %q, want %q", tc.minutes, tc.established, got, tc.want)
		}
	}
	if got := mdmLevel(LevelHigh, LevelMinimal, LevelModerate); got != LevelModerate {
		t.Errorf("mdmLevel = %s", got)
	}
}
