// Command billybench-emr measures the EMR adapters through bin/billy:
//
//   - FHIR sync: a second Billy acting as the EMR (SMART authorization on, a Backend Services client
//     registered with the adapter's key) holds N encounters with their patients (one per four
//     encounters) and coverages; `billy emr sync` pulls them all into a fresh Billy. Encounters/s
//     and the sync process's peak RSS at each size (it must stay flat as N doubles), against raw
//     PostgreSQL inserts of the same JSON (100 rows a transaction, as the sync commits a page).
//
//   - MLLP: `billy serve` with BILLY_MLLP_ADDR, 4 connections each sending ADT^A04 (new patient and
//     encounter) and waiting for each ACK (sent after the commit): messages/s and ACK latency, against
//     raw PostgreSQL inserts of the same two resources, one transaction per message, 4 connections.
//
//     go run ./cmd/billybench-emr [-sizes 5000,10000] [-mllp 4000] [-markdown]
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/adapters/hl7v2"
	"github.com/iambilly/billy/internal/benchkit"
)

const masterKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "billybench-emr:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	sizes := flag.String("sizes", "5000,10000", "encounters synced, ascending; the peak RSS of each is compared")
	mllpN := flag.Int("mllp", 4000, "ADT^A04 messages sent over MLLP (4 connections)")
	bin := flag.String("bin", "bin/billy", "the billy binary")
	markdown := flag.Bool("markdown", false, "print a Markdown table")
	flag.Parse()
	var rows []benchkit.Row
	var rss []int64
	var ns []int
	for _, s := range strings.Split(*sizes, ",") {
		if s == "" {
			continue // -sizes "": MLLP only
		}
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 4 {
			return fmt.Errorf("-sizes: %q", s)
		}
		r, peak, err := syncRun(ctx, *bin, n)
		if err != nil {
			return fmt.Errorf("sync of %d encounters: %w", n, err)
		}
		rows = append(rows, r...)
		rss, ns = append(rss, peak), append(ns, n)
	}
	for i := 1; i < len(rss); i++ {
		ok := float64(rss[i]) <= 1.25*float64(rss[i-1])
		rows = append(rows, benchkit.Row{fmt.Sprintf("sync peak RSS %d → %d encounters", ns[i-1], ns[i]), fmt.Sprintf("%.2f×", float64(rss[i])/float64(rss[i-1])), benchkit.Mark(ok) + " flat: ≤ 1.25× when the size doubles"})
	}
	if *mllpN > 0 {
		r, err := mllpRun(ctx, *bin, *mllpN)
		if err != nil {
			return fmt.Errorf("mllp: %w", err)
		}
		rows = append(rows, r...)
	}
	benchkit.PrintRows(os.Stdout, rows, *markdown, 45)
	return nil
}

func env(dbURL, dataDir, queue string) []string {
	return []string{"BILLY_DATABASE_URL=" + dbURL, "BILLY_REDIS_URL=" + benchkit.RedisURL(), "BILLY_LOG_LEVEL=warn",
		"BILLY_MASTER_KEY=" + masterKey, "BILLY_DATA_DIR=" + dataDir, "BILLY_PIPELINE_QUEUE=" + queue, "BILLY_EMR_SYNC_INTERVAL=0"}
}

// billy runs a billy command with env and returns its stdout and the rusage.
func billy(ctx context.Context, bin string, envv []string, args ...string) (string, *syscall.Rusage, time.Duration, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), envv...)
	var out bytes.Buffer
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return out.String(), nil, took, fmt.Errorf("billy %s: %w: %s %s", strings.Join(args[:min(2, len(args))], " "), err, out.String(), tail(errb.String()))
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return out.String(), ru, took, nil
}

func syncRun(ctx context.Context, bin string, n int) ([]benchkit.Row, int64, error) {
	dir, err := os.MkdirTemp("", "billybench-emr-")
	if err != nil {
		return nil, 0, err
	}
	defer os.RemoveAll(dir)
	ehrDB, err := benchkit.FreshDatabase(ctx, benchkit.AdminURL(), "billy_bench_emr_ehr")
	if err != nil {
		return nil, 0, err
	}
	billyDB, err := benchkit.FreshDatabase(ctx, benchkit.AdminURL(), "billy_bench_emr_billy")
	if err != nil {
		return nil, 0, err
	}
	stamp := strconv.FormatInt(time.Now().UnixNano(), 36)
	addr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, 0, err
	}
	ehrEnv := append(env(ehrDB, filepath.Join(dir, "ehr"), "bench-emr-ehr-"+stamp), "BILLY_AUTH=smart", "BILLY_BASE_URL=http://"+addr)
	ehr, err := serveAt(ctx, bin, addr, ehrEnv)
	if err != nil {
		return nil, 0, err
	}
	defer ehr.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	tok, _, _, err := billy(ctx, bin, ehrEnv, "dev-token", "--scope", "system/*.cruds", "--client", "bench")
	if err != nil {
		return nil, 0, err
	}
	token := strings.TrimSpace(tok)
	fmt.Fprintf(os.Stderr, "loading %d encounters into the EHR...\n", n)
	if err := loadEHR(ctx, "http://"+addr+"/fhir", token, n); err != nil {
		return nil, 0, err
	}
	keyFile, jwksFile, err := writeKey(dir)
	if err != nil {
		return nil, 0, err
	}
	out, _, _, err := billy(ctx, bin, ehrEnv, "clients", "create", "--name", "Billy", "--type", "confidential-asymmetric", "--jwks", jwksFile, "--alg", "ES384",
		"--scope", "system/Patient.rs system/Encounter.rs system/Coverage.rs system/Practitioner.rs system/PractitionerRole.rs system/Organization.rs system/Location.rs system/DocumentReference.crs")
	if err != nil {
		return nil, 0, err
	}
	clientID := strings.Fields(strings.TrimPrefix(strings.TrimSpace(out), "client_id: "))[0]
	billyEnv := env(billyDB, filepath.Join(dir, "billy"), "bench-emr-billy-"+stamp)
	if _, _, _, err := billy(ctx, bin, billyEnv, "emr", "add", "ehr", "--base", "http://"+addr+"/fhir", "--client-id", clientID, "--key", keyFile); err != nil {
		return nil, 0, err
	}
	fmt.Fprintf(os.Stderr, "syncing...\n")
	out, ru, took, err := billy(ctx, bin, billyEnv, "emr", "sync", "ehr")
	if err != nil {
		return nil, 0, err
	}
	resources := n + n/4*2 + 1
	if !strings.Contains(out, fmt.Sprintf("created %d,", resources)) {
		return nil, 0, fmt.Errorf("sync created the wrong count (want %d): %s", resources, out)
	}
	peak := ru.Maxrss // kB on Linux
	// Raw baseline: the same number of JSON rows, 100 per transaction.
	rawRate, err := rawInserts(ctx, billyDB, resources, 100, 1)
	if err != nil {
		return nil, 0, err
	}
	encRate := float64(n) / took.Seconds()
	resRate := float64(resources) / took.Seconds()
	return []benchkit.Row{{fmt.Sprintf("FHIR sync, %d encounters (%d resources)", n, resources), fmt.Sprintf("%.0f enc/s", encRate),
		fmt.Sprintf("%s; %.0f resources/s; raw INSERT %.0f rows/s (ratio %.2f); sync peak RSS %d MB", took.Round(time.Millisecond), resRate, rawRate, resRate/rawRate, peak>>10)}}, peak, nil
}

func serveAt(ctx context.Context, bin, addr string, envv []string) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, bin, "serve", "--worker=false")
	cmd.Env = append(os.Environ(), append(envv, "BILLY_ADDR="+addr)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (run make build first): %w", bin, err)
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, nil
			}
		}
	}
	_ = cmd.Process.Kill()
	return nil, errors.New("billy did not become ready in a minute")
}

// loadEHR posts transaction Bundles: per patient, the patient, a coverage and four encounters.
func loadEHR(ctx context.Context, base, token string, n int) error {
	org := map[string]any{"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001", "resource": map[string]any{"resourceType": "Organization", "name": "Payer"},
		"request": map[string]any{"method": "POST", "url": "Organization"}}
	orgRef := ""
	const perBundle = 100 // patients
	patients := n / 4
	for start := 0; start < patients; start += perBundle {
		var entries []any
		if orgRef == "" {
			entries = append(entries, org)
		}
		for i := start; i < min(start+perBundle, patients); i++ {
			pu := fmt.Sprintf("urn:uuid:%08x-0000-4000-8000-%012x", i, 2)
			entries = append(entries, map[string]any{"fullUrl": pu, "resource": map[string]any{"resourceType": "Patient",
				"identifier": []any{map[string]any{"system": "urn:ehr:mrn", "value": fmt.Sprintf("M%d", i)}},
				"name":       []any{map[string]any{"family": fmt.Sprintf("Family%d", i), "given": []any{"Pat"}}}, "gender": "female", "birthDate": "1980-02-03"},
				"request": map[string]any{"method": "POST", "url": "Patient"}})
			payor := orgRef
			if payor == "" {
				payor = "urn:uuid:00000000-0000-4000-8000-000000000001"
			}
			entries = append(entries, map[string]any{"resource": map[string]any{"resourceType": "Coverage", "status": "active",
				"beneficiary": map[string]any{"reference": pu}, "payor": []any{map[string]any{"reference": payor}}, "subscriberId": fmt.Sprintf("S%d", i)},
				"request": map[string]any{"method": "POST", "url": "Coverage"}})
			for range 4 {
				entries = append(entries, map[string]any{"resource": map[string]any{"resourceType": "Encounter", "status": "finished",
					"class":   map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
					"subject": map[string]any{"reference": pu}, "period": map[string]any{"start": "2026-01-05T10:00:00Z", "end": "2026-01-05T10:30:00Z"}},
					"request": map[string]any{"method": "POST", "url": "Encounter"}})
			}
		}
		body, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		rb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("load: %d %s", resp.StatusCode, rb[:min(len(rb), 500)])
		}
		if orgRef == "" {
			var b struct {
				Entry []struct{ Response struct{ Location string } }
			}
			_ = json.Unmarshal(rb, &b)
			loc := b.Entry[0].Response.Location
			parts := strings.Split(loc, "/")
			for i, p := range parts {
				if p == "Organization" && i+1 < len(parts) {
					orgRef = "Organization/" + parts[i+1]
				}
			}
		}
	}
	return nil
}

func writeKey(dir string) (keyFile, jwksFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile, jwksFile = filepath.Join(dir, "key.pem"), filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	// The kid is the RFC 7638 thumbprint, as billy emr add names the key.
	jwk := jose.JSONWebKey{Key: key.Public(), Algorithm: "ES384", Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", "", err
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	jb, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	return keyFile, jwksFile, os.WriteFile(jwksFile, jb, 0o600)
}

// rawInserts inserts rows of a resource's size into a scratch table, perTx rows a transaction, on
// conns connections, and returns rows/s.
func rawInserts(ctx context.Context, dbURL string, rows, perTx, conns int) (float64, error) {
	setup, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer setup.Close(ctx)
	if _, err := setup.Exec(ctx, `DROP TABLE IF EXISTS bench_raw; CREATE TABLE bench_raw (id text PRIMARY KEY, content jsonb NOT NULL)`); err != nil {
		return 0, err
	}
	content := `{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/0b6f1c2e-6d7a-5e2b-9a53-1b0d3c6e9e11"},"identifier":[{"system":"urn:billy:emr:ehr","value":"123"}]}`
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := time.Now()
	per := rows / conns
	for c := range conns {
		wg.Go(func() {
			conn, err := pgx.Connect(ctx, dbURL)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			for i := 0; i < per; i += perTx {
				batch := &pgx.Batch{}
				for j := i; j < min(i+perTx, per); j++ {
					batch.Queue(`INSERT INTO bench_raw (id, content) VALUES ($1, $2)`, fmt.Sprintf("%d-%d", c, j), content)
				}
				tx, err := conn.Begin(ctx)
				if err != nil {
					errs <- err
					return
				}
				if err := tx.SendBatch(ctx, batch).Close(); err != nil {
					errs <- err
					return
				}
				if err := tx.Commit(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	_, _ = setup.Exec(ctx, `DROP TABLE bench_raw`)
	return float64(per*conns) / took.Seconds(), nil
}

func mllpRun(ctx context.Context, bin string, n int) ([]benchkit.Row, error) {
	dir, err := os.MkdirTemp("", "billybench-emr-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	dbURL, err := benchkit.FreshDatabase(ctx, benchkit.AdminURL(), "billy_bench_emr_mllp")
	if err != nil {
		return nil, err
	}
	mllpAddr, err := benchkit.FreeAddr()
	if err != nil {
		return nil, err
	}
	p, err := benchkit.Serve(ctx, bin, []string{"--worker=false"}, append(env(dbURL, dir, "bench-emr-mllp-"+strconv.FormatInt(time.Now().UnixNano(), 36)), "BILLY_MLLP_ADDR="+mllpAddr))
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	const conns = 4
	lat := make([]benchkit.Latencies, conns)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	// A warm-up message per connection, not timed.
	send := func(c net.Conn, r *bufio.Reader, id string) (time.Duration, error) {
		msg := fmt.Sprintf("MSH|^~\\&|BENCH|HOSP|BILLY|BILL|20260301120000||ADT^A04^ADT_A01|%s|P|2.5.1\rEVN|A04|20260301120000\r"+
			"PID|1||%s^^^HOSP^MR||Family%s^Pat||19800203|F|||1 Main St^^Springfield^IL^62701||555-0100\r"+
			"%s\r", id, id, id, pv1(id))
		start := time.Now()
		if _, err := c.Write(hl7v2.Frame([]byte(msg))); err != nil {
			return 0, err
		}
		raw, err := hl7v2.ReadFrame(r)
		if err != nil {
			return 0, err
		}
		d := time.Since(start)
		if !bytes.Contains(raw, []byte("MSA|AA|"+id)) {
			return 0, fmt.Errorf("not AA: %q", raw)
		}
		return d, nil
	}
	var start time.Time
	ready := make(chan struct{})
	cpu0 := cpuTime(p.Pid())
	for ci := range conns {
		c, err := net.Dial("tcp", mllpAddr)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		r := bufio.NewReader(c)
		if _, err := send(c, r, fmt.Sprintf("W%d", ci)); err != nil {
			return nil, err
		}
		wg.Go(func() {
			<-ready
			for i := range n / conns {
				d, err := send(c, r, fmt.Sprintf("B%d-%d", ci, i))
				if err != nil {
					errs <- err
					return
				}
				lat[ci] = append(lat[ci], d)
			}
		})
	}
	start = time.Now()
	close(ready)
	wg.Wait()
	took := time.Since(start)
	cpu := cpuTime(p.Pid()) - cpu0
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	var all benchkit.Latencies
	for _, l := range lat {
		all = append(all, l...)
	}
	rate := float64(len(all)) / took.Seconds()
	// Raw: the same two resources per message, one transaction per message, 4 connections.
	rawRate, err := rawInserts(ctx, dbURL, 2*len(all), 2, conns)
	if err != nil {
		return nil, err
	}
	rawMsgs := rawRate / 2
	return []benchkit.Row{
		{fmt.Sprintf("MLLP ADT^A04, %d messages, 4 connections", len(all)), fmt.Sprintf("%.0f msg/s", rate),
			fmt.Sprintf("%s ≥ 500 msg/s; raw INSERT of 2 rows a transaction %.0f msg/s (ratio %.2f)", benchkit.Mark(rate >= 500), rawMsgs, rate/rawMsgs)},
		{"MLLP server CPU per message (billy process, user+sys)", benchkit.Ms(cpu / time.Duration(len(all))),
			fmt.Sprintf("%.0f%% of one core over the run; load average %s", 100*cpu.Seconds()/took.Seconds(), loadAvg())},
		{"MLLP ACK latency (after commit)", "p99 " + benchkit.Ms(all.P(99)), fmt.Sprintf("%s < 50 ms; p50 %s, mean %s", benchkit.Mark(all.P(99) < 50*time.Millisecond), benchkit.Ms(all.P(50)), benchkit.Ms(all.Mean()))},
	}, nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

// pv1 is an outpatient visit: class O, attending doctor, visit number, admit time.
func pv1(id string) string {
	f := make([]string, 45)
	f[0], f[1], f[2], f[3], f[7], f[19], f[44] = "PV1", "1", "O", "CLINIC^1^1", "1234^House^Gregory", "V"+id+"^^^HOSP^VN", "20260301113000"
	return strings.Join(f, "|")
}

// cpuTime is the user+system CPU time of a process (from /proc; 0 when unreadable).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+2:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * time.Second / 100 // USER_HZ
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
