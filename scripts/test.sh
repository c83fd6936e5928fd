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

phase "dependencies" scripts/install-deps.sh test fuzz
phase "build release" scripts/build.sh release
[[ ${BKV_SKIP_ASAN:-0} == 1 ]] || phase "build asan" scripts/build.sh asan

phase "fuzz" scripts/fuzz.sh
# Client-only build, install, ABI check, examples against the installed SDK.
phase "sdk (scripts/sdk-check.sh)" scripts/sdk-check.sh

if [[ ${BKV_SKIP_ASAN:-0} != 1 ]]; then
  # The multi-node process tests (3-5 vault processes each) run in full in
  # the release build; under ASan only a few that start every kind of node
  # (owner, endorser, elected owner, recovery round) run: the rest repeat
  # the same code under other timings, at 4x the release time. Likewise the
  # threshold test's 100 rounds with one realm down.
  multi_node='rollback\.quorum\.process\.'
  asan_multi_node='OneOwnerIsElectedAndClientsFailOver|OneEndorserDownCountedCallsContinueAndItCatchesUp|LostEndorserStateRefusesToStartUntilReset'
  # The repository tests push megabytes through the chunker once per store;
  # under ASan (28% of its test time) they run on the file store, and each
  # store's own code runs in the store.* tests and its store-only cases.
  store_variants='^(fault\.)?repo\.(process\.)?Stores/.*/(s3|webdav|callback)( |$)'
  store_only='InterruptedS3UploadSaysWhatItCouldNotAbortFault/s3|SigkilledWebDavUploadLeavesNothingFault/webdav'
  asan_skip="$multi_node|$store_variants|threshold\.ThresholdAttackTest\.OneRealmDownHundredRecoveries"
  asan_ctest() {
    (cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      LSAN_OPTIONS=suppressions=$PWD/../../tests/lsan.supp \
      UBSAN_OPTIONS=print_stacktrace=1 ctest -j "$jobs" --output-on-failure "$@")
  }
  asan_tests() {
    asan_ctest -E "$asan_skip"
    asan_ctest -R "$multi_node.*($asan_multi_node)|$store_only"
  }
  phase "tests: ASan + UBSan build" asan_tests
fi
echo "== tests: release build"
cd build/release && ctest -j "$jobs" --output-on-failure
