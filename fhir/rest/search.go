package rest

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/schema"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/searchparam"
	"github.com/iambilly/billy/fhir/store"
)

// searchFor parses a search request: the types searched, the compartment, and the parameters.
func (s *Server) searchQuery(req *request) (*search.Query, error) {
	var types []string
	var comp *search.Compartment
	switch {
	case req.rt.compartment != "":
		var err error
		types, comp, err = compartmentOf(req.rt.typ, req.rt.id, req.rt.compartment)
		if err != nil {
			return nil, err
		}
	case req.rt.interaction == ISearchSystem:
		types = schema.ResourceTypes()
		if t := req.query.Get("_type"); t != "" {
			types = nil
			for _, name := range strings.Split(t, ",") {
				name = strings.TrimSpace(name)
				if !schema.IsResourceType(name) {
					return nil, fhir.Invalid("value", "_type", "%q is not a resource type", name)
				}
				types = append(types, name)
			}
		}
	default:
		types = []string{req.rt.typ}
	}
	q, err := search.Parse(types, req.query, s.searchOptions(req.prefer.strict))
	if err != nil {
		return nil, err
	}
	q.Compartment = comp
	return q, nil
}

// compartmentOf resolves Patient/{id}/{type} (or /*): the types searched and the compartment's
// reference parameters (R4 patient CompartmentDefinition).
func compartmentOf(ownerType, ownerID, which string) ([]string, *search.Compartment, error) {
	if ownerType != "Patient" {
		return nil, nil, fhir.Errorf(fhir.ErrNotFound, "not-supported", "only the Patient compartment is supported, not %s", ownerType)
	}
	var types []string
	if which == "*" {
		for _, t := range schema.ResourceTypes() {
			if params, ok := searchparam.PatientCompartment(t); ok && len(params) > 0 {
				types = append(types, t)
			}
		}
		types = append(types, "Patient")
	} else {
		if _, ok := searchparam.PatientCompartment(which); !ok {
			return nil, nil, fhir.Errorf(fhir.ErrNotFound, "not-found", "%s is not in the Patient compartment", which)
		}
		types = []string{which}
	}
	comp := &search.Compartment{OwnerType: ownerType, OwnerID: ownerID, ParamIDs: patientCompartmentParams(types)}
	return dedupe(types), comp, nil
}

func dedupe(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// patientCompartmentParams are the index keys of the reference parameters that put resources of
// types into a patient's compartment.
func patientCompartmentParams(types []string) []int32 {
	var ids []int32
	for _, t := range types {
		codes, _ := searchparam.PatientCompartment(t)
		for _, c := range codes {
			if p, ok := searchparam.Lookup(t, c); ok && p.Type == searchparam.Reference {
				ids = append(ids, search.IDOf(p, ""))
			}
		}
	}
	return ids
}

// search serves type, system and compartment searches.
func (s *Server) search(ctx context.Context, rd reads, req *request) (*response, error) {
	q, err := s.searchQuery(req)
	if err != nil {
		return nil, err
	}
	if err := s.restrictQuery(ctx, q, req.query); err != nil {
		return nil, err
	}
	auditFrom(ctx).query(req.rt.typ, req.query)
	res, err := rd.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	auditFrom(ctx).touchAll(res.Matches)
	var included []*store.Version
	truncated := false
	if len(res.Matches) > 0 && (len(q.Include) > 0 || len(q.RevInclude) > 0) {
		if included, truncated, err = rd.Include(ctx, res.Matches, q.Include, q.RevInclude); err != nil {
			return nil, err
		}
		if included, err = s.filterVersions(ctx, rd, included, PermRead); err != nil {
			return nil, err
		}
	}
	auditFrom(ctx).touchAll(included)
	b := newBundleOut("searchset")
	b.total = res.Total
	self := s.searchURL(req, q, q.Page)
	b.link("self", self)
	if q.Page != "" {
		b.link("first", s.searchURL(req, q, ""))
	}
	if res.Prev != "" {
		b.link("previous", s.searchURL(req, q, res.Prev))
	}
	if res.Next != "" {
		b.link("next", s.searchURL(req, q, res.Next))
	}
	sub := newSubsetter(q.Summary, q.Elements)
	for _, v := range res.Matches {
		b.entry(s.cfg.Base+"/"+v.Type+"/"+v.ID, sub.apply(v), member("search", obj("mode", "match")))
	}
	for _, v := range included {
		b.entry(s.cfg.Base+"/"+v.Type+"/"+v.ID, sub.apply(v), member("search", obj("mode", "include")))
	}
	var warnings []fhir.Issue
	for _, ig := range q.Ignored {
		warnings = append(warnings, fhir.Issue{Severity: fhir.SeverityWarning, Code: "not-supported",
			Diagnostics: "parameter " + ig.Name + " was ignored: " + ig.Reason, Expression: []string{ig.Name}})
	}
	if truncated {
		warnings = append(warnings, fhir.Issue{Severity: fhir.SeverityWarning, Code: "too-costly",
			Diagnostics: "_include/_revinclude results were cut at 1000 resources for this page; page with a smaller _count"})
	}
	if len(warnings) > 0 {
		b.entry("", outcomeJSON(warnings), member("search", obj("mode", "outcome")))
	}
	return &response{status: http.StatusOK, body: b.marshal(s.cfg.Now())}, nil
}

// searchURL is the link to a page of this search: the parameters that were understood (ignored
// ones are left out, as search.html asks), and the page cursor.
func (s *Server) searchURL(req *request, q *search.Query, page string) string {
	ignored := map[string]bool{}
	for _, ig := range q.Ignored {
		ignored[ig.Name] = true
	}
	keep := url.Values{}
	for k, vs := range req.query {
		if ignored[k] || k == "_page" || k == "_format" || k == "_pretty" {
			continue
		}
		keep[k] = vs
	}
	if page != "" {
		keep.Set("_page", page)
	}
	path := s.cfg.Base
	switch {
	case req.rt.compartment != "":
		path += "/" + req.rt.typ + "/" + req.rt.id + "/" + req.rt.compartment
	case req.rt.typ != "":
		path += "/" + req.rt.typ
	}
	if req.rt.interaction == IOperation {
		path += "/" + req.rt.id + "/$" + req.rt.op
	}
	if len(keep) == 0 {
		return path
	}
	return path + "?" + keep.Encode()
}

// subsetter applies _summary and _elements to stored resources. Without either, stored bytes are
// passed through untouched.
type subsetter struct {
	summary  string
	elements map[string]bool
}

func newSubsetter(summary string, elements []string) *subsetter {
	sub := &subsetter{summary: summary}
	if len(elements) > 0 {
		sub.elements = map[string]bool{}
		for _, e := range elements {
			// "Patient.name" and "name" both name the element name.
			if i := strings.LastIndexByte(e, '.'); i >= 0 {
				e = e[i+1:]
			}
			sub.elements[e] = true
		}
	}
	return sub
}

func (sub *subsetter) active() bool {
	return sub.elements != nil || (sub.summary != "" && sub.summary != "false")
}

// apply returns the resource's JSON, subsetted when asked (and tagged SUBSETTED when something was
// left out).
func (sub *subsetter) apply(v *store.Version) []byte {
	if !sub.active() {
		return v.Content
	}
	tree, err := jsontree.Parse(v.Content)
	if err != nil {
		return v.Content
	}
	if !sub.subset(tree, v.Type) {
		return v.Content
	}
	return tree.Marshal()
}

// subset keeps the members the summary mode or element list asks for, always with resourceType,
// id, meta and the elements the resource type requires (min >= 1). It reports whether it removed
// anything.
func (sub *subsetter) subset(tree *jsontree.Value, typ string) bool {
	info := elementInfo(typ)
	keep := func(name string) bool {
		switch name {
		case "resourceType", "id", "meta":
			return true
		}
		el := info[name]
		if el == nil {
			return true // unknown to the schema (should not happen): never drop silently
		}
		if el.Min > 0 && sub.summary != "data" {
			return true
		}
		if sub.elements != nil {
			return sub.elements[el.name]
		}
		switch sub.summary {
		case "true":
			return el.Summary
		case "text":
			return el.name == "text"
		case "data":
			return el.name != "text"
		}
		return true
	}
	removed := false
	out := tree.Members[:0]
	for _, m := range tree.Members {
		name := strings.TrimPrefix(m.Key, "_")
		if keep(name) {
			out = append(out, m)
		} else {
			removed = true
		}
	}
	tree.Members = out
	if removed {
		markSubsetted(tree)
	}
	return removed
}

// markSubsetted adds the SUBSETTED security tag (search.html#summary).
func markSubsetted(tree *jsontree.Value) {
	meta := tree.Get("meta")
	if meta == nil {
		meta = jsontree.NewObject()
		tree.SetAfter("meta", meta, "id", "resourceType")
	}
	tag := obj("system", "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code", "SUBSETTED", "display", "Resource encoded in summary mode")
	if tags := meta.Get("tag"); tags != nil && tags.Kind == jsontree.Array {
		tags.Items = append(tags.Items, tag)
		return
	}
	meta.Set("tag", jsontree.NewArray(tag))
}

// element is what subsetting needs to know of a top-level element, keyed by every JSON name it
// may take (choice elements by each typed name).
type element struct {
	name    string
	Min     int
	Summary bool
}

var elementInfoCache sync.Map // type -> map[string]*element

func elementInfo(typ string) map[string]*element {
	if m, ok := elementInfoCache.Load(typ); ok {
		return m.(map[string]*element)
	}
	m := map[string]*element{}
	for _, el := range schema.Children(typ) {
		name := el.Path[strings.LastIndexByte(el.Path, '.')+1:]
		e := &element{name: name, Min: el.Min, Summary: el.Summary}
		m[name] = e
		if el.Choice {
			for _, t := range el.Types {
				m[name+strings.ToUpper(t[:1])+t[1:]] = e
			}
		}
	}
	elementInfoCache.Store(typ, m)
	return m
}
