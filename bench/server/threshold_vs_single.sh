#!/usr/bin/env bash
# Recovery through 2-of-3 threshold realms beside a 1-of-1 realm (the n = 1
# case of the same code path) and the v2 single vault in the same run, same
# KSF (issue 18, "Done when": p50 within 1.5x, per-realm throughput at least
# 0.8x). Builds threshold_bench and bkv-vault in build/release and runs it;
# arguments go to threshold_bench (--recoveries N --seconds S --clients C
# --rotate 0|1 --skip 1of1|v2). docs/threshold.md, "The bench", says what each
# figure means.
set -euo pipefail
cd "$(dirname "$0")/../.."
BKV_TARGETS="bkv-vault threshold_bench" scripts/build.sh release >/dev/null
build/release/bench/server/threshold_bench "$@" 2>/dev/null
