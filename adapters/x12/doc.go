// Package x12 is Billy's payer format: HIPAA X12 837P (005010X222A1) claims out and X12 835
// (005010X221A1) remittance advice in.
//
// It owns the typed 837P and 835 models (Batch, Remittance), the writer and reader of their X12
// text, the mapping from stored FHIR resources (Claim, Patient, Coverage, Organization,
// Practitioner) to an 837P and from an 835 to ClaimResponse and PaymentReconciliation resources,
// and its tables (migrations/014): control numbers that are never reused, the patient control
// number sent in each CLM01, and the interchanges written and read. Resources are read and written
// through the caller's Source and the store, so the requester's authorization applies (the FHIR
// operations hand it a rest.Requester; the admin commands read everything). It must not speak HTTP
// or decide authorization itself.
//
// Hand-written: no Go library on the module proxy writes 837P or imports 835 with the loops of the
// implementation guides. The tests validate Billy's 837P with moov-io/x12's 005010X222A1 rules and
// read the 835 samples with jf-tech/omniparser's EDI reader as well as Billy's (README, "Payers").
package x12
