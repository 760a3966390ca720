#!/usr/bin/env bash
# make run: the shared setup (scripts/setup.sh: key, migrations, demo data, code sets), the printed
# examples (scripts/hello.sh), then billy serve in the foreground. make smoke runs the same setup and
# the same printed examples against a scratch database.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin/billy}
start=$SECONDS
# shellcheck source=scripts/setup.sh
. scripts/setup.sh
echo "run: set up in $((SECONDS - start)) s; starting $bin serve (Ctrl-C stops it)" >&2
BIN=$bin scripts/hello.sh
exec "$bin" serve
