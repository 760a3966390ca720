package coder_test

import (
	"slices"
	"testing"

	"github.com/iambilly/billy/pipeline/coder"
)

// TestChapterRules: codes that come from rules of the Official Guidelines rather than from one
// condition's words: drugs (I.C.19.e: adverse effect, underdosing with its intent, poisoning, from
// the Table of Drugs), long-term drug therapy and drug allergy status (I.C.21.c.3, Z79 and Z88 by
// drug class), weeks of gestation beside a pregnancy code (I.C.15.b), no Z79.4 with gestational
// diabetes (I.C.15.g), family history by the category of the relative's condition, codes a
// combination includes, symptoms an instructional note asks for, hypertensive heart disease
// (I.C.9.a.1). Each case lists codes wanted in that relative order and codes that must not appear.
func TestChapterRules(t *testing.T) {
	t.Parallel()
	b := coder.NewBuiltin(loadSet(t))
	ap := func(s string) string { return "Assessment and plan:\n1. " + s }
	tests := []struct {
		name, text string
		want, not  []string
	}{
		{"adverse effect: the condition, then the drug", ap("Generalized rash due to amoxicillin, adverse effect, taken as prescribed. Stop amoxicillin."),
			[]string{"R21", "T36.0X5A"}, []string{"T36.0X1A"}},
		{"a disease as the cause is no adverse effect", ap("Chronic kidney disease stage 4 due to type 2 diabetes, and essential hypertension on amlodipine, controlled."),
			[]string{"E11.22", "I12.9", "N18.4"}, []string{"T46.1X5A"}},
		{"side effects counselled are no event", ap("Start amoxicillin; side effects reviewed, including rash and diarrhea."),
			nil, []string{"T36.0X5A", "R21"}},
		{"intentional underdosing for cost", ap("Essential hypertension, uncontrolled, because she takes her metoprolol every other day instead of daily due to cost; intentional underdosing."),
			[]string{"I10", "T44.7X6A", "Z91.120"}, []string{"T44.7X5A", "Z91.128"}},
		{"unintentional underdosing", ap("Epilepsy, breakthrough seizure after missed doses of phenytoin when her refill lapsed; unintentional underdosing."),
			[]string{"T42.0X6A", "Z91.138"}, []string{"Z91.120"}},
		{"poisoning first, accidental when not stated", ap("Accidental overdose of acetaminophen, took too many tablets for a toothache; nausea."),
			[]string{"T39.1X1A"}, []string{"T39.1X5A"}},
		{"long-term anticoagulant", ap("Permanent atrial fibrillation on long-term apixaban, rate controlled."), []string{"I48.21", "Z79.01"}, nil},
		{"a drug started today is not long-term", ap("Polymyalgia rheumatica; start prednisone 15 mg today, long-term taper planned."), []string{"M35.3"}, []string{"Z79.52"}},
		{"drug allergy status", ap("Sulfa allergy, rash as a child. Avoid sulfonamides."), []string{"Z88.2"}, nil},
		{"weeks of gestation with the pregnancy code", ap("Gestational diabetes mellitus in pregnancy, diet controlled, at twenty-two weeks gestation."),
			[]string{"O24.410", "Z3A.22"}, nil},
		{"no long-term insulin with gestational diabetes", ap("Gestational diabetes mellitus in pregnancy, insulin controlled, at thirty weeks; continue long-term insulin."),
			[]string{"O24.414", "Z3A.30"}, []string{"Z79.4"}},
		{"family history by category", ap("Family history of Crohn's disease in his brother; colonoscopy at 40."), []string{"Z83.79"}, []string{"K50.90"}},
		{"a combination includes its manifestation", ap("Hyperemesis gravidarum with metabolic disturbance, dehydration and ketosis, at ten weeks gestation."),
			[]string{"O21.1", "Z3A.10"}, []string{"E86.0"}},
		{"symptoms the note asks for", ap("Benign prostatic hyperplasia with lower urinary tract symptoms: nocturia and weak stream. Continue tamsulosin."),
			[]string{"N40.1", "R35.1", "R39.12"}, nil},
		{"hypertensive heart disease without heart failure", ap("Hypertensive heart disease, no heart failure, on lisinopril."), []string{"I11.9"}, []string{"I10", "I51.9"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sex := "female"
			if tc.name == "symptoms the note asks for" {
				sex = "male"
			}
			res := codeTextAs(t, b, tc.text, sex)
			got := dxCodes(res)
			var sub []string
			for _, c := range got {
				if slices.Contains(tc.want, c) {
					sub = append(sub, c)
				}
			}
			if !slices.Equal(sub, tc.want) && !(len(tc.want) == 0 && len(sub) == 0) {
				t.Errorf("diagnoses %v; want %v in that order (dropped %+v)", got, tc.want, res.Dropped)
			}
			for _, c := range tc.not {
				if slices.Contains(got, c) {
					t.Errorf("diagnoses %v include %s", got, c)
				}
			}
		})
	}
}
