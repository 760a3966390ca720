#!/usr/bin/env bash
# The setup make run and make smoke share, so that what CI checks is what a newcomer runs:
#   1. a development master key in $MASTER_KEY_FILE (default data/master.key), made on first use,
#      unless BILLY_MASTER_KEY or BILLY_MASTER_KEY_FILE is set; exported as BILLY_MASTER_KEY_FILE
#   2. billy migrate
#   3. billy seed (the demo data, the SMART client demo-app and the user demo)
#   4. scripts/codes.sh (the ICD-10-CM and HCPCS files it finds; the first import also indexes
#      their descriptions for retrieval, the slow step)
# It is sourced (". scripts/setup.sh") by scripts/run.sh and scripts/smoke.sh, so the key's
# variable stays set for what they run next; run alone, it only sets up. Progress goes to stderr.
# BIN is the billy binary (default bin/billy); the BILLY_* variables are billy's own.
set -euo pipefail

bin=${BIN:-bin/billy}
setup_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

setup_say() { echo "setup: $*" >&2; }

# setup_step NAME COMMAND... runs a step, saying when it starts and how long it took.
setup_step() {
  local name=$1 start=$SECONDS
  shift
  setup_say "$name..."
  "$@"
  setup_say "$name: done in $((SECONDS - start)) s"
}

if [ -z "${BILLY_MASTER_KEY:-}${BILLY_MASTER_KEY_FILE:-}" ]; then
  key_file=${MASTER_KEY_FILE:-data/master.key}
  if [ ! -s "$key_file" ]; then
    mkdir -p "$(dirname "$key_file")"
    (umask 077 && head -c32 /dev/urandom | base64 >"$key_file")
    setup_say "made a development master key in $key_file (it encrypts the audio and seals the token keys: keep it)"
  fi
  export BILLY_MASTER_KEY_FILE=$key_file
fi

setup_step "migrating the database" "$bin" migrate
setup_step "loading the demo data" "$bin" seed
setup_step "importing the code sets (the first time about a minute: load, then index)" env BIN="$bin" "$setup_dir/codes.sh"
