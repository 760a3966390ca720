package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
)

// billy is a running bin/billy serve with its pipeline worker.
type billy struct {
	base      string // FHIR base URL
	pprofAddr string // "" unless profiling
	queue     string
	redisURL  string
	dataDir   string
	cmd       *exec.Cmd
	once      sync.Once
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startBilly runs bin/billy serve (worker on, authorization off) against the benchmark database,
// with a master key, a scratch data directory and a Redis queue of its own, and waits until it is
// ready.
func startBilly(ctx context.Context, o options, dbURL string) (*billy, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	dataDir, err := os.MkdirTemp("", "billybench-coding-data-")
	if err != nil {
		return nil, err
	}
	b := &billy{base: "http://" + addr + "/fhir", queue: "billybench-coding-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		redisURL: o.redisURL, dataDir: dataDir}
	env := append(os.Environ(),
		"BILLY_ADDR="+addr, "BILLY_BASE_URL=http://"+addr, "BILLY_DATABASE_URL="+dbURL, "BILLY_REDIS_URL="+o.redisURL,
		"BILLY_AUTH=none", "BILLY_DEV=1", "BILLY_MASTER_KEY="+base64.StdEncoding.EncodeToString(key), "BILLY_DATA_DIR="+dataDir,
		"BILLY_PIPELINE_QUEUE="+b.queue, "BILLY_WORKER_CONCURRENCY="+strconv.Itoa(o.workerConcurrency), "BILLY_LOG_LEVEL=warn",
		// The built-in coder and embedder: no model, whatever the caller's environment says.
		"BILLY_LLM_URL=", "BILLY_LLM_MODEL=", "BILLY_EMBED_URL=", "BILLY_EMBED_MODEL=")
	if o.profile != "" {
		if b.pprofAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		env = append(env, "BILLY_PPROF_ADDR="+b.pprofAddr)
	}
	b.cmd = exec.CommandContext(ctx, o.billy, "serve")
	b.cmd.Env = env
	b.cmd.Stdout, b.cmd.Stderr = os.Stderr, os.Stderr
	if err := b.cmd.Start(); err != nil {
		os.RemoveAll(dataDir)
		return nil, fmt.Errorf("start %s: %w", o.billy, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return b, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.stop()
	return nil, errors.New("billy did not become ready in 60 s")
}

// stop ends the process, then removes its queue from Redis and its data directory.
func (b *billy) stop() {
	b.once.Do(func() {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		_ = b.cmd.Wait()
		if opt, err := asynq.ParseRedisURI(b.redisURL); err == nil {
			insp := asynq.NewInspector(opt)
			_ = insp.DeleteQueue(b.queue, true)
			insp.Close()
		}
		os.RemoveAll(b.dataDir)
	})
}

// profile writes a CPU profile of the process, taken over d, to path.
func (b *billy) profile(ctx context.Context, d time.Duration, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.pprofAddr, int(d.Seconds())), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: status %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
