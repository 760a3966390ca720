package crypto

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// SegmentSize is the plaintext size of every segment but the last in blobs this package writes.
const SegmentSize = 64 << 10

// HeaderSize is the fixed size of the header at the start of every encrypted blob.
const HeaderSize = offWrapped + KeySize + tagSize

// Overhead bytes, offsets and limits of the format (see the package doc).
const (
	tagSize        = 16
	noncePrefixLen = 8
	version1       = 1

	offVersion  = 8
	offSegSize  = 9
	offKeyIDLen = 13
	offKeyID    = 14
	offPrefix   = offKeyID + maxKeyIDLen
	offWrapNon  = offPrefix + noncePrefixLen
	offWrapped  = offWrapNon + 12
	wrapAADSize = offWrapNon

	minSegmentSize = 16
	maxSegmentSize = 16 << 20
	maxSegments    = 1 << 32
)

var magic = [8]byte{'B', 'I', 'L', 'L', 'Y', 'E', 'N', 'C'}

// Errors a Reader or Rewrap returns, wrapped with detail. None of them is transient: retrying the same
// bytes with the same keyring gives the same answer.
var (
	// ErrUnknownKey: the blob's data key is wrapped by a master key id that the keyring lacks.
	ErrUnknownKey = errors.New("unknown master key")
	// ErrWrongKey: the keyring has a key under the blob's key id but it does not unwrap the data key:
	// either it is another key under the same id, or the header was altered.
	ErrWrongKey = errors.New("data key does not unwrap: wrong master key or altered header")
	// ErrCorrupt: the bytes are not a blob of this format, or a segment failed authentication
	// (altered, reordered, truncated or missing data).
	ErrCorrupt = errors.New("encrypted blob is corrupt")
)

// EncryptedSize is the ciphertext size of a plaintext of n bytes written by this package.
func EncryptedSize(n int64) int64 {
	segs := (n + SegmentSize - 1) / SegmentSize
	if segs == 0 {
		segs = 1
	}
	return HeaderSize + n + segs*tagSize
}

// header is the parsed form of a blob header.
type header struct {
	segSize int
	keyID   string
	prefix  [noncePrefixLen]byte
}

// parseHeader checks the fixed fields of a header and unwraps its data key with kr.
func parseHeader(b []byte, kr *Keyring) (header, []byte, error) {
	var h header
	if len(b) < HeaderSize {
		return h, nil, fmt.Errorf("%w: %d bytes is shorter than the %d-byte header", ErrCorrupt, len(b), HeaderSize)
	}
	if !bytes.Equal(b[:offVersion], magic[:]) {
		return h, nil, fmt.Errorf("%w: not a Billy encrypted blob (bad magic)", ErrCorrupt)
	}
	if b[offVersion] != version1 {
		return h, nil, fmt.Errorf("%w: unknown format version %d", ErrCorrupt, b[offVersion])
	}
	seg := binary.BigEndian.Uint32(b[offSegSize:])
	if seg < minSegmentSize || seg > maxSegmentSize {
		return h, nil, fmt.Errorf("%w: segment size %d out of range", ErrCorrupt, seg)
	}
	h.segSize = int(seg)
	n := int(b[offKeyIDLen])
	if n == 0 || n > maxKeyIDLen {
		return h, nil, fmt.Errorf("%w: key id length %d out of range", ErrCorrupt, n)
	}
	h.keyID = string(b[offKeyID : offKeyID+n])
	copy(h.prefix[:], b[offPrefix:])
	aead, err := kr.aead(h.keyID)
	if err != nil {
		return h, nil, err
	}
	dk, err := aead.Open(nil, b[offWrapNon:offWrapped], b[offWrapped:HeaderSize], b[:wrapAADSize])
	if err != nil {
		return h, nil, fmt.Errorf("%w (master key %q)", ErrWrongKey, h.keyID)
	}
	return h, dk, nil
}

// sealHeader writes a header for h and the data key dk, wrapped by kr's key h.keyID, into b.
func sealHeader(b []byte, h header, dk []byte, kr *Keyring) error {
	aead, err := kr.aead(h.keyID)
	if err != nil {
		return err
	}
	clear(b[:HeaderSize])
	copy(b, magic[:])
	b[offVersion] = version1
	binary.BigEndian.PutUint32(b[offSegSize:], uint32(h.segSize))
	b[offKeyIDLen] = byte(len(h.keyID))
	copy(b[offKeyID:], h.keyID)
	copy(b[offPrefix:], h.prefix[:])
	rand.Read(b[offWrapNon:offWrapped])
	aead.Seal(b[offWrapped:offWrapped], b[offWrapNon:offWrapped], dk, b[:wrapAADSize])
	return nil
}

// Rewrap returns a copy of the HeaderSize-byte header of an encrypted blob with its data key wrapped by
// kr's current master key instead of the key it names. The segments that follow the header are not
// touched: replace the first HeaderSize bytes of the blob with the result. A header already under the
// current key comes back unchanged.
func Rewrap(hdr []byte, kr *Keyring) ([]byte, error) {
	h, dk, err := parseHeader(hdr, kr)
	if err != nil {
		return nil, fmt.Errorf("rewrap: %w", err)
	}
	defer clear(dk)
	out := make([]byte, HeaderSize)
	current := kr.Current()
	if h.keyID == current {
		copy(out, hdr)
		return out, nil
	}
	h.keyID = current
	if err := sealHeader(out, h, dk, kr); err != nil {
		return nil, fmt.Errorf("rewrap: %w", err)
	}
	return out, nil
}

// HeaderKeyID reports which master key wraps the data key of the blob whose header is hdr, without
// unwrapping it (to find blobs still to rewrap after a rotation).
func HeaderKeyID(hdr []byte) (string, error) {
	if len(hdr) < HeaderSize || !bytes.Equal(hdr[:offVersion], magic[:]) {
		return "", fmt.Errorf("%w: not a Billy encrypted blob header", ErrCorrupt)
	}
	n := int(hdr[offKeyIDLen])
	if n == 0 || n > maxKeyIDLen {
		return "", fmt.Errorf("%w: key id length %d out of range", ErrCorrupt, n)
	}
	return string(hdr[offKeyID : offKeyID+n]), nil
}

// segmentNonce is the nonce prefix followed by the segment counter.
func segmentNonce(dst *[12]byte, prefix [noncePrefixLen]byte, i int64) {
	copy(dst[:], prefix[:])
	binary.BigEndian.PutUint32(dst[noncePrefixLen:], uint32(i))
}

var (
	aadMiddle = []byte{0}
	aadLast   = []byte{1}
)

// writeBatch is how many sealed segments a Writer collects before one write to the underlying writer.
const writeBatch = 16

// Writer encrypts what is written to it into the blob format on an underlying writer. The header goes
// out with the first segments (or at Close); a full segment is sealed once the next byte arrives, because
// only then is it known not to be the last, and sealed segments go out writeBatch at a time (1 MiB), so
// the underlying writer needs no buffering of its own. Close seals the last segment and flushes; it does
// not close the underlying writer. A Writer holds about 1 MiB whatever the blob size. Not safe for
// concurrent use.
type Writer struct {
	w    io.Writer
	aead cipher.AEAD
	h    header
	// buf holds the header until it is written, then sealed segments followed by the plaintext of the
	// pending segment, which starts at seg0; capacity leaves room to seal each segment in place.
	buf  []byte
	seg0 int
	seg  int64 // index of the pending segment
	err  error // sticky
}

var _ io.WriteCloser = (*Writer)(nil)
var _ io.ReaderFrom = (*Writer)(nil)

// NewWriter returns a Writer that encrypts to w under kr's current master key with a fresh data key.
func NewWriter(w io.Writer, kr *Keyring) *Writer {
	return newWriterSize(w, kr, SegmentSize)
}

func newWriterSize(w io.Writer, kr *Keyring, segSize int) *Writer {
	cw := &Writer{w: w, h: header{segSize: segSize}}
	if kr == nil {
		cw.err = errors.New("encrypt: nil keyring")
		return cw
	}
	cw.h.keyID = kr.Current()
	rand.Read(cw.h.prefix[:])
	dk := make([]byte, KeySize)
	rand.Read(dk)
	defer clear(dk)
	cw.buf = make([]byte, HeaderSize, HeaderSize+writeBatch*(segSize+tagSize))
	if err := sealHeader(cw.buf, cw.h, dk, kr); err != nil {
		cw.err = fmt.Errorf("encrypt: %w", err)
		return cw
	}
	aead, err := newGCM(dk)
	if err != nil {
		cw.err = fmt.Errorf("encrypt: %w", err)
		return cw
	}
	cw.aead = aead
	cw.seg0 = HeaderSize
	return cw
}

// pending is the plaintext length of the segment being filled.
func (cw *Writer) pending() int { return len(cw.buf) - cw.seg0 }

// Write buffers p, sealing each segment that fills up and is followed by more data.
func (cw *Writer) Write(p []byte) (int, error) {
	if cw.err != nil {
		return 0, cw.err
	}
	n := 0
	for len(p) > 0 {
		if cw.pending() == cw.h.segSize {
			if cw.err = cw.seal(false); cw.err != nil {
				return n, cw.err
			}
		}
		if cw.pending() == 0 && len(p) > cw.h.segSize {
			// A whole segment with more data after it: seal it straight from p, without a copy.
			if cw.err = cw.sealFrom(p[:cw.h.segSize], false); cw.err != nil {
				return n, cw.err
			}
			p = p[cw.h.segSize:]
			n += cw.h.segSize
			continue
		}
		c := copy(cw.buf[len(cw.buf):cw.seg0+cw.h.segSize], p)
		cw.buf = cw.buf[:len(cw.buf)+c]
		p = p[c:]
		n += c
	}
	return n, nil
}

// ReadFrom reads r to EOF straight into the segment buffer, saving io.Copy a copy.
func (cw *Writer) ReadFrom(r io.Reader) (int64, error) {
	if cw.err != nil {
		return 0, cw.err
	}
	var n int64
	for {
		if cw.pending() == cw.h.segSize {
			// Only seal as "not last" once at least one more byte is known to follow.
			var one [1]byte
			c, err := io.ReadFull(r, one[:])
			if c == 0 {
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					return n, nil
				}
				return n, err
			}
			if cw.err = cw.seal(false); cw.err != nil {
				return n, cw.err
			}
			cw.buf = append(cw.buf, one[0])
			n++
		}
		c, err := r.Read(cw.buf[len(cw.buf) : cw.seg0+cw.h.segSize])
		cw.buf = cw.buf[:len(cw.buf)+c]
		n += int64(c)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// seal seals the pending segment in place.
func (cw *Writer) seal(last bool) error { return cw.sealFrom(cw.buf[cw.seg0:], last) }

// sealFrom appends the sealed form of the segment pt (either the pending plaintext, sealed in place, or
// caller bytes that do not overlap the buffer), and writes the batch out when the buffer has no room
// for another segment (or this was the last).
func (cw *Writer) sealFrom(pt []byte, last bool) error {
	if cw.seg >= maxSegments {
		return errors.New("encrypt: blob exceeds the maximum number of segments")
	}
	var nonce [12]byte
	segmentNonce(&nonce, cw.h.prefix, cw.seg)
	aad := aadMiddle
	if last {
		aad = aadLast
	}
	sealed := cw.aead.Seal(cw.buf[cw.seg0:cw.seg0], nonce[:], pt, aad)
	cw.buf = cw.buf[:cw.seg0+len(sealed)]
	cw.seg++
	cw.seg0 = len(cw.buf)
	if last || cap(cw.buf)-len(cw.buf) < cw.h.segSize+tagSize {
		if _, err := cw.w.Write(cw.buf); err != nil {
			return fmt.Errorf("encrypt: write segments up to %d: %w", cw.seg-1, err)
		}
		cw.buf, cw.seg0 = cw.buf[:0], 0
	}
	return nil
}

// Close seals and writes the last segment (empty for an empty blob). It does not close the underlying
// writer. Closing twice is a no-op; writing after Close is an error.
func (cw *Writer) Close() error {
	if cw.err != nil {
		if errors.Is(cw.err, errClosed) {
			return nil
		}
		return cw.err
	}
	if cw.err = cw.seal(true); cw.err != nil {
		return cw.err
	}
	cw.err = errClosed
	return nil
}

var errClosed = errors.New("encrypt: write after Close")

// Reader decrypts an encrypted blob through io.ReaderAt: Read and Seek for streaming, ReadAt for random
// access. Only the segments a read touches are fetched and decrypted, one segment of memory at a time.
// Every byte it returns has been authenticated; a failure is an error wrapping ErrCorrupt, never
// unauthenticated plaintext. ReadAt is safe for concurrent use; Read and Seek are not.
type Reader struct {
	r       io.ReaderAt
	aead    cipher.AEAD
	h       header
	keyID   string
	nseg    int64
	size    int64 // plaintext size
	lastLen int   // plaintext length of the last segment

	off int64 // Read/Seek position
	// cached plaintext of one segment for sequential Read
	cache    []byte
	cacheSeg int64
	cbuf     []byte // ciphertext buffer for Read

	pool sync.Pool // *[]byte ciphertext buffers for ReadAt
}

var (
	_ io.ReadSeeker = (*Reader)(nil)
	_ io.ReaderAt   = (*Reader)(nil)
)

// NewReader opens the encrypted blob of size bytes readable through r, unwraps its data key with kr and
// authenticates its last segment, so that Size is known to be right and a truncated blob fails here.
func NewReader(r io.ReaderAt, size int64, kr *Keyring) (*Reader, error) {
	if kr == nil {
		return nil, errors.New("decrypt: nil keyring")
	}
	hdr := make([]byte, HeaderSize)
	if size < HeaderSize {
		return nil, fmt.Errorf("decrypt: %w: %d bytes is shorter than the %d-byte header", ErrCorrupt, size, HeaderSize)
	}
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return nil, fmt.Errorf("decrypt: read header: %w", err)
	}
	h, dk, err := parseHeader(hdr, kr)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	aead, err := newGCM(dk)
	clear(dk)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	cr := &Reader{r: r, aead: aead, h: h, keyID: h.keyID, cacheSeg: -1}
	body := size - HeaderSize
	full := int64(h.segSize + tagSize)
	nFull, rem := body/full, body%full
	switch {
	case rem == 0 && nFull == 0:
		return nil, fmt.Errorf("decrypt: %w: no segments (truncated)", ErrCorrupt)
	case rem == 0:
		cr.nseg, cr.lastLen = nFull, h.segSize
	case rem < tagSize:
		return nil, fmt.Errorf("decrypt: %w: %d trailing bytes cannot be a segment (truncated)", ErrCorrupt, rem)
	default:
		cr.nseg, cr.lastLen = nFull+1, int(rem-tagSize)
	}
	if cr.nseg > maxSegments {
		return nil, fmt.Errorf("decrypt: %w: too many segments", ErrCorrupt)
	}
	cr.size = (cr.nseg-1)*int64(h.segSize) + int64(cr.lastLen)
	cr.pool.New = func() any { b := make([]byte, 0, full); return &b }
	// Authenticate the last segment now: it proves the blob was not cut short.
	cr.cbuf = make([]byte, 0, full)
	pt, err := cr.segment(cr.nseg-1, cr.cbuf, nil)
	if err != nil {
		return nil, err
	}
	cr.cache, cr.cacheSeg = pt, cr.nseg-1
	return cr, nil
}

// Size is the plaintext size of the blob.
func (cr *Reader) Size() int64 { return cr.size }

// KeyID is the id of the master key that wraps the blob's data key.
func (cr *Reader) KeyID() string { return cr.keyID }

// segment fetches segment i into cbuf and decrypts it into dst (which may alias cbuf's array).
func (cr *Reader) segment(i int64, cbuf, dst []byte) ([]byte, error) {
	plen := cr.h.segSize
	last := i == cr.nseg-1
	if last {
		plen = cr.lastLen
	}
	ct := cbuf[:plen+tagSize]
	off := HeaderSize + i*int64(cr.h.segSize+tagSize)
	if _, err := cr.r.ReadAt(ct, off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("decrypt: %w: segment %d of %d is cut short", ErrCorrupt, i, cr.nseg)
		}
		return nil, fmt.Errorf("decrypt: read segment %d: %w", i, err)
	}
	var nonce [12]byte
	segmentNonce(&nonce, cr.h.prefix, i)
	aad := aadMiddle
	if last {
		aad = aadLast
	}
	pt, err := cr.aead.Open(dst, nonce[:], ct, aad)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w: segment %d of %d fails authentication", ErrCorrupt, i, cr.nseg)
	}
	return pt, nil
}

// ReadAt reads len(p) plaintext bytes from offset off, decrypting only the segments they lie in.
func (cr *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("decrypt: negative offset")
	}
	if off >= cr.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	bp := cr.pool.Get().(*[]byte)
	defer cr.pool.Put(bp)
	seg := int64(cr.h.segSize)
	n := 0
	for n < len(p) && off < cr.size {
		i := off / seg
		pt, err := cr.segment(i, *bp, (*bp)[:0])
		if err != nil {
			return n, err
		}
		c := copy(p[n:], pt[off-i*seg:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Read reads plaintext from the current position, keeping the last decrypted segment for the next call.
func (cr *Reader) Read(p []byte) (int, error) {
	if cr.off >= cr.size {
		return 0, io.EOF
	}
	seg := int64(cr.h.segSize)
	n := 0
	for n < len(p) && cr.off < cr.size {
		i := cr.off / seg
		if cr.cacheSeg != i {
			cr.cacheSeg = -1
			pt, err := cr.segment(i, cr.cbuf, cr.cbuf[:0])
			if err != nil {
				return n, err
			}
			cr.cache, cr.cacheSeg = pt, i
		}
		c := copy(p[n:], cr.cache[cr.off-i*seg:])
		n += c
		cr.off += int64(c)
	}
	return n, nil
}

// Seek sets the position for the next Read, as io.Seeker describes. Seeking past the end is allowed;
// reading there gives io.EOF.
func (cr *Reader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = cr.off + offset
	case io.SeekEnd:
		abs = cr.size + offset
	default:
		return 0, errors.New("decrypt: seek: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("decrypt: seek: negative position")
	}
	cr.off = abs
	return abs, nil
}
