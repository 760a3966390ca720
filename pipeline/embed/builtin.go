package embed

import (
	"context"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultDim is the built-in embedder's default vector length.
const DefaultDim = 384

// builtinModel names the feature recipe; change it whenever features or weights change, so indexes
// built with an older recipe are not compared with new vectors.
const builtinModel = "hash-ngram-v1"

// Hash is the built-in embedder: hashed word unigrams, bigrams and character trigrams of the text
// after abbreviation expansion, with signed feature hashing (FNV-1a) into Dim buckets, L2-normalised.
// It is deterministic across runs and platforms (integer hashing, a fixed feature order) and needs no
// model. It is safe for concurrent use.
type Hash struct {
	dim int
}

var _ Embedder = (*Hash)(nil)

// NewHash returns a built-in embedder of dim dimensions (DefaultDim when dim <= 0).
func NewHash(dim int) *Hash {
	if dim <= 0 {
		dim = DefaultDim
	}
	return &Hash{dim: dim}
}

// Dim returns the vector length.
func (h *Hash) Dim() int { return h.dim }

// Info names the engine.
func (h *Hash) Info() (name, model string) { return "builtin", builtinModel }

// Embed returns one vector per text. It never fails except on a cancelled context.
func (h *Hash) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		out[i] = h.Vector(t)
	}
	return out, nil
}

// Vector embeds one text.
func (h *Hash) Vector(text string) []float32 {
	v := make([]float32, h.dim)
	toks := Terms(text)
	prev := ""
	for _, t := range toks {
		w := float32(1)
		if weak[t] {
			w = 0.35
		}
		h.add(v, "w:"+t, w)
		if prev != "" {
			h.add(v, "b:"+prev+" "+t, 0.6*w)
		}
		prev = t
		if utf8.RuneCountInString(t) >= 4 {
			g := "<" + t + ">"
			rs := []rune(g)
			for i := 0; i+3 <= len(rs); i++ {
				h.add(v, "c:"+string(rs[i:i+3]), 0.25*w)
			}
		}
	}
	return Normalize(v)
}

func (h *Hash) add(v []float32, feature string, w float32) {
	x := fnv64(feature)
	i := int(x % uint64(h.dim))
	if x>>63 == 1 {
		w = -w
	}
	v[i] += float32(w) // the conversion forbids fusing with the caller's multiplication
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	// Final avalanche (from SplitMix64) so the low bits used for the bucket are well mixed.
	h ^= h >> 31
	h *= 0x7fb5d329728ea185
	h ^= h >> 27
	h *= 0x81dadef4bc2dd44d
	h ^= h >> 33
	return h
}

// stop words carry no meaning for retrieval; weak words are common in code descriptions and
// downweighted rather than dropped, because they still separate sibling codes.
var stop = setOf("a", "an", "the", "of", "and", "or", "to", "in", "on", "for", "by", "at", "as", "is",
	"was", "be", "are", "were", "been", "it", "its", "this", "that", "these", "those", "he", "she",
	"his", "her", "they", "them", "we", "i", "you", "my", "your", "our", "has", "have", "had", "from",
	"which", "who", "will", "would", "can", "could", "should", "there", "their", "also", "into", "than",
	"then", "so", "but", "if", "not", "no", "nos", "nec")

var weak = setOf("unspecified", "other", "specified", "encounter", "initial", "subsequent", "sequela",
	"with", "without", "due", "condition", "disorder", "disease", "site", "type", "patient")

func setOf(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// Terms returns the content terms of text as the built-in embedder sees them: lower-cased word
// tokens, abbreviations expanded (the abbreviation kept too), stop words dropped, plurals reduced.
func Terms(text string) []string {
	var out []string
	for _, tok := range Tokenize(text) {
		if exp, ok := Abbreviation(tok.Text); ok {
			out = appendTerm(out, strings.ToLower(tok.Text))
			for _, w := range strings.Fields(exp) {
				out = appendTerm(out, w)
			}
			continue
		}
		out = appendTerm(out, strings.ToLower(tok.Text))
	}
	return out
}

func appendTerm(out []string, w string) []string {
	if stop[w] {
		return out
	}
	return append(out, Stem(w))
}

// Stem reduces an English plural to its singular (conservatively: "-ies" to "-y", a final "s" not
// after s, u or i). Medical words such as "diabetes", "psoriasis" and "virus" are left alone.
func Stem(w string) string {
	n := len(w)
	switch {
	case n > 4 && strings.HasSuffix(w, "ies"):
		return w[:n-3] + "y"
	case n > 4 && strings.HasSuffix(w, "es") && (strings.HasSuffix(w, "sses") || strings.HasSuffix(w, "ches") || strings.HasSuffix(w, "shes") || strings.HasSuffix(w, "xes")):
		return w[:n-2]
	case n > 3 && w[n-1] == 's' && !strings.ContainsRune("sui", rune(w[n-2])) && !exceptS[w]:
		return w[:n-1]
	}
	return w
}

var exceptS = setOf("diabetes", "herpes", "rabies", "scabies", "lupus", "pertussis", "measles", "mumps",
	"tetanus", "uterus", "fetus", "status", "always", "was", "has", "does", "alias", "bias", "canvas",
	"biceps", "triceps", "forceps", "lens", "pancreas", "tympanicus", "varicella", "dyspnoeas")

// Token is one word of a text with its byte offsets.
type Token struct {
	Text       string
	Start, End int
}

// Tokenize splits text into word tokens (runs of letters and digits) with byte offsets. A hyphen or
// slash joins two words only when the joined form is a known abbreviation ("a-fib", "s/p", "r/o",
// "covid-19", "x-ray"), so "left-sided" is two tokens.
func Tokenize(text string) []Token {
	var out []Token
	isWord := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
	i := 0
	for i < len(text) {
		r, n := utf8.DecodeRuneInString(text[i:])
		if !isWord(r) {
			i += n
			continue
		}
		start := i
		for i < len(text) {
			r, n = utf8.DecodeRuneInString(text[i:])
			if isWord(r) {
				i += n
				continue
			}
			if (r == '-' || r == '/') && i+n < len(text) {
				j := i + n
				for j < len(text) {
					r2, n2 := utf8.DecodeRuneInString(text[j:])
					if !isWord(r2) {
						break
					}
					j += n2
				}
				if j > i+n && joined[strings.ToLower(text[start:j])] {
					i = j
					continue
				}
			}
			break
		}
		out = append(out, Token{Text: text[start:i], Start: start, End: i})
	}
	return out
}
