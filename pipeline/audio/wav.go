package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// WAV format codes.
const (
	wavPCM        = 0x0001
	wavFloat      = 0x0003
	wavALaw       = 0x0006
	wavMuLaw      = 0x0007
	wavExtensible = 0xFFFE
)

// Limits that keep a hostile header from asking for absurd buffers.
const (
	maxChannels   = 64
	minRate       = 1000
	maxRate       = 384000
	maxFmtChunk   = 1024
	maxHeaderKeep = 1 << 20 // header bytes kept for handing an unsupported WAV to ffmpeg
)

// ksdataformatSuffix is the tail shared by the KSDATAFORMAT_SUBTYPE GUIDs of the basic codecs.
var ksdataformatSuffix = []byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71}

// wavFormat is what the fmt chunk says, resolved.
type wavFormat struct {
	code       uint16 // basic format code, after resolving WAVE_FORMAT_EXTENSIBLE
	channels   int
	rate       int
	blockAlign int
	width      int // bytes per sample in the container
}

// wavHeader is the result of reading a WAV up to the start of its sample data.
type wavHeader struct {
	fmt     wavFormat
	dataLen int64 // bytes of sample data, or -1 when the header does not say (read to EOF)
}

// codecName describes a WAV format code for errors.
func codecName(code uint16) string {
	names := map[uint16]string{
		0x0002: "Microsoft ADPCM", 0x0011: "IMA ADPCM", 0x0031: "GSM 6.10", 0x0040: "G.721 ADPCM",
		0x0050: "MPEG", 0x0055: "MPEG Layer 3", 0x0092: "Dolby AC3", 0x0161: "WMA", 0x1610: "AAC",
		0x2000: "AC3", 0xF1AC: "FLAC",
	}
	if n, ok := names[code]; ok {
		return fmt.Sprintf("%s (format 0x%04X)", n, code)
	}
	return fmt.Sprintf("format 0x%04X", code)
}

// unsupportedCodecError is returned by readWAVHeader for a WAV whose codec ffmpeg might still decode.
type unsupportedCodecError struct{ msg string }

func (e *unsupportedCodecError) Error() string { return e.msg }

// readWAVHeader reads r up to the first byte of sample data.
func readWAVHeader(r io.Reader) (*wavHeader, error) {
	var riff [12]byte
	if _, err := io.ReadFull(r, riff[:]); err != nil {
		return nil, headerErr(err, "RIFF header")
	}
	id := string(riff[0:4])
	if (id != "RIFF" && id != "RF64" && id != "BW64") || string(riff[8:12]) != "WAVE" {
		return nil, fmt.Errorf("%w: no RIFF/WAVE header", ErrMalformed)
	}
	rf64 := id != "RIFF"
	var (
		f        *wavFormat
		ds64Data int64 = -1
		ch       [8]byte
	)
	for {
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			if err == io.EOF {
				return nil, fmt.Errorf("%w: no data chunk", ErrTruncated)
			}
			return nil, headerErr(err, "chunk header")
		}
		cid := string(ch[0:4])
		size := int64(binary.LittleEndian.Uint32(ch[4:8]))
		switch cid {
		case "ds64":
			if size < 24 || size > maxFmtChunk {
				return nil, fmt.Errorf("%w: ds64 chunk of %d bytes", ErrMalformed, size)
			}
			b := make([]byte, size+size&1)
			if _, err := io.ReadFull(r, b); err != nil {
				return nil, headerErr(err, "ds64 chunk")
			}
			ds64Data = int64(binary.LittleEndian.Uint64(b[8:16]))
			continue
		case "fmt ":
			if size < 16 || size > maxFmtChunk {
				return nil, fmt.Errorf("%w: fmt chunk of %d bytes", ErrMalformed, size)
			}
			b := make([]byte, size+size&1)
			if _, err := io.ReadFull(r, b); err != nil {
				return nil, headerErr(err, "fmt chunk")
			}
			pf, err := parseFmt(b[:size])
			if err != nil {
				return nil, err
			}
			f = pf
			continue
		case "data":
			if f == nil {
				return nil, fmt.Errorf("%w: data chunk before fmt chunk", ErrMalformed)
			}
			h := &wavHeader{fmt: *f, dataLen: size}
			switch {
			case rf64 && size == 0xFFFFFFFF && ds64Data >= 0:
				h.dataLen = ds64Data
			case size == 0 || size == 0xFFFFFFFF:
				h.dataLen = -1 // written while streaming, size never filled in
			}
			return h, nil
		}
		// Any other chunk (LIST, fact, bext, JUNK, ...): skip it, with its pad byte.
		skip := size + size&1
		if n, err := io.CopyN(io.Discard, r, skip); err != nil {
			if n < skip && (err == io.EOF || err == io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: in %q chunk", ErrTruncated, cid)
			}
			return nil, err
		}
	}
}

// headerErr turns a short read in the header into ErrTruncated and passes other errors through.
func headerErr(err error, where string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: in %s", ErrTruncated, where)
	}
	return err
}

func parseFmt(b []byte) (*wavFormat, error) {
	code := binary.LittleEndian.Uint16(b[0:2])
	f := &wavFormat{
		code:       code,
		channels:   int(binary.LittleEndian.Uint16(b[2:4])),
		rate:       int(binary.LittleEndian.Uint32(b[4:8])),
		blockAlign: int(binary.LittleEndian.Uint16(b[12:14])),
	}
	bits := int(binary.LittleEndian.Uint16(b[14:16]))
	if code == wavExtensible {
		if len(b) < 40 || binary.LittleEndian.Uint16(b[16:18]) < 22 {
			return nil, fmt.Errorf("%w: WAVE_FORMAT_EXTENSIBLE without its extension", ErrMalformed)
		}
		guid := b[24:40]
		if !bytes.Equal(guid[2:], ksdataformatSuffix) {
			return nil, &unsupportedCodecError{fmt.Sprintf("WAV sub-format GUID %x", guid)}
		}
		f.code = binary.LittleEndian.Uint16(guid[0:2])
	}
	if f.channels < 1 || f.channels > maxChannels {
		return nil, fmt.Errorf("%w: %d channels (want 1 to %d)", ErrUnsupported, f.channels, maxChannels)
	}
	if f.rate < minRate || f.rate > maxRate {
		return nil, fmt.Errorf("%w: sample rate %d Hz (want %d to %d)", ErrUnsupported, f.rate, minRate, maxRate)
	}
	var widths []int
	switch f.code {
	case wavPCM:
		widths = []int{1, 2, 3, 4}
	case wavFloat:
		widths = []int{4, 8}
	case wavALaw, wavMuLaw:
		widths = []int{1}
	default:
		return nil, &unsupportedCodecError{"WAV codec " + codecName(f.code)}
	}
	if f.blockAlign == 0 {
		f.blockAlign = f.channels * ((bits + 7) / 8) // some writers leave it out
	}
	if f.blockAlign%f.channels != 0 {
		return nil, fmt.Errorf("%w: block align %d for %d channels", ErrMalformed, f.blockAlign, f.channels)
	}
	f.width = f.blockAlign / f.channels
	ok := false
	for _, w := range widths {
		ok = ok || w == f.width
	}
	if !ok || bits > 8*f.width {
		return nil, fmt.Errorf("%w: %s with %d-bit samples in %d-byte containers", ErrUnsupported, codecName(f.code), bits, f.width)
	}
	return f, nil
}

// wavSource streams the sample data of a WAV as mono float32 at the file's rate.
type wavSource struct {
	r         io.Reader
	f         wavFormat
	remaining int64 // bytes of data left, or -1 to read to EOF
	raw       []byte
	done      bool
}

func newWAVSource(r io.Reader, h *wavHeader) *wavSource {
	frames := max(1, (64<<10)/h.fmt.blockAlign)
	return &wavSource{r: r, f: h.fmt, remaining: h.dataLen, raw: make([]byte, frames*h.fmt.blockAlign)}
}

// read appends the next block of mono samples to dst; io.EOF once the data is over. A partial frame at
// the end (a file cut short) is dropped.
func (s *wavSource) read(dst []float32) ([]float32, error) {
	if s.done {
		return dst, io.EOF
	}
	want := len(s.raw)
	if s.remaining >= 0 && int64(want) > s.remaining {
		want = int(s.remaining) - int(s.remaining)%s.f.blockAlign
	}
	if want == 0 {
		s.done = true
		return dst, io.EOF
	}
	n, err := io.ReadFull(s.r, s.raw[:want])
	if s.remaining >= 0 {
		s.remaining -= int64(n)
	}
	switch err {
	case nil:
	case io.EOF, io.ErrUnexpectedEOF:
		s.done = true // shorter than declared: keep what is there
	default:
		return dst, err
	}
	frames := n / s.f.blockAlign
	dst = s.convert(dst, s.raw[:frames*s.f.blockAlign], frames)
	if s.done && frames == 0 {
		return dst, io.EOF
	}
	return dst, nil
}

// convert appends one mono sample per frame of b: the mean of the channels.
func (s *wavSource) convert(dst []float32, b []byte, frames int) []float32 {
	ch, w := s.f.channels, s.f.width
	scale := 1 / float64(ch)
	var sample func(b []byte) float64
	switch {
	case s.f.code == wavPCM && w == 1:
		sample = func(b []byte) float64 { return (float64(b[0]) - 128) / 128 }
	case s.f.code == wavPCM && w == 2:
		sample = func(b []byte) float64 { return float64(int16(binary.LittleEndian.Uint16(b))) / (1 << 15) }
	case s.f.code == wavPCM && w == 3:
		sample = func(b []byte) float64 {
			v := int32(uint32(b[0])<<8|uint32(b[1])<<16|uint32(b[2])<<24) >> 8
			return float64(v) / (1 << 23)
		}
	case s.f.code == wavPCM && w == 4:
		sample = func(b []byte) float64 { return float64(int32(binary.LittleEndian.Uint32(b))) / (1 << 31) }
	case s.f.code == wavFloat && w == 4:
		sample = func(b []byte) float64 { return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))) }
	case s.f.code == wavFloat && w == 8:
		sample = func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) }
	case s.f.code == wavALaw:
		sample = func(b []byte) float64 { return float64(alaw[b[0]]) / (1 << 15) }
	case s.f.code == wavMuLaw:
		sample = func(b []byte) float64 { return float64(ulaw[b[0]]) / (1 << 15) }
	}
	if ch == 1 && s.f.code == wavPCM && w == 2 {
		// The common case, without the per-sample call.
		for i := range frames {
			dst = append(dst, float32(int16(binary.LittleEndian.Uint16(b[2*i:])))/(1<<15))
		}
		return dst
	}
	for i := range frames {
		frame := b[i*s.f.blockAlign:]
		var sum float64
		for c := range ch {
			sum += sample(frame[c*w:])
		}
		v := sum * scale
		if math.IsNaN(v) {
			v = 0 // float files can carry anything; NaN would poison the resampler
		}
		v = max(-1, min(1, v))
		dst = append(dst, float32(v))
	}
	return dst
}

// G.711 expansion tables to 16-bit linear.
var alaw, ulaw [256]int16

func init() {
	for i := range 256 {
		// A-law (ITU-T G.711), with the even bits inverted.
		a := byte(i) ^ 0x55
		t := int(a&0x0F) << 4
		seg := int(a&0x70) >> 4
		switch seg {
		case 0:
			t += 8
		case 1:
			t += 0x108
		default:
			t += 0x108
			t <<= seg - 1
		}
		if a&0x80 == 0 {
			t = -t
		}
		alaw[i] = int16(t)

		// µ-law, stored complemented.
		u := ^byte(i)
		t = (int(u&0x0F) << 3) + 0x84
		t <<= (u & 0x70) >> 4
		if u&0x80 != 0 {
			ulaw[i] = int16(0x84 - t)
		} else {
			ulaw[i] = int16(t - 0x84)
		}
	}
}
