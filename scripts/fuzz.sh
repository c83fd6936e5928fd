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
# One fuzzer per core at a time; each one's output is kept in its own log.
run_one() {  # fuzzer binary
  local bin=$1 name log
  name=$(basename "$bin")
  log=build/fuzz/$name.log
  mkdir -p "build/fuzz/corpus/$name"
  if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
      "build/fuzz/corpus/$name" >"$log" 2>&1; then
    echo "fuzz: $name for ${secs}s: $(tail -n 1 "$log")"
  else
    echo "fuzz: $name FAILED (crash input in $PWD; its log follows)"
    tail -n 40 "$log"
    return 1
  fi
}
export -f run_one
export secs
fuzzers=(build/fuzz/fuzzers/*_fuzzer)
printf '%s\n' "${fuzzers[@]}" | xargs -P "$(nproc)" -I{} bash -c 'run_one "$1"' _ {} ||
  { echo "fuzz: a fuzzer FAILED (see above)"; exit 1; }
echo "fuzz: ${#fuzzers[@]} fuzzers ran ${secs}s each"
