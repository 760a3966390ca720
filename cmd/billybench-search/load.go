package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ingestResult is the rate at which Billy created (and indexed) the copies.
type ingestResult struct {
	resources    int
	elapsed      time.Duration
	early        int           // resources in the first window, on the (nearly) empty database
	earlyElapsed time.Duration // time to complete the first window
}

func (r ingestResult) rate() float64 { return float64(r.resources) / r.elapsed.Seconds() }

func (r ingestResult) earlyRate() float64 { return float64(r.early) / r.earlyElapsed.Seconds() }

// ingest posts copies of the corpus, copy after copy, as transaction Bundles with
// Prefer: return=minimal on o.writers connections. It records when the first 100,000 resources (or
// half of them, for a small load) are in, so that the rate on an empty database can be told from
// the rate as the indexes grow.
func ingest(ctx context.Context, base string, c *corpus, copies int, o options) (ingestResult, error) {
	total := copies * c.resources
	res := ingestResult{resources: total, early: min(100_000, total/2)}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: o.writers, MaxIdleConnsPerHost: o.writers, MaxConnsPerHost: o.writers}, Timeout: 5 * time.Minute}
	bufs := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	var done atomic.Int64
	var earlyOnce sync.Once
	start := time.Now()

	progressCtx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	go func() {
		tick := time.NewTicker(15 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-progressCtx.Done():
				return
			case <-tick.C:
				n := done.Load()
				fmt.Fprintf(os.Stderr, "  loaded %d of %d resources (%.0f/s)\n", n, total, float64(n)/time.Since(start).Seconds())
			}
		}
	}()

	jobs := copies * len(c.bundles)
	elapsed, err := parallel(o.writers, jobs, func(j int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, b := j/len(c.bundles), j%len(c.bundles)
		buf := bufs.Get().(*bytes.Buffer)
		defer bufs.Put(buf)
		buf.Reset()
		c.write(buf, n, b)
		created, err := postTransaction(ctx, client, base, buf.Bytes())
		if err != nil {
			return fmt.Errorf("copy %d of %s: %w", n, c.bundles[b].file, err)
		}
		if want := c.bundles[b].resources; created != want {
			return fmt.Errorf("copy %d of %s: %d entries created, want %d", n, c.bundles[b].file, created, want)
		}
		if done.Add(int64(created)) >= int64(res.early) {
			earlyOnce.Do(func() { res.earlyElapsed = time.Since(start) })
		}
		return nil
	})
	res.elapsed = elapsed
	return res, err
}

// postTransaction posts one transaction Bundle and returns how many entries it created.
func postTransaction(ctx context.Context, client *http.Client, base string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Prefer", "return=minimal")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d: %.500s", resp.StatusCode, out)
	}
	var b struct {
		Entry []struct {
			Response struct {
				Status string `json:"status"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(out, &b); err != nil {
		return 0, fmt.Errorf("transaction response: %w", err)
	}
	created := 0
	for _, e := range b.Entry {
		if strings.HasPrefix(e.Response.Status, "201") {
			created++
		}
	}
	return created, nil
}

// parallel runs fn on workers goroutines over job indexes [0, jobs) and returns the elapsed time.
// The first error stops the remaining jobs: a load of a million resources should not carry on for
// minutes after it has failed.
func parallel(workers, jobs int, fn func(job int) error) (time.Duration, error) {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(next.Add(1) - 1)
				if j >= jobs {
					return
				}
				if err := fn(j); err != nil {
					once.Do(func() { firstErr = err })
					next.Store(int64(jobs))
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), firstErr
}
