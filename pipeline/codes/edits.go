package codes

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// NoMaxAge is the upper age bound (years) of a code without an age edit; the MCE uses 124 too.
const NoMaxAge = 124

// Edit is the sex/age edit of one code: the code fits only patients of Sex (when set) whose age in
// completed years is within [MinAge, MaxAge].
type Edit struct {
	Sex    string // "female", "male", or "" for either
	MinAge int
	MaxAge int    // NoMaxAge when unrestricted
	Rule   string // IDs of the SexAgeRules that set the edit, comma-separated
}

// Restricted reports whether the edit limits sex or age at all.
func (e Edit) Restricted() bool { return e.Rule != "" }

// Check tests a patient against the edit. sex is a FHIR administrative gender (male, female, other,
// unknown or empty: only male and female are tested); age is in completed years, negative when
// unknown (not tested). The reason says which rule failed.
func (e Edit) Check(sex string, age int) (ok bool, reason string) {
	sex = strings.ToLower(strings.TrimSpace(sex))
	if e.Sex != "" && (sex == "male" || sex == "female") && sex != e.Sex {
		return false, fmt.Sprintf("sex edit (%s): code is for %s patients, patient is %s", e.Rule, e.Sex, sex)
	}
	if age >= 0 && e.Rule != "" && (age < e.MinAge || age > e.MaxAge) {
		return false, fmt.Sprintf("age edit (%s): code is for ages %d-%d, patient is %d", e.Rule, e.MinAge, e.MaxAge, age)
	}
	return true, ""
}

// SexAgeRule is one row of the derived edit table: codes from From through To (inclusive, compared
// on the undotted code's leading characters, so "O00"-"O9A" covers O00.0 to O9A.53) — optionally
// only those whose description matches Desc — fit only Sex and ages MinAge..MaxAge.
type SexAgeRule struct {
	ID       string
	From, To string
	Desc     *regexp.Regexp
	Sex      string
	MinAge   int
	MaxAge   int
	Basis    string // where the rule comes from
}

const (
	maternityMin = 9 // MCE maternity age range (ICD-10 MCE); the ICD-9 era used 12-55
	maternityMax = 64
)

// SexAgeRules is the derived, conservative subset of the MCE sex and age edits. A rule covers a range
// only when the Tabular List places the whole range in one sex or age band. Perinatal chapter 16
// (P05-P96) carries no age edit although the MCE has one: Guideline I.C.16.a.4 lets a perinatal
// condition that persists be coded at any age, so only the strictly newborn codes are edited.
var SexAgeRules = []SexAgeRule{
	{ID: "pregnancy", From: "O00", To: "O9A", Sex: "female", MinAge: maternityMin, MaxAge: maternityMax,
		Basis: "Chapter 15 (O00-O9A) is used only on the maternal record (Guideline I.C.15.a.1); MCE maternity ages"},
	{ID: "gestation-weeks", From: "Z3A", To: "Z3A", Sex: "female", MinAge: maternityMin, MaxAge: maternityMax,
		Basis: "Z3A weeks of gestation: used only on the maternal record (Guideline I.C.15.a.1, I.C.21.c.11)"},
	{ID: "pregnancy-z", From: "Z33", To: "Z37", Sex: "female", MinAge: maternityMin, MaxAge: maternityMax,
		Basis: "Z33 pregnant state, Z34 supervision of normal pregnancy, Z36 antenatal screening, Z37 outcome of delivery (maternal record)"},
	{ID: "postpartum", From: "Z39", To: "Z39", Sex: "female", MinAge: maternityMin, MaxAge: maternityMax,
		Basis: "Z39 postpartum care and examination (maternal record)"},
	{ID: "newborn-maternal", From: "P00", To: "P04", MinAge: 0, MaxAge: 0,
		Basis: "P00-P04 newborn affected by maternal factors and complications of pregnancy, labor and delivery: newborn record only"},
	{ID: "liveborn", From: "Z38", To: "Z38", MinAge: 0, MaxAge: 0,
		Basis: "Z38 liveborn infants according to place of birth: principal on the newborn's birth record (Guideline I.C.16.a.2)"},
	{ID: "newborn-exam", From: "Z00.11", To: "Z00.11", MinAge: 0, MaxAge: 0,
		Basis: "Z00.11- health examination for newborn under 29 days"},
	{ID: "child-exam", From: "Z00.12", To: "Z00.12", MinAge: 0, MaxAge: 17,
		Basis: "Z00.12- routine child health examination; MCE pediatric ages 0-17"},
	{ID: "adult-exam", From: "Z00.0", To: "Z00.0", MinAge: 15, MaxAge: NoMaxAge,
		Basis: "Z00.0- general adult medical examination; MCE adult ages 15-124"},
	{ID: "female-genital", From: "N70", To: "N98", Sex: "female", MaxAge: NoMaxAge,
		Basis: "Chapter 14 blocks N70-N77 and N80-N98: diseases of female pelvic organs and genital tract"},
	{ID: "male-genital", From: "N40", To: "N53", Sex: "male", MaxAge: NoMaxAge,
		Basis: "Chapter 14 block N40-N53: diseases of male genital organs"},
	{ID: "female-genital-neoplasm", From: "C51", To: "C58", Sex: "female", MaxAge: NoMaxAge,
		Basis: "Block C51-C58: malignant neoplasms of female genital organs"},
	{ID: "male-genital-neoplasm", From: "C60", To: "C63", Sex: "male", MaxAge: NoMaxAge,
		Basis: "Block C60-C63: malignant neoplasms of male genital organs (C61 prostate)"},
	{ID: "female-breast-neoplasm", From: "C50", To: "C50", Desc: regexp.MustCompile(`(?i)\bfemale breast\b`), Sex: "female", MaxAge: NoMaxAge,
		Basis: "C50 subcategories naming the female breast"},
	{ID: "male-breast-neoplasm", From: "C50", To: "C50", Desc: regexp.MustCompile(`(?i)\bmale breast\b`), Sex: "male", MaxAge: NoMaxAge,
		Basis: "C50 subcategories naming the male breast"},
	{ID: "cervix-in-situ", From: "D06", To: "D06", Sex: "female", MaxAge: NoMaxAge,
		Basis: "D06 carcinoma in situ of cervix uteri"},
	{ID: "female-genital-in-situ", From: "D07.0", To: "D07.3", Sex: "female", MaxAge: NoMaxAge,
		Basis: "D07.0-D07.3 carcinoma in situ of endometrium, vulva, vagina, other female genital organs"},
	{ID: "male-genital-in-situ", From: "D07.4", To: "D07.6", Sex: "male", MaxAge: NoMaxAge,
		Basis: "D07.4-D07.6 carcinoma in situ of penis, prostate, other male genital organs"},
	{ID: "female-genital-benign", From: "D25", To: "D28", Sex: "female", MaxAge: NoMaxAge,
		Basis: "D25-D28 leiomyoma of uterus, other benign neoplasms of uterus, ovary, other female genital organs"},
	{ID: "male-genital-benign", From: "D29", To: "D29", Sex: "male", MaxAge: NoMaxAge,
		Basis: "D29 benign neoplasm of male genital organs"},
	{ID: "female-genital-uncertain", From: "D39", To: "D39", Sex: "female", MaxAge: NoMaxAge,
		Basis: "D39 neoplasm of uncertain behavior of female genital organs"},
	{ID: "male-genital-uncertain", From: "D40", To: "D40", Sex: "male", MaxAge: NoMaxAge,
		Basis: "D40 neoplasm of uncertain behavior of male genital organs"},
	{ID: "ovarian-dysfunction", From: "E28", To: "E28", Sex: "female", MaxAge: NoMaxAge,
		Basis: "E28 ovarian dysfunction"},
	{ID: "testicular-dysfunction", From: "E29", To: "E29", Sex: "male", MaxAge: NoMaxAge,
		Basis: "E29 testicular dysfunction"},
	{ID: "vulvovaginal-candidiasis", From: "B37.3", To: "B37.3", Sex: "female", MaxAge: NoMaxAge,
		Basis: "B37.3- candidiasis of vulva and vagina"},
	{ID: "female-genital-congenital", From: "Q50", To: "Q52", Sex: "female", MaxAge: NoMaxAge,
		Basis: "Q50-Q52 congenital malformations of ovaries, fallopian tubes, uterus, cervix and female genitalia"},
	{ID: "male-genital-congenital", From: "Q53", To: "Q55", Sex: "male", MaxAge: NoMaxAge,
		Basis: "Q53-Q55 undescended testicle, hypospadias, other congenital malformations of male genital organs"},
	{ID: "male-specimen", From: "R86", To: "R86", Sex: "male", MaxAge: NoMaxAge,
		Basis: "R86 abnormal findings in specimens from male genital organs"},
	{ID: "female-specimen", From: "R87", To: "R87", Sex: "female", MaxAge: NoMaxAge,
		Basis: "R87 abnormal findings in specimens from female genital organs"},
	{ID: "gyn-exam", From: "Z01.41", To: "Z01.42", Sex: "female", MaxAge: NoMaxAge,
		Basis: "Z01.41- gynecological examination, Z01.42 cervical smear to confirm normal findings"},
	{ID: "cervix-screening", From: "Z12.4", To: "Z12.4", Sex: "female", MaxAge: NoMaxAge,
		Basis: "Z12.4 screening for malignant neoplasm of cervix"},
	{ID: "prostate-screening", From: "Z12.5", To: "Z12.5", Sex: "male", MaxAge: NoMaxAge,
		Basis: "Z12.5 screening for malignant neoplasm of prostate"},
	{ID: "testis-screening", From: "Z12.71", To: "Z12.71", Sex: "male", MaxAge: NoMaxAge,
		Basis: "Z12.71 screening for malignant neoplasm of testis"},
	{ID: "vagina-ovary-screening", From: "Z12.72", To: "Z12.73", Sex: "female", MaxAge: NoMaxAge,
		Basis: "Z12.72 screening of vagina, Z12.73 of ovary"},
	{ID: "pregnancy-test", From: "Z32.0", To: "Z32.0", Sex: "female", MaxAge: NoMaxAge,
		Basis: "Z32.0- encounter for pregnancy test"},
	{ID: "pregnancy-history", From: "Z87.5", To: "Z87.5", Sex: "female", MaxAge: NoMaxAge,
		Basis: "Z87.5- personal history of complications of pregnancy, childbirth and the puerperium"},
	{ID: "absent-uterus-ovaries", From: "Z90.71", To: "Z90.72", Sex: "female", MaxAge: NoMaxAge,
		Basis: "Z90.71- acquired absence of cervix and/or uterus, Z90.72- of ovaries"},
	{ID: "iud", From: "Z97.5", To: "Z97.5", Sex: "female", MaxAge: NoMaxAge,
		Basis: "Z97.5 presence of (intrauterine) contraceptive device"},
}

// inRange reports whether code lies in the inclusive range from..to, comparing on the undotted
// code's leading characters.
func inRange(code, from, to string) bool {
	c := strings.ReplaceAll(strings.ToUpper(code), ".", "")
	f := strings.ReplaceAll(from, ".", "")
	t := strings.ReplaceAll(to, ".", "")
	if len(c) < len(f) || len(c) < len(t) {
		return false
	}
	return c[:len(f)] >= f && c[:len(t)] <= t
}

// EditFor derives the sex/age edit of an ICD-10-CM code from SexAgeRules. Several matching rules
// combine: their sexes must agree (a conflict keeps no sex edit) and their age ranges intersect.
func EditFor(code, display string) Edit {
	e := Edit{MaxAge: NoMaxAge}
	var ids []string
	sexConflict := false
	for _, r := range SexAgeRules {
		if !inRange(code, r.From, r.To) {
			continue
		}
		if r.Desc != nil && !r.Desc.MatchString(display) {
			continue
		}
		ids = append(ids, r.ID)
		if r.Sex != "" {
			if e.Sex != "" && e.Sex != r.Sex {
				sexConflict = true
			}
			e.Sex = r.Sex
		}
		e.MinAge = max(e.MinAge, r.MinAge)
		e.MaxAge = min(e.MaxAge, r.MaxAge)
	}
	if sexConflict {
		e.Sex = ""
	}
	e.Rule = strings.Join(ids, ",")
	return e
}

// AgeAt returns the age in completed years on date on of a patient born on birthDate (FHIR date:
// YYYY, YYYY-MM or YYYY-MM-DD), or -1 when birthDate is empty or malformed or on is zero. A partial
// birth date counts from its first possible day.
func AgeAt(birthDate string, on time.Time) int {
	if on.IsZero() {
		return -1
	}
	var b time.Time
	var err error
	switch len(birthDate) {
	case 4:
		b, err = time.Parse("2006", birthDate)
	case 7:
		b, err = time.Parse("2006-01", birthDate)
	default:
		if len(birthDate) >= 10 {
			b, err = time.Parse("2006-01-02", birthDate[:10])
		} else {
			return -1
		}
	}
	if err != nil {
		return -1
	}
	y, m, d := on.Date()
	age := y - b.Year()
	if m < b.Month() || (m == b.Month() && d < b.Day()) {
		age--
	}
	if age < 0 {
		return -1
	}
	return age
}
