// Package coder codes an encounter transcript into ICD-10-CM diagnoses, CPT/HCPCS procedure lines
// and an office/outpatient E/M level, each with evidence (quoted spans of the transcript with byte
// offsets). It owns two engines behind one interface (Coder) and the guards both share (Guard).
//
// It reads the code sets (pipeline/codes) and, for the LLM engine, the knowledge base (pipeline/kb,
// through the small Retriever interface). It must not touch FHIR resources: the caller turns a
// Result into a Claim, and decides from Result.Dropped what to show a reviewer.
//
// # Built-in coder (no model)
//
// Builtin is deterministic and written by hand, because no Go library does clinical coding:
//
//   - segmentation: sections (chief complaint, HPI, PMH, family/social history, ROS, exam, results,
//     assessment/plan, procedure, time) from headers, dialogue speakers ("Doctor:", "Mother:"),
//     sentences and clauses;
//   - concepts: a dictionary of outpatient conditions and procedures matched on word tokens with a
//     trie (abbreviations such as HTN, T2DM, SOB through pipeline/embed's table), longest match first;
//     with WithRetriever, assessed conditions outside the dictionary are looked up in the knowledge
//     base's code descriptions and accepted only when every content word of the description is
//     documented and asserted;
//   - assertions: a NegEx/ConText-style analysis (pre- and post-triggers, scope windows, termination
//     terms, pseudo-triggers) for negation, uncertainty, hypotheticals, history and the experiencer
//     (patient, relative, someone else);
//   - coding policy from the ICD-10-CM Official Guidelines: with an assessment, only assessed
//     conditions are coded; uncertain diagnoses are not coded and their symptoms are (IV.H);
//     symptoms integral to a confirmed diagnosis are not (I.B.5); relatives' conditions become
//     Z80-Z84, past ones Z85-Z87; combination codes for diabetes with complications (I.C.4.a), and
//     hypertension with heart failure and/or CKD (I.C.9.a); laterality and 7th characters;
//   - procedures: in-office tests, injections with HCPCS drug units, vaccines with administration,
//     minor procedures (E/M modifier 25), only when documented as performed today;
//   - E/M: 2021 office rules, MDM (problems, data, risk; two of three) or total time on the date,
//     whichever is higher; preventive visits by age; no E/M when a minor procedure is the whole visit.
//
// Its quality is measured on the development set in testdata/ (see TestDevelopmentSet).
//
// # LLM coder
//
// LLM calls an OpenAI-compatible /v1/chat/completions endpoint with a JSON-schema-constrained answer,
// a prompt built from the transcript, candidate codes (the built-in coder's and retrieved ones) and
// retrieved guideline passages. Every quoted evidence is relocated in the transcript; a code whose
// quotes are not found is dropped. Then the same Guard runs.
//
// # Guards
//
// Guard rejects codes that do not exist or are not billable, sex/age edit failures, Excludes1 and
// combination-code pairs, evidence that is negated, uncertain or about a relative, more than 12
// diagnoses or 4 pointers per line, and fixes modifier 25 on the E/M. Everything rejected lands in
// Result.Dropped with a reason.
package coder
