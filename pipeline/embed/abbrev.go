package embed

import (
	"sort"
	"strings"
)

// abbreviations maps a lower-cased abbreviation to its expansion. Entries in upperOnly are ambiguous
// in lower case ("cp", "ha", "oa") and expand only when written in capitals.
var abbreviations = map[string]string{
	"htn": "hypertension", "hld": "hyperlipidemia", "hlp": "hyperlipidemia",
	"dm": "diabetes mellitus", "dm2": "type 2 diabetes mellitus", "t2dm": "type 2 diabetes mellitus",
	"dmii": "type 2 diabetes mellitus", "niddm": "type 2 diabetes mellitus", "t2d": "type 2 diabetes mellitus",
	"dm1": "type 1 diabetes mellitus", "t1dm": "type 1 diabetes mellitus", "iddm": "type 1 diabetes mellitus",
	"dka": "diabetic ketoacidosis", "a1c": "hemoglobin a1c", "hba1c": "hemoglobin a1c",
	"copd": "chronic obstructive pulmonary disease", "chf": "congestive heart failure",
	"hfref": "heart failure with reduced ejection fraction", "hfpef": "heart failure with preserved ejection fraction",
	"cad": "coronary artery disease", "ckd": "chronic kidney disease", "esrd": "end stage renal disease",
	"aki": "acute kidney injury", "gerd": "gastroesophageal reflux disease", "uti": "urinary tract infection",
	"uri": "upper respiratory infection", "bph": "benign prostatic hyperplasia", "osa": "obstructive sleep apnea",
	"dvt": "deep vein thrombosis", "afib": "atrial fibrillation", "a-fib": "atrial fibrillation",
	"mi": "myocardial infarction", "nstemi": "non st elevation myocardial infarction",
	"stemi": "st elevation myocardial infarction", "cva": "cerebrovascular accident stroke",
	"tia": "transient ischemic attack", "sob": "shortness of breath", "doe": "dyspnea on exertion",
	"lbp": "low back pain", "mdd": "major depressive disorder", "gad": "generalized anxiety disorder",
	"adhd": "attention deficit hyperactivity disorder", "ptsd": "post traumatic stress disorder",
	"ibs": "irritable bowel syndrome", "ibd": "inflammatory bowel disease", "aom": "acute otitis media",
	"ome": "otitis media with effusion", "pna": "pneumonia", "abd": "abdominal", "hx": "history",
	"fhx": "family history", "pmh": "past medical history", "sx": "symptoms", "dx": "diagnosis",
	"tx": "treatment", "rx": "prescription", "bmi": "body mass index", "pad": "peripheral arterial disease",
	"pvd": "peripheral vascular disease", "aaa": "abdominal aortic aneurysm", "hcv": "hepatitis c",
	"hbv": "hepatitis b", "rsv": "respiratory syncytial virus", "covid": "covid-19 coronavirus",
	"covid-19": "covid-19 coronavirus", "flu": "influenza", "svt": "supraventricular tachycardia",
	"pvc": "premature ventricular contractions", "lvh": "left ventricular hypertrophy",
	"bp": "blood pressure", "ekg": "electrocardiogram", "ecg": "electrocardiogram", "cxr": "chest x-ray",
	"cbc": "complete blood count", "cmp": "comprehensive metabolic panel", "bmp": "basic metabolic panel",
	"tsh": "thyroid stimulating hormone", "psa": "prostate specific antigen", "otc": "over the counter",
	"nsaid": "nonsteroidal anti-inflammatory drug", "nsaids": "nonsteroidal anti-inflammatory drugs",
	"ssri": "selective serotonin reuptake inhibitor", "rom": "range of motion", "acl": "anterior cruciate ligament",
	"mcl": "medial collateral ligament", "tmj": "temporomandibular joint", "gi": "gastrointestinal",
	"gu": "genitourinary", "pcos": "polycystic ovary syndrome", "sti": "sexually transmitted infection",
	"std": "sexually transmitted disease", "bv": "bacterial vaginosis", "pid": "pelvic inflammatory disease",
	"lmp": "last menstrual period", "ocp": "oral contraceptive pill", "s/p": "status post", "r/o": "rule out",
	"h/o": "history of", "c/o": "complains of", "f/u": "follow up", "w/o": "without", "n/v": "nausea vomiting",
	"x-ray": "x-ray radiograph", "hpi": "history of present illness", "ros": "review of systems",
	"hyperlipid": "hyperlipidemia", "hypothyroid": "hypothyroidism", "ha1c": "hemoglobin a1c",
	"ldl": "low density lipoprotein cholesterol", "hdl": "high density lipoprotein cholesterol",
	"ppd": "packs per day", "etoh": "alcohol", "ivdu": "intravenous drug use", "oud": "opioid use disorder",
	"aud": "alcohol use disorder", "ild": "interstitial lung disease", "pe": "pulmonary embolism",
	"cp": "chest pain", "ha": "headache", "oa": "osteoarthritis", "ra": "rheumatoid arthritis",
	"om": "otitis media", "ua": "urinalysis", "ms": "multiple sclerosis", "ed": "erectile dysfunction",
	"ams": "altered mental status", "loc": "loss of consciousness", "rle": "right lower extremity",
	"lle": "left lower extremity", "rue": "right upper extremity", "lue": "left upper extremity",
	"rlq": "right lower quadrant", "llq": "left lower quadrant", "ruq": "right upper quadrant",
	"luq": "left upper quadrant", "im": "intramuscular", "iud": "intrauterine device",
}

// upperOnly lists abbreviations that are ordinary words or ambiguous in lower case.
var upperOnly = setOf("pe", "cp", "ha", "oa", "ra", "om", "ua", "ms", "ed", "ams", "loc", "pad", "mi",
	"im", "bp", "gi", "gu", "bv", "aud", "rom", "sob", "doe", "tx", "dx", "sx", "hx", "rx", "abd", "std", "pid", "cad", "aaa")

// joined lists abbreviations written with a hyphen or slash, which Tokenize keeps whole.
var joined = setOf("a-fib", "s/p", "r/o", "h/o", "c/o", "f/u", "w/o", "n/v", "covid-19", "x-ray", "t-score", "x-rays")

// Abbreviation returns the expansion of the word tok when it is a known medical abbreviation.
// Abbreviations that are ordinary or ambiguous words in lower case ("pad", "ms", "cp") expand only
// when written in capitals.
func Abbreviation(tok string) (string, bool) {
	l := strings.ToLower(tok)
	exp, ok := abbreviations[l]
	if !ok {
		return "", false
	}
	if upperOnly[l] && tok != strings.ToUpper(tok) {
		return "", false
	}
	return exp, true
}

// Expand returns text with each known abbreviation followed by its expansion in parentheses, e.g.
// "HTN, DM2" -> "HTN (hypertension), DM2 (type 2 diabetes mellitus)". Offsets of the original words
// change; callers that need offsets use Tokenize and Abbreviation instead.
func Expand(text string) string {
	var b strings.Builder
	last := 0
	for _, t := range Tokenize(text) {
		exp, ok := Abbreviation(t.Text)
		if !ok {
			continue
		}
		b.WriteString(text[last:t.End])
		b.WriteString(" (")
		b.WriteString(exp)
		b.WriteString(")")
		last = t.End
	}
	b.WriteString(text[last:])
	return b.String()
}

// Abbreviations returns the abbreviation table, sorted by abbreviation, for documentation and for
// indexing synonyms.
func Abbreviations() [][2]string {
	out := make([][2]string, 0, len(abbreviations))
	for k, v := range abbreviations {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}
