package embed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Environment variables read by OpenAIConfigFromEnv.
const (
	EnvEmbedURL    = "BILLY_EMBED_URL"
	EnvEmbedModel  = "BILLY_EMBED_MODEL"
	EnvEmbedAPIKey = "BILLY_EMBED_API_KEY" // also BILLY_EMBED_API_KEY_FILE
	EnvEmbedDim    = "BILLY_EMBED_DIM"
)

// OpenAIConfig configures an OpenAI-compatible embeddings engine.
type OpenAIConfig struct {
	// URL is the server's base ("http://host:8080", ".../v1") or the full ".../v1/embeddings".
	URL   string
	Model string
	// APIKey is sent as a bearer token when set. It is never logged or put in an error.
	APIKey string
	// Dim is the vector length when known in advance; 0 learns it from the first answer.
	Dim int
	// BatchSize is the most texts per request (default 64).
	BatchSize int
	// MaxAttempts is the most tries of one batch on transient failures (default 4).
	MaxAttempts int
	// Backoff is the first retry delay, doubled each attempt with jitter (default 500ms); a
	// Retry-After header from a 429 or 503 takes precedence, capped at 30 s.
	Backoff time.Duration
	// HTTPClient is the client used (default: one with a 60 s timeout).
	HTTPClient *http.Client
}

// OpenAIConfigFromEnv reads BILLY_EMBED_URL, BILLY_EMBED_MODEL, BILLY_EMBED_API_KEY (or
// BILLY_EMBED_API_KEY_FILE) and BILLY_EMBED_DIM through getenv (os.Getenv in production, a map in
// tests). ok is false when BILLY_EMBED_URL is unset: the caller then uses the built-in embedder.
func OpenAIConfigFromEnv(getenv func(string) string) (cfg OpenAIConfig, ok bool, err error) {
	cfg.URL = getenv(EnvEmbedURL)
	if cfg.URL == "" {
		return cfg, false, nil
	}
	cfg.Model = getenv(EnvEmbedModel)
	if cfg.Model == "" {
		return cfg, false, fmt.Errorf("%s is set but %s is not", EnvEmbedURL, EnvEmbedModel)
	}
	cfg.APIKey = getenv(EnvEmbedAPIKey)
	if f := getenv(EnvEmbedAPIKey + "_FILE"); f != "" && cfg.APIKey == "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return cfg, false, fmt.Errorf("%s_FILE: %w", EnvEmbedAPIKey, err)
		}
		cfg.APIKey = strings.TrimSpace(string(b))
	}
	if d := getenv(EnvEmbedDim); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return cfg, false, fmt.Errorf("%s: %q is not a positive integer", EnvEmbedDim, d)
		}
		cfg.Dim = n
	}
	return cfg, true, nil
}

// OpenAI embeds through an OpenAI-compatible /v1/embeddings endpoint, in batches, retrying
// transient failures (HTTP 429 and 5xx, network errors). Errors wrap ErrTransient or ErrPermanent.
// It is safe for concurrent use.
type OpenAI struct {
	cfg      OpenAIConfig
	endpoint string
	dim      atomic.Int64
}

var _ Embedder = (*OpenAI)(nil)

// NewOpenAI returns an engine for cfg.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	if cfg.URL == "" || cfg.Model == "" {
		return nil, errors.New("embed: the OpenAI engine needs a URL and a model")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 64
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 4
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	e := &OpenAI{cfg: cfg, endpoint: Endpoint(cfg.URL, "embeddings")}
	e.dim.Store(int64(cfg.Dim))
	return e, nil
}

// Endpoint joins an OpenAI-compatible base URL and an API path ("embeddings",
// "chat/completions"): ".../v1" gets "/path", a bare host gets "/v1/path", and a URL already ending
// in the path is kept.
func Endpoint(base, path string) string {
	u := strings.TrimRight(base, "/")
	switch {
	case strings.HasSuffix(u, "/"+path):
		return u
	case strings.HasSuffix(u, "/v1"):
		return u + "/" + path
	default:
		return u + "/v1/" + path
	}
}

// Dim returns the vector length, 0 until the first answer when it was not configured.
func (e *OpenAI) Dim() int { return int(e.dim.Load()) }

// Info names the engine and model.
func (e *OpenAI) Info() (name, model string) { return "openai", e.cfg.Model }

type embeddingsRequest struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	EncodingFormat string   `json:"encoding_format"`
}

type embeddingsResponse struct {
	Data []struct {
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
}

// Embed returns one L2-normalised vector per text.
func (e *OpenAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for i := 0; i < len(texts); i += e.cfg.BatchSize {
		batch := texts[i:min(i+e.cfg.BatchSize, len(texts))]
		vecs, err := e.batch(ctx, batch)
		if err != nil {
			return nil, fmt.Errorf("embed texts %d-%d: %w", i, i+len(batch)-1, err)
		}
		out = append(out, vecs...)
	}
	return out, nil
}

func (e *OpenAI) batch(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(embeddingsRequest{Model: e.cfg.Model, Input: texts, EncodingFormat: "float"})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	var lastErr error
	for attempt := 1; attempt <= e.cfg.MaxAttempts; attempt++ {
		vecs, retryAfter, err := e.post(ctx, body, len(texts))
		if err == nil {
			return vecs, nil
		}
		lastErr = err
		if !errors.Is(err, ErrTransient) || attempt == e.cfg.MaxAttempts {
			break
		}
		if err := Sleep(ctx, retryDelay(e.cfg.Backoff, attempt, retryAfter)); err != nil {
			return nil, err
		}
	}
	return nil, lastErr
}

// Sleep waits d or until ctx ends, returning ctx's error then.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryDelay is exponential backoff with full jitter, or the server's Retry-After (capped at 30 s).
func retryDelay(base time.Duration, attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, 30*time.Second)
	}
	d := base << (attempt - 1)
	return d/2 + rand.N(d/2+1)
}

// HTTPError is a non-2xx answer from an engine. It matches ErrTransient (429, 5xx) or ErrPermanent
// with errors.Is. Body is a short excerpt of the answer, for logs.
type HTTPError struct {
	StatusCode int
	Body       string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("engine answered HTTP %d: %s", e.StatusCode, e.Body)
}

// Transient reports whether retrying may succeed.
func (e *HTTPError) Transient() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// Is matches ErrTransient or ErrPermanent.
func (e *HTTPError) Is(target error) bool {
	return (target == ErrTransient && e.Transient()) || (target == ErrPermanent && !e.Transient())
}

// Post sends body as JSON to url with the bearer key and returns the answer body. Failures are
// *HTTPError for non-2xx answers and errors wrapping ErrTransient for network failures; retryAfter
// is the server's Retry-After when it sent one. Shared with the LLM coder's client.
func Post(ctx context.Context, client *http.Client, url, apiKey string, body []byte) (answer []byte, retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, fmt.Errorf("%w: %v", ErrTransient, redact(err.Error(), apiKey))
	}
	defer resp.Body.Close()
	answer, err = io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: read answer: %v", ErrTransient, err)
	}
	if resp.StatusCode/100 != 2 {
		if s := resp.Header.Get("Retry-After"); s != "" {
			if n, err := strconv.Atoi(s); err == nil && n >= 0 {
				retryAfter = time.Duration(n) * time.Second
			}
		}
		excerpt := strings.TrimSpace(string(answer))
		if len(excerpt) > 300 {
			excerpt = excerpt[:300] + "..."
		}
		return nil, retryAfter, &HTTPError{StatusCode: resp.StatusCode, Body: redact(excerpt, apiKey)}
	}
	return answer, 0, nil
}

func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}

func (e *OpenAI) post(ctx context.Context, body []byte, n int) ([][]float32, time.Duration, error) {
	answer, retryAfter, err := Post(ctx, e.cfg.HTTPClient, e.endpoint, e.cfg.APIKey, body)
	if err != nil {
		return nil, retryAfter, err
	}
	var r embeddingsResponse
	if err := json.Unmarshal(answer, &r); err != nil {
		return nil, 0, fmt.Errorf("%w: malformed answer: %v", ErrPermanent, err)
	}
	if len(r.Data) != n {
		return nil, 0, fmt.Errorf("%w: %d embeddings for %d inputs", ErrPermanent, len(r.Data), n)
	}
	sort.Slice(r.Data, func(i, j int) bool { return r.Data[i].Index < r.Data[j].Index })
	out := make([][]float32, n)
	for i, d := range r.Data {
		if d.Index != i {
			return nil, 0, fmt.Errorf("%w: embedding indexes are not 0..%d", ErrPermanent, n-1)
		}
		if len(d.Embedding) == 0 {
			return nil, 0, fmt.Errorf("%w: empty embedding %d", ErrPermanent, i)
		}
		dim := e.dim.Load()
		if dim == 0 {
			e.dim.CompareAndSwap(0, int64(len(d.Embedding)))
			dim = e.dim.Load()
		}
		if int64(len(d.Embedding)) != dim {
			return nil, 0, fmt.Errorf("%w: embedding %d has %d dimensions, want %d", ErrPermanent, i, len(d.Embedding), dim)
		}
		out[i] = Normalize(d.Embedding)
	}
	return out, 0, nil
}
