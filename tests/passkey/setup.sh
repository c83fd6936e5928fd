#!/usr/bin/env bash
# Installs puppeteer-core (pinned in package-lock.json) into
# tests/passkey/node_modules on first use (needs the npm registry once), and
# checks that Debian's chromium is there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v "${BKV_CHROMIUM:-chromium}" >/dev/null || {
  echo "passkey tests need chromium (apt install chromium; scripts/install-deps.sh)" >&2
  exit 1
}
if [[ ! -d $here/node_modules/puppeteer-core ]]; then
  npm ci --prefix "$here" --no-audit --no-fund --loglevel=error >&2
fi
