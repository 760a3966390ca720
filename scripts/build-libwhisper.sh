#!/usr/bin/env bash
# Builds a static libwhisper (whisper.cpp 1.9.1) for `go build -tags whisper`, into a cache directory that
# is never committed, and prints the environment the Go bindings need.
#
#   scripts/build-libwhisper.sh                 build (or reuse) and print the exports
#   eval "$(scripts/build-libwhisper.sh --env)" build (or reuse) and set C_INCLUDE_PATH / LIBRARY_PATH here
#
# Source: these machines reach no git host, so the whisper.cpp source comes from the npm package
# nodejs-whisper@0.3.1, which ships whisper.cpp 1.9.1 under cpp/whisper.cpp. With internet access you may
# instead clone https://github.com/ggml-org/whisper.cpp at tag v1.9.1 and set WHISPER_SRC to it.
#
# Environment:
#   BILLY_CACHE_DIR   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/billy)
#   WHISPER_SRC       an existing whisper.cpp source tree to build instead of the npm copy
#   JOBS              parallel build jobs (default: nproc)
set -euo pipefail

mode=${1:-}
say() { echo "build-libwhisper: $*" >&2; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

cache=${BILLY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/billy}
pkg_version=0.3.1

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v c++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
if [ -z "${WHISPER_SRC:-}" ] && ! command -v npm >/dev/null; then need+=(npm); fi
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { say "install ${need[*]} first"; exit 1; }
  say "installing ${need[*]}"
  sudo_ apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -n "${WHISPER_SRC:-}" ]; then
  src=$(cd "$WHISPER_SRC" && pwd)
else
  root="$cache/nodejs-whisper-$pkg_version"
  src="$root/package/cpp/whisper.cpp"
  if [ ! -f "$src/CMakeLists.txt" ]; then
    say "fetching nodejs-whisper@$pkg_version (whisper.cpp source) into $root"
    rm -rf "$root" && mkdir -p "$root"
    tgz=$(cd "$root" && npm pack --silent "nodejs-whisper@$pkg_version")
    tar -xzf "$root/$tgz" -C "$root"
    rm -f "$root/$tgz"
  fi
fi

build="$src/build"
lib_ok() { [ -f "$build/src/libwhisper.a" ] && [ -f "$build/ggml/src/libggml.a" ] \
  && [ -f "$build/ggml/src/libggml-base.a" ] && [ -f "$build/ggml/src/libggml-cpu.a" ]; }
if ! lib_ok; then
  say "building libwhisper (static) in $build; takes about a minute on 2 cores"
  # GGML_NATIVE=OFF: the library may be used on another CPU of the same architecture (CI, containers).
  log="$cache/libwhisper-build.log"
  mkdir -p "$cache"
  if ! { cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
      -DWHISPER_BUILD_TESTS=OFF -DWHISPER_BUILD_EXAMPLES=OFF -DWHISPER_BUILD_SERVER=OFF \
      -DGGML_NATIVE=OFF &&
    cmake --build "$build" --target whisper -j "${JOBS:-$(nproc)}"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    say "build failed; full log in $log"
    exit 1
  fi
  lib_ok || { say "build finished without the static libraries in $build/src and $build/ggml/src"; exit 1; }
fi

inc="$src/include:$src/ggml/include"
lib="$build/src:$build/ggml/src"
if [ "$mode" = --env ]; then
  echo "export C_INCLUDE_PATH=\"$inc\${C_INCLUDE_PATH:+:\$C_INCLUDE_PATH}\""
  echo "export LIBRARY_PATH=\"$lib\${LIBRARY_PATH:+:\$LIBRARY_PATH}\""
else
  say "done. Build Billy with whisper support:"
  echo "  export C_INCLUDE_PATH=$inc"
  echo "  export LIBRARY_PATH=$lib"
  echo "  go build -tags whisper ./cmd/billy"
fi
