package rest

import (
	"context"
	"net/url"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
)

// permOf is the permission an interaction needs on its resource type.
func permOf(rt route) Perm {
	switch rt.interaction {
	case IRead, IVRead, IHistoryInstance, IHistoryType:
		return PermRead
	case ISearchType:
		return PermSearch
	case ICreate:
		return PermCreate
	case IUpdate, IPatch:
		return PermUpdate
	case IDelete:
		return PermDelete
	case IOperation:
		if rt.ext != nil {
			return rt.ext.Perm
		}
		switch rt.op {
		case "meta":
			return PermRead
		case "meta-add", "meta-delete":
			return PermUpdate
		case "everything":
			return PermSearch
		}
	}
	return 0 // capabilities, batch, system history and search, $validate: checked per type as they go
}

type policyKey struct{}

func withPolicy(ctx context.Context, p Policy) context.Context {
	return context.WithValue(ctx, policyKey{}, p)
}

func policyFrom(ctx context.Context) Policy {
	if p, ok := ctx.Value(policyKey{}).(Policy); ok {
		return p
	}
	return denyAll{}
}

// denyAll is the policy of a context that was never authorized: a bug, so nothing passes.
type denyAll struct{}

func (denyAll) Allow(string, Perm) (Restriction, bool) { return Restriction{}, false }

// restriction returns the principal's restriction for perm on typ, or a 403 when it has none.
func restriction(ctx context.Context, typ string, perm Perm) (Restriction, error) {
	r, ok := policyFrom(ctx).Allow(typ, perm)
	if !ok {
		return r, fhir.Errorf(fhir.ErrForbidden, "forbidden", "the token's scopes do not allow %q on %s", string(perm), typ)
	}
	return r, nil
}

func (r Restriction) none() bool { return r.Patient == "" && len(r.Constraints) == 0 }

// admits reports whether a resource (stored, or about to be) is within a restriction: within the
// patient's reach, and matching one of the query constraints. Constraints can only be checked on
// stored resources (stored false: a write), so a constrained write is refused.
func (s *Server) admits(ctx context.Context, rd reads, r Restriction, typ, id string, tree *jsontree.Value, stored bool) (bool, error) {
	if r.Patient != "" {
		ok, err := s.inReach(ctx, rd, typ, id, tree, r.Patient)
		if err != nil || !ok {
			return false, err
		}
	}
	if len(r.Constraints) == 0 {
		return true, nil
	}
	if !stored {
		return false, nil
	}
	for _, c := range r.Constraints {
		params := url.Values{"_id": {id}}
		for k, v := range c {
			params[k] = v
		}
		q, err := search.Parse([]string{typ}, params, search.Options{Strict: true, Base: s.cfg.Base})
		if err != nil {
			return false, nil // a constraint this server cannot evaluate admits nothing
		}
		refs, err := rd.Match(ctx, q, 1)
		if err != nil {
			return false, err
		}
		if len(refs) == 1 {
			return true, nil
		}
	}
	return false, nil
}

// checkVersion enforces the principal's restriction on a stored version it is about to be handed.
func (s *Server) checkVersion(ctx context.Context, rd reads, v *store.Version, perm Perm) error {
	r, err := restriction(ctx, v.Type, perm)
	if err != nil || r.none() {
		return err
	}
	var tree *jsontree.Value
	if v.Content != nil {
		if tree, err = jsontree.Parse(v.Content); err != nil {
			return err
		}
	}
	ok, err := s.admits(ctx, rd, r, v.Type, v.ID, tree, true)
	if err != nil {
		return err
	}
	if !ok {
		return outside(v.Type, v.ID)
	}
	return nil
}

// outside is the refusal of a resource beyond the token's reach. It is a 403, not a 404: the
// client may know the id (from a reference), but not read it.
func outside(typ, id string) error {
	return fhir.Errorf(fhir.ErrForbidden, "forbidden", "%s/%s is outside what the token's scopes and launch context allow", typ, id)
}

// checkWrite enforces the restriction on a resource about to be written (its new content).
func (s *Server) checkWrite(ctx context.Context, rd reads, typ, id string, tree *jsontree.Value, perm Perm) error {
	r, err := restriction(ctx, typ, perm)
	if err != nil || r.none() {
		return err
	}
	ok, err := s.admits(ctx, rd, r, typ, id, tree, false)
	if err != nil {
		return err
	}
	if !ok {
		if len(r.Constraints) > 0 {
			return fhir.Errorf(fhir.ErrForbidden, "forbidden", "writes under query-constrained scopes are not supported")
		}
		return outside(typ, id)
	}
	return nil
}

// filterVersions keeps the versions the principal may see with perm (history entries, included
// resources, $everything). Deletions carry nothing to check, so they pass only without restriction.
func (s *Server) filterVersions(ctx context.Context, rd reads, vs []*store.Version, perm Perm) ([]*store.Version, error) {
	out := vs[:0:0]
	for _, v := range vs {
		r, ok := policyFrom(ctx).Allow(v.Type, perm)
		if !ok {
			continue
		}
		if !r.none() {
			if v.Content == nil {
				continue
			}
			tree, err := jsontree.Parse(v.Content)
			if err != nil {
				return nil, err
			}
			ok, err := s.admits(ctx, rd, r, v.Type, v.ID, tree, true)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// restrictQuery narrows a search to what the principal may search: the reach of patient-scoped
// types (reachOf), and a query constraint (added as criteria; with several, the request must
// already carry one of them).
func (s *Server) restrictQuery(ctx context.Context, q *search.Query, params url.Values) error {
	if err := s.reachOf(ctx, q, PermSearch); err != nil {
		return err
	}
	for _, typ := range q.Types {
		r, err := restriction(ctx, typ, PermSearch)
		if err != nil {
			return err
		}
		if c := q.Compartment; r.Patient != "" && c != nil && (c.OwnerType != "Patient" || c.OwnerID != r.Patient) {
			return fhir.Errorf(fhir.ErrForbidden, "forbidden", "the token is limited to Patient/%s", r.Patient)
		}
		if len(r.Constraints) == 0 {
			continue
		}
		if len(q.Types) > 1 {
			return fhir.Errorf(fhir.ErrForbidden, "forbidden", "%s is limited by a query-constrained scope: search it on its own", typ)
		}
		if carries(params, r.Constraints) {
			continue
		}
		if len(r.Constraints) > 1 {
			return fhir.Errorf(fhir.ErrForbidden, "forbidden", "%s is limited by several query-constrained scopes: repeat one of their criteria in the search", typ)
		}
		cq, err := search.Parse(q.Types, r.Constraints[0], search.Options{Strict: true, Base: s.cfg.Base})
		if err != nil {
			return fhir.Errorf(fhir.ErrForbidden, "forbidden", "the scope's query constraint cannot be applied: %v", err)
		}
		q.Clauses = append(q.Clauses, cq.Clauses...)
	}
	return nil
}

// carries reports whether the request's parameters include every criterion of one constraint.
func carries(params url.Values, constraints []url.Values) bool {
	for _, c := range constraints {
		all := true
		for k, want := range c {
			got := params[k]
			if len(got) == 0 || got[0] != want[0] {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// authorizeEntry checks one Bundle entry against the policy of the request carrying the Bundle.
func authorizeEntry(ctx context.Context, e *entry) error {
	perm := permOf(e.req.rt)
	if perm == 0 || e.req.rt.typ == "" {
		return nil
	}
	_, err := restriction(ctx, e.req.rt.typ, perm)
	return err
}
