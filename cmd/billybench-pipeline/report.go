package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iambilly/billy/internal/benchkit"
)

// The targets.
const (
	overheadTarget = 300 * time.Millisecond // Billy's own time per run
	uploadTarget   = 0.5                    // encrypted upload / raw write
	// flatSlope is how much peak RSS may grow per byte of upload and still count as flat: 1 %, i.e.
	// about 10 MiB more for each GiB more.
	flatSlope = 0.01
)

func (r runsResult) overheadMet() bool { return r.overhead.P(50) < overheadTarget }

// slope is the growth of peak RSS per byte of upload between the smallest and largest sizes.
func slope(ms []memoryResult) (float64, bool) {
	if len(ms) < 2 || ms[len(ms)-1].size == ms[0].size {
		return 0, false
	}
	lo, hi := ms[0], ms[len(ms)-1]
	return float64(hi.growth()-lo.growth()) / float64(hi.size-lo.size), true
}

// stageRow is one line of the per-stage table of a runs phase.
type stageRow struct {
	name string
	l    latencies
}

func (r runsResult) rows(wavBytes int) []stageRow {
	return []stageRow{
		{fmt.Sprintf("intake: POST Binary (%d KB WAV)", wavBytes/1000), r.stage(runSample.binaryPOST)},
		{"intake: POST Media (starts the run)", r.stage(runSample.mediaPOST)},
		{"queue wait: authoredOn → in-progress", r.stage(runSample.queueWait)},
		{"  relay: outbox → Redis", r.stage(runSample.relay)},
		{"  asynq: Redis → worker", r.stage(runSample.pickup)},
		{"transcription: in-progress → completed", r.stage(runSample.transcribe)},
		{"  of which the STT stub (per answer)", r.stub},
		{"Media POST → Task completed", r.stage(runSample.mediaToDone)},
		{"  as seen by the polling client", r.stage(runSample.observed)},
		{"run: Binary POST → Task completed", r.stage(runSample.total)},
		{"Billy's overhead (run − stub time)", r.overhead},
	}
}

func printResults(res results, o options) {
	wavBytes := wavLen(o.sampleRate, o.audio)
	for _, r := range res.runs {
		fmt.Printf("\nruns through intake → transcript, %d client(s), worker concurrency %d: %d runs in %s = %.1f runs/min\n",
			r.clients, o.concurrency, len(r.samples), r.elapsed.Round(100*time.Millisecond), r.perMinute())
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "%-42s\tp50\tp95\tp99\t\n", "stage")
		for _, row := range r.rows(wavBytes) {
			fmt.Fprintf(tw, "%-42s\t%s\t%s\t%s\t\n", row.name, benchkit.Ms(row.l.P(50)), benchkit.Ms(row.l.P(95)), benchkit.Ms(row.l.P(99)))
		}
		tw.Flush()
		fmt.Printf("Billy's overhead per run: p50 %s = %.2f × the %s target %s\n",
			benchkit.Ms(r.overhead.P(50)), float64(r.overhead.P(50))/float64(overheadTarget), benchkit.Ms(overheadTarget), benchkit.Mark(r.overheadMet()))
	}
	if u := res.upload; u != nil {
		fmt.Printf("\nupload of %s, median of %d:\n", size(u.size), len(u.raw))
		fmt.Printf("  raw write (write, fsync, rename, fsync dirs): %6.0f MB/s   [%s]\n", u.rawRate(), rates(u.size, u.raw))
		fmt.Printf("  Billy POST Binary (encrypted, hashed):        %6.0f MB/s   [%s]\n", u.billyRate(), rates(u.size, u.billy))
		fmt.Printf("  encrypted / raw = %.2f   target ≥ %.2f %s\n", u.ratio(), uploadTarget, benchkit.Mark(u.ratio() >= uploadTarget))
	}
	if len(res.memory) > 0 {
		fmt.Printf("\nmemory: peak RSS of a fresh Billy process during one upload\n")
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "upload\tRSS before\tpeak RSS\tgrowth\tMB/s\tpeak from\t\n")
		for _, m := range res.memory {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\t%s\t\n", size(m.size), mib(m.before), mib(m.peak), mib(m.growth()), mbps(m.size, m.elapsed), m.method)
		}
		tw.Flush()
		if s, ok := slope(res.memory); ok {
			fmt.Printf("growth from %s to %s: %+.1f MiB per GiB of upload (%.2f %%)   flat (< %.0f %%) %s\n",
				size(res.memory[0].size), size(res.memory[len(res.memory)-1].size), s*1024, s*100, flatSlope*100, benchkit.Mark(s < flatSlope))
		}
	}
	if o.markdown {
		printMarkdown(res, o, wavBytes)
	}
}

func printMarkdown(res results, o options, wavBytes int) {
	fmt.Printf("\nCommand: `go run ./cmd/billybench-pipeline %s`\n\n", strings.Join(os.Args[1:], " "))
	if len(res.runs) > 0 {
		// One column group per client count, so that the phases read side by side.
		fmt.Printf("| runs of a %s WAV, worker concurrency %d |", o.audio, o.concurrency)
		sep := "|---|"
		for _, r := range res.runs {
			fmt.Printf(" %d client(s): p50 | p95 | p99 |", r.clients)
			sep += "---|---|---|"
		}
		fmt.Printf("\n%s\n| **runs per minute** |", sep)
		for _, r := range res.runs {
			fmt.Printf(" **%.1f** | | |", r.perMinute())
		}
		fmt.Println()
		for i, row := range res.runs[0].rows(wavBytes) {
			last := i == len(res.runs[0].rows(wavBytes))-1
			name := strings.TrimSpace(row.name)
			if row.name != name {
				name = "└ " + name
			}
			fmt.Printf("| %s |", name)
			for _, r := range res.runs {
				l := r.rows(wavBytes)[i].l
				p50 := benchkit.Ms(l.P(50))
				if last {
					p50 = fmt.Sprintf("**%s** %s", p50, benchkit.Mark(r.overheadMet()))
				}
				fmt.Printf(" %s | %s | %s |", p50, benchkit.Ms(l.P(95)), benchkit.Ms(l.P(99)))
			}
			fmt.Println()
		}
		fmt.Printf("\nTarget: Billy's overhead per run < %s (p50).\n\n", benchkit.Ms(overheadTarget))
	}
	if u := res.upload; u != nil {
		fmt.Printf("| upload of %s (median of %d) | MB/s | each | ratio | target |\n|---|---|---|---|---|\n", size(u.size), len(u.raw))
		fmt.Printf("| raw write, fsync, rename (same file system) | %.0f | %s | | |\n", u.rawRate(), rates(u.size, u.raw))
		fmt.Printf("| Billy POST Binary (encrypted, hashed) | **%.0f** | %s | **%.2f** | ≥ %.2f %s |\n\n", u.billyRate(), rates(u.size, u.billy), u.ratio(), uploadTarget, benchkit.Mark(u.ratio() >= uploadTarget))
	}
	if len(res.memory) > 0 {
		fmt.Printf("| upload (fresh Billy process) | RSS before | peak RSS | growth | MB/s |\n|---|---|---|---|---|\n")
		for _, m := range res.memory {
			fmt.Printf("| %s | %s | %s | **%s** | %.0f |\n", size(m.size), mib(m.before), mib(m.peak), mib(m.growth()), mbps(m.size, m.elapsed))
		}
		if s, ok := slope(res.memory); ok {
			fmt.Printf("\nPeak RSS growth from %s to %s: %+.1f MiB per GiB of upload (%.2f %%); flat (< %.0f %%) %s\n",
				size(res.memory[0].size), size(res.memory[len(res.memory)-1].size), s*1024, s*100, flatSlope*100, benchkit.Mark(s < flatSlope))
		}
	}
}
