// Package coder codes an encounter transcript into ICD-10-CM diagnoses, CPT/HCPCS procedure lines
// and an office/outpatient E/M level, each with evidence (quoted spans of the transcript with byte
// offsets) and a confidence. It owns two engines behind one interface (Coder) and the guards both
// share (Guard).
//
// It reads the code sets and the ICD-10-CM index and CMS tables (pipeline/codes) and, for the LLM
// engine, the knowledge base (pipeline/kb, through the small Retriever interface). It must not touch
// FHIR resources: the caller turns a Result into a Claim, and decides from Result.Dropped and
// Result.Review what to show a reviewer.
//
// # Built-in coder (no model)
//
// Builtin is deterministic and written by hand, because no Go library does clinical coding. Its
// vocabulary is data: the embedded files of data/ (triggers, synonyms, broader terms, excluded code
// ranges, drug classes and aliases, family-history categories, includes and use-additional notes,
// procedures, radiographs), each read by one small reader, so adding a term adds a line.
//
//   - segmentation (text.go): sections from headers, dialogue speakers ("Doctor:", "Mother:"),
//     sentences and clauses; in a recorded visit, the clinician's dictation ("Let me dictate. ...")
//     is the note, with its spoken headers (Exam:, Assessment:, Plan:, results before a colon);
//     without a spoken assessment the dictation is the assessment;
//   - assertions (context.go): a NegEx/ConText analysis (pre- and post-triggers, scope windows,
//     termination terms, pseudo-triggers; data/context.txt) for negation, uncertainty, hypotheticals
//     (counselling, warnings, side effects, plans), history and the experiencer;
//   - candidates from the whole code set (index.go, describe.go): every billable ICD-10-CM long
//     description is read as word requirements with the conventions of the Official Guidelines
//     (I.A: nonessential modifiers, "unspecified" defaults, "with"/"without", coordination, 7th
//     characters by encounter, manifestation codes only beside their etiology); an assessed sentence
//     supports the code whose essential words it asserts close together, the most specific one
//     winning. A hand-written concept dictionary (dict.go) stays as a precision layer for the
//     combination rules it knows (diabetes, hypertension with heart or kidney disease, CKD stage,
//     asthma, COPD, depression, atrial fibrillation);
//   - coding policy (resolve.go, substances.go): with an assessment, only assessed conditions are
//     coded, in the order dictated; uncertain diagnoses are not coded and their symptoms are (IV.H);
//     symptoms integral to a diagnosis are not (I.B.5) unless its note asks for them; relatives'
//     conditions become Z80-Z84 by category, past ones Z85-Z87; adverse effects, underdosing (with
//     intent) and poisonings from the Table of Drugs (I.C.19.e); long-term drug therapy (Z79) and drug
//     allergy status (Z88) by drug class; weeks of gestation with pregnancy codes (I.C.15);
//   - procedures (procedures.go, data/procedures.txt): in-office tests (QW where CLIA requires),
//     injections with HCPCS drug units, vaccines with administration (and counselling codes through
//     18 years, Medicare's G-codes), minor procedures, radiographs by views and side, screening
//     instruments, psychotherapy add-ons, device checks, only when documented as done at the visit;
//     units capped at the CMS practitioner MUE;
//   - E/M (em.go, visit.go): 2021 office rules, MDM (problems, data, risk; two of three) or total
//     time on the date, whichever is higher; preventive visits by age; 99211 for nurse visits; no E/M
//     inside a global surgical period (99024) or for a visit that is only a minor procedure (CMS global
//     days), modifier 25 when a separately identifiable E/M accompanies one or a preventive service;
//   - confidence: every code is rated; those under ReviewBelow are listed in Result.Review.
//
// Its quality is measured on the development sets (TestDevelopmentSet, TestHeldOutSet) and on
// development set B, 40 encounters written by someone else and scored by their own scorer through the
// production configuration (TestDevsetB); its speed by BenchmarkBuiltinLongNote and
// cmd/billybench-coding.
//
// # LLM coder
//
// LLM calls an OpenAI-compatible /v1/chat/completions endpoint with a JSON-schema-constrained answer,
// a prompt built from the transcript, candidate codes (the built-in coder's and retrieved ones) and
// retrieved guideline passages. Every quoted evidence is relocated in the transcript; a code whose
// quotes are not found is dropped; a code the built-in coder did not find is flagged for review. Then
// the same Guard runs.
//
// # Guards
//
// Guard rejects codes that do not exist or are not billable, sex/age edit failures, Excludes1 and
// combination-code pairs (flagging the code it keeps), evidence that is negated, uncertain or about
// a relative, more than 12 diagnoses or 4 pointers per line, and fixes modifier 25 on the E/M.
// Everything rejected lands in Result.Dropped with a reason; low-confidence codes in Result.Review.
package coder
