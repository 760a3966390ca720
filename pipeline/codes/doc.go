// Package codes owns Billy's code sets in PostgreSQL: ICD-10-CM, HCPCS Level II and CPT (tables
// code_systems, code_system_versions and codes of migration 005). It imports the official files,
// answers lookups, validation, text search and completion as a person types (Complete), and carries the derived edits that guard a coded
// claim: sex/age edits and Excludes1 pairs.
//
// It must not touch FHIR resources or the knowledge base (pipeline/kb indexes the codes it reads from
// here) and it never ships CPT descriptions: CPT text comes only from a file the user imports.
//
// # Importers
//
// ImportICD10CM reads the CDC/CMS codes file (icd10cm-codes-YYYY.txt: fixed width, every line
// billable) or the order file (icd10cm-order-YYYY.txt: order number, code, 0/1 billable flag, short
// and long description), plus the optional categories/sections/chapters CSVs that supply the
// 3-character headers and each code's block and chapter. ImportHCPCS reads the 2025 Level II CSV and
// the CMS "ANWEB" quarterly CSV layout. ImportCPT reads a user CSV (code,description[,...]). Every
// import runs in one transaction, replaces the version it names (re-importing is idempotent), loads
// rows with COPY and reports progress.
//
// # Derived edits (a subset of the CMS Medicare Code Editor)
//
// The CMS Medicare Code Editor (MCE) tables are not available to Billy. The sex and age edits here
// are a documented, deliberately conservative subset derived from the ICD-10-CM chapter, block and
// category structure and the ICD-10-CM Official Guidelines for Coding and Reporting (see
// SexAgeRules): a code is rejected for a patient only when the whole range is unambiguously limited
// to one sex or age band (pregnancy, perinatal, male and female genital organs, newborn and child
// health checks). Age bands use the MCE's widest published limits (maternity 9–64, pediatric 0–17,
// adult 15–124), so an edit never rejects a code the MCE would accept. The Excludes1 pairs
// (Excludes1Pairs) are a short table of common category pairs copied from the Tabular List notes,
// plus combination-code redundancies from the guidelines (I10 with I11–I13), each entry naming its
// source. Neither table is the MCE or the full Tabular; they catch the common errors a coder makes.
package codes
