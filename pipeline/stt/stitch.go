package stt

import (
	"math"
	"time"
)

// chunkTranscript is one chunk's answer, with times relative to the chunk.
type chunkTranscript struct {
	offset, length time.Duration
	tr             *Transcript
}

// stitch merges chunk transcripts into one with absolute times, splitting each overlap at its middle
// (see the package doc).
func stitch(chunks []chunkTranscript, overlap time.Duration) *Transcript {
	out := &Transcript{}
	var last time.Duration // end of the last segment kept
	for k, c := range chunks {
		if out.Language == "" {
			out.Language = c.tr.Language
		}
		lo, hi := time.Duration(math.MinInt64), time.Duration(math.MaxInt64)
		if k > 0 {
			lo = c.offset + overlap/2
		}
		if k+1 < len(chunks) {
			hi = chunks[k+1].offset + overlap/2
		}
		segs := c.tr.Segments
		if len(segs) == 0 && c.tr.Text != "" {
			segs = []Segment{{Start: 0, End: c.length, Text: c.tr.Text}}
		}
		for _, s := range segs {
			s.Start += c.offset
			s.End += c.offset
			if mid := s.Start + (s.End-s.Start)/2; mid < lo || mid >= hi {
				continue
			}
			s.Start = max(s.Start, last)
			s.End = max(s.End, s.Start)
			last = s.End
			out.Segments = append(out.Segments, s)
		}
	}
	out.Text = joinText(out.Segments)
	return out
}
