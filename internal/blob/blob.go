// Package blob stores opaque byte streams (Binary content such as encounter audio) encrypted at rest,
// under random ids.
//
// It owns the blob files under BILLY_DATA_DIR and their encryption (always internal/crypto; there is no
// plaintext mode). It does not know FHIR, content types, who may read what, or which resource refers to a
// blob: the FHIR Binary code keeps the Ref (id, size, SHA-256) in its own rows and checks access first.
//
// # The seam
//
// Store is the whole contract the rest of Billy uses. FS implements it on a local file system. An
// S3-compatible implementation plugs in behind the same three methods: Put streams through
// crypto.NewWriter into a multipart upload (parts of a few MiB, so memory stays flat; the object appears
// only on CompleteMultipartUpload, which gives the same no-half-blob guarantee as FS's rename, and an
// aborted upload is cleaned up by a bucket lifecycle rule), Open returns a crypto.Reader over an
// io.ReaderAt that issues ranged GETs (`Range: bytes=a-b`) with the object size from HeadObject, and
// Delete is DeleteObject, idempotent like FS's. Ids and Refs are the same, so rows written against one
// store stay valid after copying the objects to the other.
//
// # Layout on disk
//
//	DIR/objects/ab/cd/abcd…(32 hex)   one encrypted blob per file, sharded by the first two id bytes
//	DIR/tmp/put-*                     uploads in progress; renamed into objects/ when complete
//
// A Put writes the temporary file, fsyncs it, renames it to its final name and fsyncs the directory, so a
// crash leaves either the whole blob under its id or a temporary file, never a partial blob under an id.
// NewFS removes temporary files older than a day (an upload that old died with its process).
package blob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/iambilly/billy/internal/crypto"
)

// Errors the store returns, wrapped with the id.
var (
	// ErrNotFound: no blob has this id.
	ErrNotFound = errors.New("blob not found")
	// ErrInvalidID: the id is not one this store could have issued (32 lowercase hex digits).
	ErrInvalidID = errors.New("invalid blob id")
)

// Ref describes a stored blob: its id and the size and SHA-256 of its plaintext, computed while it
// streamed in.
type Ref struct {
	ID     string
	Size   int64
	SHA256 [sha256.Size]byte
}

// SHA256Hex is the plaintext SHA-256 in lowercase hex.
func (r Ref) SHA256Hex() string { return hex.EncodeToString(r.SHA256[:]) }

// Object is an open blob, decrypted on the fly: Read and Seek stream it, ReadAt reads any range and only
// decrypts the segments the range touches. Close releases it.
type Object interface {
	io.ReadSeeker
	io.ReaderAt
	io.Closer
	// Size is the plaintext size in bytes.
	Size() int64
}

// Store keeps blobs. Implementations are safe for concurrent use.
type Store interface {
	// Put streams r to the store until EOF and returns the new blob's Ref. Nothing is stored under the id
	// unless Put succeeds.
	Put(ctx context.Context, r io.Reader) (Ref, error)
	// Open opens the blob id; a missing blob is an error wrapping ErrNotFound.
	Open(ctx context.Context, id string) (Object, error)
	// Delete removes the blob id. Deleting a blob that is not there is not an error.
	Delete(ctx context.Context, id string) error
}

// FS is a Store on a local directory.
type FS struct {
	dir string
	kr  *crypto.Keyring
}

var _ Store = (*FS)(nil)

// tmpMaxAge is how old a temporary file must be before NewFS takes it for a dead upload.
const tmpMaxAge = 24 * time.Hour

// NewFS opens (creating if needed) a store in dir, encrypting new blobs under kr's current key.
func NewFS(dir string, kr *crypto.Keyring) (*FS, error) {
	if kr == nil {
		return nil, errors.New("blob store: nil keyring")
	}
	if dir == "" {
		return nil, errors.New("blob store: empty directory")
	}
	s := &FS{dir: dir, kr: kr}
	for _, d := range []string{s.objects(), s.tmp()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
	}
	s.removeStaleTemp(time.Now().Add(-tmpMaxAge))
	return s, nil
}

func (s *FS) objects() string { return filepath.Join(s.dir, "objects") }
func (s *FS) tmp() string     { return filepath.Join(s.dir, "tmp") }

// path is the file of blob id, which must be valid.
func (s *FS) path(id string) string {
	return filepath.Join(s.objects(), id[0:2], id[2:4], id)
}

func validID(id string) error {
	if len(id) != 32 {
		return fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: %q", ErrInvalidID, id)
		}
	}
	return nil
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Put encrypts r into a temporary file and renames it into place once it is complete and on disk.
func (s *FS) Put(ctx context.Context, r io.Reader) (ref Ref, err error) {
	f, err := os.CreateTemp(s.tmp(), "put-*")
	if err != nil {
		return Ref{}, fmt.Errorf("put blob: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()

	cw := crypto.NewWriter(f, s.kr) // writes 1 MiB at a time: no bufio needed
	n, sum, err := copyHashing(ctx, cw, r)
	if err != nil {
		return Ref{}, fmt.Errorf("put blob: %w", err)
	}
	if err := cw.Close(); err != nil {
		return Ref{}, fmt.Errorf("put blob: %w", err)
	}
	if err := f.Sync(); err != nil {
		return Ref{}, fmt.Errorf("put blob: sync: %w", err)
	}
	if err := f.Close(); err != nil {
		return Ref{}, fmt.Errorf("put blob: %w", err)
	}

	ref = Ref{ID: newID(), Size: n, SHA256: sum}
	final := s.path(ref.ID)
	shard := filepath.Dir(final)
	if err := os.MkdirAll(shard, 0o700); err != nil {
		return Ref{}, fmt.Errorf("put blob %s: %w", ref.ID, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return Ref{}, fmt.Errorf("put blob %s: %w", ref.ID, err)
	}
	// The rename is durable once the directory holding the new name is; the shard's parents only change
	// when a shard is created, and syncing them too is cheap next to the blob itself.
	for _, d := range []string{shard, filepath.Dir(shard), s.objects()} {
		if err := syncDir(d); err != nil {
			return Ref{}, fmt.Errorf("put blob %s: %w", ref.ID, err)
		}
	}
	return ref, nil
}

// copyChunk is the unit copyHashing reads and hashes; copyBuffers of them are in flight at most.
const (
	copyChunk   = 1 << 20
	copyBuffers = 3
)

// copyHashing copies r to w until EOF and returns the byte count and SHA-256 of what it copied. The hash
// runs on another goroutine, one chunk behind the copy, because SHA-256 costs about as much CPU as
// AES-GCM and the disk write together: overlapped, an encrypted Put keeps pace with a raw write. Memory is
// copyBuffers chunks whatever the size of r. It stops at the first chunk boundary after ctx is done.
func copyHashing(ctx context.Context, w io.Writer, r io.Reader) (int64, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	free := make(chan []byte, copyBuffers)
	for range copyBuffers {
		free <- make([]byte, copyChunk)
	}
	toHash := make(chan []byte, copyBuffers)
	hashed := make(chan struct{})
	h := sha256.New()
	go func() {
		defer close(hashed)
		for b := range toHash {
			h.Write(b)
			free <- b[:cap(b)]
		}
	}()
	var n int64
	err := func() error {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			buf := <-free
			c, rerr := io.ReadFull(r, buf)
			if c > 0 {
				if _, err := w.Write(buf[:c]); err != nil {
					return err
				}
				n += int64(c)
				toHash <- buf[:c]
			} else {
				free <- buf
			}
			switch rerr {
			case nil:
			case io.EOF, io.ErrUnexpectedEOF:
				return nil
			default:
				return rerr
			}
		}
	}()
	close(toHash)
	<-hashed
	if err != nil {
		return n, sum, err
	}
	h.Sum(sum[:0])
	return n, sum, nil
}

// Open opens blob id for reading.
func (s *FS) Open(ctx context.Context, id string) (Object, error) {
	if err := validID(id); err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open blob %s: %w", id, err)
	}
	f, err := os.Open(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open blob %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", id, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open blob %s: %w", id, err)
	}
	cr, err := crypto.NewReader(f, st.Size(), s.kr)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open blob %s: %w", id, err)
	}
	return &object{Reader: cr, f: f}, nil
}

type object struct {
	*crypto.Reader
	f *os.File
}

func (o *object) Close() error { return o.f.Close() }

// Delete removes blob id; a missing blob is not an error, so a retried delete succeeds.
func (s *FS) Delete(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return fmt.Errorf("delete blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete blob %s: %w", id, err)
	}
	p := s.path(id)
	defer lockForDelete(p)()
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete blob %s: %w", id, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("delete blob %s: %w", id, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// removeStaleTemp deletes temporary files last written before cutoff. Best effort: a failure only leaves
// a file behind.
func (s *FS) removeStaleTemp(cutoff time.Time) {
	entries, err := os.ReadDir(s.tmp())
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "put-") {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(s.tmp(), e.Name()))
		}
	}
}
