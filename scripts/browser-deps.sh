#!/usr/bin/env bash
# Installs what the real-browser SMART test (smart/browser_test.go) needs, when it is missing
# (idempotent):
#   chromium  Debian's Chromium, run headless; the test drives it with playwright-core and never
#             downloads a browser of its own
#   node, npm install fhirclient and playwright-core (pinned in smart/testdata/browser/package.json)
#             into a cache outside the repository, and run the driver; playwright-core needs Node 20
#             or later, which the machine image ships (Debian 12's own nodejs is 18)
# `make test` runs this first. Without apt-get it only says what is missing: the test then skips
# when a tool is not on PATH, except under CI=true, where it fails.
set -euo pipefail

say() { echo "browser-deps: $*" >&2; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

have() { command -v "$1" >/dev/null 2>&1; }

apt_updated=
apt_install() {
  if ! have apt-get; then
    say "missing $* and no apt-get here: install them with your package manager"
    exit 0
  fi
  say "installing $*"
  if [ -z "$apt_updated" ]; then sudo_ apt-get update -qq; apt_updated=1; fi
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

have chromium || apt_install chromium
# One at a time: NodeSource's nodejs bundles npm and conflicts with Debian's npm package.
have node || apt_install nodejs
have npm || apt_install npm

for tool in chromium node npm; do
  have "$tool" || { say "$tool still missing after apt-get install"; exit 1; }
done
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  say "node $(node --version) is too old: playwright-core needs Node 20 or later"
  exit 1
fi
