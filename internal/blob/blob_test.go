package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iambilly/billy/internal/blob"
	"github.com/iambilly/billy/internal/crypto"
)

func testKeyring(t testing.TB) *crypto.Keyring {
	t.Helper()
	kr, err := crypto.ParseKeyring(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func newStore(t testing.TB) (*blob.FS, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := blob.NewFS(dir, testKeyring(t))
	if err != nil {
		t.Fatalf("NewFS: %v", err)
	}
	return s, dir
}

// randomReader yields an endless deterministic pseudo-random stream without holding it in memory.
type randomReader struct{ r *rand.ChaCha8 }

func newRandomReader(seed byte) *randomReader {
	var s [32]byte
	s[0] = seed
	return &randomReader{r: rand.NewChaCha8(s)}
}

func (rr *randomReader) Read(p []byte) (int, error) { return rr.r.Read(p) }

func TestPutOpenDelete(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := newStore(t)
	for _, n := range []int{0, 1, 1000, 64<<10 + 1, 3 << 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			plain := make([]byte, n)
			io.ReadFull(newRandomReader(byte(n)), plain)
			ref, err := s.Put(ctx, bytes.NewReader(plain))
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if ref.Size != int64(n) || ref.SHA256 != sha256.Sum256(plain) || len(ref.ID) != 32 {
				t.Fatalf("Ref = %+v, want size %d and the plaintext's SHA-256", ref, n)
			}
			if want := fmt.Sprintf("%x", sha256.Sum256(plain)); ref.SHA256Hex() != want {
				t.Errorf("SHA256Hex = %s, want %s", ref.SHA256Hex(), want)
			}

			obj, err := s.Open(ctx, ref.ID)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if obj.Size() != int64(n) {
				t.Errorf("Size = %d, want %d", obj.Size(), n)
			}
			got, err := io.ReadAll(obj)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("ReadAll: err=%v equal=%v", err, bytes.Equal(got, plain))
			}
			if n > 10 {
				// A range, as an HTTP Range request would read it.
				off, ln := int64(n/3), n/2
				part := make([]byte, ln)
				if _, err := obj.ReadAt(part, off); err != nil || !bytes.Equal(part, plain[off:off+int64(ln)]) {
					t.Fatalf("ReadAt(%d, %d): err=%v", ln, off, err)
				}
				if _, err := obj.Seek(-5, io.SeekEnd); err != nil {
					t.Fatal(err)
				}
				tail, _ := io.ReadAll(obj)
				if !bytes.Equal(tail, plain[n-5:]) {
					t.Fatalf("tail after Seek = %x, want %x", tail, plain[n-5:])
				}
			}
			if err := obj.Close(); err != nil {
				t.Fatal(err)
			}

			if err := s.Delete(ctx, ref.ID); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := s.Open(ctx, ref.ID); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("Open after Delete = %v, want ErrNotFound", err)
			}
			if err := s.Delete(ctx, ref.ID); err != nil {
				t.Fatalf("second Delete = %v, want nil", err)
			}
		})
	}
}

func TestInvalidIDs(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	for _, id := range []string{"", "../../../../etc/passwd", strings.Repeat("A", 32), strings.Repeat("0", 31), strings.Repeat("0", 30) + "/x"} {
		if _, err := s.Open(t.Context(), id); !errors.Is(err, blob.ErrInvalidID) {
			t.Errorf("Open(%q) = %v, want ErrInvalidID", id, err)
		}
		if err := s.Delete(t.Context(), id); !errors.Is(err, blob.ErrInvalidID) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidID", id, err)
		}
	}
	if _, err := s.Open(t.Context(), strings.Repeat("0", 32)); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open of a well-formed unknown id = %v, want ErrNotFound", err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	const n = 16
	refs := make([]blob.Ref, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ref, err := s.Put(t.Context(), io.LimitReader(newRandomReader(byte(i)), int64(100_000+i*1000)))
			if err != nil {
				t.Errorf("Put %d: %v", i, err)
			}
			refs[i] = ref
		})
	}
	wg.Wait()
	ids := map[string]bool{}
	for i, ref := range refs {
		if ids[ref.ID] {
			t.Fatalf("id %s issued twice", ref.ID)
		}
		ids[ref.ID] = true
		obj, err := s.Open(t.Context(), ref.ID)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, obj); err != nil {
			t.Fatal(err)
		}
		obj.Close()
		want := sha256.New()
		io.Copy(want, io.LimitReader(newRandomReader(byte(i)), int64(100_000+i*1000)))
		if !bytes.Equal(h.Sum(nil), want.Sum(nil)) || ref.Size != int64(100_000+i*1000) {
			t.Errorf("blob %d reads back different content", i)
		}
	}
}

// failingReader gives n bytes, then fails.
type failingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

func TestFailedPutLeavesNothing(t *testing.T) {
	t.Parallel()
	boom := errors.New("client went away")
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		r    io.Reader
		want error
	}{
		{"reader fails mid-stream", t.Context(), &failingReader{r: newRandomReader(1), n: 300_000, err: boom}, boom},
		{"context canceled", canceled, newRandomReader(2), context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, dir := newStore(t)
			if _, err := s.Put(tt.ctx, tt.r); !errors.Is(err, tt.want) {
				t.Fatalf("Put = %v, want %v", err, tt.want)
			}
			if files := listFiles(t, dir); len(files) != 0 {
				t.Fatalf("failed Put left files: %v", files)
			}
		})
	}
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestStaleTempRemoved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := blob.NewFS(dir, testKeyring(t)); err != nil {
		t.Fatal(err)
	}
	old, fresh := filepath.Join(dir, "tmp", "put-old"), filepath.Join(dir, "tmp", "put-fresh")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	twoDaysAgo := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(old, twoDaysAgo, twoDaysAgo); err != nil {
		t.Fatal(err)
	}
	if _, err := blob.NewFS(dir, testKeyring(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temp file survived: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp file (an upload in progress) was removed: %v", err)
	}
}

func TestOnDiskIsEncrypted(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	probe := []byte("BILLY-PLAINTEXT-PROBE-0123456789") // 32 bytes
	plain := bytes.Repeat(probe, 50_000)                // 1.6 MB, across many segments
	ref, err := s.Put(t.Context(), bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	files := listFiles(t, dir)
	if len(files) != 1 || !strings.HasSuffix(files[0], ref.ID) {
		t.Fatalf("files on disk = %v, want one named %s", files, ref.ID)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// Any 32-byte window of the probe stream, at any alignment.
		for i := range probe {
			w := append(append([]byte{}, probe[i:]...), probe[:i]...)
			if bytes.Contains(b, w) {
				t.Fatalf("%s contains plaintext %q", f, w)
			}
		}
		if int64(len(b)) != crypto.EncryptedSize(ref.Size) {
			t.Errorf("file is %d bytes, want %d", len(b), crypto.EncryptedSize(ref.Size))
		}
	}
}

func TestTamperedOnDisk(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	ref, err := s.Put(t.Context(), io.LimitReader(newRandomReader(3), 200_000))
	if err != nil {
		t.Fatal(err)
	}
	f := listFiles(t, dir)[0]
	b, _ := os.ReadFile(f)
	b[len(b)/2] ^= 1
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	obj, err := s.Open(t.Context(), ref.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if _, err := io.Copy(io.Discard, obj); !errors.Is(err, crypto.ErrCorrupt) {
		t.Fatalf("reading a tampered blob = %v, want crypto.ErrCorrupt", err)
	}
}

// heapSampler records the peak of live heap bytes while it runs.
type heapSampler struct {
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func startHeapSampler() *heapSampler {
	hs := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() {
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > hs.peak.Load() {
			hs.peak.Store(v)
		}
	}
	read()
	go func() {
		defer close(hs.done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-hs.stop:
				read()
				return
			case <-tick.C:
				read()
			}
		}
	}()
	return hs
}

func (hs *heapSampler) Stop() uint64 {
	close(hs.stop)
	<-hs.done
	return hs.peak.Load()
}

// TestLargePutFlatMemory streams 500 MB in and out and checks that the live heap never grows by more
// than a bound that is far below the blob size. Not parallel, so no other test's allocations count.
func TestLargePutFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 500 MB; skipped with -short")
	}
	const size = 500 << 20
	const bound = 64 << 20
	s, _ := newStore(t)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	hs := startHeapSampler()

	want := sha256.New()
	ref, err := s.Put(t.Context(), io.TeeReader(io.LimitReader(newRandomReader(9), size), want))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Open(t.Context(), ref.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, obj)
	obj.Close()
	peak := hs.Stop()
	if err != nil || n != size || ref.Size != size {
		t.Fatalf("read back %d bytes (Ref.Size %d), err=%v; want %d", n, ref.Size, err, size)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) || !bytes.Equal(ref.SHA256[:], want.Sum(nil)) {
		t.Fatal("500 MB blob reads back different content")
	}
	grew := int64(peak) - int64(base.HeapAlloc)
	t.Logf("live heap: %d MiB before, peak %d MiB during a 500 MB put and read (grew %d KiB)",
		base.HeapAlloc>>20, peak>>20, grew>>10)
	if grew > bound {
		t.Fatalf("live heap grew by %d MiB during a 500 MB put/read, want under %d MiB", grew>>20, bound>>20)
	}
}

// BenchmarkPut compares an encrypted Put with writing the same bytes raw to a file in the same
// directory with the same durability (write, fsync, rename, fsync dir). Compare the MB/s of the two.
func BenchmarkPut(b *testing.B) {
	const size = 64 << 20
	plain := make([]byte, size)
	io.ReadFull(newRandomReader(1), plain)
	s, dir := newStore(b)

	b.Run("raw", func(b *testing.B) {
		b.SetBytes(size)
		i := 0
		for b.Loop() {
			i++
			tmp := filepath.Join(dir, "tmp", fmt.Sprintf("raw-%d", i))
			f, err := os.Create(tmp)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(f, bytes.NewReader(plain)); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			final := filepath.Join(dir, "objects", fmt.Sprintf("raw-%d", i))
			if err := os.Rename(tmp, final); err != nil {
				b.Fatal(err)
			}
			d, _ := os.Open(filepath.Join(dir, "objects"))
			d.Sync()
			d.Close()
			b.StopTimer()
			os.Remove(final)
			b.StartTimer()
		}
	})
	b.Run("encrypted", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			ref, err := s.Put(b.Context(), bytes.NewReader(plain))
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			s.Delete(b.Context(), ref.ID)
			b.StartTimer()
		}
	})
}

func ExampleFS() {
	kr, _ := crypto.ParseKeyring("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=") // BILLY_MASTER_KEY
	dir, _ := os.MkdirTemp("", "billy-blobs")                                    // BILLY_DATA_DIR
	defer os.RemoveAll(dir)
	s, err := blob.NewFS(dir, kr)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	ref, _ := s.Put(ctx, strings.NewReader("RIFF... encounter audio"))
	obj, _ := s.Open(ctx, ref.ID)
	defer obj.Close()
	head := make([]byte, 4)
	obj.ReadAt(head, 0)
	fmt.Println(ref.Size, string(head))
	// Output: 23 RIFF
}
