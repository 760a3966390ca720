package audit

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/iambilly/billy/fhir"
)

// Query is a search of the trail. Every criterion given must hold; values of one repeated
// parameter (action, outcome, subtype) are alternatives.
type Query struct {
	Patient, Agent, Entity      string
	Actions, Outcomes, Subtypes []string
	// From and To bound recorded: From <= recorded < To (zero: unbounded).
	From, To time.Time
	// Count is the page size; Before, when set, pages on: only rows numbered below it.
	Count  int
	Before int64
}

// DefaultCount and MaxCount bound a page of AuditEvents.
const (
	DefaultCount = 50
	MaxCount     = 1000
)

// SearchParams are the AuditEvent search parameters the trail supports (the CapabilityStatement
// declares these and no others).
var SearchParams = []string{"patient", "agent", "entity", "date", "action", "outcome", "subtype"}

// ParseQuery reads the AuditEvent search parameters the trail supports: patient, agent, entity,
// date (with the prefixes eq, ge, gt, le, lt), action, outcome, subtype, _count and _cursor (the
// paging position of a next link). Any other parameter is refused rather than ignored: an ignored
// criterion would widen an audit report silently.
func ParseQuery(params url.Values) (*Query, error) {
	q := &Query{Count: DefaultCount}
	for name, values := range params {
		for _, v := range values {
			switch name {
			case "patient":
				q.Patient = strings.TrimPrefix(v, "Patient/")
			case "agent":
				q.Agent = v
			case "entity":
				q.Entity = v
			case "action":
				q.Actions = append(q.Actions, strings.Split(v, ",")...)
			case "outcome":
				q.Outcomes = append(q.Outcomes, strings.Split(v, ",")...)
			case "subtype":
				for _, s := range strings.Split(v, ",") {
					if _, code, ok := strings.Cut(s, "|"); ok {
						s = code
					}
					q.Subtypes = append(q.Subtypes, s)
				}
			case "date":
				if err := q.addDate(v); err != nil {
					return nil, err
				}
			case "_count":
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					return nil, fhir.Errorf(fhir.ErrInvalid, "value", "_count must be a number of 0 or more")
				}
				q.Count = min(n, MaxCount)
			case "_cursor":
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n < 1 {
					return nil, fhir.Errorf(fhir.ErrInvalid, "value", "_cursor is not a paging position of this server")
				}
				q.Before = n
			case "_format", "_pretty", "_sort":
				// _sort: the trail answers newest first, always.
			default:
				return nil, fhir.Errorf(fhir.ErrInvalid, "not-supported", "AuditEvent searches take %s and _count, not %q", strings.Join(SearchParams, ", "), name)
			}
		}
	}
	return q, nil
}

// addDate narrows From/To by one date parameter.
func (q *Query) addDate(v string) error {
	prefix := "eq"
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		prefix, v = v[:2], v[2:]
	}
	lo, hi, err := dateRange(v)
	if err != nil {
		return err
	}
	from, to := time.Time{}, time.Time{}
	switch prefix {
	case "eq":
		from, to = lo, hi
	case "ge":
		from = lo
	case "gt":
		from = hi
	case "le":
		to = hi
	case "lt":
		to = lo
	default:
		return fhir.Errorf(fhir.ErrInvalid, "value", "date prefix %q is not one of eq, ge, gt, le, lt", prefix)
	}
	if !from.IsZero() && from.After(q.From) {
		q.From = from
	}
	if !to.IsZero() && (q.To.IsZero() || to.Before(q.To)) {
		q.To = to
	}
	return nil
}

// dateRange is the range a FHIR date or dateTime value covers.
func dateRange(v string) (time.Time, time.Time, error) {
	for _, f := range []struct {
		layout string
		next   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{"2006-01-02T15:04Z07:00", func(t time.Time) time.Time { return t.Add(time.Minute) }},
		{"2006-01-02T15:04:05Z07:00", func(t time.Time) time.Time { return t.Add(time.Second) }},
		{time.RFC3339Nano, func(t time.Time) time.Time { return t.Add(time.Microsecond) }},
	} {
		if t, err := time.Parse(f.layout, v); err == nil && len(v) >= 4 {
			return t, f.next(t), nil
		}
	}
	return time.Time{}, time.Time{}, fhir.Errorf(fhir.ErrInvalid, "value", "date %q is not a FHIR date or dateTime with a time zone", v)
}

// Record is one AuditEvent of the trail.
type Record struct {
	Seq     int64
	Content []byte
}

// Search returns the page of AuditEvents q selects, newest first.
func (t *Trail) Search(ctx context.Context, q *Query) ([]Record, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Patient != "" {
		where = append(where, "patients @> ARRAY["+arg(q.Patient)+"::text]")
	}
	if q.Agent != "" {
		// A bare value names a client id or a subject; a reference a fhirUser.
		alts := []string{q.Agent}
		if !strings.ContainsAny(q.Agent, "|/") {
			alts = []string{"client|" + q.Agent, "subject|" + q.Agent}
		}
		where = append(where, "agents && "+arg(alts)+"::text[]")
	}
	if q.Entity != "" {
		where = append(where, "entities @> ARRAY["+arg(q.Entity)+"::text]")
	}
	for col, vs := range map[string][]string{"action": q.Actions, "outcome": q.Outcomes, "subtype": q.Subtypes} {
		if len(vs) > 0 {
			where = append(where, col+" = ANY("+arg(vs)+"::text[])")
		}
	}
	if !q.From.IsZero() {
		where = append(where, "recorded >= "+arg(q.From))
	}
	if !q.To.IsZero() {
		where = append(where, "recorded < "+arg(q.To))
	}
	if q.Before > 0 {
		where = append(where, "seq < "+arg(q.Before))
	}
	sql := "SELECT seq, content FROM audit_log"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY seq DESC LIMIT " + arg(q.Count)
	rows, err := t.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: search: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r Record
		if err := rows.Scan(&r.Seq, &r.Content); err != nil {
			return nil, fmt.Errorf("audit: search: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Access is one line of a patient's access log: who did what to the patient's data, how often, when
// first and last.
type Access struct {
	Agents          []string
	Action, Subtype string
	Outcome         string
	Count           int
	First, Last     time.Time
}

// AccessLog summarises the trail's events that touched patient, recorded at or after since: one
// Access per agent, action, interaction and outcome, most recent first (at most MaxCount).
func (t *Trail) AccessLog(ctx context.Context, patient string, since time.Time) ([]Access, error) {
	rows, err := t.pool.Query(ctx, `SELECT agents, action, subtype, outcome, count(*), min(recorded), max(recorded)
		FROM audit_log WHERE patients @> ARRAY[$1::text] AND recorded >= $2
		GROUP BY agents, action, subtype, outcome ORDER BY max(recorded) DESC, subtype LIMIT $3`, patient, since, MaxCount)
	if err != nil {
		return nil, fmt.Errorf("audit: access log: %w", err)
	}
	defer rows.Close()
	var out []Access
	for rows.Next() {
		var a Access
		if err := rows.Scan(&a.Agents, &a.Action, &a.Subtype, &a.Outcome, &a.Count, &a.First, &a.Last); err != nil {
			return nil, fmt.Errorf("audit: access log: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
