#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 and runs each for a bounded time.
#   BKV_FUZZ_SECONDS (default 10) per target.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${BKV_FUZZ_SECONDS:-10}
if ! command -v clang++-14 >/dev/null; then
  echo "fuzz: clang++-14 not installed; skipping fuzzers (apt-get install clang-14 libclang-rt-14-dev)"
  exit 0
fi
scripts/build.sh fuzz
shopt -s nullglob
# Seed corpora written by generators (e.g. repo_fuzz_seeds: the v2 decoders).
for gen in build/fuzz/fuzzers/*_fuzz_seeds; do
  "$gen" build/fuzz/corpus || { echo "fuzz: $gen FAILED"; exit 1; }
done
for bin in build/fuzz/fuzzers/*_fuzzer; do
  name=$(basename "$bin")
  corpus=build/fuzz/corpus/$name
  mkdir -p "$corpus"
  echo "fuzz: $name for ${secs}s"
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
    "$corpus" 2>&1 | tail -n 2
  [[ ${PIPESTATUS[0]} -eq 0 ]] || { echo "fuzz: $name FAILED (crash input in $PWD)"; exit 1; }
done
