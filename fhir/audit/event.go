package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Actions, as AuditEvent.action.
const (
	ActionCreate  = "C"
	ActionRead    = "R"
	ActionUpdate  = "U"
	ActionDelete  = "D"
	ActionExecute = "E"
)

// Outcomes, as AuditEvent.outcome.
const (
	OutcomeSuccess = "0"
	OutcomeMinor   = "4" // the request failed (4xx): refused, not found, invalid
	OutcomeSerious = "8" // the server failed (5xx)
)

// Kinds of event, as AuditEvent.type.
const (
	// KindREST is a FHIR RESTful interaction (type rest; subtype the interaction).
	KindREST = "rest"
	// KindAuth is a login, token or consent decision (DICOM 110114 User Authentication).
	KindAuth = "auth"
	// KindPipeline is an action of the background pipeline (transcription, coding).
	KindPipeline = "pipeline"
	// KindEMR is a call Billy made to a connected EMR (adapters/emr): type rest, subtype the call's
	// purpose (emr-sync, emr-writeback, ...).
	KindEMR = "emr"
)

// Agent is who acted.
type Agent struct {
	// ClientID is the OAuth client, "" when authorization is off.
	ClientID string
	// User is the fhirUser ("Practitioner/1"), Subject the token's subject.
	User, Subject string
	// Address is the network address the request came from.
	Address string
}

// Entity is one resource an event touched: a resource (Type and ID, Version when known) or a query.
type Entity struct {
	Type, ID string
	Version  int
	// Query is the query string of a search ("name=smith&_count=10"), for the query entity.
	Query string
	// Description says what the entity was (an operation's name, a Bundle entry's interaction).
	Description string
}

// Event is one audited access. Recorded, ID and the chain fields are set when it is appended.
type Event struct {
	Kind    string
	Subtype string // the interaction (read, search-type, ...), or an event name (login, token)
	Action  string
	Outcome string
	// OutcomeDesc says why it failed: an HTTP status or an error code, never request content.
	OutcomeDesc string
	Agent       Agent
	// PurposeOfUse are v3 PurposeOfUse codes (TREAT, HPAYMT...), when the request gave them.
	PurposeOfUse []string
	Entities     []Entity
	// Patients are the ids of the patients whose data the event touched.
	Patients []string
	// RequestID ties the event to the request's log lines.
	RequestID string
	// Recorded is when it happened; zero means when it is appended.
	Recorded time.Time
}

// AddPatient notes a patient the event touched (once).
func (e *Event) AddPatient(id string) {
	if id != "" && !slices.Contains(e.Patients, id) {
		e.Patients = append(e.Patients, id)
	}
}

// agents are the strings the agent search parameter matches: "client|ID", the fhirUser reference
// and "subject|SUB".
func (e *Event) agents() []string {
	var out []string
	if a := e.Agent; a.ClientID != "" {
		out = append(out, "client|"+a.ClientID)
	}
	if e.Agent.User != "" {
		out = append(out, e.Agent.User)
	}
	if e.Agent.Subject != "" {
		out = append(out, "subject|"+e.Agent.Subject)
	}
	return out
}

// entities are the "Type/id" strings of the resources touched.
func (e *Event) entities() []string {
	var out []string
	for _, en := range e.Entities {
		if en.Type != "" && en.ID != "" {
			s := en.Type + "/" + en.ID
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// Code systems of the AuditEvent shape.
const (
	sysEventType   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	sysInteraction = "http://hl7.org/fhir/restful-interaction"
	sysDCM         = "http://dicom.nema.org/resources/ontology/DCM"
	sysBilly       = "urn:billy:audit"
	sysEntityType  = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	sysObjectRole  = "http://terminology.hl7.org/CodeSystem/object-role"
	sysSourceType  = "http://terminology.hl7.org/CodeSystem/security-source-type"
	sysPurpose     = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	sysAgentRole   = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
	sysClient      = "urn:billy:oauth-client"
)

// restInteractions are the subtypes that are codes of restful-interaction.
var restInteractions = map[string]bool{
	"read": true, "vread": true, "update": true, "patch": true, "delete": true, "history": true,
	"history-instance": true, "history-type": true, "history-system": true, "create": true, "search": true,
	"search-type": true, "search-system": true, "capabilities": true, "transaction": true, "batch": true, "operation": true,
}

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type concept struct {
	Coding []coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

type identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type reference struct {
	Reference  string      `json:"reference,omitempty"`
	Identifier *identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

type network struct {
	Address string `json:"address"`
	Type    string `json:"type"`
}

type agentJSON struct {
	Type      *concept   `json:"type,omitempty"`
	Who       *reference `json:"who,omitempty"`
	AltID     string     `json:"altId,omitempty"`
	Requestor bool       `json:"requestor"`
	Network   *network   `json:"network,omitempty"`
	Purpose   []concept  `json:"purposeOfUse,omitempty"`
}

type entityJSON struct {
	What        *reference `json:"what,omitempty"`
	Type        *coding    `json:"type,omitempty"`
	Role        *coding    `json:"role,omitempty"`
	Description string     `json:"description,omitempty"`
	Query       string     `json:"query,omitempty"`
}

type sourceJSON struct {
	Observer reference `json:"observer"`
	Type     []coding  `json:"type"`
}

type eventJSON struct {
	ResourceType string       `json:"resourceType"`
	ID           string       `json:"id"`
	Type         coding       `json:"type"`
	Subtype      []coding     `json:"subtype,omitempty"`
	Action       string       `json:"action,omitempty"`
	Recorded     string       `json:"recorded"`
	Outcome      string       `json:"outcome,omitempty"`
	OutcomeDesc  string       `json:"outcomeDesc,omitempty"`
	Purpose      []concept    `json:"purposeOfEvent,omitempty"`
	Agent        []agentJSON  `json:"agent"`
	Source       sourceJSON   `json:"source"`
	Entity       []entityJSON `json:"entity,omitempty"`
}

// Resource is e as a FHIR R4 AuditEvent, shaped as IHE Basic Audit Log Patterns: type rest with the
// interaction as subtype (or DICOM User Authentication for logins and tokens), the client as the
// source agent with the network address and the user as the requestor, the resources and the query
// as entities, and each patient as an entity with role Patient.
func (e *Event) Resource(id string) []byte {
	ev := eventJSON{ResourceType: "AuditEvent", ID: id, Action: e.Action, Recorded: formatInstant(e.Recorded),
		Outcome: e.Outcome, OutcomeDesc: e.OutcomeDesc}
	switch e.Kind {
	case KindAuth:
		ev.Type = coding{System: sysDCM, Code: "110114", Display: "User Authentication"}
		ev.Subtype = []coding{{System: sysBilly, Code: e.Subtype}}
	case KindPipeline:
		ev.Type = coding{System: sysDCM, Code: "110100", Display: "Application Activity"}
		ev.Subtype = []coding{{System: sysBilly, Code: e.Subtype}}
	default:
		ev.Type = coding{System: sysEventType, Code: "rest", Display: "Restful Operation"}
		if restInteractions[e.Subtype] {
			ev.Subtype = []coding{{System: sysInteraction, Code: e.Subtype}}
		} else {
			ev.Subtype = []coding{{System: sysBilly, Code: e.Subtype}}
		}
	}
	var purpose []concept
	for _, p := range e.PurposeOfUse {
		purpose = append(purpose, concept{Coding: []coding{{System: sysPurpose, Code: p}}})
	}
	ev.Purpose = purpose
	a := e.Agent
	client := agentJSON{Type: &concept{Coding: []coding{{System: sysDCM, Code: "110153", Display: "Source Role ID"}}},
		Requestor: a.User == "" && a.Subject == ""}
	if a.ClientID != "" {
		client.Who = &reference{Identifier: &identifier{System: sysClient, Value: a.ClientID}}
	} else {
		client.Who = &reference{Display: "unauthenticated client"}
	}
	if a.Address != "" {
		client.Network = &network{Address: a.Address, Type: networkType(a.Address)}
	}
	if client.Requestor {
		client.Purpose = purpose
	}
	ev.Agent = append(ev.Agent, client)
	if a.User != "" || a.Subject != "" {
		user := agentJSON{Type: &concept{Coding: []coding{{System: sysAgentRole, Code: "humanuser", Display: "human user"}}},
			Requestor: true, AltID: a.Subject, Purpose: purpose}
		if a.User != "" {
			user.Who = &reference{Reference: a.User}
		}
		ev.Agent = append(ev.Agent, user)
	}
	ev.Source = sourceJSON{Observer: reference{Display: "Billy FHIR server"},
		Type: []coding{{System: sysSourceType, Code: "4", Display: "Application Server"}}}
	for _, en := range e.Entities {
		j := entityJSON{Type: &coding{System: sysEntityType, Code: "2", Display: "System Object"}, Description: en.Description}
		switch {
		case en.Query != "":
			j.Role = &coding{System: sysObjectRole, Code: "24", Display: "Query"}
			j.Query = base64.StdEncoding.EncodeToString([]byte(en.Query))
			if en.Type != "" {
				j.Description = strings.TrimSpace(en.Type + " " + en.Description)
			}
		case en.Type != "" && en.ID != "":
			ref := en.Type + "/" + en.ID
			if en.Version > 0 {
				ref += "/_history/" + strconv.Itoa(en.Version)
			}
			j.What = &reference{Reference: ref}
			j.Role = &coding{System: sysObjectRole, Code: "4", Display: "Domain Resource"}
		case en.Type != "":
			j.What = &reference{Display: en.Type}
		}
		if j.What == nil && j.Query == "" && j.Description == "" {
			continue
		}
		ev.Entity = append(ev.Entity, j)
	}
	for _, p := range e.Patients {
		ev.Entity = append(ev.Entity, entityJSON{What: &reference{Reference: "Patient/" + p},
			Type: &coding{System: sysEntityType, Code: "1", Display: "Person"},
			Role: &coding{System: sysObjectRole, Code: "1", Display: "Patient"}})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(ev) // only strings, bools and slices of them: cannot fail
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// networkType is AuditEvent.agent.network.type: 2 for an IP address, 1 for a machine name.
func networkType(addr string) string {
	for _, c := range addr {
		if (c < '0' || c > '9') && c != '.' && c != ':' && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return "1"
		}
	}
	return "2"
}

func formatInstant(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
}

// PatientsIn returns the ids of the patients a stored resource's JSON references ("Patient/ID" in a
// reference, relative or under base), and its own id when it is a Patient: which patients' data a
// read handed out. It scans the bytes instead of parsing them, so that auditing a search of a
// hundred resources costs little; the canonical JSON Billy stores has no whitespace to skip.
func PatientsIn(typ, id string, content []byte, base string, add func(string)) {
	if typ == "Patient" {
		add(id)
	}
	const key = `"reference":"`
	rest := content
	for {
		i := bytes.Index(rest, []byte(key))
		if i < 0 {
			return
		}
		rest = rest[i+len(key):]
		end := bytes.IndexByte(rest, '"')
		if end < 0 {
			return
		}
		ref := string(rest[:end])
		rest = rest[end:]
		if base != "" {
			ref = strings.TrimPrefix(ref, base+"/")
		}
		if p, ok := strings.CutPrefix(ref, "Patient/"); ok {
			if k := strings.IndexByte(p, '/'); k >= 0 {
				p = p[:k]
			}
			if validID(p) {
				add(p)
			}
		}
	}
}

func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
