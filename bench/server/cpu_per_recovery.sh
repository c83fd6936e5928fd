#!/usr/bin/env bash
# The vault's CPU per recovery against the protocol's own cost, in one run:
#   bench/server/cpu_per_recovery.sh [clients] [seconds per case]
# Three cases of bkv_loadgen at the same client count (default 16 clients,
# 10 s each): one node on RocksDB, one node on a 3-member loopback etcd, three
# nodes on that etcd. Each case measures the in-process GenerateKE2 +
# ServerFinish cost itself and divides the vaults' CPU per recovery
# (/proc/PID/stat utime+stime; sys_us: the kernel's part) by it; the issue's target is <= 2.5 on both
# stores. Also prints recoveries/s, p50/p99, etcd calls per recovery, the
# vaults' voluntary / involuntary context switches per recovery and the
# 3-node / 1-node throughput ratio. Needs build/release (bkv_loadgen,
# bkv-vault) and etcd-server. BKV_VAULT_BIN=path runs another bkv-vault build
# (an A/B against the one before a change, on the same loadgen).
set -euo pipefail
cd "$(dirname "$0")/../.."
loadgen=${BKV_LOADGEN:-build/release/bench/server/bkv_loadgen}
clients=${1:-16}
seconds=${2:-10}
[[ -x $loadgen ]] || { echo "build $loadgen first (scripts/build.sh release)" >&2; exit 2; }

# Runs one case; prints its RESULT line's fields as key=value words.
run_case() {
  local out
  out=$("$loadgen" --clients "$clients" --seconds "$seconds" \
    ${BKV_VAULT_BIN:+--vault-bin "$BKV_VAULT_BIN"} "$@") || {
    echo "$out" >&2; echo "cpu_per_recovery.sh: case '$*' failed" >&2; exit 1; }
  grep '^RESULT ' <<<"$out" | cut -d' ' -f2-
}
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

printf '%-16s %8s %8s %8s %8s %8s %9s %7s %9s %7s %7s\n' case rec/s p50_ms p99_ms cpu_us sys_us proto_us ratio etcd/rec vcs ivcs
declare -A rps
for spec in "rocksdb 1" "etcd 1" "etcd 3"; do
  read -r store nodes <<<"$spec"
  r=$(run_case --store "$store" --nodes "$nodes")
  rps[$spec]=$(field "$r" rps)
  printf '%-16s %8s %8s %8s %8s %8s %9s %7s %9s %7s %7s\n' "$store x$nodes" \
    "$(field "$r" rps)" "$(field "$r" p50_ms)" "$(field "$r" p99_ms)" \
    "$(field "$r" cpu_us)" "$(field "$r" sys_us)" "$(field "$r" protocol_us)" "$(field "$r" ratio)" \
    "$(field "$r" etcd_calls)" "$(field "$r" vcs)" "$(field "$r" ivcs)"
done
awk -v a="${rps[etcd 3]}" -v b="${rps[etcd 1]}" \
  'BEGIN { printf "etcd: 3 nodes / 1 node recoveries/s = %.2f (one machine, %d cores)\n", a / b, '"$(nproc)"' }'
