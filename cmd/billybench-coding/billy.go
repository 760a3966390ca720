package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/iambilly/billy/internal/benchkit"
)

// billy is a running bin/billy serve with its pipeline worker.
type billy struct {
	*benchkit.Process
	pprofAddr string // "" unless profiling
	queue     string
	redisURL  string
	dataDir   string
}

// startBilly runs bin/billy serve (worker on, authorization off) against the benchmark database,
// with a master key, a scratch data directory and a Redis queue of its own, and waits until it is
// ready.
func startBilly(ctx context.Context, o options, dbURL string) (*billy, error) {
	key := make([]byte, 32)
	rand.Read(key)
	dataDir, err := os.MkdirTemp("", "billybench-coding-data-")
	if err != nil {
		return nil, err
	}
	b := &billy{queue: "billybench-coding-" + strconv.FormatInt(time.Now().UnixNano(), 36), redisURL: o.redisURL, dataDir: dataDir}
	env := []string{"BILLY_DATABASE_URL=" + dbURL, "BILLY_REDIS_URL=" + o.redisURL,
		"BILLY_MASTER_KEY=" + base64.StdEncoding.EncodeToString(key), "BILLY_DATA_DIR=" + dataDir,
		"BILLY_PIPELINE_QUEUE=" + b.queue, "BILLY_WORKER_CONCURRENCY=" + strconv.Itoa(o.workerConcurrency), "BILLY_LOG_LEVEL=warn",
		// The built-in coder and embedder: no model, whatever the caller's environment says.
		"BILLY_LLM_URL=", "BILLY_LLM_MODEL=", "BILLY_EMBED_URL=", "BILLY_EMBED_MODEL="}
	if o.profile != "" {
		if b.pprofAddr, err = benchkit.FreeAddr(); err != nil {
			os.RemoveAll(dataDir)
			return nil, err
		}
		env = append(env, "BILLY_PPROF_ADDR="+b.pprofAddr)
	}
	if b.Process, err = benchkit.Serve(ctx, o.billy, nil, env); err != nil {
		os.RemoveAll(dataDir)
		return nil, err
	}
	return b, nil
}

// stop ends the process, then removes its queue from Redis and its data directory.
func (b *billy) stop() {
	b.Stop()
	if opt, err := asynq.ParseRedisURI(b.redisURL); err == nil {
		insp := asynq.NewInspector(opt)
		_ = insp.DeleteQueue(b.queue, true)
		insp.Close()
	}
	os.RemoveAll(b.dataDir)
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
