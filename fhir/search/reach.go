package search

import (
	"strings"

	"slices"
	"sync"

	"github.com/iambilly/billy/fhir/fhirpath"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/schema"
	"github.com/iambilly/billy/fhir/searchparam"
)

// A patient's reach is the one rule that decides which resources a patient-scoped principal may
// touch. A resource is within patient P's reach when it is
//
//   - Patient/P itself (not the patients its link element names: they are other records),
//   - a member of P's compartment: a resource of a type in the R4 patient CompartmentDefinition that
//     refers to Patient/P through one of that definition's parameters (Observation.subject,
//     Claim.patient ...), or
//   - tied to a member by a link Billy knows (linkExprs): a Binary through securityContext, a Task
//     through for or focus, a Provenance through target, an AuditEvent through entity.what. Links go
//     one step: a Binary whose securityContext is a Media of P is within P's reach; a resource linked
//     to that Binary is not.
//
// Links computes the ties from a resource's own content, and Extract stores them as index rows
// (ReachMemberParam, ReachLinkParam), so the same rule answers both for a resource in hand (a write,
// a historical version) and in SQL for a search and everything it looks through (chains, _has).

// ReachMemberParam and ReachLinkParam are the index keys of the reach rows in search_reference:
// a member row points at the Patient whose compartment the resource is in; a link row at the
// resource whose reach it follows.
var (
	ReachMemberParam = ParamID("Resource", "_reach:member")
	ReachLinkParam   = ParamID("Resource", "_reach:link")
)

// linkExprs are the links Billy knows, by type: references whose target's reach the resource
// follows (a Patient target makes it a member directly).
var linkExprs = map[string]string{
	"Binary":     "Binary.securityContext",
	"Task":       "Task.for | Task.focus",
	"Provenance": "Provenance.target",
	"AuditEvent": "AuditEvent.entity.what",
}

// Ties are the ties of one resource to patients: the patients whose compartment it is in, and the
// resources whose reach it follows.
type Ties struct {
	Patients []string    // ids of the Patients it is a member for
	Links    []Reference // local, non-Patient targets of its links (Param unset)
}

// Tieable reports whether resources of typ can be within a patient's reach at all.
func Tieable(typ string) bool {
	if typ == "Patient" {
		return true
	}
	if _, ok := linkExprs[typ]; ok {
		return true
	}
	codes, ok := searchparam.PatientCompartment(typ)
	return ok && len(codes) > 0
}

// Linked reports whether resources of typ may be within a patient's reach through a link.
func Linked(typ string) bool {
	_, ok := linkExprs[typ]
	return ok
}

// reachRule is the compiled rule of one type.
type reachRule struct {
	member []compiled // the compartment's reference parameters
	link   *fhirpath.Expr
}

var reachRules sync.Map // type -> *reachRule

func ruleOf(typ string) *reachRule {
	if r, ok := reachRules.Load(typ); ok {
		return r.(*reachRule)
	}
	r := &reachRule{}
	if typ != "Patient" { // Patient.link names other patients' records
		codes, _ := searchparam.PatientCompartment(typ)
		for _, c := range paramsOf(typ) {
			if c.p.Type == searchparam.Reference && slices.Contains(codes, c.p.Code) {
				r.member = append(r.member, c)
			}
		}
	}
	if e, ok := linkExprs[typ]; ok {
		r.link = fhirpath.MustCompile(e)
	}
	actual, _ := reachRules.LoadOrStore(typ, r)
	return actual.(*reachRule)
}

// Links computes a resource's ties from its content. base is the server's FHIR base URL, so
// absolute references to it count as local. A Patient's tie to itself is not listed (it is its id).
func Links(typ string, tree *jsontree.Value, base string) Ties {
	var t Ties
	rule := ruleOf(typ)
	x := extractor{base: base}
	for _, c := range rule.member {
		nodes, err := c.expr.Eval(tree)
		if err != nil {
			continue
		}
		for _, n := range nodes {
			if v := n.Value; v != nil && v.Kind == jsontree.Object {
				if r, ok := x.target(v.GetString("reference")); ok && r.Type == "Patient" {
					t.Patients = append(t.Patients, r.ID)
				}
			}
		}
	}
	if rule.link != nil {
		nodes, _ := rule.link.Eval(tree)
		for _, n := range nodes {
			if v := n.Value; v != nil && v.Kind == jsontree.Object {
				switch r, ok := x.target(v.GetString("reference")); {
				case !ok || r.Type == "":
				case r.Type == "Patient":
					t.Patients = append(t.Patients, r.ID)
				default:
					t.Links = append(t.Links, r)
				}
			}
		}
	}
	slices.Sort(t.Patients)
	t.Patients = slices.Compact(t.Patients)
	t.Links = dedupeSlice(t.Links)
	return t
}

// Has reports whether the ties make a resource a member for patient.
func (t Ties) Has(patient string) bool { return slices.Contains(t.Patients, patient) }

// rows are the ties as reach index rows.
func (t Ties) rows() []Reference {
	out := make([]Reference, 0, len(t.Patients)+len(t.Links))
	for _, p := range t.Patients {
		out = append(out, Reference{Param: ReachMemberParam, Type: "Patient", ID: p})
	}
	for _, l := range t.Links {
		out = append(out, Reference{Param: ReachLinkParam, Type: l.Type, ID: l.ID})
	}
	return out
}

// Reach limits a search to what a principal may read: the matches, and every resource its chains
// and reverse chains look through. A nil *Reach limits nothing.
type Reach struct {
	// Patient is the patient whose reach bounds the types with access ReachPatient.
	Patient string
	// Types says how each type the query touches may be reached; a type not listed is not reachable
	// at all (its chain branches match nothing).
	Types map[string]Access
}

// Access is how a principal reaches the resources of a type.
type Access int8

// The kinds of access.
const (
	AccessNone    Access = iota // nothing of the type
	AccessAll                   // every resource of the type
	AccessPatient               // the resources within the patient's reach
)

// Of returns how typ may be reached. A nil Reach reaches everything.
func (r *Reach) Of(typ string) Access {
	if r == nil {
		return AccessAll
	}
	return r.Types[typ]
}

// Touched lists the types a query looks through besides its own: the target types of its chains
// and the referring types of its reverse chains, at every depth.
func (q *Query) Touched() []string {
	var out []string
	var walk func(cs []*Clause)
	walk = func(cs []*Clause) {
		for _, c := range cs {
			if c.Has != nil {
				out = append(out, c.HasType)
				walk([]*Clause{c.Has})
			}
			if len(c.Chain) > 0 {
				out = append(out, c.TargetTypes...)
				walk(c.Chain)
			}
		}
	}
	walk(q.Clauses)
	slices.Sort(out)
	return slices.Compact(out)
}

// attachmentPaths are, by type, the JSON paths (member names) of its Attachment elements.
var attachmentPaths sync.Map // type -> [][]string

func attachmentsOf(typ string) [][]string {
	if p, ok := attachmentPaths.Load(typ); ok {
		return p.([][]string)
	}
	var out [][]string
	var walk func(path string, at []string, depth int)
	walk = func(path string, at []string, depth int) {
		if depth > 6 {
			return
		}
		for _, e := range schema.Children(path) {
			name := e.Path[strings.LastIndexByte(e.Path, '.')+1:]
			switch {
			case slices.Contains(e.Types, "Attachment"):
				if e.Choice {
					name += "Attachment"
				}
				out = append(out, append(slices.Clone(at), name))
			case e.ContentRef != "" || (len(e.Types) == 1 && e.Types[0] == "BackboneElement"):
				walk(e.Path, append(slices.Clone(at), name), depth+1)
			}
		}
	}
	walk(typ, nil, 0)
	actual, _ := attachmentPaths.LoadOrStore(typ, out)
	return actual.([][]string)
}

// AttachedBinaries returns the ids of the local Binaries a resource's attachments point at
// (Attachment.url "Binary/{id}", or the same on this server's base).
func AttachedBinaries(typ string, tree *jsontree.Value, base string) []string {
	var out []string
	x := extractor{base: base}
	var visit func(v *jsontree.Value, path []string)
	visit = func(v *jsontree.Value, path []string) {
		switch {
		case v == nil:
		case v.Kind == jsontree.Array:
			for _, it := range v.Items {
				visit(it, path)
			}
		case len(path) == 0:
			if v.Kind == jsontree.Object {
				if r, ok := x.target(v.GetString("url")); ok && r.Type == "Binary" {
					out = append(out, r.ID)
				}
			}
		case v.Kind == jsontree.Object:
			visit(v.Get(path[0]), path[1:])
		}
	}
	for _, p := range attachmentsOf(typ) {
		visit(tree, p)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
