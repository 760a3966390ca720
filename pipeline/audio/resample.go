package audio

import "math"

// Resampler design (see the package doc).
const (
	zeroCrossings = 12   // sinc lobes kept on each side of the centre
	kaiserBeta    = 8.0  // with 12 zero crossings, aliases come out about 85 dB down
	rolloff       = 0.90 // cut-off as a fraction of the lower Nyquist frequency
	maxPhases     = 4096 // table rows when the exact ratio would need more
)

// resampler converts a mono stream from one rate to another with a Kaiser-windowed sinc, one polyphase
// filter row per fractional position of the output sample between input samples.
type resampler struct {
	l, m   int64     // out/in = l/m, reduced
	phases int64     // rows in table: l, or maxPhases when l is larger
	half   int       // taps on each side: the filter covers inputs i-half+1 .. i+half
	taps   int       // 2*half
	table  []float32 // phases × taps

	buf      []float32 // inputs from absolute index bufStart on
	bufStart int64
	i, rem   int64 // next output's input position: i + rem/l
	nIn      int64 // inputs pushed
	nOut     int64 // outputs produced
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// newResampler returns a resampler from inRate to outRate, or nil when the rates are equal.
func newResampler(inRate, outRate int) *resampler {
	if inRate == outRate {
		return nil
	}
	g := gcd(int64(inRate), int64(outRate))
	r := &resampler{l: int64(outRate) / g, m: int64(inRate) / g}
	r.phases = min(r.l, maxPhases)
	// Cut-off in cycles per input sample, relative to the input Nyquist frequency.
	scale := rolloff * min(1, float64(outRate)/float64(inRate))
	r.half = int(math.Ceil(zeroCrossings / scale))
	r.taps = 2 * r.half
	r.table = make([]float32, int(r.phases)*r.taps)
	i0b := besselI0(kaiserBeta)
	for p := range r.phases {
		frac := float64(p) / float64(r.phases)
		row := r.table[int(p)*r.taps : int(p+1)*r.taps]
		var sum float64
		w := make([]float64, r.taps)
		for k := range r.taps {
			// Input i-half+1+k lies at distance d from the output position i+frac.
			d := frac + float64(r.half-1-k)
			x := d / float64(r.half)
			if x <= -1 || x >= 1 {
				continue
			}
			w[k] = scale * sinc(scale*d) * besselI0(kaiserBeta*math.Sqrt(1-x*x)) / i0b
			sum += w[k]
		}
		for k := range r.taps {
			row[k] = float32(w[k] / sum)
		}
	}
	// Zeros stand for the inputs before the first, so the first outputs have a full window.
	r.buf = make([]float32, r.half, r.half+8192)
	r.bufStart = -int64(r.half)
	return r
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// besselI0 is the modified Bessel function of the first kind, order 0, by its power series.
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 200; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < sum*1e-12 {
			break
		}
	}
	return sum
}

// push appends input samples and returns out with every output sample they complete appended.
func (r *resampler) push(in []float32, out []float32) []float32 {
	r.buf = append(r.buf, in...)
	r.nIn += int64(len(in))
	return r.run(out, -1)
}

// flush appends the outputs still owed for the inputs pushed so far: ceil(nIn·l/m) in all.
func (r *resampler) flush(out []float32) []float32 {
	total := (r.nIn*r.l + r.m - 1) / r.m
	r.buf = append(r.buf, make([]float32, r.half+1)...)
	return r.run(out, total)
}

// run produces outputs while their window lies within the buffer (and, when limit >= 0, until limit
// outputs exist), then drops inputs no later output needs.
func (r *resampler) run(out []float32, limit int64) []float32 {
	end := r.bufStart + int64(len(r.buf)) // one past the last buffered input
	for limit < 0 || r.nOut < limit {
		i := r.i
		p := r.rem
		if r.phases != r.l {
			p = (r.rem*r.phases + r.l/2) / r.l
			if p == r.phases {
				p, i = 0, i+1
			}
		}
		if i+int64(r.half) >= end {
			break
		}
		lo := int(i - int64(r.half) + 1 - r.bufStart)
		x := r.buf[lo : lo+r.taps]
		h := r.table[int(p)*r.taps : int(p+1)*r.taps]
		var acc float32
		for k := range h {
			acc += x[k] * h[k]
		}
		out = append(out, acc)
		r.nOut++
		r.rem += r.m
		r.i += r.rem / r.l
		r.rem %= r.l
	}
	// Keep from the first input the next output may need.
	keep := r.i - int64(r.half) + 1 - r.bufStart
	if keep > 0 && keep <= int64(len(r.buf)) {
		n := copy(r.buf, r.buf[keep:])
		r.buf = r.buf[:n]
		r.bufStart += keep
	}
	return out
}
