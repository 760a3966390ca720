// Package audio turns uploaded encounter audio into what speech-to-text engines want: 16 kHz mono PCM
// as float32 samples in [-1, 1].
//
// It owns decoding, downmixing, resampling, splitting long recordings into overlapping chunks and
// encoding a chunk back to a 16-bit WAV. It does not know where audio is stored, FHIR, or any engine.
//
// WAV (RIFF, RF64 and BW64; integer PCM of 8, 16, 24 and 32 bits, IEEE float of 32 and 64 bits, G.711
// A-law and µ-law, plain or WAVE_FORMAT_EXTENSIBLE, any channel count and sample rate) is decoded in pure
// Go, block by block, so memory follows the decoded output (64 KB per second at 16 kHz), never the size
// of the upload. Every other container and codec (Ogg, MP3, MP4/M4A, WebM/Matroska, FLAC, AAC, AMR, WMA,
// and WAV codecs such as ADPCM) goes through the ffmpeg command when it is on PATH, reading the input on
// stdin and writing s16le at 16 kHz mono on stdout; without ffmpeg those inputs fail with an error that
// says to install it. The format is sniffed from the first bytes; the declared content type only counts
// when the bytes are not recognised, because uploads often say application/octet-stream or mislabel
// their container.
//
// # Resampling
//
// Rates other than 16 kHz go through a band-limited polyphase resampler: a Kaiser-windowed sinc
// (β = 8, 12 zero crossings on each side, cut-off at 90 % of the lower Nyquist frequency) precomputed for
// every phase of the exact rational ratio (e.g. 160/441 for 44.1 kHz), or for 4096 phases when the ratio
// has a larger numerator, with each phase normalised to unit DC gain. That is the textbook design
// (Smith, "Digital Audio Resampling"; what libsamplerate and speexdsp do): tones above 8 kHz come out
// more than 80 dB down, far past what speech recognition needs, and no delay: output sample k is centred on
// input time k·in/out, so timestamps stay aligned with the original. Linear interpolation alone would
// fold everything above 8 kHz back into the speech band.
//
// Written by hand because no maintained pure-Go library covers streaming WAV decoding with
// extensible/float/G.711 formats plus a band-limited resampler; go-audio/wav loads whole files and has
// no resampler.
//
// # Errors
//
// Input that cannot be decoded returns a *DecodeError (errors.As) wrapping one of ErrEmpty, ErrTruncated,
// ErrMalformed, ErrUnsupported, ErrNoFFmpeg or ErrTooLong: retrying it will not help, so a worker should
// fail the job permanently ("cannot decode audio: ..."), except that ErrNoFFmpeg is fixed by installing
// ffmpeg. Errors reading the input itself (a storage failure) and context errors are returned as they
// are, not as a DecodeError.
package audio
