#!/usr/bin/env bash
# Installs the command-line tools the pipeline's tests use, when they are missing (idempotent):
#   espeak-ng  synthesises speech for the audio tests
#   sox        converts it between WAV layouts (rates, channels, bit depths, encodings)
#   ffmpeg     decodes Ogg, MP3, M4A, WebM, FLAC and ADPCM in pipeline/audio (also needed at run time
#              for those formats; WAV needs nothing)
# `make test` runs this first. Without apt-get it only says what is missing: the tests then skip what
# needs the tools, except under CI=true, where they fail.
set -euo pipefail

say() { echo "pipeline-deps: $*" >&2; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for tool in espeak-ng sox ffmpeg; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  say "missing ${missing[*]} and no apt-get here: install them with your package manager"
  exit 0
fi
say "installing ${missing[*]}"
sudo_ apt-get update -qq
sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for tool in "${missing[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool still missing after apt-get install"; exit 1; }
done
