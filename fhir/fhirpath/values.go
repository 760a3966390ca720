package fhirpath

import (
	"math/big"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/schema"
)

// skind is the FHIRPath system type a node's value is operated on as.
type skind uint8

const (
	kNone     skind = iota // a primitive with no value (only its _twin)
	kBool                  // Boolean
	kString                // String
	kInteger               // Integer
	kDecimal               // Decimal
	kDate                  // Date
	kDateTime              // DateTime
	kTime                  // Time
	kQuantity              // Quantity, FHIR Quantity and its specialisations (Age, Duration, ...)
	kComplex               // any other FHIR complex type or resource: compared as JSON
)

func sysKind(name string) skind {
	switch name {
	case "Boolean":
		return kBool
	case "String":
		return kString
	case "Integer":
		return kInteger
	case "Decimal":
		return kDecimal
	case "Date":
		return kDate
	case "DateTime":
		return kDateTime
	case "Time":
		return kTime
	case "Quantity":
		return kQuantity
	}
	return kComplex
}

func kindOf(n *Node) skind {
	if n.Value == nil {
		return kNone
	}
	if p := typeKinds.Load(); p != nil {
		if k, ok := (*p)[n.Type]; ok {
			return k
		}
	}
	return learnKind(n.Type)
}

// typeKinds caches the kind of each type name seen, read without locking: it is consulted for
// every comparison and boolean test. The set of names is bounded by the schema (types and backbone
// paths), so copying the map on each new name settles quickly.
var (
	typeKinds   atomic.Pointer[map[string]skind]
	typeKindsMu sync.Mutex
)

func learnKind(typ string) skind {
	var k skind
	if sys, ok := strings.CutPrefix(typ, "System."); ok {
		k = sysKind(sys)
	} else if st, ok := schema.SystemType(typ); ok {
		k = sysKind(st)
	} else if derivesFrom(typ, "Quantity") {
		k = kQuantity
	} else {
		k = kComplex
	}
	if _, known := schema.KindOf(typ); !known && !strings.HasPrefix(typ, "System.") && strings.IndexByte(typ, '.') < 0 {
		return k // not a name the schema bounds: do not let arbitrary names grow the cache
	}
	typeKindsMu.Lock()
	defer typeKindsMu.Unlock()
	next := map[string]skind{typ: k}
	if old := typeKinds.Load(); old != nil {
		for t, v := range *old {
			next[t] = v
		}
	}
	typeKinds.Store(&next)
	return k
}

// Values the evaluator computes. They are shared, which is why Node says computed values must not
// be modified.
var (
	trueVal  = jsontree.NewBool(true)
	falseVal = jsontree.NewBool(false)
	trueCol  = []Node{{Value: trueVal, Type: sysBoolean, Index: -1}}
	falseCol = []Node{{Value: falseVal, Type: sysBoolean, Index: -1}}
)

func boolNode(b bool) Node {
	if b {
		return trueCol[0]
	}
	return falseCol[0]
}

func boolCol(b bool) []Node {
	if b {
		return trueCol[:1:1]
	}
	return falseCol[:1:1]
}

func stringNode(s string) Node {
	return Node{Value: jsontree.NewString(s), Type: sysString, Index: -1}
}

func intNode(i int64) Node {
	return Node{Value: jsontree.NewNumber(strconv.FormatInt(i, 10)), Type: sysInteger, Index: -1}
}

// quantityNode builds a System.Quantity shaped like a FHIR Quantity, so that the same code reads
// both.
func quantityNode(value, unit string) Node {
	q := jsontree.NewObject()
	q.Set("value", jsontree.NewNumber(value))
	q.Set("unit", jsontree.NewString(unit))
	q.Set("code", jsontree.NewString(unit))
	return Node{Value: q, Type: sysQuantity, Index: -1}
}

func lit(n Node) *literal { return &literal{val: []Node{n}} }

// temporalLiteral turns the text of an @ literal into a Date, DateTime or Time node.
func temporalLiteral(text string) (Node, bool) {
	var k skind
	typ := sysDate
	switch {
	case strings.HasPrefix(text, "T"):
		text, k, typ = text[1:], kTime, sysTime
	case strings.IndexByte(text, 'T') >= 0:
		k, typ = kDateTime, sysDateTime
	default:
		k = kDate
	}
	if _, ok := parseTemporal(text, k); !ok {
		return Node{}, false
	}
	return Node{Value: jsontree.NewString(text), Type: typ, Index: -1}, true
}

// text returns the value of a primitive or system node as FHIRPath's toString() writes it; ok is
// false for complex values.
func text(n *Node) (string, bool) {
	switch kindOf(n) {
	case kNone, kComplex:
		return "", false
	case kQuantity:
		q := quantityOf(n)
		if q.unit == "" {
			return q.value, true
		}
		return q.value + " '" + q.unit + "'", true
	}
	return n.Value.Str, true
}

type quantity struct{ value, unit string }

func quantityOf(n *Node) quantity {
	q := quantity{value: n.Value.GetString("value")}
	if v := n.Value.Get("value"); v != nil && v.Kind == jsontree.Number {
		q.value = v.Str
	}
	q.unit = n.Value.GetString("code")
	if q.unit == "" {
		q.unit = n.Value.GetString("unit")
	}
	return q
}

// equal implements = on two items: 1 true, 0 false, -1 unknown (empty).
func equal(a, b *Node) int {
	ka, kb := kindOf(a), kindOf(b)
	if ka == kNone || kb == kNone {
		return -1
	}
	if c, ok, comparable := compare(a, b, ka, kb); comparable {
		if !ok {
			return -1
		}
		return b2i(c == 0)
	}
	if ka == kBool && kb == kBool {
		return b2i(a.Value.Str == b.Value.Str)
	}
	if ka == kComplex && kb == kComplex {
		return b2i(jsontree.Equal(a.Value, b.Value))
	}
	return 0
}

// equivalent implements ~ on two items.
func equivalent(a, b *Node) bool {
	ka, kb := kindOf(a), kindOf(b)
	switch {
	case ka == kNone || kb == kNone:
		return ka == kb
	case ka == kString && kb == kString:
		return normSpace(a.Value.Str) == normSpace(b.Value.Str)
	case isNum(ka) && isNum(kb):
		return equivNum(a.Value.Str, b.Value.Str)
	case isTemporal(ka) && isTemporal(kb):
		ta, ok1 := parseTemporal(a.Value.Str, ka)
		tb, ok2 := parseTemporal(b.Value.Str, kb)
		if !ok1 || !ok2 || ta.prec != tb.prec {
			return false
		}
		c, ok := cmpTemporal(ta, tb)
		return ok && c == 0
	}
	return equal(a, b) == 1
}

// compare orders two items. comparable is false when the kinds cannot be ordered (an error for
// <, a plain false for =); ok is false when the result is unknown (dates of different precision,
// quantities in different units).
func compare(a, b *Node, ka, kb skind) (c int, ok, comparable bool) {
	switch {
	case ka == kString && kb == kString:
		return strings.Compare(a.Value.Str, b.Value.Str), true, true
	case isNum(ka) && isNum(kb):
		c, ok := cmpNum(a.Value.Str, b.Value.Str)
		return c, ok, true
	case isTemporal(ka) || isTemporal(kb):
		// A string compared with a date is read as one: birthDate = '2020-01-01'.
		if ka == kString {
			ka = kb
		}
		if kb == kString {
			kb = ka
		}
		if !isTemporal(ka) || !isTemporal(kb) || (ka == kTime) != (kb == kTime) {
			return 0, false, false
		}
		ta, ok1 := parseTemporal(a.Value.Str, ka)
		tb, ok2 := parseTemporal(b.Value.Str, kb)
		if !ok1 || !ok2 {
			return 0, false, false
		}
		c, ok := cmpTemporal(ta, tb)
		return c, ok, true
	case ka == kQuantity && kb == kQuantity:
		qa, qb := quantityOf(a), quantityOf(b)
		if qa.unit != qb.unit || qa.value == "" || qb.value == "" {
			// Converting units needs UCUM, which this package does not have.
			return 0, false, true
		}
		c, ok := cmpNum(qa.value, qb.value)
		return c, ok, true
	}
	return 0, false, false
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func isNum(k skind) bool      { return k == kInteger || k == kDecimal }
func isTemporal(k skind) bool { return k == kDate || k == kDateTime || k == kTime }

func normSpace(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }

// cmpNum compares two decimal literals exactly, without allocating in the common case.
func cmpNum(a, b string) (int, bool) {
	if strings.ContainsAny(a, "eE") || strings.ContainsAny(b, "eE") {
		ra, ok1 := ratOf(a)
		rb, ok2 := ratOf(b)
		if !ok1 || !ok2 {
			return 0, false
		}
		return ra.Cmp(rb), true
	}
	na, ia, fa, ok1 := splitNum(a)
	nb, ib, fb, ok2 := splitNum(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	za, zb := ia == "" && fa == "", ib == "" && fb == ""
	switch {
	case za && zb:
		return 0, true
	case za:
		na = !nb
	case zb:
		nb = !na
	}
	if na != nb {
		if na {
			return -1, true
		}
		return 1, true
	}
	c := 0
	switch {
	case len(ia) != len(ib):
		c = cmpInt(len(ia), len(ib))
	case ia != ib:
		c = strings.Compare(ia, ib)
	default:
		c = strings.Compare(fa, fb)
	}
	if na {
		c = -c
	}
	return c, true
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// splitNum splits a decimal literal into its sign, integer digits without leading zeros and
// fraction digits without trailing zeros.
func splitNum(s string) (neg bool, ip, fp string, ok bool) {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	ip, fp, _ = strings.Cut(s, ".")
	if ip == "" {
		return false, "", "", false
	}
	for _, part := range [2]string{ip, fp} {
		for i := 0; i < len(part); i++ {
			if !isDigit(part[i]) {
				return false, "", "", false
			}
		}
	}
	return neg, strings.TrimLeft(ip, "0"), strings.TrimRight(fp, "0"), true
}

// equivNum compares two numbers rounded to the precision of the less precise one, as ~ does.
func equivNum(a, b string) bool {
	ra, ok1 := ratOf(a)
	rb, ok2 := ratOf(b)
	if !ok1 || !ok2 {
		return false
	}
	p := min(scale(a), scale(b))
	return ra.FloatString(p) == rb.FloatString(p)
}

// maxExponent bounds the exponent of number literals read exactly: JSON allows 1e999999999,
// which big.Rat would expand into a billion digits.
const maxExponent = 400

// ratOf reads a number literal exactly; ok is false for text that is not one or is out of range.
func ratOf(s string) (*big.Rat, bool) {
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > maxExponent || e < -maxExponent {
			return nil, false
		}
	}
	return new(big.Rat).SetString(s)
}

func scale(s string) int {
	if i := strings.IndexByte(s, '.'); i >= 0 && !strings.ContainsAny(s, "eE") {
		return len(s) - i - 1
	}
	return 0
}

// temporal is a parsed date, dateTime or time with its precision.
type temporal struct {
	kind skind
	prec int    // components present: 1 year .. 6 second (milliseconds count with seconds)
	f    [7]int // year, month, day, hour, minute, second, nanosecond
	tz   bool
	off  int // minutes east of UTC
}

// parseTemporal parses a FHIR date (YYYY[-MM[-DD]]), dateTime (a date with an optional
// T[hh[:mm[:ss[.fff]]]][Z|±hh:mm]) or time (hh[:mm[:ss[.fff]]]) of kind k.
func parseTemporal(s string, k skind) (temporal, bool) {
	t := temporal{kind: k}
	pos := 0
	num := func(n int) (int, bool) {
		if pos+n > len(s) {
			return 0, false
		}
		v := 0
		for i := pos; i < pos+n; i++ {
			if !isDigit(s[i]) {
				return 0, false
			}
			v = v*10 + int(s[i]-'0')
		}
		pos += n
		return v, true
	}
	sep := func(c byte) bool {
		if pos < len(s) && s[pos] == c {
			pos++
			return true
		}
		return false
	}
	var ok bool
	if k != kTime {
		if t.f[0], ok = num(4); !ok {
			return t, false
		}
		t.prec = 1
		if sep('-') {
			if t.f[1], ok = num(2); !ok || t.f[1] < 1 || t.f[1] > 12 {
				return t, false
			}
			t.prec = 2
			if sep('-') {
				if t.f[2], ok = num(2); !ok || t.f[2] < 1 || t.f[2] > 31 {
					return t, false
				}
				t.prec = 3
			}
		}
		if k == kDate || !sep('T') {
			return t, pos == len(s)
		}
		if t.prec < 3 || pos == len(s) {
			// @2020-01-01T is a dateTime with date precision.
			return t, pos == len(s) && t.prec == 3
		}
	}
	if t.f[3], ok = num(2); !ok || t.f[3] > 23 {
		return t, false
	}
	t.prec = 4
	if sep(':') {
		if t.f[4], ok = num(2); !ok || t.f[4] > 59 {
			return t, false
		}
		t.prec = 5
		if sep(':') {
			if t.f[5], ok = num(2); !ok || t.f[5] > 60 {
				return t, false
			}
			t.prec = 6
			if sep('.') {
				start := pos
				for pos < len(s) && isDigit(s[pos]) {
					pos++
				}
				if pos == start {
					return t, false
				}
				frac := s[start:min(pos, start+9)]
				ns, _ := strconv.Atoi(frac + strings.Repeat("0", 9-len(frac)))
				t.f[6] = ns
			}
		}
	}
	if k == kDateTime && pos < len(s) {
		switch s[pos] {
		case 'Z':
			pos++
			t.tz = true
		case '+', '-':
			neg := s[pos] == '-'
			pos++
			h, ok1 := num(2)
			okc := sep(':')
			m, ok2 := num(2)
			if !ok1 || !okc || !ok2 || h > 14 || m > 59 {
				return t, false
			}
			t.tz, t.off = true, h*60+m
			if neg {
				t.off = -t.off
			}
		}
	}
	return t, pos == len(s)
}

// cmpTemporal compares component by component down to the coarser precision. Values equal that
// far but of different precision compare as unknown (ok false), as FHIRPath specifies.
func cmpTemporal(a, b temporal) (int, bool) {
	fa, fb := a.f, b.f
	if a.kind != kTime && a.prec >= 4 && b.prec >= 4 && (a.tz || b.tz) {
		fa, fb = utc(a), utc(b)
	}
	first := 0
	if a.kind == kTime {
		first = 3
	}
	p := min(a.prec, b.prec)
	for i := first; i < p; i++ {
		x, y := fa[i], fb[i]
		if i == 5 {
			x, y = x*1e9+fa[6], y*1e9+fb[6]
		}
		if x != y {
			return cmpInt(x, y), true
		}
	}
	if a.prec != b.prec {
		return 0, false
	}
	return 0, true
}

// utc shifts a dateTime with a time to UTC; one without an offset is taken to be in UTC.
func utc(t temporal) [7]int {
	u := time.Date(t.f[0], time.Month(max(t.f[1], 1)), max(t.f[2], 1), t.f[3], t.f[4], t.f[5], t.f[6], time.UTC)
	u = u.Add(-time.Duration(t.off) * time.Minute)
	return [7]int{u.Year(), int(u.Month()), u.Day(), u.Hour(), u.Minute(), u.Second(), u.Nanosecond()}
}
