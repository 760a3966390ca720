package fhirpath

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/iambilly/billy/fhir"
	"github.com/iambilly/billy/fhir/jsontree"
	"github.com/iambilly/billy/fhir/schema"
)

// Limits on what one expression may cost. Expressions come from clients (FHIRPath Patch) as well as
// from the R4 tables, so neither compiling nor evaluating may be unbounded.
const (
	// MaxLength is the longest expression, in bytes, that Compile accepts.
	MaxLength = 16 << 10
	// MaxNesting bounds how deeply parentheses, function arguments and unary operators may nest,
	// and with them the recursion of parsing and evaluation; chains of steps and binary
	// operators are bounded by MaxLength.
	MaxNesting = 100
	// MaxCollection is the largest collection one evaluation step may produce.
	MaxCollection = 100_000
	// MaxSteps bounds the work of one evaluation: every element produced and every evaluation of
	// a function argument on an item counts as one step. It stops nested where() over large
	// collections long before they would hold a request.
	MaxSteps = 5_000_000
)

// Expr is a compiled expression. Compile once, Eval many times, concurrently: an Expr is never
// changed by evaluation except for its internal schema lookup caches, which are safe for
// concurrent use.
type Expr struct {
	src  string
	root node
}

// Node is one item of a result collection.
//
// Nodes taken from the tree point into it: Value, Ext and Parent are the caller's tree and may be
// edited through them (FHIRPath Patch). Computed nodes (literals, function and operator results,
// resolve() targets) have a nil Parent, and their Value may be shared between evaluations: it must
// not be modified.
type Node struct {
	// Value is the JSON value: an object for complex types and resources, a string, number or
	// boolean for primitives. It is nil for a primitive that is present only through its "_name"
	// twin (an id or extensions without a value).
	Value *jsontree.Value
	// Ext is the primitive's "_name" twin object holding id and extension, if any.
	Ext *jsontree.Value
	// Type is the FHIR type: "HumanName", "Quantity", "string", "code", "dateTime", a resource
	// type, or the path of a backbone element ("Observation.component"). Values computed from
	// literals and functions have a FHIRPath system type: "System.Boolean", "System.String",
	// "System.Integer", "System.Decimal", "System.Date", "System.DateTime", "System.Time" or
	// "System.Quantity".
	Type string
	// Parent is the object holding the element, nil for the root and for computed values.
	Parent *jsontree.Value
	// Key is the member name in Parent as JSON spells it ("valueQuantity", "given"). For a
	// primitive present only through its twin it is the name without the underscore.
	Key string
	// Index is the position in the array member Key, or -1 when the member is not an array.
	Index int
	// Path is the element definition path the node was typed by ("Observation.component.code",
	// "HumanName.given"); the type name for the root.
	Path string
}

// Is reports whether the node's type is typeName or derives from it, the way the "is" operator
// decides: an Age is a Quantity, a Patient a DomainResource and a Resource, a code a string, a
// backbone element a BackboneElement. typeName may be qualified with "FHIR." or "System.".
func (n Node) Is(typeName string) bool {
	ts, err := resolveTypeName(typeName)
	if err != nil {
		return false
	}
	return ts.matches(&n)
}

// SyntaxError is an expression Compile could not parse. It wraps fhir.ErrInvalid: expressions
// reach the server from clients in FHIRPath Patch.
type SyntaxError struct {
	Expr   string
	Offset int // byte offset in Expr where the problem was found
	Msg    string
}

// Error describes the problem and where it is.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("fhirpath: %s at offset %d of %q", e.Msg, e.Offset, clip(e.Expr))
}

// clip keeps error messages readable when a client sends a very long expression.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// Unwrap exposes fhir.ErrInvalid to errors.Is.
func (e *SyntaxError) Unwrap() error { return fhir.ErrInvalid }

// EvalError is an expression that failed on the data it was given: several items where the
// operator needs one, values that cannot be compared. It wraps fhir.ErrUnprocessable.
type EvalError struct {
	Expr string
	Msg  string
}

// Error describes the failure and the expression it happened in.
func (e *EvalError) Error() string {
	return fmt.Sprintf("fhirpath: evaluating %q: %s", clip(e.Expr), e.Msg)
}

// Unwrap exposes fhir.ErrUnprocessable to errors.Is.
func (e *EvalError) Unwrap() error { return fhir.ErrUnprocessable }

// ErrLimit is returned, wrapped, when an evaluation exceeds MaxCollection or MaxSteps. It wraps
// fhir.ErrTooCostly.
var ErrLimit = fmt.Errorf("fhirpath: evaluation limit exceeded: %w", fhir.ErrTooCostly)

// Compile parses expr. Errors are *SyntaxError with the offset of the problem.
func Compile(expr string) (*Expr, error) {
	if len(expr) > MaxLength {
		return nil, &SyntaxError{Expr: expr, Offset: MaxLength, Msg: fmt.Sprintf("expression longer than %d bytes", MaxLength)}
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	p := &parser{src: expr, toks: toks}
	root, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errorf(t.pos, "unexpected %s", t.describe())
	}
	return &Expr{src: expr, root: root}, nil
}

// MustCompile is Compile for expressions known to be valid, such as the R4 tables; it panics on
// a syntax error.
func MustCompile(expr string) *Expr {
	e, err := Compile(expr)
	if err != nil {
		panic(err)
	}
	return e
}

// String returns the expression as it was compiled.
func (e *Expr) String() string { return e.src }

// Eval evaluates e on a resource: root is %resource, %context and the initial focus, typed by
// its resourceType. The resulting nodes point into root where they come from it.
func (e *Expr) Eval(root *jsontree.Value) ([]Node, error) {
	rn, err := rootNode(e.src, root)
	if err != nil {
		return nil, err
	}
	return e.run(rn, rn)
}

// EvalNode evaluates e with focus as the initial focus and %context, and root as %resource: the
// components of a composite search parameter are evaluated on each result of the composite's
// own expression this way.
func (e *Expr) EvalNode(root *jsontree.Value, focus Node) ([]Node, error) {
	rn, err := rootNode(e.src, root)
	if err != nil {
		return nil, err
	}
	return e.run(rn, focus)
}

// rootNode types the resource an evaluation starts from. Without a known resourceType nothing in
// it could be typed, so that is an error rather than an empty result.
func rootNode(expr string, root *jsontree.Value) (Node, error) {
	if root == nil || root.Kind != jsontree.Object {
		return Node{}, &EvalError{Expr: expr, Msg: "the root is not a JSON object"}
	}
	rt := root.GetString("resourceType")
	if !schema.IsResourceType(rt) {
		return Node{}, &EvalError{Expr: expr, Msg: fmt.Sprintf("the root has no known resourceType (%q)", rt)}
	}
	return Node{Value: root, Type: rt, Index: -1, Path: rt}, nil
}

func (e *Expr) run(root, focus Node) ([]Node, error) {
	c := ctxPool.Get().(*ctx)
	defer c.release()
	c.expr = e
	c.root[0] = root
	c.context[0] = focus
	c.this = c.context[:1:1]
	out, err := e.root.eval(c, c.context[:1:1])
	if err != nil || len(out) == 0 {
		return nil, err
	}
	// Results may live in the evaluation's scratch space or in the expression's literals; the
	// caller gets its own copy.
	return append([]Node(nil), out...), nil
}

// ctx is the state of one evaluation. It is not shared between goroutines while in use, and is
// pooled so that evaluating the many expressions of one resource reuses its scratch space.
type ctx struct {
	expr    *Expr
	root    [1]Node // %resource
	context [1]Node // %context
	this    []Node  // $this: the item a function argument is being evaluated for
	index   int     // $index
	total   []Node  // $total in aggregate()
	steps   int
	now     time.Time
	// slab is scratch space path steps build their results in: slices of it are handed out
	// and never written again, so growing it (which moves later results to a new array) leaves
	// earlier results intact.
	slab []Node
}

var ctxPool = sync.Pool{New: func() any { return &ctx{slab: make([]Node, 0, 256)} }}

// maxPooledSlab keeps one evaluation over a huge resource from pinning its scratch space.
const maxPooledSlab = 4096

func (c *ctx) release() {
	slab := c.slab
	if cap(slab) > maxPooledSlab {
		return
	}
	// The slab is not cleared: it may point into the last tree evaluated until reused, but
	// sync.Pool drops idle contexts at the next garbage collections, and clearing costs a
	// write barrier per pointer on every evaluation.
	*c = ctx{slab: slab[:0]}
	ctxPool.Put(c)
}

// step charges n units of work and fails once the evaluation has done too much.
func (c *ctx) step(n int) error {
	c.steps += n
	if c.steps > MaxSteps {
		return fmt.Errorf("evaluating %q: more than %d steps: %w", c.expr.src, MaxSteps, ErrLimit)
	}
	return nil
}

// grow fails when a collection being built would exceed MaxCollection.
func (c *ctx) grow(n int) error {
	if n > MaxCollection {
		return fmt.Errorf("evaluating %q: collection of more than %d items: %w", c.expr.src, MaxCollection, ErrLimit)
	}
	return nil
}

func (c *ctx) errorf(format string, args ...any) error {
	return &EvalError{Expr: c.expr.src, Msg: fmt.Sprintf(format, args...)}
}

func (c *ctx) clock() time.Time {
	if c.now.IsZero() {
		c.now = time.Now()
	}
	return c.now
}

// single returns the only item of col, nil when col is empty, and an error when it has several:
// FHIRPath's singleton evaluation for operators and functions that take one value.
func (c *ctx) single(col []Node, what string) (*Node, error) {
	switch len(col) {
	case 0:
		return nil, nil
	case 1:
		return &col[0], nil
	}
	return nil, c.errorf("%s needs a single item, got %d", what, len(col))
}

// boolOf applies singleton evaluation to a Boolean context: known is false for the empty
// collection, a single non-Boolean item counts as true.
func (c *ctx) boolOf(col []Node, what string) (val, known bool, err error) {
	n, err := c.single(col, what)
	if err != nil || n == nil {
		return false, false, err
	}
	if kindOf(n) == kBool {
		return n.Value.Str == "true", true, nil
	}
	return true, true, nil
}

// isComputed tells values made by the evaluator from nodes of the tree.
func isComputed(n *Node) bool { return strings.HasPrefix(n.Type, "System.") }
