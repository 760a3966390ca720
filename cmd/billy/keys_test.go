package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/iambilly/billy/internal/config"
	"github.com/iambilly/billy/internal/crypto"
)

// hidden is an environment with some variables unset.
type hidden struct {
	config.Lookuper
	keys []string
}

func (h hidden) Lookup(key string) (string, bool) {
	for _, k := range h.keys {
		if k == key {
			return "", false
		}
	}
	return h.Lookuper.Lookup(key)
}

// writeKeyFile replaces the key file atomically, as an operator's tooling would.
func writeKeyFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// blobSegments hashes every blob file without its header: rotation must leave it byte for byte.
func blobSegments(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(filepath.Join(dir, "blobs", "objects"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[d.Name()] = sha256.Sum256(b[crypto.HeaderSize:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var rewrappedRE = regexp.MustCompile(`re-wrapped (\d+) blobs \((\d+) already`)

// TestKeyRotationUnderLoad: while clients download audio and read resources without pause, the
// master key file gets a new key, the server picks it up, billy keys rotate re-wraps every blob
// (in two runs, the first stopped by --max: nothing is re-wrapped twice, no blob's data is
// re-encrypted) and re-seals the signing keys; then the old key is removed, and every blob still
// reads, new processes open the signing keys, and old tokens still verify. No request fails.
func TestKeyRotationUnderLoad(t *testing.T) {
	t.Parallel()
	ln := listen(t)
	base := "http://" + ln.Addr().String()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	k1, k2 := "k1:"+newKey(), "k2:"+newKey()
	writeKeyFile(t, keyFile, k1)
	env := hidden{Lookuper: testEnv(t, "BILLY_BASE_URL", base, "BILLY_DATA_DIR", dir, "BILLY_MASTER_KEY_FILE", keyFile,
		"BILLY_MASTER_KEY_RELOAD", "50ms"), keys: []string{"BILLY_MASTER_KEY"}}
	serveApp(t, env, ln, false)
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(t.Context(), args, env, &out, io.Discard)
		return out.String(), err
	}
	tok, err := cli("dev-token", "--scope", "system/*.cruds")
	if err != nil {
		t.Fatal(err)
	}
	tok = strings.TrimSpace(tok)
	do := func(method, path, ct string, body []byte) (int, []byte, error) {
		req, _ := http.NewRequest(method, base+"/fhir/"+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if ct != "" && method == http.MethodPost {
			req.Header.Set("Content-Type", ct)
		} else if ct != "" {
			req.Header.Set("Accept", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}

	// Twelve recordings, two of them over several segments.
	const blobs = 12
	ids := make([]string, blobs)
	sums := make([][32]byte, blobs)
	for i := range blobs {
		audio := make([]byte, 1000+i*20000)
		rand.Read(audio)
		code, body, err := do(http.MethodPost, "Binary", "audio/wav", audio)
		if err != nil || code != http.StatusCreated {
			t.Fatalf("upload %d: %d %v %.200s", i, code, err, body)
		}
		var b struct{ ID string }
		_ = json.Unmarshal(body, &b)
		ids[i], sums[i] = b.ID, sha256.Sum256(audio)
	}
	code, body, err := do(http.MethodPost, "Patient", "application/fhir+json", []byte(`{"resourceType":"Patient","name":[{"family":"Rotate"}]}`))
	if err != nil || code != http.StatusCreated {
		t.Fatalf("patient: %d %v %s", code, err, body)
	}
	before := blobSegments(t, dir)
	if len(before) != blobs {
		t.Fatalf("%d blob files, want %d", len(before), blobs)
	}

	// The load: downloads and searches, checked, until the end of the test.
	var ok, failed atomic.Int64
	var firstErr sync.Once
	var loadErr error
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				n := i % blobs
				var err error
				if i%3 == 0 {
					code, body, e := do(http.MethodGet, "Patient?name=rotate", "", nil)
					if e != nil || code != http.StatusOK || !strings.Contains(string(body), "Rotate") {
						err = errors.Join(e, errors.New("search: "+strconv.Itoa(code)+" "+string(body)))
					}
				} else {
					code, body, e := do(http.MethodGet, "Binary/"+ids[n], "audio/wav", nil)
					if e != nil || code != http.StatusOK || sha256.Sum256(body) != sums[n] {
						err = errors.Join(e, errors.New("download "+ids[n]+": "+strconv.Itoa(code)))
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.Do(func() { loadErr = err })
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()

	dbURL, _ := env.Lookup("BILLY_DATABASE_URL")
	db, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())

	// New key first; rotate refuses while a live process still writes with the old key (a ghost
	// row here, and the server until it reloads the file).
	writeKeyFile(t, keyFile, k2+","+k1)
	// Its heartbeat is dated ahead so that it stays live however long the rotate command takes to
	// start on a loaded machine (the live window is three reload intervals: short in this test).
	if _, err := db.Exec(t.Context(), `INSERT INTO key_holders (process, current_key, key_ids, seen_at) VALUES ('ghost', 'k1', '{k1}', now() + interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	if _, err := cli("keys", "rotate"); !errors.Is(err, errLaggingProcesses) || !strings.Contains(err.Error(), "ghost (writes with k1)") {
		t.Fatalf("rotate with a process writing with the old key: %v", err)
	}
	if _, err := db.Exec(t.Context(), `DELETE FROM key_holders WHERE process = 'ghost'`); err != nil {
		t.Fatal(err)
	}
	var runs []string
	for deadline := time.Now().Add(time.Minute); ; {
		out, err := cli("keys", "rotate", "--max", "5")
		if err == nil {
			runs = append(runs, out)
			break
		}
		if !errors.Is(err, errLaggingProcesses) || time.Now().After(deadline) {
			t.Fatalf("keys rotate: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 2 {
		out, err := cli("keys", "rotate")
		if err != nil {
			t.Fatalf("keys rotate again: %v", err)
		}
		runs = append(runs, out)
	}
	var counts [][2]int
	for _, out := range runs {
		m := rewrappedRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("rotate output: %s", out)
		}
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[2])
		counts = append(counts, [2]int{a, b})
	}
	// 5, then the other 7 (5 already done), then nothing: each blob re-wrapped exactly once.
	if want := [][2]int{{5, 0}, {blobs - 5, 5}, {0, blobs}}; !equalCounts(counts, want) {
		t.Errorf("rewrapped/already per run %v, want %v\n%s", counts, want, strings.Join(runs, "\n"))
	}
	if !strings.Contains(runs[2], "blobs by master key: k2 12") || !strings.Contains(runs[2], "nothing is under k1 any more") {
		t.Errorf("status after rotation:\n%s", runs[2])
	}
	if !strings.Contains(runs[0], "re-sealed 1 signing keys and 2 secrets") {
		t.Errorf("first run did not re-seal the signing key and the two secrets:\n%s", runs[0])
	}
	after := blobSegments(t, dir)
	for id, sum := range before {
		if after[id] != sum {
			t.Errorf("blob %s: its data changed (re-encrypted), only the header may", id)
		}
	}

	// Remove the old key; wait until the server holds only k2.
	writeKeyFile(t, keyFile, k2)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		var n int
		if err := db.QueryRow(t.Context(), `SELECT count(*) FROM key_holders WHERE key_ids = '{k2}'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not reload the key file")
		}
	}
	for i := range blobs {
		code, body, err := do(http.MethodGet, "Binary/"+ids[i], "audio/wav", nil)
		if err != nil || code != http.StatusOK || sha256.Sum256(body) != sums[i] {
			t.Errorf("blob %d after removing the old key: %d %v", i, code, err)
		}
	}
	// A new process with only the new key opens the signing keys (dev-token signs with them) and
	// the server accepts what it signs, as it still accepts the token signed before the rotation.
	tok2, err := cli("dev-token", "--scope", "system/*.rs")
	if err != nil {
		t.Fatalf("dev-token with only the new key: %v", err)
	}
	for _, tk := range []string{tok, strings.TrimSpace(tok2)} {
		req, _ := http.NewRequest(http.MethodGet, base+"/fhir/Patient?name=rotate", nil)
		req.Header.Set("Authorization", "Bearer "+tk)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("token after rotation: %d", resp.StatusCode)
		}
	}
	stop()
	wg.Wait()
	t.Logf("load during rotation: %d requests, none failed", ok.Load())
	if failed.Load() > 0 || ok.Load() == 0 {
		t.Errorf("load during rotation: %d ok, %d failed; first failure: %v", ok.Load(), failed.Load(), loadErr)
	}
}

func equalCounts(a, b [][2]int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
