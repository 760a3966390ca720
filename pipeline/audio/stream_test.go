package audio_test

import (
	"encoding/binary"
	"io"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iambilly/billy/pipeline/audio"
)

// syntheticWAV streams a 48 kHz stereo 24-bit WAV of the given length without holding it in memory.
type syntheticWAV struct {
	header []byte
	left   int64 // sample bytes still to produce
	phase  uint32
}

func newSyntheticWAV(d time.Duration) *syntheticWAV {
	const rate, ch, width = 48000, 2, 3
	n := int64(d.Seconds()*rate) * ch * width
	h := make([]byte, 44)
	copy(h, "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+n))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)
	binary.LittleEndian.PutUint16(h[22:], ch)
	binary.LittleEndian.PutUint32(h[24:], rate)
	binary.LittleEndian.PutUint32(h[28:], rate*ch*width)
	binary.LittleEndian.PutUint16(h[32:], ch*width)
	binary.LittleEndian.PutUint16(h[34:], 8*width)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(n))
	return &syntheticWAV{header: h, left: n}
}

func (s *syntheticWAV) Read(p []byte) (int, error) {
	if len(s.header) > 0 {
		n := copy(p, s.header)
		s.header = s.header[n:]
		return n, nil
	}
	if s.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), s.left))
	for i := range n {
		s.phase = s.phase*1664525 + 1013904223 // noise: any bytes are valid 24-bit samples
		p[i] = byte(s.phase >> 24)
	}
	s.left -= int64(n)
	return n, nil
}

// TestStreamFlatMemory decodes 3 minutes of 48 kHz stereo 24-bit audio (52 MB) through a Stream and
// checks that the live heap stays far below the input's size: the decoder works block by block.
// Not parallel, so that no other test's allocations count.
func TestStreamFlatMemory(t *testing.T) {
	const length = 3 * time.Minute
	const bound = 8 << 20
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak.Store(max(peak.Load(), s[0].Value.Uint64()))
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	s, err := audio.Open(t.Context(), newSyntheticWAV(length), "audio/wav")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]float32, 4096)
	var n int
	for {
		k, err := s.Read(buf)
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	close(stop)
	<-done

	if want := int(length.Seconds()) * audio.SampleRate; n != want {
		t.Errorf("decoded %d samples, want %d", n, want)
	}
	grew := int64(peak.Load()) - int64(base)
	t.Logf("live heap grew by %d KiB while decoding a 52 MB WAV", grew>>10)
	if grew > bound {
		t.Errorf("live heap grew by %d MiB while streaming a 52 MB WAV, want under %d MiB", grew>>20, bound>>20)
	}
}
