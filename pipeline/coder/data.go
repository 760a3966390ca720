package coder

import (
	"bufio"
	"embed"
	"fmt"
	"strings"
	"sync"
)

// The built-in coder's vocabulary is data: embedded text files in data/, one entry a line, read
// once by the small readers below. Adding a synonym, a trigger or a procedure adds a line.
//
//go:embed data/*.txt
var dataFS embed.FS

// dataLines returns the non-empty, non-comment lines of data/name, each split at "|" into trimmed
// fields. A malformed file is a programming error caught by the tests, so it panics.
func dataLines(name string) [][]string {
	f, err := dataFS.Open("data/" + name)
	if err != nil {
		panic(fmt.Sprintf("coder: data/%s: %v", name, err))
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "|")
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		out = append(out, fields)
	}
	if err := sc.Err(); err != nil {
		panic(fmt.Sprintf("coder: data/%s: %v", name, err))
	}
	return out
}

// ambiguousAbbr maps a lower-case ambiguous abbreviation to the cue words that select its clinical
// sense (data/ambiguous.txt).
var ambiguousAbbr = sync.OnceValue(func() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, f := range dataLines("ambiguous.txt") {
		if len(f) != 3 {
			panic("coder: data/ambiguous.txt: want ABBREVIATION | condition | cues: " + strings.Join(f, "|"))
		}
		cues := map[string]bool{}
		for _, w := range strings.Fields(f[2]) {
			cues[stemWord(strings.ToLower(w))] = true
		}
		out[strings.ToLower(f[0])] = cues
	}
	return out
})
