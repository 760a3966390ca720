package fhirpath

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/schema"
)

// funcNode is a function call: left.name(args), or name(args) on the focus.
type funcNode struct {
	name string
	left node
	def  *funcDef
	args []node
	typ  *typeSpec      // the type argument of ofType, as, is
	re   *regexp.Regexp // matches/replaceMatches with a literal pattern
	nav  navCache       // "extension", for extension(url)
}

func (f *funcNode) eval(c *ctx, focus []Node) ([]Node, error) {
	in := focus
	if f.left != nil {
		var err error
		if in, err = f.left.eval(c, focus); err != nil {
			return nil, err
		}
	}
	return f.def.call(c, f, in, focus)
}

// arg evaluates argument i on the focus of the call, as FHIRPath does for arguments that are
// values rather than per-item expressions.
func (f *funcNode) arg(c *ctx, i int, focus []Node) ([]Node, error) {
	return f.args[i].eval(c, focus)
}

// each evaluates argument i once per item of in, with the item as focus and $this, and $index set.
// fn must not keep res beyond the call: copy what it needs.
func (f *funcNode) each(c *ctx, i int, in []Node, fn func(j int, res []Node) (stop bool, err error)) error {
	saveThis, saveIndex := c.this, c.index
	defer func() { c.this, c.index = saveThis, saveIndex }()
	for j := range in {
		if err := c.step(1); err != nil {
			return err
		}
		item := in[j : j+1 : j+1]
		c.this, c.index = item, j
		mark := len(c.slab)
		res, err := f.args[i].eval(c, item)
		if err != nil {
			return err
		}
		stop, err := fn(j, res)
		// What the argument built for this item is dead once fn has seen it (fn copies what it
		// keeps), so the next item reuses the space: nested where() stays flat in memory.
		c.slab = c.slab[:mark]
		if stop || err != nil {
			return err
		}
	}
	return nil
}

type funcDef struct {
	min, max int
	typeArg  bool // the first argument is a type name
	regex    bool // the first argument is a regular expression
	call     func(c *ctx, f *funcNode, in, focus []Node) ([]Node, error)
}

// funcs are the functions Compile knows, by name; min and max bound the argument count.
var funcs = map[string]*funcDef{
	// Existence
	"empty":  {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) { return boolCol(len(in) == 0), nil }},
	"exists": {max: 1, call: fnExists},
	"all":    {min: 1, max: 1, call: fnAll},
	"allTrue": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		return boolCol(countBool(in, true) == len(in)), nil
	}},
	"anyTrue": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		return boolCol(countBool(in, true) > 0), nil
	}},
	"allFalse": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		return boolCol(countBool(in, false) == len(in)), nil
	}},
	"anyFalse": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		return boolCol(countBool(in, false) > 0), nil
	}},
	"subsetOf":   {min: 1, max: 1, call: fnSubset(false)},
	"supersetOf": {min: 1, max: 1, call: fnSubset(true)},
	"count": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		return []Node{intNode(int64(len(in)))}, nil
	}},
	"distinct": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) { return c.distinct(in) }},
	"isDistinct": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		d, err := c.distinct(in)
		return boolCol(len(d) == len(in)), err
	}},

	// Filtering and projection
	"where":  {min: 1, max: 1, call: fnWhere},
	"select": {min: 1, max: 1, call: fnSelect},
	"repeat": {min: 1, max: 1, call: fnRepeat},
	"ofType": {min: 1, max: 1, typeArg: true, call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		return c.ofType(in, f.typ), nil
	}},
	"as": {min: 1, max: 1, typeArg: true, call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		return c.ofType(in, f.typ), nil
	}},
	"is": {min: 1, max: 1, typeArg: true, call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		x, err := c.single(in, "is()")
		if err != nil || x == nil {
			return nil, err
		}
		return boolCol(f.typ.matches(x)), nil
	}},
	"aggregate": {min: 1, max: 2, call: fnAggregate},

	// Subsetting
	"single": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		_, err := c.single(in, "single()")
		return in[:len(in):len(in)], err
	}},
	"first": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) { return sub(in, 0, 1), nil }},
	"last": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		return sub(in, len(in)-1, len(in)), nil
	}},
	"tail": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) { return sub(in, 1, len(in)), nil }},
	"skip": {min: 1, max: 1, call: func(c *ctx, f *funcNode, in, focus []Node) ([]Node, error) {
		n, ok, err := f.intArg(c, 0, focus)
		if err != nil || !ok {
			return nil, err
		}
		return sub(in, clampInt(n, len(in)), len(in)), nil
	}},
	"take": {min: 1, max: 1, call: func(c *ctx, f *funcNode, in, focus []Node) ([]Node, error) {
		n, ok, err := f.intArg(c, 0, focus)
		if err != nil || !ok {
			return nil, err
		}
		return sub(in, 0, clampInt(n, len(in))), nil
	}},
	"intersect": {min: 1, max: 1, call: fnSetOp(true)},
	"exclude":   {min: 1, max: 1, call: fnSetOp(false)},

	// Combining
	"union": {min: 1, max: 1, call: func(c *ctx, f *funcNode, in, focus []Node) ([]Node, error) {
		other, err := f.arg(c, 0, focus)
		if err != nil {
			return nil, err
		}
		return c.union(in, other)
	}},
	"combine": {min: 1, max: 1, call: func(c *ctx, f *funcNode, in, focus []Node) ([]Node, error) {
		other, err := f.arg(c, 0, focus)
		if err != nil {
			return nil, err
		}
		if err := c.grow(len(in) + len(other)); err != nil {
			return nil, err
		}
		return append(append(make([]Node, 0, len(in)+len(other)), in...), other...), nil
	}},

	// Conversion
	"iif":      {min: 2, max: 3, call: fnIif},
	"toString": {call: conv(func(n *Node) (Node, bool) { s, ok := text(n); return stringNode(s), ok })},
	"convertsToString": {call: converts(func(n *Node) (Node, bool) {
		_, ok := text(n)
		return Node{}, ok
	})},
	"toInteger":          {call: conv(toInteger)},
	"convertsToInteger":  {call: converts(toInteger)},
	"toDecimal":          {call: conv(toDecimal)},
	"convertsToDecimal":  {call: converts(toDecimal)},
	"toBoolean":          {call: conv(toBoolean)},
	"convertsToBoolean":  {call: converts(toBoolean)},
	"toDate":             {call: conv(toTemporal(kDate, sysDate))},
	"convertsToDate":     {call: converts(toTemporal(kDate, sysDate))},
	"toDateTime":         {call: conv(toTemporal(kDateTime, sysDateTime))},
	"convertsToDateTime": {call: converts(toTemporal(kDateTime, sysDateTime))},
	"toTime":             {call: conv(toTemporal(kTime, sysTime))},
	"convertsToTime":     {call: converts(toTemporal(kTime, sysTime))},

	// Strings
	"length": {call: strFn(func(s string, _ []string) (Node, bool) {
		return intNode(int64(utf8.RuneCountInString(s))), true
	})},
	"upper": {call: strFn(func(s string, _ []string) (Node, bool) { return stringNode(strings.ToUpper(s)), true })},
	"lower": {call: strFn(func(s string, _ []string) (Node, bool) { return stringNode(strings.ToLower(s)), true })},
	"trim":  {call: strFn(func(s string, _ []string) (Node, bool) { return stringNode(strings.TrimSpace(s)), true })},
	"startsWith": {min: 1, max: 1, call: strFn(func(s string, a []string) (Node, bool) {
		return boolNode(strings.HasPrefix(s, a[0])), true
	})},
	"endsWith": {min: 1, max: 1, call: strFn(func(s string, a []string) (Node, bool) {
		return boolNode(strings.HasSuffix(s, a[0])), true
	})},
	"contains": {min: 1, max: 1, call: strFn(func(s string, a []string) (Node, bool) {
		return boolNode(strings.Contains(s, a[0])), true
	})},
	"indexOf": {min: 1, max: 1, call: strFn(func(s string, a []string) (Node, bool) {
		i := strings.Index(s, a[0])
		if i > 0 {
			i = utf8.RuneCountInString(s[:i])
		}
		return intNode(int64(i)), true
	})},
	"replace": {min: 2, max: 2, call: strFn(func(s string, a []string) (Node, bool) {
		return stringNode(strings.ReplaceAll(s, a[0], a[1])), true
	})},
	"substring":      {min: 1, max: 2, call: fnSubstring},
	"matches":        {min: 1, max: 1, regex: true, call: fnMatches},
	"replaceMatches": {min: 2, max: 2, regex: true, call: fnMatches},
	"toChars": {call: func(c *ctx, f *funcNode, in, focus []Node) ([]Node, error) {
		s, ok, err := c.stringIn(in, "toChars()")
		if err != nil || !ok {
			return nil, err
		}
		var out []Node
		for _, r := range s {
			out = append(out, stringNode(string(r)))
		}
		return out, c.grow(len(out))
	}},

	// Tree navigation
	"children":    {call: fnChildren},
	"descendants": {call: fnDescendants},

	// FHIR additions
	"extension": {min: 1, max: 1, call: fnExtension},
	"resolve":   {call: fnResolve},
	"hasValue": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		return boolCol(len(in) == 1 && hasValue(&in[0])), nil
	}},
	"getValue": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		if len(in) != 1 || !hasValue(&in[0]) || isComputed(&in[0]) {
			return nil, nil
		}
		st, _ := schema.SystemType(in[0].Type)
		return []Node{{Value: in[0].Value, Type: "System." + st, Index: -1}}, nil
	}},
	// Terminology needs a server this package does not have; unknown is the honest answer.
	"memberOf": {min: 1, max: 1, call: func(*ctx, *funcNode, []Node, []Node) ([]Node, error) { return nil, nil }},

	// Utility
	"not": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		v, known, err := c.boolOf(in, "not()")
		if err != nil || !known {
			return nil, err
		}
		return boolCol(!v), nil
	}},
	"trace": {min: 1, max: 2, call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		return in[:len(in):len(in)], nil
	}},
	"now": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		return []Node{{Value: jsontree.NewString(c.clock().Format("2006-01-02T15:04:05.000-07:00")), Type: sysDateTime, Index: -1}}, nil
	}},
	"today": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		return []Node{{Value: jsontree.NewString(c.clock().Format("2006-01-02")), Type: sysDate, Index: -1}}, nil
	}},
	"timeOfDay": {call: func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		return []Node{{Value: jsontree.NewString(c.clock().Format("15:04:05.000")), Type: sysTime, Index: -1}}, nil
	}},
}

func sub(in []Node, from, to int) []Node {
	if from < 0 || from >= to || from >= len(in) {
		return nil
	}
	return in[from:to:to]
}

func clampInt(n int64, limit int) int {
	switch {
	case n < 0:
		return 0
	case n > int64(limit):
		return limit
	}
	return int(n)
}

func (f *funcNode) intArg(c *ctx, i int, focus []Node) (int64, bool, error) {
	a, err := f.arg(c, i, focus)
	if err != nil {
		return 0, false, err
	}
	return c.intArg(a, f.name+"()")
}

func fnExists(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
	if len(f.args) == 0 {
		return boolCol(len(in) > 0), nil
	}
	found := false
	err := f.each(c, 0, in, func(_ int, res []Node) (bool, error) {
		v, known, err := c.boolOf(res, "exists()")
		found = known && v
		return found, err
	})
	return boolCol(found), err
}

func fnAll(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
	all := true
	err := f.each(c, 0, in, func(_ int, res []Node) (bool, error) {
		v, known, err := c.boolOf(res, "all()")
		all = known && v
		return !all, err
	})
	return boolCol(all), err
}

// countBool counts the items that are Booleans equal to want.
func countBool(in []Node, want bool) int {
	n := 0
	for i := range in {
		if kindOf(&in[i]) == kBool && (in[i].Value.Str == "true") == want {
			n++
		}
	}
	return n
}

func fnWhere(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
	var out []Node
	err := f.each(c, 0, in, func(j int, res []Node) (bool, error) {
		v, known, err := c.boolOf(res, "where()")
		if known && v {
			out = append(out, in[j])
		}
		return false, err
	})
	return out, err
}

func fnSelect(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
	var out []Node
	err := f.each(c, 0, in, func(_ int, res []Node) (bool, error) {
		out = append(out, res...)
		return false, c.grow(len(out))
	})
	return out, err
}

// fnRepeat applies its argument to the input, then to what that yields, until nothing new comes
// out; items already seen are not visited again, so cycles end.
func fnRepeat(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
	var out []Node
	queue := in
	for len(queue) > 0 {
		var next []Node
		err := f.each(c, 0, queue, func(_ int, res []Node) (bool, error) {
			for i := range res {
				if err := c.step(len(out)); err != nil {
					return true, err
				}
				if !containsNode(out, &res[i]) {
					out = append(out, res[i])
					next = append(next, res[i])
				}
			}
			return false, c.grow(len(out))
		})
		if err != nil {
			return nil, err
		}
		queue = next
	}
	return out, nil
}

func fnAggregate(c *ctx, f *funcNode, in, focus []Node) ([]Node, error) {
	var total []Node
	if len(f.args) > 1 {
		var err error
		if total, err = f.arg(c, 1, focus); err != nil {
			return nil, err
		}
	}
	save := c.total
	defer func() { c.total = save }()
	// $total is the running result: the initial value for the first item, then what the
	// previous item produced.
	c.total = total
	err := f.each(c, 0, in, func(_ int, res []Node) (bool, error) {
		total = append([]Node(nil), res...)
		c.total = total
		return false, nil
	})
	return total, err
}

func fnSubset(super bool) func(c *ctx, f *funcNode, in, focus []Node) ([]Node, error) {
	return func(c *ctx, f *funcNode, in, focus []Node) ([]Node, error) {
		other, err := f.arg(c, 0, focus)
		if err != nil {
			return nil, err
		}
		a, b := in, other
		if super {
			a, b = other, in
		}
		if err := c.step(len(a) * len(b)); err != nil {
			return nil, err
		}
		for i := range a {
			if !containsEqual(b, &a[i]) {
				return boolCol(false), nil
			}
		}
		return boolCol(true), nil
	}
}

func fnSetOp(keep bool) func(c *ctx, f *funcNode, in, focus []Node) ([]Node, error) {
	return func(c *ctx, f *funcNode, in, focus []Node) ([]Node, error) {
		other, err := f.arg(c, 0, focus)
		if err != nil {
			return nil, err
		}
		if err := c.step(len(in) * max(len(other), 1)); err != nil {
			return nil, err
		}
		var out []Node
		for i := range in {
			if containsEqual(other, &in[i]) == keep && (!keep || !containsEqual(out, &in[i])) {
				out = append(out, in[i])
			}
		}
		return out, nil
	}
}

func containsEqual(col []Node, n *Node) bool {
	for i := range col {
		if sameNode(&col[i], n) || equal(&col[i], n) == 1 {
			return true
		}
	}
	return false
}

func (c *ctx) distinct(in []Node) ([]Node, error) {
	if err := c.step(len(in) * len(in) / 2); err != nil {
		return nil, err
	}
	var out []Node
	for i := range in {
		if !containsEqual(out, &in[i]) {
			out = append(out, in[i])
		}
	}
	return out, nil
}

func fnIif(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
	cond, err := f.arg(c, 0, in)
	if err != nil {
		return nil, err
	}
	v, known, err := c.boolOf(cond, "iif()")
	if err != nil {
		return nil, err
	}
	switch {
	case known && v:
		return f.arg(c, 1, in)
	case len(f.args) > 2:
		return f.arg(c, 2, in)
	}
	return nil, nil
}

// conv applies a conversion to the single input item; empty when it does not convert.
func conv(fn func(*Node) (Node, bool)) func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
	return func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		x, err := c.single(in, "conversion")
		if err != nil || x == nil {
			return nil, err
		}
		n, ok := fn(x)
		if !ok {
			return nil, nil
		}
		return []Node{n}, nil
	}
}

func converts(fn func(*Node) (Node, bool)) func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
	return func(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
		x, err := c.single(in, "conversion")
		if err != nil || x == nil {
			return nil, err
		}
		_, ok := fn(x)
		return boolCol(ok), nil
	}
}

func toInteger(n *Node) (Node, bool) {
	switch kindOf(n) {
	case kInteger:
		return Node{Value: n.Value, Type: sysInteger, Index: -1}, true
	case kBool:
		return intNode(int64(b2i(n.Value.Str == "true"))), true
	case kString:
		if i, err := strconv.ParseInt(n.Value.Str, 10, 64); err == nil {
			return intNode(i), true
		}
	}
	return Node{}, false
}

func toDecimal(n *Node) (Node, bool) {
	switch kindOf(n) {
	case kInteger, kDecimal:
		return Node{Value: n.Value, Type: sysDecimal, Index: -1}, true
	case kBool:
		if n.Value.Str == "true" {
			return Node{Value: jsontree.NewNumber("1.0"), Type: sysDecimal, Index: -1}, true
		}
		return Node{Value: jsontree.NewNumber("0.0"), Type: sysDecimal, Index: -1}, true
	case kString:
		if _, _, _, ok := splitNum(n.Value.Str); ok {
			return Node{Value: jsontree.NewNumber(n.Value.Str), Type: sysDecimal, Index: -1}, true
		}
	}
	return Node{}, false
}

func toBoolean(n *Node) (Node, bool) {
	var s string
	switch kindOf(n) {
	case kBool:
		return Node{Value: n.Value, Type: sysBoolean, Index: -1}, true
	case kString, kInteger, kDecimal:
		s = strings.ToLower(n.Value.Str)
	}
	switch s {
	case "true", "t", "yes", "y", "1", "1.0":
		return boolNode(true), true
	case "false", "f", "no", "n", "0", "0.0":
		return boolNode(false), true
	}
	return Node{}, false
}

func toTemporal(k skind, typ string) func(*Node) (Node, bool) {
	return func(n *Node) (Node, bool) {
		nk := kindOf(n)
		if nk != kString && nk != k && !(k == kDateTime && nk == kDate) {
			return Node{}, false
		}
		if _, ok := parseTemporal(n.Value.Str, k); !ok {
			return Node{}, false
		}
		return Node{Value: n.Value, Type: typ, Index: -1}, true
	}
}

// stringIn reads the single string input of a string function; ok is false when it is empty.
func (c *ctx) stringIn(in []Node, what string) (string, bool, error) {
	x, err := c.single(in, what)
	if err != nil || x == nil {
		return "", false, err
	}
	if kindOf(x) == kNone {
		return "", false, nil // a primitive with only extensions has no text to work on
	}
	if kindOf(x) != kString {
		return "", false, c.errorf("%s needs a string, got %s", what, x.Type)
	}
	return x.Value.Str, true, nil
}

// strFn wraps a function of a string input and string arguments; an empty input or argument
// gives an empty result.
func strFn(fn func(s string, args []string) (Node, bool)) func(c *ctx, f *funcNode, in, focus []Node) ([]Node, error) {
	return func(c *ctx, f *funcNode, in, focus []Node) ([]Node, error) {
		s, ok, err := c.stringIn(in, "string function")
		if err != nil || !ok {
			return nil, err
		}
		var args [2]string
		for i := range f.args {
			a, err := f.arg(c, i, focus)
			if err != nil {
				return nil, err
			}
			if args[i], ok, err = c.stringIn(a, "string argument"); err != nil || !ok {
				return nil, err
			}
		}
		n, ok := fn(s, args[:len(f.args)])
		if !ok {
			return nil, nil
		}
		return []Node{n}, nil
	}
}

func fnSubstring(c *ctx, f *funcNode, in, focus []Node) ([]Node, error) {
	s, ok, err := c.stringIn(in, "substring()")
	if err != nil || !ok {
		return nil, err
	}
	start, ok, err := f.intArg(c, 0, focus)
	if err != nil || !ok {
		return nil, err
	}
	r := []rune(s)
	if start < 0 || start >= int64(len(r)) {
		return nil, nil
	}
	end := int64(len(r))
	if len(f.args) > 1 {
		n, ok, err := f.intArg(c, 1, focus)
		if err != nil {
			return nil, err
		}
		if ok && n < end-start {
			end = start + max(n, 0)
		}
	}
	return []Node{stringNode(string(r[start:end]))}, nil
}

func fnMatches(c *ctx, f *funcNode, in, focus []Node) ([]Node, error) {
	s, ok, err := c.stringIn(in, "matches()")
	if err != nil || !ok {
		return nil, err
	}
	re := f.re
	if re == nil {
		a, err := f.arg(c, 0, focus)
		if err != nil {
			return nil, err
		}
		pat, ok, err := c.stringIn(a, "regular expression")
		if err != nil || !ok {
			return nil, err
		}
		if re, err = regexp.Compile(pat); err != nil {
			return nil, c.errorf("invalid regular expression: %v", err)
		}
	}
	if len(f.args) == 1 {
		return boolCol(re.MatchString(s)), nil
	}
	a, err := f.arg(c, 1, focus)
	if err != nil {
		return nil, err
	}
	repl, ok, err := c.stringIn(a, "replaceMatches()")
	if err != nil || !ok {
		return nil, err
	}
	return []Node{stringNode(re.ReplaceAllString(s, repl))}, nil
}

func fnChildren(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
	var out []Node
	for i := range in {
		var err error
		if out, err = c.allChildren(&in[i], out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fnDescendants walks children breadth-first. Trees are finite and acyclic, and every node counts
// against the evaluation's limits.
func fnDescendants(c *ctx, f *funcNode, in, _ []Node) ([]Node, error) {
	var out []Node
	var err error
	for i := range in {
		if out, err = c.allChildren(&in[i], out); err != nil {
			return nil, err
		}
	}
	for next := 0; next < len(out); next++ {
		if out, err = c.allChildren(&out[next], out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fnExtension is extension(url): the extensions of each item, primitives included (through their
// _twin), whose url is the argument.
func fnExtension(c *ctx, f *funcNode, in, focus []Node) ([]Node, error) {
	a, err := f.arg(c, 0, focus)
	if err != nil {
		return nil, err
	}
	url, ok, err := c.stringIn(a, "extension()")
	if err != nil || !ok {
		return nil, err
	}
	exts, err := c.navigate(in, &f.nav)
	if err != nil {
		return nil, err
	}
	out := exts[:0]
	for _, e := range exts {
		if e.Value.GetString("url") == url {
			out = append(out, e)
		}
	}
	return out, nil
}

func hasValue(n *Node) bool {
	k := kindOf(n)
	return k != kNone && k != kComplex && k != kQuantity
}
