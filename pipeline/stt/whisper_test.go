//go:build whisper

package stt_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iambilly/billy/pipeline/stt"
)

// No model weights can be downloaded here: these tests check the model boundary of a whisper build.
func TestWhisperModelErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "ggml-garbage.bin")
	if err := os.WriteFile(garbage, []byte("this is not a ggml model"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "ggml-base.en.bin")
	tests := []struct {
		name  string
		model string
		is    error
	}{
		{"missing file", missing, fs.ErrNotExist},
		{"not a model", garbage, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := stt.New(stt.Config{WhisperModel: tt.model})
			if err == nil {
				stt.Close(e)
				t.Fatal("New succeeded without a model")
			}
			if !strings.Contains(err.Error(), tt.model) || !strings.Contains(err.Error(), "BILLY_WHISPER_MODEL") {
				t.Errorf("error %q does not name the model path and setting", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
			if errors.Is(err, stt.ErrNoWhisper) {
				t.Errorf("a whisper build says it has no whisper: %v", err)
			}
		})
	}
}
