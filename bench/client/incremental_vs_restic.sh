#!/usr/bin/env bash
# bkv incremental backups (repository v2) vs restic, same data, same disk,
# same run (issue 13, step 4). The sample is the quickstart's chat history
# (SQLite database of 600k messages + 48 media files of 2.5 MB); the change
# is 1 %: 6000 new message rows and two new media files.
#   bench/client/incremental_vs_restic.sh [path/to/bkv]
# Runs the whole sequence BKV_BENCH_RUNS times (default 5), each from the
# same sample into fresh repositories, bkv and restic alternating which goes
# first at each step; prints each run's table, then per step the median and
# the range (min-max) over the runs, and the load average around each run
# (the machine may be shared: wall times move with the load, CPU seconds
# much less). For each tool and step: time, bytes added to the store, peak
# RSS, CPU seconds (user + system). BKV_BENCH_BASELINE=path/to/other/bkv
# adds a "changed-base" row (that binary's backup after the change, into its
# own store made by its own untimed initial backup of the same sample, since
# it may not read this bkv's format; run just before bkv's on odd runs and
# just after on even ones) and a "restore-base" row (it restoring its own
# latest snapshot, the same files): a before/after within the same runs. Needs
# sqlite3, restic, /usr/bin/time, bc (scripts/install-deps.sh bench demo).
set -euo pipefail
bkv=$(realpath "${1:-build/release/client/bkv}")
runs=${BKV_BENCH_RUNS:-5}
base=${BKV_BENCH_BASELINE:+$(realpath "$BKV_BENCH_BASELINE")}
for t in sqlite3 restic /usr/bin/time bc; do
  command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 2; }
done
dir=$(mktemp -d "${BKV_BENCH_DIR:-${TMPDIR:-/tmp}}/bkv-incr-bench-XXXXXX")
trap 'rm -rf "$dir"' EXIT
chat=$dir/chat

# add_rows FIRST LAST: message rows FIRST..LAST into messages.db.
add_rows() {
  sqlite3 "$chat/messages.db" >/dev/null "
    WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i+1 FROM n WHERE i < $2)
    INSERT INTO messages SELECT i, i % 97, 'user' || (i % 13), 1700000000 + i * 17,
      'message ' || i || ' ' || hex(randomblob(40)) || ' see you at ' || (i % 24) || ':00'
    FROM n;"
}
mkdir -p "$chat/media"
sqlite3 "$chat/messages.db" >/dev/null "
  PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
  CREATE TABLE messages(id INTEGER PRIMARY KEY, chat_id INT, sender TEXT,
                        sent_at INT, body TEXT);"
add_rows 1 600000
for i in $(seq -w 1 48); do
  head -c $((2500 * 1024)) /dev/urandom >"$chat/media/IMG-$i.jpg"
done
mv "$chat" "$dir/pristine"
"$bkv" key new --out "$dir/key" >/dev/null 2>&1
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/restic-pw"
export RESTIC_PASSWORD_FILE=$dir/restic-pw RESTIC_REPOSITORY=$dir/restic

# run NAME CMD...: seconds, peak RSS (KiB), CPU seconds into $dir/NAME.time
run() {
  local name=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$dir/$name.time" "$@" >"$dir/$name.out" 2>"$dir/$name.err" \
    || { cat "$dir/$name.err" >&2; exit 1; }
}
size() { du -sb "$1" | cut -f1; }
bkv_backup() { run "bkv-$1" "$bkv" backup "$chat" --to "file://$dir/bkvstore" --key-file "$dir/key" --json; }
restic_backup() { run "restic-$1" restic backup --quiet "$chat"; }
bkv_restore() { rm -rf "$dir/out"; run "bkv-$1" "$2" restore --from "file://${3:-$dir/bkvstore}" --key-file "$dir/key" --to "$dir/out"; cmp "$dir/out/messages.db" "$chat/messages.db"; }
restic_restore() { rm -rf "$dir/out"; run "restic-$1" restic restore latest --target "$dir/out"; }
# base_changed: the baseline's backup after the change, into its own copy.
base_changed() {
  BKV_STATE_DIR=$dir/base-state run bkv-changed-base "$base" backup "$chat" \
    --to "file://$dir/base-store" --key-file "$dir/key" --json
}
# both RUN A B: A then B on odd runs, B then A on even ones.
both() { if (( $1 % 2 )); then $2; $3; else $3; $2; fi; }
both_changed() { both "$1" base_changed "bkv_backup changed"; }
# step RUN LABEL: both tools back up; growth of each store into $dir/growth.
step() {
  local b0 r0 bkv_step="bkv_backup $2"
  b0=$(size "$dir/bkvstore" 2>/dev/null || echo 0); r0=$(size "$dir/restic")
  if [[ -n $base && $2 == changed ]]; then
    bkv_step="both_changed $1"
  fi
  both "$1" "$bkv_step" "restic_backup $2"
  echo "$2 $(( $(size "$dir/bkvstore") - b0 )) $(( $(size "$dir/restic") - r0 ))" >>"$dir/growth"
}
# record RUN LABEL BKV_ADDED RESTIC_ADDED [BKV_NAME]: one row of $dir/rows:
# run step bkv_added restic_added bkv_s restic_s wall_ratio bkv_rss restic_rss
# bkv_cpu restic_cpu cpu_ratio
record() {
  local bt bm bu bs rt rm ru rs bc rc
  read -r bt bm bu bs <"$dir/bkv-${5:-$2}.time"; read -r rt rm ru rs <"$dir/restic-$2.time"
  bc=$(echo "$bu + $bs" | bc -l); rc=$(echo "$ru + $rs" | bc -l)
  printf '%s %s %s %s %s %s %.2f %s %s %.2f %.2f %.2f\n' "$1" "${5:-$2}" "$3" "$4" "$bt" "$rt" \
    "$(echo "$bt / ($rt + 0.001)" | bc -l)" "$bm" "$rm" "$bc" "$rc" \
    "$(echo "$bc / ($rc + 0.001)" | bc -l)" >>"$dir/rows"
}
# one_run RUN: the whole sequence into fresh repositories.
one_run() {
  local label b r
  rm -rf "$chat" "$dir/bkvstore" "$dir/restic" "$dir/growth" "$dir/base-"*
  cp -a "$dir/pristine" "$chat"
  export BKV_STATE_DIR=$dir/state-$1
  restic init >/dev/null
  step "$1" initial
  if [[ -n $base ]]; then  # untimed: the baseline's own repository
    BKV_STATE_DIR=$dir/base-state run bkv-initial-base "$base" backup "$chat" \
      --to "file://$dir/base-store" --key-file "$dir/key" --json
  fi
  add_rows 600001 606000
  head -c $((2500 * 1024)) /dev/urandom >"$chat/media/IMG-49.jpg"
  head -c $((2500 * 1024)) /dev/urandom >"$chat/media/IMG-50.jpg"
  step "$1" changed
  step "$1" unchanged
  both "$1" "bkv_restore restore $bkv" "restic_restore restore"
  [[ -z $base ]] || bkv_restore restore-base "$base" "$dir/base-store"
  while read -r label b r; do record "$1" "$label" "$b" "$r"; done <"$dir/growth"
  record "$1" restore - -
  [[ -z $base ]] || record "$1" changed - - changed-base
  [[ -z $base ]] || record "$1" restore - - restore-base
}
echo "sample: $(size "$dir/pristine") bytes; $runs runs; bkv $("$bkv" --version 2>/dev/null || echo dev)," \
  "$(restic version | cut -d' ' -f1-2)${base:+; baseline $base}; $(nproc) cores"
for r in $(seq 1 "$runs"); do
  l0=$(cut -d' ' -f1 /proc/loadavg)
  one_run "$r"
  echo "run $r: load average $l0 -> $(cut -d' ' -f1 /proc/loadavg)"
done
printf '%-3s %-12s %11s %11s %6s %6s %5s %9s %9s %6s %6s %5s\n' run step bkv_added restic_added \
  bkv_s res_s ratio bkv_rss_k res_rss_k bkv_cpu res_cpu ratio
sort -k2,2 -k1,1n "$dir/rows" | awk '{printf "%-3s %-12s %11s %11s %6s %6s %5s %9s %9s %6s %6s %5s\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12}'
echo "median [min-max] over $runs runs:"
printf '%-12s %s\n' step "bkv_added | restic_added | bkv_s | restic_s | wall ratio | bkv_rss_k | restic_rss_k | cpu ratio"
for s in initial changed ${base:+changed-base} unchanged restore ${base:+restore-base}; do
  line=$s
  for col in 3 4 5 6 7 8 9 12; do
    # median and range of one column over the runs of step $s
    line+=" | $(awk -v s="$s" -v c="$col" '$2 == s {print $c}' "$dir/rows" | sort -g |
      awk '{v[NR] = $1} END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
           printf "%s [%s-%s]", m, v[1], v[NR]}')"
  done
  echo "$line"
done
