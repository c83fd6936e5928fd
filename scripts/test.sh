#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test. Exits non-zero on any
# failure; the last thing printed is ctest's summary.
#   BKV_SKIP_ASAN=1 skips the sanitizer build (local iteration only).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/install-deps.sh test
scripts/build.sh release
[[ ${BKV_SKIP_ASAN:-0} == 1 ]] || scripts/build.sh asan

scripts/fuzz.sh

if [[ ${BKV_SKIP_ASAN:-0} != 1 ]]; then
  echo "== tests: ASan + UBSan build"
  (cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1 ctest -j "$jobs" --output-on-failure)
fi
echo "== tests: release build"
cd build/release && ctest -j "$jobs" --output-on-failure
