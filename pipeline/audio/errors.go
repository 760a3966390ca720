package audio

import (
	"errors"
	"fmt"
)

// Reasons a DecodeError wraps.
var (
	// ErrEmpty: the input has no bytes, or a valid header and no samples.
	ErrEmpty = errors.New("no audio data")
	// ErrTruncated: the input ends inside its header.
	ErrTruncated = errors.New("truncated header")
	// ErrMalformed: the bytes are not valid for their format, or ffmpeg could not decode them.
	ErrMalformed = errors.New("malformed audio")
	// ErrUnsupported: a WAV codec or parameter this package does not decode and no ffmpeg is available.
	ErrUnsupported = errors.New("unsupported audio encoding")
	// ErrNoFFmpeg: the format needs ffmpeg and none is on PATH.
	ErrNoFFmpeg = errors.New("ffmpeg is not installed")
	// ErrTooLong: the decoded audio exceeds the Decoder's MaxDuration.
	ErrTooLong = errors.New("audio too long")
)

// DecodeError is returned for input that cannot be decoded. It is permanent for the same bytes.
type DecodeError struct {
	// ContentType is the declared content type, as given.
	ContentType string
	// Format is the container sniffed from the bytes (or taken from ContentType).
	Format Format
	// Err is one of the Err* reasons above, possibly wrapped with detail.
	Err error
}

// Error says "cannot decode audio", the content type, the detected format and the reason.
func (e *DecodeError) Error() string {
	ct := e.ContentType
	if ct == "" {
		ct = "no content type"
	}
	return fmt.Sprintf("cannot decode audio (%s, detected %s): %v", ct, e.Format, e.Err)
}

// Unwrap returns the reason, one of the Err* values (possibly wrapped).
func (e *DecodeError) Unwrap() error { return e.Err }
