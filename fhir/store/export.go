package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/iambilly/billy/fhir/search"
)

// ExportQuery selects the current versions of one type for a Bulk Data export, in rid order from a
// cursor, so that an export can be written a part at a time and resumed after a crash.
type ExportQuery struct {
	Type string
	// After is the cursor: only rids above it. Limit bounds the rows (0: no bound).
	After int64
	Limit int
	// Since keeps versions made after it (_since); Until keeps those made at or before it (the
	// export's transactionTime). Zero values do not bound.
	Since, Until time.Time
	// Patients, when not nil, keeps the members of these patients' compartments (and the Patients
	// themselves): a Group's export. AnyPatient keeps the members of any patient's compartment (and
	// every Patient): Patient/$export.
	Patients   []string
	AnyPatient bool
	// Filters, when not empty, keep the resources matching one of them (_typeFilter, and the
	// principal's query constraints). Each must be a query of Type.
	Filters []*search.Query
	// Reach bounds what the requester may read, as it bounds a search (search.Reach); nil for
	// everything.
	Reach *search.Reach
}

// ExportRow is one exported resource: its rid and stored JSON. Content is only valid during the
// callback (it is the driver's buffer, not copied).
type ExportRow struct {
	RID     int64
	Content []byte
}

// Export streams q's resources to fn in rid order, without holding more than one row: the rows
// are read from the connection as fn consumes them. It returns how many it streamed and the rid of
// the last one (q.After when none).
func (r reader) Export(ctx context.Context, q ExportQuery, fn func(ExportRow) error) (int, int64, error) {
	b := builder{now: r.now()}
	b.add("SELECT r.rid, r.content FROM resources r WHERE r.type = ").arg(q.Type).
		add(" AND r.content IS NOT NULL AND r.rid > ").arg(q.After)
	if !q.Since.IsZero() {
		b.add(" AND r.last_updated > ").arg(q.Since)
	}
	if !q.Until.IsZero() {
		b.add(" AND r.last_updated <= ").arg(q.Until)
	}
	switch {
	case q.Patients != nil && q.Type == "Patient":
		b.add(" AND r.id = ANY(").arg(q.Patients).add(")")
	case q.Patients != nil:
		b.add(" AND r.rid IN (SELECT rid FROM search_reference WHERE param = ").arg(search.ReachMemberParam).
			add(" AND target_type = 'Patient' AND target_id = ANY(").arg(q.Patients).add("))")
	case q.AnyPatient && q.Type != "Patient":
		b.add(" AND EXISTS (SELECT 1 FROM search_reference m WHERE m.rid = r.rid AND m.param = ").arg(search.ReachMemberParam).add(")")
	}
	b.rc = q.Reach
	b.andReach("r", q.Type)
	if len(q.Filters) > 0 {
		b.add(" AND (")
		for i, f := range q.Filters {
			if i > 0 {
				b.add(" OR ")
			}
			b.add("(true")
			if err := b.clauses("r", f.Clauses); err != nil {
				return 0, q.After, err
			}
			b.add(")")
		}
		b.add(")")
	}
	b.add(" ORDER BY r.rid")
	if q.Limit > 0 {
		b.add(" LIMIT ").arg(q.Limit)
	}
	rows, err := r.q.Query(ctx, b.String(), b.queryArgs()...)
	if err != nil {
		return 0, q.After, internal("export", err)
	}
	defer rows.Close()
	n, last := 0, q.After
	var (
		row     ExportRow
		content pgtype.DriverBytes // the driver's buffer: no copy per row
	)
	for rows.Next() {
		if err := rows.Scan(&row.RID, &content); err != nil {
			return n, last, internal("export", err)
		}
		row.Content = content
		if err := fn(row); err != nil {
			return n, last, err
		}
		n++
		last = row.RID
	}
	if err := rows.Err(); err != nil {
		return n, last, internal("export", err)
	}
	return n, last, nil
}

// ExportTypes lists the types that have current resources: what a system-level export without
// _type covers. It skips from type to type along the (type, rid) index instead of reading rows.
func (r reader) ExportTypes(ctx context.Context) ([]string, error) {
	rows, err := r.q.Query(ctx, `WITH RECURSIVE t AS (
		(SELECT type FROM resources WHERE content IS NOT NULL ORDER BY type LIMIT 1)
		UNION ALL
		SELECT (SELECT type FROM resources WHERE content IS NOT NULL AND type > t.type ORDER BY type LIMIT 1) FROM t WHERE t.type IS NOT NULL)
		SELECT type FROM t WHERE type IS NOT NULL`)
	if err != nil {
		return nil, internal("export", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, internal("export", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("export", err)
	}
	return out, nil
}
