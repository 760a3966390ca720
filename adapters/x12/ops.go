package x12

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/rest"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
)

// ContentType is the media type of X12 bodies.
const ContentType = "application/edi-x12"

// MaxBatchClaims bounds the claims of one 837P batch.
const MaxBatchClaims = 10_000

// Service is the X12 side of Billy: the FHIR operations and the admin commands use it.
type Service struct {
	Pool     *pgxpool.Pool
	Store    *store.Store
	Validate store.Validate
	Settings Settings
	Now      func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Operations are Claim/$x12-837p (GET on an instance, POST on the type with claims or search
// criteria) and $x12-835 (POST at the base with the raw X12), for rest.Config.Operations.
func (s *Service) Operations() []*rest.Operation {
	return []*rest.Operation{
		{Name: "x12-837p", Types: []string{"Claim"}, Definition: "https://iambilly.github.io/billy/fhir/OperationDefinition/Claim-x12-837p",
			TypeLevel: true, InstanceLevel: true, Safe: true, Perm: rest.PermRead, ContentType: ContentType, Run: s.run837},
		{Name: "x12-835", Definition: "https://iambilly.github.io/billy/fhir/OperationDefinition/x12-835",
			SystemLevel: true, RawBody: true, Run: s.run835},
	}
}

func (s *Service) run837(ctx context.Context, in rest.OperationInput) (*rest.OperationResult, error) {
	// Billing staff and clearinghouses (user- or system-level scopes): an 837P numbers and records
	// an interchange, which a patient's app has no business doing.
	if err := in.Access.Require(ctx, rest.PermRead, "Claim"); err != nil {
		return nil, err
	}
	var ids []string
	if in.ID != "" {
		ids = []string{in.ID}
	} else {
		if in.Params != nil {
			for _, p := range params(in.Params) {
				if p.GetString("name") != "claim" {
					continue
				}
				ref := p.Get("valueReference").GetString("reference")
				typ, id, ok := resource.ParseReference(strings.TrimPrefix(ref, s.Settings.Base+"/"))
				if !ok || typ != "Claim" {
					return nil, fhir.Invalid("value", "Parameters.parameter.valueReference", "claim %q is not a reference to a Claim", ref)
				}
				ids = append(ids, id)
			}
		}
		criteria := url.Values{}
		for k, vs := range in.Query {
			if k != "_format" && k != "_pretty" {
				criteria[k] = vs
			}
		}
		if len(criteria) > 0 {
			vs, err := in.Access.Search(ctx, "Claim", criteria, MaxBatchClaims+1)
			if err != nil {
				return nil, err
			}
			for _, v := range vs {
				ids = append(ids, v.ID)
			}
		}
		if len(ids) == 0 {
			return nil, fhir.Invalid("required", "claim", "name the claims: Parameters with claim references, or search criteria in the URL (Claim/$x12-837p?status=active&_lastUpdated=ge2026-03-01)")
		}
	}
	ids = dedupe(ids)
	if len(ids) > MaxBatchClaims {
		return nil, fhir.Errorf(fhir.ErrTooLarge, "too-costly", "%d claims: an 837P batch holds at most %d", len(ids), MaxBatchClaims)
	}
	out, _, err := Generate(ctx, s.Pool, in.Access, s.Settings, ids, s.now())
	if err != nil {
		return nil, err
	}
	return &rest.OperationResult{Body: out, ContentType: ContentType}, nil
}

func (s *Service) run835(ctx context.Context, in rest.OperationInput) (*rest.OperationResult, error) {
	if err := in.Access.Require(ctx, rest.PermCreate, "ClaimResponse", "PaymentReconciliation"); err != nil {
		return nil, err
	}
	if err := in.Access.Require(ctx, rest.PermUpdate, "Claim"); err != nil {
		return nil, err
	}
	if len(in.Body) == 0 {
		return nil, fhir.Invalid("required", "body", "$x12-835 takes the 835 interchange as the body (Content-Type %s)", ContentType)
	}
	im := &Importer{Pool: s.Pool, Store: s.Store, Validate: s.Validate, Base: s.Settings.Base, Source: in.Access}
	rep, err := im.Import(ctx, in.Body, s.now())
	if err != nil {
		return nil, err
	}
	return &rest.OperationResult{Body: fhir.Outcome(rep.Issues()).Marshal()}, nil
}

// Issues are the report as OperationOutcome issues: information for each claim settled, a warning
// for each claim Billy does not know.
func (r *Report) Issues() []fhir.Issue {
	var out []fhir.Issue
	if r.Already {
		out = append(out, fhir.Issue{Severity: fhir.SeverityInformation, Code: "informational",
			Diagnostics: "interchange " + r.Interchange + " was imported before: nothing changed"})
	}
	for _, pr := range r.Reconciliations {
		out = append(out, fhir.Issue{Severity: fhir.SeverityInformation, Code: "informational", Diagnostics: "payment recorded as PaymentReconciliation/" + pr})
	}
	for _, c := range r.Claims {
		if c.Claim == "" {
			out = append(out, fhir.Issue{Severity: fhir.SeverityWarning, Code: "not-found",
				Diagnostics: fmt.Sprintf("CLP %s (payer claim %s, paid %s of %s) names no claim Billy sent; kept in the PaymentReconciliation", c.PCN, c.PayerClaim, c.Paid, c.Charge)})
			continue
		}
		out = append(out, fhir.Issue{Severity: fhir.SeverityInformation, Code: "informational",
			Diagnostics: fmt.Sprintf("CLP %s: Claim/%s %s (paid %s of %s) as ClaimResponse/%s", c.PCN, c.Claim, c.Outcome, c.Paid, c.Charge, c.ClaimResponse)})
	}
	return out
}

func params(t *jsontree.Value) []*jsontree.Value {
	p := t.Get("parameter")
	if p == nil || p.Kind != jsontree.Array {
		return nil
	}
	return p.Items
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// StoreSource reads the store directly, for the admin commands (which read everything).
type StoreSource struct{ Store *store.Store }

// Read returns the current version; a deletion is 410.
func (s StoreSource) Read(ctx context.Context, typ, id string) (*store.Version, error) {
	v, err := s.Store.Read(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if v.Deleted() {
		return nil, fhir.Errorf(fhir.ErrGone, "deleted", "%s/%s was deleted", typ, id)
	}
	return v, nil
}

// ClaimsToSend lists the active Claims last updated at or after since (all when zero) whose payer
// (the Claim's insurer, or its focal Coverage's payor) is Organization/payer (any when "").
func (s *Service) ClaimsToSend(ctx context.Context, since time.Time, payer string) ([]string, error) {
	params := url.Values{"status": {"active"}}
	if !since.IsZero() {
		params.Set("_lastUpdated", "ge"+since.UTC().Format(time.RFC3339))
	}
	q, err := search.Parse([]string{"Claim"}, params, search.Options{Strict: true, Base: s.Settings.Base})
	if err != nil {
		return nil, err
	}
	q.Count = 1000
	src := StoreSource{s.Store}
	var out []string
	for {
		res, err := s.Store.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, v := range res.Matches {
			if payer != "" {
				c, err := decode[claim](v)
				if err != nil {
					return nil, err
				}
				if !s.paidBy(ctx, src, c, payer) {
					continue
				}
			}
			out = append(out, v.ID)
		}
		if res.Next == "" || len(out) > MaxBatchClaims {
			return out, nil
		}
		q.Page = res.Next
	}
}

func (s *Service) paidBy(ctx context.Context, src Source, c *claim, payer string) bool {
	if refID(c.Insurer, "Organization", s.Settings.Base) == payer {
		return true
	}
	for _, in := range c.Insurance {
		cov, err := read[coverage](ctx, src, "Coverage", refID(&in.Coverage, "Coverage", s.Settings.Base))
		if err == nil && refID(firstRef(cov.Payor), "Organization", s.Settings.Base) == payer {
			return true
		}
	}
	return false
}
