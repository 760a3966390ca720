package stt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/iambilly/billy/pipeline/audio"
)

// maxBackoff caps one wait between retries.
const maxBackoff = 30 * time.Second

// maxResponse bounds an answer body; a transcript of 30 s is a few kilobytes.
const maxResponse = 16 << 20

// OpenAI is an Engine that calls an OpenAI-compatible POST /v1/audio/transcriptions with
// response_format=verbose_json, one request per chunk of audio.
type OpenAI struct {
	cfg      Config
	endpoint string
	client   *http.Client
}

var _ Engine = (*OpenAI)(nil)

// NewOpenAI returns an engine for the server at cfg.URL.
func NewOpenAI(cfg Config) (*OpenAI, error) {
	cfg = cfg.withDefaults()
	if cfg.URL == "" {
		return nil, errors.New("stt: BILLY_STT_URL is empty")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ep, err := endpoint(cfg.URL)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &OpenAI{cfg: cfg, endpoint: ep, client: &http.Client{Transport: tr}}, nil
}

// endpoint turns a base URL into the transcriptions URL: it appends /v1/audio/transcriptions, or
// /audio/transcriptions to a URL ending in /v1, and keeps a URL that already ends in it.
func endpoint(base string) (string, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil {
		return "", fmt.Errorf("stt: BILLY_STT_URL: %w", err)
	}
	switch {
	case strings.HasSuffix(u.Path, "/audio/transcriptions"):
	case strings.HasSuffix(u.Path, "/v1"):
		u.Path += "/audio/transcriptions"
	default:
		u.Path += "/v1/audio/transcriptions"
	}
	return u.String(), nil
}

// Info names the server by host; servers do not report their model version on this API.
func (o *OpenAI) Info() EngineInfo {
	host := o.endpoint
	if u, err := url.Parse(o.endpoint); err == nil {
		host = u.Host
	}
	return EngineInfo{Name: "OpenAI-compatible speech-to-text at " + host, Model: o.cfg.Model}
}

// Close drops idle connections.
func (o *OpenAI) Close() error {
	o.client.CloseIdleConnections()
	return nil
}

// Transcribe sends pcm in overlapping chunks, one after another, and stitches the answers.
func (o *OpenAI) Transcribe(ctx context.Context, pcm *audio.PCM) (*Transcript, error) {
	chunks := audio.Chunks(pcm, o.cfg.ChunkLength, o.cfg.ChunkOverlap)
	results := make([]chunkTranscript, 0, len(chunks))
	for i, c := range chunks {
		tr, err := o.transcribeChunk(ctx, c.PCM)
		if err != nil {
			if len(chunks) == 1 {
				return nil, err
			}
			return nil, fmt.Errorf("chunk %d of %d (from %v): %w", i+1, len(chunks), c.Offset, err)
		}
		results = append(results, chunkTranscript{offset: c.Offset, length: c.PCM.Duration(), tr: tr})
	}
	out := stitch(results, o.cfg.ChunkOverlap)
	if out.Language == "" {
		out.Language = o.cfg.Language
	}
	return out, nil
}

// transcribeChunk posts one chunk, retrying transient failures within the attempt and time budget.
func (o *OpenAI) transcribeChunk(ctx context.Context, pcm *audio.PCM) (*Transcript, error) {
	body, contentType := o.requestBody(pcm)
	deadline := time.Now().Add(o.cfg.RetryBudget)
	for attempt := 1; ; attempt++ {
		tr, retryAfter, err := o.post(ctx, body, contentType)
		if err == nil {
			return tr, nil
		}
		if !errors.Is(err, ErrTransient) || ctx.Err() != nil {
			return nil, err
		}
		if attempt >= o.cfg.MaxAttempts {
			if attempt > 1 {
				err = fmt.Errorf("gave up after %d attempts: %w", attempt, err)
			}
			return nil, err
		}
		wait := retryAfter
		if wait <= 0 {
			wait = o.backoff(attempt)
		}
		if time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("retry budget of %v spent after %d attempts: %w", o.cfg.RetryBudget, attempt, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, transient(0, fmt.Errorf("waiting to retry: %w", ctx.Err()))
		case <-t.C:
		}
	}
}

// backoff is RetryBackoff doubled per attempt, capped, with jitter in [50 %, 100 %].
func (o *OpenAI) backoff(attempt int) time.Duration {
	d := o.cfg.RetryBackoff << min(attempt-1, 20)
	if d <= 0 || d > maxBackoff {
		d = min(maxBackoff, max(o.cfg.RetryBackoff, 0))
	}
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// requestBody builds the multipart form once per chunk, so that retries resend the same bytes.
func (o *OpenAI) requestBody(pcm *audio.PCM) ([]byte, string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("model", o.cfg.Model)
	mw.WriteField("response_format", "verbose_json")
	if o.cfg.Language != "" {
		mw.WriteField("language", o.cfg.Language)
	}
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="file"; filename="audio.wav"`)
	h.Set("Content-Type", "audio/wav")
	fw, _ := mw.CreatePart(h)
	fw.Write(audio.EncodeWAV(pcm))
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

// verboseJSON is the part of OpenAI's verbose_json answer that Billy uses.
type verboseJSON struct {
	Text     *string `json:"text"`
	Language string  `json:"language"`
	Segments []struct {
		Start float64 `json:"start"`
		End   float64 `json:"end"`
		Text  string  `json:"text"`
	} `json:"segments"`
}

// post makes one request. It returns the server's Retry-After wait, if any, with transient errors.
func (o *OpenAI) post(ctx context.Context, body []byte, contentType string) (*Transcript, time.Duration, error) {
	rctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, o.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, 0, permanent(0, err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	if o.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.cfg.APIKey)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, 0, transient(0, ctx.Err())
		case errors.Is(err, context.DeadlineExceeded):
			return nil, 0, transient(0, fmt.Errorf("no answer within %v: %w", o.cfg.Timeout, context.DeadlineExceeded))
		}
		return nil, 0, transient(0, o.redact(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, transient(0, ctx.Err())
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, 0, transient(resp.StatusCode, fmt.Errorf("answer not complete within %v: %w", o.cfg.Timeout, err))
		}
		return nil, 0, transient(resp.StatusCode, fmt.Errorf("read answer: %w", o.redact(err)))
	}
	if resp.StatusCode/100 != 2 {
		err := fmt.Errorf("%s: %s", resp.Status, o.redact(errors.New(serverMessage(raw))))
		switch {
		case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout,
			resp.StatusCode >= 500:
			return nil, retryAfter(resp.Header.Get("Retry-After")), transient(resp.StatusCode, err)
		}
		return nil, 0, permanent(resp.StatusCode, err)
	}
	if len(raw) > maxResponse {
		return nil, 0, permanent(resp.StatusCode, fmt.Errorf("answer larger than %d bytes", maxResponse))
	}
	tr, err := parseVerboseJSON(raw)
	if err != nil {
		return nil, 0, permanent(resp.StatusCode, err)
	}
	return tr, 0, nil
}

// parseVerboseJSON checks and converts an answer.
func parseVerboseJSON(raw []byte) (*Transcript, error) {
	var v verboseJSON
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("malformed answer (want verbose_json): %w: %s", err, snippet(raw))
	}
	if v.Text == nil {
		return nil, fmt.Errorf("malformed answer: no \"text\" field: %s", snippet(raw))
	}
	tr := &Transcript{Text: strings.TrimSpace(*v.Text), Language: v.Language}
	for i, s := range v.Segments {
		if math.IsNaN(s.Start) || math.IsNaN(s.End) || s.Start < 0 || s.End < 0 || s.Start > 1e7 || s.End > 1e7 {
			return nil, fmt.Errorf("malformed answer: segment %d has times %v..%v", i, s.Start, s.End)
		}
		text := strings.TrimSpace(s.Text)
		if text == "" {
			continue
		}
		start := seconds(s.Start)
		end := max(start, seconds(s.End))
		tr.Segments = append(tr.Segments, Segment{Start: start, End: end, Text: text})
	}
	if len(tr.Segments) > 0 {
		tr.Text = joinText(tr.Segments)
	}
	return tr, nil
}

// seconds converts JSON seconds, rounding (8.2 s is 8.199999… in binary).
func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }

// serverMessage is the message of an OpenAI-style error body, or the start of the body.
func serverMessage(raw []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	return snippet(raw)
}

func snippet(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}

// redact removes the API key from text that came from elsewhere (a server echoing headers).
func (o *OpenAI) redact(err error) error {
	if o.cfg.APIKey == "" || !strings.Contains(err.Error(), o.cfg.APIKey) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), o.cfg.APIKey, "[redacted]"))
}

// retryAfter parses a Retry-After header in seconds or as an HTTP date; 0 when absent or past.
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil {
		return time.Duration(max(s, 0)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
