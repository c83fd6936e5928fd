#!/usr/bin/env bash
# Peak RSS of `bkv backup` and `bkv restore` (repository v2) at 256 MiB and
# at 4 GiB of unique data, same run, same disk (issue 13: memory stays
# bounded; the target is a 4 GiB / 256 MiB ratio <= 1.1). Also prints the
# stored index bytes per chunk, from which docs/backup-format.md computes
# the index at 1 TB.
#   bench/client/repo_memory.sh [path/to/bkv]
# Data: 64 MiB files of AES-CTR keystream (unique and incompressible, so
# every chunk is new and indexed). Needs ~9 GiB in $BKV_BENCH_DIR (or
# $TMPDIR, /tmp) and /usr/bin/time (scripts/install-deps.sh bench).
set -euo pipefail
bkv=$(realpath "${1:-build/release/client/bkv}")
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time" >&2; exit 2; }
dir=$(mktemp -d "${BKV_BENCH_DIR:-${TMPDIR:-/tmp}}/bkv-mem-bench-XXXXXX")
trap 'rm -rf "$dir"' EXIT
export BKV_STATE_DIR=$dir/state
"$bkv" key new --out "$dir/key" >/dev/null

# make_data DIR MIB: MIB/64 files of 64 MiB, each from its own CTR key.
make_data() {
  mkdir -p "$1"
  for i in $(seq 1 $(($2 / 64))); do
    head -c $((64 << 20)) /dev/zero |
      openssl enc -aes-128-ctr -nosalt -K "$(printf '%032x' "$i$2")" \
        -iv 00000000000000000000000000000000 >"$1/part-$i"
  done
}

# measure LABEL MIB: backup then restore; "seconds peak_rss_kib" per step.
measure() {
  local label=$1 mib=$2
  make_data "$dir/src-$label" "$mib"
  /usr/bin/time -f "%e %M" -o "$dir/$label-backup.time" "$bkv" backup \
    "$dir/src-$label" --to "file://$dir/store-$label" --key-file "$dir/key" \
    --json >"$dir/$label-backup.json"
  /usr/bin/time -f "%e %M" -o "$dir/$label-restore.time" "$bkv" restore \
    --from "file://$dir/store-$label" --to "$dir/out-$label" \
    --key-file "$dir/key" --json >/dev/null
  cmp "$dir/src-$label/part-1" "$dir/out-$label/part-1"
  rm -rf "$dir/src-$label" "$dir/out-$label"
}

measure small 256
measure large 4096
chunks=$(grep -o '"chunks":[0-9]*' "$dir/large-backup.json" | cut -d: -f2)
index=$(find "$dir/store-large" -name 'index-*' -printf '%s\n' | awk '{s+=$1} END {print s}')
printf '%-8s %10s %12s %10s %12s\n' data backup_s backup_rss_k restore_s restore_rss_k
for label in small large; do
  read -r bs bm <"$dir/$label-backup.time"
  read -r rs rm <"$dir/$label-restore.time"
  printf '%-8s %10s %12s %10s %12s\n' "$label" "$bs" "$bm" "$rs" "$rm"
done
read -r _ b1 <"$dir/small-backup.time"; read -r _ b2 <"$dir/large-backup.time"
read -r _ r1 <"$dir/small-restore.time"; read -r _ r2 <"$dir/large-restore.time"
printf 'peak RSS 4 GiB / 256 MiB: backup %.2f, restore %.2f (target <= 1.10)\n' \
  "$(echo "$b2 / $b1" | bc -l)" "$(echo "$r2 / $r1" | bc -l)"
echo "4 GiB: $chunks chunks, index objects $index bytes:" \
  "$(echo "$index / $chunks" | bc) bytes per chunk stored"
