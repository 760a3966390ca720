// Package hl7v2 receives HL7 v2 (2.3–2.8; tested with 2.5.1) over MLLP and applies it to Billy:
// ADT^A01/A03/A04/A08 → Patient + Encounter (and Coverage from IN1/IN2), ADT^A31 → Patient, ADT^A40
// → merge (the surviving Patient gains the merged one's identifiers and a "replaces" link, the
// merged one becomes inactive with "replaced-by"), SIU^S12–S15 → Appointment.
//
// It owns the hl7_ tables of migration 015 (control ids applied, rejected messages) and writes
// resources only through fhir/store (Prepare validates every resource, Update versions it); it must
// not touch the FHIR core's tables, and the core never imports it.
//
// # Acknowledgements
//
// Original mode (MSH-15 empty): AA once the message is committed, AE with ERR segments naming the
// field (ERR-2 location, ERR-3 code from table 0357) when its content is wrong, AR when it cannot be
// read or its type is not supported. Enhanced mode (MSH-15 set): CA/CE/CR under the same rules,
// sent or not as MSH-15 asks (AL, NE, ER, SU). Every message is applied in one transaction, so
// nothing is ever half-applied; a duplicate control id (per sending application and facility) is
// acknowledged AA without being applied again. Messages not applied are kept in hl7_errors (sealed
// with the master key) for `billy hl7 errors` and `billy hl7 replay ID`.
//
// # Group commit
//
// Connections hand their parsed, mapped and validated messages to a few commit loops; each loop
// applies all the messages waiting (up to MaxBatch) in one transaction and acknowledges each after
// the commit. A batch that fails is retried one message per transaction, so one bad message never
// fails its neighbours. Identity is derived (UUIDv5) from the v2 identifiers (PID-3 with its
// assigning authority, PV1-19, SCH-2, IN1-3), so replays and duplicates land on the same resources.
//
// # Why hand-written
//
// No HL7 v2 or MLLP library is served by the Go module proxy this project builds from (checked in
// December 2026), so the parser (delimiters from MSH-1/2, repetitions,
// components, escape sequences) and the MLLP framing (<VT> message <FS><CR>) are small and written
// here, with a fuzz target (FuzzParse). The segment-to-FHIR mapping follows HL7's published
// v2-to-FHIR mapping for the elements billing needs.
package hl7v2
