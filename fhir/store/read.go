package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/search"
)

// reader holds the queries that run the same on the pool and inside a transaction. now is the
// store's clock (inside a transaction, the transaction's time): searches relative to "now" (ap)
// never read the wall clock themselves.
type reader struct {
	q   querier
	now func() time.Time
}

const readSQL = `SELECT rid, version, last_updated, method, content FROM resources WHERE type = $1 AND id = $2`

// Read returns the current version of typ/id; a deletion is returned as a Version with no content.
// A resource never stored is ErrNotFound.
func (r reader) Read(ctx context.Context, typ, id string) (*Version, error) {
	v := &Version{Type: typ, ID: id}
	err := r.q.QueryRow(ctx, readSQL, typ, id).Scan(&v.RID, &v.Version, &v.LastUpdated, &v.Method, &v.Content)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fhir.Errorf(fhir.ErrNotFound, "not-found", "%s/%s is not known", typ, id)
	}
	if err != nil {
		return nil, internal("read", err)
	}
	return v, nil
}

const vreadSQL = `
SELECT r.rid, h.version, h.last_updated, h.method, h.content
FROM resources r JOIN resource_history h ON h.rid = r.rid
WHERE r.type = $1 AND r.id = $2 AND h.version = $3`

// VRead returns version vid of typ/id (a deletion has no content); ErrNotFound when there is no
// such version.
func (r reader) VRead(ctx context.Context, typ, id string, vid int) (*Version, error) {
	cur, err := r.Read(ctx, typ, id)
	if err != nil {
		return nil, err
	}
	if vid == cur.Version {
		return cur, nil
	}
	if vid < 1 || vid > cur.Version {
		return nil, fhir.Errorf(fhir.ErrNotFound, "not-found", "%s/%s has no version %d", typ, id, vid)
	}
	v := &Version{Type: typ, ID: id}
	err = r.q.QueryRow(ctx, vreadSQL, typ, id, vid).Scan(&v.RID, &v.Version, &v.LastUpdated, &v.Method, &v.Content)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fhir.Errorf(fhir.ErrNotFound, "not-found", "%s/%s has no version %d", typ, id, vid)
	}
	if err != nil {
		return nil, internal("vread", err)
	}
	return v, nil
}

// Ref identifies the current version of a matched resource.
type Ref struct {
	RID     int64
	ID      string
	Version int
}

// Match returns up to limit current, not deleted resources of q.Type matching every clause of q,
// for conditional interactions (which only need to know whether there are 0, 1 or more).
func (r reader) Match(ctx context.Context, q *search.Query, limit int) ([]Ref, error) {
	b := builder{now: r.now()}
	b.add("SELECT r.rid, r.id, r.version FROM resources r")
	if err := b.where(q); err != nil {
		return nil, err
	}
	b.add(" ORDER BY r.rid LIMIT ").arg(limit)
	rows, err := r.q.Query(ctx, b.String(), b.queryArgs()...)
	if err != nil {
		return nil, internal("match", err)
	}
	refs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Ref, error) {
		var ref Ref
		err := row.Scan(&ref.RID, &ref.ID, &ref.Version)
		return ref, err
	})
	if err != nil {
		return nil, internal("match", err)
	}
	return refs, nil
}

// HistoryQuery selects versions for the history interactions. Type and ID narrow it to a type or
// an instance. Versions are returned newest first.
type HistoryQuery struct {
	Type, ID string
	// Since keeps versions made at or after it (_since).
	Since time.Time
	// AtLo, AtHi keep versions that were current at some moment of [AtLo, AtHi) (_at).
	AtLo, AtHi time.Time
	// Before is the keyset cursor: only versions ordered after it (older) are returned.
	Before *Cursor
	Count  int
	// Reach, when set, keeps the versions of resources whose current version it admits (the
	// caller still judges each version it hands out).
	Reach *search.Reach
}

// Cursor is a position in the newest-first order of history: (lastUpdated, rid, version).
type Cursor struct {
	LastUpdated time.Time
	RID         int64
	Version     int
}

// History returns up to q.Count versions, newest first. For an instance, an unknown resource is
// ErrNotFound.
func (r reader) History(ctx context.Context, q HistoryQuery) ([]*Version, error) {
	var rid int64
	if q.ID != "" {
		cur, err := r.Read(ctx, q.Type, q.ID)
		if err != nil {
			return nil, err
		}
		rid = cur.RID
	}
	var b builder
	b.add("SELECT rid, type, id, version, last_updated, method, content FROM (")
	for i, table := range []string{"resources", "resource_history"} {
		if i > 0 {
			b.add(" UNION ALL ")
		}
		b.add("SELECT v.rid, v.type, v.id, v.version, v.last_updated, v.method, v.content FROM " + table + " v WHERE true")
		switch {
		case rid != 0:
			b.add(" AND v.rid = ").arg(rid)
		case q.Type != "":
			b.add(" AND v.type = ").arg(q.Type)
		}
		if !q.Since.IsZero() {
			b.add(" AND v.last_updated >= ").arg(q.Since)
		}
		if !q.AtHi.IsZero() {
			b.add(" AND v.last_updated < ").arg(q.AtHi)
			if table == "resource_history" {
				// A superseded version was current until the next version was made.
				b.add(` AND COALESCE(
					(SELECT n.last_updated FROM resource_history n WHERE n.rid = v.rid AND n.version = v.version + 1),
					(SELECT n.last_updated FROM resources n WHERE n.rid = v.rid AND n.version = v.version + 1)) > `).arg(q.AtLo)
			}
		}
		if q.Before != nil {
			b.add(" AND (v.last_updated, v.rid, v.version) < (").arg(q.Before.LastUpdated).add(", ").arg(q.Before.RID).add(", ").arg(q.Before.Version).add(")")
		}
		if q.Reach != nil {
			b.rc = q.Reach
			b.add(" AND v.rid IN (SELECT r.rid FROM resources r WHERE r.content IS NOT NULL")
			b.andReach("r", q.Type)
			b.add(")")
		}
	}
	b.add(") h ORDER BY last_updated DESC, rid DESC, version DESC LIMIT ").arg(q.Count)
	rows, err := r.q.Query(ctx, b.String(), b.queryArgs()...)
	if err != nil {
		return nil, internal("history", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Version, error) {
		v := &Version{}
		err := row.Scan(&v.RID, &v.Type, &v.ID, &v.Version, &v.LastUpdated, &v.Method, &v.Content)
		return v, err
	})
	if err != nil {
		return nil, internal("history", err)
	}
	return out, nil
}

// CountHistory counts the versions of one instance (Bundle.total of instance history; type and
// system history leave total out rather than count the whole table).
func (r reader) CountHistory(ctx context.Context, rid int64) (int, error) {
	var n int
	err := r.q.QueryRow(ctx, `SELECT (SELECT count(*) FROM resource_history WHERE rid = $1) + 1`, rid).Scan(&n)
	if err != nil {
		return 0, internal("history", err)
	}
	return n, nil
}

// BlobOf returns the stored content of a Binary version, or nil when the version has none.
func (r reader) BlobOf(ctx context.Context, v *Version) (*Blob, error) {
	b := &Blob{}
	err := r.q.QueryRow(ctx, `SELECT blob_id, size, sha256 FROM binary_blobs WHERE rid = $1 AND version = $2`, v.RID, v.Version).Scan(&b.ID, &b.Size, &b.SHA256)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, internal("binary", err)
	}
	return b, nil
}
