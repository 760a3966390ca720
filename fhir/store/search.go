package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/searchparam"
)

// Result is one page of a search.
type Result struct {
	Matches []*Version
	// Total is the number of matches when it was asked for (_total, _summary=count), else -1.
	Total int
	// Next and Prev are cursors of the neighbouring pages, "" when there is none.
	Next, Prev string
}

// cursor is a position in a search's order: the sort key values (as text, nil for a missing value)
// and the rid of a row. Back marks a cursor that pages backwards from that row.
type cursor struct {
	Keys []*string `json:"k,omitempty"`
	RID  int64     `json:"r"`
	Back bool      `json:"b,omitempty"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, keys int) (*cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	var c cursor
	if err == nil {
		err = json.Unmarshal(raw, &c)
	}
	if err != nil || len(c.Keys) != keys {
		return nil, fhir.Invalid("value", "_page", "_page is not a cursor of this search")
	}
	return &c, nil
}

// sortKey is one ORDER BY key: an SQL expression on resources r, its type, and its direction.
type sortKey struct {
	expr, typ string
	desc      bool
}

// sortKeys turns _sort into expressions. A resource without a value for a key sorts last; several
// values sort by the lowest (ascending) or highest (descending).
func (b *builder) sortKeys(keys []search.SortKey) []sortKey {
	var out []sortKey
	for _, k := range keys {
		agg := "min"
		if k.Desc {
			agg = "max"
		}
		switch k.Code {
		case "_id":
			out = append(out, sortKey{"r.id", "text", k.Desc})
			continue
		case "_lastUpdated":
			out = append(out, sortKey{"r.last_updated", "timestamptz", k.Desc})
			continue
		}
		var table, col, typ string
		switch k.Param.Type {
		case searchparam.String, searchparam.URI:
			table, col, typ = "search_string", "norm", "text"
		case searchparam.Token:
			table, col, typ = "search_token", "code", "text"
		case searchparam.Reference:
			table, col, typ = "search_reference", "target_type || '/' || target_id", "text"
		case searchparam.Date:
			table, col, typ = "search_date", map[bool]string{false: "lo", true: "hi"}[k.Desc], "timestamptz"
		case searchparam.Number:
			table, col, typ = "search_number", map[bool]string{false: "lo", true: "hi"}[k.Desc], "numeric"
		case searchparam.Quantity:
			table, col, typ = "search_quantity", map[bool]string{false: "lo", true: "hi"}[k.Desc], "numeric"
		}
		expr := b.detached(func() {
			b.add("(SELECT " + agg + "(" + col + ") FROM " + table + " WHERE rid = r.rid AND param = ").arg(k.ParamID).add(")")
		})
		out = append(out, sortKey{expr, typ, k.Desc})
	}
	return out
}

// where appends the conditions every search has: type, liveness, compartment and clauses.
func (b *builder) where(q *search.Query) error {
	if len(q.Types) == 1 {
		b.add(" WHERE r.type = ").arg(q.Types[0])
	} else {
		b.add(" WHERE r.type = ANY(").arg(q.Types).add(")")
	}
	b.add(" AND r.content IS NOT NULL")
	if c := q.Compartment; c != nil {
		b.add(" AND (r.rid IN (SELECT rid FROM search_reference WHERE param = ANY(").arg(c.ParamIDs).
			add(") AND target_type = ").arg(c.OwnerType).add(" AND target_id = ").arg(c.OwnerID).
			add(") OR (r.type = ").arg(c.OwnerType).add(" AND r.id = ").arg(c.OwnerID).add("))")
	}
	b.rc = q.Reach
	b.andReach("r", q.Type())
	return b.clauses("r", q.Clauses)
}

// Search returns one page of q's matches (current, not deleted versions) in q's order, with the
// cursors of the neighbouring pages, and the total when q asks for it.
func (r reader) Search(ctx context.Context, q *search.Query) (*Result, error) {
	res := &Result{Total: -1}
	onlyTotal := q.Summary == "count" || (q.CountGiven && q.Count == 0) // search.html: _count=0 is _summary=count
	if onlyTotal || q.Total == "accurate" || q.Total == "estimate" {
		n, err := r.count(ctx, q)
		if err != nil {
			return nil, err
		}
		res.Total = n
	}
	if onlyTotal {
		return res, nil
	}
	b := builder{now: r.now()}
	keys := b.sortKeys(q.Sort)
	var cur *cursor
	if q.Page != "" {
		c, err := decodeCursor(q.Page, len(keys))
		if err != nil {
			return nil, err
		}
		cur = c
	}
	back := cur != nil && cur.Back
	// The page is chosen from rids and sort keys alone, and only its rows are then read whole: the
	// inner query can walk resources_type_live (type, rid) index-only while it merges with the index
	// tables, instead of fetching every candidate's content from the heap before the LIMIT.
	order := func(alias string) {
		for i, k := range keys {
			desc := k.desc != back
			b.add(alias + ".k" + itoa(i) + map[bool]string{false: " ASC", true: " DESC"}[desc] + map[bool]string{false: " NULLS LAST, ", true: " NULLS FIRST, "}[back])
		}
		b.add(alias + ".rid" + map[bool]string{false: " ASC", true: " DESC"}[back])
	}
	b.add("SELECT x.rid, x.type, x.id, x.version, x.last_updated, x.method, x.content")
	for i := range keys {
		b.add(", p.k" + itoa(i) + "::text")
	}
	b.add(" FROM (SELECT s.* FROM (SELECT r.rid")
	for i, k := range keys {
		b.add(", " + k.expr + " AS k" + itoa(i))
	}
	b.add(" FROM resources r")
	if err := b.where(q); err != nil {
		return nil, err
	}
	b.add(") s")
	if cur != nil {
		b.add(" WHERE ")
		b.keyset(keys, cur, 0)
	}
	b.add(" ORDER BY ")
	order("s")
	b.add(" LIMIT ").arg(q.Count + 1)
	b.add(") p JOIN resources x ON x.rid = p.rid ORDER BY ")
	order("p")

	rows, err := r.q.Query(ctx, b.String(), b.queryArgs()...)
	if err != nil {
		return nil, internal("search", err)
	}
	type row struct {
		v    *Version
		keys []*string
	}
	all, err := pgx.CollectRows(rows, func(cr pgx.CollectableRow) (row, error) {
		v := &Version{}
		ks := make([]*string, len(keys))
		dest := []any{&v.RID, &v.Type, &v.ID, &v.Version, &v.LastUpdated, &v.Method, &v.Content}
		for i := range ks {
			dest = append(dest, &ks[i])
		}
		err := cr.Scan(dest...)
		return row{v, ks}, err
	})
	if err != nil {
		return nil, internal("search", err)
	}
	more := len(all) > q.Count
	if more {
		all = all[:q.Count]
	}
	if back {
		slices.Reverse(all)
	}
	for _, a := range all {
		res.Matches = append(res.Matches, a.v)
	}
	if len(all) == 0 {
		if back && cur != nil { // paged back past the start: offer the way forward again
			res.Next = cursor{Keys: cur.Keys, RID: cur.RID - 1}.encode()
		}
		return res, nil
	}
	first, last := all[0], all[len(all)-1]
	// Forward: a next page exists when more rows came; a previous one when we started from a cursor.
	// Backward: the reverse.
	if (!back && more) || back {
		res.Next = cursor{Keys: last.keys, RID: last.v.RID}.encode()
	}
	if (back && more) || (!back && cur != nil) {
		res.Prev = cursor{Keys: first.keys, RID: first.v.RID, Back: true}.encode()
	}
	return res, nil
}

func itoa(i int) string { return strconv.Itoa(i) }

// keyset appends the condition "row comes after the cursor" (before it, for a backward cursor) in
// the order of keys then rid, with missing values last.
func (b *builder) keyset(keys []sortKey, c *cursor, i int) {
	if i == len(keys) {
		if c.Back {
			b.add("s.rid < ").arg(c.RID)
		} else {
			b.add("s.rid > ").arg(c.RID)
		}
		return
	}
	k := keys[i]
	col := "s.k" + itoa(i)
	cv := c.Keys[i]
	// strictly beyond the cursor on this key (in the direction of travel) ...
	b.add("(")
	switch {
	case cv == nil && !c.Back:
		b.add("false")
	case cv == nil && c.Back:
		b.add(col + " IS NOT NULL")
	default:
		op := ">"
		if k.desc != c.Back {
			op = "<"
		}
		b.add("(" + col + " " + op + " ").arg(*cv).add("::" + k.typ)
		if !c.Back {
			b.add(" OR " + col + " IS NULL")
		}
		b.add(")")
	}
	// ... or level with it and beyond on the following keys.
	b.add(" OR (")
	if cv == nil {
		b.add(col + " IS NULL")
	} else {
		b.add(col + " = ").arg(*cv).add("::" + k.typ)
	}
	b.add(" AND ")
	b.keyset(keys, c, i+1)
	b.add("))")
}

// count counts q's matches. A query with one plain index condition is counted from that index
// alone (index rows exist only for live current versions, and the parameter key implies the type).
func (r reader) count(ctx context.Context, q *search.Query) (int, error) {
	b := builder{now: r.now()}
	if q.Total == "estimate" && q.Summary != "count" {
		return r.estimate(ctx, q)
	}
	if c := singleIndexClause(q); c != nil {
		t := "i0"
		b.add("SELECT count(DISTINCT " + t + ".rid) FROM " + tableOf(c) + " " + t + " WHERE " + t + ".param = ").arg(c.ParamID).add(" AND (")
		for i, v := range c.Values {
			if i > 0 {
				b.add(" OR ")
			}
			if err := b.value(t, c, v); err != nil {
				return 0, err
			}
		}
		b.add(")")
	} else {
		b.add("SELECT count(*) FROM resources r")
		if err := b.where(q); err != nil {
			return 0, err
		}
	}
	var n int
	if err := r.q.QueryRow(ctx, b.String(), b.queryArgs()...).Scan(&n); err != nil {
		return 0, internal("count", err)
	}
	return n, nil
}

func singleIndexClause(q *search.Query) *search.Clause {
	if len(q.Types) != 1 || len(q.Clauses) != 1 || q.Compartment != nil || q.Reach != nil {
		return nil
	}
	c := q.Clauses[0]
	if c.Special != "" || len(c.Chain) > 0 || c.Has != nil || c.Missing != nil || c.Modifier != "" || c.Param == nil {
		return nil
	}
	// The index key of a parameter every type has (_tag, _profile: Base "Resource") is shared by
	// all types, so counting its rows alone would count the other types' resources too.
	if c.Param.Base != q.Types[0] {
		return nil
	}
	return c
}

// estimate asks the planner how many rows the search would return.
func (r reader) estimate(ctx context.Context, q *search.Query) (int, error) {
	b := builder{now: r.now()}
	b.add("EXPLAIN (FORMAT JSON) SELECT 1 FROM resources r")
	if err := b.where(q); err != nil {
		return 0, err
	}
	var plan []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		} `json:"Plan"`
	}
	var raw []byte
	if err := r.q.QueryRow(ctx, b.String(), b.queryArgs()...).Scan(&raw); err != nil {
		return 0, internal("estimate", err)
	}
	if err := json.Unmarshal(raw, &plan); err != nil || len(plan) == 0 {
		return 0, internal("estimate", errors.New("unreadable plan"))
	}
	return int(plan[0].Plan.Rows), nil
}

// maxIncluded bounds the resources _include and _revinclude add to one page.
const maxIncluded = 1000

// Include returns the resources that _include and _revinclude add to a page of matches (each once,
// none of the matches again), following :iterate includes through what they add, up to
// maxIncluded resources. truncated reports that the bound was hit.
func (r reader) Include(ctx context.Context, matches []*Version, incs, revs []search.Include) (out []*Version, truncated bool, err error) {
	seen := map[int64]bool{}
	for _, m := range matches {
		seen[m.RID] = true
	}
	frontier := matches
	for round := 0; round < 4 && len(frontier) > 0; round++ {
		var added []*Version
		for _, in := range incs {
			if round > 0 && !in.Iterate {
				continue
			}
			vs, err := r.follow(ctx, frontier, in, false)
			if err != nil {
				return nil, false, err
			}
			added = append(added, vs...)
		}
		for _, in := range revs {
			if round > 0 && !in.Iterate {
				continue
			}
			vs, err := r.follow(ctx, frontier, in, true)
			if err != nil {
				return nil, false, err
			}
			added = append(added, vs...)
		}
		frontier = frontier[:0:0]
		for _, v := range added {
			if seen[v.RID] {
				continue
			}
			if len(out) >= maxIncluded {
				return out, true, nil
			}
			seen[v.RID] = true
			out = append(out, v)
			frontier = append(frontier, v)
		}
	}
	return out, false, nil
}

// follow runs one include over the resources from: forward along their references, or (rev) back
// to the resources referring to them.
func (r reader) follow(ctx context.Context, from []*Version, in search.Include, rev bool) ([]*Version, error) {
	var params []int32
	for _, p := range in.Params() {
		params = append(params, search.IDOf(p, ""))
	}
	var b builder
	if !rev {
		var rids []int64
		for _, v := range from {
			if v.Type == in.SourceType {
				rids = append(rids, v.RID)
			}
		}
		if len(rids) == 0 {
			return nil, nil
		}
		b.add("SELECT DISTINCT t.rid, t.type, t.id, t.version, t.last_updated, t.method, t.content FROM search_reference x JOIN resources t ON t.type = x.target_type AND t.id = x.target_id WHERE x.rid = ANY(").
			arg(rids).add(") AND x.param = ANY(").arg(params).add(") AND t.content IS NOT NULL")
		if in.TargetType != "" {
			b.add(" AND x.target_type = ").arg(in.TargetType)
		}
	} else {
		var types, ids []string
		for _, v := range from {
			if in.TargetType == "" || v.Type == in.TargetType {
				types, ids = append(types, v.Type), append(ids, v.ID)
			}
		}
		if len(ids) == 0 {
			return nil, nil
		}
		b.add("SELECT DISTINCT t.rid, t.type, t.id, t.version, t.last_updated, t.method, t.content FROM unnest(").arg(types).add("::text[], ").arg(ids).
			add("::text[]) AS p(type, id) JOIN search_reference x ON x.target_type = p.type AND x.target_id = p.id AND x.param = ANY(").arg(params).
			add(") JOIN resources t ON t.rid = x.rid WHERE t.type = ").arg(in.SourceType)
	}
	b.add(" LIMIT ").arg(maxIncluded + 1)
	rows, err := r.q.Query(ctx, b.String(), b.queryArgs()...)
	if err != nil {
		return nil, internal("include", err)
	}
	vs, err := pgx.CollectRows(rows, scanVersion)
	if err != nil {
		return nil, internal("include", err)
	}
	return vs, nil
}

func scanVersion(row pgx.CollectableRow) (*Version, error) {
	v := &Version{}
	err := row.Scan(&v.RID, &v.Type, &v.ID, &v.Version, &v.LastUpdated, &v.Method, &v.Content)
	return v, err
}

// EverythingQuery selects a compartment's contents for $everything: the owner, the resources that
// refer to it through ParamIDs, and the resources those refer to.
type EverythingQuery struct {
	OwnerType, OwnerID string
	ParamIDs           []int32
	Types              []string // _type; nil for all
	Since              time.Time
	Count              int
	Page               string // cursor from a previous page
}

// Everything returns one page of the owner's $everything in rid order, and the cursor of the next
// page ("" at the end). An unknown or deleted owner is an error.
func (r reader) Everything(ctx context.Context, q EverythingQuery) ([]*Version, string, error) {
	owner, err := r.Read(ctx, q.OwnerType, q.OwnerID)
	if err != nil {
		return nil, "", err
	}
	if owner.Deleted() {
		return nil, "", goneError(owner)
	}
	var after int64
	if q.Page != "" {
		c, err := decodeCursor(q.Page, 0)
		if err != nil {
			return nil, "", err
		}
		after = c.RID
	}
	var b builder
	b.add("WITH members AS (SELECT ").arg(owner.RID).add("::bigint AS rid UNION SELECT x.rid FROM search_reference x WHERE x.param = ANY(").arg(q.ParamIDs).
		add(") AND x.target_type = ").arg(q.OwnerType).add(" AND x.target_id = ").arg(q.OwnerID).
		add("), refs AS (SELECT t.rid FROM search_reference x JOIN resources t ON t.type = x.target_type AND t.id = x.target_id WHERE x.rid IN (SELECT rid FROM members) AND t.content IS NOT NULL)").
		add(" SELECT r.rid, r.type, r.id, r.version, r.last_updated, r.method, r.content FROM resources r WHERE r.rid IN (SELECT rid FROM members UNION SELECT rid FROM refs) AND r.content IS NOT NULL AND r.rid > ").arg(after)
	if len(q.Types) > 0 {
		b.add(" AND r.type = ANY(").arg(q.Types).add(")")
	}
	if !q.Since.IsZero() {
		b.add(" AND r.last_updated >= ").arg(q.Since)
	}
	b.add(" ORDER BY r.rid LIMIT ").arg(q.Count + 1)
	rows, err := r.q.Query(ctx, b.String(), b.queryArgs()...)
	if err != nil {
		return nil, "", internal("everything", err)
	}
	vs, err := pgx.CollectRows(rows, scanVersion)
	if err != nil {
		return nil, "", internal("everything", err)
	}
	next := ""
	if len(vs) > q.Count {
		vs = vs[:q.Count]
		next = cursor{RID: vs[len(vs)-1].RID}.encode()
	}
	return vs, next, nil
}
