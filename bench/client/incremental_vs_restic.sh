#!/usr/bin/env bash
# bkv incremental backups (repository v2) vs restic, same data, same disk,
# same run (issue 13, step 4). The sample is the quickstart's chat history
# (SQLite database of 600k messages + 48 media files of 2.5 MB); the change
# is 1 %: 6000 new message rows and two new media files.
#   bench/client/incremental_vs_restic.sh [path/to/bkv]
# Prints, for each tool: initial backup time and stored bytes; after the
# change, bytes added to the store and time; with no change, time and bytes
# added; restore time; peak RSS of each step; and the CPU seconds (user +
# system) of each step, whose ratio moves less than the wall time's on a
# machine shared with other work. Needs sqlite3, restic,
# /usr/bin/time (scripts/install-deps.sh bench demo).
set -euo pipefail
bkv=${1:-build/release/client/bkv}
bkv=$(realpath "$bkv")
for t in sqlite3 restic /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 2; }
done
dir=$(mktemp -d "${BKV_BENCH_DIR:-${TMPDIR:-/tmp}}/bkv-incr-bench-XXXXXX")
trap 'rm -rf "$dir"' EXIT
chat=$dir/chat
mkdir -p "$chat/media"
sqlite3 "$chat/messages.db" >/dev/null "
  PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
  CREATE TABLE messages(id INTEGER PRIMARY KEY, chat_id INT, sender TEXT,
                        sent_at INT, body TEXT);
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 600000)
  INSERT INTO messages SELECT i, i % 97, 'user' || (i % 13), 1700000000 + i * 17,
    'message ' || i || ' ' || hex(randomblob(40)) || ' see you at ' || (i % 24) || ':00'
  FROM n;"
for i in $(seq -w 1 48); do
  head -c $((2500 * 1024)) /dev/urandom >"$chat/media/IMG-$i.jpg"
done
"$bkv" key new --out "$dir/key" >/dev/null 2>&1
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/restic-pw"
export RESTIC_PASSWORD_FILE=$dir/restic-pw RESTIC_REPOSITORY=$dir/restic
export BKV_STATE_DIR=$dir/state
restic init >/dev/null

# run NAME CMD...: seconds, peak RSS (KiB), CPU seconds into $dir/NAME.time
run() {
  local name=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$dir/$name.time" "$@" >"$dir/$name.out" 2>"$dir/$name.err" \
    || { cat "$dir/$name.err" >&2; exit 1; }
}
size() { du -sb "$1" | cut -f1; }
step() {  # step LABEL: both tools back up, record time, RSS, store growth
  local label=$1 b0 r0
  b0=$(size "$dir/bkvstore" 2>/dev/null || echo 0); r0=$(size "$dir/restic")
  run "bkv-$label" "$bkv" backup "$chat" --to "file://$dir/bkvstore" \
    --key-file "$dir/key" --json
  run "restic-$label" restic backup --quiet "$chat"
  echo "$label $(( $(size "$dir/bkvstore") - b0 )) $(( $(size "$dir/restic") - r0 ))" >>"$dir/growth"
}
step initial
sqlite3 "$chat/messages.db" >/dev/null "
  WITH RECURSIVE n(i) AS (SELECT 600001 UNION ALL SELECT i+1 FROM n WHERE i < 606000)
  INSERT INTO messages SELECT i, i % 97, 'user' || (i % 13), 1700000000 + i * 17,
    'message ' || i || ' ' || hex(randomblob(40)) || ' see you at ' || (i % 24) || ':00'
  FROM n;"
head -c $((2500 * 1024)) /dev/urandom >"$chat/media/IMG-49.jpg"
head -c $((2500 * 1024)) /dev/urandom >"$chat/media/IMG-50.jpg"
step changed
step unchanged
run bkv-restore "$bkv" restore --from "file://$dir/bkvstore" --key-file "$dir/key" \
  --to "$dir/bkv-out"
run restic-restore restic restore latest --target "$dir/restic-out"
cmp "$dir/bkv-out/messages.db" "$chat/messages.db"
echo "sample: $(size "$chat") bytes; bkv $("$bkv" --version 2>/dev/null || echo dev), $(restic version | cut -d' ' -f1-2)"
printf '%-10s %14s %14s %8s %8s %7s %10s %10s %7s %7s %7s\n' step bkv_added restic_added \
  bkv_s restic_s ratio bkv_rss_k restic_rss_k bkv_cpu res_cpu ratio
# row LABEL BKV_ADDED RESTIC_ADDED: one line of the table from the two .time files.
row() {
  local bt bm bu bs rt rm ru rs
  read -r bt bm bu bs <"$dir/bkv-$1.time"; read -r rt rm ru rs <"$dir/restic-$1.time"
  local bc rc
  bc=$(echo "$bu + $bs" | bc -l); rc=$(echo "$ru + $rs" | bc -l)
  printf '%-10s %14s %14s %8s %8s %7.2f %10s %10s %7.2f %7.2f %7.2f\n' "$1" "$2" "$3" \
    "$bt" "$rt" "$(echo "$bt / ($rt + 0.001)" | bc -l)" "$bm" "$rm" "$bc" "$rc" \
    "$(echo "$bc / ($rc + 0.001)" | bc -l)"
}
while read -r label b r; do row "$label" "$b" "$r"; done <"$dir/growth"
row restore - -
echo "bkv after the change: $(cat "$dir/bkv-changed.out")"
