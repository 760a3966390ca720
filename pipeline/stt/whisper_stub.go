//go:build !whisper

package stt

// newWhisper stands in for the whisper.cpp engine in builds without the whisper tag.
func newWhisper(Config) (Engine, error) { return nil, ErrNoWhisper }
