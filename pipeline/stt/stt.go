package stt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/iambilly/billy/pipeline/audio"
)

// Engine transcribes audio. Implementations are safe for concurrent use.
type Engine interface {
	// Transcribe returns the transcript of pcm; errors wrap ErrTransient or ErrPermanent.
	Transcribe(ctx context.Context, pcm *audio.PCM) (*Transcript, error)
	// Info describes the engine, for the FHIR Device that records who transcribed.
	Info() EngineInfo
}

// Transcript is what an engine heard.
type Transcript struct {
	// Text is the whole transcript: the segments' texts joined by spaces.
	Text string
	// Segments are in time order and do not overlap.
	Segments []Segment
	// Language is what the engine reports (e.g. "en" or "english"), or the configured language, or "".
	Language string
}

// Segment is a stretch of speech and its text; times are from the start of the recording.
type Segment struct {
	Start, End time.Duration
	Text       string
}

// EngineInfo names an engine, its model and version (empty when the engine does not say).
type EngineInfo struct {
	Name, Model, Version string
}

// Errors, wrapped with detail.
var (
	// ErrTransient: the engine may succeed later (overloaded, unreachable, timed out); retry the job.
	ErrTransient = errors.New("transient speech-to-text failure")
	// ErrPermanent: the same input will fail again (rejected request, malformed answer); fail the job.
	ErrPermanent = errors.New("permanent speech-to-text failure")
	// ErrNotConfigured: New found neither an STT URL nor a whisper model.
	ErrNotConfigured = errors.New("no speech-to-text engine configured")
	// ErrNoWhisper: the whisper engine was asked for in a build without the whisper tag.
	ErrNoWhisper = errors.New("built without whisper support: rebuild with -tags whisper (see README)")
)

// Error is a failed transcription. It matches ErrTransient or ErrPermanent under errors.Is, as Transient
// says, and unwraps to its cause.
type Error struct {
	Transient bool
	// StatusCode is the HTTP status of the engine's answer, or 0.
	StatusCode int
	Err        error
}

// Error says whether the failure is transient or permanent, the HTTP status if any, and the cause.
func (e *Error) Error() string {
	kind := "permanent"
	if e.Transient {
		kind = "transient"
	}
	if e.StatusCode != 0 {
		return fmt.Sprintf("speech-to-text (%s, HTTP %d): %v", kind, e.StatusCode, e.Err)
	}
	return fmt.Sprintf("speech-to-text (%s): %v", kind, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is ErrTransient or ErrPermanent as this error is.
func (e *Error) Is(target error) bool {
	return target == ErrTransient && e.Transient || target == ErrPermanent && !e.Transient
}

func transient(status int, err error) error {
	return &Error{Transient: true, StatusCode: status, Err: err}
}
func permanent(status int, err error) error {
	return &Error{Transient: false, StatusCode: status, Err: err}
}

// Config selects and tunes the engine. LoadConfig fills it from the environment; the names are below.
// In a Config built in code, zero fields take the defaults shown, except ChunkOverlap and RetryBackoff,
// where 0 means none.
type Config struct {
	// URL is the base URL of an OpenAI-compatible server (http://host:port, http://host:port/v1, or the
	// full .../audio/transcriptions URL). Setting it selects the OpenAI engine.
	URL string `env:"BILLY_STT_URL"`
	// Model is sent as the request's model field (servers hosting one model ignore it).
	Model string `env:"BILLY_STT_MODEL, default=whisper-1"`
	// APIKey is sent as a bearer token when set; also read from BILLY_STT_API_KEY_FILE. Never logged.
	APIKey string `env:"BILLY_STT_API_KEY"`
	// Language is an ISO-639-1 hint (e.g. "en"); empty lets the engine detect it.
	Language string `env:"BILLY_STT_LANGUAGE"`
	// Timeout bounds one HTTP request (one chunk).
	Timeout time.Duration `env:"BILLY_STT_TIMEOUT, default=2m"`
	// ChunkLength and ChunkOverlap cut long audio for the OpenAI engine (see the package doc).
	ChunkLength  time.Duration `env:"BILLY_STT_CHUNK, default=30s"`
	ChunkOverlap time.Duration `env:"BILLY_STT_CHUNK_OVERLAP, default=2s"`
	// MaxAttempts bounds the tries of one chunk (1 = no retry); RetryBudget bounds the time spent
	// waiting between them; RetryBackoff is the first wait, doubled each time (with jitter, at most 30 s).
	// A Retry-After header from the server replaces the wait when it fits in the budget.
	MaxAttempts  int           `env:"BILLY_STT_MAX_ATTEMPTS, default=4"`
	RetryBudget  time.Duration `env:"BILLY_STT_RETRY_BUDGET, default=2m"`
	RetryBackoff time.Duration `env:"BILLY_STT_RETRY_BACKOFF, default=1s"`

	// WhisperModel is the path of a ggml model file (e.g. ggml-base.en.bin). Setting it selects the
	// in-process whisper.cpp engine, which needs a build with -tags whisper.
	WhisperModel string `env:"BILLY_WHISPER_MODEL"`
	// WhisperThreads is the number of CPU threads whisper uses; 0 lets whisper.cpp choose.
	WhisperThreads int `env:"BILLY_WHISPER_THREADS, default=0"`
}

// LoadConfig reads the configuration through l (tests pass envconfig.MapLookuper) and validates it.
func LoadConfig(ctx context.Context, l envconfig.Lookuper) (Config, error) {
	var c Config
	fl := &fileLookuper{next: l}
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: fl}); err != nil {
		return c, fmt.Errorf("stt config: %w", err)
	}
	if fl.err != nil {
		return c, fmt.Errorf("stt config: %w", fl.err)
	}
	return c, c.Validate()
}

// fileLookuper serves BILLY_STT_API_KEY from the file BILLY_STT_API_KEY_FILE names.
type fileLookuper struct {
	next envconfig.Lookuper
	err  error
}

func (f *fileLookuper) Lookup(key string) (string, bool) {
	if v, ok := f.next.Lookup(key); ok || key != "BILLY_STT_API_KEY" {
		return v, ok
	}
	path, ok := f.next.Lookup(key + "_FILE")
	if !ok || path == "" {
		return "", false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		f.err = fmt.Errorf("%s_FILE: %w", key, err)
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// withDefaults fills zero fields with the defaults of the env tags.
func (c Config) withDefaults() Config {
	if c.Model == "" {
		c.Model = "whisper-1"
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.ChunkLength == 0 {
		c.ChunkLength = 30 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 4
	}
	if c.RetryBudget == 0 {
		c.RetryBudget = 2 * time.Minute
	}
	return c
}

// Validate checks the values and the rules between them, after filling in defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.URL != "" {
		if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("BILLY_STT_URL=%q: want an absolute http(s) URL such as http://127.0.0.1:8178", c.URL))
		}
	}
	if c.URL != "" && c.WhisperModel != "" {
		errs = append(errs, errors.New("BILLY_STT_URL and BILLY_WHISPER_MODEL are both set: choose one engine"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("BILLY_STT_TIMEOUT=%v: want more than 0", c.Timeout))
	}
	if c.ChunkLength < time.Second {
		errs = append(errs, fmt.Errorf("BILLY_STT_CHUNK=%v: want at least 1s", c.ChunkLength))
	}
	if c.ChunkOverlap < 0 || c.ChunkOverlap*2 > c.ChunkLength {
		errs = append(errs, fmt.Errorf("BILLY_STT_CHUNK_OVERLAP=%v: want 0 to half of BILLY_STT_CHUNK", c.ChunkOverlap))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("BILLY_STT_MAX_ATTEMPTS=%d: want at least 1", c.MaxAttempts))
	}
	if c.RetryBudget < 0 || c.RetryBackoff < 0 {
		errs = append(errs, errors.New("BILLY_STT_RETRY_BUDGET and BILLY_STT_RETRY_BACKOFF must not be negative"))
	}
	if c.WhisperThreads < 0 {
		errs = append(errs, fmt.Errorf("BILLY_WHISPER_THREADS=%d: want 0 or more", c.WhisperThreads))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stt config: %w", err)
	}
	return nil
}

// LogValue logs the configuration without the API key.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", c.URL),
		slog.String("model", c.Model),
		slog.Bool("api_key_set", c.APIKey != ""),
		slog.String("language", c.Language),
		slog.Duration("timeout", c.Timeout),
		slog.String("whisper_model", c.WhisperModel),
	)
}

// New returns the engine the configuration selects: OpenAI when URL is set, whisper when WhisperModel
// is. Release it with Close.
func New(cfg Config) (Engine, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case cfg.URL != "":
		return NewOpenAI(cfg)
	case cfg.WhisperModel != "":
		return NewWhisper(cfg)
	}
	return nil, fmt.Errorf("%w: set BILLY_STT_URL=http://host:port for an OpenAI-compatible server "+
		"(whisper.cpp server, faster-whisper, vLLM), or BILLY_WHISPER_MODEL=/path/to/ggml-base.en.bin "+
		"with a build made with -tags whisper", ErrNotConfigured)
}

// NewWhisper loads the ggml model at cfg.WhisperModel into an in-process whisper.cpp engine. Without the
// whisper build tag it returns ErrNoWhisper.
func NewWhisper(cfg Config) (Engine, error) {
	if cfg.WhisperModel == "" {
		return nil, errors.New("whisper: BILLY_WHISPER_MODEL is empty: set it to a ggml model file such as /path/to/ggml-base.en.bin")
	}
	return newWhisper(cfg)
}

// Close releases what an engine holds (a loaded whisper model, idle HTTP connections).
func Close(e Engine) error {
	if c, ok := e.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// joinText joins segment texts with single spaces.
func joinText(segs []Segment) string {
	parts := make([]string, 0, len(segs))
	for _, s := range segs {
		if s.Text != "" {
			parts = append(parts, s.Text)
		}
	}
	return strings.Join(parts, " ")
}
