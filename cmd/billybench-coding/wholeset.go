package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/iambilly/billy/internal/benchkit"
	"github.com/iambilly/billy/internal/shareddata"
	"github.com/iambilly/billy/pipeline/coder"
	"github.com/iambilly/billy/pipeline/codes"
)

// wholeSetTarget is issue 13's target: a 1,500-word transcript coded in under 150 ms (p95) on one
// core with the whole code set loaded.
const wholeSetTarget = 150 * time.Millisecond

// wholeSetResult is the built-in coder measured as production runs it since issue 13: every
// billable ICD-10-CM description indexed in memory, on one core.
type wholeSetResult struct {
	name         string
	words        int
	long         latencies // the longest transcript, GOMAXPROCS=1
	devsetB      latencies // ../shared/data/coding-devset-b transcripts, GOMAXPROCS=1
	devsetBWords int       // their mean length
	setBytes     uint64    // heap held by the loaded code sets (codes.LoadSet)
	indexBytes   uint64    // heap held by the description index and the coder's tables
	indexBuild   time.Duration
	allocBytes   float64 // per run of the long transcript
}

// heapAfterGC returns the live heap after two collections.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// measureWholeSet loads the code sets again to weigh them, builds a fresh built-in coder (its
// description index over all 74,719 billable codes, the Table of Drugs and the other embedded
// tables) to weigh and time it, then times the coder on one core (GOMAXPROCS=1) on the longest
// development transcript and on development set B.
func measureWholeSet(ctx context.Context, env *benchEnv, cases []devCase, o options) (wholeSetResult, error) {
	var res wholeSetResult
	h0 := heapAfterGC()
	set, err := codes.LoadSet(ctx, env.pool)
	if err != nil {
		return res, err
	}
	h1 := heapAfterGC()
	t0 := time.Now()
	b := coder.NewBuiltin(set)
	c := longest(cases)
	in, err := c.input()
	if err != nil {
		return res, err
	}
	if _, err := b.Code(ctx, in); err != nil { // the embedded tables load on first use
		return res, err
	}
	res.indexBuild = time.Since(t0)
	h2 := heapAfterGC()
	res.setBytes, res.indexBytes = h1-h0, h2-h1
	res.name, res.words = c.Name, c.words()

	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	for range 5 {
		if _, err := b.Code(ctx, in); err != nil {
			return res, err
		}
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range o.coderRuns {
		t0 := time.Now()
		if _, err := b.Code(ctx, in); err != nil {
			return res, err
		}
		res.long = append(res.long, time.Since(t0))
	}
	runtime.ReadMemStats(&m1)
	res.allocBytes = float64(m1.TotalAlloc-m0.TotalAlloc) / float64(o.coderRuns)

	inputs, words, err := devsetBInputs()
	if err != nil {
		fmt.Println("  development set B not measured:", err)
	}
	for range 5 {
		for _, in := range inputs {
			t0 := time.Now()
			if _, err := b.Code(ctx, in); err != nil {
				return res, err
			}
			res.devsetB = append(res.devsetB, time.Since(t0))
		}
	}
	if len(inputs) > 0 {
		res.devsetBWords = words / len(inputs)
	}
	runtime.KeepAlive(set)
	fmt.Printf("  memory: code sets %.1f MB, description index and tables %.1f MB (built and loaded in %s)\n",
		float64(res.setBytes)/1e6, float64(res.indexBytes)/1e6, benchkit.Ms(res.indexBuild))
	fmt.Printf("  one core (GOMAXPROCS=1), %s (%d words), %d runs: p50 %s, p95 %s; %.1f MB allocated per run\n",
		res.name, res.words, len(res.long), benchkit.Ms(res.long.P(50)), benchkit.Ms(res.long.P(95)), res.allocBytes/1e6)
	if len(res.devsetB) > 0 {
		fmt.Printf("  one core, development set B (%d transcripts, mean %d words), 5 runs each: p50 %s, p95 %s\n",
			len(inputs), res.devsetBWords, benchkit.Ms(res.devsetB.P(50)), benchkit.Ms(res.devsetB.P(95)))
	}
	return res, nil
}

// devsetBInputs reads the transcripts of ../shared/data/coding-devset-b as coder inputs (an adult
// established patient: demographics do not change the coder's speed).
func devsetBInputs() ([]coder.Input, int, error) {
	dir, err := shareddata.Dir()
	if err != nil {
		return nil, 0, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "coding-devset-b", "dev-*.txt"))
	if err != nil || len(files) == 0 {
		return nil, 0, fmt.Errorf("no transcripts in %s: %v", filepath.Join(dir, "coding-devset-b"), err)
	}
	sort.Strings(files)
	var out []coder.Input
	words := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, 0, err
		}
		words += len(strings.Fields(string(b)))
		out = append(out, coder.Input{Transcript: string(b), Patient: coder.Patient{BirthDate: "1960-06-15", Sex: "female"},
			ServiceDate: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), Established: true, PlaceOfService: "11"})
	}
	return out, words, nil
}

// wholeSetRows are the result rows of measureWholeSet.
func (w wholeSetResult) rows() []row {
	out := []row{
		{fmt.Sprintf("built-in coder, whole code set, one core: %d-word transcript (%d runs)", w.words, len(w.long)),
			fmt.Sprintf("p50 %s, p95 %s", benchkit.Ms(w.long.P(50)), benchkit.Ms(w.long.P(95))), "",
			"< " + benchkit.Ms(wholeSetTarget) + " (p95)", mark(w.long.P(95) < wholeSetTarget)},
		{fmt.Sprintf("built-in coder, whole code set, one core: development set B (mean %d words)", w.devsetBWords),
			fmt.Sprintf("p50 %s, p95 %s", benchkit.Ms(w.devsetB.P(50)), benchkit.Ms(w.devsetB.P(95))), "", "", ""},
		{"memory: code sets loaded / description index and tables",
			fmt.Sprintf("%.1f MB / %.1f MB (index built in %s)", float64(w.setBytes)/1e6, float64(w.indexBytes)/1e6, benchkit.Ms(w.indexBuild)), "", "", ""},
	}
	return out
}
