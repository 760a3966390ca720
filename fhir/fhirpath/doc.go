// Package fhirpath compiles and evaluates FHIRPath (N1, as FHIR R4 uses it) over resources held
// as jsontree trees. Billy needs it twice: at write time to extract search index values with the
// R4 SearchParameter expressions, where the caller must know the FHIR type of what it got
// (CodeableConcept or Identifier, Period or dateTime); and for FHIRPath Patch, where the caller
// needs the location (Parent, Key, Index) of every match to change the tree.
//
// It owns the expression language: lexing, parsing, typing of tree nodes through fhir/schema
// (choice elements, backbone elements, contained and bundled resources, primitives and their
// "_name" twins), operators and functions. It must not modify a tree, do I/O, or know about
// search indexes, patch operations or HTTP: callers decide what a result means. It must not
// guess: a JSON member the schema does not define is not navigable.
//
// # Typing
//
// The root is typed by its resourceType. A child step looks the element up by the parent's type
// ("Observation.component" for a backbone element, "HumanName" for a data type, base types for
// inherited elements, content references for recursive ones). A choice element matches whichever
// typed member is present: Observation.value finds valueQuantity with Type "Quantity" and
// valueDateTime with Type "dateTime". A capitalised first step is a type test on the focus:
// Patient.name is empty on an Observation; Resource.id and DomainResource.text match any
// resource that derives from them.
//
// # Not supported
//
// There is no terminology (memberOf() is empty), no UCUM unit conversion (quantities compare
// only in the same unit), no date arithmetic, and resolve() reads reference literals instead of
// a database: it finds contained resources, and otherwise a stand-in node typed by the
// reference. Departures from the letter of N1 that the R4 tables need are noted where they are
// made: "as" filters whole collections, and System types match the FHIR primitives that carry
// them (value.as(DateTime) finds a dateTime).
//
// # Cost
//
// Expressions come from clients, so compiling is bounded by MaxLength and MaxNesting, and
// evaluation by MaxCollection and MaxSteps; exceeding them is ErrLimit. Compiled expressions
// cache their schema lookups per path step and are safe for concurrent use.
//
// It is hand-written because the Go FHIRPath implementations evaluate their own models (google/fhir
// protocol buffers in verily-src/fhirpath-go, generated structs elsewhere), which would mean
// converting every resource, and none reports where in the document a result lives.
package fhirpath
