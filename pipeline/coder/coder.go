package coder

import (
	"context"
	"time"
	"unicode/utf8"
)

// Coder codes an encounter transcript into diagnoses, procedure lines and an E/M level.
type Coder interface {
	Code(ctx context.Context, in Input) (*Result, error)
	// Info names the engine, its version and its model ("" for the built-in coder).
	Info() (name, version, model string)
}

// Patient is what the coder needs to know about the patient.
type Patient struct {
	BirthDate string // FHIR date: YYYY, YYYY-MM or YYYY-MM-DD
	Sex       string // FHIR administrative gender: male, female, other, unknown
}

// Input is one encounter to code.
type Input struct {
	Transcript  string
	Patient     Patient
	ServiceDate time.Time
	// Established reports prior professional services from this provider group (same specialty)
	// within three years; the caller computes it. It chooses 99212-99215 over 99202-99205.
	Established bool
	// PlaceOfService is the CMS place-of-service code ("11" office, "22" outpatient hospital, "02"
	// and "10" telehealth; "" is office). Office/outpatient E/M codes are not assigned in inpatient,
	// emergency department or facility settings.
	PlaceOfService string
}

// Span is a quoted part of the transcript: Text == Transcript[Start:End]. Start and End are byte
// offsets into the UTF-8 transcript; RuneOffsets converts them to character offsets.
type Span struct {
	Text  string `json:"text"`
	Start int    `json:"start"`
	End   int    `json:"end"`
}

// RuneOffsets returns the span's offsets counted in Unicode characters (code points) of transcript.
func (s Span) RuneOffsets(transcript string) (start, end int) {
	if s.Start < 0 || s.End > len(transcript) || s.Start > s.End {
		return -1, -1
	}
	start = utf8.RuneCountInString(transcript[:s.Start])
	return start, start + utf8.RuneCountInString(transcript[s.Start:s.End])
}

// Dx is one ICD-10-CM diagnosis, in claim order (the first is the primary diagnosis).
type Dx struct {
	Code     string `json:"code"`
	Display  string `json:"display"`
	Evidence []Span `json:"evidence"`
	// Confidence is how sure the coder is of the code, from 0 to 1; below ReviewBelow the code is
	// listed in Result.Review for the human coder. Note says what lowered it.
	Confidence float64 `json:"confidence"`
	Note       string  `json:"note,omitempty"`
}

// ReviewBelow is the confidence under which a code is flagged for review.
const ReviewBelow = 0.7

// Review is a code the human coder should check before the claim goes out: low confidence, or a
// conflict the coder resolved.
type Review struct {
	Code       string  `json:"code"`
	Confidence float64 `json:"confidence"`
	Reason     string  `json:"reason"`
}

// Line is one procedure line (CPT or HCPCS Level II).
type Line struct {
	Code    string `json:"code"`
	System  string `json:"system"` // codes.CPT or codes.HCPCS
	Display string `json:"display"`
	// Modifiers such as 25, 50, RT, LT.
	Modifiers []string `json:"modifiers,omitempty"`
	Units     int      `json:"units"`
	// DiagnosisPointers are 1-based indexes into Result.Diagnoses (at most 4).
	DiagnosisPointers []int  `json:"diagnosisPointers"`
	Evidence          []Span `json:"evidence"`
	// Confidence and Note as for Dx.
	Confidence float64 `json:"confidence"`
	Note       string  `json:"note,omitempty"`
}

// E/M bases (BasisNurse in visit.go).
const (
	BasisMDM        = "mdm"
	BasisTime       = "time"
	BasisPreventive = "preventive"
)

// MDM levels, lowest to highest.
const (
	LevelMinimal         = "minimal"
	LevelStraightforward = "straightforward"
	LevelLow             = "low"
	LevelModerate        = "moderate"
	LevelHigh            = "high"
)

// MDM is the medical decision making behind an E/M level (2021 office/outpatient rules): the level
// of each element and the overall level (two of three elements).
type MDM struct {
	Level    string   `json:"level"`
	Problems string   `json:"problems"`
	Data     string   `json:"data"`
	Risk     string   `json:"risk"`
	Reasons  []string `json:"reasons,omitempty"`
}

// EMLevel is the evaluation and management service of the encounter.
type EMLevel struct {
	Code  string `json:"code"`
	Basis string `json:"basis"` // BasisMDM, BasisTime or BasisPreventive
	MDM   *MDM   `json:"mdm,omitempty"`
	// Minutes is the documented total time on the date of the encounter (0 when not documented).
	Minutes           int      `json:"minutes,omitempty"`
	Modifiers         []string `json:"modifiers,omitempty"`
	DiagnosisPointers []int    `json:"diagnosisPointers"`
	Evidence          []Span   `json:"evidence"`
	// Confidence and Note as for Dx.
	Confidence float64 `json:"confidence"`
	Note       string  `json:"note,omitempty"`
}

// Dropped is a code the coder or a guard removed, with the reason.
type Dropped struct {
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// Result is a coded encounter.
type Result struct {
	Diagnoses []Dx      `json:"diagnoses"`
	Lines     []Line    `json:"lines"`
	EM        *EMLevel  `json:"em,omitempty"`
	Dropped   []Dropped `json:"dropped,omitempty"`
	// Review lists the codes kept on the claim that a human coder should check (Guard fills it).
	Review []Review `json:"review,omitempty"`
}
