package hl7v2

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// MLLP framing (HL7 v2 Minimal Lower Layer Protocol, release 2): a message is sent as
// <VT> message <FS><CR>.
const (
	startBlock = 0x0b
	endBlock   = 0x1c
	cr         = 0x0d
)

// MaxMessageBytes bounds one framed message.
const MaxMessageBytes = 1 << 20

// FramingError is a byte stream that does not follow MLLP; the reader has skipped to the next
// start block (or the connection must close when Fatal).
type FramingError struct {
	Reason string
	Fatal  bool
	// Data is what was received of the broken frame (kept for inspection).
	Data []byte
}

func (e *FramingError) Error() string { return "mllp: " + e.Reason }

// ReadFrame reads the next framed message. Whitespace between frames is ignored; other bytes
// before a start block, a start block inside a message and a missing CR after the end block are
// framing errors after which reading can continue; a message over MaxMessageBytes is fatal. EOF
// inside a frame is io.ErrUnexpectedEOF (the sender dropped mid-message: nothing of it applies).
func ReadFrame(r *bufio.Reader) ([]byte, error) {
	var junk []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && len(junk) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if b == startBlock {
			break
		}
		if b == '\r' || b == '\n' || b == ' ' || b == '\t' {
			continue
		}
		junk = append(junk, b)
		if len(junk) > 4096 {
			return nil, &FramingError{Reason: "data outside a frame", Fatal: true, Data: junk}
		}
	}
	if len(junk) > 0 {
		// The data before this start block was not framed: report it, this frame is read next.
		_ = r.UnreadByte()
		return nil, &FramingError{Reason: "data outside a frame (no start block)", Data: junk}
	}
	var msg []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch b {
		case endBlock:
			c, err := r.ReadByte()
			if err != nil {
				if err == io.EOF {
					return nil, io.ErrUnexpectedEOF
				}
				return nil, err
			}
			if c != cr {
				_ = r.UnreadByte()
				return nil, &FramingError{Reason: "the end block is not followed by a carriage return", Data: msg}
			}
			return msg, nil
		case startBlock:
			_ = r.UnreadByte()
			return nil, &FramingError{Reason: "a start block inside a message", Data: msg}
		}
		msg = append(msg, b)
		if len(msg) > MaxMessageBytes {
			return nil, &FramingError{Reason: fmt.Sprintf("a message over %d bytes", MaxMessageBytes), Fatal: true, Data: msg[:1024]}
		}
	}
}

// Frame wraps a message in MLLP framing.
func Frame(msg []byte) []byte {
	out := make([]byte, 0, len(msg)+3)
	out = append(out, startBlock)
	out = append(out, msg...)
	return append(out, endBlock, cr)
}

// IsFraming reports whether err is a framing error.
func IsFraming(err error) bool {
	var fe *FramingError
	return errors.As(err, &fe)
}
