// Package jsontree is an order-preserving JSON document tree: the in-memory form of a FHIR resource
// between validation and storage.
//
// It owns parsing JSON into a tree, editing it (server-owned meta, reference rewriting, patches) and
// writing it back as compact JSON. Unlike encoding/json with map[string]any it keeps member order,
// keeps number literals byte for byte (FHIR decimals carry precision: 1.50 is not 1.5), rejects
// duplicate member names and invalid UTF-8, and bounds nesting depth. It knows nothing about FHIR.
//
// It is hand-written because no maintained library does all of that: fastjson re-escapes strings
// with strconv.AppendQuote (Go escapes, not JSON ones) and the std library loses order and literals.
package jsontree

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Kind is the JSON type of a Value.
type Kind uint8

// The JSON kinds.
const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

func (k Kind) String() string {
	switch k {
	case Null:
		return "null"
	case Bool:
		return "boolean"
	case Number:
		return "number"
	case String:
		return "string"
	case Array:
		return "array"
	case Object:
		return "object"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one node of a JSON document. For String it holds the decoded text, for Number the literal
// as written, for Bool "true" or "false". Arrays keep their items and objects their members in order.
type Value struct {
	Kind    Kind
	Str     string
	Items   []*Value
	Members []Member
}

// Member is a name/value pair of an object.
type Member struct {
	Key   string
	Value *Value
}

// MaxDepth is the deepest nesting Parse accepts; FHIR resources nest far less than this.
const MaxDepth = 128

// NewString returns a string value.
func NewString(s string) *Value { return &Value{Kind: String, Str: s} }

// NewNumber returns a number value from a literal the caller has checked (strconv.Itoa output, say).
func NewNumber(lit string) *Value { return &Value{Kind: Number, Str: lit} }

// NewBool returns a boolean value.
func NewBool(b bool) *Value {
	if b {
		return &Value{Kind: Bool, Str: "true"}
	}
	return &Value{Kind: Bool, Str: "false"}
}

// NewObject returns an empty object.
func NewObject() *Value { return &Value{Kind: Object} }

// NewArray returns an array of the given items.
func NewArray(items ...*Value) *Value { return &Value{Kind: Array, Items: items} }

// Get returns the member named key of an object, or nil.
func (v *Value) Get(key string) *Value {
	if v == nil || v.Kind != Object {
		return nil
	}
	for i := range v.Members {
		if v.Members[i].Key == key {
			return v.Members[i].Value
		}
	}
	return nil
}

// GetString returns the text of the string member key, or "" when it is absent or not a string.
func (v *Value) GetString(key string) string {
	m := v.Get(key)
	if m == nil || m.Kind != String {
		return ""
	}
	return m.Str
}

// Set replaces the member key in place, or appends it when absent.
func (v *Value) Set(key string, val *Value) {
	for i := range v.Members {
		if v.Members[i].Key == key {
			v.Members[i].Value = val
			return
		}
	}
	v.Members = append(v.Members, Member{Key: key, Value: val})
}

// SetAfter sets member key; when absent it is inserted right after the first of the members named in
// after that exists (so "meta" lands after "id"), else first.
func (v *Value) SetAfter(key string, val *Value, after ...string) {
	if v.Get(key) != nil {
		v.Set(key, val)
		return
	}
	pos := 0
	for _, a := range after {
		if i := v.index(a); i >= 0 {
			pos = i + 1
			break
		}
	}
	v.Members = append(v.Members, Member{})
	copy(v.Members[pos+1:], v.Members[pos:])
	v.Members[pos] = Member{Key: key, Value: val}
}

// Delete removes the member key and reports whether it was there.
func (v *Value) Delete(key string) bool {
	i := v.index(key)
	if i < 0 {
		return false
	}
	v.Members = append(v.Members[:i], v.Members[i+1:]...)
	return true
}

func (v *Value) index(key string) int {
	if v == nil || v.Kind != Object {
		return -1
	}
	for i := range v.Members {
		if v.Members[i].Key == key {
			return i
		}
	}
	return -1
}

// Clone returns a deep copy.
func (v *Value) Clone() *Value {
	if v == nil {
		return nil
	}
	c := &Value{Kind: v.Kind, Str: v.Str}
	if v.Items != nil {
		c.Items = make([]*Value, len(v.Items))
		for i, it := range v.Items {
			c.Items[i] = it.Clone()
		}
	}
	if v.Members != nil {
		c.Members = make([]Member, len(v.Members))
		for i, m := range v.Members {
			c.Members[i] = Member{Key: m.Key, Value: m.Value.Clone()}
		}
	}
	return c
}

// Equal reports whether two trees are the same JSON, member order included. Numbers compare by
// literal, so 1.0 and 1.00 differ, as FHIR decimals do.
func Equal(a, b *Value) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Kind != b.Kind || a.Str != b.Str || len(a.Items) != len(b.Items) || len(a.Members) != len(b.Members) {
		return false
	}
	for i := range a.Items {
		if !Equal(a.Items[i], b.Items[i]) {
			return false
		}
	}
	for i := range a.Members {
		if a.Members[i].Key != b.Members[i].Key || !Equal(a.Members[i].Value, b.Members[i].Value) {
			return false
		}
	}
	return true
}

// SyntaxError is a JSON document that could not be parsed; Offset is the byte where it went wrong.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

// Parse reads one JSON value that must fill data, apart from surrounding whitespace.
func Parse(data []byte) (*Value, error) {
	p := parser{src: string(data)}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		return nil, p.errorf("unexpected data after the top-level value")
	}
	return v, nil
}

type parser struct {
	src  string // one copy of the input; unescaped strings are substrings of it
	pos  int
	slab []Value
}

func (p *parser) errorf(format string, args ...any) error {
	return &SyntaxError{Offset: p.pos, Msg: fmt.Sprintf(format, args...)}
}

// node hands out Values from a chunked slab: one allocation per 64 nodes instead of one per node.
func (p *parser) node(k Kind) *Value {
	if len(p.slab) == cap(p.slab) {
		p.slab = make([]Value, 0, 64)
	}
	p.slab = append(p.slab, Value{Kind: k})
	return &p.slab[len(p.slab)-1]
}

func (p *parser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (*Value, error) {
	if depth > MaxDepth {
		return nil, p.errorf("nested deeper than %d levels", MaxDepth)
	}
	if p.pos >= len(p.src) {
		return nil, p.errorf("unexpected end of input")
	}
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		v := p.node(String)
		v.Str = s
		return v, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true", Bool)
	case c == 'f':
		return p.literal("false", Bool)
	case c == 'n':
		return p.literal("null", Null)
	default:
		return nil, p.errorf("unexpected character %q", c)
	}
}

func (p *parser) literal(word string, k Kind) (*Value, error) {
	if len(p.src)-p.pos < len(word) || p.src[p.pos:p.pos+len(word)] != word {
		return nil, p.errorf("invalid literal, expected %s", word)
	}
	p.pos += len(word)
	v := p.node(k)
	if k == Bool {
		v.Str = word
	}
	return v, nil
}

func (p *parser) object(depth int) (*Value, error) {
	p.pos++ // {
	v := p.node(Object)
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != '"' {
			return nil, p.errorf("expected a member name")
		}
		start := p.pos
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		if v.index(key) >= 0 {
			p.pos = start
			return nil, p.errorf("duplicate member %q", key)
		}
		p.skipSpace()
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return nil, p.errorf("expected ':' after member name")
		}
		p.pos++
		p.skipSpace()
		val, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.Members = append(v.Members, Member{Key: key, Value: val})
		p.skipSpace()
		if p.pos >= len(p.src) {
			return nil, p.errorf("unexpected end of input in object")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return v, nil
		default:
			return nil, p.errorf("expected ',' or '}' in object")
		}
	}
}

func (p *parser) array(depth int) (*Value, error) {
	p.pos++ // [
	v := p.node(Array)
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == ']' {
		p.pos++
		v.Items = []*Value{}
		return v, nil
	}
	for {
		p.skipSpace()
		item, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.Items = append(v.Items, item)
		p.skipSpace()
		if p.pos >= len(p.src) {
			return nil, p.errorf("unexpected end of input in array")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return v, nil
		default:
			return nil, p.errorf("expected ',' or ']' in array")
		}
	}
}

func (p *parser) number() (*Value, error) {
	start := p.pos
	s := p.src
	i := p.pos
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		p.pos = i
		return nil, p.errorf("invalid number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			p.pos = i
			return nil, p.errorf("invalid number: no digits after '.'")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			p.pos = i
			return nil, p.errorf("invalid number: no digits in exponent")
		}
	}
	p.pos = i
	v := p.node(Number)
	v.Str = s[start:i]
	return v, nil
}

// str reads a string literal at p.pos (which is '"') and returns its decoded text.
func (p *parser) str() (string, error) {
	p.pos++
	start := p.pos
	s := p.src
	// Fast path: no escapes, all ASCII or valid UTF-8 checked once at the end.
	for i := start; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			out := s[start:i]
			if !utf8.ValidString(out) {
				p.pos = start
				return "", p.errorf("string is not valid UTF-8")
			}
			p.pos = i + 1
			return out, nil
		}
		if c == '\\' {
			return p.strSlow(start)
		}
		if c < 0x20 {
			p.pos = i
			return "", p.errorf("control character in string")
		}
	}
	p.pos = len(s)
	return "", p.errorf("unterminated string")
}

func (p *parser) strSlow(start int) (string, error) {
	s := p.src
	buf := make([]byte, 0, 64)
	i := start
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			if !utf8.Valid(buf) {
				p.pos = start
				return "", p.errorf("string is not valid UTF-8")
			}
			p.pos = i + 1
			return string(buf), nil
		case c < 0x20:
			p.pos = i
			return "", p.errorf("control character in string")
		case c != '\\':
			buf = append(buf, c)
			i++
			continue
		}
		i++
		if i >= len(s) {
			break
		}
		switch s[i] {
		case '"', '\\', '/':
			buf = append(buf, s[i])
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, n := hex4(s, i+1)
			if n < 0 {
				p.pos = i
				return "", p.errorf("invalid \\u escape")
			}
			i += 4
			if r >= 0xD800 && r < 0xDC00 {
				// A high surrogate must be followed by an escaped low surrogate.
				if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					if r2, n2 := hex4(s, i+3); n2 >= 0 && r2 >= 0xDC00 && r2 < 0xE000 {
						r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			} else if r >= 0xDC00 && r < 0xE000 {
				r = utf8.RuneError
			}
			if r == utf8.RuneError {
				p.pos = i
				return "", p.errorf("unpaired UTF-16 surrogate in \\u escape")
			}
			buf = utf8.AppendRune(buf, r)
		default:
			p.pos = i
			return "", p.errorf("invalid escape \\%c", s[i])
		}
		i++
	}
	p.pos = len(s)
	return "", p.errorf("unterminated string")
}

func hex4(s string, i int) (rune, int) {
	if i+4 > len(s) {
		return 0, -1
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, -1
		}
	}
	return r, 4
}

// Marshal returns the compact JSON of v.
func (v *Value) Marshal() []byte {
	return v.AppendJSON(make([]byte, 0, 1024))
}

// AppendJSON appends the compact JSON of v to dst.
func (v *Value) AppendJSON(dst []byte) []byte {
	switch v.Kind {
	case Null:
		return append(dst, "null"...)
	case Bool, Number:
		return append(dst, v.Str...)
	case String:
		return AppendString(dst, v.Str)
	case Array:
		dst = append(dst, '[')
		for i, it := range v.Items {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = it.AppendJSON(dst)
		}
		return append(dst, ']')
	case Object:
		dst = append(dst, '{')
		for i, m := range v.Members {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, m.Key)
			dst = append(dst, ':')
			dst = m.Value.AppendJSON(dst)
		}
		return append(dst, '}')
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string literal: quotes, backslashes and control characters escaped,
// everything else (including non-ASCII) written as UTF-8.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// WalkStrings calls fn for every string value in v, with the name of the member holding it (for an
// array item, the array's member name). fn may change the value's Str in place.
func (v *Value) WalkStrings(fn func(key string, s *Value)) {
	walkStrings(v, "", fn)
}

func walkStrings(v *Value, key string, fn func(string, *Value)) {
	switch v.Kind {
	case String:
		fn(key, v)
	case Array:
		for _, it := range v.Items {
			walkStrings(it, key, fn)
		}
	case Object:
		for _, m := range v.Members {
			walkStrings(m.Value, m.Key, fn)
		}
	}
}
