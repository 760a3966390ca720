package x12

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/store"
)

// Code systems and identifier systems the 837P mapping reads.
const (
	systemNPI        = "http://hl7.org/fhir/sid/us-npi"
	systemEIN        = "urn:oid:2.16.840.1.113883.4.4"
	systemSSN        = "http://hl7.org/fhir/sid/us-ssn"
	systemICD10CM    = "http://hl7.org/fhir/sid/icd-10-cm"
	systemCPT        = "http://www.ama-assn.org/go/cpt"
	systemHCPCS      = "urn:oid:2.16.840.1.113883.6.285"
	systemHCPCSAlt   = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
	systemPOS        = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
	systemTaxonomy   = "http://nucc.org/provider-taxonomy"
	systemV20203     = "http://terminology.hl7.org/CodeSystem/v2-0203"
	systemSubscriber = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
	systemClaimType  = "http://terminology.hl7.org/CodeSystem/claim-type"
	systemRelated    = "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship"
	systemCareRole   = "http://terminology.hl7.org/CodeSystem/claimcareteamrole"
	systemCovClass   = "http://terminology.hl7.org/CodeSystem/coverage-class"
	systemSOPT       = "https://nahdo.org/sopt"
	// SystemPCN identifies the patient control number Billy sent in CLM01 (ClaimResponse.identifier).
	SystemPCN = "urn:billy:x12:pcn"
)

// Source reads the resources an 837P is built from, as the requester may read them (403 beyond
// its reach, 410 for a deletion).
type Source interface {
	Read(ctx context.Context, typ, id string) (*store.Version, error)
}

// Settings are the sender's side of an interchange (configuration), and the FHIR base URL.
type Settings struct {
	Envelope
	// SubmitterName, SubmitterID (1000A) default to the billing provider's name and the sender id;
	// ContactName and ContactPhone (1000A PER) to the billing provider's name and phone.
	SubmitterName, SubmitterID string
	ContactName, ContactPhone  string
	// ReceiverName and ReceiverID (1000B, and ISA08/GS03 when ReceiverID is set) default to the
	// payer's name and payer id, which then must be the same for every claim.
	ReceiverName string
	Base         string
}

// problems collects every element an 837P needs and the data lacks, across all claims.
type problems struct {
	issues []fhir.Issue
}

func (p *problems) add(claimID, expr, format string, args ...any) {
	p.issues = append(p.issues, fhir.Issue{Severity: fhir.SeverityError, Code: "required",
		Diagnostics: "Claim/" + claimID + ": " + fmt.Sprintf(format, args...), Expression: []string{expr}})
}

func (p *problems) err() error {
	if len(p.issues) == 0 {
		return nil
	}
	return &fhir.Error{Kind: fhir.ErrUnprocessable, Issues: p.issues}
}

// Build reads each Claim (by id) and what it refers to and assembles the batch, without control
// numbers. When anything the 837P requires is missing, nothing is built: the error (422) lists
// every missing element of every claim. Errors reading (403, 404, 410) are returned as they are.
func Build(ctx context.Context, src Source, set Settings, ids []string, now time.Time) (*Batch, error) {
	b := &Batch{Envelope: set.Envelope, Created: now}
	ids = dedupe(ids)
	src = &cachedSource{src: src, got: map[string]*store.Version{}}
	var pr problems
	billing := map[string]*BillingGroup{}
	subscribers := map[string]*SubscriberGroup{}
	var payers []Party
	for _, id := range ids {
		c, err := readClaim(ctx, src, set.Base, id, &pr)
		if err != nil {
			return nil, err
		}
		if c == nil {
			continue
		}
		bg := billing[c.billingKey]
		if bg == nil {
			bg = &BillingGroup{Provider: c.billing}
			billing[c.billingKey] = bg
			b.Billing = append(b.Billing, bg)
		}
		key := c.billingKey + "|" + c.subscriberKey
		sg := subscribers[key]
		if sg == nil {
			sg = &SubscriberGroup{Payer: c.payer, Responsibility: "P", GroupNumber: c.group, FilingCode: c.filing, Subscriber: c.subscriber}
			subscribers[key] = sg
			bg.Subscribers = append(bg.Subscribers, sg)
		}
		if c.dependent == nil {
			sg.Claims = append(sg.Claims, c.claim)
		} else {
			var d *Dependent
			for _, have := range sg.Dependents {
				if have.Patient == c.dependent.Patient && have.Relationship == c.dependent.Relationship {
					d = have
				}
			}
			if d == nil {
				d = c.dependent
				sg.Dependents = append(sg.Dependents, d)
			}
			d.Claims = append(d.Claims, c.claim)
		}
		if !slices.Contains(payers, c.payer) {
			payers = append(payers, c.payer)
		}
		if b.Submitter.Name == "" {
			b.Submitter = Submitter{Name: firstOf(set.SubmitterName, c.billing.displayName()), ID: firstOf(set.SubmitterID, set.SenderID),
				ContactName: firstOf(set.ContactName, c.billing.displayName()), Phone: firstOf(set.ContactPhone, c.billingPhone)}
			if digits(b.Submitter.Phone) == "" {
				pr.add(id, "Organization.telecom", "the submitter's contact (1000A PER) needs a phone: set BILLY_X12_CONTACT_PHONE, or give the billing provider a telecom of system phone")
			}
		}
	}
	b.Receiver = Party{Name: set.ReceiverName, ID: set.ReceiverID}
	if set.ReceiverID == "" {
		switch {
		case len(payers) > 1:
			pr.issues = append(pr.issues, fhir.Issue{Severity: fhir.SeverityError, Code: "business-rule", Expression: []string{"Claim.insurance"},
				Diagnostics: fmt.Sprintf("the claims go to %d payers and BILLY_X12_RECEIVER_ID is unset: set it (a clearinghouse's id) or write a file per payer (--payer)", len(payers))})
		case len(payers) == 1:
			b.Receiver = Party{Name: firstOf(set.ReceiverName, payers[0].Name), ID: payers[0].ID}
			b.ReceiverID = payers[0].ID
		}
	}
	if b.ReceiverQualifier == "" {
		b.ReceiverQualifier = "ZZ"
	}
	if err := pr.err(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fhir.Errorf(fhir.ErrInvalid, "required", "no claims to send")
	}
	return b, nil
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (p *Provider) displayName() string {
	if p.Organization {
		return p.Name
	}
	return strings.TrimSpace(p.First + " " + p.Last)
}

// cachedSource remembers what one batch read: its claims share a practice, a payer and often a
// subscriber.
type cachedSource struct {
	src Source
	got map[string]*store.Version
}

func (c *cachedSource) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	if v, ok := c.got[typ+"/"+id]; ok {
		return v, nil
	}
	v, err := c.src.Read(ctx, typ, id)
	if err == nil && typ != "Claim" {
		c.got[typ+"/"+id] = v
	}
	return v, err
}

// built is one claim and the parties around it, as read.
type built struct {
	claim                    *Claim
	billing                  Provider
	billingKey, billingPhone string
	payer                    Party
	group, filing            string
	subscriber               Person
	subscriberKey            string
	dependent                *Dependent
}

func decode[T any](v *store.Version) (*T, error) {
	var out T
	if err := json.Unmarshal(v.Content, &out); err != nil {
		return nil, fmt.Errorf("decode %s/%s: %w", v.Type, v.ID, err)
	}
	return &out, nil
}

func read[T any](ctx context.Context, src Source, typ, id string) (*T, error) {
	v, err := src.Read(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	return decode[T](v)
}

// readClaim reads a Claim and everything its 837P needs; what is missing goes into pr.
func readClaim(ctx context.Context, src Source, base, id string, pr *problems) (*built, error) {
	c, err := read[claim](ctx, src, "Claim", id)
	if err != nil {
		return nil, err
	}
	out := &built{claim: &Claim{ClaimID: id, Frequency: "1"}}
	switch c.Status {
	case "active":
	case "cancelled":
		out.claim.Frequency = "8"
	default:
		pr.add(id, "Claim.status", "status is %s: only an active Claim is sent (a coder reviews the draft and sets it active), or a cancelled one as a void", c.Status)
	}
	if t := c.Type.code(systemClaimType); t != "professional" {
		pr.add(id, "Claim.type", "type is %q: an 837P carries professional claims", t)
	}
	for _, r := range c.Related {
		if r.Relationship.code(systemRelated) == "prior" {
			if r.Reference == nil || r.Reference.Value == "" {
				pr.add(id, "Claim.related.reference", "replaces or voids a prior claim but does not give the payer's claim number (related.reference)")
				continue
			}
			out.claim.PriorClaim = r.Reference.Value
			if out.claim.Frequency == "1" {
				out.claim.Frequency = "7"
			}
		}
	}
	if out.claim.Frequency == "8" && out.claim.PriorClaim == "" {
		pr.add(id, "Claim.related", "a cancelled Claim is sent as a void, which needs the payer's claim number of the original (related with relationship prior and reference)")
	}

	// Billing provider (2010AA).
	switch provType, _ := splitRef(&c.Provider, base); provType {
	case "Organization":
		o, err := read[organization](ctx, src, "Organization", refID(&c.Provider, "Organization", base))
		if err != nil {
			return nil, err
		}
		out.billing = Provider{Organization: true, Name: o.Name, NPI: npiOf(o.Identifier)}
		out.billing.TaxID, out.billing.TaxIDQual = taxIDOf(o.Identifier)
		out.billing.Address = addressOf(o.Address, id, "Organization.address", pr, true)
		out.billingPhone = phoneOf(o.Telecom)
		if o.Name == "" {
			pr.add(id, "Organization.name", "the billing provider Organization/%s has no name", o.ID)
		}
		out.billingKey = "Organization/" + o.ID
	case "Practitioner":
		p, err := read[person](ctx, src, "Practitioner", refID(&c.Provider, "Practitioner", base))
		if err != nil {
			return nil, err
		}
		out.billing = practitioner(p)
		out.billing.TaxID, out.billing.TaxIDQual = taxIDOf(p.Identifier)
		out.billing.Address = addressOf(p.Address, id, "Practitioner.address", pr, true)
		out.billingPhone = phoneOf(p.Telecom)
		if out.billing.Last == "" {
			pr.add(id, "Practitioner.name", "the billing provider Practitioner/%s has no family name", p.ID)
		}
		out.billingKey = "Practitioner/" + p.ID
	default:
		pr.add(id, "Claim.provider", "the billing provider must be an Organization or a Practitioner of this server, not %q", c.Provider.Reference)
		return nil, nil
	}
	if out.billing.NPI == "" {
		pr.add(id, typeOf(out.billingKey)+".identifier", "the billing provider %s has no NPI (identifier of system %s, 10 digits)", out.billingKey, systemNPI)
	}
	if out.billing.TaxID == "" {
		pr.add(id, typeOf(out.billingKey)+".identifier", "the billing provider %s has no tax id (identifier of system %s, the EIN, or %s)", out.billingKey, systemEIN, systemSSN)
	}

	// Rendering provider (2310B): the care team's primary or performing practitioner, when it is
	// not the billing provider itself.
	for _, ct := range c.CareTeam {
		role := ct.Role.code(systemCareRole)
		if t, _ := splitRef(&ct.Provider, base); t != "Practitioner" || (role != "primary" && role != "performing" && role != "") {
			continue
		}
		pid := refID(&ct.Provider, "Practitioner", base)
		if "Practitioner/"+pid == out.billingKey {
			break
		}
		p, err := read[person](ctx, src, "Practitioner", pid)
		if err != nil {
			return nil, err
		}
		r := practitioner(p)
		if r.NPI == "" {
			pr.add(id, "Practitioner.identifier", "the rendering provider Practitioner/%s has no NPI", pid)
		}
		if r.Last == "" {
			pr.add(id, "Practitioner.name", "the rendering provider Practitioner/%s has no family name", pid)
		}
		out.claim.Rendering = &r
		break
	}

	// Coverage, payer (2010BB), subscriber (2010BA), patient (2010CA).
	covRef := ""
	for _, in := range c.Insurance {
		if in.Focal || covRef == "" {
			covRef = refID(&in.Coverage, "Coverage", base)
			if in.Focal {
				break
			}
		}
	}
	patientID := refID(&c.Patient, "Patient", base)
	pt, err := read[person](ctx, src, "Patient", patientID)
	if err != nil {
		return nil, err
	}
	if covRef == "" {
		pr.add(id, "Claim.insurance", "the Claim names no Coverage of this server (insurance.coverage)")
		return out, nil
	}
	cov, err := read[coverage](ctx, src, "Coverage", covRef)
	if err != nil {
		return nil, err
	}
	payerRef := c.Insurer
	if t, _ := splitRef(firstRef(cov.Payor), base); t == "Organization" {
		payerRef = &cov.Payor[0]
	}
	if pid := refID(payerRef, "Organization", base); pid == "" {
		pr.add(id, "Coverage.payor", "Coverage/%s names no payer Organization (payor)", cov.ID)
	} else {
		o, err := read[organization](ctx, src, "Organization", pid)
		if err != nil {
			return nil, err
		}
		out.payer = Party{Name: o.Name, ID: payerIDOf(o.Identifier)}
		if o.Name == "" {
			pr.add(id, "Organization.name", "the payer Organization/%s has no name", pid)
		}
		if out.payer.ID == "" {
			pr.add(id, "Organization.identifier", "the payer Organization/%s has no payer id (an identifier, of type NIIP or any system but NPI and tax ids)", pid)
		}
	}
	memberID := cov.SubscriberID
	if memberID == "" {
		for _, idf := range cov.Identifier {
			if idf.Type.code(systemV20203) == "MB" || memberID == "" {
				memberID = idf.Value
			}
		}
	}
	if memberID == "" {
		pr.add(id, "Coverage.subscriberId", "Coverage/%s has no member id (subscriberId, or an identifier)", cov.ID)
	}
	for _, cl := range cov.Class {
		if cl.Type.code(systemCovClass) == "group" {
			out.group = cl.Value
		}
	}
	out.filing = filingCode(cov)
	rel := cov.Relationship.code(systemSubscriber)
	subRef := cov.Subscriber
	subType, subID := splitRef(subRef, base)
	selfSub := subRef == nil || (subType == "Patient" && subID == patientID)
	if rel != "" && rel != "self" && selfSub && subRef == nil {
		pr.add(id, "Coverage.subscriber", "Coverage/%s: the patient is the %s of the subscriber, who is not named (subscriber)", cov.ID, rel)
	}
	if selfSub {
		out.subscriber = personOf(pt, id, "Patient", pr)
		out.subscriberKey = "Patient/" + patientID
	} else {
		var sp *person
		switch subType {
		case "Patient", "RelatedPerson":
			sp, err = read[person](ctx, src, subType, subID)
		default:
			pr.add(id, "Coverage.subscriber", "Coverage/%s: the subscriber must be a Patient or RelatedPerson of this server", cov.ID)
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out.subscriber = personOf(sp, id, sp.ResourceType, pr)
		out.subscriber.Address = nil // situational when the subscriber is not the patient
		if n := sp.official(); n == nil || n.Family == "" {
			pr.add(id, sp.ResourceType+".name", "the subscriber %s/%s has no family name", sp.ResourceType, sp.ID)
		}
		out.subscriberKey = subType + "/" + sp.ID + "|dependents"
		out.dependent = &Dependent{Relationship: patientRelationship(rel), Patient: personOf(pt, id, "Patient", pr)}
	}
	out.subscriber.MemberID = memberID
	out.subscriberKey += "|" + covRef

	// Diagnoses (HI), lines (2400), totals (CLM02).
	diags := slices.Clone(c.Diagnosis)
	slices.SortFunc(diags, func(a, b struct {
		Sequence                 int              `json:"sequence"`
		DiagnosisCodeableConcept *codeableConcept `json:"diagnosisCodeableConcept"`
	}) int {
		return a.Sequence - b.Sequence
	})
	position := map[int]int{}
	for i, d := range diags {
		code := d.DiagnosisCodeableConcept.code(systemICD10CM)
		if code == "" {
			pr.add(id, fmt.Sprintf("Claim.diagnosis[%d]", i), "diagnosis %d has no ICD-10-CM code (system %s)", d.Sequence, systemICD10CM)
			continue
		}
		out.claim.Diagnoses = append(out.claim.Diagnoses, strings.ReplaceAll(code, ".", ""))
		position[d.Sequence] = len(out.claim.Diagnoses)
	}
	switch {
	case len(out.claim.Diagnoses) == 0:
		pr.add(id, "Claim.diagnosis", "an 837P needs at least one diagnosis")
	case len(out.claim.Diagnoses) > 12:
		pr.add(id, "Claim.diagnosis", "an 837P carries at most 12 diagnoses, the Claim has %d", len(out.claim.Diagnoses))
	}
	var total Amount
	for i, it := range c.Item {
		expr := fmt.Sprintf("Claim.item[%d]", i)
		l := Line{Units: "1"}
		l.Code = it.ProductOrService.code(systemCPT, systemHCPCS, systemHCPCSAlt)
		if l.Code == "" {
			pr.add(id, expr+".productOrService", "line %d has no CPT or HCPCS code", it.Sequence)
		}
		for _, m := range it.Modifier {
			if cd := m.code(); cd != "" {
				l.Modifiers = append(l.Modifiers, cd)
			}
		}
		if len(l.Modifiers) > 4 {
			pr.add(id, expr+".modifier", "line %d has %d modifiers, an 837P carries 4", it.Sequence, len(l.Modifiers))
		}
		if it.Quantity != nil && it.Quantity.Value != nil {
			l.Units = it.Quantity.Value.String()
		}
		switch {
		case it.Net != nil && it.Net.Value != nil:
			a, err := ParseAmount(it.Net.Value.String())
			if err != nil {
				pr.add(id, expr+".net", "line %d: net %s is not an amount", it.Sequence, it.Net.Value)
			}
			l.Charge = a
		case it.UnitPrice != nil && it.UnitPrice.Value != nil:
			a, err := ParseAmount(it.UnitPrice.Value.String())
			u, uerr := ParseAmount(l.Units)
			if err != nil || uerr != nil {
				pr.add(id, expr+".unitPrice", "line %d: unitPrice %s is not an amount", it.Sequence, it.UnitPrice.Value)
			}
			l.Charge = Amount(int64(a) * int64(u) / 100)
		default:
			pr.add(id, expr+".net", "line %d has no charge (net, or unitPrice and quantity)", it.Sequence)
		}
		total += l.Charge
		for _, seq := range it.DiagnosisSequence {
			p, ok := position[seq]
			if !ok {
				pr.add(id, expr+".diagnosisSequence", "line %d points at diagnosis %d, which the Claim does not have", it.Sequence, seq)
				continue
			}
			l.Pointers = append(l.Pointers, p)
		}
		if len(l.Pointers) == 0 && len(position) > 0 {
			l.Pointers = []int{1}
		}
		if len(l.Pointers) > 4 {
			pr.add(id, expr+".diagnosisSequence", "line %d points at %d diagnoses, an 837P carries 4", it.Sequence, len(l.Pointers))
		}
		day := it.ServicedDate
		if day == "" && it.ServicedPeriod != nil {
			day = it.ServicedPeriod.Start
		}
		if day == "" && c.BillablePeriod != nil {
			day = c.BillablePeriod.Start
		}
		if d, err := time.Parse("2006-01-02", firstN(day, 10)); err == nil {
			l.Date = d
		} else {
			pr.add(id, expr+".servicedDate", "line %d has no date of service (servicedDate, or the Claim's billablePeriod)", it.Sequence)
		}
		if pos := it.LocationCodeableConcept.code(systemPOS); pos != "" && out.claim.PlaceOfService == "" {
			out.claim.PlaceOfService = pos
		}
		out.claim.Lines = append(out.claim.Lines, l)
	}
	if len(c.Item) == 0 {
		pr.add(id, "Claim.item", "an 837P needs at least one service line")
	}
	if len(c.Item) > 50 {
		pr.add(id, "Claim.item", "an 837P claim carries at most 50 service lines, the Claim has %d", len(c.Item))
	}
	if out.claim.PlaceOfService == "" {
		pr.add(id, "Claim.item.locationCodeableConcept", "no place of service (item.locationCodeableConcept of system %s)", systemPOS)
	}
	out.claim.Total = total
	if c.Total != nil && c.Total.Value != nil {
		if t, err := ParseAmount(c.Total.Value.String()); err != nil || t != total {
			pr.add(id, "Claim.total", "total %s is not the sum of the lines' charges (%s)", c.Total.Value, total)
		}
	}
	return out, nil
}

func firstRef(rs []reference) *reference {
	if len(rs) == 0 {
		return nil
	}
	return &rs[0]
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func typeOf(ref string) string {
	t, _, _ := strings.Cut(ref, "/")
	return t
}

func practitioner(p *person) Provider {
	pv := Provider{NPI: npiOf(p.Identifier)}
	if n := p.official(); n != nil {
		pv.Last = n.Family
		if len(n.Given) > 0 {
			pv.First = n.Given[0]
		}
	}
	return pv
}

// personOf reads a subscriber or patient: name, address, birth date and gender are required.
func personOf(p *person, claimID, typ string, pr *problems) Person {
	out := Person{}
	if n := p.official(); n != nil {
		out.Last = n.Family
		if len(n.Given) > 0 {
			out.First = n.Given[0]
		}
		if len(n.Given) > 1 {
			out.Middle = n.Given[1]
		}
	}
	if out.Last == "" {
		pr.add(claimID, typ+".name", "%s/%s has no family name", typ, p.ID)
	}
	a := addressOf(p.Address, claimID, typ+".address", pr, false)
	out.Address = &a
	if d, err := time.Parse("2006-01-02", p.BirthDate); err == nil {
		out.BirthDate = d
	} else {
		pr.add(claimID, typ+".birthDate", "%s/%s has no full birth date", typ, p.ID)
	}
	switch p.Gender {
	case "male":
		out.Gender = "M"
	case "female":
		out.Gender = "F"
	case "other", "unknown":
		out.Gender = "U"
	default:
		pr.add(claimID, typ+".gender", "%s/%s has no gender", typ, p.ID)
	}
	return out
}

// addressOf picks the billing, else work or home, else first address; line, city, state and ZIP
// are required (a billing provider's ZIP with its +4).
func addressOf(as []address, claimID, expr string, pr *problems, zip9 bool) Address {
	var a *address
	for _, use := range []string{"billing", "work", "home", ""} {
		for i := range as {
			if a == nil && (as[i].Use == use || use == "") {
				a = &as[i]
			}
		}
	}
	if a == nil {
		pr.add(claimID, expr, "no address (%s)", expr)
		return Address{}
	}
	out := Address{Lines: a.Line, City: a.City, State: a.State, Zip: digits(a.PostalCode)}
	var missing []string
	if len(a.Line) == 0 || strings.TrimSpace(a.Line[0]) == "" {
		missing = append(missing, "line")
	}
	if a.City == "" {
		missing = append(missing, "city")
	}
	if len(a.State) != 2 {
		missing = append(missing, "state (two letters)")
	}
	switch {
	case zip9 && len(out.Zip) != 9:
		missing = append(missing, "postalCode with its +4 (nine digits)")
	case len(out.Zip) != 5 && len(out.Zip) != 9:
		missing = append(missing, "postalCode (five or nine digits)")
	}
	if len(missing) > 0 {
		pr.add(claimID, expr, "the address lacks %s", strings.Join(missing, ", "))
	}
	if len(out.Lines) == 0 {
		out.Lines = []string{""}
	}
	return out
}

func npiOf(ids []identifier) string {
	for _, i := range ids {
		if i.System == systemNPI && len(digits(i.Value)) == 10 {
			return digits(i.Value)
		}
	}
	return ""
}

func taxIDOf(ids []identifier) (string, string) {
	for _, i := range ids {
		switch {
		case i.System == systemEIN && digits(i.Value) != "":
			return digits(i.Value), "EI"
		case i.Type.code(systemV20203) == "TAX" && digits(i.Value) != "":
			return digits(i.Value), "EI"
		}
	}
	for _, i := range ids {
		if i.System == systemSSN && digits(i.Value) != "" {
			return digits(i.Value), "SY"
		}
	}
	return "", ""
}

// payerIDOf is the payer id: an identifier of type NIIP, else the first that is not an NPI or a
// tax id.
func payerIDOf(ids []identifier) string {
	for _, i := range ids {
		if i.Type.code(systemV20203) == "NIIP" && i.Value != "" {
			return i.Value
		}
	}
	for _, i := range ids {
		if i.Value != "" && i.System != systemNPI && i.System != systemEIN && i.System != systemSSN {
			return i.Value
		}
	}
	return ""
}

func phoneOf(ts []contactPoint) string {
	for _, t := range ts {
		if t.System == "phone" && digits(t.Value) != "" {
			return t.Value
		}
	}
	return ""
}

// patientRelationship is PAT01 from Coverage.relationship.
func patientRelationship(rel string) string {
	switch rel {
	case "spouse", "common":
		return "01"
	case "child":
		return "19"
	}
	return "G8"
}

// filingCode is SBR09 from Coverage.type: Source of Payment Typology 1 Medicare (MB), 2 Medicaid
// (MC), 3x TRICARE/VA (CH, VA), otherwise commercial (CI).
func filingCode(c *coverage) string {
	switch sopt := c.Type.code(systemSOPT); {
	case strings.HasPrefix(sopt, "1"):
		return "MB"
	case strings.HasPrefix(sopt, "2"):
		return "MC"
	case strings.HasPrefix(sopt, "311"):
		return "CH"
	case strings.HasPrefix(sopt, "32"):
		return "VA"
	}
	return "CI"
}

// refID returns the id of a local reference to typ, "" when it is not one.
func refID(r *reference, typ, base string) string {
	t, id := splitRef(r, base)
	if t != typ {
		return ""
	}
	return id
}
