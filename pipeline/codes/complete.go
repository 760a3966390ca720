package codes

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Completion: the search a person runs while typing (Billy Review's code search). Search reads
// whole words; Complete reads each word of three letters or more as the start of one ("hyperlipid"
// finds hyperlipidemia, "osteoarth left kne" M17.12) and a text that looks like a code as the start of codes, so every keystroke has
// answers. Both paths use an index: the description's GIN index with prefix lexemes, and the
// primary key's range from the prefix to the prefix followed by the highest code point (which is
// the prefix's range under Billy's C/C.UTF-8 collation; the left() check keeps it exact under any
// other).

// codeLike is a text typed as a code: a letter or digit, then at least one digit, then code
// characters (M17, m17.1, E785, J3301, 99214).
var codeLike = regexp.MustCompile(`^[A-Za-z0-9][0-9][0-9A-Za-z.]*$`)

// wordRE splits typed text into words for the prefix query (tsquery syntax can never get in).
var wordRE = regexp.MustCompile(`[\p{L}\p{N}]+`)

// maxCompleteWords bounds the words of a completion query; minPrefix is the shortest word read as
// the start of words.
const (
	maxCompleteWords = 8
	minPrefix        = 3
)

// Complete finds billable codes of system's current version for text as it is being typed: codes
// starting with it when it looks like a code (in code order), then codes whose description has
// every word, or a word starting with it (best match first), at most limit in all.
func (s *Store) Complete(ctx context.Context, system, text string, limit int) ([]Code, error) {
	if !known(system) {
		return nil, fmt.Errorf("complete %s: %w", system, ErrUnknownSystem)
	}
	if limit <= 0 {
		limit = 20
	}
	text = strings.TrimSpace(text)
	var out []Code
	seen := map[string]bool{}
	collect := func(rows pgx.Rows, err error) error {
		if err != nil {
			return fmt.Errorf("complete %s: %w", system, err)
		}
		found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Code, error) { return scanCode(r) })
		if err != nil {
			return fmt.Errorf("complete %s: %w", system, err)
		}
		for _, c := range found {
			if !seen[c.Code] && len(out) < limit {
				seen[c.Code] = true
				out = append(out, c)
			}
		}
		return nil
	}
	if codeLike.MatchString(text) {
		prefix := Normalize(system, text)
		if strings.HasSuffix(text, ".") && !strings.HasSuffix(prefix, ".") {
			prefix += "."
		}
		if err := collect(s.db.Query(ctx, `SELECT `+codeColumns+`
			FROM codes c JOIN code_systems s ON s.system = c.system AND s.current_version = c.version
			WHERE c.system = $1 AND c.billable AND c.code >= $2 AND c.code < $2 || chr(1114111) AND left(c.code, length($2)) = $2
			ORDER BY c.code LIMIT $3`, system, prefix, limit)); err != nil {
			return nil, err
		}
	}
	words := wordRE.FindAllString(strings.ToLower(text), maxCompleteWords)
	if len(out) >= limit || len(words) == 0 {
		return out, nil
	}
	terms := make([]string, len(words))
	for i, w := range words {
		terms[i] = w
		// Any word may be unfinished; one or two letters as a prefix would match thousands of
		// descriptions, so those must be whole words.
		if len([]rune(w)) >= minPrefix {
			terms[i] += ":*"
		}
	}
	err := collect(s.db.Query(ctx, `SELECT `+codeColumns+`
		FROM codes c JOIN code_systems s ON s.system = c.system AND s.current_version = c.version,
		     to_tsquery('english', $2) q
		WHERE c.system = $1 AND c.billable AND c.search @@ q
		ORDER BY ts_rank(c.search, q) DESC, length(c.display), c.code
		LIMIT $3`, system, strings.Join(terms, " & "), limit))
	return out, err
}
