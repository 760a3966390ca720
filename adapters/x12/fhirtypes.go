package x12

import (
	"encoding/json"
	"strings"
)

// Typed views of the FHIR R4 resources an 837P is built from and an 835 writes: only the elements
// used, decoded from (and encoded to) FHIR JSON. Names follow the FHIR elements; encoding/json
// matches them case-insensitively on input, and the json tags give FHIR's spelling on output.

type reference struct {
	Reference  string      `json:"reference,omitempty"`
	Identifier *identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type codeableConcept struct {
	Coding []coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// code returns the code of the first coding of system (any system when system is "").
func (c *codeableConcept) code(systems ...string) string {
	if c == nil {
		return ""
	}
	for _, cd := range c.Coding {
		if len(systems) == 0 {
			return cd.Code
		}
		for _, s := range systems {
			if cd.System == s {
				return cd.Code
			}
		}
	}
	return ""
}

type identifier struct {
	Use    string           `json:"use,omitempty"`
	Type   *codeableConcept `json:"type,omitempty"`
	System string           `json:"system,omitempty"`
	Value  string           `json:"value,omitempty"`
}

type humanName struct {
	Use    string   `json:"use,omitempty"`
	Text   string   `json:"text,omitempty"`
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
}

type address struct {
	Use        string   `json:"use,omitempty"`
	Line       []string `json:"line,omitempty"`
	City       string   `json:"city,omitempty"`
	State      string   `json:"state,omitempty"`
	PostalCode string   `json:"postalCode,omitempty"`
	Country    string   `json:"country,omitempty"`
}

type contactPoint struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value,omitempty"`
}

type money struct {
	Value    *json.Number `json:"value,omitempty"`
	Currency string       `json:"currency,omitempty"`
}

type period struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

type quantity struct {
	Value *json.Number `json:"value,omitempty"`
}

type meta struct {
	Tag []coding `json:"tag,omitempty"`
}

// person is Patient, RelatedPerson and Practitioner: the parts they share.
type person struct {
	ResourceType string         `json:"resourceType"`
	ID           string         `json:"id"`
	Identifier   []identifier   `json:"identifier"`
	Name         []humanName    `json:"name"`
	Telecom      []contactPoint `json:"telecom"`
	Gender       string         `json:"gender"`
	BirthDate    string         `json:"birthDate"`
	Address      []address      `json:"address"`
}

// official is the name to bill under: the official one, else the first.
func (p *person) official() *humanName {
	for i := range p.Name {
		if p.Name[i].Use == "official" {
			return &p.Name[i]
		}
	}
	if len(p.Name) > 0 {
		return &p.Name[0]
	}
	return nil
}

// organization is Organization.
type organization struct {
	ResourceType string         `json:"resourceType"`
	ID           string         `json:"id"`
	Identifier   []identifier   `json:"identifier"`
	Name         string         `json:"name"`
	Telecom      []contactPoint `json:"telecom"`
	Address      []address      `json:"address"`
}

// coverage is Coverage.
type coverage struct {
	ResourceType string            `json:"resourceType"`
	ID           string            `json:"id"`
	Status       string            `json:"status"`
	Identifier   []identifier      `json:"identifier"`
	Type         *codeableConcept  `json:"type"`
	Subscriber   *reference        `json:"subscriber"`
	SubscriberID string            `json:"subscriberId"`
	Beneficiary  reference         `json:"beneficiary"`
	Relationship *codeableConcept  `json:"relationship"`
	Payor        []reference       `json:"payor"`
	Class        []coverageClass   `json:"class"`
	Order        *json.Number      `json:"order"`
	Extension    []json.RawMessage `json:"extension"`
}

type coverageClass struct {
	Type  codeableConcept `json:"type"`
	Value string          `json:"value"`
}

// claim is Claim.
type claim struct {
	ResourceType   string           `json:"resourceType"`
	ID             string           `json:"id"`
	Meta           *json.RawMessage `json:"meta"`
	Status         string           `json:"status"`
	Type           codeableConcept  `json:"type"`
	Use            string           `json:"use"`
	Patient        reference        `json:"patient"`
	BillablePeriod *period          `json:"billablePeriod"`
	Insurer        *reference       `json:"insurer"`
	Provider       reference        `json:"provider"`
	Related        []struct {
		Claim        *reference       `json:"claim"`
		Relationship *codeableConcept `json:"relationship"`
		Reference    *identifier      `json:"reference"`
	} `json:"related"`
	CareTeam []struct {
		Sequence int              `json:"sequence"`
		Provider reference        `json:"provider"`
		Role     *codeableConcept `json:"role"`
	} `json:"careTeam"`
	Diagnosis []struct {
		Sequence                 int              `json:"sequence"`
		DiagnosisCodeableConcept *codeableConcept `json:"diagnosisCodeableConcept"`
	} `json:"diagnosis"`
	Insurance []struct {
		Sequence int       `json:"sequence"`
		Focal    bool      `json:"focal"`
		Coverage reference `json:"coverage"`
	} `json:"insurance"`
	Item  []claimItem `json:"item"`
	Total *money      `json:"total"`
}

type claimItem struct {
	Sequence                int               `json:"sequence"`
	CareTeamSequence        []int             `json:"careTeamSequence"`
	DiagnosisSequence       []int             `json:"diagnosisSequence"`
	ProductOrService        codeableConcept   `json:"productOrService"`
	Modifier                []codeableConcept `json:"modifier"`
	ServicedDate            string            `json:"servicedDate"`
	ServicedPeriod          *period           `json:"servicedPeriod"`
	LocationCodeableConcept *codeableConcept  `json:"locationCodeableConcept"`
	Quantity                *quantity         `json:"quantity"`
	UnitPrice               *money            `json:"unitPrice"`
	Net                     *money            `json:"net"`
}

// splitRef splits a local reference ("Type/id", or the same under base) into type and id; both
// are empty for anything else.
func splitRef(r *reference, base string) (string, string) {
	if r == nil {
		return "", ""
	}
	s := r.Reference
	if base != "" {
		s = strings.TrimPrefix(s, base+"/")
	}
	t, id, ok := strings.Cut(s, "/")
	if !ok || t == "" || id == "" || strings.Contains(id, "/") {
		return "", ""
	}
	return t, id
}
