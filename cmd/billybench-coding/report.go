package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iambilly/billy/internal/benchkit"
)

// Targets of the issue.
const (
	coderTarget     = 200 * time.Millisecond // per transcript (p95)
	retrievalTarget = 20 * time.Millisecond  // p95
	recallTarget    = 0.95
	e2eTarget       = time.Second // transcript → Claim (p95)
)

type results struct {
	whole         wholeSetResult
	setup         setupResult
	vectors       int
	mode          string
	coder         coderResult
	search        searchResult
	recall        recallResult
	recallSkipped string
	e2e           *e2eResult
}

func mark(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// row is one line of the results table.
type row struct {
	measure, value, ratio, target, result string
}

func (r results) rows() []row {
	c, s := r.coder, r.search
	out := append(r.whole.rows(), []row{
		{fmt.Sprintf("built-in coder, %d-word transcript (%d runs)", c.words, len(c.lat)),
			fmt.Sprintf("p50 %s, p95 %s", benchkit.Ms(c.lat.P(50)), benchkit.Ms(c.lat.P(95))), "",
			"< " + benchkit.Ms(coderTarget) + " (p95)", mark(c.lat.P(95) < coderTarget)},
		{"└ the same without the retriever (no kb.Search calls)", fmt.Sprintf("p50 %s", benchkit.Ms(c.noRetriever.P(50))), "", "", ""},
		{fmt.Sprintf("built-in coder, mean over the %d development transcripts", len(c.perCase)),
			fmt.Sprintf("%s (%s without the retriever)", benchkit.Ms(meanOf(c.perCase)), benchkit.Ms(c.noRetrieverMean)), "", "", ""},
		{fmt.Sprintf("kb.Search k=10 over %d vectors (%s)", s.vectors, r.mode),
			fmt.Sprintf("p50 %s, p95 %s", benchkit.Ms(s.all.P(50)), benchkit.Ms(s.all.P(95))),
			fmt.Sprintf("raw scan %s: %.2f", benchkit.Ms(s.raw.P(50)), ratio(s.raw.P(50), s.all.P(50))),
			"p95 < " + benchkit.Ms(retrievalTarget), mark(s.all.P(95) < retrievalTarget)},
		{"kb.Search k=10, ICD-10-CM codes only (the coder's filter)",
			fmt.Sprintf("p50 %s, p95 %s", benchkit.Ms(s.coderish.P(50)), benchkit.Ms(s.coderish.P(95))),
			fmt.Sprintf("%.2f", ratio(s.raw.P(50), s.coderish.P(50))), "", ""},
	}...)
	if r.recallSkipped != "" {
		out = append(out, row{"recall@10, pgvector vs exact", "not measured: " + r.recallSkipped, "", "≥ 0.95", "—"})
	} else {
		scope := fmt.Sprintf("all %d chunks", r.recall.total)
		if r.recall.chunks < r.recall.total {
			scope = fmt.Sprintf("%d of %d chunks", r.recall.chunks, r.recall.total)
		}
		for _, f := range r.recall.filters {
			res := mark(f.recall >= recallTarget)
			out = append(out, row{fmt.Sprintf("recall@10 pgvector vs exact, %s, ef_search %d (kb's default; %s, %d queries)", f.name, f.ef, scope, r.recall.queries),
				fmt.Sprintf("%.3f (10th score %.4f below exact's %.3f)", f.recall, f.shortfall, f.tenth), "", "≥ 0.95", res})
		}
		for _, f := range r.recall.sweep {
			out = append(out, row{fmt.Sprintf("recall@10 pgvector vs exact, %s, ef_search %d (not Billy's setting)", f.name, f.ef),
				fmt.Sprintf("%.3f (10th score %.4f below)", f.recall, f.shortfall), "", "", ""})
		}
	}
	for _, p := range r.e2e.phases {
		total := p.stage(runSample.total)
		out = append(out, row{fmt.Sprintf("transcript → Claim, %d client(s), %d transcripts", p.clients, len(p.samples)),
			fmt.Sprintf("p50 %s, p95 %s; %.0f claims/min", benchkit.Ms(total.P(50)), benchkit.Ms(total.P(95)), p.perMinute()),
			fmt.Sprintf("raw %s: %.2f", benchkit.Ms(p.raw.lat.P(50)), ratio(p.raw.lat.P(50), total.P(50))),
			"< " + benchkit.Ms(e2eTarget) + " (p95)", mark(total.P(95) < e2eTarget)})
	}
	return out
}

func meanOf(m map[string]time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range m {
		sum += d
	}
	if len(m) == 0 {
		return 0
	}
	return sum / time.Duration(len(m))
}

// ratio is raw ÷ Billy: the share of Billy's time the raw limit accounts for.
func ratio(raw, billy time.Duration) float64 {
	if billy <= 0 {
		return 0
	}
	return float64(raw) / float64(billy)
}

type stageRow struct {
	name string
	f    func(runSample) time.Duration
}

var stageRows = []stageRow{
	{"POST DocumentReference (intake; the Task and outbox row in its transaction)", runSample.post},
	{"queue wait: queued → in-progress", runSample.queueWait},
	{"└ relay: outbox → Redis", runSample.relay},
	{"└ asynq: Redis → worker", runSample.pickup},
	{"coding stage: in-progress → completed", runSample.coding},
	{"completed → seen by the client (Claim's transaction commits; poll)", runSample.finish},
	{"server: queued → completed", runSample.server},
	{"transcript → Claim: POST → Task completed (client)", runSample.total},
}

// printCoderOnly prints the whole-set coder measure alone (-only coder).
func printCoderOnly(w wholeSetResult, o options) {
	fmt.Printf("\nresults (%d cores available; the coder ran on one):\n", runtime.NumCPU())
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tvalue\ttarget\tresult\t")
	for _, x := range w.rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", x.measure, x.value, x.target, x.result)
	}
	tw.Flush()
	if o.markdown {
		fmt.Println("\n| measure | value | target |\n|---|---|---|")
		for _, x := range w.rows() {
			res := ""
			if x.result == "PASS" {
				res = " ✔"
			} else if x.result == "MISS" {
				res = " ✘"
			}
			fmt.Printf("| %s | **%s** | %s%s |\n", x.measure, x.value, x.target, res)
		}
	}
}

func printResults(r results, o options) {
	e := r.e2e
	fmt.Printf("\nstages of the end-to-end runs (worker concurrency %d, poll every %s):\n", o.workerConcurrency, o.poll)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	head := "stage"
	for _, p := range e.phases {
		head += fmt.Sprintf("\t%d client(s) p50\tp95", p.clients)
	}
	fmt.Fprintln(tw, head+"\t")
	for _, s := range stageRows {
		line := s.name
		for _, p := range e.phases {
			l := p.stage(s.f)
			line += fmt.Sprintf("\t%s\t%s", benchkit.Ms(l.P(50)), benchkit.Ms(l.P(95)))
		}
		fmt.Fprintln(tw, line+"\t")
	}
	line := "└ of which the built-in coder (in process, same transcripts, mean)"
	for _, p := range e.phases {
		line += fmt.Sprintf("\t%s\t", benchkit.Ms(p.coder))
	}
	fmt.Fprintln(tw, line+"\t")
	line = "raw PostgreSQL: the same rows in 4 transactions"
	for _, p := range e.phases {
		line += fmt.Sprintf("\t%s\t%s", benchkit.Ms(p.raw.lat.P(50)), benchkit.Ms(p.raw.lat.P(95)))
	}
	fmt.Fprintln(tw, line+"\t")
	line = "throughput: claims/min (raw runs/min)"
	for _, p := range e.phases {
		line += fmt.Sprintf("\t%.0f\t(%.0f)", p.perMinute(), p.raw.perMinute())
	}
	fmt.Fprintln(tw, line+"\t")
	tw.Flush()
	fmt.Printf("first run (builds the worker's coder: code sets, %d vectors): %s, coding stage %s\n", r.vectors, benchkit.Ms(e.cold), benchkit.Ms(e.coldCoding))

	fmt.Printf("\nresults (%d cores; ratio = raw ÷ Billy at p50):\n", runtime.NumCPU())
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tvalue\tratio\ttarget\tresult\t")
	for _, x := range r.rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", x.measure, x.value, x.ratio, x.target, x.result)
	}
	tw.Flush()
	if o.markdown {
		printMarkdown(r, o)
	}
}

func printMarkdown(r results, o options) {
	e := r.e2e
	fmt.Printf("\n---- Markdown for BENCHMARKS.md ----\n\n")
	fmt.Printf("Command: `go run ./cmd/billybench-coding %s`\n\n", strings.Join(os.Args[1:], " "))
	st := r.setup
	if st.reused {
		fmt.Printf("Setup reused (-reuse): %d knowledge-base vectors (%s).\n\n", r.vectors, r.mode)
	} else {
		fmt.Printf("Setup (not timed against a target): ICD-10-CM 2026 %d codes (%d billable) imported in %s, HCPCS %d codes in %s; "+
			"%d code descriptions indexed in %s; %d synthetic manual files, %d chunks, ingested in %s; %d vectors (%s).\n\n",
			st.icdCodes, st.icdBillable, benchkit.Ms(st.icd), st.hcpcsCodes, benchkit.Ms(st.hcpcs), st.codeChunks, benchkit.Ms(st.indexCodes),
			st.manualFiles, st.manualChunks, benchkit.Ms(st.ingest), r.vectors, r.mode)
	}
	fmt.Println("| measure | value | ratio (raw ÷ Billy, p50) | target |")
	fmt.Println("|---|---|---|---|")
	for _, x := range r.rows() {
		t := x.target
		if x.result != "" && x.result != "—" {
			t += " " + benchkit.Mark(x.result == "PASS")
		}
		fmt.Printf("| %s | **%s** | %s | %s |\n", x.measure, x.value, x.ratio, t)
	}
	fmt.Println()
	head, sep := "| stage", "|---"
	for _, p := range e.phases {
		head += fmt.Sprintf(" | %d client(s): p50 | p95", p.clients)
		sep += "|---|---"
	}
	fmt.Println(head + " |")
	fmt.Println(sep + "|")
	for _, s := range stageRows {
		line := "| " + s.name
		for _, p := range e.phases {
			l := p.stage(s.f)
			line += fmt.Sprintf(" | %s | %s", benchkit.Ms(l.P(50)), benchkit.Ms(l.P(95)))
		}
		fmt.Println(line + " |")
	}
	line := "| └ of which the built-in coder (in process, same transcripts, mean)"
	for _, p := range e.phases {
		line += fmt.Sprintf(" | %s | ", benchkit.Ms(p.coder))
	}
	fmt.Println(line + " |")
	line = fmt.Sprintf("| raw PostgreSQL: the same rows in 4 transactions (%.0f index rows, %.1f KB)", e.rawRows.idx, e.rawRows.content/1e3)
	for _, p := range e.phases {
		line += fmt.Sprintf(" | %s | %s", benchkit.Ms(p.raw.lat.P(50)), benchkit.Ms(p.raw.lat.P(95)))
	}
	fmt.Println(line + " |")
	line = "| **claims per minute** (raw runs per minute)"
	for _, p := range e.phases {
		line += fmt.Sprintf(" | **%.0f** | (%.0f)", p.perMinute(), p.raw.perMinute())
	}
	fmt.Println(line + " |")
	fmt.Printf("\nFirst run after start (the worker builds its coder: code sets and %d vectors): %s, of which the coding stage %s.\n", r.vectors, benchkit.Ms(e.cold), benchkit.Ms(e.coldCoding))
}
