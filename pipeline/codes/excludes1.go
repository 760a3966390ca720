package codes

import (
	"strings"
	"sync"
)

// Kinds of code pairs that must not be reported together.
const (
	// PairExcludes1 is a Tabular List Excludes1 note: the two conditions cannot occur together.
	PairExcludes1 = "excludes1"
	// PairCombination is a combination-code redundancy from the Official Guidelines: the second code
	// already includes the first.
	PairCombination = "combination"
)

// ExclusionPair says codes in range A must not be reported with codes in range B. Ranges use the
// SexAgeRule notation: "E11" or "E08-E13" (inclusive, compared on the undotted leading characters).
type ExclusionPair struct {
	A, B string
	Kind string
	Note string // the Tabular note or guideline, quoted or paraphrased
}

// Excludes1Pairs is a short, hand-checked table of common conflicts. It is not the full Tabular
// List: it catches the pairs a coder (human or model) most often gets wrong in outpatient claims.
var Excludes1Pairs = []ExclusionPair{
	{A: "E11", B: "E10", Kind: PairExcludes1, Note: "E11 Type 2 diabetes mellitus, Excludes1: type 1 diabetes mellitus (E10.-)"},
	{A: "E11", B: "E08-E09", Kind: PairExcludes1, Note: "E11 Excludes1: diabetes mellitus due to underlying condition (E08.-), drug or chemical induced diabetes mellitus (E09.-)"},
	{A: "E11", B: "E13", Kind: PairExcludes1, Note: "E11 Excludes1: postpancreatectomy, postprocedural and secondary diabetes mellitus NEC (E13.-)"},
	{A: "E11", B: "O24.4", Kind: PairExcludes1, Note: "E11 Excludes1: gestational diabetes (O24.4-)"},
	{A: "E10", B: "R73.9", Kind: PairExcludes1, Note: "E10 Type 1 diabetes mellitus, Excludes1: hyperglycemia NOS (R73.9)"},
	{A: "R73", B: "E08-E13", Kind: PairExcludes1, Note: "R73 Elevated blood glucose level, Excludes1: diabetes mellitus (E08-E13)"},
	{A: "I10", B: "I11-I13", Kind: PairCombination, Note: "Guideline I.C.9.a: hypertension with heart disease or chronic kidney disease is coded with the combination category I11, I12 or I13, not I10"},
	{A: "I10", B: "O10-O11", Kind: PairExcludes1, Note: "I10 Excludes1: hypertensive disease complicating pregnancy, childbirth and the puerperium (O10-O11, O13-O16)"},
	{A: "I10", B: "O13-O16", Kind: PairExcludes1, Note: "I10 Excludes1: hypertensive disease complicating pregnancy, childbirth and the puerperium (O10-O11, O13-O16)"},
	{A: "I10", B: "I27.0", Kind: PairExcludes1, Note: "I10 Excludes1: primary pulmonary hypertension (I27.0)"},
	{A: "I11", B: "I13", Kind: PairCombination, Note: "Guideline I.C.9.a.3: hypertensive heart and chronic kidney disease is coded I13, which includes I11 and I12"},
	{A: "I12", B: "I13", Kind: PairCombination, Note: "Guideline I.C.9.a.3: hypertensive heart and chronic kidney disease is coded I13, which includes I11 and I12"},
	{A: "J45", B: "R06.2", Kind: PairExcludes1, Note: "J45 Asthma, Excludes1: wheezing NOS (R06.2)"},
	{A: "J03", B: "J02", Kind: PairExcludes1, Note: "J03 Acute tonsillitis, Excludes1: acute sore throat (J02.-), streptococcal sore throat (J02.0)"},
	{A: "J06", B: "J02.0", Kind: PairExcludes1, Note: "J06 Acute upper respiratory infections of multiple and unspecified sites, Excludes1: streptococcal pharyngitis (J02.0)"},
	{A: "J06", B: "J10.1", Kind: PairExcludes1, Note: "J06 Excludes1: influenza virus with other respiratory manifestations (J09.X2, J10.1, J11.1)"},
	{A: "J06", B: "J11.1", Kind: PairExcludes1, Note: "J06 Excludes1: influenza virus with other respiratory manifestations (J09.X2, J10.1, J11.1)"},
	{A: "J20", B: "J40", Kind: PairExcludes1, Note: "J20 Acute bronchitis, Excludes1: bronchitis NOS (J40)"},
	{A: "R51", B: "G43-G44", Kind: PairExcludes1, Note: "R51.9 Headache, unspecified, Excludes1: migraine and other headache syndromes (G43-G44)"},
	{A: "F32", B: "F33", Kind: PairExcludes1, Note: "F32 Depressive episode, Excludes1: recurrent depressive disorder (F33.-)"},
	{A: "F32", B: "F30-F31", Kind: PairExcludes1, Note: "F32 Excludes1: bipolar disorder (F31.-), manic episode (F30.-)"},
	{A: "F33", B: "F30-F31", Kind: PairExcludes1, Note: "F33 Major depressive disorder, recurrent, Excludes1: bipolar disorder (F31.-), manic episode (F30.-)"},
	{A: "M54.5", B: "M54.4", Kind: PairExcludes1, Note: "M54.5 Low back pain, Excludes1: lumbago with sciatica (M54.4-)"},
	{A: "M54.5", B: "S39.01", Kind: PairExcludes1, Note: "M54.5 Excludes1: low back strain (S39.012)"},
	{A: "M54.5", B: "M51.2", Kind: PairExcludes1, Note: "M54.5 Excludes1: lumbago due to intervertebral disc displacement (M51.2-)"},
	{A: "M54.3", B: "M54.4", Kind: PairExcludes1, Note: "M54.3 Sciatica, Excludes1: sciatica with lumbago (M54.4-)"},
	{A: "M54.3", B: "M51.1", Kind: PairExcludes1, Note: "M54.3 Excludes1: sciatica due to intervertebral disc disorder (M51.1-)"},
	{A: "Z87.891", B: "F17.2", Kind: PairExcludes1, Note: "Z87.891 Personal history of nicotine dependence, Excludes1: current nicotine dependence (F17.2-)"},
	{A: "Z72.0", B: "F17.2", Kind: PairExcludes1, Note: "Z72.0 Tobacco use, Excludes1: tobacco dependence (F17.2-)"},
	{A: "Z72.0", B: "Z87.891", Kind: PairExcludes1, Note: "Z72.0 Tobacco use, Excludes1: history of tobacco dependence (Z87.891)"},
	{A: "E66", B: "Q87.11", Kind: PairExcludes1, Note: "E66 Overweight and obesity, Excludes1: Prader-Willi syndrome (Q87.11)"},
	{A: "R50", B: "R56.0", Kind: PairExcludes1, Note: "R50 Fever of other and unknown origin, Excludes1: febrile convulsions (R56.0-)"},
	{A: "R10", B: "N23", Kind: PairExcludes1, Note: "R10 Abdominal and pelvic pain, Excludes1: renal colic (N23)"},
	{A: "Z00.00", B: "Z00.01", Kind: PairCombination, Note: "Z00.00 and Z00.01 are the without/with abnormal findings alternatives of one adult examination"},
	{A: "Z00.121", B: "Z00.129", Kind: PairCombination, Note: "Z00.121 and Z00.129 are the with/without abnormal findings alternatives of one child examination"},
}

// Conflict returns the first pair of Excludes1Pairs that forbids reporting a with b (in either
// order), and whether there is one. Codes are ICD-10-CM, dotted or not.
func Conflict(a, b string) (ExclusionPair, bool) {
	a = strings.ReplaceAll(strings.ToUpper(a), ".", "")
	b = strings.ReplaceAll(strings.ToUpper(b), ".", "")
	for i, p := range Excludes1Pairs {
		s := pairSpans()[i]
		if (s[0].has(a) && s[1].has(b)) || (s[0].has(b) && s[1].has(a)) {
			return p, true
		}
	}
	return ExclusionPair{}, false
}

// span is a code range without dots, "E08" to "E13".
type span struct{ from, to string }

func (s span) has(undotted string) bool {
	if len(undotted) < len(s.from) || len(undotted) < len(s.to) {
		return false
	}
	return undotted[:len(s.from)] >= s.from && undotted[:len(s.to)] <= s.to
}

// pairSpans are the spans of Excludes1Pairs without dots, made once: the guard asks for every
// pair of a claim's diagnoses.
var pairSpans = sync.OnceValue(func() [][2]span {
	out := make([][2]span, len(Excludes1Pairs))
	for i, p := range Excludes1Pairs {
		for j, sp := range []string{p.A, p.B} {
			from, to, ok := cut(sp)
			if !ok {
				to = from
			}
			out[i][j] = span{strings.ReplaceAll(from, ".", ""), strings.ReplaceAll(to, ".", "")}
		}
	}
	return out
})

// inSpan reports whether code is in span, "E11" or "E08-E13".
func inSpan(code, span string) bool {
	from, to, ok := cut(span)
	if !ok {
		to = from
	}
	return inRange(code, from, to)
}

func cut(span string) (string, string, bool) {
	for i := 0; i < len(span); i++ {
		if span[i] == '-' {
			return span[:i], span[i+1:], true
		}
	}
	return span, "", false
}
