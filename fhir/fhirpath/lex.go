package fhirpath

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF       tokKind = iota
	tIdent             // identifier or keyword: name, and, is, true, div
	tDelimited         // `delimited identifier`, never a keyword
	tString            // 'string'
	tNumber            // 12 or 1.5
	tDate              // @2020-01-01, @2020-01-01T10:00Z, @T10:00; text is without '@'
	tConst             // %resource, %`vs-name`; val is the name
	tVar               // $this, $index, $total; text is without '$'
	tPunct             // operators and brackets
)

type token struct {
	kind tokKind
	text string // source text, or as noted on the kind
	val  string // decoded text of strings, delimited identifiers and constants
	pos  int
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tString:
		return "string " + strconv.Quote(t.val)
	case tDate:
		return "@" + t.text
	case tConst:
		return "%" + t.val
	case tVar:
		return "$" + t.text
	case tDelimited:
		return "`" + t.val + "`"
	}
	return strconv.Quote(t.text)
}

// name is the identifier a tIdent or tDelimited token stands for.
func (t token) name() string {
	if t.kind == tDelimited {
		return t.val
	}
	return t.text
}

func (t token) is(kind tokKind, text string) bool { return t.kind == kind && t.text == text }

func syntaxErr(src string, pos int, msg string) *SyntaxError {
	return &SyntaxError{Expr: src, Offset: pos, Msg: msg}
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || (c|0x20) >= 'a' && (c|0x20) <= 'z' }
func isIdentPart(c byte) bool  { return isIdentStart(c) || isDigit(c) }

func lex(src string) ([]token, error) {
	toks := make([]token, 0, len(src)/3+1)
	i := 0
	for {
		for i < len(src) {
			c := src[i]
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' {
				i++
				continue
			}
			if c == '/' && i+1 < len(src) && src[i+1] == '/' {
				for i < len(src) && src[i] != '\n' {
					i++
				}
				continue
			}
			if c == '/' && i+1 < len(src) && src[i+1] == '*' {
				end := strings.Index(src[i+2:], "*/")
				if end < 0 {
					return nil, syntaxErr(src, i, "unterminated comment")
				}
				i += end + 4
				continue
			}
			break
		}
		if i >= len(src) {
			return append(toks, token{kind: tEOF, pos: i}), nil
		}
		start := i
		c := src[i]
		switch {
		case isIdentStart(c):
			for i < len(src) && isIdentPart(src[i]) {
				i++
			}
			toks = append(toks, token{kind: tIdent, text: src[start:i], pos: start})
		case isDigit(c):
			for i < len(src) && isDigit(src[i]) {
				i++
			}
			if i+1 < len(src) && src[i] == '.' && isDigit(src[i+1]) {
				i++
				for i < len(src) && isDigit(src[i]) {
					i++
				}
			}
			toks = append(toks, token{kind: tNumber, text: src[start:i], pos: start})
		case c == '\'' || c == '`':
			s, end, err := unquote(src, i)
			if err != nil {
				return nil, err
			}
			k := tString
			if c == '`' {
				k = tDelimited
			}
			i = end
			toks = append(toks, token{kind: k, text: src[start:i], val: s, pos: start})
		case c == '@':
			i = scanDate(src, i+1)
			if i == start+1 {
				return nil, syntaxErr(src, start, "'@' must start a date, dateTime or time")
			}
			toks = append(toks, token{kind: tDate, text: src[start+1 : i], pos: start})
		case c == '%':
			i++
			var name string
			switch {
			case i < len(src) && isIdentStart(src[i]):
				j := i
				for i < len(src) && isIdentPart(src[i]) {
					i++
				}
				name = src[j:i]
			case i < len(src) && (src[i] == '`' || src[i] == '\''):
				s, end, err := unquote(src, i)
				if err != nil {
					return nil, err
				}
				name, i = s, end
			default:
				return nil, syntaxErr(src, start, "'%' must be followed by a name")
			}
			toks = append(toks, token{kind: tConst, text: src[start:i], val: name, pos: start})
		case c == '$':
			i++
			j := i
			for i < len(src) && isIdentPart(src[i]) {
				i++
			}
			switch v := src[j:i]; v {
			case "this", "index", "total":
				toks = append(toks, token{kind: tVar, text: v, pos: start})
			default:
				return nil, syntaxErr(src, start, "unknown variable $"+v)
			}
		default:
			if i+1 < len(src) {
				switch two := src[i : i+2]; two {
				case "!=", "!~", "<=", ">=":
					i += 2
					toks = append(toks, token{kind: tPunct, text: two, pos: start})
					continue
				}
			}
			if strings.IndexByte(".[](),|+-*/&=~<>{}", c) < 0 {
				r, _ := utf8.DecodeRuneInString(src[i:])
				return nil, syntaxErr(src, i, "unexpected character "+strconv.QuoteRune(r))
			}
			i++
			toks = append(toks, token{kind: tPunct, text: src[start:i], pos: start})
		}
	}
}

// scanDate returns the end of the date, dateTime or time literal whose text starts at i (after
// '@'). The parser validates the text; this only decides where it ends.
func scanDate(src string, i int) int {
	timePart := func(i int) int {
		for i < len(src) && (isDigit(src[i]) || src[i] == ':' || src[i] == '.') {
			i++
		}
		return i
	}
	if i < len(src) && src[i] == 'T' {
		return timePart(i + 1)
	}
	for i < len(src) && (isDigit(src[i]) || src[i] == '-') {
		i++
	}
	if i < len(src) && src[i] == 'T' {
		i = timePart(i + 1)
		switch {
		case i < len(src) && src[i] == 'Z':
			i++
		case i+1 < len(src) && (src[i] == '+' || src[i] == '-') && isDigit(src[i+1]):
			i++
			for i < len(src) && (isDigit(src[i]) || src[i] == ':') {
				i++
			}
		}
	}
	return i
}

// unquote decodes the string or delimited identifier starting with the quote at src[i] and
// returns it with the offset just past the closing quote.
func unquote(src string, i int) (string, int, error) {
	q := src[i]
	start := i
	i++
	var b []byte
	for i < len(src) {
		c := src[i]
		if c == q {
			if b == nil {
				return src[start+1 : i], i + 1, nil
			}
			return string(b), i + 1, nil
		}
		if c != '\\' {
			if b != nil {
				b = append(b, c)
			}
			i++
			continue
		}
		if b == nil {
			b = append(make([]byte, 0, len(src)-start), src[start+1:i]...)
		}
		if i+1 >= len(src) {
			break
		}
		e := src[i+1]
		switch e {
		case '\'', '"', '`', '\\', '/':
			b = append(b, e)
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			if i+6 > len(src) {
				return "", 0, syntaxErr(src, i, "invalid \\u escape")
			}
			r, err := strconv.ParseUint(src[i+2:i+6], 16, 32)
			if err != nil {
				return "", 0, syntaxErr(src, i, "invalid \\u escape")
			}
			b = utf8.AppendRune(b, rune(r))
			i += 6
			continue
		default:
			return "", 0, syntaxErr(src, i, "invalid escape \\"+string(rune(e)))
		}
		i += 2
	}
	if q == '`' {
		return "", 0, syntaxErr(src, start, "unterminated delimited identifier")
	}
	return "", 0, syntaxErr(src, start, "unterminated string")
}
