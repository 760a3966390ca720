//go:build whisper

package stt

// #include <whisper.h>
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"

	whisper "github.com/ggerganov/whisper.cpp/bindings/go/pkg/whisper"

	"github.com/iambilly/billy/pipeline/audio"
)

// whisperEngine runs whisper.cpp in process. whisper.cpp keeps one decoding state per loaded model, so
// transcriptions take turns; run more workers (processes) for parallelism.
type whisperEngine struct {
	mu    sync.Mutex
	model whisper.Model
	path  string
	cfg   Config
}

var _ Engine = (*whisperEngine)(nil)

func newWhisper(cfg Config) (Engine, error) {
	m, err := whisper.New(cfg.WhisperModel)
	if err != nil {
		return nil, fmt.Errorf("whisper: load model %s (BILLY_WHISPER_MODEL): %w", cfg.WhisperModel, err)
	}
	return &whisperEngine{model: m, path: cfg.WhisperModel, cfg: cfg}, nil
}

// Info names whisper.cpp, the model file and the library version linked in.
func (w *whisperEngine) Info() EngineInfo {
	return EngineInfo{Name: "whisper.cpp", Model: filepath.Base(w.path), Version: C.GoString(C.whisper_version())}
}

// Close frees the model.
func (w *whisperEngine) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.model.Close()
}

// Transcribe runs whisper over the whole recording; a done ctx stops it before its next window.
func (w *whisperEngine) Transcribe(ctx context.Context, pcm *audio.PCM) (*Transcript, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, transient(0, err)
	}
	wc, err := w.model.NewContext()
	if err != nil {
		return nil, permanent(0, fmt.Errorf("whisper: %w", err))
	}
	if w.model.IsMultilingual() {
		lang := w.cfg.Language
		if lang == "" {
			lang = "auto"
		}
		if err := wc.SetLanguage(lang); err != nil {
			return nil, permanent(0, fmt.Errorf("whisper: language %q: %w", lang, err))
		}
	}
	if w.cfg.WhisperThreads > 0 {
		wc.SetThreads(uint(w.cfg.WhisperThreads))
	}
	err = wc.Process(pcm.Samples, func() bool { return ctx.Err() == nil }, nil, nil)
	if ctx.Err() != nil {
		return nil, transient(0, ctx.Err())
	}
	if err != nil {
		return nil, permanent(0, fmt.Errorf("whisper: %w", err))
	}
	tr := &Transcript{}
	for {
		s, err := wc.NextSegment()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, permanent(0, fmt.Errorf("whisper: %w", err))
		}
		if text := strings.TrimSpace(s.Text); text != "" {
			tr.Segments = append(tr.Segments, Segment{Start: s.Start, End: s.End, Text: text})
		}
	}
	tr.Text = joinText(tr.Segments)
	tr.Language = w.cfg.Language
	if w.model.IsMultilingual() {
		if l := wc.DetectedLanguage(); l != "" {
			tr.Language = l
		}
	} else if tr.Language == "" {
		tr.Language = "en" // the .en models transcribe English only
	}
	return tr, nil
}
