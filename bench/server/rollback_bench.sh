#!/usr/bin/env bash
# Recoveries/s and p99 with records anchored in the HSM (docs/rollback.md)
# against the same vault without it, in one run: the "without" vault is built
# from the commit before the freshness layer (BASE, default: the merge base
# with main) in a temporary worktree. RocksDB, 16 clients by default.
#   bench/server/rollback_bench.sh [--clients N] [--seconds S]
# Prints both loadgen reports, HSM head writes per recovery and the ratio
# (target: anchored >= 0.7x without).
set -euo pipefail
cd "$(dirname "$0")/../.."
clients=16 seconds=10
while [[ $# -gt 1 ]]; do
  case $1 in
    --clients) clients=$2 ;;
    --seconds) seconds=$2 ;;
  esac
  shift 2
done
base=${BASE:-$(git merge-base HEAD main)}
loadgen=build/release/bench/server/bkv_loadgen
[[ -x $loadgen ]] || { echo "build bkv_loadgen first (scripts/build.sh release)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/src" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add --detach "$tmp/src" "$base" >/dev/null 2>&1
( cd "$tmp/src" && BKV_TARGETS=bkv-vault BKV_JOBS=${BKV_JOBS:-2} scripts/build.sh release >/dev/null )
without=$tmp/src/build/release/server/bkv-vault
rps() { sed -n 's/^recoveries\/s *//p' "$1"; }
# Alternate, so drift on a shared machine hits both alike.
for round in 1 2; do
  echo "== without anchoring ($base), round $round"
  "$loadgen" --clients "$clients" --seconds "$seconds" --vault-bin "$without" | tee "$tmp/without$round"
  echo "== with anchoring (this tree), round $round"
  "$loadgen" --clients "$clients" --seconds "$seconds" | tee "$tmp/with$round"
done
awk -v a="$(rps "$tmp/with1")" -v b="$(rps "$tmp/with2")" \
    -v c="$(rps "$tmp/without1")" -v d="$(rps "$tmp/without2")" \
    'BEGIN { printf "throughput ratio with/without: %.2f (target >= 0.70)\n", (a + b) / (c + d) }'
