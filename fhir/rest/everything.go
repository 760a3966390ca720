package rest

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/schema"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/searchparam"
	"github.com/iambilly/billy/fhir/store"
)

// everything is Patient/{id}/$everything and Encounter/{id}/$everything: the owner, its compartment
// (for Patient the R4 patient CompartmentDefinition; for Encounter every resource whose encounter
// or context refers to it) and what those resources refer to, paged in rid order. _since, _type
// and _count narrow it.
func (s *Server) everything(ctx context.Context, rd reads, req *request) (*response, error) {
	q := store.EverythingQuery{OwnerType: req.rt.typ, OwnerID: req.rt.id, Count: defaultCount, Page: req.query.Get("_page")}
	if req.rt.typ == "Patient" {
		q.ParamIDs = patientCompartmentParams(schema.ResourceTypes())
	} else {
		q.ParamIDs = encounterParams()
	}
	if v := req.query.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fhir.Invalid("value", "_count", "_count=%q is not a positive integer", v)
		}
		q.Count = min(n, maxCount)
	}
	if v := req.query.Get("_since"); v != "" {
		lo, _, ok := search.ParseDateRange(v)
		if !ok {
			return nil, fhir.Invalid("value", "_since", "_since=%q is not a FHIR instant", v)
		}
		q.Since = lo
	}
	if v := req.query.Get("_type"); v != "" {
		for _, t := range strings.Split(v, ",") {
			if !schema.IsResourceType(t) {
				return nil, fhir.Invalid("value", "_type", "%q is not a resource type", t)
			}
			q.Types = append(q.Types, t)
		}
	}
	owner, err := rd.Read(ctx, q.OwnerType, q.OwnerID)
	if err == nil && !owner.Deleted() {
		err = s.checkVersion(ctx, rd, owner, PermRead)
	}
	if err != nil {
		return nil, err
	}
	vs, next, err := rd.Everything(ctx, q)
	if err != nil {
		return nil, err
	}
	if vs, err = s.filterVersions(ctx, rd, vs, PermRead); err != nil {
		return nil, err
	}
	auditFrom(ctx).query(req.rt.typ, req.query)
	auditFrom(ctx).touchAll(vs)
	b := newBundleOut("searchset")
	sq := &search.Query{}
	b.link("self", s.searchURL(req, sq, q.Page))
	if next != "" {
		b.link("next", s.searchURL(req, sq, next))
	}
	for _, v := range vs {
		b.entry(s.cfg.Base+"/"+v.Type+"/"+v.ID, v.Content, member("search", obj("mode", "match")))
	}
	return &response{status: http.StatusOK, body: b.marshal(s.cfg.Now())}, nil
}

// encounterParams are the reference parameters, over all types, named encounter or context that
// may refer to an Encounter: R4's Encounter compartment in all but name (medplum's definitions carry
// only the Patient compartment).
var encounterParams = sync.OnceValue(func() []int32 {
	var ids []int32
	for _, t := range schema.ResourceTypes() {
		for _, p := range searchparam.ForType(t) {
			if p.Type == searchparam.Reference && (p.Code == "encounter" || p.Code == "context") {
				for _, target := range p.Targets {
					if target == "Encounter" {
						ids = append(ids, search.IDOf(p, ""))
					}
				}
			}
		}
	}
	return ids
})
