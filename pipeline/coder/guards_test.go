package coder_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iambilly/billy/pipeline/coder"
)

// quote returns the span of the first occurrence of q in text (the test fails when absent).
func quote(t *testing.T, text, q string) coder.Span {
	t.Helper()
	i := strings.Index(text, q)
	if i < 0 {
		t.Fatalf("%q not in transcript", q)
	}
	return coder.Span{Text: q, Start: i, End: i + len(q)}
}

const guardTranscript = `Chief complaint: Follow-up.
HPI: Patient denies chest pain. Her mother had a stroke at 70. Possible pneumonia was considered by urgent care.
Assessment and plan:
1. Type 2 diabetes mellitus with hyperglycemia, uncontrolled. Type 2 diabetes without complications noted in the old chart.
2. Hypertension with chronic kidney disease stage 3. Hypertension.
3. Right knee osteoarthritis. Injected the right knee today.
4. Benign prostatic hyperplasia.
5. Routine child health examination.
6. Parkinson's disease without dyskinesia, with fluctuations. Orthostatic hypotension due to carbidopa-levodopa, adverse effect, taken as prescribed.`

func dxCodes(r *coder.Result) []string {
	var out []string
	for _, d := range r.Diagnoses {
		out = append(out, d.Code)
	}
	return out
}

func droppedReason(r *coder.Result, code string) string {
	for _, d := range r.Dropped {
		if d.Code == code {
			return d.Reason
		}
	}
	return ""
}

func TestGuardDiagnoses(t *testing.T) {
	t.Parallel()
	set := loadSet(t)
	in := coder.Input{Transcript: guardTranscript, Patient: coder.Patient{BirthDate: "1970-01-01", Sex: "female"},
		ServiceDate: time.Date(2025, 11, 3, 0, 0, 0, 0, time.UTC), Established: true}
	q := func(s string) []coder.Span { return []coder.Span{quote(t, guardTranscript, s)} }
	tests := []struct {
		name    string
		dx      []coder.Dx
		want    []string
		dropped map[string]string // code -> reason fragment
	}{
		{"invented code", []coder.Dx{{Code: "E11.99", Evidence: q("Type 2 diabetes mellitus with hyperglycemia")}},
			nil, map[string]string{"E11.99": "not an ICD-10-CM code"}},
		{"category is not billable", []coder.Dx{{Code: "E11", Evidence: q("Type 2 diabetes mellitus with hyperglycemia")}},
			nil, map[string]string{"E11": "not billable"}},
		{"sex edit", []coder.Dx{{Code: "N40.0", Evidence: q("Benign prostatic hyperplasia")}},
			nil, map[string]string{"N40.0": "sex edit"}},
		{"age edit", []coder.Dx{{Code: "Z00.129", Evidence: q("Routine child health examination")}},
			nil, map[string]string{"Z00.129": "age edit"}},
		{"negated evidence", []coder.Dx{{Code: "R07.9", Evidence: q("chest pain")}},
			nil, map[string]string{"R07.9": "negated"}},
		{"a trigger quoted with the condition still counts", []coder.Dx{{Code: "R07.9", Evidence: q("Patient denies chest pain")}},
			nil, map[string]string{"R07.9": "negated"}},
		// A quote is judged at the words of the code's own description, so qualifiers after them
		// ("without dyskinesia", "adverse effect") do not turn the condition into an absent one.
		{"qualifiers after the condition", []coder.Dx{
			{Code: "G20.A2", Evidence: q("Parkinson's disease without dyskinesia, with fluctuations.")},
			{Code: "I95.2", Evidence: q("Orthostatic hypotension due to carbidopa-levodopa, adverse effect, taken as prescribed.")}},
			[]string{"G20.A2", "I95.2"}, nil},
		{"relative's condition", []coder.Dx{{Code: "I63.9", Evidence: q("stroke")}},
			nil, map[string]string{"I63.9": "family member"}},
		{"family history code with family evidence", []coder.Dx{{Code: "Z82.3", Evidence: q("Her mother had a stroke")}},
			[]string{"Z82.3"}, nil},
		{"uncertain diagnosis", []coder.Dx{{Code: "J18.9", Evidence: q("pneumonia")}},
			nil, map[string]string{"J18.9": "uncertain"}},
		{"evidence not in the transcript", []coder.Dx{{Code: "I10", Evidence: []coder.Span{{Text: "HTN", Start: 0, End: 3}}}},
			nil, map[string]string{"I10": "no evidence"}},
		{"combination code wins over I10", []coder.Dx{
			{Code: "I10", Evidence: q("Hypertension.")},
			{Code: "I12.9", Evidence: q("Hypertension with chronic kidney disease")},
			{Code: "N18.30", Evidence: q("chronic kidney disease stage 3")}},
			[]string{"I12.9", "N18.30"}, map[string]string{"I10": "combination"}},
		{"Excludes1 keeps the better-supported code", []coder.Dx{
			{Code: "E10.9", Evidence: q("Type 2 diabetes without complications")},
			{Code: "E11.65", Evidence: append(q("Type 2 diabetes mellitus with hyperglycemia"), quote(t, guardTranscript, "uncontrolled"))}},
			[]string{"E11.65"}, map[string]string{"E10.9": "excludes1"}},
		{"unspecified beside specific", []coder.Dx{
			{Code: "E11.65", Evidence: q("Type 2 diabetes mellitus with hyperglycemia")},
			{Code: "E11.9", Evidence: q("Type 2 diabetes without complications")}},
			[]string{"E11.65"}, map[string]string{"E11.9": "less specific"}},
		{"duplicates merge", []coder.Dx{
			{Code: "M17.11", Evidence: q("Right knee osteoarthritis")},
			{Code: "M1711", Evidence: q("Right knee osteoarthritis")}},
			[]string{"M17.11"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := &coder.Result{Diagnoses: tc.dx}
			if err := coder.Guard(context.Background(), set, in, res); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, dxCodes(res)); d != "" {
				t.Errorf("kept (-want +got)\n%s\ndropped: %+v", d, res.Dropped)
			}
			for code, frag := range tc.dropped {
				if r := droppedReason(res, code); !strings.Contains(r, frag) {
					t.Errorf("%s dropped with %q, want a reason containing %q (all: %+v)", code, r, frag, res.Dropped)
				}
			}
			for _, d := range res.Diagnoses {
				if d.Display == "" {
					t.Errorf("%s has no display", d.Code)
				}
			}
		})
	}
}

func TestGuardLinesAndEM(t *testing.T) {
	t.Parallel()
	set := loadSet(t)
	text := guardTranscript
	span := []coder.Span{quote(t, text, "Injected the right knee today")}
	dx := func(n int) []coder.Dx {
		all := []string{"M17.11", "I12.9", "N18.30", "E11.65", "Z82.3"}
		ev := map[string]string{"M17.11": "Right knee osteoarthritis", "I12.9": "Hypertension with chronic kidney disease",
			"N18.30": "chronic kidney disease stage 3", "E11.65": "Type 2 diabetes mellitus with hyperglycemia", "Z82.3": "Her mother had a stroke"}
		var out []coder.Dx
		for _, c := range all[:n] {
			out = append(out, coder.Dx{Code: c, Evidence: []coder.Span{quote(t, text, ev[c])}})
		}
		return out
	}
	base := coder.Input{Transcript: text, Patient: coder.Patient{BirthDate: "1970-01-01", Sex: "female"},
		ServiceDate: time.Date(2025, 11, 3, 0, 0, 0, 0, time.UTC), Established: true}
	tests := []struct {
		name        string
		established bool
		date        time.Time
		res         coder.Result
		wantLines   []coder.Line // codes, modifiers, units, pointers compared
		wantEM      string
		wantEMMods  []string
		wantDropped []string
	}{
		{"modifier 25 added for a joint injection; pointers kept", true, base.ServiceDate, coder.Result{Diagnoses: dx(2),
			Lines: []coder.Line{{Code: "20610", Modifiers: []string{"RT"}, Units: 1, DiagnosisPointers: []int{1}, Evidence: span}},
			EM:    &coder.EMLevel{Code: "99213", Basis: coder.BasisMDM, Evidence: span}},
			[]coder.Line{{Code: "20610", Modifiers: []string{"RT"}, Units: 1, DiagnosisPointers: []int{1}}}, "99213", []string{"25"}, nil},
		{"modifier 25 removed without a procedure", true, base.ServiceDate, coder.Result{Diagnoses: dx(2),
			Lines: []coder.Line{{Code: "93000", Units: 1, DiagnosisPointers: []int{2}, Evidence: span}},
			EM:    &coder.EMLevel{Code: "99214", Modifiers: []string{"25"}, Basis: coder.BasisMDM, Evidence: span}},
			[]coder.Line{{Code: "93000", Units: 1, DiagnosisPointers: []int{2}}}, "99214", nil, []string{"99214-25"}},
		{"new patient code for an established patient", true, base.ServiceDate, coder.Result{Diagnoses: dx(1),
			EM: &coder.EMLevel{Code: "99204", Basis: coder.BasisMDM, Evidence: span}},
			nil, "99214", nil, []string{"99204"}},
		{"established code for a new patient", false, base.ServiceDate, coder.Result{Diagnoses: dx(1),
			EM: &coder.EMLevel{Code: "99213", Basis: coder.BasisMDM, Evidence: span}},
			nil, "99203", nil, []string{"99213"}},
		{"invented CPT and HCPCS codes", true, base.ServiceDate, coder.Result{Diagnoses: dx(1),
			Lines: []coder.Line{{Code: "99999", Units: 1, Evidence: span}, {Code: "J0001", Units: 1, Evidence: span}}},
			nil, "", nil, []string{"99999", "J0001"}},
		{"terminated HCPCS code after its end date", true, base.ServiceDate, coder.Result{Diagnoses: dx(1),
			Lines: []coder.Line{{Code: "J1030", Units: 1, Evidence: span}}},
			nil, "", nil, []string{"J1030"}},
		{"terminated HCPCS code before its end date", true, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), coder.Result{Diagnoses: dx(1),
			Lines: []coder.Line{{Code: "J1030", Units: 1, DiagnosisPointers: []int{1}, Evidence: span}}},
			[]coder.Line{{Code: "J1030", Units: 1, DiagnosisPointers: []int{1}}}, "", nil, nil},
		{"at most four pointers; dropped diagnoses renumber", true, base.ServiceDate, coder.Result{
			Diagnoses: append([]coder.Dx{{Code: "E11", Evidence: span}}, dx(5)...),
			Lines:     []coder.Line{{Code: "36415", Units: 0, DiagnosisPointers: []int{1, 2, 3, 4, 5, 6}, Evidence: span}}},
			[]coder.Line{{Code: "36415", Units: 1, DiagnosisPointers: []int{1, 2, 3, 4}}}, "", nil, []string{"E11", "36415 pointer [5]"}},
		{"preventive code for the wrong age band", true, base.ServiceDate, coder.Result{Diagnoses: dx(1),
			EM: &coder.EMLevel{Code: "99395", Basis: coder.BasisPreventive, Evidence: span}},
			nil, "99396", nil, []string{"99395"}},
		{"modifier 25 on a procedure line is moved", true, base.ServiceDate, coder.Result{Diagnoses: dx(1),
			Lines: []coder.Line{{Code: "20610", Modifiers: []string{"25", "RT"}, Units: 1, DiagnosisPointers: []int{1}, Evidence: span}},
			EM:    &coder.EMLevel{Code: "99213", Basis: coder.BasisMDM, Evidence: span}},
			[]coder.Line{{Code: "20610", Modifiers: []string{"RT"}, Units: 1, DiagnosisPointers: []int{1}}}, "99213", []string{"25"}, []string{"20610-25"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := base
			in.Established, in.ServiceDate = tc.established, tc.date
			res := tc.res
			if err := coder.Guard(context.Background(), set, in, &res); err != nil {
				t.Fatal(err)
			}
			var got []coder.Line
			for _, l := range res.Lines {
				got = append(got, coder.Line{Code: l.Code, Modifiers: l.Modifiers, Units: l.Units, DiagnosisPointers: l.DiagnosisPointers})
			}
			if d := cmp.Diff(tc.wantLines, got); d != "" {
				t.Errorf("lines (-want +got)\n%s\ndropped %+v", d, res.Dropped)
			}
			gotEM, gotMods := "", []string(nil)
			if res.EM != nil {
				gotEM, gotMods = res.EM.Code, res.EM.Modifiers
			}
			if gotEM != tc.wantEM || cmp.Diff(tc.wantEMMods, gotMods) != "" {
				t.Errorf("E/M = %s %v, want %s %v", gotEM, gotMods, tc.wantEM, tc.wantEMMods)
			}
			for _, code := range tc.wantDropped {
				if droppedReason(&res, code) == "" {
					t.Errorf("%s not reported as dropped: %+v", code, res.Dropped)
				}
			}
		})
	}
}

func TestGuardCapsDiagnosesAtTwelve(t *testing.T) {
	t.Parallel()
	set := loadSet(t)
	var b strings.Builder
	b.WriteString("Assessment and plan:\n")
	conds := []struct{ code, text string }{{"I10", "Hypertension"}, {"E78.5", "Hyperlipidemia"}, {"K21.9", "GERD"},
		{"G47.33", "Obstructive sleep apnea"}, {"E03.9", "Hypothyroidism"}, {"M10.9", "Gout"}, {"F41.1", "Generalized anxiety disorder"},
		{"J30.9", "Allergic rhinitis"}, {"N40.0", "Benign prostatic hyperplasia"}, {"E55.9", "Vitamin D deficiency"},
		{"M81.0", "Osteoporosis"}, {"G47.00", "Insomnia"}, {"L40.0", "Psoriasis"}, {"B35.1", "Onychomycosis"}}
	for i, c := range conds {
		b.WriteString(strings.Repeat(" ", 0))
		b.WriteString(c.text)
		if i < len(conds)-1 {
			b.WriteString(".\n")
		}
	}
	text := b.String()
	res := &coder.Result{}
	for _, c := range conds {
		res.Diagnoses = append(res.Diagnoses, coder.Dx{Code: c.code, Evidence: []coder.Span{quote(t, text, c.text)}})
	}
	in := coder.Input{Transcript: text, Patient: coder.Patient{BirthDate: "1950-01-01", Sex: "male"}, ServiceDate: time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)}
	if err := coder.Guard(context.Background(), set, in, res); err != nil {
		t.Fatal(err)
	}
	if len(res.Diagnoses) != coder.MaxDiagnoses || res.Diagnoses[11].Code != "G47.00" {
		t.Fatalf("kept %v", dxCodes(res))
	}
	for _, c := range []string{"L40.0", "B35.1"} {
		if !strings.Contains(droppedReason(res, c), "more than 12") {
			t.Errorf("%s: %q", c, droppedReason(res, c))
		}
	}
}

// TestReview: every code carries a confidence, and the codes a human coder should check are listed
// in Result.Review with the reason: a conflict the guard resolved, units capped at the MUE, a
// problem-oriented E/M beside a preventive service. A plainly documented note has none.
func TestReview(t *testing.T) {
	t.Parallel()
	set := loadSet(t)
	b := coder.NewBuiltin(set)
	reviewed := func(res *coder.Result, code string) string {
		for _, r := range res.Review {
			if r.Code == code && r.Confidence < coder.ReviewBelow {
				return r.Reason
			}
		}
		return ""
	}

	clean := codeText(t, b, "Assessment and plan:\n1. Essential hypertension, controlled on lisinopril 10 mg daily; continue, refill sent.")
	if len(clean.Review) > 0 || len(clean.Diagnoses) != 1 || clean.Diagnoses[0].Confidence < coder.ReviewBelow {
		t.Errorf("plain note: diagnoses %+v, review %+v", clean.Diagnoses, clean.Review)
	}

	capped := codeText(t, b, "Assessment and plan:\n1. Allergic rhinitis. Percutaneous skin prick testing performed today: 120 tests.")
	if r := reviewed(capped, "95004"); !strings.Contains(r, "MUE") {
		t.Errorf("capped units not reviewed: %+v", capped.Review)
	}

	in := coder.Input{Transcript: guardTranscript, Patient: coder.Patient{BirthDate: "1970-01-01", Sex: "female"},
		ServiceDate: time.Date(2025, 11, 3, 0, 0, 0, 0, time.UTC), Established: true}
	conflict := &coder.Result{Diagnoses: []coder.Dx{
		{Code: "E10.9", Evidence: []coder.Span{quote(t, guardTranscript, "Type 2 diabetes without complications")}, Confidence: 0.9},
		{Code: "E11.65", Evidence: []coder.Span{quote(t, guardTranscript, "Type 2 diabetes mellitus with hyperglycemia"), quote(t, guardTranscript, "uncontrolled")}, Confidence: 0.9}}}
	if err := coder.Guard(context.Background(), set, in, conflict); err != nil {
		t.Fatal(err)
	}
	if r := reviewed(conflict, "E11.65"); !strings.Contains(r, "E10.9") {
		t.Errorf("Excludes1 conflict not reviewed: %+v", conflict.Review)
	}

	prev, err := b.Code(t.Context(), coder.Input{Transcript: "Doctor: Let me dictate. Annual physical, established patient, exam normal except a plantar wart of the left foot, a separate problem evaluated today; treatment with over-the-counter salicylic acid.",
		Patient: coder.Patient{BirthDate: "1990-03-01", Sex: "female"}, ServiceDate: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), Established: true})
	if err != nil {
		t.Fatal(err)
	}
	if prev.EM == nil || reviewed(prev, prev.EM.Code) == "" {
		t.Errorf("problem E/M beside a preventive service not reviewed: %+v %+v", prev.EM, prev.Review)
	}
}
