// Package benchkit is what Billy's load benchmarks (cmd/billybench*) share: running bin/billy as a
// child process until it is ready, reading FHIR JSON from it, and formatting their reports. Only
// the benchmark commands import it; it must not be used by the server or its tests.
package benchkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
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
