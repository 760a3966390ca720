package stt_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"

	"github.com/iambilly/billy/pipeline/audio"
	"github.com/iambilly/billy/pipeline/stt"
)

// The audio these tests send encodes "words" as tones: word n is a tone of wordFreq(n) Hz from n+0.2 s to
// n+0.8 s, silence elsewhere. The fake server finds the tones in whatever audio it receives and answers
// with a segment per word at the time it heard it, as a real server would for speech, so stitching is
// checked against what was actually sent.
func wordFreq(n int) float64 { return 300 + 50*float64(n) }

const maxWords = 120

func tones(words int) *audio.PCM {
	pcm := &audio.PCM{Samples: make([]float32, words*audio.SampleRate)}
	for n := range words {
		from, to := n*audio.SampleRate+audio.SampleRate/5, n*audio.SampleRate+4*audio.SampleRate/5
		for i := from; i < to; i++ {
			pcm.Samples[i] = float32(0.5 * math.Sin(2*math.Pi*wordFreq(n)*float64(i)/audio.SampleRate))
		}
	}
	return pcm
}

// goertzel is the power of freq in x.
func goertzel(x []float32, freq float64) float64 {
	w := 2 * math.Cos(2*math.Pi*freq/audio.SampleRate)
	var s1, s2 float64
	for _, v := range x {
		s1, s2 = float64(v)+w*s1-s2, s1
	}
	return s1*s1 + s2*s2 - w*s1*s2
}

// hearWords finds the words in 16 kHz samples, per whole second from the start.
func hearWords(samples []float32) []map[string]any {
	var segs []map[string]any
	for sec := 0; (sec+1)*audio.SampleRate <= len(samples); sec++ {
		win := samples[sec*audio.SampleRate+audio.SampleRate/5 : sec*audio.SampleRate+4*audio.SampleRate/5]
		best, bestP := -1, 0.0
		for n := range maxWords {
			if p := goertzel(win, wordFreq(n)); p > bestP {
				best, bestP = n, p
			}
		}
		// A full-length tone of amplitude 0.5 gives (0.5·N/2)²; noise gives nothing near that.
		if bestP > 0.1*math.Pow(0.5*float64(len(win))/2, 2) {
			segs = append(segs, map[string]any{"id": len(segs), "start": float64(sec) + 0.2, "end": float64(sec) + 0.8, "text": fmt.Sprintf(" w%d", best)})
		}
	}
	return segs
}

// request is what the fake server saw.
type request struct {
	model, format, language, auth string
	duration                      time.Duration
}

// fakeServer speaks the OpenAI transcription wire format and checks each request as a strict server
// would. script, when set, may answer a request (by its 1-based number) instead.
type fakeServer struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []request
	script func(n int, w http.ResponseWriter, r *http.Request) bool
}

func newFakeServer(t *testing.T, script func(n int, w http.ResponseWriter, r *http.Request) bool) *fakeServer {
	f := &fakeServer{t: t, script: script}
	f.srv = httptest.NewServer(http.HandlerFunc(f.handle))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeServer) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

func (f *fakeServer) fail(w http.ResponseWriter, format string, args ...any) {
	f.t.Errorf("fake server: "+format, args...)
	http.Error(w, fmt.Sprintf(format, args...), http.StatusBadRequest)
}

func (f *fakeServer) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/audio/transcriptions" {
		f.fail(w, "%s %s, want POST /v1/audio/transcriptions", r.Method, r.URL.Path)
		return
	}
	if err := r.ParseMultipartForm(8 << 20); err != nil {
		f.fail(w, "multipart: %v", err)
		return
	}
	req := request{model: r.FormValue("model"), format: r.FormValue("response_format"), language: r.FormValue("language"), auth: r.Header.Get("Authorization")}
	file, hdr, err := r.FormFile("file")
	if err != nil {
		f.fail(w, "no file part: %v", err)
		return
	}
	defer file.Close()
	if !strings.HasSuffix(hdr.Filename, ".wav") || hdr.Header.Get("Content-Type") != "audio/wav" {
		f.fail(w, "file part %q with type %q, want a .wav file of type audio/wav", hdr.Filename, hdr.Header.Get("Content-Type"))
		return
	}
	wav, _ := io.ReadAll(file)
	samples, err := parseWAV16kMono(wav)
	if err != nil {
		f.fail(w, "file: %v", err)
		return
	}
	req.duration = time.Duration(len(samples)) * time.Second / audio.SampleRate
	if req.duration <= 0 || req.duration > 30*time.Second {
		f.fail(w, "chunk of %v, want more than 0 and at most 30s", req.duration)
		return
	}

	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	n := len(f.reqs)
	f.mu.Unlock()
	if f.script != nil && f.script(n, w, r) {
		return
	}
	segs := hearWords(samples)
	texts := make([]string, len(segs))
	for i, s := range segs {
		texts[i] = s["text"].(string)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"task": "transcribe", "language": "english", "duration": req.duration.Seconds(),
		"text": strings.Join(texts, ""), "segments": segs,
	})
}

// parseWAV16kMono accepts only what the engine must send: 16-bit PCM, mono, 16 kHz, sizes consistent.
func parseWAV16kMono(b []byte) ([]float32, error) {
	le := binary.LittleEndian
	if len(b) < 44 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" || string(b[12:16]) != "fmt " {
		return nil, errors.New("not a RIFF/WAVE file with fmt first")
	}
	if format, ch, rate, bits := le.Uint16(b[20:]), le.Uint16(b[22:]), le.Uint32(b[24:]), le.Uint16(b[34:]); format != 1 || ch != 1 || rate != 16000 || bits != 16 {
		return nil, fmt.Errorf("format %d, %d channels, %d Hz, %d bits; want PCM mono 16000 Hz 16-bit", format, ch, rate, bits)
	}
	if string(b[36:40]) != "data" || int(le.Uint32(b[40:])) != len(b)-44 || int(le.Uint32(b[4:])) != len(b)-8 {
		return nil, errors.New("data chunk size does not match the file")
	}
	s := make([]float32, (len(b)-44)/2)
	for i := range s {
		s[i] = float32(int16(le.Uint16(b[44+2*i:]))) / 32768
	}
	return s, nil
}

func newEngine(t *testing.T, f *fakeServer, change func(*stt.Config)) *stt.OpenAI {
	t.Helper()
	cfg := stt.Config{URL: f.srv.URL, Model: "whisper-large-v3", APIKey: "test-key", RetryBackoff: time.Millisecond}
	if change != nil {
		change(&cfg)
	}
	e, err := stt.NewOpenAI(cfg)
	if err != nil {
		t.Fatalf("NewOpenAI: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestOpenAIStitchesChunks(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t, nil)
	e := newEngine(t, f, func(c *stt.Config) { c.Language = "en"; c.ChunkOverlap = 2 * time.Second })
	tr, err := e.Transcribe(t.Context(), tones(75))
	if err != nil {
		t.Fatalf("Transcribe: %v", err)
	}

	reqs := f.requests()
	var durs []time.Duration
	for _, r := range reqs {
		durs = append(durs, r.duration)
		if r.model != "whisper-large-v3" || r.format != "verbose_json" || r.language != "en" || r.auth != "Bearer test-key" {
			t.Errorf("request fields %+v, want model whisper-large-v3, verbose_json, language en, bearer test-key", r)
		}
	}
	if diff := cmp.Diff([]time.Duration{30 * time.Second, 30 * time.Second, 19 * time.Second}, durs); diff != "" {
		t.Errorf("chunk durations sent (-want +got):\n%s", diff)
	}

	var want []stt.Segment
	var words []string
	for n := range 75 {
		want = append(want, stt.Segment{
			Start: time.Duration(n)*time.Second + 200*time.Millisecond,
			End:   time.Duration(n)*time.Second + 800*time.Millisecond,
			Text:  fmt.Sprintf("w%d", n),
		})
		words = append(words, fmt.Sprintf("w%d", n))
	}
	if diff := cmp.Diff(want, tr.Segments); diff != "" {
		t.Errorf("segments (-want +got):\n%s", diff)
	}
	if tr.Text != strings.Join(words, " ") {
		t.Errorf("Text = %q", tr.Text)
	}
	if tr.Language != "english" {
		t.Errorf("Language = %q, want the server's %q", tr.Language, "english")
	}
}

func TestOpenAIOneChunk(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t, nil)
	e := newEngine(t, f, func(c *stt.Config) { c.APIKey = "" })
	tr, err := e.Transcribe(t.Context(), tones(4))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Text != "w0 w1 w2 w3" || len(tr.Segments) != 4 {
		t.Errorf("transcript %+v", tr)
	}
	reqs := f.requests()
	if len(reqs) != 1 || reqs[0].duration != 4*time.Second || reqs[0].auth != "" || reqs[0].language != "" {
		t.Errorf("requests %+v, want one of 4s without Authorization or language", reqs)
	}
	info := e.Info()
	if info.Model != "whisper-large-v3" || !strings.Contains(info.Name, strings.TrimPrefix(f.srv.URL, "http://")) {
		t.Errorf("Info = %+v", info)
	}
	if tr, err := e.Transcribe(t.Context(), &audio.PCM{}); err != nil || tr.Text != "" || len(f.requests()) != 1 {
		t.Errorf("empty audio: %+v, %v, %d requests; want an empty transcript and no request", tr, err, len(f.requests()))
	}
}

func TestOpenAIFailures(t *testing.T) {
	t.Parallel()
	respond := func(status int, body string, header ...string) func(int, http.ResponseWriter, *http.Request) bool {
		return func(_ int, w http.ResponseWriter, _ *http.Request) bool {
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			w.WriteHeader(status)
			io.WriteString(w, body)
			return true
		}
	}
	firstThen := func(first func(int, http.ResponseWriter, *http.Request) bool) func(int, http.ResponseWriter, *http.Request) bool {
		return func(n int, w http.ResponseWriter, r *http.Request) bool { return n == 1 && first(n, w, r) }
	}
	hang := func(_ int, w http.ResponseWriter, r *http.Request) bool {
		<-r.Context().Done()
		return true
	}
	tests := []struct {
		name     string
		script   func(int, http.ResponseWriter, *http.Request) bool
		change   func(*stt.Config)
		wantErr  error  // nil: success
		status   int    // wanted Error.StatusCode
		msg      string // in the error
		requests int
	}{
		{name: "500 then 200 is retried", script: firstThen(respond(500, "overloaded")), requests: 2},
		{name: "429 then 200 honours Retry-After", script: firstThen(respond(429, `{"error":{"message":"slow down"}}`, "Retry-After", "0")), requests: 2},
		{name: "503 every time gives up transient", script: respond(503, "model loading"), wantErr: stt.ErrTransient, status: 503,
			msg: "gave up after 3 attempts", requests: 3, change: func(c *stt.Config) { c.MaxAttempts = 3 }},
		{name: "Retry-After beyond the budget stops retrying", script: respond(429, "busy", "Retry-After", "3600"), wantErr: stt.ErrTransient,
			status: 429, msg: "retry budget", requests: 1},
		{name: "400 is permanent", script: respond(400, `{"error":{"message":"unsupported audio format"}}`), wantErr: stt.ErrPermanent,
			status: 400, msg: "unsupported audio format", requests: 1},
		{name: "401 is permanent", script: respond(401, "bad key"), wantErr: stt.ErrPermanent, status: 401, requests: 1},
		{name: "malformed JSON is permanent", script: respond(200, `{"text": "unterminated`), wantErr: stt.ErrPermanent,
			status: 200, msg: "malformed answer", requests: 1},
		{name: "plain text answer is permanent", script: respond(200, "w0 w1"), wantErr: stt.ErrPermanent, status: 200, msg: "want verbose_json", requests: 1},
		{name: "JSON without text is permanent", script: respond(200, `{"segments":[]}`), wantErr: stt.ErrPermanent, status: 200, msg: `no "text"`, requests: 1},
		{name: "negative segment time is permanent", script: respond(200, `{"text":"x","segments":[{"start":-1,"end":2,"text":"x"}]}`),
			wantErr: stt.ErrPermanent, status: 200, msg: "segment 0", requests: 1},
		{name: "timeout is transient", script: hang, wantErr: context.DeadlineExceeded, msg: "no answer within 50ms", requests: 2,
			change: func(c *stt.Config) { c.Timeout = 50 * time.Millisecond; c.MaxAttempts = 2 }},
		{name: "the API key never shows in errors", script: func(_ int, w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "bad header: "+r.Header.Get("Authorization"), http.StatusForbidden)
			return true
		}, wantErr: stt.ErrPermanent, status: 403, msg: "Bearer [redacted]", requests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeServer(t, tt.script)
			e := newEngine(t, f, tt.change)
			tr, err := e.Transcribe(t.Context(), tones(3))
			if n := len(f.requests()); n != tt.requests {
				t.Errorf("%d requests, want %d", n, tt.requests)
			}
			if tt.wantErr == nil {
				if err != nil || tr.Text != "w0 w1 w2" {
					t.Fatalf("Transcribe = %+v, %v; want w0 w1 w2", tr, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Transcribe = %+v, want an error", tr)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q does not wrap %v", err, tt.wantErr)
			}
			transient := errors.Is(err, stt.ErrTransient)
			if transient == errors.Is(err, stt.ErrPermanent) {
				t.Errorf("error %q must be exactly one of transient and permanent", err)
			}
			if tt.wantErr == context.DeadlineExceeded && !transient {
				t.Errorf("timeout %q is not transient", err)
			}
			var se *stt.Error
			if !errors.As(err, &se) || se.StatusCode != tt.status {
				t.Errorf("error %q: want *stt.Error with status %d", err, tt.status)
			}
			if !strings.Contains(err.Error(), tt.msg) || strings.Contains(err.Error(), "test-key") {
				t.Errorf("error %q: want it to contain %q and not the API key", err, tt.msg)
			}
		})
	}
}

func TestOpenAINetworkErrors(t *testing.T) {
	t.Parallel()
	t.Run("connection refused is transient", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		e, err := stt.NewOpenAI(stt.Config{URL: url, MaxAttempts: 2, RetryBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Transcribe(t.Context(), tones(1))
		if !errors.Is(err, stt.ErrTransient) {
			t.Fatalf("Transcribe = %v, want ErrTransient", err)
		}
	})
	t.Run("a canceled context stops at once", func(t *testing.T) {
		t.Parallel()
		f := newFakeServer(t, nil)
		e := newEngine(t, f, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := e.Transcribe(ctx, tones(1))
		if !errors.Is(err, context.Canceled) || !errors.Is(err, stt.ErrTransient) {
			t.Fatalf("Transcribe = %v, want context.Canceled and ErrTransient", err)
		}
		if n := len(f.requests()); n != 0 {
			t.Errorf("%d requests reached the server", n)
		}
	})
	t.Run("a failing chunk is named", func(t *testing.T) {
		t.Parallel()
		f := newFakeServer(t, func(n int, w http.ResponseWriter, _ *http.Request) bool {
			if n == 2 {
				http.Error(w, "no", http.StatusBadRequest)
				return true
			}
			return false
		})
		e := newEngine(t, f, func(c *stt.Config) { c.ChunkOverlap = 2 * time.Second })
		_, err := e.Transcribe(t.Context(), tones(75))
		if !errors.Is(err, stt.ErrPermanent) || !strings.Contains(err.Error(), "chunk 2 of 3 (from 28s)") {
			t.Fatalf("Transcribe = %v, want a permanent error naming chunk 2 of 3", err)
		}
	})
}

func TestEndpoint(t *testing.T) {
	t.Parallel()
	for base, want := range map[string]string{
		"http://127.0.0.1:8178":                             "/v1/audio/transcriptions",
		"http://127.0.0.1:8178/":                            "/v1/audio/transcriptions",
		"http://127.0.0.1:8178/v1":                          "/v1/audio/transcriptions",
		"http://127.0.0.1:8178/v1/audio/transcriptions":     "/v1/audio/transcriptions",
		"http://127.0.0.1:8178/stt":                         "/stt/v1/audio/transcriptions",
		"http://127.0.0.1:8178/stt/v1/audio/transcriptions": "/stt/v1/audio/transcriptions",
	} {
		var got string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = r.URL.Path
			io.WriteString(w, `{"text":""}`)
		}))
		e, err := stt.NewOpenAI(stt.Config{URL: strings.Replace(base, "http://127.0.0.1:8178", srv.URL, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Transcribe(t.Context(), tones(1)); err != nil {
			t.Errorf("%s: %v", base, err)
		}
		srv.Close()
		if got != want {
			t.Errorf("base %s posted to %s, want %s", base, got, want)
		}
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     stt.Config
		wantErr error
		msg     []string
	}{
		{name: "URL selects the OpenAI engine", cfg: stt.Config{URL: "http://127.0.0.1:8178"}},
		{name: "nothing configured", cfg: stt.Config{}, wantErr: stt.ErrNotConfigured,
			msg: []string{"BILLY_STT_URL=http://host:port", "BILLY_WHISPER_MODEL=/path/to/ggml-base.en.bin", "-tags whisper"}},
		{name: "both configured", cfg: stt.Config{URL: "http://x:1", WhisperModel: "/m.bin"}, msg: []string{"choose one engine"}},
		{name: "bad URL", cfg: stt.Config{URL: "127.0.0.1:8178"}, msg: []string{"want an absolute http(s) URL"}},
		{name: "overlap too long", cfg: stt.Config{URL: "http://x:1", ChunkLength: 10 * time.Second, ChunkOverlap: 6 * time.Second},
			msg: []string{"BILLY_STT_CHUNK_OVERLAP"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := stt.New(tt.cfg)
			if tt.wantErr == nil && tt.msg == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if _, ok := e.(*stt.OpenAI); !ok {
					t.Errorf("New gave %T, want *stt.OpenAI", e)
				}
				if err := stt.Close(e); err != nil {
					t.Error(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New = %T, want an error", e)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q does not wrap %v", err, tt.wantErr)
			}
			for _, m := range tt.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not say %q", err, m)
				}
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("sk-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := stt.LoadConfig(t.Context(), envconfig.MapLookuper(map[string]string{
		"BILLY_STT_URL":          "http://stt:8000/v1",
		"BILLY_STT_API_KEY_FILE": keyFile,
		"BILLY_STT_TIMEOUT":      "90s",
		"BILLY_STT_LANGUAGE":     "en",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := stt.Config{URL: "http://stt:8000/v1", Model: "whisper-1", APIKey: "sk-from-file", Language: "en", Timeout: 90 * time.Second,
		ChunkLength: 30 * time.Second, ChunkOverlap: 2 * time.Second, MaxAttempts: 4, RetryBudget: 2 * time.Minute, RetryBackoff: time.Second}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if s := fmt.Sprint(cfg.LogValue()); strings.Contains(s, "sk-from-file") {
		t.Errorf("LogValue shows the API key: %s", s)
	}
	if _, err := stt.LoadConfig(t.Context(), envconfig.MapLookuper(map[string]string{"BILLY_STT_API_KEY_FILE": "/nonexistent/key"})); err == nil {
		t.Error("an unreadable BILLY_STT_API_KEY_FILE was accepted")
	}
}

func TestWithoutWhisperBuild(t *testing.T) {
	t.Parallel()
	if _, err := stt.NewWhisper(stt.Config{}); err == nil || !strings.Contains(err.Error(), "BILLY_WHISPER_MODEL") {
		t.Errorf("NewWhisper without a model = %v, want an error naming BILLY_WHISPER_MODEL", err)
	}
	_, err := stt.New(stt.Config{WhisperModel: filepath.Join(t.TempDir(), "ggml-base.en.bin")})
	if whisperBuild {
		return // whisper_test.go covers the real engine
	}
	if !errors.Is(err, stt.ErrNoWhisper) || !strings.Contains(err.Error(), "rebuild with -tags whisper (see README)") {
		t.Errorf("New with a whisper model in a build without whisper = %v, want ErrNoWhisper", err)
	}
}

func ExampleNew() {
	engine, err := stt.New(stt.Config{}) // from stt.LoadConfig in the real wiring
	fmt.Println(engine == nil, errors.Is(err, stt.ErrNotConfigured))
	// Output: true true
}
