package hl7v2

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/iambilly/billy/fhir/jsontree"
)

// The segment-to-FHIR mapping follows HL7's v2-to-FHIR mapping (build.fhir.org/ig/HL7/v2-to-fhir):
// PID → Patient, PV1 → Encounter, IN1/IN2 → Coverage (with the payer's Organization), SCH/AIP →
// Appointment, MRG → the merged Patient's link. Only the elements billing needs are mapped.

// idNamespace derives Billy ids from v2 identifiers: the same identifier always addresses the
// same resource, so a message applied twice, or two messages about one patient, never duplicate.
var idNamespace = uuid.MustParse("5f0c2a8e-3b1d-5c7e-8f4a-9d6b2e1c0a37")

func derivedID(parts ...string) string {
	return uuid.NewSHA1(idNamespace, []byte(strings.Join(parts, "|"))).String()
}

// step is one resource to write.
type step struct {
	typ, id string
	res     map[string]any
	// keepPatient: carry the stored Patient's identifiers and links over (an A08 after an A40).
	keepPatient bool
}

// plan is what a message becomes.
type plan struct {
	steps []step
	// merge: A40, the surviving patient absorbs the merged one.
	merge *mergeStep
}

type mergeStep struct {
	survivor, merged string // Patient ids
	mergedIdent      map[string]any
}

// supported are the message types and events applied, by type.
var supported = map[string][]string{
	"ADT": {"A01", "A03", "A04", "A08", "A31", "A40"},
	"SIU": {"S12", "S13", "S14", "S15"},
}

// mapper turns one message into a plan, collecting field errors.
type mapper struct {
	m    *Message
	h    Header
	loc  *time.Location
	errs []FieldError
}

func (p *mapper) fail(seg string, seq, field, comp int, code, text string) {
	p.errs = append(p.errs, FieldError{Segment: seg, Seq: seq, Field: field, Component: comp, Code: code, Text: text})
}

// build maps the message; errs non-empty means AE (nothing applies).
func build(m *Message, h Header, loc *time.Location) (*plan, []FieldError) {
	p := &mapper{m: m, h: h, loc: loc}
	pl := &plan{}
	// ADT and SIU (the types the listener accepts) both carry the patient in PID.
	pid := m.Seg("PID")
	if pid == nil {
		p.fail("PID", 1, 0, 0, "100", "the PID segment is missing")
		return nil, p.errs
	}
	patID, pat := p.patient(pid)
	if pat == nil {
		return nil, p.errs
	}
	pl.steps = append(pl.steps, step{typ: "Patient", id: patID, res: pat, keepPatient: true})
	switch h.Type {
	case "ADT":
		switch h.Event {
		case "A31":
		case "A40":
			mrg := m.Seg("MRG")
			if mrg == nil {
				p.fail("MRG", 1, 0, 0, "100", "the MRG segment is missing")
				return nil, p.errs
			}
			val, sys := m.Get(mrg, 1, 1), p.authority(mrg, 1)
			if val == "" {
				p.fail("MRG", 1, 1, 1, "101", "MRG-1 (prior patient identifier) is required")
				return nil, p.errs
			}
			merged := derivedID("Patient", sys, val)
			if merged == patID {
				p.fail("MRG", 1, 1, 1, "102", "MRG-1 names the surviving patient itself")
				return nil, p.errs
			}
			pl.merge = &mergeStep{survivor: patID, merged: merged, mergedIdent: map[string]any{"system": sys, "value": val}}
		default:
			if enc := p.encounter(patID); enc != nil {
				pl.steps = append(pl.steps, *enc)
			}
			pl.steps = append(pl.steps, p.coverages(patID)...)
		}
	case "SIU":
		if app := p.appointment(patID); app != nil {
			pl.steps = append(pl.steps, *app)
		}
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return pl, nil
}

var systemRE = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// authority is the identifier system of a CX field's first repetition: its assigning authority
// (CX-4), else the sending facility.
func (p *mapper) authority(s *Segment, field int) string {
	a := p.m.Get(s, field, 4)
	if a == "" {
		a = p.h.SendingFacility
	}
	if a == "" {
		a = p.h.SendingApp
	}
	return "urn:billy:hl7:" + strings.ToLower(systemRE.ReplaceAllString(a, "-"))
}

func (p *mapper) patient(pid *Segment) (string, map[string]any) {
	m := p.m
	// PID-3 holds the identifiers: the first one keys the patient.
	if m.Get(pid, 3, 1) == "" {
		p.fail("PID", 1, 3, 1, "101", "PID-3 (patient identifier list) is required")
		return "", nil
	}
	var idents []any
	for r := range m.Reps(pid, 3) {
		v := m.GetRep(pid, 3, r, 1)
		if v == "" {
			continue
		}
		a := m.GetRep(pid, 3, r, 4)
		if a == "" {
			a = p.h.SendingFacility
		}
		id := map[string]any{"system": "urn:billy:hl7:" + strings.ToLower(systemRE.ReplaceAllString(a, "-")), "value": v}
		if t := m.GetRep(pid, 3, r, 5); t != "" {
			id["type"] = map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": t}}}
		}
		idents = append(idents, id)
	}
	sys := p.authority(pid, 3)
	patID := derivedID("Patient", sys, m.Get(pid, 3, 1))
	pat := map[string]any{"resourceType": "Patient", "identifier": idents, "active": true}
	var names []any
	for r := range m.Reps(pid, 5) {
		n := map[string]any{}
		if f := m.GetRep(pid, 5, r, 1); f != "" {
			n["family"] = f
		}
		var given []any
		for _, c := range []int{2, 3} {
			if g := m.GetRep(pid, 5, r, c); g != "" {
				given = append(given, g)
			}
		}
		if len(given) > 0 {
			n["given"] = given
		}
		if len(n) > 0 {
			names = append(names, n)
		}
	}
	if len(names) > 0 {
		pat["name"] = names
	}
	if v := m.Get(pid, 7, 1); v != "" {
		d, ok := hl7Date(v)
		if !ok {
			p.fail("PID", 1, 7, 1, "102", "PID-7 (date of birth) is not a date (YYYYMMDD)")
		} else {
			pat["birthDate"] = d
		}
	}
	if v := m.Get(pid, 8, 1); v != "" {
		g, ok := map[string]string{"M": "male", "F": "female", "O": "other", "U": "unknown", "A": "other", "N": "unknown"}[v]
		if !ok {
			p.fail("PID", 1, 8, 1, "103", "PID-8 (administrative sex) is not in table 0001")
		} else {
			pat["gender"] = g
		}
	}
	if line := m.Get(pid, 11, 1); line != "" {
		a := map[string]any{"line": []any{line}}
		for k, c := range map[string]int{"city": 3, "state": 4, "postalCode": 5, "country": 6} {
			if v := m.Get(pid, 11, c); v != "" {
				a[k] = v
			}
		}
		pat["address"] = []any{a}
	}
	if v := m.Get(pid, 13, 1); v != "" {
		pat["telecom"] = []any{map[string]any{"system": "phone", "value": v, "use": "home"}}
	}
	if v := m.Get(pid, 30, 1); v == "Y" {
		if dt := m.Get(pid, 29, 1); dt != "" {
			if t, ok := p.dateTime(dt); ok {
				pat["deceasedDateTime"] = t
			}
		} else {
			pat["deceasedBoolean"] = true
		}
	}
	return patID, pat
}

func (p *mapper) encounter(patID string) *step {
	m := p.m
	pv1 := m.Seg("PV1")
	if pv1 == nil {
		if p.h.Event == "A08" {
			return nil
		}
		p.fail("PV1", 1, 0, 0, "100", "the PV1 segment is missing")
		return nil
	}
	visit := m.Get(pv1, 19, 1)
	if visit == "" {
		p.fail("PV1", 1, 19, 1, "101", "PV1-19 (visit number) is required")
		return nil
	}
	sys := p.authority(pv1, 19)
	class, ok := map[string]string{"I": "IMP", "O": "AMB", "E": "EMER", "P": "PRENC", "R": "AMB", "B": "AMB", "": "AMB"}[m.Get(pv1, 2, 1)]
	if !ok {
		p.fail("PV1", 1, 2, 1, "103", "PV1-2 (patient class) is not in table 0004")
		return nil
	}
	enc := map[string]any{
		"resourceType": "Encounter",
		"identifier":   []any{map[string]any{"system": sys, "value": visit, "use": "official"}},
		"class":        map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class},
		"subject":      map[string]any{"reference": "Patient/" + patID},
	}
	period := map[string]any{}
	if v := m.Get(pv1, 44, 1); v != "" {
		if t, ok := p.dateTime(v); ok {
			period["start"] = t
		} else {
			p.fail("PV1", 1, 44, 1, "102", "PV1-44 (admit date/time) is not a date/time")
		}
	}
	if v := m.Get(pv1, 45, 1); v != "" {
		if t, ok := p.dateTime(v); ok {
			period["end"] = t
		} else {
			p.fail("PV1", 1, 45, 1, "102", "PV1-45 (discharge date/time) is not a date/time")
		}
	}
	if len(period) > 0 {
		enc["period"] = period
	}
	switch {
	case p.h.Event == "A03" || period["end"] != nil:
		enc["status"] = "finished"
	case p.h.Event == "A04":
		enc["status"] = "arrived"
	default:
		enc["status"] = "in-progress"
	}
	if f := m.Get(pv1, 7, 2); f != "" {
		name := strings.TrimSpace(m.Get(pv1, 7, 3) + " " + f)
		enc["participant"] = []any{map[string]any{
			"type":       []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}}}},
			"individual": map[string]any{"display": name},
		}}
	}
	return &step{typ: "Encounter", id: derivedID("Encounter", sys, visit), res: enc}
}

func (p *mapper) coverages(patID string) []step {
	m := p.m
	var out []step
	in2s := m.All("IN2")
	for i, in1 := range m.All("IN1") {
		company := m.Get(in1, 3, 1)
		if company == "" {
			p.fail("IN1", i+1, 3, 1, "101", "IN1-3 (insurance company id) is required")
			continue
		}
		orgID := derivedID("Organization", "insurer", company)
		org := map[string]any{"resourceType": "Organization", "active": true,
			"identifier": []any{map[string]any{"system": "urn:billy:hl7:insurer", "value": company}},
			"type":       []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "ins"}}}}}
		if n := m.Get(in1, 4, 1); n != "" {
			org["name"] = n
		}
		out = append(out, step{typ: "Organization", id: orgID, res: org})
		plan := m.Get(in1, 2, 1)
		policy := m.Get(in1, 36, 1)
		cov := map[string]any{"resourceType": "Coverage", "status": "active",
			"beneficiary": map[string]any{"reference": "Patient/" + patID},
			"payor":       []any{map[string]any{"reference": "Organization/" + orgID}}}
		if policy != "" {
			cov["subscriberId"] = policy
		}
		if plan != "" {
			cov["class"] = []any{map[string]any{"type": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}}}, "value": plan}}
		}
		if rel := m.Get(in1, 17, 1); rel != "" {
			code, ok := map[string]string{"SEL": "self", "SPO": "spouse", "CHD": "child", "DOM": "common", "EME": "other", "OTH": "other", "PAR": "parent"}[rel]
			if !ok {
				p.fail("IN1", i+1, 17, 1, "103", "IN1-17 (insured's relationship to patient) is not in table 0063")
				continue
			}
			cov["relationship"] = map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": code}}}
		}
		period := map[string]any{}
		for k, f := range map[string]int{"start": 12, "end": 13} {
			if v := m.Get(in1, f, 1); v != "" {
				d, ok := hl7Date(v)
				if !ok {
					p.fail("IN1", i+1, f, 1, "102", fmt.Sprintf("IN1-%d is not a date (YYYYMMDD)", f))
					continue
				}
				period[k] = d
			}
		}
		if len(period) > 0 {
			cov["period"] = period
		}
		if i < len(in2s) {
			// IN2-61: the patient's member number at the payer.
			if mb := m.Get(in2s[i], 61, 1); mb != "" {
				cov["identifier"] = []any{map[string]any{"type": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}}}, "value": mb}}
			}
		}
		out = append(out, step{typ: "Coverage", id: derivedID("Coverage", patID, company, plan, policy), res: cov})
	}
	return out
}

func (p *mapper) appointment(patID string) *step {
	m := p.m
	sch := m.Seg("SCH")
	if sch == nil {
		p.fail("SCH", 1, 0, 0, "100", "the SCH segment is missing")
		return nil
	}
	idField := 2
	id := m.Get(sch, 2, 1)
	if id == "" {
		idField, id = 1, m.Get(sch, 1, 1)
	}
	if id == "" {
		p.fail("SCH", 1, 2, 1, "101", "SCH-2 (filler appointment id) or SCH-1 (placer appointment id) is required")
		return nil
	}
	app := map[string]any{"resourceType": "Appointment",
		"identifier":  []any{map[string]any{"system": p.authority(sch, idField), "value": id}},
		"participant": []any{map[string]any{"actor": map[string]any{"reference": "Patient/" + patID}, "status": "accepted"}}}
	status := "booked"
	if p.h.Event == "S15" {
		status = "cancelled"
	}
	app["status"] = status
	startRaw := m.Get(sch, 11, 4)
	field := 11
	if startRaw == "" {
		if ais := m.Seg("AIS"); ais != nil {
			startRaw, field = m.Get(ais, 4, 1), 4
		}
	}
	if startRaw != "" {
		start, ok := p.instant(startRaw)
		if !ok {
			seg := "SCH"
			if field == 4 {
				seg = "AIS"
			}
			p.fail(seg, 1, field, 4, "102", "the appointment start is not a date/time")
			return nil
		}
		app["start"] = start.Format(time.RFC3339)
		var end time.Time
		if e := m.Get(sch, 11, 5); e != "" {
			if end, ok = p.instant(e); !ok {
				p.fail("SCH", 1, 11, 5, "102", "the appointment end is not a date/time")
				return nil
			}
		} else if d := m.Get(sch, 9, 1); d != "" {
			n, err := strconv.Atoi(d)
			if err != nil || n <= 0 || n > 24*60 {
				p.fail("SCH", 1, 9, 1, "102", "SCH-9 (appointment duration) is not a number of minutes")
				return nil
			}
			end = start.Add(time.Duration(n) * time.Minute)
		}
		if !end.IsZero() {
			app["end"] = end.Format(time.RFC3339)
			app["minutesDuration"] = int(end.Sub(start).Minutes())
		}
	}
	if status == "booked" && (app["start"] == nil || app["end"] == nil) {
		p.fail("SCH", 1, 11, 0, "101", "a booked appointment needs a start and an end (SCH-11, or SCH-9 duration)")
		return nil
	}
	if r := m.Get(sch, 7, 2); r != "" {
		app["reasonCode"] = []any{map[string]any{"text": r}}
	} else if r := m.Get(sch, 7, 1); r != "" {
		app["reasonCode"] = []any{map[string]any{"text": r}}
	}
	for _, aip := range m.All("AIP") {
		if f := m.Get(aip, 3, 2); f != "" {
			name := strings.TrimSpace(m.Get(aip, 3, 3) + " " + f)
			parts := app["participant"].([]any)
			app["participant"] = append(parts, map[string]any{"actor": map[string]any{"display": name}, "status": "accepted"})
		}
	}
	return &step{typ: "Appointment", id: derivedID("Appointment", p.authority(sch, idField), id), res: app}
}

// hl7Date turns a DT (YYYY, YYYYMM or YYYYMMDD; a DTM's date part) into a FHIR date.
func hl7Date(v string) (string, bool) {
	if len(v) > 8 {
		v = v[:8]
	}
	layouts := map[int][2]string{4: {"2006", "2006"}, 6: {"200601", "2006-01"}, 8: {"20060102", "2006-01-02"}}
	l, ok := layouts[len(v)]
	if !ok {
		return "", false
	}
	t, err := time.Parse(l[0], v)
	if err != nil {
		return "", false
	}
	return t.Format(l[1]), true
}

// dateTime turns a DTM into a FHIR dateTime (a bare date stays a date).
func (p *mapper) dateTime(v string) (string, bool) {
	if len(v) <= 8 {
		return hl7Date(v)
	}
	t, ok := p.instant(v)
	if !ok {
		return "", false
	}
	return t.Format(time.RFC3339), true
}

// instant reads a DTM with at least minutes: YYYYMMDDHHMM[SS[.S+]][+/-ZZZZ], in the listener's
// time zone when it has none.
func (p *mapper) instant(v string) (time.Time, bool) {
	zone := ""
	if i := strings.IndexAny(v, "+-"); i >= 0 {
		v, zone = v[:i], v[i:]
	}
	if i := strings.IndexByte(v, '.'); i >= 0 {
		v = v[:i]
	}
	var layout string
	switch len(v) {
	case 8:
		layout = "20060102"
	case 12:
		layout = "200601021504"
	case 14:
		layout = "20060102150405"
	default:
		return time.Time{}, false
	}
	if zone != "" {
		if len(zone) != 5 {
			return time.Time{}, false
		}
		t, err := time.Parse(layout+"-0700", v+zone)
		return t, err == nil
	}
	t, err := time.ParseInLocation(layout, v, p.loc)
	return t, err == nil
}

// tree turns a mapped resource into a JSON tree.
func tree(res map[string]any) (*jsontree.Value, error) {
	b, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	return jsontree.Parse(b)
}
