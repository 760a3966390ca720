package pipeline

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/pipeline/coder"
	"github.com/iambilly/billy/pipeline/codes"
)

// maxTranscript bounds the transcript a coding run reads (a day of dictation is far less).
const maxTranscript = 4 << 20

// errNoCodes fails coding runs until ICD-10-CM is imported: the guards would drop every code.
var errNoCodes = fmt.Errorf("%w: no ICD-10-CM code set is imported: run billy codes import icd10cm FILE (see README)", errPermanent)

// errPermanent marks the pipeline's own errors that retrying will not fix.
var errPermanent = errors.New("permanent")

// coderCache holds the coder built over the code sets of a given import state.
type coderCache struct {
	mu  sync.Mutex
	key string // the current versions of the code systems
	c   coder.Coder
}

// coder returns the coder to use: Coder when set, else one NewCoder builds over the currently
// imported code sets, built again when an import changes them.
func (p *Pipeline) coder(ctx context.Context) (coder.Coder, error) {
	if p.Coder != nil {
		return p.Coder, nil
	}
	if p.NewCoder == nil || p.Codes == nil {
		return nil, fmt.Errorf("%w: no coder is configured", errPermanent)
	}
	versions, err := p.Codes.Versions(ctx)
	if err != nil {
		return nil, err
	}
	var key strings.Builder
	icd := false
	for _, v := range versions {
		if v.Current {
			fmt.Fprintf(&key, "%s@%s/%d ", v.System, v.Version, v.Codes)
			icd = icd || v.System == codes.ICD10CM
		}
	}
	if !icd {
		return nil, errNoCodes
	}
	p.coders.mu.Lock()
	defer p.coders.mu.Unlock()
	if p.coders.c != nil && p.coders.key == key.String() {
		return p.coders.c, nil
	}
	set, err := codes.LoadSet(ctx, p.Pool)
	if err != nil {
		return nil, err
	}
	c, err := p.NewCoder(ctx, set)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errPermanent, err)
	}
	p.coders.key, p.coders.c = key.String(), c
	return c, nil
}

// codeInputs is what the coding stage gathers before coding: the transcript and the context of the
// Claim.
type codeInputs struct {
	doc        string // DocumentReference/id
	transcript string
	patient    string // Patient/id
	birthDate  string
	sex        string
	encounter  string // Encounter/id, "" when unknown
	provider   string // the Claim's provider reference
	coverages  []string
	service    time.Time
	pos        string // CMS place of service
	// established: the patient had another encounter in the three years before this one.
	established bool
}

// handleCode is the coding stage: the run's transcript is coded into diagnoses, procedure lines and
// an E/M level, and a draft Claim is assembled with its Provenance, all in one transaction. Without
// an active Coverage for the patient the run waits on-hold (businessStatus awaiting-coverage) until
// one is written (Hook).
func (p *Pipeline) handleCode(ctx context.Context, t *asynq.Task) error {
	var pl stagePayload
	if err := json.Unmarshal(t.Payload(), &pl); err != nil {
		return fmt.Errorf("payload: %v: %w", err, asynq.SkipRetry)
	}
	var in *codeInputs
	stop := false
	err := p.Store.InTx(ctx, func(tx *store.Tx) error {
		r, err := p.lockRun(ctx, tx, pl.Task)
		if err != nil {
			return err
		}
		if r.finished() {
			stop = true
			return nil
		}
		if in, err = p.gatherCodeInputs(ctx, tx, r); err != nil {
			return err
		}
		if len(in.coverages) == 0 {
			stop = true
			if r.task["status"] == "on-hold" {
				return nil
			}
			return p.setStatus(ctx, tx, r, "on-hold", "awaiting-coverage",
				"no active Coverage for "+in.patient+": the run resumes when one is created")
		}
		return p.setStatus(ctx, tx, r, "in-progress", "coding", "")
	})
	if err != nil {
		if isPermanent(err) {
			return p.fail(ctx, pl.Task, "coding", err)
		}
		return err
	}
	if stop {
		return nil
	}
	cd, err := p.coder(ctx)
	if err != nil {
		if isPermanent(err) {
			return p.fail(ctx, pl.Task, "coding", err)
		}
		return err
	}
	res, err := cd.Code(ctx, coder.Input{
		Transcript: in.transcript, Patient: coder.Patient{BirthDate: in.birthDate, Sex: in.sex},
		ServiceDate: in.service, Established: in.established, PlaceOfService: in.pos,
	})
	if err != nil {
		if isPermanent(err) {
			return p.fail(ctx, pl.Task, "coding", err)
		}
		return err // transient (an LLM server down); the last attempt fails the run (finishing)
	}
	return p.Store.InTx(ctx, func(tx *store.Tx) error {
		r, err := p.lockRun(ctx, tx, pl.Task)
		if err != nil {
			return err
		}
		if r.finished() {
			return nil
		}
		claim, err := p.recordClaim(ctx, tx, r, in, cd, res)
		if err != nil {
			return err
		}
		r.addOutput("claim", claim)
		r.task["note"] = codingNotes(res)
		if len(r.task["note"].([]any)) == 0 {
			delete(r.task, "note")
		}
		return p.setStatus(ctx, tx, r, "completed", "coded", "")
	})
}

// codingNotes reports on the Task what the coder dropped and how it chose the E/M level.
func codingNotes(res *coder.Result) []any {
	var notes []any
	note := func(s string) { notes = append(notes, map[string]any{"text": s}) }
	if em := res.EM; em != nil {
		s := "E/M " + em.Code + " by " + em.Basis
		if em.MDM != nil {
			s += fmt.Sprintf(" (MDM %s: problems %s, data %s, risk %s)", em.MDM.Level, em.MDM.Problems, em.MDM.Data, em.MDM.Risk)
		}
		if em.Minutes > 0 {
			s += fmt.Sprintf(", %d minutes documented", em.Minutes)
		}
		note(s)
	}
	for _, d := range res.Dropped {
		note("dropped " + d.Code + ": " + d.Reason)
	}
	for _, r := range res.Review {
		note(fmt.Sprintf("review %s (confidence %.2f): %s", r.Code, r.Confidence, r.Reason))
	}
	return notes
}

// gatherCodeInputs reads the transcript and the context of a coding run. It takes the patient's
// coverage lock first, so a Coverage written concurrently is either seen here or sees the run
// on-hold (Hook).
func (p *Pipeline) gatherCodeInputs(ctx context.Context, tx *store.Tx, r *run) (*codeInputs, error) {
	typ, id, ok := resource.ParseReference(r.focus)
	if !ok || typ != "DocumentReference" {
		return nil, fhir.Errorf(fhir.ErrInvalid, "invalid", "the run's focus %q is not a DocumentReference", r.focus)
	}
	dv, err := tx.Read(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if dv.Deleted() {
		return nil, fhir.Errorf(fhir.ErrGone, "deleted", "%s was deleted", r.focus)
	}
	doc, err := jsontree.Parse(dv.Content)
	if err != nil {
		return nil, err
	}
	in := &codeInputs{doc: r.focus, patient: r.subject, encounter: r.encount}
	if in.transcript, err = p.transcriptText(ctx, tx, doc); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(in.patient, "Patient/") {
		return nil, fhir.Errorf(fhir.ErrInvalid, "invalid", "%s has no Patient subject: a Claim needs a patient", r.focus)
	}
	if err := tx.Lock(ctx, "coverage:"+in.patient); err != nil {
		return nil, err
	}
	pt, err := p.readTree(ctx, tx, in.patient)
	if err != nil {
		return nil, fmt.Errorf("the transcript's patient: %w", err)
	}
	in.birthDate, in.sex = pt.GetString("birthDate"), pt.GetString("gender")
	in.service = p.now()
	if d, err := parseDateTime(doc.GetString("date")); err == nil {
		in.service = d
	}
	var enc *jsontree.Value
	if in.encounter != "" {
		if enc, err = p.readTree(ctx, tx, in.encounter); err != nil {
			return nil, fmt.Errorf("the transcript's encounter: %w", err)
		}
		if per := enc.Get("period"); per != nil {
			if d, err := parseDateTime(per.GetString("start")); err == nil {
				in.service = d
			}
		}
		in.pos = placeOfService(enc)
	}
	in.provider = providerOf(enc, doc)
	if in.provider == "" {
		return nil, fhir.Errorf(fhir.ErrInvalid, "invalid",
			"no provider for the Claim: give the Encounter a participant (Practitioner) or serviceProvider, or the DocumentReference an author")
	}
	if in.coverages, err = p.match(ctx, tx, "Coverage", url.Values{"beneficiary": {in.patient}, "status": {"active"}}, 10); err != nil {
		return nil, err
	}
	prior, err := p.match(ctx, tx, "Encounter", url.Values{"subject": {in.patient},
		"date": {"lt" + in.service.Format("2006-01-02"), "ge" + in.service.AddDate(-3, 0, 0).Format("2006-01-02")}}, 2)
	if err != nil {
		return nil, err
	}
	for _, e := range prior {
		if e != in.encounter {
			in.established = true
		}
	}
	return in, nil
}

// readTree reads the current version of a reference ("Type/id").
func (p *Pipeline) readTree(ctx context.Context, tx *store.Tx, ref string) (*jsontree.Value, error) {
	typ, id, ok := resource.ParseReference(ref)
	if !ok {
		return nil, fhir.Errorf(fhir.ErrInvalid, "invalid", "%q is not a reference", ref)
	}
	v, err := tx.Read(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if v.Deleted() {
		return nil, fhir.Errorf(fhir.ErrGone, "deleted", "%s was deleted", ref)
	}
	return jsontree.Parse(v.Content)
}

// transcriptText is the text of a DocumentReference's first text/plain attachment, inline or in a
// Binary.
func (p *Pipeline) transcriptText(ctx context.Context, tx *store.Tx, doc *jsontree.Value) (string, error) {
	for _, c := range items(doc.Get("content")) {
		a := c.Get("attachment")
		if a == nil || !strings.HasPrefix(a.GetString("contentType"), "text/plain") {
			continue
		}
		if data := a.GetString("data"); data != "" {
			b, err := base64.StdEncoding.DecodeString(data)
			if err != nil {
				return "", fhir.Errorf(fhir.ErrInvalid, "invalid", "the transcript attachment is not base64: %v", err)
			}
			return string(b), nil
		}
		if _, id, ok := resource.ParseReference(a.GetString("url")); ok && strings.HasPrefix(a.GetString("url"), "Binary/") {
			return p.binaryText(ctx, tx, id)
		}
	}
	return "", fhir.Errorf(fhir.ErrInvalid, "invalid", "the DocumentReference has no text/plain attachment (inline data or a Binary url) to code")
}

func (p *Pipeline) binaryText(ctx context.Context, tx *store.Tx, id string) (string, error) {
	v, err := tx.Read(ctx, "Binary", id)
	if err != nil {
		return "", err
	}
	b, err := tx.BlobOf(ctx, v)
	if err != nil || b == nil {
		return "", errors.Join(err, fhir.Errorf(fhir.ErrInvalid, "invalid", "Binary/%s has no content", id))
	}
	if p.Blobs == nil {
		return "", fhir.Errorf(fhir.ErrInvalid, "invalid", "Binary content cannot be read without BILLY_MASTER_KEY")
	}
	obj, err := p.Blobs.Open(ctx, b.ID)
	if err != nil {
		return "", err
	}
	defer obj.Close()
	text, err := io.ReadAll(io.LimitReader(obj, maxTranscript+1))
	if err != nil {
		return "", err
	}
	if len(text) > maxTranscript {
		return "", fhir.Errorf(fhir.ErrInvalid, "too-costly", "the transcript in Binary/%s is over %d MiB", id, maxTranscript>>20)
	}
	return string(text), nil
}

// placeOfService maps an Encounter's class to a CMS place-of-service code.
func placeOfService(enc *jsontree.Value) string {
	switch enc.Get("class").GetString("code") {
	case "VR":
		return "02" // telehealth
	case "EMER":
		return "23"
	case "IMP", "ACUTE", "NONAC":
		return "21"
	case "HH":
		return "12"
	}
	return "11" // office
}

// providerOf is the Claim's provider: the Encounter's primary performer or first practitioner,
// else its serviceProvider, else the transcript's first author that is not a device.
func providerOf(enc, doc *jsontree.Value) string {
	if enc != nil {
		var first string
		for _, part := range items(enc.Get("participant")) {
			ref := part.Get("individual").GetString("reference")
			if !strings.HasPrefix(ref, "Practitioner/") && !strings.HasPrefix(ref, "PractitionerRole/") {
				continue
			}
			for _, t := range items(part.Get("type")) {
				for _, c := range items(t.Get("coding")) {
					if c.GetString("code") == "PPRF" {
						return ref
					}
				}
			}
			if first == "" {
				first = ref
			}
		}
		if first != "" {
			return first
		}
		if ref := enc.Get("serviceProvider").GetString("reference"); ref != "" {
			return ref
		}
	}
	for _, a := range items(doc.Get("author")) {
		if ref := a.GetString("reference"); ref != "" && !strings.HasPrefix(ref, "Device/") {
			return ref
		}
	}
	return ""
}

// Claim coding systems.
const (
	claimTypeSystem = "http://terminology.hl7.org/CodeSystem/claim-type"
	prioritySystem  = "http://terminology.hl7.org/CodeSystem/processpriority"
	// FeeSchedule is the identifier system of the ChargeItemDefinitions that price codes: identifier
	// value = the CPT/HCPCS code, price = the base priceComponent of a propertyGroup.
	FeeSchedule = "urn:billy:fee-schedule"
)

// recordClaim assembles and stores the draft Claim of a run, with the coder's Provenance. Its id is
// the run's, so a repeated stage finds it.
func (p *Pipeline) recordClaim(ctx context.Context, tx *store.Tx, r *run, in *codeInputs, cd coder.Coder, res *coder.Result) (string, error) {
	claimRef := "Claim/" + r.id
	if _, err := tx.Read(ctx, "Claim", r.id); err == nil {
		return claimRef, nil
	} else if !errors.Is(err, fhir.ErrNotFound) {
		return "", err
	}
	name, version, model := cd.Info()
	device, err := p.engineDevice(ctx, tx, "coder", engineInfo{Name: name, Version: version, Model: model})
	if err != nil {
		return "", err
	}
	ev := func(spans []coder.Span) []any {
		var out []any
		for _, s := range spans {
			start, end := s.RuneOffsets(in.transcript)
			if start < 0 {
				continue
			}
			out = append(out, map[string]any{"url": EvidenceURL, "extension": []any{
				map[string]any{"url": "quote", "valueString": s.Text},
				map[string]any{"url": "start", "valueInteger": start},
				map[string]any{"url": "end", "valueInteger": end},
				map[string]any{"url": "source", "valueReference": map[string]any{"reference": in.doc}},
			}})
		}
		return out
	}
	day := in.service.Format("2006-01-02")
	var diagnoses []any
	for i, d := range res.Diagnoses {
		dx := map[string]any{
			"sequence":                 i + 1,
			"diagnosisCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": d.Code, "display": d.Display}}},
		}
		if e := append(ev(d.Evidence), confidenceExt(d.Confidence)...); len(e) > 0 {
			dx["extension"] = e
		}
		diagnoses = append(diagnoses, dx)
	}
	type line struct {
		code, system, display string
		modifiers             []string
		units                 int
		pointers              []int
		evidence              []coder.Span
		confidence            float64
	}
	var lines []line
	if em := res.EM; em != nil && em.Code != "" {
		lines = append(lines, line{code: em.Code, system: "cpt", modifiers: em.Modifiers, units: 1, pointers: em.DiagnosisPointers, evidence: em.Evidence, confidence: em.Confidence})
	}
	for _, l := range res.Lines {
		lines = append(lines, line{code: l.Code, system: l.System, display: l.Display, modifiers: l.Modifiers, units: l.Units, pointers: l.DiagnosisPointers, evidence: l.Evidence, confidence: l.Confidence})
	}
	var itemsOut []any
	total, priced := 0.0, len(lines) > 0
	currency := "USD"
	for i, l := range lines {
		units := max(l.units, 1)
		coding := map[string]any{"system": codeSystemURL(l.system), "code": l.code}
		if l.display != "" {
			coding["display"] = l.display
		}
		it := map[string]any{
			"sequence":         i + 1,
			"productOrService": map[string]any{"coding": []any{coding}},
			"servicedDate":     day,
			"quantity":         map[string]any{"value": units},
		}
		if len(l.pointers) > 0 {
			it["diagnosisSequence"] = l.pointers
		}
		var mods []any
		for _, m := range l.modifiers {
			mods = append(mods, map[string]any{"coding": []any{map[string]any{"system": modifierSystem(m), "code": m}}})
		}
		if len(mods) > 0 {
			it["modifier"] = mods
		}
		if in.pos != "" {
			it["locationCodeableConcept"] = map[string]any{"coding": []any{map[string]any{
				"system": "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set", "code": in.pos}}}
		}
		if in.encounter != "" {
			it["encounter"] = []any{map[string]any{"reference": in.encounter}}
		}
		price, cur, err := p.fee(ctx, tx, l.code)
		if err != nil {
			return "", err
		}
		if cur != "" {
			currency = cur
			it["unitPrice"] = money(price, cur)
			it["net"] = money(price*float64(units), cur)
			total += price * float64(units)
		} else {
			priced = false
		}
		if e := append(ev(l.evidence), confidenceExt(l.confidence)...); len(e) > 0 {
			it["extension"] = e
		}
		itemsOut = append(itemsOut, it)
	}
	var insurance []any
	for i, c := range in.coverages {
		insurance = append(insurance, map[string]any{"sequence": i + 1, "focal": i == 0, "coverage": map[string]any{"reference": c}})
	}
	claim := map[string]any{
		"resourceType":   "Claim",
		"identifier":     []any{map[string]any{"system": runSystem, "value": r.id}},
		"status":         "draft",
		"type":           map[string]any{"coding": []any{map[string]any{"system": claimTypeSystem, "code": "professional"}}},
		"use":            "claim",
		"patient":        map[string]any{"reference": in.patient},
		"billablePeriod": map[string]any{"start": day, "end": day},
		"created":        resource.FormatInstant(p.now()),
		"provider":       map[string]any{"reference": in.provider},
		"priority":       map[string]any{"coding": []any{map[string]any{"system": prioritySystem, "code": "normal"}}},
		"insurance":      insurance,
	}
	if len(diagnoses) > 0 {
		claim["diagnosis"] = diagnoses
	}
	if len(itemsOut) > 0 {
		claim["item"] = itemsOut
	}
	if priced {
		claim["total"] = money(total, currency)
	}
	if _, err := p.create(ctx, tx, "Claim", r.id, claim); err != nil {
		return "", fmt.Errorf("claim: %w", err)
	}
	prov := map[string]any{
		"resourceType": "Provenance",
		"target":       []any{map[string]any{"reference": claimRef}},
		"recorded":     resource.FormatInstant(p.now()),
		"activity":     map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "CREATE"}}},
		"agent": []any{map[string]any{
			"type": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "assembler"}}},
			"who":  map[string]any{"reference": device},
		}},
		"entity": []any{map[string]any{"role": "source", "what": map[string]any{"reference": in.doc}}},
	}
	if _, err := p.create(ctx, tx, "Provenance", r.id, prov); err != nil {
		return "", fmt.Errorf("claim provenance: %w", err)
	}
	return claimRef, nil
}

// confidenceExt is the coder's confidence in a code as a Claim extension (none when the coder gave
// none), so that the human coder sees it next to the code; the Task's notes say which codes fell
// under coder.ReviewBelow and why.
func confidenceExt(c float64) []any {
	if c <= 0 {
		return nil
	}
	return []any{map[string]any{"url": ConfidenceURL, "valueDecimal": json.Number(fmt.Sprintf("%.2f", min(c, 1)))}}
}

func money(v float64, currency string) map[string]any {
	return map[string]any{"value": json.Number(fmt.Sprintf("%.2f", v)), "currency": currency}
}

func codeSystemURL(system string) string {
	if system == "hcpcs" {
		return "urn:oid:2.16.840.1.113883.6.285"
	}
	return "http://www.ama-assn.org/go/cpt"
}

// modifierSystem: numeric modifiers (25, 59) are CPT's; letters (RT, LT, GT) are HCPCS Level II.
func modifierSystem(m string) string {
	if m != "" && m[0] >= '0' && m[0] <= '9' {
		return "http://www.ama-assn.org/go/cpt"
	}
	return "urn:oid:2.16.840.1.113883.6.285"
}

// fee is the price of a code in the fee schedule: the base price of the active
// ChargeItemDefinition identified by FeeSchedule|code. currency is "" when the code has none.
func (p *Pipeline) fee(ctx context.Context, tx *store.Tx, code string) (price float64, currency string, err error) {
	ids, err := p.match(ctx, tx, "ChargeItemDefinition", url.Values{"identifier": {FeeSchedule + "|" + code}, "status": {"active"}}, 1)
	if err != nil || len(ids) == 0 {
		return 0, "", err
	}
	def, err := p.readTree(ctx, tx, ids[0])
	if err != nil {
		return 0, "", err
	}
	for _, g := range items(def.Get("propertyGroup")) {
		for _, pc := range items(g.Get("priceComponent")) {
			if pc.GetString("type") != "base" {
				continue
			}
			amt := pc.Get("amount")
			if amt == nil {
				continue
			}
			var m struct {
				Value    float64
				Currency string
			}
			if err := json.Unmarshal(amt.Marshal(), &m); err != nil {
				return 0, "", err
			}
			return m.Value, cmpOr(m.Currency, "USD"), nil
		}
	}
	return 0, "", nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// match runs a search inside tx and returns the matches as references ("Type/id").
func (p *Pipeline) match(ctx context.Context, tx *store.Tx, typ string, params url.Values, limit int) ([]string, error) {
	q, err := searchQuery(typ, params, p.Base)
	if err != nil {
		return nil, err
	}
	refs, err := tx.Match(ctx, q, limit)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = typ + "/" + r.ID
	}
	slices.Sort(out)
	return out, nil
}

// parseDateTime reads a FHIR date or dateTime (the start of its precision).
func parseDateTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a FHIR date or dateTime", s)
}
