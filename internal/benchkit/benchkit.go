// Package benchkit is what Billy's load benchmarks (cmd/billybench*) share: running bin/billy as a
// child process until it is ready, reading FHIR JSON from it, and formatting their reports. Only
// the benchmark commands import it; it must not be used by the server or its tests.
package benchkit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Process is a running `billy serve`.
type Process struct {
	Addr string // host:port it listens on
	Root string // http://host:port
	Base string // the FHIR base, Root + "/fhir"
	cmd  *exec.Cmd
	once sync.Once
}

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Serve starts `bin serve args...` on a free port, with authorization off (BILLY_AUTH=none,
// BILLY_DEV=1) and env added to this process's environment (later entries win), its output on
// stderr, and waits up to a minute until /readyz answers 200.
func Serve(ctx context.Context, bin string, args, env []string) (*Process, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	p := &Process{Addr: addr, Root: "http://" + addr}
	p.Base = p.Root + "/fhir"
	p.cmd = exec.CommandContext(ctx, bin, append([]string{"serve"}, args...)...)
	p.cmd.Env = append(os.Environ(), "BILLY_ADDR="+addr, "BILLY_BASE_URL="+p.Root, "BILLY_AUTH=none", "BILLY_DEV=1")
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = os.Stderr, os.Stderr
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (run make build first): %w", bin, err)
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(p.Root + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
	}
	p.Stop()
	return nil, errors.New("billy did not become ready in a minute")
}

// Stop ends the process (SIGTERM) and waits for it; calling it again does nothing.
func (p *Process) Stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
	})
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// GetJSON reads url as FHIR JSON into into; any status but 200 is an error quoting the body.
func GetJSON(ctx context.Context, c *http.Client, url string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %.300s", url, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// Post sends body to base/typ (Prefer: return=minimal) and returns the id of the created resource,
// read from the Location header; any status but 201 is an error quoting the body.
func Post(ctx context.Context, c *http.Client, base, typ, contentType string, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/"+typ, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Prefer", "return=minimal")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("POST %s: %d %.300s", typ, resp.StatusCode, raw)
	}
	return IDFromLocation(resp.Header.Get("Location"), typ)
}

// IDFromLocation returns the id in a Location header .../typ/id/_history/n.
func IDFromLocation(loc, typ string) (string, error) {
	_, rest, ok := strings.Cut(loc, "/"+typ+"/")
	id, _, _ := strings.Cut(rest, "/")
	if !ok || id == "" {
		return "", fmt.Errorf("POST %s: Location %q", typ, loc)
	}
	return id, nil
}

// Task is the part of a FHIR Task the benchmarks read.
type Task struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	AuthoredOn string `json:"authoredOn"`
	Meta       struct {
		LastUpdated string `json:"lastUpdated"`
	} `json:"meta"`
	StatusReason struct {
		Text string `json:"text"`
	} `json:"statusReason"`
	Note   []any `json:"note"`
	Output []any `json:"output"`
}

// Final reports whether the Task has reached an end state.
func (t Task) Final() bool {
	switch t.Status {
	case "completed", "failed", "cancelled", "rejected":
		return true
	}
	return false
}

// Run is a pipeline run as FollowTask saw it.
type Run struct {
	Task Task      // its final version
	Seen time.Time // when a read first found it final (client clock)
	// Server stamps: authoredOn, and the oldest version in each status (a retried stage adds
	// versions).
	Authored, Requested, InProgress, Completed time.Time
}

// FollowTask finds the one Task with focus (a reference) and code (the run's Task, written in the
// focus's transaction, so the first search finds it), reads it every poll until it is final, then
// reads its history. A run that did not complete, or whose history lacks an in-progress or a
// completed version, is an error.
func FollowTask(ctx context.Context, c *http.Client, base, focus, code string, poll time.Duration) (Run, error) {
	var run Run
	var found struct {
		Entry []struct {
			Resource Task `json:"resource"`
		} `json:"entry"`
	}
	if err := GetJSON(ctx, c, base+"/Task?focus="+url.QueryEscape(focus)+"&code="+url.QueryEscape(code), &found); err != nil {
		return run, err
	}
	if len(found.Entry) != 1 {
		return run, fmt.Errorf("%d %s Tasks for %s, want 1", len(found.Entry), code, focus)
	}
	t := found.Entry[0].Resource
	for !t.Final() {
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-time.After(poll):
		}
		if err := GetJSON(ctx, c, base+"/Task/"+t.ID, &t); err != nil {
			return run, err
		}
	}
	run.Seen, run.Task = time.Now(), t
	if t.Status != "completed" {
		return run, fmt.Errorf("Task/%s %s: %s %v", t.ID, t.Status, t.StatusReason.Text, t.Note)
	}
	var hist struct {
		Entry []struct {
			Resource *Task `json:"resource"`
		} `json:"entry"`
	}
	if err := GetJSON(ctx, c, base+"/Task/"+t.ID+"/_history", &hist); err != nil {
		return run, err
	}
	var err error
	if run.Authored, err = time.Parse(time.RFC3339Nano, t.AuthoredOn); err != nil {
		return run, fmt.Errorf("Task/%s authoredOn %q: %w", t.ID, t.AuthoredOn, err)
	}
	for _, e := range hist.Entry { // newest first: the oldest version of a status wins
		if e.Resource == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, e.Resource.Meta.LastUpdated)
		if err != nil {
			return run, fmt.Errorf("Task/%s meta.lastUpdated %q: %w", t.ID, e.Resource.Meta.LastUpdated, err)
		}
		switch e.Resource.Status {
		case "requested":
			run.Requested = at
		case "in-progress":
			run.InProgress = at
		case "completed":
			run.Completed = at
		}
	}
	if run.InProgress.IsZero() || run.Completed.IsZero() {
		return run, fmt.Errorf("Task/%s: its history lacks an in-progress or a completed version", t.ID)
	}
	return run, nil
}

// AdminURL is the PostgreSQL server the benchmarks create their databases on by default:
// $BILLY_BENCH_DATABASE_URL, else the local one.
func AdminURL() string {
	return envOr("BILLY_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
}

// RedisURL is the Redis the benchmarks' Billy processes use by default: $BILLY_BENCH_REDIS_URL, else
// database 14 of the local one.
func RedisURL() string { return envOr("BILLY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14") }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// FreshDatabase drops the database name (closing its sessions) and creates it empty on the server
// of adminURL, and returns adminURL pointed at it.
func FreshDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// Latencies are request or run durations.
type Latencies []time.Duration

// P is the pct-th percentile (nearest rank below), 0 when empty.
func (l Latencies) P(pct float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*pct/100)]
}

// Mean is the average, 0 when empty.
func (l Latencies) Mean() time.Duration {
	if len(l) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	return sum / time.Duration(len(l))
}

// Mark is ✔ or ✘.
func Mark(ok bool) string {
	if ok {
		return "✔"
	}
	return "✘"
}

// Ms formats a latency with two or three significant digits: "1.25 s", "38 ms", "4.2 ms", "0.35 ms".
func Ms(d time.Duration) string {
	switch {
	case d >= 999500*time.Microsecond: // what %.0f ms would print as 1000 ms
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
}

// Row is one line of a benchmark's report: what was measured, its rate, and notes.
type Row [3]string

// PrintRows writes rows as a Markdown table (markdown) or as aligned text, the measure column
// width wide.
func PrintRows(w io.Writer, rows []Row, markdown bool, width int) {
	if markdown {
		fmt.Fprintln(w, "| measure | rate | notes |\n|---|---|---|")
		for _, r := range rows {
			fmt.Fprintf(w, "| %s | %s | %s |\n", r[0], r[1], r[2])
		}
		return
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s %18s  %s\n", width, r[0], r[1], r[2])
	}
}
