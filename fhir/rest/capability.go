package rest

import (
	"slices"
	"strings"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/schema"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/searchparam"
)

// typeInteractions are the interactions served for every resource type. The CapabilityStatement is
// generated from these tables and the operations table, so it claims exactly what the router serves.
var typeInteractions = []string{IRead, IVRead, IUpdate, IPatch, IDelete, IHistoryInstance, IHistoryType, ICreate, ISearchType}

var systemInteractions = []string{"transaction", "batch", IHistorySystem, ISearchSystem}

var operationDefinitions = map[string]string{
	"validate":    "http://hl7.org/fhir/OperationDefinition/Resource-validate",
	"meta":        "http://hl7.org/fhir/OperationDefinition/Resource-meta",
	"meta-add":    "http://hl7.org/fhir/OperationDefinition/Resource-meta-add",
	"meta-delete": "http://hl7.org/fhir/OperationDefinition/Resource-meta-delete",
	"everything":  "http://hl7.org/fhir/OperationDefinition/Patient-everything",
	"export":      "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
}

// capabilityStatement renders GET /metadata once, at start-up.
// includesOf lists the _include values of a type (its reference parameters, and *) and the
// _revinclude values that can point at it (every reference parameter of any type that may target it).
func includesOf(typ string) (incs, revs []*jsontree.Value) {
	incs = append(incs, jsontree.NewString("*"))
	for _, p := range searchparam.ForType(typ) {
		if p.Type == searchparam.Reference && p.Expression != "" {
			incs = append(incs, jsontree.NewString(typ+":"+p.Code))
		}
	}
	for _, src := range schema.ResourceTypes() {
		for _, p := range searchparam.ForType(src) {
			if p.Type != searchparam.Reference || p.Expression == "" {
				continue
			}
			for _, t := range p.Targets {
				if t == typ || t == "Resource" {
					revs = append(revs, jsontree.NewString(src+":"+p.Code))
					break
				}
			}
		}
	}
	return incs, revs
}

func (s *Server) capabilityStatement() []byte {
	str := jsontree.NewString
	cs := jsontree.NewObject()
	cs.Set("resourceType", str("CapabilityStatement"))
	cs.Set("status", str("active"))
	cs.Set("date", str(resource.FormatInstant(s.cfg.Now())))
	cs.Set("publisher", str("Billy"))
	cs.Set("kind", str("instance"))
	cs.Set("software", obj("name", s.cfg.SoftwareName, "version", s.cfg.SoftwareVersion))
	cs.Set("implementation", obj("description", "Billy FHIR R4 server for medical billing", "url", s.cfg.Base))
	cs.Set("fhirVersion", str("4.0.1"))
	cs.Set("format", jsontree.NewArray(str("application/fhir+json"), str("json")))
	cs.Set("patchFormat", jsontree.NewArray(str("application/json-patch+json"), str("application/fhir+json")))

	var resources []*jsontree.Value
	for _, typ := range schema.ResourceTypes() {
		r := jsontree.NewObject()
		r.Set("type", str(typ))
		var ints []*jsontree.Value
		for _, code := range typeInteractions {
			ints = append(ints, obj("code", code))
		}
		r.Set("interaction", jsontree.NewArray(ints...))
		r.Set("versioning", str("versioned-update"))
		r.Set("readHistory", jsontree.NewBool(true))
		r.Set("updateCreate", jsontree.NewBool(true))
		r.Set("conditionalCreate", jsontree.NewBool(true))
		r.Set("conditionalRead", str("full-support"))
		r.Set("conditionalUpdate", jsontree.NewBool(true))
		r.Set("conditionalDelete", str("single"))
		r.Set("referencePolicy", jsontree.NewArray(str("literal"), str("logical")))
		var params []*jsontree.Value
		for _, p := range searchparam.ForType(typ) {
			if !search.IsSupported(typ, p.Code) {
				continue
			}
			doc := "modifiers: :" + strings.Join(search.Modifiers(p.Type), ", :")
			if p.Code == "_id" || p.Code == "_lastUpdated" {
				doc = ""
			}
			params = append(params, obj("name", p.Code, "definition", p.URL, "type", p.Type.String(), "documentation", doc))
		}
		r.Set("searchParam", jsontree.NewArray(params...))
		incs, revs := includesOf(typ)
		r.Set("searchInclude", jsontree.NewArray(incs...))
		if len(revs) > 0 {
			r.Set("searchRevInclude", jsontree.NewArray(revs...))
		}
		var ops []*jsontree.Value
		for _, name := range []string{"validate", "meta", "meta-add", "meta-delete", "everything"} {
			if name == "everything" && typ != "Patient" && typ != "Encounter" {
				continue
			}
			def := operationDefinitions[name]
			if name == "everything" && typ == "Encounter" {
				def = "http://hl7.org/fhir/OperationDefinition/Encounter-everything"
			}
			ops = append(ops, obj("name", name, "definition", def))
		}
		if s.cfg.Exports != nil && (typ == "Patient" || typ == "Group") {
			ops = append(ops, obj("name", "export", "definition", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"+strings.ToLower(typ)+"-export"))
		}
		for _, op := range s.cfg.Operations {
			if slices.Contains(op.Types, typ) {
				ops = append(ops, obj("name", op.Name, "definition", op.Definition))
			}
		}
		r.Set("operation", jsontree.NewArray(ops...))
		if typ == "AuditEvent" && s.cfg.Audit != nil {
			r = trailCapability()
		}
		resources = append(resources, r)
	}
	rest := jsontree.NewObject()
	rest.Set("mode", str("server"))
	rest.Set("documentation", str("Search: unknown parameters are ignored and reported in an outcome entry unless Prefer: handling=strict. "+
		"_count defaults to 20 (max 1000); _total defaults to none. Criteria of conditional interactions are always strict. "+
		"Not supported: _text, _content, _list, _query, _filter, near, and the terminology modifiers :above/:below/:in/:not-in on tokens."))
	if o := s.cfg.OAuth; o != nil {
		sec := jsontree.NewObject()
		var uris []*jsontree.Value
		for _, u := range [][2]string{{"authorize", o.Authorize}, {"token", o.Token}, {"introspect", o.Introspect}, {"revoke", o.Revoke}} {
			uris = append(uris, obj("url", u[0], "valueUri", u[1]))
		}
		ext := obj("url", "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris")
		ext.Set("extension", jsontree.NewArray(uris...))
		sec.Set("extension", jsontree.NewArray(ext))
		sec.Set("cors", jsontree.NewBool(true))
		svc := jsontree.NewObject()
		svc.Set("coding", jsontree.NewArray(obj("system", "http://terminology.hl7.org/CodeSystem/restful-security-service", "code", "SMART-on-FHIR")))
		sec.Set("service", jsontree.NewArray(svc))
		sec.Set("description", str("OAuth2 with SMART App Launch 2.x and Backend Services; see "+s.cfg.Base+"/.well-known/smart-configuration"))
		rest.Set("security", sec)
	}
	rest.Set("resource", jsontree.NewArray(resources...))
	var sys []*jsontree.Value
	for _, code := range systemInteractions {
		sys = append(sys, obj("code", code))
	}
	rest.Set("interaction", jsontree.NewArray(sys...))
	var sysOps []*jsontree.Value
	if s.cfg.Exports != nil {
		sysOps = append(sysOps, obj("name", "export", "definition", operationDefinitions["export"]))
		cs.Set("instantiates", jsontree.NewArray(str("http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data")))
	}
	for _, op := range s.cfg.Operations {
		if op.SystemLevel {
			sysOps = append(sysOps, obj("name", op.Name, "definition", op.Definition))
		}
	}
	if len(sysOps) > 0 {
		rest.Set("operation", jsontree.NewArray(sysOps...))
	}
	cs.Set("rest", jsontree.NewArray(rest))
	return cs.Marshal()
}
