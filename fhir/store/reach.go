package store

import (
	"context"

	"github.com/iambilly/billy/fhir/search"
)

// andReach appends " AND <condition>" that resources aliased t, of type typ ("" when the alias
// may hold several types), are within what the query's reach lets the principal read
// (search.Reach; the rule itself is in fhir/search/reach.go). Without a reach it appends nothing.
func (b *builder) andReach(t, typ string) {
	rc := b.rc
	if rc == nil {
		return
	}
	b.add(" AND ")
	if typ != "" {
		switch rc.Of(typ) {
		case search.AccessAll:
			b.add("true")
		case search.AccessPatient:
			b.patientReach(t, typ, rc.Patient)
		default:
			b.add("false")
		}
		return
	}
	var all []string
	for ty, a := range rc.Types {
		if a == search.AccessAll {
			all = append(all, ty)
		}
	}
	b.add("(" + t + ".type = ANY(").arg(all).add(") OR (" + t + ".type = ANY(").arg(patientTypes(rc)).add(") AND ")
	b.patientReach(t, "", rc.Patient)
	b.add("))")
}

func patientTypes(rc *search.Reach) []string {
	var out []string
	for ty, a := range rc.Types {
		if a == search.AccessPatient {
			out = append(out, ty)
		}
	}
	return out
}

// patientReach appends "resource t is within patient's reach": Patient/patient itself, a member
// of its compartment, or linked to a member. typ narrows the branches to those that can apply.
func (b *builder) patientReach(t, typ, patient string) {
	if typ != "" && !search.Tieable(typ) {
		b.add("false")
		return
	}
	b.add("(")
	if typ == "" || typ == "Patient" {
		b.add("(" + t + ".type = 'Patient' AND " + t + ".id = ").arg(patient).add(")")
		if typ == "Patient" {
			b.add(")")
			return
		}
		b.add(" OR ")
	}
	b.add(t + ".rid IN (")
	b.members(patient)
	if typ == "" || search.Linked(typ) {
		m := b.alias("m")
		b.add(" UNION ALL SELECT l.rid FROM search_reference l WHERE l.param = ").arg(search.ReachLinkParam).
			add(" AND (l.target_id, l.target_type) IN (SELECT " + m + ".id, " + m + ".type FROM resources " + m + " WHERE " + m + ".rid IN (")
		b.members(patient)
		b.add("))")
	}
	b.add("))")
}

// members appends the query of the rids of the members of patient's compartment.
func (b *builder) members(patient string) {
	b.add("SELECT rid FROM search_reference WHERE param = ").arg(search.ReachMemberParam).
		add(" AND target_id = ").arg(patient).add(" AND target_type = 'Patient'")
}

// AnyMember reports whether one of the resources refs names is, in its current version, a member
// of patient's compartment: the test a link needs (search.Links), on the same index rows searches
// use.
func (r reader) AnyMember(ctx context.Context, patient string, refs []search.Reference) (bool, error) {
	if len(refs) == 0 {
		return false, nil
	}
	types, ids := make([]string, len(refs)), make([]string, len(refs))
	for i, ref := range refs {
		types[i], ids[i] = ref.Type, ref.ID
	}
	var b builder
	b.add("SELECT EXISTS (SELECT 1 FROM unnest(").arg(types).add("::text[], ").arg(ids).
		add("::text[]) AS p(type, id) JOIN resources r ON r.type = p.type AND r.id = p.id WHERE r.rid IN (")
	b.members(patient)
	b.add("))")
	var ok bool
	if err := r.q.QueryRow(ctx, b.String(), b.queryArgs()...).Scan(&ok); err != nil {
		return false, internal("reach", err)
	}
	return ok, nil
}
