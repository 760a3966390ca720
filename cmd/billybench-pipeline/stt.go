package main

import (
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// sttStub is an OpenAI-compatible speech-to-text server that answers at once: a fixed short text in
// two segments, as verbose_json. It records how long each answer took it, so that the benchmark can
// take the stub's own time out of a run's.
type sttStub struct {
	*httptest.Server
	mu    sync.Mutex
	times latencies
	bad   int // requests it could not read
}

func newSTTStub() *sttStub {
	s := &sttStub{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	return s
}

func (s *sttStub) handle(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	audioBytes, ok := fileSize(r)
	if !ok || r.URL.Path != "/v1/audio/transcriptions" {
		s.mu.Lock()
		s.bad++
		s.mu.Unlock()
		http.Error(w, "want a multipart POST to /v1/audio/transcriptions with a file", http.StatusBadRequest)
		return
	}
	// Billy sends 16 kHz mono 16-bit WAV: 32,000 bytes a second after the 44-byte header.
	secs := float64(max(audioBytes-44, 0)) / 32000
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"task": "transcribe", "language": "english", "duration": secs,
		"text": "Patient reports chest pain for two days. Denies shortness of breath.",
		"segments": []any{
			map[string]any{"id": 0, "start": 0.0, "end": secs / 2, "text": " Patient reports chest pain for two days."},
			map[string]any{"id": 1, "start": secs / 2, "end": secs, "text": " Denies shortness of breath."},
		},
	})
	d := time.Since(t0)
	s.mu.Lock()
	s.times = append(s.times, d)
	s.mu.Unlock()
}

// fileSize reads a multipart form and returns the size of its file part.
func fileSize(r *http.Request) (int64, bool) {
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return 0, false
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	var n int64
	found := false
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return n, found
		}
		if err != nil {
			return 0, false
		}
		c, err := io.Copy(io.Discard, part)
		if err != nil {
			return 0, false
		}
		if part.FormName() == "file" {
			n, found = c, true
		}
	}
}

// take returns the answer times recorded since the last call, and the count of bad requests.
func (s *sttStub) take() (latencies, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, bad := s.times, s.bad
	s.times, s.bad = nil, 0
	return t, bad
}
