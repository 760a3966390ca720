package coder_test

import (
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/iambilly/billy/pipeline/coder"
	"github.com/iambilly/billy/pipeline/codes"
	"github.com/iambilly/billy/pipeline/embed"
	"github.com/iambilly/billy/pipeline/kb"
)

// TestBuiltinRetrievalFallback codes an assessed condition the dictionary does not know from the
// code descriptions, and only when the description's words are documented and asserted. The
// built-in coder searches the whole code set in memory (index.go), so it finds the code with or
// without the knowledge base that production hands it (WithRetriever).
func TestBuiltinRetrievalFallback(t *testing.T) {
	t.Parallel()
	db := importCodeSets(t)
	ctx := t.Context()
	set, err := codes.LoadSet(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	k, err := kb.Open(ctx, db, embed.NewHash(0), kb.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ForceExact: true, RefreshEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.IndexCodes(ctx, codes.NewStore(db), nil, codes.ICD10CM); err != nil {
		t.Fatal(err)
	}
	in := func(text string) coder.Input {
		return coder.Input{Transcript: text, Patient: coder.Patient{BirthDate: "1980-01-01", Sex: "female"},
			ServiceDate: time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC), Established: true}
	}
	tests := []struct {
		name  string
		text  string
		retr  bool
		want  string
		wantN bool // want absent
	}{
		{"retrieved and verified", "Chief complaint: Fatigue.\nAssessment and plan:\n1. Iron deficiency anemia. Start ferrous sulfate 325 mg daily.", true, "D50.9", false},
		{"no retriever, same code", "Chief complaint: Fatigue.\nAssessment and plan:\n1. Iron deficiency anemia. Start ferrous sulfate 325 mg daily.", false, "D50.9", false},
		{"negated is not coded", "Assessment and plan:\n1. No evidence of iron deficiency anemia. Recheck CBC in 3 months.", true, "D50.9", true},
		{"partial wording is not coded", "Assessment and plan:\n1. Anemia workup. Ferritin ordered.", true, "D50.9", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b *coder.Builtin
			if tc.retr {
				b = coder.NewBuiltin(set, coder.WithRetriever(k))
			} else {
				b = coder.NewBuiltin(set)
			}
			res, err := b.Code(ctx, in(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			got := dxCodes(res)
			if has := slices.Contains(got, tc.want); has == tc.wantN {
				t.Errorf("diagnoses %v; want %s present=%v (dropped %+v)", got, tc.want, !tc.wantN, res.Dropped)
			}
		})
	}
}
