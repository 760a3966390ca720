package audio_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iambilly/billy/pipeline/audio"
)

// needTool finds a command the test needs. scripts/pipeline-deps.sh installs them; under CI a missing
// tool fails the test instead of skipping it, so coverage cannot quietly drop.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed: scripts/pipeline-deps.sh installs it", name)
		}
		t.Skipf("%s is not installed (run scripts/pipeline-deps.sh)", name)
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

const utterance = "The patient reports chest pain radiating to the left arm since this morning. No shortness of breath."

// speech writes espeak-ng's rendering of utterance (22050 Hz mono 16-bit WAV) and returns its path.
func speech(t *testing.T) string {
	t.Helper()
	needTool(t, "espeak-ng")
	p := filepath.Join(t.TempDir(), "speech.wav")
	run(t, "espeak-ng", "-w", p, utterance)
	return p
}

func decodeFile(t *testing.T, path, contentType string) *audio.PCM {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pcm, err := audio.Decode(t.Context(), bytes.NewReader(b), contentType)
	if err != nil {
		t.Fatalf("Decode %s: %v", filepath.Base(path), err)
	}
	return pcm
}

// frameRMS is the RMS of each 20 ms frame.
func frameRMS(x []float32) []float64 {
	const frame = audio.SampleRate / 50
	var out []float64
	for i := 0; i+frame <= len(x); i += frame {
		var s float64
		for _, v := range x[i : i+frame] {
			s += float64(v) * float64(v)
		}
		out = append(out, math.Sqrt(s/frame))
	}
	return out
}

// compareEnvelope checks that got has energy where want has and silence where want is silent, frame by
// frame, after allowing a shift of up to maxShift frames (codecs add priming delay).
func compareEnvelope(t *testing.T, got, want *audio.PCM, maxShift int) {
	t.Helper()
	g, w := frameRMS(got.Samples), frameRMS(want.Samples)
	var peak float64
	for _, v := range w {
		peak = max(peak, v)
	}
	bestBad, bestShift := len(w)+1, 0
	for shift := -maxShift; shift <= maxShift; shift++ {
		bad := 0
		for i := range w {
			j := i + shift
			if j < 0 || j >= len(g) {
				continue
			}
			loud, quiet := w[i] > peak/10, w[i] < peak/1000
			if loud && g[j] < w[i]/2 || quiet && g[j] > peak/100 {
				bad++
			}
		}
		if bad < bestBad {
			bestBad, bestShift = bad, shift
		}
	}
	// A few frames at word edges may straddle the thresholds.
	if bestBad > len(w)/50 {
		t.Errorf("energy envelope differs in %d of %d frames (best shift %d frames)", bestBad, len(w), bestShift)
	}
}

// snr is the ratio of want's power to the power of got-want, in dB.
func snr(got, want []float32) float64 {
	n := min(len(got), len(want))
	var sig, noise float64
	for i := range n {
		sig += float64(want[i]) * float64(want[i])
		d := float64(got[i] - want[i])
		noise += d * d
	}
	return 10 * math.Log10(sig/noise)
}

// TestDecodeSpeechVariants decodes speech in many WAV layouts made by sox and compares each with sox's
// own conversion of the same file to 16 kHz mono float, which the decoder passes through untouched.
func TestDecodeSpeechVariants(t *testing.T) {
	t.Parallel()
	src := speech(t)
	needTool(t, "sox")
	dir := t.TempDir()
	orig := decodeFile(t, src, "audio/wav")
	// espeak-ng writes 22050 Hz; the decoded length must match to the sample.
	b, _ := os.ReadFile(src)
	srcSamples := (len(b) - 44) / 2
	wantDur := time.Duration(srcSamples) * time.Second / 22050
	if d := orig.Duration() - wantDur; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("espeak WAV decodes to %v, want %v", orig.Duration(), wantDur)
	}

	tests := []struct {
		name string
		sox  []string // output options
		// Against sox's own resampling, in dB. The two filters differ only between 7.2 kHz (our
		// cut-off) and 7.6 kHz (sox's), where speech has little energy: about 31 dB from 22.05 kHz
		// sources and 27 dB from 8 and 11.025 kHz ones; a one-sample delay or a summed downmix gives under 10 dB.
		minSNR float64
	}{
		{"22.05 kHz mono 16-bit as espeak wrote it", nil, 25},
		{"stereo 44.1 kHz 24-bit (extensible)", []string{"-r", "44100", "-c", "2", "-b", "24"}, 25},
		{"float32", []string{"-e", "floating-point", "-b", "32"}, 25},
		{"float64 48 kHz", []string{"-e", "floating-point", "-b", "64", "-r", "48000"}, 25},
		{"8 kHz", []string{"-r", "8000"}, 20},
		{"8-bit unsigned 11.025 kHz", []string{"-r", "11025", "-b", "8", "-e", "unsigned-integer"}, 20},
		{"µ-law 8 kHz", []string{"-r", "8000", "-e", "u-law"}, 20},
		{"A-law", []string{"-e", "a-law"}, 25},
		{"32-bit 96 kHz six channels", []string{"-r", "96000", "-b", "32", "-c", "6"}, 25},
		{"16 kHz passes through", []string{"-r", "16000"}, 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := filepath.Join(dir, strings.NewReplacer(" ", "_", "/", "_").Replace(tt.name))
			variant, ref := base+".wav", base+".ref.wav"
			run(t, "sox", append(append([]string{"-D", src}, tt.sox...), variant)...)
			run(t, "sox", "-D", variant, "-r", "16000", "-c", "1", "-e", "floating-point", "-b", "32", ref)

			got := decodeFile(t, variant, "audio/wav")
			want := decodeFile(t, ref, "audio/x-wav")
			if d := got.Duration() - want.Duration(); d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("duration %v, sox says %v", got.Duration(), want.Duration())
			}
			if d := got.Duration() - orig.Duration(); d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("duration %v, the original is %v", got.Duration(), orig.Duration())
			}
			if s := snr(got.Samples, want.Samples); s < tt.minSNR {
				t.Errorf("SNR against sox's conversion is %.1f dB, want at least %.0f dB", s, tt.minSNR)
			}
			compareEnvelope(t, got, want, 0)
		})
	}
}

// TestDecodeWithFFmpeg covers the formats that go through ffmpeg.
func TestDecodeWithFFmpeg(t *testing.T) {
	t.Parallel()
	src := speech(t)
	needTool(t, "ffmpeg")
	needTool(t, "sox")
	dir := t.TempDir()
	want := decodeFile(t, src, "audio/wav")

	tests := []struct {
		name   string
		file   string
		make   []string // ffmpeg or sox command making file from src
		ct     string
		slack  time.Duration // codecs pad the end to a whole frame
		reader func([]byte) io.Reader
	}{
		{"ogg vorbis", "a.ogg", []string{"ffmpeg", "-i", src, "-c:a", "libvorbis", "a.ogg"}, "audio/ogg", 60 * time.Millisecond, nil},
		{"ogg opus", "b.ogg", []string{"ffmpeg", "-i", src, "-c:a", "libopus", "b.ogg"}, "audio/ogg; codecs=opus", 60 * time.Millisecond, nil},
		{"mp3", "a.mp3", []string{"ffmpeg", "-i", src, "-c:a", "libmp3lame", "a.mp3"}, "audio/mpeg", 80 * time.Millisecond, nil},
		{"m4a (aac)", "a.m4a", []string{"ffmpeg", "-i", src, "-c:a", "aac", "a.m4a"}, "audio/mp4", 60 * time.Millisecond, nil},
		{"webm (opus)", "a.webm", []string{"ffmpeg", "-i", src, "-c:a", "libopus", "a.webm"}, "audio/webm", 60 * time.Millisecond, nil},
		{"flac", "a.flac", []string{"ffmpeg", "-i", src, "a.flac"}, "audio/flac", time.Millisecond, nil},
		{"IMA ADPCM WAV", "ima.wav", []string{"sox", src, "-e", "ima-adpcm", "ima.wav"}, "audio/wav", 60 * time.Millisecond, nil},
		{"mp3 declared as octet-stream", "c.mp3", []string{"ffmpeg", "-i", src, "-c:a", "libmp3lame", "c.mp3"}, "application/octet-stream", 80 * time.Millisecond, nil},
		{"ogg over a plain reader", "d.ogg", []string{"ffmpeg", "-i", src, "-c:a", "libvorbis", "d.ogg"}, "audio/ogg", 60 * time.Millisecond,
			func(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(b)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.make[1:]
			if tt.make[0] == "ffmpeg" {
				args = append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)
			}
			for i, a := range args {
				if a == tt.file {
					args[i] = filepath.Join(dir, a)
				}
			}
			run(t, tt.make[0], args...)
			b, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var r io.Reader = bytes.NewReader(b)
			if tt.reader != nil {
				r = tt.reader(b)
			}
			got, err := audio.Decode(t.Context(), r, tt.ct)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if d := got.Duration() - want.Duration(); d < -tt.slack || d > tt.slack {
				t.Errorf("duration %v, want %v ± %v", got.Duration(), want.Duration(), tt.slack)
			}
			compareEnvelope(t, got, want, 3)
		})
	}
}

// TestDecodeMP4IndexAtEnd: an M4A whose moov box follows the audio (what most recorders write) is too
// big for ffmpeg to probe from a pipe; with random access (a blob.Object, here a bytes.Reader) it decodes.
func TestDecodeMP4IndexAtEnd(t *testing.T) {
	t.Parallel()
	needTool(t, "ffmpeg")
	p := filepath.Join(t.TempDir(), "long.m4a")
	// Six minutes at 128 kb/s is past ffmpeg's 5 MB probe buffer.
	run(t, "ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=360:sample_rate=44100",
		"-c:a", "aac", "-b:a", "128k", p)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Index(b, []byte("moov")) < bytes.Index(b, []byte("mdat")) {
		t.Fatal("test file has its index first; want it at the end")
	}

	pcm, err := audio.Decode(t.Context(), bytes.NewReader(b), "audio/mp4")
	if err != nil {
		t.Fatalf("Decode with random access: %v", err)
	}
	if d := pcm.Duration() - 360*time.Second; d < -100*time.Millisecond || d > 100*time.Millisecond {
		t.Errorf("duration %v, want 6m0s", pcm.Duration())
	}

	// Through a plain io.Reader ffmpeg cannot reach the index: a DecodeError, not silence.
	_, err = audio.Decode(t.Context(), io.MultiReader(bytes.NewReader(b)), "audio/mp4")
	var de *audio.DecodeError
	if !errors.As(err, &de) || !errors.Is(err, audio.ErrMalformed) {
		t.Errorf("Decode through a pipe = %v, want a DecodeError wrapping ErrMalformed", err)
	}
}

func TestFFmpegRejectsGarbage(t *testing.T) {
	t.Parallel()
	needTool(t, "ffmpeg")
	garbage := bytes.Repeat([]byte("definitely not audio "), 1000)
	_, err := audio.Decode(t.Context(), bytes.NewReader(append([]byte("ID3"), garbage...)), "audio/mpeg")
	var de *audio.DecodeError
	if !errors.As(err, &de) || !errors.Is(err, audio.ErrMalformed) {
		t.Fatalf("Decode of garbage labelled mp3 = %v, want a DecodeError wrapping ErrMalformed", err)
	}
}
