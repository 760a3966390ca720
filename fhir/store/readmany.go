package store

import (
	"context"
)

// Key names a resource.
type Key struct{ Type, ID string }

const readManySQL = `SELECT r.type, r.id, r.rid, r.version, r.last_updated, r.method, r.content
FROM unnest($1::text[], $2::text[]) AS k(type, id) JOIN resources r ON r.type = k.type AND r.id = k.id`

// ReadMany returns the current versions of the resources of keys that exist (deletions included,
// with no content), in one round trip: what a batch writer (the HL7 v2 listener's group commit)
// needs to tell the resources to create from those to update.
func (r reader) ReadMany(ctx context.Context, keys []Key) (map[Key]*Version, error) {
	out := make(map[Key]*Version, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	types, ids := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		types[i], ids[i] = k.Type, k.ID
	}
	rows, err := r.q.Query(ctx, readManySQL, types, ids)
	if err != nil {
		return nil, internal("read", err)
	}
	defer rows.Close()
	for rows.Next() {
		v := &Version{}
		if err := rows.Scan(&v.Type, &v.ID, &v.RID, &v.Version, &v.LastUpdated, &v.Method, &v.Content); err != nil {
			return nil, internal("read", err)
		}
		out[Key{v.Type, v.ID}] = v
	}
	if err := rows.Err(); err != nil {
		return nil, internal("read", err)
	}
	return out, nil
}
