package crypto

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// key returns a deterministic 32-byte key for tests, base64-encoded.
func key(seed byte) string {
	b := make([]byte, KeySize)
	for i := range b {
		b[i] = seed + byte(i)*7
	}
	return base64.StdEncoding.EncodeToString(b)
}

func mustKeyring(t testing.TB, s string) *Keyring {
	t.Helper()
	kr, err := ParseKeyring(s)
	if err != nil {
		t.Fatalf("ParseKeyring: %v", err)
	}
	return kr
}

// data returns n pseudo-random bytes, the same for the same seed.
func data(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func encrypt(t testing.TB, plain []byte, kr *Keyring) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, kr)
	if _, err := w.Write(plain); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

// decryptAll opens ct and reads it to the end; any error is returned.
func decryptAll(ct []byte, kr *Keyring) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(ct), int64(len(ct)), kr)
	if err != nil {
		return nil, err
	}
	got, err := io.ReadAll(r)
	if err != nil {
		return got, err
	}
	if int64(len(got)) != r.Size() {
		return got, fmt.Errorf("read %d bytes, Size says %d", len(got), r.Size())
	}
	return got, nil
}

func TestParseKeyring(t *testing.T) {
	t.Parallel()
	k1, k2 := key(1), key(2)
	raw1, _ := base64.StdEncoding.DecodeString(k1)
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))
	tests := []struct {
		name        string
		in          string
		wantCurrent string
		wantIDs     []string
		wantErr     string // substring; empty means success
	}{
		{name: "single key, derived id", in: k1, wantCurrent: KeyID(raw1), wantIDs: []string{KeyID(raw1)}},
		{name: "surrounding spaces", in: "  " + k1 + "\n", wantCurrent: KeyID(raw1), wantIDs: []string{KeyID(raw1)}},
		{name: "unpadded base64", in: strings.TrimRight(k1, "="), wantCurrent: KeyID(raw1), wantIDs: []string{KeyID(raw1)}},
		{name: "list, first is current", in: "k2:" + k2 + ",k1:" + k1, wantCurrent: "k2", wantIDs: []string{"k2", "k1"}},
		{name: "list with a bare old key", in: "k2:" + k2 + ", " + k1, wantCurrent: "k2", wantIDs: []string{"k2", KeyID(raw1)}},
		{name: "empty", in: " ", wantErr: "empty"},
		{name: "bad base64", in: "not*base64!", wantErr: "entry 1: not valid base64"},
		{name: "wrong length", in: short, wantErr: "decodes to 16 bytes, want 32"},
		{name: "wrong length in list", in: "k2:" + k2 + ",k1:" + short, wantErr: "entry 2: decodes to 16 bytes"},
		{name: "empty entry", in: "k2:" + k2 + ",", wantErr: "entry 2 is empty"},
		{name: "missing key after id", in: "k2:", wantErr: "no key after the id"},
		{name: "duplicate id", in: "a:" + k1 + ",a:" + k2, wantErr: `key id "a" appears twice`},
		{name: "bad id", in: "a b:" + k1, wantErr: "want only letters"},
		{name: "id too long", in: strings.Repeat("x", 33) + ":" + k1, wantErr: "want 1 to 32 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kr, err := ParseKeyring(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseKeyring(%q) = %v, want error containing %q", tt.in, kr, tt.wantErr)
				}
				if !errors.Is(err, ErrKeyring) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q: want ErrKeyring containing %q", err, tt.wantErr)
				}
				for _, secret := range []string{k1, k2, strings.TrimRight(k1, "=")} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error %q contains key material", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKeyring: %v", err)
			}
			if kr.Current() != tt.wantCurrent {
				t.Errorf("Current = %q, want %q", kr.Current(), tt.wantCurrent)
			}
			if got := strings.Join(kr.IDs(), ","); got != strings.Join(tt.wantIDs, ",") {
				t.Errorf("IDs = %s, want %v", got, tt.wantIDs)
			}
			for _, s := range []string{kr.String(), fmt.Sprintf("%v %+v %#v", kr, kr, kr)} {
				if strings.Contains(s, k1) || strings.Contains(s, k2) {
					t.Errorf("formatted keyring %q shows a key", s)
				}
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, key(1))
	sizes := []int{0, 1, 15, 16, 17, SegmentSize - 1, SegmentSize, SegmentSize + 1, 2 * SegmentSize,
		3*SegmentSize + 7, 5<<20 + 3}
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			plain := data(n, uint64(n))
			ct := encrypt(t, plain, kr)
			if int64(len(ct)) != EncryptedSize(int64(n)) {
				t.Errorf("ciphertext is %d bytes, EncryptedSize says %d", len(ct), EncryptedSize(int64(n)))
			}
			got, err := decryptAll(ct, kr)
			if err != nil {
				t.Fatalf("decrypt: %v", err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("round trip of %d bytes differs", n)
			}

			// The same through io.Copy (ReadFrom) in odd-sized pieces.
			var buf bytes.Buffer
			w := NewWriter(&buf, kr)
			if _, err := io.Copy(w, io.LimitReader(&oddReader{b: plain}, int64(n))); err != nil {
				t.Fatalf("io.Copy: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			got, err = decryptAll(buf.Bytes(), kr)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("ReadFrom round trip of %d bytes: err=%v equal=%v", n, err, bytes.Equal(got, plain))
			}
		})
	}
}

// oddReader returns its bytes in pieces of varying, awkward sizes.
type oddReader struct {
	b []byte
	i int
}

func (o *oddReader) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, io.EOF
	}
	o.i++
	n := min(len(p), len(o.b), 1+(o.i*7919)%(SegmentSize+13))
	copy(p, o.b[:n])
	o.b = o.b[n:]
	return n, nil
}

func TestRandomAccess(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, key(1))
	plain := data(3*SegmentSize+12345, 7)
	ct := encrypt(t, plain, kr)
	r, err := NewReader(bytes.NewReader(ct), int64(len(ct)), kr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != int64(len(plain)) {
		t.Fatalf("Size = %d, want %d", r.Size(), len(plain))
	}

	t.Run("ReadAt", func(t *testing.T) {
		t.Parallel()
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 1))
				for range 200 {
					off := rng.Int64N(int64(len(plain)) + 10)
					n := rng.IntN(2*SegmentSize + 3)
					p := make([]byte, n)
					got, err := r.ReadAt(p, off)
					want := 0
					if off < int64(len(plain)) {
						want = copy(make([]byte, n), plain[off:])
					}
					if got != want {
						t.Errorf("ReadAt(%d bytes at %d) = %d, want %d", n, off, got, want)
						return
					}
					if want < n && err != io.EOF {
						t.Errorf("ReadAt short read at %d: err = %v, want io.EOF", off, err)
					}
					if want == n && err != nil {
						t.Errorf("ReadAt full read at %d: err = %v", off, err)
					}
					if !bytes.Equal(p[:got], plain[off:off+int64(got)]) {
						t.Errorf("ReadAt(%d bytes at %d) returned other bytes", n, off)
						return
					}
				}
			})
		}
		wg.Wait()
	})

	t.Run("Seek and Read", func(t *testing.T) {
		t.Parallel()
		r, err := NewReader(bytes.NewReader(ct), int64(len(ct)), kr)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name   string
			offset int64
			whence int
			want   int64
		}{
			{"start", 0, io.SeekStart, 0},
			{"middle of segment 1", SegmentSize + 100, io.SeekStart, SegmentSize + 100},
			{"back a little", -200, io.SeekCurrent, SegmentSize + 100 + 50 - 200},
			{"segment boundary", 2 * SegmentSize, io.SeekStart, 2 * SegmentSize},
			{"last bytes", -10, io.SeekEnd, int64(len(plain)) - 10},
			{"end", 0, io.SeekEnd, int64(len(plain))},
		}
		for _, tt := range tests {
			pos, err := r.Seek(tt.offset, tt.whence)
			if err != nil || pos != tt.want {
				t.Fatalf("%s: Seek = %d, %v; want %d", tt.name, pos, err, tt.want)
			}
			p := make([]byte, 50)
			n, err := io.ReadFull(r, p)
			wantN := min(50, len(plain)-int(pos))
			if n != wantN || (wantN == 50 && err != nil) {
				t.Fatalf("%s: read %d, %v; want %d", tt.name, n, err, wantN)
			}
			if !bytes.Equal(p[:n], plain[pos:pos+int64(n)]) {
				t.Fatalf("%s: read other bytes", tt.name)
			}
		}
		if _, err := r.Seek(-1, io.SeekStart); err == nil {
			t.Error("Seek to -1 succeeded")
		}
	})
}

func TestTamper(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, "k1:"+key(1))
	plain := data(3*SegmentSize+1000, 3)
	ct := encrypt(t, plain, kr)
	seg := SegmentSize + tagSize
	segAt := func(i int) int { return HeaderSize + i*seg }
	flip := func(pos int) func([]byte) []byte {
		return func(b []byte) []byte { b[pos] ^= 0x10; return b }
	}
	tests := []struct {
		name   string
		change func([]byte) []byte
		want   error
	}{
		{"magic", flip(0), ErrCorrupt},
		{"version", flip(offVersion), ErrCorrupt},
		{"segment size", flip(offSegSize + 2), ErrWrongKey},
		{"key id", flip(offKeyID), ErrUnknownKey},
		{"key id padding", flip(offKeyID + 10), ErrWrongKey},
		{"nonce prefix", flip(offPrefix + 3), ErrWrongKey},
		{"wrap nonce", flip(offWrapNon + 1), ErrWrongKey},
		{"wrapped data key", flip(offWrapped + 5), ErrWrongKey},
		{"wrapped key tag", flip(HeaderSize - 1), ErrWrongKey},
		{"first segment data", flip(segAt(0) + 10), ErrCorrupt},
		{"middle segment tag", flip(segAt(2) - 1), ErrCorrupt},
		{"last segment", flip(segAt(3) + 3), ErrCorrupt},
		{"truncated to header", func(b []byte) []byte { return b[:HeaderSize] }, ErrCorrupt},
		{"truncated in header", func(b []byte) []byte { return b[:HeaderSize-1] }, ErrCorrupt},
		{"truncated by one byte", func(b []byte) []byte { return b[:len(b)-1] }, ErrCorrupt},
		{"truncated mid-segment", func(b []byte) []byte { return b[:segAt(1)+500] }, ErrCorrupt},
		{"last segment dropped", func(b []byte) []byte { return b[:segAt(3)] }, ErrCorrupt},
		{"last segment dropped leaving its tag's size", func(b []byte) []byte { return b[:segAt(3)+tagSize] }, ErrCorrupt},
		{"byte appended", func(b []byte) []byte { return append(b, 0) }, ErrCorrupt},
		{"segments swapped", func(b []byte) []byte {
			s0 := bytes.Clone(b[segAt(0):segAt(1)])
			copy(b[segAt(0):], b[segAt(1):segAt(2)])
			copy(b[segAt(1):], s0)
			return b
		}, ErrCorrupt},
		{"segment duplicated over the next", func(b []byte) []byte {
			copy(b[segAt(1):], b[segAt(0):segAt(1)])
			return b
		}, ErrCorrupt},
		{"not encrypted at all", func(b []byte) []byte { return bytes.Clone(plain) }, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bad := tt.change(bytes.Clone(ct))
			got, err := decryptAll(bad, kr)
			if err == nil {
				t.Fatalf("tampered blob decrypted without error (%d bytes, equal=%v)", len(got), bytes.Equal(got, plain))
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %q, want one wrapping %q", err, tt.want)
			}
			// Whatever was returned before the error must be a prefix of the true plaintext.
			if !bytes.Equal(got, plain[:len(got)]) {
				t.Fatalf("returned %d bytes that are not the plaintext", len(got))
			}
		})
	}
}

func TestWrongKey(t *testing.T) {
	t.Parallel()
	ct := encrypt(t, []byte("the patient reports chest pain"), mustKeyring(t, "k1:"+key(1)))
	tests := []struct {
		name    string
		keyring string
		want    error
	}{
		{"same id, other key", "k1:" + key(9), ErrWrongKey},
		{"other id", "k9:" + key(1), ErrUnknownKey},
		{"derived id", key(1), ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := decryptAll(ct, mustKeyring(t, tt.keyring))
			if !errors.Is(err, tt.want) {
				t.Fatalf("decrypt = %q, %v; want error %v", got, err, tt.want)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	old := mustKeyring(t, "k1:"+key(1))
	rotated := mustKeyring(t, "k2:"+key(2)+",k1:"+key(1))
	onlyNew := mustKeyring(t, "k2:"+key(2))
	plain := data(SegmentSize+5, 11)
	ct := encrypt(t, plain, old)

	got, err := decryptAll(ct, rotated)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("blob written under k1 through keyring k2,k1: err=%v equal=%v", err, bytes.Equal(got, plain))
	}
	if _, err := decryptAll(ct, onlyNew); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("blob under k1 with keyring k2 only: %v, want ErrUnknownKey", err)
	}
	if id, _ := HeaderKeyID(encrypt(t, plain, rotated)); id != "k2" {
		t.Errorf("new blob under the rotated keyring names key %q, want k2", id)
	}

	hdr, err := Rewrap(ct[:HeaderSize], rotated)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if id, err := HeaderKeyID(hdr); err != nil || id != "k2" {
		t.Fatalf("rewrapped header names %q, %v; want k2", id, err)
	}
	rewrapped := append(hdr, ct[HeaderSize:]...)
	if !bytes.Equal(rewrapped[HeaderSize:], ct[HeaderSize:]) {
		t.Fatal("segments changed")
	}
	got, err = decryptAll(rewrapped, onlyNew)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("rewrapped blob through keyring k2 only: err=%v equal=%v", err, bytes.Equal(got, plain))
	}
	same, err := Rewrap(hdr, rotated)
	if err != nil || !bytes.Equal(same, hdr) {
		t.Errorf("Rewrap of a current header changed it (err=%v)", err)
	}
	if _, err := Rewrap(ct[:HeaderSize], onlyNew); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Rewrap without the old key: %v, want ErrUnknownKey", err)
	}
}

func TestNoPlaintextInCiphertext(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, key(1))
	tests := []struct {
		name  string
		plain []byte
	}{
		{"repeated record", bytes.Repeat([]byte("PATIENT Jane Q. Doe DOB 1961-04-12 MRN 00412345; "), 5000)},
		{"zeros", make([]byte, 3*SegmentSize)},
		{"text across segments", bytes.Repeat([]byte("chest pain radiating to the left arm. "), 4000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ct := encrypt(t, tt.plain, kr)
			// Low-entropy plaintexts have few distinct 32-byte windows: check every one.
			seen := map[string]bool{}
			for i := 0; i+32 <= len(tt.plain); i++ {
				w := string(tt.plain[i : i+32])
				if seen[w] {
					continue
				}
				seen[w] = true
				if bytes.Contains(ct, []byte(w)) {
					t.Fatalf("ciphertext contains the plaintext run %q", w)
				}
			}
		})
	}
}

func TestWriterErrors(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, key(1))
	t.Run("write after close", func(t *testing.T) {
		t.Parallel()
		w := NewWriter(io.Discard, kr)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := w.Write([]byte("x")); err == nil {
			t.Error("Write after Close succeeded")
		}
	})
	t.Run("underlying writer fails", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("disk full")
		w := NewWriter(failWriter{boom}, kr)
		_, err := w.Write(make([]byte, 2*writeBatch*SegmentSize)) // past one batch
		if !errors.Is(err, boom) {
			t.Fatalf("Write = %v, want %v", err, boom)
		}
		if err := w.Close(); !errors.Is(err, boom) {
			t.Fatalf("Close after failure = %v, want %v", err, boom)
		}
	})
	t.Run("nil keyring", func(t *testing.T) {
		t.Parallel()
		if err := NewWriter(io.Discard, nil).Close(); err == nil {
			t.Error("Close with nil keyring succeeded")
		}
	})
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestSmallSegments(t *testing.T) {
	t.Parallel()
	// Readers honour the segment size in the header, not the constant.
	kr := mustKeyring(t, key(3))
	for _, n := range []int{0, 1, 63, 64, 65, 1000} {
		plain := data(n, 5)
		var buf bytes.Buffer
		w := newWriterSize(&buf, kr, 64)
		if _, err := w.Write(plain); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := decryptAll(buf.Bytes(), kr)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes with 64-byte segments: err=%v equal=%v", n, err, bytes.Equal(got, plain))
		}
	}
}

func BenchmarkEncrypt(b *testing.B) {
	kr := mustKeyring(b, key(1))
	plain := data(16<<20, 1)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		w := NewWriter(io.Discard, kr)
		if _, err := w.Write(plain); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	kr := mustKeyring(b, key(1))
	plain := data(16<<20, 1)
	ct := encrypt(b, plain, kr)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(ct), int64(len(ct)), kr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
	}
}
