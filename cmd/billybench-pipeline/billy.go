package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/iambilly/billy/internal/benchkit"
)

// billyConfig is what every Billy process of a run shares.
type billyConfig struct {
	bin, dbURL, redisURL, dataDir, sttURL, queue string
	concurrency                                  int
	maxBinary                                    int64
	masterKey                                    string
}

// newMasterKey makes a BILLY_MASTER_KEY for the run; all its Billy processes share it, so that each
// could read what another stored.
func newMasterKey() string {
	key := make([]byte, 32)
	rand.Read(key)
	return base64.StdEncoding.EncodeToString(key)
}

// startBilly runs bin/billy serve, with its worker, on a free port and waits until it is ready.
func startBilly(ctx context.Context, cfg billyConfig) (*benchkit.Process, error) {
	return benchkit.Serve(ctx, cfg.bin, nil, []string{
		"BILLY_DATABASE_URL=" + cfg.dbURL, "BILLY_REDIS_URL=" + cfg.redisURL,
		"BILLY_MASTER_KEY=" + cfg.masterKey, "BILLY_DATA_DIR=" + cfg.dataDir,
		"BILLY_PIPELINE_QUEUE=" + cfg.queue, "BILLY_STT_URL=" + cfg.sttURL, "BILLY_WORKER_CONCURRENCY=" + strconv.Itoa(cfg.concurrency),
		"BILLY_MAX_BINARY_BYTES=" + strconv.FormatInt(cfg.maxBinary, 10),
		// Quiet: the benchmark reads each run from its Task.
		"BILLY_LOG_LEVEL=error"})
}

// procStatus reads fields of /proc/PID/status given in kB, as bytes.
func procStatus(pid int, fields ...string) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		for _, want := range fields {
			if k == want {
				n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("/proc/%d/status %s: %q", pid, k, v)
				}
				out[k] = n << 10
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, want := range fields {
		if _, ok := out[want]; !ok {
			return nil, fmt.Errorf("/proc/%d/status has no %s", pid, want)
		}
	}
	return out, nil
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux ≥ 4.0).
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// dropQueue removes the run's queue from Redis once Billy has stopped, so that runs leave nothing
// behind in the shared Redis database.
func dropQueue(redisURL, queue string) {
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		return
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	_ = insp.DeleteQueue(queue, true)
}

// queueIdle waits until the run's queue has nothing pending, active or waiting to be retried, so
// that one phase's leftover stages (each run's coding Task) do not land in the next.
func queueIdle(ctx context.Context, redisURL, queue string, timeout time.Duration) error {
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		return err
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	deadline := time.Now().Add(timeout)
	for {
		q, err := insp.GetQueueInfo(queue)
		if err == nil && q.Pending+q.Active+q.Retry+q.Scheduled == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("queue %s: %w", queue, err)
			}
			return fmt.Errorf("queue %s still busy after %s: %d pending, %d active, %d retry", queue, timeout, q.Pending, q.Active, q.Retry)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
