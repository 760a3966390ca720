package smart

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// PatientDirectory is what the patient picker and the consent page need from the FHIR store.
type PatientDirectory interface {
	// FindPatients lists patients whose name starts with name (all when empty), at most limit.
	FindPatients(ctx context.Context, name string, limit int) ([]PatientSummary, error)
	// Patient returns the summary of Patient/id; found is false when it does not exist or is
	// deleted.
	Patient(ctx context.Context, id string) (p PatientSummary, found bool, err error)
}

// PatientSummary is what a clinician needs to tell one patient from another: one row of the
// patient picker, and the patient named on the consent page.
type PatientSummary struct {
	ID        string
	Name      string // for display: the official (else usual, else first) name
	BirthDate string // as recorded: YYYY, YYYY-MM or YYYY-MM-DD
	Sex       string // administrative gender: male, female, other or unknown
	// MRN is the medical record number: the identifier of type MR (HL7 v2 table 0203), else the
	// first identifier.
	MRN string
}

// v2IdentifierTypes is the code system of identifier types (MR: medical record number).
const v2IdentifierTypes = "http://terminology.hl7.org/CodeSystem/v2-0203"

// SummarizePatient reads a PatientSummary from a Patient resource's JSON, for the
// PatientDirectory implementations.
func SummarizePatient(id string, patient []byte) (PatientSummary, error) {
	var p struct {
		Name []struct {
			Use    string   `json:"use"`
			Text   string   `json:"text"`
			Family string   `json:"family"`
			Given  []string `json:"given"`
			Prefix []string `json:"prefix"`
			Suffix []string `json:"suffix"`
		} `json:"name"`
		BirthDate  string `json:"birthDate"`
		Gender     string `json:"gender"`
		Identifier []struct {
			Type struct {
				Coding []struct {
					System string `json:"system"`
					Code   string `json:"code"`
				} `json:"coding"`
			} `json:"type"`
			Value string `json:"value"`
		} `json:"identifier"`
	}
	if err := json.Unmarshal(patient, &p); err != nil {
		return PatientSummary{}, fmt.Errorf("patient %s: %w", id, err)
	}
	s := PatientSummary{ID: id, BirthDate: p.BirthDate, Sex: p.Gender}
	rank := func(use string) int {
		switch use {
		case "official":
			return 2
		case "usual":
			return 1
		case "old":
			return -1
		}
		return 0
	}
	best := -1
	for i, n := range p.Name {
		if best < 0 || rank(n.Use) > rank(p.Name[best].Use) {
			best = i
		}
	}
	if best >= 0 {
		n := p.Name[best]
		s.Name = strings.TrimSpace(n.Text)
		if s.Name == "" {
			parts := append(append(slices.Clone(n.Prefix), n.Given...), n.Family)
			s.Name = strings.Join(strings.Fields(strings.Join(append(parts, n.Suffix...), " ")), " ")
		}
	}
	for _, id := range p.Identifier {
		for _, c := range id.Type.Coding {
			if c.Code == "MR" && (c.System == v2IdentifierTypes || c.System == "") && id.Value != "" {
				s.MRN = id.Value
				return s, nil
			}
		}
	}
	for _, id := range p.Identifier {
		if id.Value != "" {
			s.MRN = id.Value
			break
		}
	}
	return s, nil
}
