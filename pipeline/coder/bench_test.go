package coder_test

import (
	"strings"
	"testing"

	"github.com/iambilly/billy/pipeline/coder"
)

// BenchmarkBuiltinLongNote measures the built-in coder (guards included) on the longest
// development transcript, 1,507 words (target: under 200 ms per transcript).
//
//	go test -run '^$' -bench BuiltinLongNote ./pipeline/coder/
func BenchmarkBuiltinLongNote(b *testing.B) {
	set := loadSet(b)
	cs := loadCases(b)
	var c devCase
	for _, x := range cs {
		if strings.HasPrefix(x.Name, "45-") {
			c = x
		}
	}
	if words := len(strings.Fields(c.Text)); words < 1500 {
		b.Fatalf("long note has %d words", words)
	}
	in := c.input(b)
	bc := coder.NewBuiltin(set)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bc.Code(b.Context(), in); err != nil {
			b.Fatal(err)
		}
	}
}
