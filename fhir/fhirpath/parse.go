package fhirpath

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/iambilly/billy/fhir/jsontree"
)

type parser struct {
	src   string
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	return syntaxErr(p.src, pos, fmt.Sprintf(format, args...))
}

func (p *parser) expect(text string) error {
	if t := p.peek(); !t.is(tPunct, text) {
		return p.errorf(t.pos, "expected %q, found %s", text, t.describe())
	}
	p.i++
	return nil
}

// enter guards the parser's recursion (parentheses, arguments, unary operators): the depth of the
// tree it builds is what evaluation recurses over.
func (p *parser) enter(pos int) error {
	p.depth++
	if p.depth > MaxNesting {
		return p.errorf(pos, "expression nested deeper than %d levels", MaxNesting)
	}
	return nil
}

// Binary operator precedence, loosest first, as in the FHIRPath grammar. "is" and "as" sit
// between union and additive and take a type, not an expression, on the right.
var levels = [...][]string{
	{"implies"},
	{"or", "xor"},
	{"and"},
	{"in", "contains"},
	{"=", "~", "!=", "!~"},
	{"<=", "<", ">", ">="},
	{"|"},
	nil, // is, as
	{"+", "-", "&"},
	{"*", "/", "div", "mod"},
}

const levelTypeOps = 7

// keywords cannot be identifiers where a term starts (they still can after a dot: Narrative.div).
var keywords = map[string]bool{
	"and": true, "or": true, "xor": true, "implies": true, "div": true, "mod": true,
	"true": true, "false": true,
}

func (p *parser) parseExpr() (node, error) {
	if err := p.enter(p.peek().pos); err != nil {
		return nil, err
	}
	n, err := p.parseLevel(0)
	p.depth--
	return n, err
}

func (p *parser) operator(level int) (string, bool) {
	t := p.peek()
	if t.kind != tPunct && t.kind != tIdent {
		return "", false
	}
	for _, op := range levels[level] {
		if t.text == op {
			return op, true
		}
	}
	return "", false
}

func (p *parser) parseLevel(level int) (node, error) {
	if level == len(levels) {
		return p.parseUnary()
	}
	left, err := p.parseLevel(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		if level == levelTypeOps {
			t := p.peek()
			if !t.is(tIdent, "is") && !t.is(tIdent, "as") {
				return left, nil
			}
			p.next()
			ts, err := p.parseTypeSpec()
			if err != nil {
				return nil, err
			}
			left = &typeOpNode{as: t.text == "as", left: left, typ: ts}
			continue
		}
		op, ok := p.operator(level)
		if !ok {
			return left, nil
		}
		p.next()
		right, err := p.parseLevel(level + 1)
		if err != nil {
			return nil, err
		}
		left = newBinary(op, left, right)
	}
}

func (p *parser) parseUnary() (node, error) {
	t := p.peek()
	if t.is(tPunct, "+") || t.is(tPunct, "-") {
		p.next()
		if err := p.enter(t.pos); err != nil {
			return nil, err
		}
		x, err := p.parseUnary()
		p.depth--
		if err != nil {
			return nil, err
		}
		if t.text == "+" {
			return x, nil
		}
		return &negNode{x: x}, nil
	}
	return p.parsePostfix()
}

func (p *parser) parsePostfix() (node, error) {
	n, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		switch {
		case t.is(tPunct, "."):
			p.next()
			n, err = p.parseInvocation(n)
		case t.is(tPunct, "["):
			p.next()
			var idx node
			if idx, err = p.parseExpr(); err == nil {
				err = p.expect("]")
			}
			n = &indexNode{left: n, idx: idx}
		default:
			return n, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// parseInvocation parses what follows a dot: a member name, a function call or a variable.
func (p *parser) parseInvocation(left node) (node, error) {
	t := p.next()
	switch t.kind {
	case tIdent, tDelimited:
		if t.kind == tIdent && p.peek().is(tPunct, "(") {
			return p.parseCall(left, t)
		}
		return &childNode{left: left, nav: navCache{name: t.name()}}, nil
	case tVar:
		if t.text == "this" {
			// x.$this is x, item by item.
			return left, nil
		}
	}
	return nil, p.errorf(t.pos, "expected a name after '.', found %s", t.describe())
}

func (p *parser) parseTerm() (node, error) {
	t := p.next()
	switch t.kind {
	case tNumber:
		return p.parseNumber(t)
	case tString:
		return lit(stringNode(t.val)), nil
	case tDate:
		n, ok := temporalLiteral(t.text)
		if !ok {
			return nil, p.errorf(t.pos, "invalid date/time literal @%s", t.text)
		}
		return lit(n), nil
	case tConst:
		return p.constant(t)
	case tVar:
		return &varNode{name: t.text}, nil
	case tPunct:
		switch t.text {
		case "(":
			n, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			return n, p.expect(")")
		case "{":
			return &literal{}, p.expect("}")
		}
	case tIdent, tDelimited:
		if t.kind == tIdent {
			switch {
			case t.text == "true" || t.text == "false":
				return lit(boolNode(t.text == "true")), nil
			case p.peek().is(tPunct, "("):
				return p.parseCall(nil, t)
			case keywords[t.text]:
				return nil, p.errorf(t.pos, "unexpected keyword %q", t.text)
			}
		}
		name := t.name()
		if isTypeLike(name) {
			// A capitalised name where a path starts is a type (Patient.name, Resource.id): FHIR
			// element names are never capitalised.
			if ts, err := resolveTypeName(name); err == nil {
				return &typeFilterNode{typ: ts}, nil
			}
		}
		return &childNode{nav: navCache{name: name}}, nil
	}
	return nil, p.errorf(t.pos, "unexpected %s", t.describe())
}

func isTypeLike(name string) bool { return name != "" && name[0] >= 'A' && name[0] <= 'Z' }

// calendarUnits are the time-valued quantity keywords (4 days) and the UCUM units they mean.
var calendarUnits = map[string]string{
	"year": "a", "years": "a", "month": "mo", "months": "mo", "week": "wk", "weeks": "wk",
	"day": "d", "days": "d", "hour": "h", "hours": "h", "minute": "min", "minutes": "min",
	"second": "s", "seconds": "s", "millisecond": "ms", "milliseconds": "ms",
}

func (p *parser) parseNumber(t token) (node, error) {
	isInt := true
	for i := 0; i < len(t.text); i++ {
		if t.text[i] == '.' {
			isInt = false
		}
	}
	if isInt {
		if _, err := strconv.ParseInt(t.text, 10, 64); err != nil {
			return nil, p.errorf(t.pos, "integer %s out of range", t.text)
		}
	}
	// A number directly followed by a unit is a quantity: 5 'mg', 4 days.
	switch u := p.peek(); {
	case u.kind == tString:
		p.next()
		return lit(quantityNode(t.text, u.val)), nil
	case u.kind == tIdent && calendarUnits[u.text] != "":
		p.next()
		return lit(quantityNode(t.text, calendarUnits[u.text])), nil
	}
	if isInt {
		return lit(Node{Value: jsontree.NewNumber(t.text), Type: sysInteger, Index: -1}), nil
	}
	return lit(Node{Value: jsontree.NewNumber(t.text), Type: sysDecimal, Index: -1}), nil
}

func (p *parser) constant(t token) (node, error) {
	switch t.val {
	case "resource", "rootResource":
		return &varNode{name: "resource"}, nil
	case "context":
		return &varNode{name: "context"}, nil
	case "ucum":
		return lit(stringNode("http://unitsofmeasure.org")), nil
	case "sct":
		return lit(stringNode("http://snomed.info/sct")), nil
	case "loinc":
		return lit(stringNode("http://loinc.org")), nil
	}
	return nil, p.errorf(t.pos, "unknown constant %%%s", t.val)
}

// parseTypeSpec parses the type after "is"/"as" or in ofType(): Quantity, FHIR.string,
// System.String.
func (p *parser) parseTypeSpec() (*typeSpec, error) {
	t := p.next()
	if t.kind != tIdent && t.kind != tDelimited {
		return nil, p.errorf(t.pos, "expected a type name, found %s", t.describe())
	}
	name := t.name()
	if (name == "FHIR" || name == "System") && p.peek().is(tPunct, ".") {
		p.next()
		u := p.next()
		if u.kind != tIdent && u.kind != tDelimited {
			return nil, p.errorf(u.pos, "expected a type name, found %s", u.describe())
		}
		name += "." + u.name()
	}
	ts, err := resolveTypeName(name)
	if err != nil {
		return nil, p.errorf(t.pos, "%v", err)
	}
	return ts, nil
}

func (p *parser) parseCall(left node, name token) (node, error) {
	def := funcs[name.text]
	if def == nil {
		return nil, p.errorf(name.pos, "unknown function %s()", name.text)
	}
	if err := p.enter(name.pos); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.next() // (
	f := &funcNode{name: name.text, left: left, def: def, nav: navCache{name: "extension"}}
	if !p.peek().is(tPunct, ")") {
		for {
			if def.typeArg && len(f.args) == 0 && f.typ == nil {
				ts, err := p.parseTypeSpec()
				if err != nil {
					return nil, err
				}
				f.typ = ts
			} else {
				a, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				f.args = append(f.args, a)
			}
			if !p.peek().is(tPunct, ",") {
				break
			}
			p.next()
		}
	}
	if err := p.expect(")"); err != nil {
		return nil, err
	}
	n := len(f.args)
	if f.typ != nil {
		n++
	}
	if n < def.min || n > def.max {
		return nil, p.errorf(name.pos, "%s() takes %s, got %d", name.text, arity(def), n)
	}
	if def.regex && len(f.args) > 0 {
		// Compile literal patterns once; others are compiled per evaluation.
		if l, ok := f.args[0].(*literal); ok && len(l.val) == 1 && l.val[0].Type == sysString {
			re, err := regexp.Compile(l.val[0].Value.Str)
			if err != nil {
				return nil, p.errorf(name.pos, "invalid regular expression: %v", err)
			}
			f.re = re
		}
	}
	return f, nil
}

func arity(d *funcDef) string {
	switch {
	case d.min == d.max && d.min == 1:
		return "1 argument"
	case d.min == d.max:
		return fmt.Sprintf("%d arguments", d.min)
	}
	return fmt.Sprintf("%d to %d arguments", d.min, d.max)
}
