package search

import (
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Normalize folds a string for string search: accents removed (NFD, combining marks dropped),
// case folded, white space collapsed. "Müller" and "MULLER" both become "muller".
func Normalize(s string) string {
	if ascii(s) {
		// The common case, without the Unicode machinery: lower-case and collapse spaces.
		b := make([]byte, 0, len(s))
		space := true
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
				if !space {
					b = append(b, ' ')
				}
				space = true
				continue
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			}
			b = append(b, c)
			space = false
		}
		if len(b) > 0 && b[len(b)-1] == ' ' {
			b = b[:len(b)-1]
		}
		return string(b)
	}
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		out = s
	}
	out = strings.ToLower(out)
	return strings.Join(strings.Fields(out), " ")
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// parsePrefix splits a two-letter prefix off a number, date or quantity value.
func parsePrefix(v string) (Prefix, string) {
	if len(v) >= 2 {
		switch p := Prefix(v[:2]); p {
		case EQ, NE, GT, LT, GE, LE, SA, EB, AP:
			return p, v[2:]
		}
	}
	return EQ, v
}

// parseDateValue reads [prefix]date.
func parseDateValue(name, v string) (Value, error) {
	p, v := parsePrefix(v)
	lo, hi, ok := ParseDateRange(v)
	if !ok {
		return Value{}, bad(name, "the value of %s is not a valid date search value (want [prefix]YYYY[-MM[-DD[Thh:mm[:ss[.fff]][Z|±hh:mm]]]])", name)
	}
	return Value{Raw: v, Prefix: p, Lo: lo, Hi: hi}, nil
}

var decimalRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// The largest decimal literal DecimalRange takes: its cost grows with the digits and the exponent
// (1e1000000 took four minutes of CPU and a two-million-digit range), and no measured value needs
// more.
const (
	maxDecimalLen      = 100
	maxDecimalExponent = 1000
)

// DecimalRange returns the literal and the half-open range [lo, hi) its precision implies: "100"
// is [99.5, 100.5), "5.40" is [5.395, 5.405), "1e2" (one significant digit) is [50, 150). A literal
// longer than maxDecimalLen or with an exponent beyond ±maxDecimalExponent is not taken.
func DecimalRange(s string) (lo, hi string, ok bool) {
	if len(s) > maxDecimalLen || !decimalRE.MatchString(s) {
		return "", "", false
	}
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		if e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+")); err != nil || e > maxDecimalExponent || e < -maxDecimalExponent {
			return "", "", false
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return "", "", false
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		var e big.Int
		if _, ok := e.SetString(strings.TrimPrefix(s[i+1:], "+"), 10); !ok {
			return "", "", false
		}
		exp = int(e.Int64())
	}
	// Half a unit of the last significant place.
	decimals := 0
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		decimals = len(mant) - i - 1
	}
	place := decimals - exp // the last place is 10^-place
	half := new(big.Rat).SetFrac(big.NewInt(1), big.NewInt(2))
	unit := new(big.Rat).SetInt64(1)
	ten := new(big.Rat).SetInt64(10)
	for i := 0; i < place; i++ {
		unit.Quo(unit, ten)
	}
	for i := 0; i > place; i-- {
		unit.Mul(unit, ten)
	}
	half.Mul(half, unit)
	l := new(big.Rat).Sub(r, half)
	h := new(big.Rat).Add(r, half)
	return ratString(l), ratString(h), true
}

// ratString renders a rational with a finite decimal expansion exactly (denominators here are
// powers of ten times two).
func ratString(r *big.Rat) string {
	return r.FloatString(precisionOf(r))
}

func precisionOf(r *big.Rat) int {
	d := new(big.Int).Set(r.Denom())
	n := 0
	ten := big.NewInt(10)
	for d.Cmp(big.NewInt(1)) > 0 && n < 60 {
		// Multiply the numerator scale until the denominator divides a power of ten.
		p := new(big.Int).Exp(ten, big.NewInt(int64(n)), nil)
		if new(big.Int).Mod(p, d).Sign() == 0 {
			return n
		}
		n++
	}
	return n
}

// parseNumberValue reads [prefix]number.
func parseNumberValue(name, v string) (Value, error) {
	p, num := parsePrefix(v)
	lo, hi, ok := DecimalRange(num)
	if !ok {
		return Value{}, bad(name, "the value of %s is not a number search value ([prefix]decimal, at most %d characters, exponent within ±%d)", name, maxDecimalLen, maxDecimalExponent)
	}
	return Value{Raw: v, Prefix: p, Num: num, NumLo: lo, NumHi: hi}, nil
}

// parseQuantityValue reads [prefix]number|system|code, number||code or number.
func parseQuantityValue(name, v string) (Value, error) {
	parts := splitValues(v, '|')
	if len(parts) != 1 && len(parts) != 3 {
		return Value{}, bad(name, "the value of %s is not a quantity search value ([prefix]number[|system|code])", name)
	}
	val, err := parseNumberValue(name, parts[0])
	if err != nil {
		return Value{}, err
	}
	val.Raw = v
	if len(parts) == 3 {
		val.System, val.HasSystem, val.Unit = unescape(parts[1]), parts[1] != "", unescape(parts[2])
	}
	return val, nil
}
