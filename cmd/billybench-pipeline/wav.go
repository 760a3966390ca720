package main

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"time"
)

// synthWAV makes a mono 16-bit PCM WAV of length d at rate Hz: a voice-like tone (a 120–240 Hz
// fundamental with harmonics, gliding and pulsing at syllable rate) over low noise. Billy decodes and
// resamples whatever it is given, so the content does not matter to its cost; a real waveform keeps
// the stub honest should it ever look at the audio.
func synthWAV(rate int, d time.Duration) []byte {
	n := int(d.Seconds() * float64(rate))
	b := make([]byte, wavLen(rate, d))
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16) // fmt chunk size
	binary.LittleEndian.PutUint16(b[20:], 1)  // PCM
	binary.LittleEndian.PutUint16(b[22:], 1)  // mono
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(2*rate)) // byte rate
	binary.LittleEndian.PutUint16(b[32:], 2)              // block align
	binary.LittleEndian.PutUint16(b[34:], 16)             // bits per sample
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*n))
	rng := rand.New(rand.NewPCG(1, 2))
	phase := 0.0
	for i := range n {
		t := float64(i) / float64(rate)
		f0 := 180 + 60*math.Sin(2*math.Pi*0.7*t)
		phase += 2 * math.Pi * f0 / float64(rate)
		env := 0.5 + 0.5*math.Sin(2*math.Pi*4*t) // syllables
		v := env * (0.5*math.Sin(phase) + 0.25*math.Sin(2*phase) + 0.12*math.Sin(3*phase))
		v += 0.02 * (rng.Float64()*2 - 1)
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(int16(v*0.8*math.MaxInt16)))
	}
	return b
}

// wavLen is the size of synthWAV's file.
func wavLen(rate int, d time.Duration) int { return 44 + 2*int(d.Seconds()*float64(rate)) }
