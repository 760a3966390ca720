package coder_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iambilly/billy/pipeline/coder"
	"github.com/iambilly/billy/pipeline/codes"
)

// codeText codes one transcript for an established adult woman seen in the office on a fixed date.
func codeText(t *testing.T, cd coder.Coder, text string) *coder.Result {
	t.Helper()
	return codeTextAs(t, cd, text, "female")
}

// codeTextAs is codeText for a patient of the given sex.
func codeTextAs(t *testing.T, cd coder.Coder, text, sex string) *coder.Result {
	t.Helper()
	res, err := cd.Code(t.Context(), coder.Input{Transcript: text, Patient: coder.Patient{BirthDate: "1970-03-01", Sex: sex},
		ServiceDate: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), Established: true, PlaceOfService: "11"})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestEMAlwaysHasEvidence: an E/M level is a claim line like any other and must quote the
// transcript, even when the MDM found no problem, data or risk sentence to cite.
func TestEMAlwaysHasEvidence(t *testing.T) {
	t.Parallel()
	b := coder.NewBuiltin(loadSet(t))
	res := codeText(t, b, "Doctor: Good to see you again.\nPatient: Thanks, nothing new.\nDoctor: Let me dictate. Established patient seen for a brief check. Return in one year.")
	if res.EM == nil {
		t.Fatal("no E/M")
	}
	if len(res.EM.Evidence) == 0 {
		t.Errorf("E/M %s has no evidence", res.EM.Code)
	}
}

// TestNoWordsIsAnError: a transcript of punctuation alone is refused with an error, not a panic.
func TestNoWordsIsAnError(t *testing.T) {
	t.Parallel()
	b := coder.NewBuiltin(coderTestSet())
	for _, text := range []string{"...", " - ? ", "\n\n;"} {
		if _, err := b.Code(t.Context(), coder.Input{Transcript: text}); err == nil {
			t.Errorf("%q: no error", text)
		}
	}
}

// coderTestSet is a tiny code set for tests that never reach a code lookup.
func coderTestSet() *codes.Set {
	return codes.NewSet([]codes.Code{{System: codes.ICD10CM, Version: "test", Code: "I10", Display: "Essential (primary) hypertension", Billable: true}})
}

// TestSpokenEnglishIsNotShorthand: everyday speech that shares letters with clinical shorthand
// codes nothing ("I'd like to" is not an incision and drainage, "ED precautions" are about the
// emergency department), while the shorthand itself still codes.
func TestSpokenEnglishIsNotShorthand(t *testing.T) {
	t.Parallel()
	b := coder.NewBuiltin(loadSet(t))
	tests := []struct {
		name, text string
		notDx      string
		notLine    string
		wantLine   string
		wantDx     string
	}{
		{name: "I'd is not I&D", notLine: "10060",
			text: "Doctor: I'd like to look at the cut on your arm today. I'd also like to draw some blood today.\nPatient: Sure.\nDoctor: Let me dictate. Assessment: essential hypertension, controlled. Plan: continue lisinopril. Return in three months."},
		{name: "I&D is I&D", wantLine: "10060",
			text: "Assessment and plan:\n1. Abscess of the back. I&D performed today, purulent material drained, packed."},
		{name: "ED precautions are not erectile dysfunction", notDx: "N52.9",
			text: "Doctor: Let me dictate. Acute bronchitis. Supportive care. ED precautions given; return to the ED if short of breath."},
		{name: "ED with its cues is erectile dysfunction", wantDx: "N52.9",
			text: "Assessment and plan:\n1. ED, start sildenafil 50 mg as needed before intercourse."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := codeTextAs(t, b, tc.text, "male")
			dx, lines := dxCodes(res), lineCodes(res)
			if tc.notDx != "" && slices.Contains(dx, tc.notDx) {
				t.Errorf("diagnoses %v include %s", dx, tc.notDx)
			}
			if tc.wantDx != "" && !slices.Contains(dx, tc.wantDx) {
				t.Errorf("diagnoses %v lack %s (dropped %v)", dx, tc.wantDx, res.Dropped)
			}
			if tc.notLine != "" && slices.Contains(lines, tc.notLine) {
				t.Errorf("lines %v include %s", lines, tc.notLine)
			}
			if tc.wantLine != "" && !slices.Contains(lines, tc.wantLine) {
				t.Errorf("lines %v lack %s (dropped %v)", lines, tc.wantLine, res.Dropped)
			}
		})
	}
}

func lineCodes(r *coder.Result) []string {
	var out []string
	for _, l := range r.Lines {
		out = append(out, l.Code)
	}
	return out
}

// TestDictationIsTheAssessment: in a recorded visit the diagnoses come from what the clinician
// dictates (Official Guidelines IV: code what the provider documents as the reason for the visit and
// the conditions addressed), not from whatever the conversation mentions, nor from the exam.
func TestDictationIsTheAssessment(t *testing.T) {
	t.Parallel()
	b := coder.NewBuiltin(loadSet(t))
	text := "Doctor: What brings you in?\nPatient: I've had a cough and a fever, and my back hurts, and I get heartburn.\n" +
		"Doctor: Any headache?\nPatient: Some headaches, yes.\n" +
		"Doctor: Let me dictate. Four days of cough and fever. Exam: wheezing. Assessment: acute bronchitis. Plan: supportive care, return in a week."
	res := codeText(t, b, text)
	if d := cmp.Diff([]string{"J20.9"}, dxCodes(res)); d != "" {
		t.Errorf("diagnoses (-want +got):\n%s\ndropped %v", d, res.Dropped)
	}
}
