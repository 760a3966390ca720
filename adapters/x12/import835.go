package x12

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/store"
	"github.com/iambilly/billy/internal/pg"
)

// Systems of what an 835 import writes.
const (
	// SystemClaimPayment tags a Claim with what its last remittance said: paid, partially-paid,
	// denied or reversed.
	SystemClaimPayment = "https://iambilly.github.io/billy/fhir/CodeSystem/claim-payment"
	systemPayerClaim   = "urn:billy:x12:payer-claim"
	systemTrace        = "urn:billy:x12:trace"
	systemCARC         = "https://x12.org/codes/claim-adjustment-reason-codes"
	systemCASGroup     = "https://x12.org/codes/claim-adjustment-group-codes"
	systemRARC         = "https://x12.org/codes/remittance-advice-remark-codes"
	systemAdjudication = "http://terminology.hl7.org/CodeSystem/adjudication"
	systemCARINAdj     = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication"
	systemPaymentType  = "http://terminology.hl7.org/CodeSystem/ex-paymenttype"
	systemPRType       = "http://terminology.hl7.org/CodeSystem/payment-type"
)

// Importer turns 835s into ClaimResponses and PaymentReconciliations in the store.
type Importer struct {
	Pool     *pgxpool.Pool
	Store    *store.Store
	Validate store.Validate
	Base     string
	// Source reads Claims (and their Coverages) as the requester may.
	Source Source
}

// Report is what an import did, per claim.
type Report struct {
	Interchange string
	// Already: this exact 835 was imported before; nothing was written.
	Already         bool
	Reconciliations []string // PaymentReconciliation ids
	Claims          []ClaimReport
}

// ClaimReport is one CLP: the Claim it settles ("" when Billy knows none) and what became of it.
type ClaimReport struct {
	PCN, PayerClaim string
	Claim           string
	ClaimResponse   string
	// Outcome is paid, partially-paid, denied, reversed, or unknown-claim.
	Outcome      string
	Charge, Paid Amount
}

// Import reads an 835 interchange and records it: each CLP of a Claim Billy sent becomes a
// ClaimResponse (linked to the Claim by the patient control number of CLM01) and tags the Claim
// with its outcome; each payment (BPR/TRN) becomes a PaymentReconciliation whose details list every
// CLP, a claim Billy does not know included (kept there, and reported). Everything is written in
// one transaction; ids are derived from the payer, the trace number and the claim, so importing
// the same 835 again, or another file repeating it, changes nothing.
func (im *Importer) Import(ctx context.Context, data []byte, now time.Time) (*Report, error) {
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if r, err := im.previous(ctx, digest); err != nil || r != nil {
		return r, err
	}
	rems, err := Parse835(data)
	if err != nil {
		return nil, err
	}
	rep := &Report{Interchange: rems[0].Interchange}
	var writes []*store.Write
	tags := map[string]string{} // Claim id -> outcome tag
	for _, r := range rems {
		pr := paymentReconciliation{ResourceType: "PaymentReconciliation", ID: derivedID(r.Payer.ID, r.Trace, r.SetControl),
			Status: "active", Created: formatDateTime(now), Outcome: "complete",
			PaymentDate: r.PaymentDate.Format("2006-01-02"), PaymentAmount: moneyOf(r.Paid),
			PaymentIdentifier: &identifier{System: systemTrace, Value: r.Trace},
			Disposition:       fmt.Sprintf("X12 835 from %s, %s %s", firstOf(r.Payer.Name, r.Payer.ID), methodName(r.Method), r.Trace)}
		if r.CreditDebit == "D" {
			pr.PaymentAmount = moneyOf(-r.Paid)
		}
		for _, cp := range r.Claims {
			cr, crep, err := im.claimResponse(ctx, r, cp, now)
			if err != nil {
				return nil, err
			}
			d := prDetail{Identifier: &identifier{System: SystemPCN, Value: cp.PCN}, Type: cc(systemPRType, "payment", ""), Amount: ptr(moneyOf(cp.Paid)),
				Date: r.PaymentDate.Format("2006-01-02")}
			if cr != nil {
				d.Request = cr.Request
				d.Response = &reference{Reference: "ClaimResponse/" + cr.ID}
				w, err := im.prepare("ClaimResponse", cr.ID, cr)
				if err != nil {
					return nil, err
				}
				writes = append(writes, w)
				tags[crep.Claim] = crep.Outcome
			}
			pr.Detail = append(pr.Detail, d)
			rep.Claims = append(rep.Claims, *crep)
		}
		for _, a := range r.ProviderAdjustments {
			pr.Detail = append(pr.Detail, prDetail{Identifier: &identifier{System: systemPayerClaim, Value: a.Quantity}, Type: cc(systemPRType, "adjustment", ""),
				Amount: ptr(moneyOf(-a.Amount)), Date: r.PaymentDate.Format("2006-01-02")})
		}
		w, err := im.prepare("PaymentReconciliation", pr.ID, pr)
		if err != nil {
			return nil, err
		}
		writes = append(writes, w)
		rep.Reconciliations = append(rep.Reconciliations, pr.ID)
	}
	report, _ := json.Marshal(rep)
	var claimIDs []string
	for id := range tags {
		claimIDs = append(claimIDs, id)
	}
	slices.Sort(claimIDs)
	err = im.Store.InTx(ctx, func(tx *store.Tx) error {
		for _, w := range writes {
			if _, err := tx.Read(ctx, w.Type, w.ID); err == nil {
				continue // imported before (by another file repeating it)
			} else if !errors.Is(err, fhir.ErrNotFound) {
				return err
			}
			if _, err := tx.Create(ctx, []*store.Write{w}); err != nil {
				return err
			}
		}
		for _, id := range claimIDs {
			if err := im.tagClaim(ctx, tx, id, tags[id]); err != nil {
				return err
			}
		}
		_, err := tx.PgTx().Exec(ctx, `INSERT INTO x12_interchanges (direction, control, sha256, claims, report, created_at) VALUES ('in', $1, $2, $3, $4, $5)`,
			rep.Interchange, digest, claimIDs, report, now)
		return err
	})
	if pg.IsUniqueViolation(err) { // the same file, imported concurrently
		return im.previous(ctx, digest)
	}
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// previous returns the report of an 835 imported before, nil when it was not.
func (im *Importer) previous(ctx context.Context, digest string) (*Report, error) {
	var raw []byte
	err := im.Pool.QueryRow(ctx, `SELECT report FROM x12_interchanges WHERE direction = 'in' AND sha256 = $1`, digest).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("x12 interchanges: %w", err)
	}
	var r Report
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("x12 interchanges: %w", err)
	}
	r.Already = true
	return &r, nil
}

// prepare turns a typed resource into a validated Write: the one way resources of this package
// become FHIR JSON.
func (im *Importer) prepare(typ, id string, v any) (*store.Write, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	tree, err := jsontree.Parse(b)
	if err != nil {
		return nil, err
	}
	w, err := store.Prepare(im.Validate, im.Base, typ, id, tree)
	if err != nil {
		return nil, fmt.Errorf("x12: the %s built from the 835 is not valid FHIR: %w", typ, err)
	}
	return w, nil
}

// claimFor finds the Claim a CLP settles: by the patient control number Billy sent, else a CLP01
// that is a Claim id itself. "" when Billy knows none (or the requester may not read it).
func (im *Importer) claimFor(ctx context.Context, pcn string) (*claim, error) {
	var id string
	err := im.Pool.QueryRow(ctx, `SELECT claim_id FROM x12_claims WHERE pcn = $1`, pcn).Scan(&id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		id = pcn
	case err != nil:
		return nil, fmt.Errorf("x12 claims: %w", err)
	}
	c, err := read[claim](ctx, im.Source, "Claim", id)
	if errors.Is(err, fhir.ErrNotFound) || errors.Is(err, fhir.ErrGone) || errors.Is(err, fhir.ErrInvalid) {
		return nil, nil
	}
	return c, err
}

func (im *Importer) claimResponse(ctx context.Context, r *Remittance, cp *ClaimPayment, now time.Time) (*claimResponseOut, *ClaimReport, error) {
	rep := &ClaimReport{PCN: cp.PCN, PayerClaim: cp.PayerClaim, Charge: cp.Charge, Paid: cp.Paid, Outcome: "unknown-claim"}
	c, err := im.claimFor(ctx, cp.PCN)
	if err != nil || c == nil {
		return nil, rep, err
	}
	rep.Claim = c.ID
	rep.Outcome = outcomeOf(cp)
	insurer, err := im.insurer(ctx, c, r)
	if err != nil {
		return nil, nil, err
	}
	cr := &claimResponseOut{ResourceType: "ClaimResponse", ID: derivedID(r.Payer.ID, r.Trace, cp.PCN, cp.PayerClaim, cp.Status),
		Identifier: []identifier{{System: SystemPCN, Value: cp.PCN}},
		Status:     "active", Type: c.Type, Use: "claim", Patient: c.Patient, Created: formatDateTime(now), Insurer: insurer,
		Request: &reference{Reference: "Claim/" + c.ID}, Outcome: "complete", Disposition: dispositionOf(cp),
		Total: []total{{Category: cc(systemAdjudication, "submitted", ""), Amount: moneyOf(cp.Charge)},
			{Category: cc(systemAdjudication, "benefit", ""), Amount: moneyOf(cp.Paid)}},
		Payment: &crPayment{Type: cc(systemPaymentType, paymentType(cp), ""), Date: r.PaymentDate.Format("2006-01-02"), Amount: moneyOf(cp.Paid),
			Identifier: &identifier{System: systemTrace, Value: r.Trace}}}
	if cp.PayerClaim != "" {
		cr.Identifier = append(cr.Identifier, identifier{System: systemPayerClaim, Value: cp.PayerClaim})
	}
	if cp.PatientResp != 0 {
		cr.Total = append(cr.Total, total{Category: cc(systemCARINAdj, "memberliability", "Member liability"), Amount: moneyOf(cp.PatientResp)})
	}
	cr.Adjudication = adjudications(cp.Adjustments)
	note := 0
	addNotes := func(codes []string) []int {
		var nums []int
		for _, code := range codes {
			note++
			cr.ProcessNote = append(cr.ProcessNote, processNote{Number: note, Type: "display", Text: "RARC " + code})
			nums = append(nums, note)
		}
		return nums
	}
	addNotes(cp.Remarks)
	used := map[int]bool{}
	for i, l := range cp.Lines {
		seq := matchItem(c.Item, l, used, i)
		it := crItem{ItemSequence: seq, NoteNumber: addNotes(l.Remarks)}
		it.Adjudication = append([]adjudication{
			{Category: cc(systemAdjudication, "submitted", ""), Amount: ptr(moneyOf(l.Charge))},
			{Category: cc(systemAdjudication, "benefit", ""), Amount: ptr(moneyOf(l.Paid))},
		}, adjudications(l.Adjustments)...)
		cr.Item = append(cr.Item, it)
	}
	rep.ClaimResponse = cr.ID
	return cr, rep, nil
}

// insurer is the Claim's insurer, else its Coverage's payer, else the 835's payer by id.
func (im *Importer) insurer(ctx context.Context, c *claim, r *Remittance) (reference, error) {
	if id := refID(c.Insurer, "Organization", im.Base); id != "" {
		return reference{Reference: "Organization/" + id}, nil
	}
	for _, in := range c.Insurance {
		cov, err := read[coverage](ctx, im.Source, "Coverage", refID(&in.Coverage, "Coverage", im.Base))
		if err != nil {
			continue
		}
		if id := refID(firstRef(cov.Payor), "Organization", im.Base); id != "" {
			return reference{Reference: "Organization/" + id}, nil
		}
	}
	return reference{Identifier: &identifier{Value: firstOf(r.Payer.ID, "unknown")}, Display: r.Payer.Name}, nil
}

// tagClaim records the outcome on the Claim (meta.tag of SystemClaimPayment), as a new version
// when it changes.
func (im *Importer) tagClaim(ctx context.Context, tx *store.Tx, id, outcome string) error {
	cur, err := tx.ReadForUpdate(ctx, "Claim", id, 0)
	if err != nil {
		return err
	}
	tree, err := jsontree.Parse(cur.Content)
	if err != nil {
		return err
	}
	m := tree.Get("meta")
	if m == nil || m.Kind != jsontree.Object {
		m = jsontree.NewObject()
		tree.Set("meta", m)
	}
	var tags []*jsontree.Value
	if t := m.Get("tag"); t != nil && t.Kind == jsontree.Array {
		for _, it := range t.Items {
			if it.GetString("system") == SystemClaimPayment {
				if it.GetString("code") == outcome {
					return nil
				}
				continue
			}
			tags = append(tags, it)
		}
	}
	tag := jsontree.NewObject()
	tag.Set("system", jsontree.NewString(SystemClaimPayment))
	tag.Set("code", jsontree.NewString(outcome))
	m.Set("tag", jsontree.NewArray(append(tags, tag)...))
	w, err := store.Prepare(im.Validate, im.Base, "Claim", id, tree)
	if err != nil {
		return err
	}
	_, _, err = tx.Update(ctx, w, cur.Version)
	return err
}

// outcomeOf is what a CLP says of its claim.
func outcomeOf(cp *ClaimPayment) string {
	var contractual Amount
	for _, a := range cp.Adjustments {
		if a.Group == "CO" {
			contractual += a.Amount
		}
	}
	for _, l := range cp.Lines {
		for _, a := range l.Adjustments {
			if a.Group == "CO" {
				contractual += a.Amount
			}
		}
	}
	switch {
	case cp.Status == "22":
		return "reversed"
	case cp.Status == "4" || (cp.Paid == 0 && cp.PatientResp == 0):
		return "denied"
	case cp.Paid+cp.PatientResp+contractual < cp.Charge:
		return "partially-paid"
	}
	return "paid"
}

func dispositionOf(cp *ClaimPayment) string {
	switch outcomeOf(cp) {
	case "reversed":
		return "reversal of a previous payment"
	case "denied":
		return "denied"
	case "partially-paid":
		return "partially paid"
	}
	return "paid"
}

func paymentType(cp *ClaimPayment) string {
	if outcomeOf(cp) == "paid" {
		return "complete"
	}
	return "partial"
}

func methodName(m string) string {
	switch m {
	case "ACH":
		return "EFT"
	case "CHK":
		return "check"
	case "NON":
		return "no payment"
	}
	return strings.ToLower(m)
}

// matchItem finds the Claim item a service line pays: the first unused item with the same code
// and modifiers, else the line's position.
func matchItem(items []claimItem, l *ServicePayment, used map[int]bool, i int) int {
	for _, it := range items {
		if used[it.Sequence] || it.ProductOrService.code(systemCPT, systemHCPCS, systemHCPCSAlt) != l.Code {
			continue
		}
		var mods []string
		for _, m := range it.Modifier {
			mods = append(mods, m.code())
		}
		if slices.Equal(mods, l.Modifiers) || len(l.Modifiers) == 0 {
			used[it.Sequence] = true
			return it.Sequence
		}
	}
	return i + 1
}

func adjudications(as []Adjustment) []adjudication {
	var out []adjudication
	for _, a := range as {
		out = append(out, adjudication{Category: cc(systemCASGroup, a.Group, ""), Reason: ptr(cc(systemCARC, a.Reason, "")), Amount: ptr(moneyOf(a.Amount))})
	}
	return out
}

// derivedID is a resource id from the parts that identify what an 835 says, so that the same
// statement always lands on the same resource.
func derivedID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x1f")))
	return "x835-" + hex.EncodeToString(h[:20])
}

func formatDateTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func ptr[T any](v T) *T { return &v }

func cc(system, code, display string) codeableConcept {
	return codeableConcept{Coding: []coding{{System: system, Code: code, Display: display}}}
}

type moneyOut struct {
	Value    json.Number `json:"value"`
	Currency string      `json:"currency"`
}

func moneyOf(a Amount) moneyOut { return moneyOut{Value: json.Number(a.String()), Currency: "USD"} }

type claimResponseOut struct {
	ResourceType string           `json:"resourceType"`
	ID           string           `json:"id"`
	Identifier   []identifier     `json:"identifier,omitempty"`
	Status       string           `json:"status"`
	Type         codeableConcept  `json:"type"`
	Use          string           `json:"use"`
	Patient      reference        `json:"patient"`
	Created      string           `json:"created"`
	Insurer      reference        `json:"insurer"`
	Request      *reference       `json:"request,omitempty"`
	Outcome      string           `json:"outcome"`
	Disposition  string           `json:"disposition,omitempty"`
	Item         []crItem         `json:"item,omitempty"`
	Adjudication []adjudication   `json:"adjudication,omitempty"`
	Total        []total          `json:"total,omitempty"`
	Payment      *crPayment       `json:"payment,omitempty"`
	ProcessNote  []processNote    `json:"processNote,omitempty"`
	Extension    []map[string]any `json:"extension,omitempty"`
}

type crItem struct {
	ItemSequence int            `json:"itemSequence"`
	NoteNumber   []int          `json:"noteNumber,omitempty"`
	Adjudication []adjudication `json:"adjudication"`
}

type adjudication struct {
	Category codeableConcept  `json:"category"`
	Reason   *codeableConcept `json:"reason,omitempty"`
	Amount   *moneyOut        `json:"amount,omitempty"`
}

type total struct {
	Category codeableConcept `json:"category"`
	Amount   moneyOut        `json:"amount"`
}

type crPayment struct {
	Type       codeableConcept `json:"type"`
	Date       string          `json:"date,omitempty"`
	Amount     moneyOut        `json:"amount"`
	Identifier *identifier     `json:"identifier,omitempty"`
}

type processNote struct {
	Number int    `json:"number"`
	Type   string `json:"type"`
	Text   string `json:"text"`
}

type paymentReconciliation struct {
	ResourceType      string      `json:"resourceType"`
	ID                string      `json:"id"`
	Status            string      `json:"status"`
	Created           string      `json:"created"`
	PaymentIssuer     *reference  `json:"paymentIssuer,omitempty"`
	Outcome           string      `json:"outcome"`
	Disposition       string      `json:"disposition,omitempty"`
	PaymentDate       string      `json:"paymentDate"`
	PaymentAmount     moneyOut    `json:"paymentAmount"`
	PaymentIdentifier *identifier `json:"paymentIdentifier,omitempty"`
	Detail            []prDetail  `json:"detail,omitempty"`
}

type prDetail struct {
	Identifier *identifier     `json:"identifier,omitempty"`
	Type       codeableConcept `json:"type"`
	Request    *reference      `json:"request,omitempty"`
	Response   *reference      `json:"response,omitempty"`
	Date       string          `json:"date,omitempty"`
	Amount     *moneyOut       `json:"amount,omitempty"`
}
