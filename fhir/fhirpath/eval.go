package fhirpath

import (
	"math/big"
	"strconv"

	"github.com/iambilly/billy/fhir/jsontree"
)

// node is one piece of a compiled expression. eval gets the focus (the collection a path step or a
// term starts from: the root, or the item a function argument is evaluated for) and returns a
// collection. Results may share backing arrays with literals, the input and the evaluation's
// slab: a node never writes into a slice it received, and every slice it returns is capped so
// that appending to it copies.
type node interface {
	eval(c *ctx, focus []Node) ([]Node, error)
}

// literal is a constant collection: a literal, {} or a fixed string such as %ucum.
type literal struct{ val []Node }

func (l *literal) eval(*ctx, []Node) ([]Node, error) { return l.val[:len(l.val):len(l.val)], nil }

// childNode navigates to the children called nav.name of each item of left, or of the focus
// when the name starts a path.
type childNode struct {
	left node
	nav  navCache
}

func (n *childNode) eval(c *ctx, focus []Node) ([]Node, error) {
	in := focus
	if n.left != nil {
		var err error
		if in, err = n.left.eval(c, focus); err != nil {
			return nil, err
		}
	}
	return c.navigate(in, &n.nav)
}

// typeFilterNode is a type name starting a path: Patient.name keeps the focus if it is a Patient.
type typeFilterNode struct{ typ *typeSpec }

func (n *typeFilterNode) eval(c *ctx, focus []Node) ([]Node, error) {
	return c.ofType(focus, n.typ), nil
}

// ofType keeps the items of type ts, returning in itself when all are.
func (c *ctx) ofType(in []Node, ts *typeSpec) []Node {
	for i := range in {
		if !ts.matches(&in[i]) {
			start := len(c.slab)
			c.slab = append(c.slab, in[:i]...)
			for j := i + 1; j < len(in); j++ {
				if ts.matches(&in[j]) {
					c.slab = append(c.slab, in[j])
				}
			}
			return c.slab[start:len(c.slab):len(c.slab)]
		}
	}
	return in[:len(in):len(in)]
}

// typeOpNode is "x is T" or "x as T".
type typeOpNode struct {
	as   bool
	left node
	typ  *typeSpec
}

func (n *typeOpNode) eval(c *ctx, focus []Node) ([]Node, error) {
	in, err := n.left.eval(c, focus)
	if err != nil {
		return nil, err
	}
	if n.as {
		// The R4 search parameters apply "as" to whole collections (Observation.component.value
		// as Quantity), so it filters like ofType() instead of insisting on one item.
		return c.ofType(in, n.typ), nil
	}
	x, err := c.single(in, "is")
	if err != nil || x == nil {
		return nil, err
	}
	return boolCol(n.typ.matches(x)), nil
}

type indexNode struct{ left, idx node }

func (n *indexNode) eval(c *ctx, focus []Node) ([]Node, error) {
	in, err := n.left.eval(c, focus)
	if err != nil {
		return nil, err
	}
	ix, err := n.idx.eval(c, focus)
	if err != nil {
		return nil, err
	}
	i, ok, err := c.intArg(ix, "[]")
	if err != nil || !ok || i < 0 || i >= int64(len(in)) {
		return nil, err
	}
	return in[i : i+1 : i+1], nil
}

// intArg reads a single Integer from col; ok is false when col is empty.
func (c *ctx) intArg(col []Node, what string) (int64, bool, error) {
	x, err := c.single(col, what)
	if err != nil || x == nil {
		return 0, false, err
	}
	if kindOf(x) != kInteger {
		return 0, false, c.errorf("%s needs an integer", what)
	}
	i, err := strconv.ParseInt(x.Value.Str, 10, 64)
	if err != nil {
		return 0, false, c.errorf("%s: %q is not an integer", what, x.Value.Str)
	}
	return i, true, nil
}

type varNode struct{ name string }

func (n *varNode) eval(c *ctx, focus []Node) ([]Node, error) {
	switch n.name {
	case "this":
		return c.this, nil
	case "index":
		return []Node{intNode(int64(c.index))}, nil
	case "total":
		return c.total, nil
	case "resource":
		return c.root[:1:1], nil
	case "context":
		return c.context[:1:1], nil
	}
	return nil, nil
}

type negNode struct{ x node }

func (n *negNode) eval(c *ctx, focus []Node) ([]Node, error) {
	in, err := n.x.eval(c, focus)
	if err != nil {
		return nil, err
	}
	x, err := c.single(in, "unary -")
	if err != nil || x == nil {
		return nil, err
	}
	switch kindOf(x) {
	case kInteger, kDecimal:
		return []Node{{Value: jsontree.NewNumber(negate(x.Value.Str)), Type: numType(kindOf(x)), Index: -1}}, nil
	case kQuantity:
		q := quantityOf(x)
		return []Node{quantityNode(negate(q.value), q.unit)}, nil
	}
	return nil, c.errorf("unary - needs a number or quantity")
}

func negate(lit string) string {
	if lit != "" && lit[0] == '-' {
		return lit[1:]
	}
	return "-" + lit
}

func numType(k skind) string {
	if k == kInteger {
		return sysInteger
	}
	return sysDecimal
}

type opKind uint8

const (
	opImplies opKind = iota
	opOr
	opXor
	opAnd
	opIn
	opContains
	opEq
	opEquiv
	opNe
	opNotEquiv
	opLt
	opLe
	opGt
	opGe
	opUnion
	opAdd
	opSub
	opConcat
	opMul
	opDiv
	opIntDiv
	opMod
)

var opKinds = map[string]opKind{
	"implies": opImplies, "or": opOr, "xor": opXor, "and": opAnd, "in": opIn, "contains": opContains,
	"=": opEq, "~": opEquiv, "!=": opNe, "!~": opNotEquiv, "<": opLt, "<=": opLe, ">": opGt, ">=": opGe,
	"|": opUnion, "+": opAdd, "-": opSub, "&": opConcat, "*": opMul, "/": opDiv, "div": opIntDiv, "mod": opMod,
}

type binNode struct {
	op   opKind
	text string
	l, r node
}

func newBinary(op string, l, r node) node { return &binNode{op: opKinds[op], text: op, l: l, r: r} }

func (n *binNode) eval(c *ctx, focus []Node) ([]Node, error) {
	l, err := n.l.eval(c, focus)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case opAnd, opOr, opImplies:
		// Short-circuit where the left side decides, as three-valued logic allows.
		lv, lk, err := c.boolOf(l, n.text)
		if err != nil {
			return nil, err
		}
		if lk && ((n.op == opAnd && !lv) || (n.op == opOr && lv)) {
			return boolCol(lv), nil
		}
		if lk && n.op == opImplies && !lv {
			return boolCol(true), nil
		}
		r, err := n.r.eval(c, focus)
		if err != nil {
			return nil, err
		}
		rv, rk, err := c.boolOf(r, n.text)
		if err != nil {
			return nil, err
		}
		return logic(n.op, lv, lk, rv, rk), nil
	}
	r, err := n.r.eval(c, focus)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case opXor:
		lv, lk, err := c.boolOf(l, n.text)
		if err != nil {
			return nil, err
		}
		rv, rk, err := c.boolOf(r, n.text)
		if err != nil || !lk || !rk {
			return nil, err
		}
		return boolCol(lv != rv), nil
	case opUnion:
		return c.union(l, r)
	case opEq, opNe:
		if len(l) == 0 || len(r) == 0 {
			return nil, nil
		}
		if len(l) != len(r) {
			return boolCol(n.op == opNe), nil
		}
		for i := range l {
			switch equal(&l[i], &r[i]) {
			case -1:
				return nil, nil
			case 0:
				return boolCol(n.op == opNe), nil
			}
		}
		return boolCol(n.op == opEq), nil
	case opEquiv, opNotEquiv:
		if err := c.step(len(l) * len(r)); err != nil {
			return nil, err
		}
		return boolCol(equivalentCols(l, r) == (n.op == opEquiv)), nil
	case opLt, opLe, opGt, opGe:
		a, err := c.single(l, n.text)
		if err != nil || a == nil {
			return nil, err
		}
		b, err := c.single(r, n.text)
		if err != nil || b == nil {
			return nil, err
		}
		ka, kb := kindOf(a), kindOf(b)
		if ka == kNone || kb == kNone {
			return nil, nil
		}
		cmp, ok, comparable := compare(a, b, ka, kb)
		if !comparable {
			return nil, c.errorf("cannot compare %s with %s", a.Type, b.Type)
		}
		if !ok {
			return nil, nil
		}
		var res bool
		switch n.op {
		case opLt:
			res = cmp < 0
		case opLe:
			res = cmp <= 0
		case opGt:
			res = cmp > 0
		default:
			res = cmp >= 0
		}
		return boolCol(res), nil
	case opIn, opContains:
		item, coll := l, r
		if n.op == opContains {
			item, coll = r, l
		}
		x, err := c.single(item, n.text)
		if err != nil || x == nil {
			return nil, err
		}
		for i := range coll {
			if equal(x, &coll[i]) == 1 {
				return boolCol(true), nil
			}
		}
		return boolCol(false), nil
	case opConcat:
		var ls, rs string
		if a, err := c.single(l, "&"); err != nil {
			return nil, err
		} else if a != nil {
			ls, _ = text(a)
		}
		if b, err := c.single(r, "&"); err != nil {
			return nil, err
		} else if b != nil {
			rs, _ = text(b)
		}
		return []Node{stringNode(ls + rs)}, nil
	}
	return c.arith(n, l, r)
}

// logic is the three-valued truth table of and, or and implies; k says whether a side is known.
func logic(op opKind, lv, lk, rv, rk bool) []Node {
	switch op {
	case opAnd:
		switch {
		case (lk && !lv) || (rk && !rv):
			return boolCol(false)
		case lk && rk:
			return boolCol(true)
		}
	case opOr:
		switch {
		case (lk && lv) || (rk && rv):
			return boolCol(true)
		case lk && rk:
			return boolCol(false)
		}
	case opImplies:
		switch {
		case lk && !lv, rk && rv:
			return boolCol(true)
		case lk && rk:
			return boolCol(false)
		}
	}
	return nil
}

// equivalentCols is ~ on collections: same size and every item equivalent to one of the other
// side, in any order; two empty collections are equivalent.
func equivalentCols(l, r []Node) bool {
	if len(l) != len(r) {
		return false
	}
	used := make([]bool, len(r))
outer:
	for i := range l {
		for j := range r {
			if !used[j] && equivalent(&l[i], &r[j]) {
				used[j] = true
				continue outer
			}
		}
		return false
	}
	return true
}

// union appends the items of r not already in l, and drops duplicates within l: tree nodes are
// the same when they are the same element, computed values when they are equal.
func (c *ctx) union(l, r []Node) ([]Node, error) {
	n := len(l) + len(r)
	if err := c.step(n); err != nil {
		return nil, err
	}
	if err := c.grow(n); err != nil {
		return nil, err
	}
	start := len(c.slab)
	// Tree nodes are looked up by identity, in a map once there are enough of them that
	// scanning would be quadratic; computed values are compared one by one, at a step each.
	var seen map[identity]struct{}
	if n > 32 {
		seen = make(map[identity]struct{}, n)
	}
	for _, col := range [2][]Node{l, r} {
		for i := range col {
			x := &col[i]
			var dup bool
			switch {
			case isComputed(x):
				if err := c.step(len(c.slab) - start); err != nil {
					return nil, err
				}
				dup = containsNode(c.slab[start:], x)
			case seen != nil:
				id := identity{x.Value, x.Ext, x.Parent, x.Key, x.Index}
				_, dup = seen[id]
				seen[id] = struct{}{}
			default:
				dup = containsNode(c.slab[start:], x)
			}
			if !dup {
				c.slab = append(c.slab, *x)
			}
		}
	}
	return c.slab[start:len(c.slab):len(c.slab)], nil
}

// identity is what makes a tree node the same element as another.
type identity struct {
	value, ext, parent *jsontree.Value
	key                string
	index              int
}

func containsNode(col []Node, n *Node) bool {
	for i := range col {
		if sameNode(&col[i], n) {
			return true
		}
	}
	return false
}

func sameNode(a, b *Node) bool {
	if isComputed(a) || isComputed(b) {
		return isComputed(a) && isComputed(b) && equal(a, b) == 1
	}
	return a.Value == b.Value && a.Ext == b.Ext && a.Parent == b.Parent && a.Key == b.Key && a.Index == b.Index && a.Type == b.Type
}

// arith is + - * / div mod on numbers, + on strings.
func (c *ctx) arith(n *binNode, l, r []Node) ([]Node, error) {
	a, err := c.single(l, n.text)
	if err != nil || a == nil {
		return nil, err
	}
	b, err := c.single(r, n.text)
	if err != nil || b == nil {
		return nil, err
	}
	ka, kb := kindOf(a), kindOf(b)
	if ka == kNone || kb == kNone {
		return nil, nil
	}
	if n.op == opAdd && ka == kString && kb == kString {
		return []Node{stringNode(a.Value.Str + b.Value.Str)}, nil
	}
	if !isNum(ka) || !isNum(kb) {
		return nil, c.errorf("%s is not supported on %s and %s", n.text, a.Type, b.Type)
	}
	if ka == kInteger && kb == kInteger && n.op != opDiv {
		x, err1 := strconv.ParseInt(a.Value.Str, 10, 64)
		y, err2 := strconv.ParseInt(b.Value.Str, 10, 64)
		if err1 == nil && err2 == nil {
			var z big.Int
			switch n.op {
			case opAdd:
				z.Add(big.NewInt(x), big.NewInt(y))
			case opSub:
				z.Sub(big.NewInt(x), big.NewInt(y))
			case opMul:
				z.Mul(big.NewInt(x), big.NewInt(y))
			case opIntDiv, opMod:
				if y == 0 {
					return nil, nil
				}
				// FHIRPath div and mod truncate toward zero, like Go.
				if n.op == opIntDiv {
					z.SetInt64(x / y)
				} else {
					z.SetInt64(x % y)
				}
			}
			if !z.IsInt64() {
				return nil, c.errorf("integer overflow in %s", n.text)
			}
			return []Node{intNode(z.Int64())}, nil
		}
	}
	x, ok1 := ratOf(a.Value.Str)
	y, ok2 := ratOf(b.Value.Str)
	if !ok1 || !ok2 {
		return nil, c.errorf("%s: not a number", n.text)
	}
	prec := max(scale(a.Value.Str), scale(b.Value.Str))
	z := new(big.Rat)
	switch n.op {
	case opAdd:
		z.Add(x, y)
	case opSub:
		z.Sub(x, y)
	case opMul:
		z.Mul(x, y)
		prec = scale(a.Value.Str) + scale(b.Value.Str)
	case opDiv, opIntDiv, opMod:
		if y.Sign() == 0 {
			return nil, nil
		}
		z.Quo(x, y)
		switch n.op {
		case opDiv:
			prec = 8
		case opIntDiv:
			q := new(big.Int).Quo(z.Num(), z.Denom())
			return []Node{{Value: jsontree.NewNumber(q.String()), Type: sysInteger, Index: -1}}, nil
		case opMod:
			q := new(big.Int).Quo(z.Num(), z.Denom())
			z.Sub(x, new(big.Rat).Mul(new(big.Rat).SetInt(q), y))
		}
	}
	return []Node{{Value: jsontree.NewNumber(trimDecimal(z.FloatString(max(prec, 1)))), Type: sysDecimal, Index: -1}}, nil
}

// trimDecimal drops trailing fraction zeros beyond the first, so 1/3*3 prints as 1.0.
func trimDecimal(s string) string {
	dot := -1
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			dot = i
		}
	}
	if dot < 0 {
		return s
	}
	end := len(s)
	for end > dot+2 && s[end-1] == '0' {
		end--
	}
	return s[:end]
}
