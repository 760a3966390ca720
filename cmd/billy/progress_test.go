package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestProgressLinesWithoutTerminal is finding A1 of issue 10: piped (make run's output in a log, CI)
// the import and index progress printed nothing for minutes.
func TestProgressLinesWithoutTerminal(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	bar := newProgressBar(&out, "icd10cm")
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	bar.now = func() time.Time { return clock }
	for done := int64(0); done <= 1000; done += 50 {
		bar.update("load", done, 1000)
	}
	bar.update("index", 10, 0)
	bar.update("index", 20, 0) // no total: at most every ten seconds
	clock = clock.Add(10 * time.Second)
	bar.update("index", 30, 0)
	bar.done()
	want := []string{"icd10cm load: 0% (0 of 1000)"}
	for i := 1; i <= 10; i++ {
		want = append(want, "icd10cm load: "+itoa(i*10)+"% ("+itoa(i*100)+" of 1000)")
	}
	want = append(want, "icd10cm index: 10", "icd10cm index: 30")
	if got := strings.Split(strings.TrimSpace(out.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("progress lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
