package x12

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Amount is money in cents: X12 amounts are decimals with at most two places (R), FHIR Money
// decimals; both go through cents so that sums are exact.
type Amount int64

// String formats an amount as X12 R: no trailing zeros, no exponent ("125", "125.5", "-3.25").
func (a Amount) String() string {
	sign := ""
	if a < 0 {
		sign, a = "-", -a
	}
	whole, cents := a/100, a%100
	switch {
	case cents == 0:
		return sign + strconv.FormatInt(int64(whole), 10)
	case cents%10 == 0:
		return fmt.Sprintf("%s%d.%d", sign, whole, cents/10)
	}
	return fmt.Sprintf("%s%d.%02d", sign, whole, cents)
}

// Float is the amount as a JSON number for FHIR Money (two decimals at most, exact in decimal).
func (a Amount) Float() float64 { return float64(a) / 100 }

// ParseAmount reads a decimal ("125", "125.5", "-0.25", ".5") into cents, rounding half away from
// zero past two places.
func ParseAmount(s string) (Amount, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 20 {
		return 0, fmt.Errorf("amount %q", s)
	}
	neg := false
	switch s[0] {
	case '-':
		neg, s = true, s[1:]
	case '+':
		s = s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" {
		return 0, fmt.Errorf("amount %q", s)
	}
	var w int64
	if whole != "" {
		n, err := strconv.ParseUint(whole, 10, 63)
		if err != nil || n > 1e15 {
			return 0, fmt.Errorf("amount %q", s)
		}
		w = int64(n)
	}
	for _, c := range frac {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("amount %q", s)
		}
	}
	frac += "000"
	c, _ := strconv.Atoi(frac[:2])
	if frac[2] >= '5' {
		c++
	}
	a := Amount(w*100 + int64(c))
	if neg {
		a = -a
	}
	return a, nil
}

// Envelope is what identifies the sender and receiver of an interchange (ISA, GS, 1000A, 1000B).
type Envelope struct {
	SenderQualifier, SenderID     string // ISA05, ISA06 (also GS02)
	ReceiverQualifier, ReceiverID string // ISA07, ISA08 (also GS03)
	Usage                         string // ISA15: P (production) or T (test)
}

// Batch is one 837P interchange: one transaction set of claims, grouped by billing provider and
// then by subscriber, as the 2000A/2000B/2000C hierarchy wants them.
type Batch struct {
	Envelope
	// Control numbers: ISA13 (interchange) and GS06 (group), assigned when the batch is written.
	Interchange, Group int64
	Created            time.Time
	Submitter          Submitter // 1000A
	Receiver           Party     // 1000B (name and the receiver's id)
	Billing            []*BillingGroup
}

// Submitter is loop 1000A.
type Submitter struct {
	Name, ID           string
	ContactName, Phone string
}

// Party is a name and an identifier (payer, receiver).
type Party struct {
	Name, ID string
}

// Address is N3/N4.
type Address struct {
	Lines             []string
	City, State, Zip  string
	CountryIfNotUS    string
	hasForeignCountry bool
}

// Provider is a billing (2010AA) or rendering (2310B) provider: an organization (Name) or a person
// (Last, First).
type Provider struct {
	Organization      bool
	Name, Last, First string
	NPI               string
	TaxID, TaxIDQual  string // REF*EI (employer id) or REF*SY (social security number)
	Taxonomy          string // PRV
	Address           Address
}

// Person is a subscriber (2010BA) or patient (2010CA).
type Person struct {
	Last, First, Middle string
	MemberID            string // subscriber only (NM109)
	Address             *Address
	BirthDate           time.Time
	Gender              string // M, F or U
}

// BillingGroup is loop 2000A with its subscribers.
type BillingGroup struct {
	Provider    Provider
	Subscribers []*SubscriberGroup
}

// SubscriberGroup is loop 2000B: a subscriber with a payer, the subscriber's own claims, and
// dependents (2000C) with theirs.
type SubscriberGroup struct {
	Payer Party
	// SBR: Responsibility (P, S, T), GroupNumber (SBR03), FilingCode (SBR09, e.g. CI commercial).
	Responsibility, GroupNumber, FilingCode string
	Subscriber                              Person
	Claims                                  []*Claim
	Dependents                              []*Dependent
}

// Dependent is loop 2000C: a patient who is not the subscriber.
type Dependent struct {
	Relationship string // PAT01: 01 spouse, 19 child, G8 other
	Patient      Person
	Claims       []*Claim
}

// Claim is loop 2300 with its lines.
type Claim struct {
	// ClaimID is Billy's Claim id (not sent); PCN is the patient control number sent in CLM01.
	ClaimID, PCN string
	Total        Amount
	// PlaceOfService and Frequency make CLM05 (POS:B:frequency); Frequency 1 original, 7
	// replacement, 8 void; PriorClaim is the payer's claim number of the claim replaced (REF*F8).
	PlaceOfService, Frequency, PriorClaim string
	Diagnoses                             []string // ICD-10-CM without the dot; the first is principal (ABK)
	Rendering                             *Provider
	Lines                                 []Line
}

// Line is loop 2400: LX, SV1, DTP*472.
type Line struct {
	Code      string // CPT or HCPCS (HC)
	Modifiers []string
	Charge    Amount
	Units     string // a decimal
	Pointers  []int  // 1-based positions in Claim.Diagnoses (at most 4)
	Date      time.Time
}
