#!/bin/sh
# Container entry point: makes a master key in the data volume on first start unless one is given
# (BILLY_MASTER_KEY or BILLY_MASTER_KEY_FILE), then runs billy with the arguments.
set -e
if [ -z "$BILLY_MASTER_KEY$BILLY_MASTER_KEY_FILE" ]; then
  f=${BILLY_DATA_DIR:-/data}/master.key
  if [ ! -s "$f" ]; then
    (umask 077; head -c32 /dev/urandom | base64 > "$f")
    echo "made a master key in $f (keep the volume: without it the encrypted audio cannot be read)" >&2
  fi
  export BILLY_MASTER_KEY_FILE="$f"
fi
exec billy "$@"
