package audio

import (
	"fmt"
	"math"
	"testing"
)

func sine(rate int, freq, amp float64, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
	}
	return s
}

// fitTone returns the amplitude of the freq component of x (at 16 kHz) and the RMS of what remains.
func fitTone(x []float32, freq float64) (amp, residual float64) {
	var s, c float64
	for i, v := range x {
		ph := 2 * math.Pi * freq * float64(i) / SampleRate
		s += float64(v) * math.Sin(ph)
		c += float64(v) * math.Cos(ph)
	}
	s, c = 2*s/float64(len(x)), 2*c/float64(len(x))
	var r float64
	for i, v := range x {
		ph := 2 * math.Pi * freq * float64(i) / SampleRate
		d := float64(v) - s*math.Sin(ph) - c*math.Cos(ph)
		r += d * d
	}
	return math.Hypot(s, c), math.Sqrt(r / float64(len(x)))
}

func rms(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(max(1, len(x))))
}

func db(x float64) float64 { return 20 * math.Log10(x) }

func resampleAll(in []float32, rate, block int) []float32 {
	r := newResampler(rate, SampleRate)
	var out []float32
	for len(in) > 0 {
		n := min(block, len(in))
		out = r.push(in[:n], out)
		in = in[n:]
	}
	return r.flush(out)
}

func TestResampler(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rate int
	}{
		{8000}, {11025}, {22050}, {32000}, {44100}, {48000}, {96000},
		{44101}, // coprime with 16000: more phases than the table holds, so phases are rounded
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.rate), func(t *testing.T) {
			t.Parallel()
			n := tt.rate * 2
			out := resampleAll(sine(tt.rate, 1000, 0.5, n), tt.rate, 4096)
			if want := (n*SampleRate + tt.rate - 1) / tt.rate; len(out) != want {
				t.Fatalf("%d inputs gave %d outputs, want %d", n, len(out), want)
			}
			// Away from the edges, where the window runs off the signal.
			mid := out[800 : len(out)-800]
			amp, res := fitTone(mid, 1000)
			if math.Abs(amp-0.5) > 0.005 {
				t.Errorf("1 kHz tone of amplitude 0.5 came out at %.4f", amp)
			}
			if d := db(res / 0.5); d > -80 {
				t.Errorf("residual after the 1 kHz tone is %.1f dB, want below -80 dB", d)
			}

			// A tone above the output's Nyquist frequency (8 kHz) must not fold back into the speech band.
			if tt.rate > 2*9500 {
				f := min(0.45*float64(tt.rate), 11000)
				alias := resampleAll(sine(tt.rate, f, 0.5, n), tt.rate, 4096)
				if d := db(rms(alias[800:len(alias)-800]) / (0.5 / math.Sqrt2)); d > -70 {
					t.Errorf("a %.0f Hz tone leaks through at %.1f dB, want below -70 dB", f, d)
				}
			}

			// Block size must not change the output.
			odd := resampleAll(sine(tt.rate, 1000, 0.5, n), tt.rate, 333)
			for i := range out {
				if odd[i] != out[i] {
					t.Fatalf("sample %d differs between block sizes: %v vs %v", i, odd[i], out[i])
				}
			}
		})
	}
}

// TestResamplerNoDelay checks that an impulse stays where it was in time.
func TestResamplerNoDelay(t *testing.T) {
	t.Parallel()
	for _, rate := range []int{8000, 22050, 44100, 48000} {
		in := make([]float32, rate) // 1 s
		in[rate/2] = 1              // at 0.5 s
		out := resampleAll(in, rate, 1000)
		peak := 0
		for i := range out {
			if math.Abs(float64(out[i])) > math.Abs(float64(out[peak])) {
				peak = i
			}
		}
		if peak < SampleRate/2-1 || peak > SampleRate/2+1 {
			t.Errorf("%d Hz: impulse at 0.5 s came out at sample %d, want %d±1", rate, peak, SampleRate/2)
		}
	}
}

func BenchmarkResample44100(b *testing.B) {
	in := sine(44100, 440, 0.5, 44100*10)
	b.SetBytes(int64(len(in)) * 4)
	for b.Loop() {
		resampleAll(in, 44100, 16384)
	}
}
