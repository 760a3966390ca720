package kb

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iambilly/billy/internal/pg/pgtest"
	"github.com/iambilly/billy/internal/shareddata"
	"github.com/iambilly/billy/pipeline/codes"
	"github.com/iambilly/billy/pipeline/embed"
)

// BenchmarkSearch measures exact-path retrieval over the full ICD-10-CM set (74,719 codes) plus
// 10,000 manual passages, reporting p50 and p95 latency per query (the target is p95 < 20 ms).
//
//	go test -run '^$' -bench Search -benchtime 400x ./pipeline/kb/
func BenchmarkSearch(b *testing.B) {
	db := pgtest.NewPool(b)
	ctx := b.Context()
	dir, err := shareddata.Dir()
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "icd10cm", "icd10cm-codes-2026.txt"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := codes.ImportICD10CM(ctx, db, f, codes.ICD10CMOptions{ImportOptions: codes.ImportOptions{Version: "2026"}}); err != nil {
		b.Fatal(err)
	}
	k, err := Open(ctx, db, embed.NewHash(0), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ForceExact: true, RefreshEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := k.IndexCodes(ctx, codes.NewStore(db), nil); err != nil {
		b.Fatal(err)
	}
	// 10,000 passages of ~800 characters built from code descriptions: realistic vocabulary.
	var all []string
	_ = codes.NewStore(db).Each(ctx, codes.ICD10CM, func(c codes.Code) error { all = append(all, c.Display); return nil })
	docs := make([]chunkDoc, 10000)
	for i := range docs {
		var sb strings.Builder
		for j := 0; sb.Len() < 800; j++ {
			sb.WriteString(all[(i*37+j*1009)%len(all)])
			sb.WriteString(". ")
		}
		docs[i] = chunkDoc{kind: KindManual, page: i%50 + 1, text: sb.String(), embedText: sb.String()}
	}
	if err := k.storeSource(ctx, KindManual, "bench:manual", "bench", "x", docs, func(int, string) {}); err != nil {
		b.Fatal(err)
	}
	if k.Len() != 74719+10000 {
		b.Fatalf("index holds %d vectors", k.Len())
	}
	queries := []string{"type 2 diabetes with chronic kidney disease stage 3", "HTN", "acute otitis media left ear",
		"sprain of right ankle initial encounter", "low back pain radiating to the left leg", "COPD exacerbation",
		"family history of colon cancer", "major depressive disorder recurrent moderate", "chest pain on exertion",
		"fracture of distal radius, closed, initial"}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		hits, err := k.Search(ctx, queries[i%len(queries)], 10, Filter{})
		lat = append(lat, time.Since(start))
		if err != nil || len(hits) != 10 {
			b.Fatalf("Search: %v, %d hits", err, len(hits))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.95), "p95-ms")
	b.ReportMetric(float64(k.Len()), "vectors")
	fmt.Fprintf(os.Stderr, "kb search over %d vectors: p50 %.2f ms, p95 %.2f ms (%d queries)\n", k.Len(), p(0.5), p(0.95), len(lat))
}
