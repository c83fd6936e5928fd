#!/usr/bin/env bash
# Where the vault's kernel time and thread hand-offs go, per recovery:
#   bench/server/syscalls_per_recovery.sh [clients] [rocksdb|etcd] [seconds traced]
# Runs bkv_loadgen against one node and, once the load runs, samples the
# vault for a window: CPU (utime / stime) and voluntary / involuntary context
# switches per thread name (/proc/PID/task/*), then `strace -c -f` over a
# second window of the same length. Both are divided by the RecoverFinish
# calls the vault counted in that window (its /metrics). strace slows the
# vault several-fold: its counts per recovery hold, its times do not. With
# BKV_SWITCH_STACKS=1 (needs perf and root) a third window records every
# context switch with its stack (`perf record -e sched:sched_switch`) and
# names, per recovery, where the threads slept (S), waited on the disk (D)
# or were preempted (R). Needs build/release (bkv_loadgen, bkv-vault) and
# strace.
set -euo pipefail
export LC_ALL=C  # sort and join agree on the order
cd "$(dirname "$0")/../.."
loadgen=${BKV_LOADGEN:-build/release/bench/server/bkv_loadgen}
clients=${1:-16}
store=${2:-rocksdb}
window=${3:-5}
command -v strace >/dev/null || { echo "needs strace (apt-get install strace)" >&2; exit 2; }
[[ -x $loadgen ]] || { echo "build $loadgen first (scripts/build.sh release)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

windows=2
[[ -n ${BKV_SWITCH_STACKS:-} ]] && windows=3
"$loadgen" --clients "$clients" --store "$store" --seconds $((windows * window + 6)) \
  >"$work/load.out" 2>&1 &
load=$!
for _ in $(seq 600); do  # registration and start-up: up to a minute
  grep -q '^LOADING ' "$work/load.out" && break
  kill -0 "$load" 2>/dev/null || { cat "$work/load.out" >&2; exit 1; }
  sleep 0.1
done
read -r pid port < <(sed -n 's/^LOADING pid=\([0-9]*\) metrics_port=\([0-9]*\)$/\1 \2/p' \
  "$work/load.out" | head -1)
[[ -n ${pid:-} ]] || { echo "bkv_loadgen did not start" >&2; kill "$load"; exit 1; }
finished() {
  curl -s "http://127.0.0.1:$port/metrics" |
    awk '/^bkv_requests_total\{method="RecoverFinish"/ { n += $2 } END { print n + 0 }'
}
# thread name, utime, stime (ticks), voluntary, involuntary switches.
threads() {
  for t in /proc/"$pid"/task/*; do
    local stat name
    stat=$(cat "$t/stat" 2>/dev/null) || continue
    name=$(cat "$t/comm")
    awk -v n="${name// /_}" -v st="${stat##*) }" '
      BEGIN { split(st, f, " "); u = f[12]; s = f[13] }
      /^voluntary_ctxt_switches/ { v = $2 } /^nonvoluntary_ctxt_switches/ { i = $2 }
      END { print n, u, s, v, i }' "$t/status"
  done | awk '{ u[$1] += $2; s[$1] += $3; v[$1] += $4; i[$1] += $5; c[$1]++ }
    END { for (n in u) print n, c[n], u[n], s[n], v[n], i[n] }' | sort
}
# Context switches by the first three of our frames (or gRPC's, RocksDB's,
# the token's) on the stack, per recovery.
switch_sites() {
  echo "context switches per recovery by where ($1 recoveries in ${window} s)"
  perf script -i "$work/switch.data" 2>/dev/null | awk -v n="$1" -v RS= '
    { state = "?"; if (match($0, /prev_state=[A-Z+]+/)) state = substr($0, RSTART + 11, RLENGTH - 11)
      key = ""; seen = 0; m = split($0, lines, "\n")
      for (i = 2; i <= m && seen < 3; i++) {
        if (!match(lines[i], /(bkv::[A-Za-z0-9_:]+|PollForWork|BlockingUnaryCallImpl|rocksdb::[A-Za-z0-9_:]+|C_[A-Z][A-Za-z]+|Mutex::Await|CondVar::Wait)/)) continue
        f = substr(lines[i], RSTART, RLENGTH)
        if (index(key, f)) continue
        key = key (seen++ ? " < " : "") f }
      if (key == "") key = "(kernel or libraries only)"
      count[state " " key]++ }
    END { for (k in count) { printf "%6.2f  %s\n", count[k] / n, k; all += count[k] }
          printf "%6.2f  (all)\n", all / n }' | sort -rn | head -20
}
sleep 1
r0=$(finished); threads >"$work/t0"; sleep "$window"; threads >"$work/t1"; r1=$(finished)
timeout -s INT "$window" strace -c -f -p "$pid" -o "$work/strace" 2>/dev/null || true
r2=$(finished)
if [[ -n ${BKV_SWITCH_STACKS:-} ]]; then
  perf record -q -e sched:sched_switch --call-graph dwarf,16384 -p "$pid" \
    -o "$work/switch.data" -- sleep "$window" >/dev/null 2>&1 || true
  r3=$(finished)
fi
wait "$load" || true
tick=$(getconf CLK_TCK)
echo "store=$store clients=$clients: per recovery, by thread name ($((r1 - r0)) recoveries in ${window} s)"
printf '%-18s %7s %8s %8s %8s %8s\n' thread count user_us sys_us vol_cs invol_cs
join "$work/t0" "$work/t1" | awk -v n=$((r1 - r0)) -v tk="$tick" '
  { printf "%-18s %7d %8.0f %8.0f %8.1f %8.1f\n", $1, $7, 1e6 * ($8 - $3) / tk / n,
      1e6 * ($9 - $4) / tk / n, ($10 - $5) / n, ($11 - $6) / n }' | sort -k3 -rn
echo "syscalls per recovery under strace ($((r2 - r1)) recoveries in ${window} s)"
awk -v n=$((r2 - r1)) '$1 ~ /^[0-9.]+$/ && NF >= 5 { printf "%-18s %8.1f\n", $NF, $4 / n }' "$work/strace" | sort -k2 -rn | head -24
[[ -n ${BKV_SWITCH_STACKS:-} ]] && switch_sites $((r3 - r2))
grep '^RESULT ' "$work/load.out" || true
