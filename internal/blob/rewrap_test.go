package blob_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"sort"
	"testing"

	"github.com/iambilly/billy/internal/blob"
	"github.com/iambilly/billy/internal/crypto"
)

// TestRewrap: after the keyring gets a new current key, Rewrap moves each blob to it once (a
// second call writes nothing), a deleted blob stays deleted, Walk lists exactly the blobs, and
// with the old key removed every blob still reads.
func TestRewrap(t *testing.T) {
	t.Parallel()
	k1 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	k2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	kr, _ := crypto.ParseKeyring("a:" + k1)
	s, err := blob.NewFS(t.TempDir(), kr)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	data := map[string][]byte{}
	for i := range 4 {
		b := bytes.Repeat([]byte{byte(i)}, 1+i*70000)
		ref, err := s.Put(ctx, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		data[ref.ID] = b
	}
	var gone string
	for id := range data {
		gone = id
		break
	}
	next, _ := crypto.ParseKeyring("b:" + k2 + ",a:" + k1)
	kr.Replace(next)
	if err := s.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	delete(data, gone)
	if changed, err := s.Rewrap(ctx, gone); changed || err != nil {
		t.Errorf("rewrap of a deleted blob: %v %v", changed, err)
	}
	var walked []string
	if err := s.Walk(ctx, func(id string) error { walked = append(walked, id); return nil }); err != nil {
		t.Fatal(err)
	}
	var want []string
	for id := range data {
		want = append(want, id)
	}
	sort.Strings(walked)
	sort.Strings(want)
	if len(walked) != len(want) {
		t.Fatalf("walk %v, want %v", walked, want)
	}
	for _, id := range want {
		if changed, err := s.Rewrap(ctx, id); !changed || err != nil {
			t.Errorf("first rewrap of %s: %v %v", id, changed, err)
		}
		if changed, err := s.Rewrap(ctx, id); changed || err != nil {
			t.Errorf("second rewrap of %s: %v %v, want nothing written", id, changed, err)
		}
		if kid, err := s.KeyID(ctx, id); kid != "b" || err != nil {
			t.Errorf("key of %s: %q %v", id, kid, err)
		}
	}
	if _, err := s.Open(ctx, gone); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("the deleted blob came back: %v", err)
	}
	onlyNew, _ := crypto.ParseKeyring("b:" + k2)
	kr.Replace(onlyNew)
	for id, b := range data {
		o, err := s.Open(ctx, id)
		if err != nil {
			t.Fatalf("open %s with the new key only: %v", id, err)
		}
		got, err := io.ReadAll(o)
		o.Close()
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("read %s: %v, %d bytes, want %d", id, err, len(got), len(b))
		}
	}
}

// BenchmarkRewrap re-wraps 1 MiB blobs: the data is copied, not re-encrypted, so this is about
// disk speed (MB/s is of blob size).
func BenchmarkRewrap(b *testing.B) {
	k1 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	k2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	kr, _ := crypto.ParseKeyring("a:" + k1)
	s, err := blob.NewFS(b.TempDir(), kr)
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte{9}, 1<<20)
	ids := make([]string, b.N)
	for i := range ids {
		ref, err := s.Put(b.Context(), bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = ref.ID
	}
	next, _ := crypto.ParseKeyring("b:" + k2 + ",a:" + k1)
	kr.Replace(next)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for _, id := range ids {
		if changed, err := s.Rewrap(b.Context(), id); !changed || err != nil {
			b.Fatal(changed, err)
		}
	}
}
