package coder_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iambilly/billy/pipeline/coder"
)

// TestProcedureRules: procedure lines follow CPT descriptors and CMS rules: QW on CLIA-waived tests
// (not on tests exempt from it), destruction by lesion type and count (17000 + 17003 per added
// premalignant lesion, 17110 up to 14 benign lesions), units per test, radiographs by part and views
// with the side (CMS bilateral indicator 3), vaccine administration with counselling for patients
// through 18 years (90460 per vaccine, 90461 per additional component) or without (90471/90472),
// and units capped at the practitioner MUE.
func TestProcedureRules(t *testing.T) {
	t.Parallel()
	b := coder.NewBuiltin(loadSet(t))
	ap := func(s string) string { return "Assessment and plan:\n1. " + s }
	tests := []struct {
		name, text, birth string
		want              []string // code-modifiers xunits
	}{
		{"QW on a CLIA-waived test", ap("Streptococcal pharyngitis. Rapid strep test performed in the office today, positive. Amoxicillin."), "",
			[]string{"87880[QW] x1"}},
		{"no QW on a test exempt from it", ap("Acute cystitis. Urinalysis dipstick today positive for nitrites. Nitrofurantoin."), "",
			[]string{"81002[] x1"}},
		{"premalignant destruction by count", ap("Actinic keratoses. Destroyed five actinic keratoses of the scalp with liquid nitrogen today."), "",
			[]string{"17000[] x1", "17003[] x4"}},
		{"benign destruction up to 14 lesions", ap("Common warts of the left hand. Cryotherapy with liquid nitrogen to three warts today."), "",
			[]string{"17110[] x1"}},
		{"units per test", ap("Allergic rhinitis. Percutaneous skin prick testing performed today: twenty-two tests, read at 15 minutes."), "",
			[]string{"95004[] x22"}},
		{"units capped at the MUE", ap("Allergic rhinitis. Percutaneous skin prick testing performed today: 120 tests."), "",
			[]string{"95004[] x80"}},
		{"radiograph by part, views and side", ap("Ankle sprain. Two-view x-rays of the left ankle obtained and interpreted today: no fracture."), "",
			[]string{"73600[LT] x1"}},
		{"outside films are not billed", ap("Ankle sprain. Outside x-rays from urgent care reviewed: no fracture."), "",
			[]string{}},
		{"child vaccines with counselling", ap("Well child. DTaP and IPV given intramuscularly today; vaccine counselling by me on each vaccine."), "2021-05-01",
			[]string{"90700[] x1", "90713[] x1", "90460[] x2", "90461[] x2"}},
		{"adult vaccines", ap("Immunization. Tdap and Shingrix given intramuscularly today."), "",
			[]string{"90715[] x1", "90750[] x1", "90471[] x1", "90472[] x1"}},
		{"Medicare's Part B vaccines have their own administration", ap("Medicare patient. Influenza vaccine, high dose, and Pneumovax given intramuscularly today."), "",
			[]string{"90662[] x1", "90732[] x1", "G0008[] x1", "G0009[] x1"}},
		{"a test reported with its result was done", ap("Urinary retention. Post-void residual by bladder ultrasound 80 milliliters."), "",
			[]string{"51798[] x1"}},
		{"a dictated venipuncture was done", "Doctor: Let me dictate. Hypothyroidism, on levothyroxine. Venipuncture for TSH and free T4. Return in a year.", "",
			[]string{"36415[] x1"}},
		{"a test planned for later was not", ap("Urinary retention. Post-void residual by bladder ultrasound in three months."), "",
			[]string{}},
		{"foreign body removal by site", ap("Foreign body of the right palm, a splinter. Incision and the wooden foreign body was removed from the subcutaneous tissue today."), "",
			[]string{"10120[] x1"}}, // CMS bilateral indicator 0: no side modifier
		{"psychotherapy add-on by its minutes", ap("Major depressive disorder, recurrent, moderate; continue sertraline 100 mg, refill sent. Psychotherapy provided today, thirty minutes, separate from medication management."), "",
			[]string{"90833[] x1"}},
		{"no psychotherapy add-on under 16 minutes", ap("Major depressive disorder, recurrent, moderate; continue sertraline. Psychotherapy provided today, ten minutes."), "",
			[]string{}},
		{"pacemaker interrogation", ap("Sick sinus syndrome with a dual-chamber pacemaker. Pacemaker interrogation in the office today: normal battery and leads."), "",
			[]string{"93288[] x1"}},
		{"nail debridement by count", ap("Onychomycosis of toenails. Debridement of seven toenails performed today."), "",
			[]string{"11721[] x1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			birth := tc.birth
			if birth == "" {
				birth = "1970-03-01"
			}
			res, err := b.Code(t.Context(), coder.Input{Transcript: tc.text, Patient: coder.Patient{BirthDate: birth, Sex: "female"},
				ServiceDate: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), Established: true, PlaceOfService: "11"})
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, l := range res.Lines {
				got = append(got, fmt.Sprintf("%s%v x%d", l.Code, l.Modifiers, l.Units))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("lines %v, want %v (dropped %+v)", got, tc.want, res.Dropped)
			}
			// immunization administration goes with Z23 (encounter for immunization)
			if strings.Contains(fmt.Sprint(tc.want), "9046") || strings.Contains(fmt.Sprint(tc.want), "9047") {
				if !slices.Contains(dxCodes(res), "Z23") {
					t.Errorf("diagnoses %v lack Z23", dxCodes(res))
				}
			}
		})
	}
}
