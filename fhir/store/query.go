package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/search"
	"github.com/iambilly/billy/fhir/searchparam"
)

// builder is the one place search SQL is assembled: fixed SQL text is appended, every value becomes
// a $N argument. Nothing a client sent is ever concatenated into the text.
type builder struct {
	sql  strings.Builder
	args []any
}

func (b *builder) add(s string) *builder {
	b.sql.WriteString(s)
	return b
}

func (b *builder) arg(v any) *builder {
	b.args = append(b.args, v)
	b.sql.WriteString("$")
	b.sql.WriteString(strconv.Itoa(len(b.args)))
	return b
}

func (b *builder) String() string { return b.sql.String() }

// clause appends the condition of one search clause on resources r (values ORed).
func (b *builder) clause(c *search.Clause, now time.Time) error {
	switch c.Special {
	case "_id":
		ids := make([]string, len(c.Values))
		for i, v := range c.Values {
			ids[i] = v.Code
		}
		b.add("r.id = ANY(").arg(ids).add(")")
		return nil
	case "_lastUpdated":
		b.add("(")
		for i, v := range c.Values {
			if i > 0 {
				b.add(" OR ")
			}
			b.instant("r.last_updated", v, now)
		}
		b.add(")")
		return nil
	}
	switch c.Kind {
	case searchparam.Token:
		b.add("EXISTS (SELECT 1 FROM search_token t WHERE t.rid = r.rid AND t.param = ").arg(c.ParamID).add(" AND (")
		for i, v := range c.Values {
			if i > 0 {
				b.add(" OR ")
			}
			switch {
			case !v.HasSystem:
				b.add("t.code = ").arg(v.Code)
			case v.Code == "":
				b.add("t.system = ").arg(v.System)
			default:
				b.add("(t.code = ").arg(v.Code).add(" AND t.system = ").arg(v.System).add(")")
			}
		}
		b.add("))")
		return nil
	}
	return fhir.Errorf(fhir.ErrInvalid, "not-supported", "search parameter %s is not supported", c.Code)
}

// instant appends the comparison of a point in time (col) with a date search value, whose precision
// gives the range [Lo, Hi) (search.html#prefix): eq = the point lies in the range, gt/sa after it,
// lt/eb before it, ge/le their inclusive forms, ne the complement of eq, ap within 10% of the gap
// between now and the value on either side.
func (b *builder) instant(col string, v search.Value, now time.Time) {
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
		gap := now.Sub(v.Lo)
		if gap < 0 {
			gap = -gap
		}
		widen := gap / 10
		b.add("(" + col + " >= ").arg(v.Lo.Add(-widen)).add(" AND " + col + " < ").arg(v.Hi.Add(widen)).add(")")
	default:
		panic(fmt.Sprintf("store: unknown prefix %q", v.Prefix))
	}
}
