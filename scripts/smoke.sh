#!/usr/bin/env bash
# make smoke (part of make test): what make run does, checked end to end, so make run cannot break
# silently. On a scratch database it runs the same setup (scripts/setup.sh), starts billy serve on a
# free port, waits for /readyz, then runs exactly the commands make run prints (the lines between
# "### try it ###" and "### end ###" in scripts/hello.sh's output) followed by checks: the
# dev-token and dev-login tokens read the demo patient, the transcript's coding run completes with
# a draft Claim. It stops the server and prints how long each part took.
#
# Environment: BIN (default bin/billy); BILLY_SMOKE_DATABASE (default billy_smoke, dropped and
# created on the server of BILLY_TEST_DATABASE_URL); BILLY_TEST_REDIS_URL (default db 15), with a
# queue of its own; BILLY_SHARED_DATA as for scripts/codes.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin/billy}
[ -x "$bin" ] || { echo "smoke: $bin is missing: make build" >&2; exit 1; }

say() { echo "smoke: $*" >&2; }
t0=$SECONDS
lap=$SECONDS
timings=()
timing() { timings+=("$1 $((SECONDS - lap)) s"); lap=$SECONDS; }

work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
failed() {
  say "FAILED: $*"
  for f in "$work"/*.log; do
    [ -s "$f" ] || continue
    echo "----- $(basename "$f") (last 40 lines)" >&2
    tail -n 40 "$f" >&2
  done
  exit 1
}

# A scratch database on the test server.
test_url=${BILLY_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/billy_test?sslmode=disable}
db=${BILLY_SMOKE_DATABASE:-billy_smoke}
server_url=${test_url%%\?*}
server_url=${server_url%/*}
query=
[ "${test_url#*\?}" != "$test_url" ] && query="?${test_url#*\?}"
psql "$server_url/postgres$query" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\"" >/dev/null
export BILLY_DATABASE_URL="$server_url/$db$query"
export BILLY_REDIS_URL=${BILLY_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
export BILLY_PIPELINE_QUEUE="smoke-$$-$RANDOM"
export BILLY_DATA_DIR=$work/data
export MASTER_KEY_FILE=$work/master.key
unset BILLY_MASTER_KEY BILLY_MASTER_KEY_FILE BILLY_AUTH BILLY_DEV

# A free port: the first of a few random ones that nothing answers on.
port=
for _ in $(seq 20); do
  p=$((20000 + RANDOM % 20000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || failed "no free port found"
export BILLY_ADDR=127.0.0.1:$port BILLY_BASE_URL=http://127.0.0.1:$port
say "database $db, Redis $BILLY_REDIS_URL (queue $BILLY_PIPELINE_QUEUE), $BILLY_BASE_URL"
timing "scratch database"

# The setup of make run.
# shellcheck source=scripts/setup.sh
. scripts/setup.sh 2> >(tee "$work/setup.log" >&2)
timing "setup (migrate, seed, code sets)"

# What make run prints, and the server it starts.
BIN=$bin scripts/hello.sh >"$work/hello.txt"
sed -n '/^### try it ###$/,/^### end ###$/p' "$work/hello.txt" | sed '1d;$d' >"$work/try.sh"
[ -s "$work/try.sh" ] || failed "scripts/hello.sh printed no commands between the markers"
"$bin" serve >"$work/serve.log" 2>&1 &
server=$!
ready=
for _ in $(seq 120); do
  if curl -sf "$BILLY_BASE_URL/readyz" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$server" 2>/dev/null || failed "billy serve exited"
  sleep 0.5
done
[ -n "$ready" ] || failed "/readyz did not answer 200 within 60 s"
say "billy serve is ready on $BILLY_BASE_URL"
timing "serve until ready"

# Whether an ICD-10-CM file was found: without one (no ../shared/data, nothing in data/codes) no Claim
# can be made, which is a failure under CI and a note elsewhere, like the tests that need the data.
icd=$("$bin" codes list 2>/dev/null | grep -c '^icd10cm' || true)
if [ "$icd" = 0 ]; then
  [ -z "${CI:-}" ] || failed "no ICD-10-CM code file was found (../shared/data or data/codes): under CI the Claim must be checked"
  say "no ICD-10-CM code file: the transcript example cannot make a Claim; checking that its run says so"
  icd=none
fi

# Exactly the printed commands, then the checks, in one shell (the checks use their variables):
# bash as a user pastes into in another terminal, but stopping at the first command that fails.
{ cat "$work/try.sh"; echo; echo "SMOKE_ICD=$icd"; cat; } >"$work/smoke.sh" <<'CHECKS'
# ---- checks of make smoke (not printed by make run)
echo # the last printed command leaves no newline
check() { echo "smoke: ok: $1" >&2; }
fail() { echo "smoke: FAILED: $1" >&2; exit 1; }
# Responses are read whole before they are searched: "curl | grep -q" can fail on SIGPIPE.
get() { curl -s -w '\n%{http_code}' "$@"; }
r=$(get "$FHIR/Patient?name=rivera" -H "$AUTH")
[ "${r##*$'\n'}" = 200 ] && [[ "$r" == *'"family":"Rivera"'* ]] \
  && check "the dev-token token reads the demo patient" || fail "the dev-token token does not read the demo patient: $r"
r=$(get "$FHIR/Patient" -H "Authorization: Bearer $USER_TOKEN")
[ "${r##*$'\n'}" = 200 ] && [[ "$r" == *'"family":"Rivera"'* ]] \
  && check "the dev-login token (authorization code with PKCE) reads the chosen patient" || fail "the dev-login token does not read the demo patient: $r"
r=$(get "$FHIR/Task?focus=$DOC" -H "$AUTH")
if [ "$SMOKE_ICD" = none ]; then
  # Without ICD-10-CM the printed example shows the run failing with what to import.
  [[ "$r" == *'"status":"failed"'* && "$r" == *'billy codes import icd10cm'* ]] \
    && check "without ICD-10-CM the coding run of $DOC failed saying what to import (no Claim check)" && exit 0 \
    || fail "the coding run of $DOC did not fail saying what to import: $r"
fi
[[ "$r" == *'"status":"completed"'* ]] && check "the coding run of $DOC completed" || fail "the coding run of $DOC did not complete: $r"
r=$(get "$FHIR/Claim?patient=$PATIENT" -H "$AUTH")
codes=$(grep -o '"code":"[A-Z0-9.]*"' <<<"$r" | sort -u | tr '\n' ' ')
[[ "$r" == *'"resourceType":"Claim"'* && "$r" == *'"status":"draft"'* ]] \
  && check "a draft Claim for $PATIENT: $codes" || fail "no draft Claim for $PATIENT: $r"
CHECKS
# A new terminal has none of make run's environment: only PATH and HOME.
if ! env -i PATH="$PATH" HOME="$HOME" bash -eu "$work/smoke.sh" >"$work/try.log" 2>&1; then
  failed "the printed commands or their checks failed"
fi
grep '^smoke: ok' "$work/try.log" >&2 || true
timing "the printed commands"

kill "$server"
wait "$server" 2>/dev/null || true
server=
psql "$server_url/postgres$query" -qX -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true
timing "stop"
say "passed in $((SECONDS - t0)) s: $(IFS=';'; echo "${timings[*]}")"
