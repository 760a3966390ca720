package coder_test

import (
	"slices"
	"testing"

	"github.com/iambilly/billy/pipeline/coder"
)

// TestWholeCodeSet: any billable ICD-10-CM code can be coded from its description, read with the
// conventions of the Official Guidelines (Section I.A): nonessential modifiers, "unspecified" as the
// default, "with" and "without", laterality, the 7th character, manifestation codes; and only when
// the condition is asserted.
func TestWholeCodeSet(t *testing.T) {
	t.Parallel()
	b := coder.NewBuiltin(loadSet(t))
	ap := func(s string) string { return "Assessment and plan:\n1. " + s }
	tests := []struct {
		name, text string
		want       []string // in claim order
		not        []string
	}{
		{"a condition named as in its description", ap("Bell's palsy. Start prednisone."), []string{"G51.0"}, nil},
		{"two conditions in one sentence", ap("Essential tremor and restless legs syndrome, both stable."), []string{"G25.0", "G25.81"}, nil},
		{"laterality chooses the code", ap("Carpal tunnel syndrome of the left wrist. Night splint."), []string{"G56.02"}, []string{"G56.00", "G56.01"}},
		{"no side: the unspecified side", ap("Carpal tunnel syndrome. Night splint."), []string{"G56.00"}, nil},
		{"with: the combination code", ap("Crohn's disease of the small intestine with intestinal obstruction. Surgical consult."), []string{"K50.012"}, []string{"K50.00"}},
		{"without: the code that excludes it", ap("Crohn's disease of the small intestine, no complications, in remission on infliximab."), []string{"K50.00"}, []string{"K50.012"}},
		{"unspecified part of the description is the default", ap("Sprain of the right ankle. Ice and elevation."), []string{"S93.401A"}, []string{"S93.409A"}},
		{"uncertain is not coded", ap("Possible Bell's palsy versus early stroke. MRI ordered."), nil, []string{"G51.0"}},
		{"negated is not coded", ap("No evidence of celiac disease; tissue transglutaminase negative."), nil, []string{"K90.0"}},
		{"family history", ap("Family history of glaucoma in her father. Annual eye exams."), []string{"Z83.511"}, nil},
		{"personal history is not the disease", ap("Personal history of pulmonary embolism, off anticoagulation."), []string{"Z86.711"}, []string{"I26.99"}},
		{"etiology then manifestation", ap("Alzheimer's disease with late onset, with mild dementia, without behavioral disturbance."), []string{"G30.1", "F02.A0"}, nil},
		{"no manifestation without its etiology", ap("Erythema of both cheeks. Sunscreen."), nil, []string{"L54"}},
		{"sequela only where the note says so", ap("Hypertrophic scar of the left hand, sequela of a dog bite last year.\n2. Sprain of the right ankle yesterday."),
			[]string{"L91.0", "S61.452S", "S93.401A"}, []string{"S93.401S", "S61.452A"}},
		{"other than: follow-up after treatment of a malignancy", ap("Follow-up examination after completed treatment for bladder cancer; personal history of bladder cancer, no recurrence."),
			[]string{"Z08", "Z85.51"}, []string{"Z09"}},
		{"a missing modifier is never assumed", ap("Acute otitis externa of the right ear. Ciprofloxacin-dexamethasone otic drops."),
			[]string{"H60.91"}, []string{"H60.521", "H60.501"}},
		{"remission is coded, not resolved", ap("Major depressive disorder, recurrent, in full remission, on sertraline."), []string{"F33.42"}, nil},
		{"a result's findings are not diagnoses",
			"Doctor: Let me dictate. Primary osteoarthritis of the left knee. Two-view x-rays of the left knee obtained and interpreted today: joint space narrowing, osteophytes. Plan: physical therapy.",
			[]string{"M17.12"}, []string{"M25.762"}},
		{"a symptom assessed in a clause of its own is coded",
			ap("Gastroesophageal reflux disease with esophagitis, without bleeding, not controlled; dysphagia, rule out stricture. Increase omeprazole."),
			[]string{"K21.00", "R13.10"}, nil},
		{"the reason for the visit when the spoken assessment names none",
			"Doctor: Let me dictate. Seen for follow-up of Bell's palsy, right side. Exam: improved eye closure. Assessment: improving. Plan: continue eye care.",
			[]string{"G51.0"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := codeText(t, b, tc.text)
			got := dxCodes(res)
			if len(tc.want) > 0 {
				var sub []string
				for _, c := range got {
					if slices.Contains(tc.want, c) {
						sub = append(sub, c)
					}
				}
				if !slices.Equal(sub, tc.want) {
					t.Errorf("diagnoses %v; want %v in that order (dropped %+v)", got, tc.want, res.Dropped)
				}
			}
			for _, c := range tc.not {
				if slices.Contains(got, c) {
					t.Errorf("diagnoses %v include %s", got, c)
				}
			}
		})
	}
	_ = coder.MaxDiagnoses
}
