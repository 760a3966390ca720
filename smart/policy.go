package smart

import (
	"context"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/rest"
	"github.com/iambilly/billy/smart/scope"
)

// Authorizer is the FHIR API's rest.Authorizer under SMART: the request's principal (put in the
// context by Verifier.Middleware) must exist, and its scopes and launch context become the policy
// the API applies to everything the request touches.
type Authorizer struct{}

var _ rest.Authorizer = Authorizer{}

// Authorize requires an authenticated principal, except for the CapabilityStatement, which is
// public (clients discover the server before they have a token).
func (Authorizer) Authorize(ctx context.Context, a rest.Access) (rest.Policy, error) {
	if a.Interaction == rest.ICapabilities {
		return nil, nil
	}
	p := PrincipalFrom(ctx)
	if p == nil {
		if err := authError(ctx); err != nil {
			return nil, fhir.Errorf(fhir.ErrUnauthorized, "login", "invalid access token: %v", err)
		}
		return nil, fhir.Errorf(fhir.ErrUnauthorized, "login", "this server requires a SMART access token (Authorization: Bearer ...)")
	}
	return policy{p}, nil
}

// policy applies a principal's scopes: user- and system-level scopes grant a type outright,
// patient-level ones only within the launch patient's compartment (and not at all without one).
type policy struct{ p *Principal }

var permOf = map[rest.Perm]scope.Perm{
	rest.PermCreate: scope.Create, rest.PermRead: scope.Read, rest.PermUpdate: scope.Update,
	rest.PermDelete: scope.Delete, rest.PermSearch: scope.Search,
}

// Allow grants perm on typ as the scopes say. The audit trail (AuditEvent) is granted only by user- or system-level scopes that name it
// (user/AuditEvent.rs, system/AuditEvent.rs): a wildcard such as user/*.cruds does not reach it,
// and no patient-level scope does.
func (pl policy) Allow(typ string, perm rest.Perm) (rest.Restriction, bool) {
	set := pl.p.Scopes
	if typ == "AuditEvent" {
		set = &scope.Set{}
		for _, r := range pl.p.Scopes.Resources {
			if r.Type == typ && r.Level != scope.Patient {
				set.Resources = append(set.Resources, r)
			}
		}
	}
	g := set.Grant(typ, permOf[perm])
	if !g.Allowed {
		return rest.Restriction{}, false
	}
	r := rest.Restriction{Constraints: g.Constraints}
	if g.PatientOnly {
		if pl.p.Patient == "" {
			return rest.Restriction{}, false
		}
		r.Patient = pl.p.Patient
	}
	return r, true
}
