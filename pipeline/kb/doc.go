// Package kb is Billy's knowledge base for coding: coding manuals and guidelines (PDF, Markdown,
// text) and the code descriptions of the loaded code sets, chunked, embedded and searchable through
// one vector index API (Search).
//
// It owns the kb_sources and kb_chunks tables of migration 005 and, when the pgvector extension is
// available, the kb_vectors_<dim> tables and their HNSW indexes, which it creates itself at Open
// (the one place Billy runs DDL outside migrations, because the extension is optional: Debian 12
// ships no pgvector package). It reads the code tables through pipeline/codes and must not write
// them, nor touch FHIR resources.
//
// # Two index paths, one API
//
// Open tries CREATE EXTENSION vector. When that succeeds, Search runs an HNSW cosine search in
// PostgreSQL (pgvector): one index over every chunk and a partial one over manual passages, which a
// filtered walk of the shared graph finds poorly; hnsw.ef_search is DefaultEfSearch. Otherwise
// Search is exact: every embedding (kept portable in kb_chunks as little-endian float32 bytea) is
// loaded into memory once, stored dimension-major, and a query adds up the columns of its non-zero
// coordinates in parallel blocks of scores, keeping a bounded top-k heap. The choice is logged. The exact
// path is also the recall reference for pgvector. An exact index notices chunks another process
// added or removed by polling a cheap count at most every Options.RefreshEvery.
//
// PGlite (which runs real pgvector, used to test that path) runs one backend session for every
// client, so callers hand Open a pool of one connection in exec mode; every parameter here carries an
// explicit cast so that mode works.
package kb
