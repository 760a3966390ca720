package kb

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Chunking defaults: passages of about 800 characters overlapping by about 150, cut at a sentence
// end when one is near, else at a space.
const (
	ChunkSize    = 800
	ChunkOverlap = 150
)

// Page is the text of one page of a document (Number 0 for unpaged formats).
type Page struct {
	Number int
	Text   string
}

// Chunk is one passage of a document.
type Chunk struct {
	Page int
	Text string
}

// ChunkPages splits pages into passages of about size characters (bytes of UTF-8) overlapping by
// about overlap. A passage never spans pages, so its page number is exact.
func ChunkPages(pages []Page, size, overlap int) []Chunk {
	if size <= 0 {
		size = ChunkSize
	}
	if overlap < 0 || overlap >= size/2 {
		overlap = min(ChunkOverlap, size/4)
	}
	var out []Chunk
	for _, p := range pages {
		text := normalizeSpace(p.Text)
		for start := 0; start < len(text); {
			end := len(text)
			if end-start > size {
				end = cutPoint(text, start, start+size)
			}
			piece := strings.TrimSpace(text[start:end])
			if piece != "" {
				out = append(out, Chunk{Page: p.Number, Text: piece})
			}
			if end >= len(text) {
				break
			}
			next := end - overlap
			if next <= start {
				next = end
			}
			// start the overlap at a word boundary
			for next < end && next > start && !unicode.IsSpace(rune(text[next-1])) {
				next++
			}
			start = next
		}
	}
	return out
}

// cutPoint picks where to end a passage that must end by limit: the last sentence end in the
// final third, else the last space, else limit (moved back to a rune boundary).
func cutPoint(text string, start, limit int) int {
	window := text[start:limit]
	minCut := len(window) * 2 / 3
	for i := len(window) - 1; i >= minCut; i-- {
		if (window[i] == '.' || window[i] == '?' || window[i] == '!' || window[i] == '\n') &&
			(i+1 == len(window) || window[i+1] == ' ' || window[i+1] == '\n') {
			return start + i + 1
		}
	}
	if i := strings.LastIndexAny(window, " \n\t"); i > len(window)/2 {
		return start + i
	}
	for limit > start && !utf8.RuneStart(text[limit]) {
		limit--
	}
	return limit
}

// normalizeSpace collapses runs of spaces and tabs, keeps single newlines (paragraph structure) and
// turns blank-line runs into one blank line.
func normalizeSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space, newlines := false, 0
	for _, r := range s {
		switch {
		case r == '\n':
			newlines++
			space = false
		case unicode.IsSpace(r):
			space = true
		default:
			if newlines > 0 && b.Len() > 0 {
				if newlines > 1 {
					b.WriteString("\n\n")
				} else {
					b.WriteByte('\n')
				}
			} else if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			newlines, space = 0, false
			b.WriteRune(r)
		}
	}
	return b.String()
}
