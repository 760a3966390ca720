package audio

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// DefaultMaxDuration bounds what Decode accepts when the Decoder sets no MaxDuration: four hours of
// 16 kHz float32 is 920 MB of memory.
const DefaultMaxDuration = 4 * time.Hour

// Decoder decodes audio to PCM. The zero value is ready to use: WAV in Go, other formats through the
// ffmpeg found on PATH.
type Decoder struct {
	// FFmpeg is the ffmpeg executable: empty looks "ffmpeg" up on PATH; "none" never runs ffmpeg.
	FFmpeg string
	// MaxDuration bounds the audio Decode returns; 0 means DefaultMaxDuration. Stream has no bound.
	MaxDuration time.Duration
}

// Decode decodes r with the zero Decoder.
func Decode(ctx context.Context, r io.Reader, contentType string) (*PCM, error) {
	var d Decoder
	return d.Decode(ctx, r, contentType)
}

// Open opens r for streaming with the zero Decoder.
func Open(ctx context.Context, r io.Reader, contentType string) (*Stream, error) {
	var d Decoder
	return d.Open(ctx, r, contentType)
}

// Decode reads all of r and returns it as 16 kHz mono PCM. contentType is the declared type (it may be
// empty or wrong; the bytes decide when they are recognised). When r also has ReadAt and Size (as a
// blob.Object does), MP4/M4A input whose index sits at the end of the file can be decoded too.
func (d *Decoder) Decode(ctx context.Context, r io.Reader, contentType string) (*PCM, error) {
	s, err := d.Open(ctx, r, contentType)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	maxDur := d.MaxDuration
	if maxDur <= 0 {
		maxDur = DefaultMaxDuration
	}
	limit := durationToSamples(maxDur)
	var samples []float32
	if n := s.expected; n > 0 && n <= int64(limit) {
		// Trust the header for the first 16 MB only: it may lie, and append grows the rest.
		samples = make([]float32, 0, min(n+1, 1<<22))
	}
	buf := make([]float32, 32<<10)
	for {
		n, err := s.Read(buf)
		samples = append(samples, buf[:n]...)
		if len(samples) > limit {
			return nil, s.decodeErr(fmt.Errorf("%w: longer than %v", ErrTooLong, maxDur))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if len(samples) == 0 {
		return nil, s.decodeErr(fmt.Errorf("%w: no samples", ErrEmpty))
	}
	return &PCM{Samples: samples}, nil
}

// Stream is decoded audio read in pieces, for recordings too long to hold at once.
type Stream struct {
	format      Format
	contentType string
	src         source
	rs          *resampler
	scratch     []float32 // source samples before resampling
	pending     []float32 // output not yet read
	pos         int
	eof         bool
	expected    int64 // output samples the header promises, or 0
}

// source yields mono samples at some rate.
type source interface {
	read(dst []float32) ([]float32, error)
	close() error
}

// Format is the container the stream was decoded from.
func (s *Stream) Format() Format { return s.format }

// Read fills dst with 16 kHz mono samples and returns how many; io.EOF after the last.
func (s *Stream) Read(dst []float32) (int, error) {
	for s.pos == len(s.pending) && !s.eof {
		var err error
		s.scratch, err = s.src.read(s.scratch[:0])
		if err != nil && err != io.EOF {
			return 0, s.wrapReadErr(err)
		}
		s.eof = err == io.EOF
		s.pos = 0
		if s.rs != nil {
			s.pending = s.rs.push(s.scratch, s.pending[:0])
			if s.eof {
				s.pending = s.rs.flush(s.pending)
			}
			// Band-limiting overshoots on steps (Gibbs); keep the promise of [-1, 1].
			for i, v := range s.pending {
				s.pending[i] = max(-1, min(1, v))
			}
		} else {
			s.pending, s.scratch = s.scratch, s.pending
		}
	}
	n := copy(dst, s.pending[s.pos:])
	s.pos += n
	if n == 0 && s.eof {
		return 0, io.EOF
	}
	return n, nil
}

// Close stops decoding and releases what the stream holds (an ffmpeg process).
func (s *Stream) Close() error { return s.src.close() }

func (s *Stream) decodeErr(err error) error {
	return &DecodeError{ContentType: s.contentType, Format: s.format, Err: err}
}

// wrapReadErr passes I/O and context errors through and wraps decoding failures.
func (s *Stream) wrapReadErr(err error) error {
	var de *DecodeError
	if errors.As(err, &de) {
		return err
	}
	if isDecodeReason(err) {
		return s.decodeErr(err)
	}
	return err
}

func isDecodeReason(err error) bool {
	for _, r := range []error{ErrEmpty, ErrTruncated, ErrMalformed, ErrUnsupported, ErrNoFFmpeg, ErrTooLong} {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// Open sniffs r and starts decoding it; read the samples with Stream.Read and Close the stream.
func (d *Decoder) Open(ctx context.Context, r io.Reader, contentType string) (*Stream, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(SniffLen)
	if len(head) == 0 {
		if err != nil && err != io.EOF {
			return nil, err
		}
		return nil, &DecodeError{ContentType: contentType, Format: FormatOf(contentType), Err: fmt.Errorf("%w: empty input", ErrEmpty)}
	}
	format := Sniff(head)
	if format == FormatUnknown {
		format = FormatOf(contentType)
	}
	s := &Stream{format: format, contentType: contentType}
	if format != FormatWAV {
		return d.openFFmpeg(ctx, s, ffmpegInput{orig: r, br: br, sniffed: Sniff(head) != FormatUnknown})
	}
	// Keep the header bytes, so that a WAV codec this package does not decode can go to ffmpeg whole.
	rec := &recorder{r: br}
	h, err := readWAVHeader(rec)
	if err != nil {
		var uc *unsupportedCodecError
		if errors.As(err, &uc) {
			if rec.overflow {
				return nil, s.decodeErr(fmt.Errorf("%w: %s", ErrUnsupported, uc.msg))
			}
			return d.openFFmpeg(ctx, s, ffmpegInput{orig: r, br: br, replay: rec.buf.Bytes(), sniffed: true, why: uc.msg})
		}
		if isDecodeReason(err) {
			return nil, s.decodeErr(err)
		}
		return nil, err
	}
	src := newWAVSource(&ctxReader{ctx: ctx, r: br}, h)
	s.src = src
	s.rs = newResampler(h.fmt.rate, SampleRate)
	if h.dataLen > 0 {
		frames := h.dataLen / int64(h.fmt.blockAlign)
		s.expected = (frames*SampleRate + int64(h.fmt.rate) - 1) / int64(h.fmt.rate)
	}
	return s, nil
}

// recorder keeps what is read through it, up to maxHeaderKeep bytes.
type recorder struct {
	r        io.Reader
	buf      bytes.Buffer
	overflow bool
}

func (rc *recorder) Read(p []byte) (int, error) {
	n, err := rc.r.Read(p)
	if rc.buf.Len()+n > maxHeaderKeep {
		rc.overflow = true
	} else {
		rc.buf.Write(p[:n])
	}
	return n, err
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// wavSource and the ffmpeg source implement source.
func (s *wavSource) close() error { return nil }

var _ source = (*wavSource)(nil)
