//go:build whisper

package stt_test

const whisperBuild = true
