package stt

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestStitch(t *testing.T) {
	t.Parallel()
	s := time.Second
	seg := func(start, end float64, text string) Segment {
		return Segment{Start: time.Duration(start * float64(s)), End: time.Duration(end * float64(s)), Text: text}
	}
	tests := []struct {
		name   string
		chunks []chunkTranscript
		want   []Segment
		text   string
	}{
		{
			name: "a word in the overlap is kept once, from the side its midpoint is on",
			chunks: []chunkTranscript{
				{offset: 0, length: 30 * s, tr: &Transcript{Segments: []Segment{seg(26, 27.5, "early"), seg(28.1, 28.9, "before-cut"), seg(29.5, 30, "cut-off")}}},
				{offset: 28 * s, length: 30 * s, tr: &Transcript{Segments: []Segment{seg(0.1, 0.9, "before-cut"), seg(1.2, 2.2, "after-cut"), seg(3, 4, "late")}}},
			},
			want: []Segment{seg(26, 27.5, "early"), seg(28.1, 28.9, "before-cut"), seg(29.2, 30.2, "after-cut"), seg(31, 32, "late")},
			text: "early before-cut after-cut late",
		},
		{
			name: "segments are clamped so they never overlap",
			chunks: []chunkTranscript{
				{offset: 0, length: 30 * s, tr: &Transcript{Segments: []Segment{seg(27, 29.2, "long")}}},
				{offset: 28 * s, length: 10 * s, tr: &Transcript{Segments: []Segment{seg(0.8, 3, "next")}}},
			},
			want: []Segment{seg(27, 29.2, "long"), seg(29.2, 31, "next")},
			text: "long next",
		},
		{
			name: "a chunk with text and no segments spans the chunk",
			chunks: []chunkTranscript{
				{offset: 0, length: 30 * s, tr: &Transcript{Text: "first part", Language: "en"}},
				{offset: 28 * s, length: 12 * s, tr: &Transcript{Text: "second part", Language: "fr"}},
			},
			want: []Segment{seg(0, 30, "first part"), seg(30, 40, "second part")},
			text: "first part second part",
		},
		{
			name:   "silence",
			chunks: []chunkTranscript{{offset: 0, length: 5 * s, tr: &Transcript{}}},
			want:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := stitch(tt.chunks, 2*s)
			if diff := cmp.Diff(tt.want, got.Segments); diff != "" {
				t.Errorf("segments (-want +got):\n%s", diff)
			}
			if got.Text != tt.text {
				t.Errorf("Text = %q, want %q", got.Text, tt.text)
			}
		})
	}
}
