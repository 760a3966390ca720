package audio

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// ffmpegInput is what openFFmpeg decodes: the original reader and its buffered front.
type ffmpegInput struct {
	orig    io.Reader     // as the caller gave it (for ReadAt)
	br      *bufio.Reader // orig with the sniffed bytes buffered
	replay  []byte        // bytes already consumed from br that must go first
	sniffed bool          // the format came from the bytes, so ffmpeg may be told it
	why     string        // why ffmpeg is needed for a WAV
}

// sizedReaderAt is random access with a known size, such as a blob.Object or a bytes.Reader.
type sizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

func (d *Decoder) ffmpegPath() (string, error) {
	name := d.FFmpeg
	switch name {
	case "none":
		return "", errors.New("ffmpeg disabled")
	case "":
		name = "ffmpeg"
	}
	return exec.LookPath(name)
}

// openFFmpeg starts ffmpeg on the input, decoding to s16le at 16 kHz mono on its stdout.
//
// Input goes on stdin, except MP4-family input with random access, which ffmpeg reads from a one-off
// HTTP server on the loopback interface with a random path: an MP4 whose index (moov) follows the audio
// cannot be decoded from a pipe, and a temporary file would put plaintext audio on disk.
func (d *Decoder) openFFmpeg(ctx context.Context, s *Stream, in ffmpegInput) (*Stream, error) {
	path, err := d.ffmpegPath()
	if err != nil {
		what := fmt.Sprintf("%s audio", s.format)
		switch {
		case in.why != "":
			what = in.why
		case s.format == FormatUnknown:
			what = "audio in an unrecognised format"
		}
		return nil, s.decodeErr(fmt.Errorf("%w: %w: %s needs ffmpeg: install it (apt-get install ffmpeg, brew install ffmpeg) and put it on PATH", ErrUnsupported, ErrNoFFmpeg, what))
	}

	src := &ffmpegSource{stderr: &tailBuffer{max: 4 << 10}}
	args := []string{"-hide_banner", "-nostats", "-loglevel", "error"}
	var input string
	ra, random := in.orig.(sizedReaderAt)
	if random && in.replay == nil && (s.format == FormatMP4 || s.format == FormatUnknown) {
		srv, url, err := serveLoopback(ra, &src.inErr)
		if err != nil {
			return nil, fmt.Errorf("decode audio: %w", err)
		}
		src.srv = srv
		input = url
		args = append(args, "-nostdin", "-protocol_whitelist", "http,tcp")
	} else {
		input = "pipe:0"
		args = append(args, "-protocol_whitelist", "pipe")
	}
	if dm := ffmpegDemuxer(s.format); in.sniffed && dm != "" {
		args = append(args, "-f", dm)
	}
	args = append(args, "-i", input, "-map", "0:a:0", "-vn", "-sn", "-dn",
		"-f", "s16le", "-acodec", "pcm_s16le", "-ac", "1", "-ar", fmt.Sprint(SampleRate), "pipe:1")

	cmd := exec.CommandContext(ctx, path, args...)
	cmd.WaitDelay = 5 * time.Second
	if src.srv == nil {
		var r io.Reader = in.br
		if len(in.replay) > 0 {
			r = io.MultiReader(bytes.NewReader(in.replay), in.br)
		}
		cmd.Stdin = &errReader{r: &ctxReader{ctx: ctx, r: r}, rec: &src.inErr}
	}
	cmd.Stderr = src.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		src.stopServer()
		return nil, fmt.Errorf("decode audio: %w", err)
	}
	if err := cmd.Start(); err != nil {
		src.stopServer()
		return nil, fmt.Errorf("decode audio: start ffmpeg: %w", err)
	}
	src.ctx, src.cmd, src.stdout = ctx, cmd, stdout
	src.raw = make([]byte, 64<<10)
	s.src = src
	return s, nil
}

// serveLoopback serves ra over HTTP on 127.0.0.1 at a random path until the server is closed.
func serveLoopback(ra sizedReaderAt, rec *firstErr) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("listen for ffmpeg: %w", err)
	}
	var tok [16]byte
	rand.Read(tok[:])
	p := "/" + hex.EncodeToString(tok[:])
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != p {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			sr := io.NewSectionReader(&errReaderAt{r: ra, rec: rec}, 0, ra.Size())
			http.ServeContent(w, r, "", time.Time{}, sr)
		}),
	}
	go srv.Serve(ln)
	return srv, "http://" + ln.Addr().String() + p, nil
}

// ffmpegSource reads ffmpeg's s16le output as float32.
type ffmpegSource struct {
	ctx    context.Context
	cmd    *exec.Cmd
	stdout io.ReadCloser
	stderr *tailBuffer
	srv    *http.Server
	inErr  firstErr // the first error reading the input, which is ours, not ffmpeg's
	raw    []byte
	odd    []byte // a byte of a sample split across reads
	n      int64  // samples produced
	waited bool
}

func (f *ffmpegSource) read(dst []float32) ([]float32, error) {
	if f.waited {
		return dst, io.EOF
	}
	n, err := f.stdout.Read(f.raw[len(f.odd):])
	copy(f.raw, f.odd)
	n += len(f.odd)
	b := f.raw[:n]
	for i := 0; i+1 < len(b); i += 2 {
		dst = append(dst, float32(int16(binary.LittleEndian.Uint16(b[i:])))/(1<<15))
	}
	f.n += int64(len(b) / 2)
	f.odd = append(f.odd[:0], b[len(b)&^1:]...)
	if err == nil {
		return dst, nil
	}
	if err != io.EOF {
		f.finish()
		return dst, fmt.Errorf("decode audio: read ffmpeg output: %w", err)
	}
	return dst, f.finish()
}

// finish waits for ffmpeg and says why it stopped: io.EOF when all went well.
func (f *ffmpegSource) finish() error {
	if f.waited {
		return io.EOF
	}
	f.waited = true
	werr := f.cmd.Wait()
	f.stopServer()
	if err := f.inErr.get(); err != nil {
		return err
	}
	if err := f.ctx.Err(); err != nil {
		return err
	}
	if werr != nil {
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			msg := strings.TrimSpace(f.stderr.String())
			if msg == "" {
				msg = ee.String()
			}
			return fmt.Errorf("%w: ffmpeg: %s", ErrMalformed, msg)
		}
		return fmt.Errorf("decode audio: ffmpeg: %w", werr)
	}
	if msg := strings.TrimSpace(f.stderr.String()); f.n == 0 && msg != "" {
		// ffmpeg can give up on an input yet exit 0 (an MP4 whose index it could not reach on a pipe).
		return fmt.Errorf("%w: ffmpeg: %s", ErrMalformed, msg)
	}
	return io.EOF
}

func (f *ffmpegSource) close() error {
	if !f.waited {
		f.waited = true
		f.cmd.Process.Kill()
		f.cmd.Wait()
	}
	f.stopServer()
	return nil
}

func (f *ffmpegSource) stopServer() {
	if f.srv != nil {
		f.srv.Close()
		f.srv = nil
	}
}

var _ source = (*ffmpegSource)(nil)

// firstErr keeps the first error recorded, across goroutines.
type firstErr struct {
	mu  sync.Mutex
	err error
}

func (f *firstErr) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *firstErr) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// errReader records read errors other than io.EOF.
type errReader struct {
	r   io.Reader
	rec *firstErr
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.rec.set(err)
	}
	return n, err
}

// errReaderAt records ReadAt errors other than io.EOF.
type errReaderAt struct {
	r   io.ReaderAt
	rec *firstErr
}

func (e *errReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := e.r.ReadAt(p, off)
	if err != nil && err != io.EOF {
		e.rec.set(err)
	}
	return n, err
}

// tailBuffer keeps the last max bytes written to it (ffmpeg's error output).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
