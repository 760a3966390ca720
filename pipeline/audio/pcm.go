package audio

import (
	"encoding/binary"
	"math"
	"time"
)

// SampleRate is the rate of every PCM this package produces: what speech-to-text models are trained on.
const SampleRate = 16000

// PCM is mono audio at SampleRate, samples in [-1, 1].
type PCM struct {
	Samples []float32
}

// Duration is the length of the audio.
func (p *PCM) Duration() time.Duration {
	return samplesToDuration(len(p.Samples))
}

func samplesToDuration(n int) time.Duration {
	return time.Duration(n) * time.Second / SampleRate
}

func durationToSamples(d time.Duration) int {
	return int((d*SampleRate + time.Second/2) / time.Second)
}

// Chunk is a piece of a longer PCM and where it starts in it.
type Chunk struct {
	// Offset is the chunk's start in the whole recording; add it to times measured within the chunk.
	Offset time.Duration
	// PCM shares its samples with the whole recording (no copy).
	PCM *PCM
}

// Chunks cuts pcm into pieces of length chunk whose starts are chunk-overlap apart, so that each piece
// shares its first overlap with the end of the one before (a word cut at one boundary is whole in the
// neighbour). The last piece is shorter, and no piece lies wholly inside the one before. A chunk of 0 or
// less, or audio no longer than chunk, gives one piece; an overlap outside [0, chunk) counts as 0. Empty
// audio gives no pieces. For 75 s with chunk 30 s and overlap 2 s: [0 s, 30 s), [28 s, 58 s), [56 s, 75 s).
func Chunks(pcm *PCM, chunk, overlap time.Duration) []Chunk {
	n := len(pcm.Samples)
	if n == 0 {
		return nil
	}
	size := durationToSamples(chunk)
	if size <= 0 || size >= n {
		return []Chunk{{Offset: 0, PCM: pcm}}
	}
	ov := durationToSamples(overlap)
	if ov < 0 || ov >= size {
		ov = 0
	}
	step := size - ov
	var out []Chunk
	for start := 0; ; start += step {
		end := min(start+size, n)
		out = append(out, Chunk{Offset: samplesToDuration(start), PCM: &PCM{Samples: pcm.Samples[start:end:end]}})
		if end == n {
			return out
		}
	}
}

// WAVHeaderSize is the size of the header EncodeWAV writes.
const WAVHeaderSize = 44

// EncodeWAV encodes pcm as a 16-bit mono WAV at SampleRate (what HTTP speech-to-text servers accept
// everywhere). Samples outside [-1, 1] are clipped.
func EncodeWAV(pcm *PCM) []byte {
	dataLen := 2 * len(pcm.Samples)
	b := make([]byte, WAVHeaderSize+dataLen)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+dataLen))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], SampleRate)
	binary.LittleEndian.PutUint32(b[28:], SampleRate*2)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(dataLen))
	out := b[WAVHeaderSize:]
	for i, s := range pcm.Samples {
		v := math.Round(float64(s) * 32767)
		if math.IsNaN(v) {
			v = 0
		}
		v = max(-32768, min(32767, v))
		binary.LittleEndian.PutUint16(out[2*i:], uint16(int16(v)))
	}
	return b
}
