package rest

import (
	"time"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/schema"
)

// typeInteractions are the interactions served for every resource type. The CapabilityStatement is
// generated from these tables and the operations table, so it claims exactly what the router serves.
var typeInteractions = []string{IRead, IVRead, IUpdate, IPatch, IDelete, IHistoryInstance, IHistoryType, ICreate}

var systemInteractions = []string{"transaction", "batch", IHistorySystem}

var operationDefinitions = map[string]string{
	"validate":    "http://hl7.org/fhir/OperationDefinition/Resource-validate",
	"meta":        "http://hl7.org/fhir/OperationDefinition/Resource-meta",
	"meta-add":    "http://hl7.org/fhir/OperationDefinition/Resource-meta-add",
	"meta-delete": "http://hl7.org/fhir/OperationDefinition/Resource-meta-delete",
}

// capabilityStatement renders GET /metadata once, at start-up.
func (s *Server) capabilityStatement() []byte {
	str := jsontree.NewString
	cs := jsontree.NewObject()
	cs.Set("resourceType", str("CapabilityStatement"))
	cs.Set("status", str("active"))
	cs.Set("date", str(resource.FormatInstant(time.Now())))
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
		var ops []*jsontree.Value
		for _, name := range []string{"validate", "meta", "meta-add", "meta-delete"} {
			ops = append(ops, obj("name", name, "definition", operationDefinitions[name]))
		}
		r.Set("operation", jsontree.NewArray(ops...))
		resources = append(resources, r)
	}
	rest := jsontree.NewObject()
	rest.Set("mode", str("server"))
	rest.Set("documentation", str("Conditional create, update, patch and delete accept the criteria _id, _lastUpdated and token "+
		"parameters such as identifier; criteria are always strict (an unsupported parameter is a 400)."))
	rest.Set("resource", jsontree.NewArray(resources...))
	var sys []*jsontree.Value
	for _, code := range systemInteractions {
		sys = append(sys, obj("code", code))
	}
	rest.Set("interaction", jsontree.NewArray(sys...))
	cs.Set("rest", jsontree.NewArray(rest))
	return cs.Marshal()
}
