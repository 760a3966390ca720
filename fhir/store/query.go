package store

import (
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/searchparam"
)

// builder is the one place search SQL is assembled: fixed SQL text is appended, every value becomes
// a $N argument. Nothing a client sent is ever concatenated into the text.
type builder struct {
	sql     []byte
	args    []any
	aliases int
	now     time.Time // the store's clock, for ap; set by every reader that builds a search
	// rc is the reach of the query being built: chains and _has look only through what it admits.
	rc *search.Reach
}

func (b *builder) add(s string) *builder {
	b.sql = append(b.sql, s...)
	return b
}

func (b *builder) arg(v any) *builder {
	b.args = append(b.args, v)
	b.sql = append(b.sql, '$')
	b.sql = strconv.AppendInt(b.sql, int64(len(b.args)), 10)
	return b
}

func (b *builder) String() string { return string(b.sql) }

// queryArgs are the arguments of b's query for pgx, led by the execution mode. Built queries run as
// unnamed statements (their description cached), so PostgreSQL plans each with its actual values: a
// cached generic plan assumes an average selectivity, and for a common code or a wide date range
// that meant joining every match before the LIMIT (170 ms instead of 1 ms at a million resources).
func (b *builder) queryArgs() []any {
	return append([]any{pgx.QueryExecModeCacheDescribe}, b.args...)
}

// detached returns the SQL that fn appends, as a separate string, with its arguments numbered in b:
// for fragments placed elsewhere than where they are built (sort keys).
func (b *builder) detached(fn func()) string {
	saved := b.sql
	b.sql = nil
	fn()
	out := string(b.sql)
	b.sql = saved
	return out
}

// alias returns a fresh table alias for a subquery.
func (b *builder) alias(prefix string) string {
	b.aliases++
	return prefix + strconv.Itoa(b.aliases)
}

// likePrefix escapes LIKE wildcards so a value is matched literally as a prefix.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// clauses appends " AND <condition>" for every clause of q, on resources aliased r.
func (b *builder) clauses(r string, cs []*search.Clause) error {
	for _, c := range cs {
		b.add(" AND ")
		if err := b.clause(r, c); err != nil {
			return err
		}
	}
	return nil
}

// clause appends the condition of one search clause on resources aliased r (values ORed).
func (b *builder) clause(r string, c *search.Clause) error {
	switch c.Special {
	case "_id":
		if c.Missing != nil {
			b.add(map[bool]string{true: "false", false: "true"}[*c.Missing])
			return nil
		}
		ids := make([]string, len(c.Values))
		for i, v := range c.Values {
			ids[i] = v.Code
		}
		if c.Modifier == "not" {
			b.add(r + ".id <> ALL(").arg(ids).add(")")
		} else {
			b.add(r + ".id = ANY(").arg(ids).add(")")
		}
		return nil
	case "_lastUpdated":
		b.add("(")
		for i, v := range c.Values {
			if i > 0 {
				b.add(" OR ")
			}
			b.instant(r+".last_updated", v)
		}
		b.add(")")
		return nil
	}
	if c.Has != nil {
		return b.has(r, c)
	}
	if len(c.Chain) > 0 {
		return b.chain(r, c)
	}
	table := tableOf(c)
	if c.Missing != nil {
		if *c.Missing {
			b.add(r + ".rid NOT IN (SELECT rid FROM " + table + " WHERE param = ").arg(c.ParamID).add(")")
		} else {
			b.add(r + ".rid IN (SELECT rid FROM " + table + " WHERE param = ").arg(c.ParamID).add(")")
		}
		return nil
	}
	t := b.alias("i")
	param := c.ParamID
	switch c.Modifier {
	case "text":
		param = search.IDOf(c.Param, "text")
	case "of-type":
		param = search.IDOf(c.Param, "of-type")
	case "identifier":
		param = search.IDOf(c.Param, "identifier")
	}
	op := " IN "
	if c.Modifier == "not" {
		op = " NOT IN "
	}
	b.add(r + ".rid" + op + "(SELECT " + t + ".rid FROM " + table + " " + t + " WHERE " + t + ".param = ").arg(param).add(" AND (")
	for i, v := range c.Values {
		if i > 0 {
			b.add(" OR ")
		}
		if err := b.value(t, c, v); err != nil {
			return err
		}
	}
	b.add("))")
	return nil
}

// tableOf is the index table a clause's values live in.
func tableOf(c *search.Clause) string {
	switch c.Modifier {
	case "text":
		return "search_string"
	case "identifier", "of-type":
		return "search_token"
	}
	switch c.Kind {
	case searchparam.Token:
		return "search_token"
	case searchparam.String, searchparam.URI:
		return "search_string"
	case searchparam.Date:
		return "search_date"
	case searchparam.Number:
		return "search_number"
	case searchparam.Quantity:
		return "search_quantity"
	case searchparam.Reference:
		return "search_reference"
	case searchparam.Composite:
		return "search_composite"
	}
	return "search_token"
}

// value appends the condition one value puts on an index row aliased t.
func (b *builder) value(t string, c *search.Clause, v search.Value) error {
	switch {
	case c.Modifier == "text":
		b.add(t + ".norm LIKE ").arg(likeEscape(v.Norm) + "%")
		return nil
	case c.Kind == searchparam.Token || c.Modifier == "identifier" || c.Modifier == "of-type":
		b.token(t+".system", t+".code", v)
		return nil
	case c.Kind == searchparam.String:
		switch c.Modifier {
		case "exact":
			b.add("(" + t + ".norm = ").arg(v.Norm).add(" AND " + t + ".exact = ").arg(v.Code).add(")")
		case "contains":
			b.add(t + ".norm LIKE ").arg("%" + likeEscape(v.Norm) + "%")
		default:
			b.add(t + ".norm LIKE ").arg(likeEscape(v.Norm) + "%")
		}
		return nil
	case c.Kind == searchparam.URI:
		switch c.Modifier {
		case "below":
			b.add(t + ".norm LIKE ").arg(likeEscape(v.Code) + "%")
		case "above":
			b.add("starts_with(").arg(v.Code).add(", " + t + ".norm)")
		default:
			b.add(t + ".norm = ").arg(v.Code)
		}
		return nil
	case c.Kind == searchparam.Date:
		b.dateRange(t+".lo", t+".hi", v)
		return nil
	case c.Kind == searchparam.Number:
		b.numeric(t+".lo", t+".hi", v)
		return nil
	case c.Kind == searchparam.Quantity:
		b.add("(")
		b.numeric(t+".lo", t+".hi", v)
		b.quantityUnit(t+".system", t+".code", t+".unit", v)
		b.add(")")
		return nil
	case c.Kind == searchparam.Reference:
		b.reference(t, c, v)
		return nil
	case c.Kind == searchparam.Composite:
		return b.composite(t, c, v)
	}
	return fhir.Errorf(fhir.ErrInvalid, "not-supported", "search parameter %s is not supported", c.Code)
}

// token matches code, system|code, |code (no system) and system| (any code of the system).
func (b *builder) token(sysCol, codeCol string, v search.Value) {
	switch {
	case !v.HasSystem:
		b.add(codeCol + " = ").arg(v.Code)
	case v.Code == "":
		b.add(sysCol + " = ").arg(v.System)
	default:
		b.add("(" + codeCol + " = ").arg(v.Code).add(" AND " + sysCol + " = ").arg(v.System).add(")")
	}
}

// quantityUnit appends the unit part of a quantity match: system|code matches the coded unit,
// ||code the coded unit or the unit as written.
func (b *builder) quantityUnit(sysCol, codeCol, unitCol string, v search.Value) {
	switch {
	case v.Unit == "":
	case v.HasSystem:
		b.add(" AND " + sysCol + " = ").arg(v.System).add(" AND " + codeCol + " = ").arg(v.Unit)
	default:
		b.add(" AND (" + codeCol + " = ").arg(v.Unit).add(" OR " + unitCol + " = ").arg(v.Unit).add(")")
	}
}

func (b *builder) reference(t string, c *search.Clause, v search.Value) {
	switch {
	case v.URL != "":
		b.add("(" + t + ".target_type = '' AND " + t + ".target_id = ").arg(v.URL).add(")")
	case v.RefType != "":
		b.add("(" + t + ".target_id = ").arg(v.RefID).add(" AND " + t + ".target_type = ").arg(v.RefType).add(")")
	case len(c.TargetTypes) > 0:
		b.add("(" + t + ".target_id = ").arg(v.RefID).add(" AND " + t + ".target_type = ANY(").arg(c.TargetTypes).add("))")
	default:
		b.add("(" + t + ".target_id = ").arg(v.RefID).add(" AND " + t + ".target_type <> '')")
	}
}

// composite matches every component of one composite value on the same row.
func (b *builder) composite(t string, c *search.Clause, v search.Value) error {
	b.add("(true")
	for i, cv := range v.Components {
		n := strconv.Itoa(i + 1)
		cp := c.Param.Components[i]
		p, ok := searchparam.Lookup(c.Param.Base, cp.Code)
		if !ok {
			return fhir.Errorf(fhir.ErrInvalid, "not-supported", "component %s of %s is not known", cp.Code, c.Code)
		}
		b.add(" AND ")
		switch p.Type {
		case searchparam.Token:
			b.token(t+".system"+n, t+".code"+n, cv)
		case searchparam.String:
			b.add(t + ".code" + n + " LIKE ").arg(likeEscape(cv.Norm) + "%")
		case searchparam.Reference:
			key := cv.URL
			if key == "" {
				key = cv.RefType + "/" + cv.RefID
			}
			if cv.RefType == "" && cv.URL == "" {
				b.add(t + ".code" + n + " LIKE ").arg("%/" + likeEscape(cv.RefID))
				continue
			}
			b.add(t + ".code" + n + " = ").arg(key)
		case searchparam.Quantity:
			b.add("(")
			b.numeric(t+".lo"+n, t+".hi"+n, cv)
			b.quantityUnit(t+".system"+n, t+".code"+n, t+".unit"+n, cv)
			b.add(")")
		case searchparam.Number:
			b.numeric(t+".lo"+n, t+".hi"+n, cv)
		case searchparam.Date:
			b.dateRange(t+".tlo"+n, t+".thi"+n, cv)
		default:
			return fhir.Errorf(fhir.ErrInvalid, "not-supported", "component %s of %s is not supported", cp.Code, c.Code)
		}
	}
	b.add(")")
	return nil
}

// chain matches resources whose reference parameter points at a resource matching the chained
// clause: subject:Patient.name=x.
func (b *builder) chain(r string, c *search.Clause) error {
	x, t := b.alias("x"), b.alias("c")
	b.add(r + ".rid IN (SELECT " + x + ".rid FROM search_reference " + x + " JOIN resources " + t + " ON " + t + ".type = " + x + ".target_type AND " + t + ".id = " + x + ".target_id WHERE " + x + ".param = ").
		arg(c.ParamID).add(" AND " + t + ".content IS NOT NULL AND (")
	for i, sub := range c.Chain {
		if i > 0 {
			b.add(" OR ")
		}
		b.add("(" + x + ".target_type = ").arg(c.TargetTypes[i]).add(" AND ")
		if err := b.clause(t, sub); err != nil {
			return err
		}
		b.andReach(t, c.TargetTypes[i])
		b.add(")")
	}
	b.add("))")
	return nil
}

// has matches resources that resources of HasType refer to through HasParam and that match the
// nested clause: _has:Observation:patient:code=x.
func (b *builder) has(r string, c *search.Clause) error {
	x, h := b.alias("x"), b.alias("h")
	if n := c.Has; n.Special == "" && n.Has == nil && b.rc.Of(c.HasType) == search.AccessAll {
		// The nested clause only tests index rows (rid IN ...), and index rows exist only for the live
		// current versions of the parameter's own type, so the referring resource need not be read.
		b.add("(" + r + ".type, " + r + ".id) IN (SELECT " + x + ".target_type, " + x + ".target_id FROM search_reference " + x + " WHERE " + x + ".param = ").
			arg(c.ParamID).add(" AND ")
		if err := b.clause(x, n); err != nil {
			return err
		}
		b.add(")")
		return nil
	}
	b.add("(" + r + ".type, " + r + ".id) IN (SELECT " + x + ".target_type, " + x + ".target_id FROM search_reference " + x + " JOIN resources " + h + " ON " + h + ".rid = " + x + ".rid WHERE " + x + ".param = ").
		arg(c.ParamID).add(" AND " + h + ".type = ").arg(c.HasType).add(" AND ")
	if err := b.clause(h, c.Has); err != nil {
		return err
	}
	b.andReach(h, c.HasType)
	b.add(")")
	return nil
}

// instant compares a point in time (col) with a date value's range [Lo, Hi): the dateRange rules
// with the column as a range one microsecond wide, written so the column's index applies.
func (b *builder) instant(col string, v search.Value) {
	switch v.Prefix {
	case search.EQ:
		b.add("(" + col + " >= ").arg(v.Lo).add(" AND " + col + " < ").arg(v.Hi).add(")")
	case search.NE:
		b.add("(" + col + " < ").arg(v.Lo).add(" OR " + col + " >= ").arg(v.Hi).add(")")
	case search.GT, search.SA:
		b.add(col + " >= ").arg(v.Hi)
	case search.LT, search.EB:
		b.add(col + " < ").arg(v.Lo)
	case search.GE:
		b.add(col + " >= ").arg(v.Lo)
	case search.LE:
		b.add(col + " < ").arg(v.Hi)
	case search.AP:
		lo, hi := b.approximately(v)
		b.add("(" + col + " >= ").arg(lo).add(" AND " + col + " < ").arg(hi).add(")")
	}
}

// dateRange compares a resource's range [lo, hi) with a search value's [Lo, Hi)
// (search.html#prefix): eq = the resource range lies within the value's; gt = it extends after the
// value's end; lt = it starts before the value's start; ge/le = gt/lt or eq; sa = it starts after
// the value ends; eb = it ends before the value starts; ne = not eq; ap = it overlaps the value's
// range widened by 10 % of the distance from now.
func (b *builder) dateRange(lo, hi string, v search.Value) {
	eq := func() {
		b.add("(" + lo + " >= ").arg(v.Lo).add(" AND " + hi + " <= ").arg(v.Hi).add(")")
	}
	switch v.Prefix {
	case search.EQ:
		eq()
	case search.NE:
		b.add("NOT ")
		eq()
	case search.GT:
		b.add(hi + " > ").arg(v.Hi)
	case search.LT:
		b.add(lo + " < ").arg(v.Lo)
	case search.GE:
		b.add("(" + hi + " > ").arg(v.Hi).add(" OR ")
		eq()
		b.add(")")
	case search.LE:
		b.add("(" + lo + " < ").arg(v.Lo).add(" OR ")
		eq()
		b.add(")")
	case search.SA:
		b.add(lo + " >= ").arg(v.Hi)
	case search.EB:
		b.add(hi + " <= ").arg(v.Lo)
	case search.AP:
		wlo, whi := b.approximately(v)
		b.add("(" + lo + " < ").arg(whi).add(" AND " + hi + " > ").arg(wlo).add(")")
	}
}

// approximately widens a date value's range by 10 % of its distance from now (the store's clock,
// never the wall clock) on each side.
func (b *builder) approximately(v search.Value) (time.Time, time.Time) {
	gap := b.now.Sub(v.Lo)
	if gap < 0 {
		gap = -gap
	}
	return v.Lo.Add(-gap / 10), v.Hi.Add(gap / 10)
}

// numeric compares a resource's value or range [lo, hi] with a number: eq = within the range the
// value's precision implies; gt/lt/ge/le/sa/eb compare with the value itself; ap = within 10 %.
func (b *builder) numeric(lo, hi string, v search.Value) {
	switch v.Prefix {
	case search.EQ:
		b.add("(" + lo + " >= ").arg(v.NumLo).add("::numeric AND " + hi + " < ").arg(v.NumHi).add("::numeric)")
	case search.NE:
		b.add("NOT (" + lo + " >= ").arg(v.NumLo).add("::numeric AND " + hi + " < ").arg(v.NumHi).add("::numeric)")
	case search.GT:
		b.add(hi + " > ").arg(v.Num).add("::numeric")
	case search.LT:
		b.add(lo + " < ").arg(v.Num).add("::numeric")
	case search.GE:
		b.add(hi + " >= ").arg(v.Num).add("::numeric")
	case search.LE:
		b.add(lo + " <= ").arg(v.Num).add("::numeric")
	case search.SA:
		b.add(lo + " > ").arg(v.Num).add("::numeric")
	case search.EB:
		b.add(hi + " < ").arg(v.Num).add("::numeric")
	case search.AP:
		b.add("(" + lo + " >= ").arg(v.Num).add("::numeric - abs($" + strconv.Itoa(len(b.args)) + "::numeric) * 0.1 AND " + hi + " <= $" + strconv.Itoa(len(b.args)) + "::numeric + abs($" + strconv.Itoa(len(b.args)) + "::numeric) * 0.1)")
	}
}
