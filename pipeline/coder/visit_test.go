package coder_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/iambilly/billy/pipeline/coder"
)

// TestVisitRules: the E/M service of a visit follows the CPT E/M guidelines and CMS rules: 99211
// for a nurse visit, no E/M when a nurse gives an injection (the administration code reports it),
// none inside a global surgical period (99024 records the visit), none for a visit that is only a
// minor procedure, an E/M with modifier 25 when a separately managed problem accompanies a minor
// procedure or a preventive service, time stated in words, and MDM that recognises prescription
// drug management of any drug of the Table of Drugs.
func TestVisitRules(t *testing.T) {
	t.Parallel()
	b := coder.NewBuiltin(loadSet(t))
	tests := []struct {
		name, text  string
		established bool
		birth       string
		wantEM      string   // code-modifiers, "" for none
		wantLines   []string // codes that must be among the lines
	}{
		{"nurse visit", "Nurse: Let me dictate the nursing note. Nurse visit for a blood pressure check one month after starting amlodipine for essential hypertension. Readings 124/78 and 122/76. Reviewed with the physician in the office: continue the same dose.",
			true, "", "99211", nil},
		{"nurse visit for an injection", "Nurse: Let me dictate the nursing note. Nurse visit for the monthly vitamin B12 injection for pernicious anemia. Cyanocobalamin 1000 mcg given intramuscularly in the right deltoid.",
			true, "", "", []string{"J3420", "96372"}},
		{"inside a global period", "Doctor: Let me dictate. Post-op visit ten days after excision of a lipoma of the back, within the global period. Incision healing well, sutures removed. Assessment: lipoma of the back, healing. Plan: return as needed.",
			true, "", "", []string{"99024"}},
		{"only a scheduled minor procedure", "Doctor: Let me dictate. Established patient presenting for scheduled removal of impacted cerumen, right ear. Procedure: removal of impacted cerumen from the right ear with a curette by the physician; tolerated well. Plan: mineral oil drops weekly.",
			true, "", "", []string{"69210"}},
		{"a minor procedure and a separately managed problem", "Doctor: Let me dictate. Impacted cerumen, left ear. Procedure: removal of impacted cerumen from the left ear with a curette by the physician. Separately, type 2 diabetes mellitus without complications, A1c reviewed at goal; continue metformin 1000 milligrams twice daily, refill sent.",
			true, "", "99213-25", []string{"69210"}},
		{"a preventive visit with a separately managed problem", "Doctor: Let me dictate. Annual physical, established patient, exam normal except a plantar wart of the left foot, a separate problem evaluated today; treatment with over-the-counter salicylic acid, return if not resolved.",
			true, "1990-03-01", "99212-25", []string{"99395"}},
		{"an annual wellness visit with a separately managed problem", "Doctor: Let me dictate. Medicare annual wellness visit, subsequent; health risk assessment reviewed. Separately, essential hypertension, uncontrolled today; increase lisinopril to 20 milligrams daily.",
			true, "", "99214-25", []string{"G0439"}},
		{"time stated in words", "Doctor: Let me dictate. Essential hypertension, uncontrolled, and hyperlipidemia. Increase lisinopril to 20 milligrams daily. Total time today forty-two minutes, including record review.",
			true, "", "99215", nil},
		{"with a psychotherapy add-on the E/M is by MDM only", "Doctor: Let me dictate. Generalized anxiety disorder, stable; continue sertraline 50 milligrams daily, refill sent. Psychotherapy provided today, forty minutes. Total time today sixty minutes.",
			true, "", "99213", []string{"90836"}},
		{"prescription management of any drug", "Doctor: Let me dictate. New patient with Alzheimer's disease, late onset. Plan: start donepezil 5 milligrams nightly; caregiver support.",
			false, "", "99203", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			birth := tc.birth
			if birth == "" {
				birth = "1950-03-01"
			}
			res, err := b.Code(t.Context(), coder.Input{Transcript: tc.text, Patient: coder.Patient{BirthDate: birth, Sex: "female"},
				ServiceDate: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), Established: tc.established, PlaceOfService: "11"})
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if res.EM != nil {
				got = res.EM.Code
				for _, m := range res.EM.Modifiers {
					got += "-" + m
				}
			}
			if got != tc.wantEM {
				mdm := ""
				if res.EM != nil && res.EM.MDM != nil {
					mdm = fmt.Sprintf("%+v", *res.EM.MDM)
				}
				t.Errorf("E/M %q, want %q %s (dropped %+v)", got, tc.wantEM, mdm, res.Dropped)
			}
			for _, w := range tc.wantLines {
				if !slices.Contains(lineCodes(res), w) {
					t.Errorf("lines %v lack %s (dropped %+v)", lineCodes(res), w, res.Dropped)
				}
			}
		})
	}
}
