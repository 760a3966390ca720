package store

import (
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/iambilly/billy/fhir/search"
)

// indexRows are the index values of one or more resources as column arrays, the way unnest takes
// them, so a whole transaction Bundle's rows go to each table in one INSERT.
type indexRows struct {
	tok struct {
		rid          []int64
		param        []int32
		system, code []string
	}
	str struct {
		rid         []int64
		param       []int32
		norm, exact []string
	}
	date struct {
		rid    []int64
		param  []int32
		lo, hi []pgtype.Timestamptz
	}
	num struct {
		rid    []int64
		param  []int32
		lo, hi []string
	}
	qty struct {
		rid                []int64
		param              []int32
		system, code, unit []string
		lo, hi             []string
	}
	ref struct {
		rid     []int64
		param   []int32
		typ, id []string
	}
	comp struct {
		rid   []int64
		param []int32
		parts [3]partArrays
	}
}

type partArrays struct {
	system, code, unit []*string
	lo, hi             []*string
	tlo, thi           []pgtype.Timestamptz
}

func (r *indexRows) add(rid int64, ix search.Index) {
	for _, t := range ix.Tokens {
		r.tok.rid = append(r.tok.rid, rid)
		r.tok.param = append(r.tok.param, t.Param)
		r.tok.system = append(r.tok.system, t.System)
		r.tok.code = append(r.tok.code, t.Code)
	}
	for _, s := range ix.Strings {
		r.str.rid = append(r.str.rid, rid)
		r.str.param = append(r.str.param, s.Param)
		r.str.norm = append(r.str.norm, s.Norm)
		r.str.exact = append(r.str.exact, s.Exact)
	}
	for _, d := range ix.Dates {
		r.date.rid = append(r.date.rid, rid)
		r.date.param = append(r.date.param, d.Param)
		r.date.lo = append(r.date.lo, timestamp(d.Lo, pgtype.NegativeInfinity))
		r.date.hi = append(r.date.hi, timestamp(d.Hi, pgtype.Infinity))
	}
	for _, n := range ix.Numbers {
		r.num.rid = append(r.num.rid, rid)
		r.num.param = append(r.num.param, n.Param)
		r.num.lo = append(r.num.lo, n.Lo)
		r.num.hi = append(r.num.hi, n.Hi)
	}
	for _, q := range ix.Quantities {
		r.qty.rid = append(r.qty.rid, rid)
		r.qty.param = append(r.qty.param, q.Param)
		r.qty.system = append(r.qty.system, q.System)
		r.qty.code = append(r.qty.code, q.Code)
		r.qty.unit = append(r.qty.unit, q.Unit)
		r.qty.lo = append(r.qty.lo, q.Lo)
		r.qty.hi = append(r.qty.hi, q.Hi)
	}
	for _, ref := range ix.References {
		r.ref.rid = append(r.ref.rid, rid)
		r.ref.param = append(r.ref.param, ref.Param)
		r.ref.typ = append(r.ref.typ, ref.Type)
		r.ref.id = append(r.ref.id, ref.ID)
	}
	for _, c := range ix.Composites {
		r.comp.rid = append(r.comp.rid, rid)
		r.comp.param = append(r.comp.param, c.Param)
		for i, p := range c.Parts {
			pa := &r.comp.parts[i]
			pa.system = append(pa.system, nullable(p.System, p.Code != "" || p.System != ""))
			// The first component (a token or reference) keys the index: never NULL there.
			pa.code = append(pa.code, nullable(p.Code, p.Code != "" || i == 0))
			pa.unit = append(pa.unit, nullable(p.Unit, p.Unit != ""))
			pa.lo = append(pa.lo, nullable(p.Lo, p.Lo != ""))
			pa.hi = append(pa.hi, nullable(p.Hi, p.Hi != ""))
			pa.tlo = append(pa.tlo, dateOrNull(p.TLo, p.THi, pgtype.NegativeInfinity))
			pa.thi = append(pa.thi, dateOrNull(p.THi, p.TLo, pgtype.Infinity))
		}
	}
}

func nullable(s string, ok bool) *string {
	if !ok {
		return nil
	}
	return &s
}

// timestamp is t, or the infinity given for an open end.
func timestamp(t time.Time, open pgtype.InfinityModifier) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{InfinityModifier: open, Valid: true}
	}
	return pgtype.Timestamptz{Time: t, Valid: true}
}

// dateOrNull is NULL when neither end of the range is set (the part is not a date), else like
// timestamp.
func dateOrNull(t, other time.Time, open pgtype.InfinityModifier) pgtype.Timestamptz {
	if t.IsZero() && other.IsZero() {
		return pgtype.Timestamptz{}
	}
	return timestamp(t, open)
}

// insertIndex appends to b the CTE parts ", name AS (INSERT ...)" that write r, one per table that
// has rows.
func (r *indexRows) insertIndex(b *builder) {
	if len(r.tok.rid) > 0 {
		b.add(", ins_tok AS (INSERT INTO search_token (rid, param, system, code) SELECT * FROM unnest(").
			arg(r.tok.rid).add("::bigint[], ").arg(r.tok.param).add("::int[], ").arg(r.tok.system).add("::text[], ").arg(r.tok.code).add("::text[]))")
	}
	if len(r.str.rid) > 0 {
		b.add(", ins_str AS (INSERT INTO search_string (rid, param, norm, exact) SELECT * FROM unnest(").
			arg(r.str.rid).add("::bigint[], ").arg(r.str.param).add("::int[], ").arg(r.str.norm).add("::text[], ").arg(r.str.exact).add("::text[]))")
	}
	if len(r.date.rid) > 0 {
		b.add(", ins_date AS (INSERT INTO search_date (rid, param, lo, hi) SELECT * FROM unnest(").
			arg(r.date.rid).add("::bigint[], ").arg(r.date.param).add("::int[], ").arg(r.date.lo).add("::timestamptz[], ").arg(r.date.hi).add("::timestamptz[]))")
	}
	if len(r.num.rid) > 0 {
		b.add(", ins_num AS (INSERT INTO search_number (rid, param, lo, hi) SELECT * FROM unnest(").
			arg(r.num.rid).add("::bigint[], ").arg(r.num.param).add("::int[], ").arg(r.num.lo).add("::numeric[], ").arg(r.num.hi).add("::numeric[]))")
	}
	if len(r.qty.rid) > 0 {
		b.add(", ins_qty AS (INSERT INTO search_quantity (rid, param, system, code, unit, lo, hi) SELECT * FROM unnest(").
			arg(r.qty.rid).add("::bigint[], ").arg(r.qty.param).add("::int[], ").arg(r.qty.system).add("::text[], ").arg(r.qty.code).add("::text[], ").
			arg(r.qty.unit).add("::text[], ").arg(r.qty.lo).add("::numeric[], ").arg(r.qty.hi).add("::numeric[]))")
	}
	if len(r.ref.rid) > 0 {
		b.add(", ins_ref AS (INSERT INTO search_reference (rid, param, target_type, target_id) SELECT * FROM unnest(").
			arg(r.ref.rid).add("::bigint[], ").arg(r.ref.param).add("::int[], ").arg(r.ref.typ).add("::text[], ").arg(r.ref.id).add("::text[]))")
	}
	if len(r.comp.rid) > 0 {
		b.add(", ins_comp AS (INSERT INTO search_composite (rid, param")
		for i := 1; i <= 3; i++ {
			n := string(rune('0' + i))
			b.add(", system" + n + ", code" + n + ", unit" + n + ", lo" + n + ", hi" + n + ", tlo" + n + ", thi" + n)
		}
		b.add(") SELECT * FROM unnest(").arg(r.comp.rid).add("::bigint[], ").arg(r.comp.param).add("::int[]")
		for _, pa := range r.comp.parts {
			b.add(", ").arg(pa.system).add("::text[], ").arg(pa.code).add("::text[], ").arg(pa.unit).add("::text[], ").arg(pa.lo).add("::numeric[], ").
				arg(pa.hi).add("::numeric[], ").arg(pa.tlo).add("::timestamptz[], ").arg(pa.thi).add("::timestamptz[]")
		}
		b.add("))")
	}
}

// deleteIndex appends CTE parts that drop the index rows r holds (the values extracted from the
// version being replaced), each found through its table's value index, whose key ends with rid.
// References are dropped by rid, which search_reference indexes for _include anyway.
func (r *indexRows) deleteIndex(b *builder, rid int64) {
	if len(r.tok.rid) > 0 {
		b.add(", del_tok AS (DELETE FROM search_token t USING unnest(").arg(r.tok.param).add("::int[], ").arg(r.tok.code).add("::text[], ").arg(r.tok.system).
			add("::text[]) AS u(param, code, system) WHERE t.param = u.param AND t.code = u.code AND t.system = u.system AND t.rid = ").arg(rid).add(")")
	}
	if len(r.str.rid) > 0 {
		b.add(", del_str AS (DELETE FROM search_string t USING unnest(").arg(r.str.param).add("::int[], ").arg(r.str.norm).
			add("::text[]) AS u(param, norm) WHERE t.param = u.param AND t.norm = u.norm AND t.rid = ").arg(rid).add(")")
	}
	if len(r.date.rid) > 0 {
		b.add(", del_date AS (DELETE FROM search_date t USING unnest(").arg(r.date.param).add("::int[], ").arg(r.date.lo).
			add("::timestamptz[]) AS u(param, lo) WHERE t.param = u.param AND t.lo = u.lo AND t.rid = ").arg(rid).add(")")
	}
	if len(r.num.rid) > 0 {
		b.add(", del_num AS (DELETE FROM search_number t USING unnest(").arg(r.num.param).add("::int[], ").arg(r.num.lo).
			add("::numeric[]) AS u(param, lo) WHERE t.param = u.param AND t.lo = u.lo AND t.rid = ").arg(rid).add(")")
	}
	if len(r.qty.rid) > 0 {
		b.add(", del_qty AS (DELETE FROM search_quantity t USING unnest(").arg(r.qty.param).add("::int[], ").arg(r.qty.lo).
			add("::numeric[]) AS u(param, lo) WHERE t.param = u.param AND t.lo = u.lo AND t.rid = ").arg(rid).add(")")
	}
	if len(r.comp.rid) > 0 {
		b.add(", del_comp AS (DELETE FROM search_composite t USING unnest(").arg(r.comp.param).add("::int[], ").arg(r.comp.parts[0].code).
			add("::text[]) AS u(param, code1) WHERE t.param = u.param AND t.code1 = u.code1 AND t.rid = ").arg(rid).add(")")
	}
	b.add(", del_ref AS (DELETE FROM search_reference WHERE rid = ").arg(rid).add(")")
}
