#!/usr/bin/env bash
# The vault's user-space instructions per recovery, split by component, and
# the protocol's own (GenerateKE2 + ServerFinish) for the ratio:
#   bench/server/instructions_per_recovery.sh [clients] [recoveries per client] [rocksdb|etcd]
# Unlike CPU seconds, instruction counts do not move with the machine's load,
# so a change can be measured on a shared machine. The vault runs under
# `valgrind --tool=callgrind` (bkv_loadgen --vault-bin --callgrind zeroes its
# counters after registration and dumps them after a fixed number of
# recoveries). Kernel work is not counted here: see the syscall counts
# (`strace -c -f`) in docs/operations.md, "Capacity". Needs build/release
# (bkv_loadgen, bkv-vault) and valgrind. BKV_VAULT_PRELOAD=lib.so runs the
# vault with that library preloaded (to try an allocator without relinking).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
loadgen=${BKV_LOADGEN:-build/release/bench/server/bkv_loadgen}
vault=${BKV_VAULT:-build/release/server/bkv-vault}
clients=${1:-4}
per_client=${2:-25}
store=${3:-rocksdb}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
[[ -x $loadgen && -x $vault ]] || { echo "build $loadgen and $vault first" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/vault.sh" <<EOF
#!/bin/sh
exec env ${BKV_VAULT_PRELOAD:+LD_PRELOAD=$BKV_VAULT_PRELOAD} valgrind --tool=callgrind --callgrind-out-file=$work/cg.%p --dump-line=no \\
  --log-file=$work/valgrind.%p.log "$root/$vault" "\$@"
EOF
chmod +x "$work/vault.sh"
out=$("$loadgen" --clients "$clients" --recoveries "$per_client" --store "$store" \
  --vault-bin "$work/vault.sh" --callgrind) || { echo "$out" >&2; exit 1; }
n=$(grep '^RESULT ' <<<"$out" | tr ' ' '\n' | sed -n 's/^recoveries=//p')
dump=$(ls "$work"/cg.*.1 | head -1)

# Self instructions per ELF object (callgrind's ob= groups), per recovery.
by_object() {
  awk -v n="$1" '
    /^c?ob=/ { id = $1; sub(/^c?ob=/, "", id); name = $0; sub(/^c?ob=\([0-9]+\) ?/, "", name)
               if (name != "") names[id] = name; if ($0 ~ /^ob=/) ob = id; next }
    /^calls=/ { skip = 1; next }
    /^[0-9+*-]/ { if (skip) { skip = 0; next } self[ob] += $2; total += $2; next }
    END { for (o in self) { nm = names[o]; sub(/.*\//, "", nm)
            printf "%12.0f %5.1f%%  %s\n", self[o] / n, 100 * self[o] / total, nm }
          printf "%12.0f  total\n", total / n }' "$2" | sort -rn
}
echo "store=$store clients=$clients recoveries=$n (instructions per recovery, self, by object)"
by_object "$n" "$dump"

valgrind --tool=callgrind --callgrind-out-file="$work/proto.cg" \
  --toggle-collect='bkv::opaque::OpaqueServer::GenerateKE2(*' \
  --toggle-collect='bkv::opaque::OpaqueServer::ServerFinish(*' \
  "$loadgen" --protocol-only >/dev/null 2>"$work/proto.log"
proto=$(sed -n 's/^summary: //p' "$work/proto.cg")
total=$(by_object 1 "$dump" | awk '$2 == "total" { print $1 }')
awk -v t="$total" -v n="$n" -v p="$proto" 'BEGIN {
  printf "protocol (GenerateKE2 + ServerFinish, in process): %.0f instructions\n", p / 400
  printf "RESULT instr_per_recovery=%.0f protocol_instr=%.0f ratio=%.2f\n", t / n, p / 400, (t / n) / (p / 400) }'
if [[ -n ${BKV_CALLGRIND_KEEP:-} ]]; then cp "$dump" "$BKV_CALLGRIND_KEEP"; fi
