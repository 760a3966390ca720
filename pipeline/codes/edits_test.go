package codes_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/iambilly/billy/pipeline/codes"
)

func TestEditCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		code    string
		display string
		sex     string
		age     int
		ok      bool
	}{
		{"pregnancy, adult woman", "O80", "Encounter for full-term uncomplicated delivery", "female", 28, true},
		{"pregnancy, man", "O80", "Encounter for full-term uncomplicated delivery", "male", 28, false},
		{"pregnancy, age 70", "O09.523", "Supervision of elderly multigravida, third trimester", "female", 70, false},
		{"pregnancy, unknown sex", "O80", "Encounter for full-term uncomplicated delivery", "unknown", 28, true},
		{"weeks of gestation, man", "Z3A.20", "20 weeks gestation of pregnancy", "male", 30, false},
		{"prostate cancer, woman", "C61", "Malignant neoplasm of prostate", "female", 70, false},
		{"prostate cancer, man", "C61", "Malignant neoplasm of prostate", "male", 70, true},
		{"BPH, woman", "N40.0", "Benign prostatic hyperplasia without lower urinary tract symptoms", "female", 60, false},
		{"cervical cancer, man", "C53.9", "Malignant neoplasm of cervix uteri, unspecified", "male", 40, false},
		{"female pelvic, man", "N94.6", "Dysmenorrhea, unspecified", "male", 20, false},
		{"female breast cancer, man", "C50.911", "Malignant neoplasm of unspecified site of right female breast", "male", 60, false},
		{"male breast cancer, man", "C50.921", "Malignant neoplasm of unspecified site of right male breast", "male", 60, true},
		{"newborn affected by maternal HTN at 30", "P00.0", "Newborn affected by maternal hypertensive disorders", "", 30, false},
		{"newborn affected by maternal HTN at 0", "P00.0", "Newborn affected by maternal hypertensive disorders", "", 0, true},
		{"persisting perinatal condition at 20 (Guideline I.C.16.a.4)", "P27.1", "Bronchopulmonary dysplasia originating in the perinatal period", "", 20, true},
		{"child check at 40", "Z00.129", "Encounter for routine child health examination without abnormal findings", "", 40, false},
		{"adult check at 10", "Z00.00", "Encounter for general adult medical examination without abnormal findings", "", 10, false},
		{"adult check at 50, age unknown", "Z00.00", "Encounter for general adult medical examination without abnormal findings", "", -1, true},
		{"diabetes, anyone", "E11.9", "Type 2 diabetes mellitus without complications", "male", 3, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := codes.EditFor(tc.code, tc.display)
			ok, reason := e.Check(tc.sex, tc.age)
			if ok != tc.ok {
				t.Errorf("EditFor(%s) = %+v; Check(%q, %d) = %v (%s), want %v", tc.code, e, tc.sex, tc.age, ok, reason, tc.ok)
			}
			if !ok && reason == "" {
				t.Error("a failed check must give a reason")
			}
		})
	}
}

func TestAgeAt(t *testing.T) {
	t.Parallel()
	on := time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		birth string
		want  int
	}{
		{"1980-03-15", 46}, {"1980-03-16", 45}, {"1980-04", 45}, {"1980", 46}, {"", -1}, {"garbage", -1},
		{"2026-03-01", 0}, {"2027-01-01", -1},
	}
	for _, tc := range tests {
		if got := codes.AgeAt(tc.birth, on); got != tc.want {
			t.Errorf("AgeAt(%q) = %d, want %d", tc.birth, got, tc.want)
		}
	}
	if got := codes.AgeAt("1980-01-01", time.Time{}); got != -1 {
		t.Errorf("AgeAt with a zero date = %d, want -1", got)
	}
}

func TestConflict(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want bool
		kind string
	}{
		{"E11.9", "E10.9", true, codes.PairExcludes1},
		{"E10.9", "E11.65", true, codes.PairExcludes1},
		{"I10", "I12.9", true, codes.PairCombination},
		{"I13.0", "I10", true, codes.PairCombination},
		{"J45.909", "R06.2", true, codes.PairExcludes1},
		{"J45.909", "J44.9", false, ""}, // Excludes2 (asthma with COPD): both may be reported
		{"R51.9", "G43.909", true, codes.PairExcludes1},
		{"F32.A", "F33.1", true, codes.PairExcludes1},
		{"M54.50", "M54.41", true, codes.PairExcludes1},
		{"E11.9", "I10", false, ""},
		{"Z87.891", "F17.210", true, codes.PairExcludes1},
		{"R73.03", "E11.9", true, codes.PairExcludes1},
	}
	for _, tc := range tests {
		p, ok := codes.Conflict(tc.a, tc.b)
		if ok != tc.want || (ok && p.Kind != tc.kind) || (ok && p.Note == "") {
			t.Errorf("Conflict(%s, %s) = %+v, %v; want %v %s", tc.a, tc.b, p, ok, tc.want, tc.kind)
		}
	}
}

func TestSetChildrenAndDisplay(t *testing.T) {
	t.Parallel()
	s := codes.NewSet([]codes.Code{
		{System: codes.ICD10CM, Version: "t", Code: "S93.401A", Display: "Sprain of unspecified ligament of right ankle, initial encounter", Billable: true},
		{System: codes.ICD10CM, Version: "t", Code: "S93402A", Display: "Sprain of unspecified ligament of left ankle, initial encounter", Billable: true},
		{System: codes.ICD10CM, Version: "t", Code: "S93", Display: "Dislocation and sprain of joints and ligaments at ankle, foot and toe level"},
		{System: codes.ICD10CM, Version: "t", Code: "S94.00XA", Display: "Injury of lateral plantar nerve, unspecified leg, initial encounter", Billable: true},
	})
	var got []string
	for _, c := range s.Children(codes.ICD10CM, "S934") {
		got = append(got, c.Code)
	}
	if fmt.Sprint(got) != "[S93.401A S93.402A]" {
		t.Errorf("Children = %v", got)
	}
	if c, ok := s.ByDisplay(codes.ICD10CM, "sprain of unspecified ligament of LEFT ankle,  initial encounter"); !ok || c.Code != "S93.402A" {
		t.Errorf("ByDisplay = %v, %v", c, ok)
	}
	if exists, billable, _ := s.Validate(context.Background(), codes.ICD10CM, "S93"); !exists || billable {
		t.Errorf("S93 header: exists %v billable %v", exists, billable)
	}
	if exists, _, _ := s.Validate(context.Background(), codes.CPT, "99214"); !exists {
		t.Error("built-in CPT 99214 missing")
	}
	if exists, _, _ := s.Validate(context.Background(), codes.CPT, "99999"); exists {
		t.Error("invented CPT 99999 exists")
	}
}

func ExampleConflict() {
	p, ok := codes.Conflict("E11.9", "E10.9")
	fmt.Println(ok, p.Kind)
	_, ok = codes.Conflict("E11.9", "I10")
	fmt.Println(ok)
	// Output:
	// true excludes1
	// false
}

func ExampleEditFor() {
	e := codes.EditFor("C61", "Malignant neoplasm of prostate")
	ok, reason := e.Check("female", 70)
	fmt.Println(ok, reason)
	// Output:
	// false sex edit (male-genital-neoplasm): code is for male patients, patient is female
}
