package coder_test

import (
	"testing"
	"time"

	"github.com/iambilly/billy/pipeline/coder"
	"github.com/iambilly/billy/pipeline/codes"
)

// codeText codes one transcript for an established adult seen in the office on a fixed date.
func codeText(t *testing.T, cd coder.Coder, text string) *coder.Result {
	t.Helper()
	res, err := cd.Code(t.Context(), coder.Input{Transcript: text, Patient: coder.Patient{BirthDate: "1970-03-01", Sex: "female"},
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
