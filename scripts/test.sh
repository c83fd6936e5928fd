#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test. Exits non-zero on any
# failure; the last thing printed is ctest's summary.
#   BKV_SKIP_ASAN=1 skips the sanitizer build (local iteration only).
#   BKV_FUZZ_SECONDS (default 10) bounds each fuzzer's run.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

phase "dependencies" scripts/install-deps.sh test
phase "build release" scripts/build.sh release
[[ ${BKV_SKIP_ASAN:-0} == 1 ]] || phase "build asan" scripts/build.sh asan

phase "fuzz" scripts/fuzz.sh
# Client-only build, install, ABI check, examples against the installed SDK.
phase "sdk (scripts/sdk-check.sh)" scripts/sdk-check.sh

if [[ ${BKV_SKIP_ASAN:-0} != 1 ]]; then
  asan_tests() {
    (cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      LSAN_OPTIONS=suppressions=$PWD/../../tests/lsan.supp \
      UBSAN_OPTIONS=print_stacktrace=1 ctest -j "$jobs" --output-on-failure)
  }
  phase "tests: ASan + UBSan build" asan_tests
fi
echo "== tests: release build"
cd build/release && ctest -j "$jobs" --output-on-failure
