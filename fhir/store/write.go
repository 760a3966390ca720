package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/resource"
	"github.com/iambilly/billy/internal/pg"
)

// Create stores new resources as version 1 under the ids in ws (server-assigned by the caller).
// The resources and all their index rows go to PostgreSQL in one statement, after one round trip
// that reserves their rids.
func (t *Tx) Create(ctx context.Context, ws []*Write) ([]*Version, error) {
	if len(ws) == 0 {
		return nil, nil
	}
	var companions []*Write
	for _, w := range ws {
		companions = append(companions, w.Companions...)
	}
	if len(companions) > 0 {
		if _, err := t.Create(ctx, companions); err != nil {
			return nil, err
		}
	}
	rows, err := t.tx.Query(ctx, `SELECT nextval('resources_rid_seq') FROM generate_series(1, $1)`, len(ws))
	if err != nil {
		return nil, internal("create", err)
	}
	rids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, internal("create", err)
	}
	n := len(ws)
	types, ids, contents := make([]string, n), make([]string, n), make([][]byte, n)
	var ix indexRows
	out := make([]*Version, n)
	for i, w := range ws {
		resource.Stamp(w.Tree, w.ID, 1, t.now)
		types[i], ids[i], contents[i] = w.Type, w.ID, w.Tree.Marshal()
		ix.add(rids[i], w.Index)
		out[i] = &Version{RID: rids[i], Type: w.Type, ID: w.ID, Version: 1, LastUpdated: t.now, Method: MethodCreate, Content: contents[i]}
	}
	var b builder
	b.add("WITH ins AS (INSERT INTO resources (rid, type, id, version, last_updated, method, content) OVERRIDING SYSTEM VALUE " +
		"SELECT u.rid, u.type, u.id, 1, ").arg(t.now).add("::timestamptz, 'POST', u.content FROM unnest(").
		arg(rids).add("::bigint[], ").arg(types).add("::text[], ").arg(ids).add("::text[], ").arg(contents).add("::bytea[]) AS u(rid, type, id, content))")
	ix.insertIndex(&b)
	var blobRIDs []int64
	var blobIDs, blobSums []string
	var blobSizes []int64
	for i, w := range ws {
		if w.Blob != nil {
			blobRIDs, blobIDs, blobSizes, blobSums = append(blobRIDs, rids[i]), append(blobIDs, w.Blob.ID), append(blobSizes, w.Blob.Size), append(blobSums, w.Blob.SHA256)
		}
	}
	if len(blobRIDs) > 0 {
		b.add(", ins_blob AS (INSERT INTO binary_blobs (rid, version, blob_id, size, sha256) SELECT r, 1, i, s, h FROM unnest(").
			arg(blobRIDs).add("::bigint[], ").arg(blobIDs).add("::text[], ").arg(blobSizes).add("::bigint[], ").arg(blobSums).add("::text[]) AS u(r, i, s, h))")
	}
	b.add(" SELECT 1")
	if _, err := t.tx.Exec(ctx, b.String(), b.args...); err != nil {
		if pg.IsUniqueViolation(err) {
			return nil, fhir.Errorf(fhir.ErrConflict, "duplicate", "a resource with this id already exists")
		}
		return nil, internal("create", err)
	}
	for _, v := range out {
		if err := t.hook(ctx, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lockSQL finds and locks the current version of a resource.
const lockSQL = `SELECT rid, version, last_updated, method, content FROM resources WHERE type = $1 AND id = $2 FOR UPDATE`

// Update stores w as the next version of its resource, creating it when it does not exist (or
// re-creating it when its current version is a deletion; created is then true). ifMatch, when not 0,
// is the version the client expects to replace (If-Match): anything else fails with 412, as does a
// current version that makes w.IfNoneMatch false.
func (t *Tx) Update(ctx context.Context, w *Write, ifMatch int) (v *Version, created bool, err error) {
	method := w.Method
	if method == "" {
		method = MethodUpdate
	}
	if len(w.Companions) > 0 {
		if _, err := t.Create(ctx, w.Companions); err != nil {
			return nil, false, err
		}
	}
	for {
		cur, err := t.lock(ctx, w.Type, w.ID)
		if errors.Is(err, fhir.ErrNotFound) {
			if ifMatch != 0 {
				return nil, false, fhir.Errorf(fhir.ErrPreconditionFailed, "conflict", "If-Match W/\"%d\" given but %s/%s does not exist", ifMatch, w.Type, w.ID)
			}
			v, err := t.insertNew(ctx, w, method)
			if errors.Is(err, errRaced) {
				continue // a concurrent request created it first: lock that one and update it
			}
			if err != nil {
				return nil, false, err
			}
			return v, true, t.hook(ctx, v)
		}
		if err != nil {
			return nil, false, err
		}
		if err := w.IfNoneMatch.Check(cur); err != nil {
			return nil, false, err
		}
		if ifMatch != 0 && ifMatch != cur.Version {
			return nil, false, versionConflict(cur, ifMatch)
		}
		next := cur.Version + 1
		resource.Stamp(w.Tree, w.ID, next, t.now)
		content := w.Tree.Marshal()
		var ix indexRows
		ix.add(cur.RID, w.Index)
		var b builder
		b.add(supersede).arg(cur.RID).add("), hist AS (INSERT INTO resource_history SELECT * FROM old)")
		t.s.oldIndex(cur).deleteIndex(&b, cur.RID)
		ix.insertIndex(&b)
		if w.Blob != nil {
			b.add(", ins_blob AS (INSERT INTO binary_blobs (rid, version, blob_id, size, sha256) VALUES ($1, ").arg(next).add(", ").
				arg(w.Blob.ID).add(", ").arg(w.Blob.Size).add(", ").arg(w.Blob.SHA256).add("))")
		}
		b.add(" UPDATE resources SET version = ").arg(next).add(", last_updated = ").arg(t.now).add(", method = ").arg(method).
			add(", content = ").arg(content).add(" WHERE rid = $1")
		if _, err := t.tx.Exec(ctx, b.String(), b.args...); err != nil {
			return nil, false, internal("update", err)
		}
		v = &Version{RID: cur.RID, Type: w.Type, ID: w.ID, Version: next, LastUpdated: t.now, Method: method, Content: content}
		return v, cur.Deleted(), t.hook(ctx, v)
	}
}

// errRaced reports that a concurrent transaction inserted the resource first.
var errRaced = errors.New("raced")

// insertNew is an update-as-create: a client-chosen id that does not exist yet.
func (t *Tx) insertNew(ctx context.Context, w *Write, method string) (*Version, error) {
	resource.Stamp(w.Tree, w.ID, 1, t.now)
	content := w.Tree.Marshal()
	var rid int64
	err := t.tx.QueryRow(ctx, `INSERT INTO resources (type, id, version, last_updated, method, content) VALUES ($1, $2, 1, $3, $4, $5)
		ON CONFLICT (type, id) DO NOTHING RETURNING rid`, w.Type, w.ID, t.now, method, content).Scan(&rid)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errRaced
	}
	if err != nil {
		return nil, internal("update", err)
	}
	if err := t.writeIndex(ctx, rid, w); err != nil {
		return nil, err
	}
	if w.Blob != nil {
		if _, err := t.tx.Exec(ctx, `INSERT INTO binary_blobs (rid, version, blob_id, size, sha256) VALUES ($1, 1, $2, $3, $4)`,
			rid, w.Blob.ID, w.Blob.Size, w.Blob.SHA256); err != nil {
			return nil, internal("update", err)
		}
	}
	return &Version{RID: rid, Type: w.Type, ID: w.ID, Version: 1, LastUpdated: t.now, Method: method, Content: content}, nil
}

// writeIndex inserts the index rows of one resource.
func (t *Tx) writeIndex(ctx context.Context, rid int64, w *Write) error {
	var ix indexRows
	ix.add(rid, w.Index)
	var b builder
	b.add("WITH nothing AS (SELECT 1)")
	ix.insertIndex(&b)
	b.add(" SELECT 1")
	if _, err := t.tx.Exec(ctx, b.String(), b.args...); err != nil {
		return internal("index", err)
	}
	return nil
}

// supersede is the head of a statement that moves the current version of resource $1 to history
// ("old" is that row). Every part of a statement sees the snapshot from before it, so the history
// row gets the old version whatever the UPDATE that follows does.
const supersede = `WITH old AS (SELECT rid, version, type, id, last_updated, method, content FROM resources WHERE rid = `

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

// Delete records the deletion of typ/id. It returns the deletion version and whether this call made
// it; deleting an already deleted resource changes nothing and returns the existing deletion. An
// unknown resource is ErrNotFound. ifMatch as in Update. The index rows go, so searches never find
// a deleted resource.
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
	var b builder
	b.add(supersede).arg(cur.RID).add("), hist AS (INSERT INTO resource_history SELECT * FROM old)")
	t.s.oldIndex(cur).deleteIndex(&b, cur.RID)
	b.add(" UPDATE resources SET version = ").arg(next).add(", last_updated = ").arg(t.now).add(", method = 'DELETE', content = NULL WHERE rid = $1")
	if _, err := t.tx.Exec(ctx, b.String(), b.args...); err != nil {
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
// of the resource to be created", also on historical versions. For the current version the index
// rows are replaced too (_tag, _profile, _security search the current version).
func (t *Tx) SetMeta(ctx context.Context, v *Version, content []byte, w *Write) error {
	tag, err := t.tx.Exec(ctx, `UPDATE resources SET content = $3 WHERE rid = $1 AND version = $2 AND content IS NOT NULL`, v.RID, v.Version, content)
	if err == nil && tag.RowsAffected() == 1 && w != nil {
		var b builder
		b.add("WITH nothing AS (SELECT 1)")
		t.s.oldIndex(v).deleteIndex(&b, v.RID)
		b.add(" SELECT 1")
		if _, err := t.tx.Exec(ctx, b.String(), b.args...); err != nil {
			return internal("meta", err)
		}
		return t.writeIndex(ctx, v.RID, w)
	}
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
