package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/internal/pg"
)

// createSQL inserts new resources and their token index rows in one statement (one round trip for a
// whole transaction Bundle). Index rows find their resource's new rid by (type, id).
const createSQL = `
WITH ins AS (
	INSERT INTO resources (type, id, version, last_updated, method, content)
	SELECT u.type, u.id, 1, $3, 'POST', u.content
	FROM unnest($1::text[], $2::text[], $4::bytea[]) AS u(type, id, content)
	RETURNING rid, type, id
), tok AS (
	INSERT INTO search_token (rid, param, system, code)
	SELECT ins.rid, t.param, t.system, t.code
	FROM unnest($5::text[], $6::text[], $7::int[], $8::text[], $9::text[]) AS t(type, id, param, system, code)
	JOIN ins ON ins.type = t.type AND ins.id = t.id
)
SELECT rid, type, id FROM ins`

// Create stores new resources as version 1 under the ids in ws (server-assigned by the caller).
func (t *Tx) Create(ctx context.Context, ws []*Write) ([]*Version, error) {
	if len(ws) == 0 {
		return nil, nil
	}
	n := len(ws)
	types, ids, contents := make([]string, n), make([]string, n), make([][]byte, n)
	var tok tokenArrays
	out := make([]*Version, n)
	byKey := make(map[[2]string]*Version, n)
	for i, w := range ws {
		resource.Stamp(w.Tree, w.ID, 1, t.now)
		types[i], ids[i], contents[i] = w.Type, w.ID, w.Tree.Marshal()
		tok.add(w.Type, w.ID, w.Index.Tokens)
		out[i] = &Version{Type: w.Type, ID: w.ID, Version: 1, LastUpdated: t.now, Method: MethodCreate, Content: contents[i]}
		byKey[[2]string{w.Type, w.ID}] = out[i]
	}
	rows, err := t.tx.Query(ctx, createSQL, types, ids, t.now, contents, tok.types, tok.ids, tok.params, tok.systems, tok.codes)
	if err != nil {
		return nil, t.createError(err)
	}
	for rows.Next() {
		var rid int64
		var typ, id string
		if err := rows.Scan(&rid, &typ, &id); err != nil {
			rows.Close()
			return nil, internal("create", err)
		}
		byKey[[2]string{typ, id}].RID = rid
	}
	if err := rows.Err(); err != nil {
		return nil, t.createError(err)
	}
	for _, v := range out {
		if err := t.hook(ctx, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t *Tx) createError(err error) error {
	if pg.IsUniqueViolation(err) {
		return fhir.Errorf(fhir.ErrConflict, "duplicate", "a resource with this id already exists")
	}
	return internal("create", err)
}

// tokenArrays are the columns of token index rows, as unnest wants them.
type tokenArrays struct {
	types, ids, systems, codes []string
	params                     []int32
}

func (a *tokenArrays) add(typ, id string, toks []search.Token) {
	for _, tk := range toks {
		a.types = append(a.types, typ)
		a.ids = append(a.ids, id)
		a.params = append(a.params, tk.Param)
		a.systems = append(a.systems, tk.System)
		a.codes = append(a.codes, tk.Code)
	}
}

// lockSQL finds and locks the current version of a resource.
const lockSQL = `SELECT rid, version, last_updated, method, content FROM resources WHERE type = $1 AND id = $2 FOR UPDATE`

// insertSQL is an update-as-create: a client-chosen id that does not exist yet.
const insertSQL = `
WITH ins AS (
	INSERT INTO resources (type, id, version, last_updated, method, content)
	VALUES ($1, $2, 1, $3, $4, $5)
	ON CONFLICT (type, id) DO NOTHING
	RETURNING rid
), tok AS (
	INSERT INTO search_token (rid, param, system, code)
	SELECT ins.rid, t.param, t.system, t.code FROM ins, unnest($6::int[], $7::text[], $8::text[]) AS t(param, system, code)
)
SELECT rid FROM ins`

// supersede is the common head of replaceSQL and deleteSQL: it copies the current version of
// resource $1 to history and drops its index rows. Every part of a statement sees the snapshot from
// before it, so the history row gets the old version whatever the UPDATE that follows does.
const supersede = `
WITH hist AS (
	INSERT INTO resource_history (rid, version, type, id, last_updated, method, content)
	SELECT rid, version, type, id, last_updated, method, content FROM resources WHERE rid = $1
), del AS (
	DELETE FROM search_token WHERE rid = $1
)`

// replaceSQL writes a new current version with its index rows.
const replaceSQL = supersede + `, tok AS (
	INSERT INTO search_token (rid, param, system, code)
	SELECT $1, t.param, t.system, t.code FROM unnest($6::int[], $7::text[], $8::text[]) AS t(param, system, code)
)
UPDATE resources SET version = $2, last_updated = $3, method = $4, content = $5 WHERE rid = $1`

// Update stores w as the next version of its resource, creating it when it does not exist (or
// re-creating it when its current version is a deletion; created is then true). ifMatch, when not 0,
// is the version the client expects to replace (If-Match): anything else fails with 412.
func (t *Tx) Update(ctx context.Context, w *Write, ifMatch int) (v *Version, created bool, err error) {
	method := w.Method
	if method == "" {
		method = MethodUpdate
	}
	var tok tokenArrays
	tok.add(w.Type, w.ID, w.Index.Tokens)
	for {
		cur, err := t.lock(ctx, w.Type, w.ID)
		if errors.Is(err, fhir.ErrNotFound) {
			if ifMatch != 0 {
				return nil, false, fhir.Errorf(fhir.ErrPreconditionFailed, "conflict", "If-Match W/\"%d\" given but %s/%s does not exist", ifMatch, w.Type, w.ID)
			}
			resource.Stamp(w.Tree, w.ID, 1, t.now)
			content := w.Tree.Marshal()
			var rid int64
			err := t.tx.QueryRow(ctx, insertSQL, w.Type, w.ID, t.now, method, content, tok.params, tok.systems, tok.codes).Scan(&rid)
			if errors.Is(err, pgx.ErrNoRows) {
				continue // a concurrent request created it first: lock that one and update it
			}
			if err != nil {
				return nil, false, internal("update", err)
			}
			v = &Version{RID: rid, Type: w.Type, ID: w.ID, Version: 1, LastUpdated: t.now, Method: method, Content: content}
			return v, true, t.hook(ctx, v)
		}
		if err != nil {
			return nil, false, err
		}
		if ifMatch != 0 && ifMatch != cur.Version {
			return nil, false, versionConflict(cur, ifMatch)
		}
		next := cur.Version + 1
		resource.Stamp(w.Tree, w.ID, next, t.now)
		content := w.Tree.Marshal()
		if _, err := t.tx.Exec(ctx, replaceSQL, cur.RID, next, t.now, method, content, tok.params, tok.systems, tok.codes); err != nil {
			return nil, false, internal("update", err)
		}
		v = &Version{RID: cur.RID, Type: w.Type, ID: w.ID, Version: next, LastUpdated: t.now, Method: method, Content: content}
		return v, cur.Deleted(), t.hook(ctx, v)
	}
}

func versionConflict(cur *Version, ifMatch int) error {
	return fhir.Errorf(fhir.ErrPreconditionFailed, "conflict",
		"version conflict: If-Match W/\"%d\" but %s/%s is at version %d", ifMatch, cur.Type, cur.ID, cur.Version)
}

// lock reads and locks the current version (deleted or not); ErrNotFound when there is none.
func (t *Tx) lock(ctx context.Context, typ, id string) (*Version, error) {
	v := &Version{Type: typ, ID: id}
	err := t.tx.QueryRow(ctx, lockSQL, typ, id).Scan(&v.RID, &v.Version, &v.LastUpdated, &v.Method, &v.Content)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fhir.Errorf(fhir.ErrNotFound, "not-found", "%s/%s is not known", typ, id)
	}
	if err != nil {
		return nil, internal("lock", err)
	}
	return v, nil
}

// ReadForUpdate returns the current version locked until the transaction ends (for patch and
// $meta-add). A deleted resource is ErrGone, an unknown one ErrNotFound; ifMatch as in Update.
func (t *Tx) ReadForUpdate(ctx context.Context, typ, id string, ifMatch int) (*Version, error) {
	v, err := t.lock(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if v.Deleted() {
		return v, goneError(v)
	}
	if ifMatch != 0 && ifMatch != v.Version {
		return nil, versionConflict(v, ifMatch)
	}
	return v, nil
}

// deleteSQL records a deletion as a new version with no content and drops the index rows, so
// searches never find a deleted resource.
const deleteSQL = supersede + `
UPDATE resources SET version = $2, last_updated = $3, method = 'DELETE', content = NULL WHERE rid = $1`

// Delete records the deletion of typ/id. It returns the deletion version and whether this call made
// it; deleting an already deleted resource changes nothing and returns the existing deletion. An
// unknown resource is ErrNotFound. ifMatch as in Update.
func (t *Tx) Delete(ctx context.Context, typ, id string, ifMatch int) (v *Version, changed bool, err error) {
	cur, err := t.lock(ctx, typ, id)
	if err != nil {
		return nil, false, err
	}
	if ifMatch != 0 && ifMatch != cur.Version {
		return nil, false, versionConflict(cur, ifMatch)
	}
	if cur.Deleted() {
		return cur, false, nil
	}
	next := cur.Version + 1
	if _, err := t.tx.Exec(ctx, deleteSQL, cur.RID, next, t.now); err != nil {
		return nil, false, internal("delete", err)
	}
	v = &Version{RID: cur.RID, Type: typ, ID: id, Version: next, LastUpdated: t.now, Method: MethodDelete}
	return v, true, t.hook(ctx, v)
}

// Lock serialises transactions on key until this one ends (conditional create: two requests with the
// same criteria must not both create).
func (t *Tx) Lock(ctx context.Context, key string) error {
	if _, err := t.tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, key); err != nil {
		return internal("lock", err)
	}
	return nil
}

// SetMeta replaces the stored JSON of version v in place, without making a new version: $meta-add and
// $meta-delete change tags, profiles and security labels, and R4 says they "do not cause a new version
// of the resource to be created", also on historical versions.
func (t *Tx) SetMeta(ctx context.Context, v *Version, content []byte) error {
	tag, err := t.tx.Exec(ctx, `UPDATE resources SET content = $3 WHERE rid = $1 AND version = $2 AND content IS NOT NULL`, v.RID, v.Version, content)
	if err == nil && tag.RowsAffected() == 0 {
		tag, err = t.tx.Exec(ctx, `UPDATE resource_history SET content = $3 WHERE rid = $1 AND version = $2 AND content IS NOT NULL`, v.RID, v.Version, content)
	}
	if err != nil {
		return internal("meta", err)
	}
	if tag.RowsAffected() == 0 {
		return fhir.Errorf(fhir.ErrNotFound, "not-found", "%s/%s version %d is not known", v.Type, v.ID, v.Version)
	}
	return nil
}

func goneError(v *Version) error {
	return fhir.Errorf(fhir.ErrGone, "deleted", "%s/%s was deleted (version %d)", v.Type, v.ID, v.Version)
}
