package audio_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/iambilly/billy/pipeline/audio"
)

// wavSpec describes a WAV file to build in memory.
type wavSpec struct {
	code       uint16 // format tag; 0xFFFE writes WAVE_FORMAT_EXTENSIBLE around subCode
	subCode    uint16
	channels   int
	rate       int
	bits       int
	blockAlign int    // 0: channels*bits/8
	data       []byte // sample bytes
	dataSize   int64  // size field of the data chunk; -1: len(data)
	before     []byte // chunks between fmt and data
	riff       string // "RIFF" unless set
	ds64Data   int64  // for RF64: the real data size
}

func (w wavSpec) bytes() []byte {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	riff := w.riff
	if riff == "" {
		riff = "RIFF"
	}
	if w.blockAlign == 0 {
		w.blockAlign = w.channels * w.bits / 8
	}
	b.WriteString(riff)
	le(uint32(0)) // RIFF size: readers must not depend on it
	b.WriteString("WAVE")
	if riff == "RF64" {
		b.WriteString("ds64")
		le(uint32(28))
		le(uint64(0))
		le(uint64(w.ds64Data))
		le(uint64(0))
		le(uint32(0))
	}
	b.WriteString("fmt ")
	if w.code == 0xFFFE {
		le(uint32(40))
	} else {
		le(uint32(16))
	}
	le(w.code)
	le(uint16(w.channels))
	le(uint32(w.rate))
	le(uint32(w.rate * w.blockAlign))
	le(uint16(w.blockAlign))
	le(uint16(w.bits))
	if w.code == 0xFFFE {
		le(uint16(22))
		le(uint16(w.bits))
		le(uint32(0))
		le(w.subCode)
		b.Write([]byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71})
	}
	b.Write(w.before)
	b.WriteString("data")
	size := w.dataSize
	if size == -1 || size == 0 && len(w.data) > 0 && riff == "RIFF" {
		size = int64(len(w.data))
	}
	le(uint32(size))
	b.Write(w.data)
	return b.Bytes()
}

// pcm16 encodes samples as 16-bit little-endian.
func pcm16(s ...float64) []byte {
	b := make([]byte, 2*len(s))
	for i, v := range s {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(int16(math.Round(v*32767))))
	}
	return b
}

var ramp = []float64{0, 0.5, -0.5, 0.25, -1, 0.999, 0.125, -0.125}

func encodeRamp(bits int, float bool) []byte {
	var b bytes.Buffer
	for _, v := range ramp {
		switch {
		case float && bits == 32:
			binary.Write(&b, binary.LittleEndian, float32(v))
		case float:
			binary.Write(&b, binary.LittleEndian, v)
		case bits == 8:
			b.WriteByte(byte(math.Round(v*127) + 128))
		case bits == 16:
			binary.Write(&b, binary.LittleEndian, int16(math.Round(v*32767)))
		case bits == 24:
			x := int32(math.Round(v * 8388607))
			b.Write([]byte{byte(x), byte(x >> 8), byte(x >> 16)})
		case bits == 32:
			binary.Write(&b, binary.LittleEndian, int32(math.Round(v*2147483647)))
		}
	}
	return b.Bytes()
}

func TestDecodeWAVEncodings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec wavSpec
		want []float64
		tol  float64
	}{
		{"8-bit unsigned", wavSpec{code: 1, channels: 1, rate: 16000, bits: 8, data: encodeRamp(8, false)}, ramp, 1.0 / 64},
		{"16-bit", wavSpec{code: 1, channels: 1, rate: 16000, bits: 16, data: encodeRamp(16, false)}, ramp, 1e-4},
		{"24-bit", wavSpec{code: 1, channels: 1, rate: 16000, bits: 24, data: encodeRamp(24, false)}, ramp, 1e-6},
		{"32-bit", wavSpec{code: 1, channels: 1, rate: 16000, bits: 32, data: encodeRamp(32, false)}, ramp, 1e-6},
		{"float32", wavSpec{code: 3, channels: 1, rate: 16000, bits: 32, data: encodeRamp(32, true)}, ramp, 1e-7},
		{"float64", wavSpec{code: 3, channels: 1, rate: 16000, bits: 64, data: encodeRamp(64, true)}, ramp, 1e-7},
		{"extensible 24-bit", wavSpec{code: 0xFFFE, subCode: 1, channels: 1, rate: 16000, bits: 24, data: encodeRamp(24, false)}, ramp, 1e-6},
		{"extensible float", wavSpec{code: 0xFFFE, subCode: 3, channels: 1, rate: 16000, bits: 32, data: encodeRamp(32, true)}, ramp, 1e-7},
		{"A-law", wavSpec{code: 6, channels: 1, rate: 16000, bits: 8, data: []byte{0xD5, 0x55, 0xAA, 0x2A}},
			[]float64{8.0 / 32768, -8.0 / 32768, 32256.0 / 32768, -32256.0 / 32768}, 1e-6},
		{"µ-law", wavSpec{code: 7, channels: 1, rate: 16000, bits: 8, data: []byte{0xFF, 0x80, 0x00, 0x7F}},
			[]float64{0, 32124.0 / 32768, -32124.0 / 32768, 0}, 1e-6},
		{"stereo downmix is the mean", wavSpec{code: 1, channels: 2, rate: 16000, bits: 16, data: pcm16(0.5, -0.5, 0.5, 0.25, -1, -1)},
			[]float64{0, 0.375, -1}, 1e-4},
		{"odd-sized chunk before data is skipped with its pad byte",
			wavSpec{code: 1, channels: 1, rate: 16000, bits: 16, data: pcm16(0.5, 0.25),
				before: append([]byte("LIST\x03\x00\x00\x00abc"), 0)}, []float64{0.5, 0.25}, 1e-4},
		{"data size 0xFFFFFFFF (streamed) reads to the end", wavSpec{code: 1, channels: 1, rate: 16000, bits: 16,
			data: pcm16(0.5, 0.25, 0.125), dataSize: 0xFFFFFFFF}, []float64{0.5, 0.25, 0.125}, 1e-4},
		{"data shorter than declared keeps what is there, without the partial frame", wavSpec{code: 1, channels: 2, rate: 16000, bits: 16,
			data: pcm16(0.5, 0.5, 0.25, 0.25, 0.1)[:9], dataSize: 1000}, []float64{0.5, 0.25}, 1e-4},
		{"data longer than declared stops at the declared end", wavSpec{code: 1, channels: 1, rate: 16000, bits: 16,
			data: pcm16(0.5, 0.25, 0.125), dataSize: 4}, []float64{0.5, 0.25}, 1e-4},
		{"RF64", wavSpec{riff: "RF64", code: 1, channels: 1, rate: 16000, bits: 16, data: pcm16(0.5, 0.25),
			dataSize: 0xFFFFFFFF, ds64Data: 4}, []float64{0.5, 0.25}, 1e-4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := audio.Decoder{FFmpeg: "none"}
			pcm, err := d.Decode(t.Context(), bytes.NewReader(tt.spec.bytes()), "audio/wav")
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(pcm.Samples) != len(tt.want) {
				t.Fatalf("got %d samples %v, want %d %v", len(pcm.Samples), pcm.Samples, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if math.Abs(float64(pcm.Samples[i])-w) > tt.tol {
					t.Errorf("sample %d = %v, want %v ± %v", i, pcm.Samples[i], w, tt.tol)
				}
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	good := wavSpec{code: 1, channels: 1, rate: 16000, bits: 16, data: pcm16(0.5, 0.25)}.bytes()
	tests := []struct {
		name  string
		input []byte
		ct    string
		want  []error
		msg   string
	}{
		{"empty input", nil, "audio/wav", []error{audio.ErrEmpty}, "empty input"},
		{"RIFF only", []byte("RIFF"), "audio/wav", []error{audio.ErrTruncated}, "RIFF header"},
		{"header cut in fmt", good[:30], "audio/wav", []error{audio.ErrTruncated}, "fmt chunk"},
		{"no data chunk", good[:36], "", []error{audio.ErrTruncated}, "no data chunk"},
		{"header without samples", wavSpec{code: 1, channels: 1, rate: 16000, bits: 16, dataSize: -1}.bytes(), "audio/wav", []error{audio.ErrEmpty}, "no samples"},
		{"labelled WAV, is not", []byte("this is not a wave file at all"), "audio/wav", []error{audio.ErrMalformed}, "no RIFF/WAVE header"},
		{"IMA ADPCM without ffmpeg", wavSpec{code: 0x11, channels: 1, rate: 8000, bits: 4, blockAlign: 256, data: make([]byte, 256)}.bytes(),
			"audio/wav", []error{audio.ErrUnsupported, audio.ErrNoFFmpeg}, "IMA ADPCM (format 0x0011) needs ffmpeg"},
		{"zero channels", wavSpec{code: 1, channels: 0, rate: 16000, bits: 16, blockAlign: 2, data: pcm16(0)}.bytes(), "", []error{audio.ErrUnsupported}, "0 channels"},
		{"sample rate 100 Hz", wavSpec{code: 1, channels: 1, rate: 100, bits: 16, data: pcm16(0)}.bytes(), "", []error{audio.ErrUnsupported}, "sample rate 100 Hz"},
		{"24 bits in 2-byte containers", wavSpec{code: 1, channels: 1, rate: 16000, bits: 24, blockAlign: 2, data: pcm16(0)}.bytes(), "", []error{audio.ErrUnsupported}, "24-bit samples in 2-byte"},
		{"float in 2-byte containers", wavSpec{code: 3, channels: 1, rate: 16000, bits: 16, data: pcm16(0)}.bytes(), "", []error{audio.ErrUnsupported}, ""},
		{"data before fmt", []byte("RIFF\x00\x00\x00\x00WAVEdata\x02\x00\x00\x00\x00\x00"), "", []error{audio.ErrMalformed}, "data chunk before fmt"},
		{"ogg without ffmpeg", []byte("OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x02"), "audio/ogg; codecs=opus", []error{audio.ErrNoFFmpeg}, "install it"},
		{"unknown bytes without ffmpeg", []byte("%PDF-1.7 not audio"), "application/pdf", []error{audio.ErrNoFFmpeg}, "unrecognised format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := audio.Decoder{FFmpeg: "none"}
			pcm, err := d.Decode(t.Context(), bytes.NewReader(tt.input), tt.ct)
			if err == nil {
				t.Fatalf("Decode = %d samples, want an error", len(pcm.Samples))
			}
			var de *audio.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %q (%T) is not a *DecodeError", err, err)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q does not wrap %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), "cannot decode audio") {
				t.Errorf("error %q: want it to start with %q and contain %q", err, "cannot decode audio", tt.msg)
			}
			if tt.ct != "" && !strings.Contains(err.Error(), tt.ct) {
				t.Errorf("error %q does not name the content type %q", err, tt.ct)
			}
		})
	}
}

func TestDecodeTooLong(t *testing.T) {
	t.Parallel()
	spec := wavSpec{code: 1, channels: 1, rate: 16000, bits: 16, data: make([]byte, 2*16000*3)} // 3 s
	d := audio.Decoder{MaxDuration: 2 * time.Second}
	_, err := d.Decode(t.Context(), bytes.NewReader(spec.bytes()), "")
	if !errors.Is(err, audio.ErrTooLong) {
		t.Fatalf("Decode of 3 s with MaxDuration 2 s = %v, want ErrTooLong", err)
	}
}

// TestInputErrorsAreNotDecodeErrors: a storage failure or a cancelled context must not look permanent.
func TestInputErrorsAreNotDecodeErrors(t *testing.T) {
	t.Parallel()
	spec := wavSpec{code: 1, channels: 1, rate: 44100, bits: 16, data: make([]byte, 2*44100*2)}
	boom := errors.New("blob store unreachable")
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		r    io.Reader
		want error
	}{
		{"read fails in the data", t.Context(), io.MultiReader(bytes.NewReader(spec.bytes()[:100_000]), iotestErr(boom)), boom},
		{"read fails in the header", t.Context(), io.MultiReader(bytes.NewReader(spec.bytes()[:20]), iotestErr(boom)), boom},
		{"context canceled", canceled, bytes.NewReader(spec.bytes()), context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := audio.Decode(tt.ctx, tt.r, "audio/wav")
			var de *audio.DecodeError
			if !errors.Is(err, tt.want) || errors.As(err, &de) {
				t.Fatalf("Decode = %v, want %v and not a DecodeError", err, tt.want)
			}
		})
	}
}

type errAfter struct{ err error }

func (e errAfter) Read([]byte) (int, error) { return 0, e.err }

func iotestErr(err error) io.Reader { return errAfter{err} }

func TestStreamMatchesDecode(t *testing.T) {
	t.Parallel()
	n := 44100 * 3
	data := make([]byte, 2*n)
	for i := range n {
		binary.LittleEndian.PutUint16(data[2*i:], uint16(int16(10000*math.Sin(float64(i)/7))))
	}
	wav := wavSpec{code: 1, channels: 1, rate: 44100, bits: 16, data: data}.bytes()
	whole, err := audio.Decode(t.Context(), bytes.NewReader(wav), "audio/wav")
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * time.Second; whole.Duration() != want {
		t.Errorf("Duration = %v, want %v", whole.Duration(), want)
	}
	s, err := audio.Open(t.Context(), bytes.NewReader(wav), "audio/wav")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Format() != audio.FormatWAV {
		t.Errorf("Format = %s", s.Format())
	}
	var got []float32
	buf := make([]float32, 1000)
	for {
		n, err := s.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != len(whole.Samples) {
		t.Fatalf("stream gave %d samples, Decode %d", len(got), len(whole.Samples))
	}
	for i := range got {
		if got[i] != whole.Samples[i] {
			t.Fatalf("sample %d differs", i)
		}
	}
}

func TestSniff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		head string
		want audio.Format
	}{
		{"RIFF\x00\x00\x00\x00WAVEfmt ", audio.FormatWAV},
		{"RF64\xff\xff\xff\xffWAVEds64", audio.FormatWAV},
		{"RIFF\x00\x00\x00\x00AVI LIST", audio.FormatUnknown},
		{"OggS\x00\x02", audio.FormatOgg},
		{"ID3\x04\x00", audio.FormatMP3},
		{"\xff\xfb\x90\x64", audio.FormatMP3},
		{"\xff\xf1\x50\x80", audio.FormatAAC},
		{"\x00\x00\x00\x20ftypM4A ", audio.FormatMP4},
		{"\x1a\x45\xdf\xa3\x9f", audio.FormatWebM},
		{"fLaC\x00\x00", audio.FormatFLAC},
		{"#!AMR\n", audio.FormatAMR},
		{"FORM\x00\x00\x00\x00AIFF", audio.FormatAIFF},
		{"caff\x00\x01", audio.FormatCAF},
		{"\x30\x26\xb2\x75\x8e\x66\xcf\x11", audio.FormatASF},
		{"{\"resourceType\"", audio.FormatUnknown},
		{"", audio.FormatUnknown},
	}
	for _, tt := range tests {
		if got := audio.Sniff([]byte(tt.head)); got != tt.want {
			t.Errorf("Sniff(%q) = %s, want %s", tt.head, got, tt.want)
		}
	}
	for ct, want := range map[string]audio.Format{
		"audio/wav": audio.FormatWAV, "audio/x-wav; rate=8000": audio.FormatWAV, "audio/ogg; codecs=opus": audio.FormatOgg,
		"audio/mpeg": audio.FormatMP3, "audio/x-m4a": audio.FormatMP4, "video/webm": audio.FormatWebM,
		"application/octet-stream": audio.FormatUnknown, "": audio.FormatUnknown,
	} {
		if got := audio.FormatOf(ct); got != want {
			t.Errorf("FormatOf(%q) = %s, want %s", ct, got, want)
		}
	}
}

func TestChunks(t *testing.T) {
	t.Parallel()
	secs := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	tests := []struct {
		name           string
		length         time.Duration
		chunk, overlap time.Duration
		want           [][2]float64 // start, end in seconds
	}{
		{"75 s in 30 s chunks, 2 s overlap", secs(75), secs(30), secs(2), [][2]float64{{0, 30}, {28, 58}, {56, 75}}},
		{"ends exactly on a chunk", secs(58), secs(30), secs(2), [][2]float64{{0, 30}, {28, 58}}},
		{"shorter than a chunk", secs(10), secs(30), secs(2), [][2]float64{{0, 10}}},
		{"exactly one chunk", secs(30), secs(30), secs(2), [][2]float64{{0, 30}}},
		{"no overlap", secs(65), secs(30), 0, [][2]float64{{0, 30}, {30, 60}, {60, 65}}},
		{"overlap not below chunk counts as none", secs(40), secs(20), secs(20), [][2]float64{{0, 20}, {20, 40}}},
		{"no chunking", secs(100), 0, 0, [][2]float64{{0, 100}}},
		{"empty", 0, secs(30), secs(2), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pcm := &audio.PCM{Samples: make([]float32, int(tt.length.Seconds()*audio.SampleRate))}
			for i := range pcm.Samples {
				pcm.Samples[i] = float32(i)
			}
			got := audio.Chunks(pcm, tt.chunk, tt.overlap)
			if len(got) != len(tt.want) {
				t.Fatalf("%d chunks, want %d", len(got), len(tt.want))
			}
			for i, c := range got {
				start, end := c.Offset, c.Offset+c.PCM.Duration()
				if start != secs(tt.want[i][0]) || end != secs(tt.want[i][1]) {
					t.Errorf("chunk %d = [%v, %v), want [%vs, %vs)", i, start, end, tt.want[i][0], tt.want[i][1])
				}
				// The chunk's samples are the recording's samples at its offset.
				if first := int(c.PCM.Samples[0]); first != int(c.Offset.Seconds()*audio.SampleRate) {
					t.Errorf("chunk %d starts with sample %d, offset says %v", i, first, c.Offset)
				}
			}
		})
	}
}

func TestEncodeWAV(t *testing.T) {
	t.Parallel()
	in := &audio.PCM{Samples: []float32{0, 0.5, -0.5, 1, -1, 1.5, -1.5, float32(math.NaN())}}
	wav := audio.EncodeWAV(in)
	if len(wav) != audio.WAVHeaderSize+2*len(in.Samples) {
		t.Fatalf("EncodeWAV gave %d bytes", len(wav))
	}
	le := binary.LittleEndian
	if string(wav[0:4]) != "RIFF" || string(wav[8:16]) != "WAVEfmt " || le.Uint16(wav[20:]) != 1 ||
		le.Uint16(wav[22:]) != 1 || le.Uint32(wav[24:]) != 16000 || le.Uint16(wav[34:]) != 16 ||
		le.Uint32(wav[40:]) != uint32(2*len(in.Samples)) || le.Uint32(wav[4:]) != uint32(len(wav)-8) {
		t.Fatalf("bad header % x", wav[:44])
	}
	out, err := audio.Decode(t.Context(), bytes.NewReader(wav), "audio/wav")
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0, 0.5, -0.5, 1, -1, 1, -1, 0}
	for i := range want {
		if math.Abs(float64(out.Samples[i]-want[i])) > 1.0/32767 {
			t.Errorf("sample %d: %v round-tripped to %v, want %v", i, in.Samples[i], out.Samples[i], want[i])
		}
	}
}

func FuzzDecodeWAV(f *testing.F) {
	f.Add(wavSpec{code: 1, channels: 1, rate: 16000, bits: 16, data: pcm16(0.5, 0.25)}.bytes())
	f.Add(wavSpec{code: 1, channels: 2, rate: 44100, bits: 24, data: make([]byte, 600)}.bytes())
	f.Add(wavSpec{code: 0xFFFE, subCode: 3, channels: 3, rate: 48000, bits: 32, data: make([]byte, 1200)}.bytes())
	f.Add(wavSpec{code: 3, channels: 1, rate: 8000, bits: 64, data: make([]byte, 64)}.bytes())
	f.Add(wavSpec{code: 7, channels: 1, rate: 8000, bits: 8, data: []byte{1, 2, 3, 4}}.bytes())
	f.Add(wavSpec{riff: "RF64", code: 1, channels: 1, rate: 22050, bits: 8, data: []byte{1, 2, 3}, dataSize: 0xFFFFFFFF, ds64Data: 3}.bytes())
	f.Add(wavSpec{code: 1, channels: 1, rate: 11025, bits: 16, data: pcm16(1, -1), before: []byte("LIST\x01\x00\x00\x00x\x00")}.bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		if audio.Sniff(b) != audio.FormatWAV {
			b = append([]byte("RIFF\x00\x00\x00\x00WAVE"), b...)
		}
		d := audio.Decoder{FFmpeg: "none", MaxDuration: time.Hour}
		pcm, err := d.Decode(context.Background(), bytes.NewReader(b), "audio/wav")
		if err != nil {
			var de *audio.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error from in-memory input is not a DecodeError: %v", err)
			}
			return
		}
		for i, s := range pcm.Samples {
			if math.IsNaN(float64(s)) || math.Abs(float64(s)) > 1 {
				t.Fatalf("sample %d = %v", i, s)
			}
		}
	})
}
