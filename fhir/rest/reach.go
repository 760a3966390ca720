package rest

import (
	"context"
	"errors"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/store"
)

// Patient-scoped principals (SMART patient/ scopes) reach one patient's data. The rule of what
// that is lives in fhir/search (reach.go): the patient, the members of its compartment, and what is
// linked to a member (Binary.securityContext, Task.for/focus, Provenance.target,
// AuditEvent.entity.what). Read, vread, history, search and what searches look through (chains,
// _has), includes, compartment URLs, $everything, conditional matches, batch and transaction
// entries all apply it: in SQL for searches (store), here for a resource in hand. Resources of the
// shared types below are directories and definitions, not any patient's data, and are reached as
// the scopes allow. Everything else is refused.

// sharedTypes are the types a patient-scoped principal reaches without a tie to its patient: who
// and where care is given (practitioners, organizations, locations), what may be given
// (medications, substances), and definitions (code systems, questionnaires...). None of them is in
// the R4 patient compartment or names a patient.
var sharedTypes = map[string]bool{
	"Practitioner": true, "PractitionerRole": true, "Organization": true, "OrganizationAffiliation": true,
	"Location": true, "HealthcareService": true, "Endpoint": true,
	"Medication": true, "MedicationKnowledge": true, "Substance": true,
	"CodeSystem": true, "ValueSet": true, "ConceptMap": true, "NamingSystem": true,
	"StructureDefinition": true, "SearchParameter": true, "OperationDefinition": true,
	"CapabilityStatement": true, "CompartmentDefinition": true, "ImplementationGuide": true,
	"Questionnaire": true, "ActivityDefinition": true, "PlanDefinition": true, "Library": true,
}

// inReach reports whether a resource (its content in tree; nil for a deletion) is within the
// patient's reach.
func (s *Server) inReach(ctx context.Context, rd reads, typ, id string, tree *jsontree.Value, patient string) (bool, error) {
	if sharedTypes[typ] {
		return true, nil
	}
	if typ == "Patient" {
		return id == patient, nil
	}
	if tree == nil || !search.Tieable(typ) {
		return false, nil
	}
	ties := search.Links(typ, tree, s.cfg.Base)
	if ties.Has(patient) {
		return true, nil
	}
	return rd.AnyMember(ctx, patient, ties.Links)
}

// accessOf is how a principal with restriction r reaches a type in searches.
func accessOf(typ string, r Restriction) search.Access {
	if r.Patient == "" || sharedTypes[typ] {
		return search.AccessAll
	}
	return search.AccessPatient
}

// reachOf sets q.Reach from the principal's policy: the patient bounding patient-scoped types, and
// for every type the search looks through (chain targets, _has referrers) whether the principal may
// search it at all. A type under a query-constrained scope cannot be looked through: the
// constraint would not bound what a chain probes, so it is refused. perm is what the principal
// needs on q's own types; 0 takes the first permission it has (the criteria of a conditional
// interaction, which is authorized on its own).
func (s *Server) reachOf(ctx context.Context, q *search.Query, perm Perm) error {
	rc := &search.Reach{Types: map[string]search.Access{}}
	limited := false
	note := func(typ string, r Restriction) {
		a := accessOf(typ, r)
		if a == search.AccessPatient {
			rc.Patient, limited = r.Patient, true
		}
		rc.Types[typ] = a
	}
	for _, typ := range q.Types {
		r, err := restrictionFor(ctx, typ, perm)
		if err != nil {
			return err
		}
		note(typ, r)
	}
	for _, typ := range q.Touched() {
		r, ok := policyFrom(ctx).Allow(typ, PermSearch)
		if !ok {
			rc.Types[typ], limited = search.AccessNone, true
			continue
		}
		if len(r.Constraints) > 0 {
			return fhir.Errorf(fhir.ErrForbidden, "forbidden", "chains and _has cannot look through %s: the token's scopes limit it by a query; search it directly", typ)
		}
		note(typ, r)
	}
	if limited {
		q.Reach = rc
	}
	return nil
}

// readReach is the reach of a principal reading resources of types (history), nil when it
// reads all of them without limit. Types it may not read are not reached.
func readReach(ctx context.Context, types []string) *search.Reach {
	rc := &search.Reach{Types: map[string]search.Access{}}
	limited := false
	for _, typ := range types {
		r, ok := policyFrom(ctx).Allow(typ, PermRead)
		a := accessOf(typ, r)
		switch {
		case !ok:
			a = search.AccessNone
		case a == search.AccessPatient:
			rc.Patient = r.Patient
		}
		rc.Types[typ] = a
		limited = limited || a != search.AccessAll
	}
	if !limited {
		return nil
	}
	return rc
}

// restrictionFor is restriction for perm, or with perm 0 for the first permission the principal
// has on typ.
func restrictionFor(ctx context.Context, typ string, perm Perm) (Restriction, error) {
	if perm != 0 {
		return restriction(ctx, typ, perm)
	}
	for _, p := range []Perm{PermRead, PermSearch, PermUpdate, PermDelete, PermCreate} {
		if r, ok := policyFrom(ctx).Allow(typ, p); ok {
			return r, nil
		}
	}
	return restriction(ctx, typ, PermRead)
}

// securityContextFor gives a Binary written under a patient-scoped principal without a
// securityContext its patient, so that it stays within that patient's reach.
func securityContextFor(ctx context.Context, tree *jsontree.Value) {
	if tree.Get("securityContext") != nil {
		return
	}
	for _, perm := range []Perm{PermCreate, PermUpdate} {
		if r, ok := policyFrom(ctx).Allow("Binary", perm); ok && r.Patient != "" {
			tree.Set("securityContext", obj("reference", "Patient/"+r.Patient))
			return
		}
	}
}

// claimBinaries makes each resource written the securityContext of the Binaries its attachments
// point at ("Binary/{id}") that have none yet, in the same transaction: a recording uploaded raw
// and then described by a Media follows that Media's patient from then on. Only a principal that
// may update every Binary claims one (an unclaimed Binary is outside every patient's reach), and a
// Binary once claimed keeps its securityContext.
func (s *Server) claimBinaries(ctx context.Context, tx *store.Tx, ws ...*store.Write) error {
	if r, ok := policyFrom(ctx).Allow("Binary", PermUpdate); !ok || !r.none() {
		return nil
	}
	for _, w := range ws {
		if w.Type == "Binary" {
			continue
		}
		for _, id := range search.AttachedBinaries(w.Type, w.Tree, s.cfg.Base) {
			cur, err := tx.ReadForUpdate(ctx, "Binary", id, 0)
			if errors.Is(err, fhir.ErrNotFound) || errors.Is(err, fhir.ErrGone) {
				continue
			}
			if err != nil {
				return err
			}
			tree, err := jsontree.Parse(cur.Content)
			if err != nil {
				return err
			}
			if tree.Get("securityContext") != nil {
				continue
			}
			tree.Set("securityContext", obj("reference", w.Type+"/"+w.ID))
			blob, err := tx.BlobOf(ctx, cur)
			if err != nil {
				return err
			}
			bw, err := s.prepareWrite(ctx, "Binary", id, tree, blob)
			if err != nil {
				return err
			}
			bw.Method = store.MethodUpdate
			if _, _, err := tx.Update(ctx, bw, cur.Version); err != nil {
				return err
			}
		}
	}
	return nil
}
