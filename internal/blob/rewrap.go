package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/iambilly/billy/internal/crypto"
)

// Rewrapper is what master key rotation needs of a store: every blob id, and re-wrapping one blob's
// data key under the current master key without touching its data.
type Rewrapper interface {
	// Walk calls fn with the id of every blob, in no particular order, until fn fails.
	Walk(ctx context.Context, fn func(id string) error) error
	// Rewrap wraps blob id's data key under the current master key. It reports false, and writes
	// nothing, when the key already is under it (so a rotation interrupted and run again never
	// rewraps a blob twice) or when the blob was deleted meanwhile.
	Rewrap(ctx context.Context, id string) (bool, error)
}

var _ Rewrapper = (*FS)(nil)

// Walk lists the blob files under objects/.
func (s *FS) Walk(ctx context.Context, fn func(id string) error) error {
	return filepath.WalkDir(s.objects(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a shard emptied under us
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || validID(d.Name()) != nil {
			return nil
		}
		return fn(d.Name())
	})
}

// Rewrap writes a copy of the blob with the new header and the same segments to a temporary file and
// renames it over the blob: readers that opened the old file keep reading it, new readers get the new
// one, and a crash leaves one or the other whole. An exclusive flock on the old file, which Delete
// takes too, keeps a concurrent Delete from being undone by the rename; a file with no name left
// (deleted, or replaced by another Rewrap) is skipped.
func (s *FS) Rewrap(ctx context.Context, id string) (bool, error) {
	if err := validID(id); err != nil {
		return false, fmt.Errorf("rewrap blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	final := s.path(id)
	f, err := os.Open(final)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("rewrap blob %s: %w", id, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return false, fmt.Errorf("rewrap blob %s: lock: %w", id, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false, fmt.Errorf("rewrap blob %s: %w", id, err)
	}
	if st.Nlink == 0 {
		return false, nil
	}
	hdr := make([]byte, crypto.HeaderSize)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return false, fmt.Errorf("rewrap blob %s: %w", id, err)
	}
	if kid, err := crypto.HeaderKeyID(hdr); err != nil {
		return false, fmt.Errorf("rewrap blob %s: %w", id, err)
	} else if kid == s.kr.Current() {
		return false, nil
	}
	nh, err := crypto.Rewrap(hdr, s.kr)
	if err != nil {
		return false, fmt.Errorf("rewrap blob %s: %w", id, err)
	}
	tmp, err := os.CreateTemp(s.tmp(), "put-*")
	if err != nil {
		return false, fmt.Errorf("rewrap blob %s: %w", id, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(nh); err != nil {
		return false, fmt.Errorf("rewrap blob %s: %w", id, err)
	}
	if _, err := io.Copy(tmp, f); err != nil { // the segments, as they are
		return false, fmt.Errorf("rewrap blob %s: %w", id, err)
	}
	if err := tmp.Sync(); err != nil {
		return false, fmt.Errorf("rewrap blob %s: sync: %w", id, err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("rewrap blob %s: %w", id, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return false, fmt.Errorf("rewrap blob %s: %w", id, err)
	}
	ok = true
	if err := syncDir(filepath.Dir(final)); err != nil {
		return true, fmt.Errorf("rewrap blob %s: %w", id, err)
	}
	return true, nil
}

// lockForDelete takes the lock Rewrap takes on the blob file at p, so that a delete and a rewrap of
// one blob happen one after the other. The returned function unlocks; a missing file is not an error.
func lockForDelete(p string) func() {
	f, err := os.Open(p)
	if err != nil {
		return func() {}
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return func() {}
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck
		f.Close()
	}
}

// KeyID names the master key wrapping blob id's data key, reading only its header; "" when the blob
// is gone.
func (s *FS) KeyID(ctx context.Context, id string) (string, error) {
	if err := validID(id); err != nil {
		return "", err
	}
	f, err := os.Open(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	hdr := make([]byte, crypto.HeaderSize)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return "", fmt.Errorf("blob %s: %w", id, err)
	}
	return crypto.HeaderKeyID(hdr)
}
