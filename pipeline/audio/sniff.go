package audio

import (
	"bytes"
	"mime"
	"strings"
)

// Format names an audio container (or raw codec stream) as sniffed from its first bytes.
type Format string

// Formats Sniff recognises.
const (
	FormatUnknown Format = "unknown"
	FormatWAV     Format = "wav"
	FormatOgg     Format = "ogg"
	FormatMP3     Format = "mp3"
	FormatMP4     Format = "mp4"
	FormatWebM    Format = "webm"
	FormatFLAC    Format = "flac"
	FormatAAC     Format = "aac"
	FormatAMR     Format = "amr"
	FormatAIFF    Format = "aiff"
	FormatCAF     Format = "caf"
	FormatASF     Format = "asf"
)

// SniffLen is how many leading bytes Sniff looks at.
const SniffLen = 16

var asfGUID = []byte{0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11}

// Sniff names the format of data that starts with head (at least SniffLen bytes when the input has
// them), or FormatUnknown.
func Sniff(head []byte) Format {
	has := func(off int, s string) bool {
		return len(head) >= off+len(s) && string(head[off:off+len(s)]) == s
	}
	switch {
	case (has(0, "RIFF") || has(0, "RF64") || has(0, "BW64")) && has(8, "WAVE"):
		return FormatWAV
	case has(0, "OggS"):
		return FormatOgg
	case has(0, "fLaC"):
		return FormatFLAC
	case has(4, "ftyp"):
		return FormatMP4
	case len(head) >= 4 && bytes.Equal(head[:4], []byte{0x1A, 0x45, 0xDF, 0xA3}):
		return FormatWebM
	case has(0, "#!AMR"):
		return FormatAMR
	case has(0, "FORM") && (has(8, "AIFF") || has(8, "AIFC")):
		return FormatAIFF
	case has(0, "caff"):
		return FormatCAF
	case len(head) >= 8 && bytes.Equal(head[:8], asfGUID):
		return FormatASF
	case has(0, "ID3"):
		return FormatMP3
	case len(head) >= 2 && head[0] == 0xFF && head[1]&0xF6 == 0xF0:
		return FormatAAC // ADTS: sync 0xFFF, layer bits 00
	case len(head) >= 2 && head[0] == 0xFF && head[1]&0xE0 == 0xE0 && head[1]&0x06 != 0:
		return FormatMP3 // MPEG audio frame sync with a layer
	}
	return FormatUnknown
}

// FormatOf maps a declared content type to a format, or FormatUnknown.
func FormatOf(contentType string) Format {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(contentType))
	}
	switch mt {
	case "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/x-pn-wav":
		return FormatWAV
	case "audio/ogg", "audio/opus", "application/ogg", "audio/x-ogg", "audio/vorbis":
		return FormatOgg
	case "audio/mpeg", "audio/mp3", "audio/x-mp3", "audio/mpeg3", "audio/x-mpeg-3":
		return FormatMP3
	case "audio/mp4", "audio/m4a", "audio/x-m4a", "video/mp4", "audio/aac-mp4", "video/quicktime", "audio/3gpp", "video/3gpp":
		return FormatMP4
	case "audio/webm", "video/webm", "audio/x-matroska", "video/x-matroska":
		return FormatWebM
	case "audio/flac", "audio/x-flac":
		return FormatFLAC
	case "audio/aac", "audio/x-aac", "audio/aacp":
		return FormatAAC
	case "audio/amr", "audio/amr-wb":
		return FormatAMR
	case "audio/aiff", "audio/x-aiff":
		return FormatAIFF
	case "audio/x-caf":
		return FormatCAF
	case "audio/x-ms-wma", "video/x-ms-asf", "video/x-ms-wmv":
		return FormatASF
	}
	return FormatUnknown
}

// ffmpegDemuxer is ffmpeg's -f name for a format; "" lets ffmpeg probe.
func ffmpegDemuxer(f Format) string {
	switch f {
	case FormatWAV:
		return "wav"
	case FormatOgg:
		return "ogg"
	case FormatMP3:
		return "mp3"
	case FormatMP4:
		return "mov"
	case FormatWebM:
		return "matroska"
	case FormatFLAC:
		return "flac"
	case FormatAAC:
		return "aac"
	case FormatAMR:
		return "amr"
	case FormatAIFF:
		return "aiff"
	case FormatCAF:
		return "caf"
	case FormatASF:
		return "asf"
	}
	return ""
}
