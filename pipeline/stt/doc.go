// Package stt turns 16 kHz mono PCM (pipeline/audio) into a timed transcript through a speech-to-text
// engine chosen by configuration.
//
// It owns the Engine interface and its two implementations: OpenAI, a client of any server speaking
// OpenAI's POST /v1/audio/transcriptions (whisper.cpp's server, faster-whisper-server/speaches, vLLM,
// OpenAI itself), and an in-process whisper.cpp engine compiled only with the build tag `whisper`. It does
// not decode audio, store anything, or know FHIR and the job queue: the worker calls Transcribe and
// records EngineInfo as the FHIR Device that produced the transcript.
//
// # Errors
//
// Every error from Transcribe wraps ErrTransient or ErrPermanent (test with errors.Is), so the worker can
// decide without reading messages: transient (HTTP 5xx, 408, 429, network failures, timeouts, a done
// context) means retry the job later; permanent (other 4xx, a malformed answer, whisper failing on the
// input) means fail it. The OpenAI engine has already retried transient failures within its budget
// before it returns one. *Error carries the HTTP status when there was one.
//
// # Long recordings
//
// The OpenAI engine sends audio in chunks (30 s by default, the window Whisper models see at once) that
// overlap by 2 s, so a word cut at a chunk's end is whole at the next one's start, and stitches the
// answers: segment times are shifted by the chunk's offset, and each overlap is split at its middle
// (a segment belongs to the chunk in which its midpoint falls on that chunk's side of the cut), so a
// word heard in both chunks is kept once, from the chunk that heard it further from its edge. A chunk
// answer with text but no segments counts as one segment spanning the chunk, and then words in an overlap
// can appear twice. The in-process whisper engine gets the whole recording: whisper.cpp does its own
// windowing.
package stt
