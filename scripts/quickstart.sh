#!/usr/bin/env bash
# The main job, end to end, on embedded defaults:
#   install what is missing, build, start bkv-vault (SoftHSM token, RocksDB
#   and a development token issuer under ./var/bkv, created on first start),
#   make a sample chat history (~200 MB: a SQLite database of messages and a
#   media folder), back it up with a password to a local store, change it a
#   little and back it up again (incremental: only the change is uploaded),
#   recover the key through the vault on a "new phone", restore, prove the
#   copy identical, then show wrong passwords spending attempts; last, a
#   threshold recovery: a small backup whose key is split 2-of-3 across three
#   local realms (scripts/realms.sh), recovered with one realm stopped (made
#   fresh every run under var/demo/threshold, stopped by PID at the end).
# Every step prints what it runs. Re-running reuses the vault (./var/bkv), the
# sample data, the key registered in the vault and the store, and says so: the
# second backup recovers the registered key with the same password rather
# than registering a new one.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
reused=()  # what this run found from an earlier one; summed up at the end
reuse() { echo "reusing $*"; reused+=("$*"); }

step "1. dependencies (Debian packages, installed only if missing)"
scripts/install-deps.sh demo

step "2. build (build/release, incremental)"
BKV_TARGETS="bkv-vault bkv" scripts/build.sh release
vault_bin=$root/build/release/server/bkv-vault
bkv_bin=$root/build/release/client/bkv

demo=$root/var/demo
mkdir -p "$demo"
chmod 700 "$demo"
# Restored copies left behind by an interrupted run.
for old in "$demo"/restored-*; do
  [[ -e $old ]] && { echo "removing $old (left by an interrupted run)"; rm -rf "$old"; }
done

step "3. start bkv-vault on its embedded defaults (./var/bkv, 127.0.0.1:50051)"
log=$demo/vault.log
: >"$log"
if (exec 3<>/dev/tcp/127.0.0.1/50051) 2>/dev/null; then
  echo "something already listens on 127.0.0.1:50051 (another bkv-vault or" \
    "quickstart?); stop it and run this again" >&2
  exit 1
fi
if [[ -d $root/var/bkv ]]; then
  reuse "the vault's data in var/bkv (SoftHSM token, keys, records, audit log)"
fi
printf '$ %s serve --dev   # stderr -> %s\n' "$vault_bin" "$log"
"$vault_bin" serve --dev 2>"$log" &
vault_pid=$!
stop_vault() {
  if kill -0 "$vault_pid" 2>/dev/null; then
    kill -TERM "$vault_pid" && wait "$vault_pid" || true
  fi
}
trap stop_vault EXIT
for _ in $(seq 1 300); do
  grep -q '"event":"serving"' "$log" && break
  if ! kill -0 "$vault_pid" 2>/dev/null; then
    echo "bkv-vault exited:"; cat "$log"; exit 1
  fi
  sleep 0.1
done
grep -q '"event":"serving"' "$log" || { echo "bkv-vault did not start:"; cat "$log"; exit 1; }
vault_key=$(grep -o '"server_public_key":"[0-9a-f]*"' "$log" | head -1 | cut -d'"' -f4)
fingerprint=$(grep -o '"fingerprint":"[0-9a-f]*"' "$log" | head -1 | cut -d'"' -f4)
echo "vault is serving (pid $vault_pid); public key $vault_key"
echo "clients pin it; fingerprint $fingerprint"

step "4. an account token for user 'demo-user' (the messaging service's job)"
token=$demo/token
printf '$ %s token mint --sub demo-user > %s\n' "$vault_bin" "$token"
(umask 077 && "$vault_bin" token mint --sub demo-user >"$token")
echo "minted a fresh token every run (it expires after an hour)"

step "5. a sample chat history (~200 MB) in $demo/chat"
chat=$demo/chat
if [[ ! -f $chat/messages.db ]]; then
  mkdir -p "$chat/media"
  run sqlite3 "$chat/messages.db" >/dev/null "
    PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
    CREATE TABLE messages(id INTEGER PRIMARY KEY, chat_id INT, sender TEXT,
                          sent_at INT, body TEXT);
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 600000)
    INSERT INTO messages SELECT i, i % 97, 'user' || (i % 13),
      1700000000 + i * 17,
      'message ' || i || ' ' || hex(randomblob(40)) || ' see you at ' || (i % 24) || ':00'
    FROM n;"
  for i in $(seq -w 1 48); do
    head -c $((2500 * 1024)) /dev/urandom >"$chat/media/IMG-$i.jpg"
  done
  echo "made $(du -sh "$chat" | cut -f1): messages.db ($(sqlite3 "$chat/messages.db" 'SELECT count(*) FROM messages') messages) and 48 media files"
else
  reuse "the sample chat history ($(du -sh "$chat" | cut -f1)) in $chat"
fi

password='correct horse battery staple'
# The incremental repository (format v2). Earlier versions of this script
# wrote single-stream (v1) backups to $demo/store; that directory is left
# alone (bkv restore still reads it).
store="file://$demo/repo"
vault_flags=(--vault 127.0.0.1:50051 --vault-key "$vault_key" --account demo-user
             --token-file "$token" --password-stdin)
mkdir -p "$demo/repo"

step "6. back it up with a password (read from stdin, never argv) to $store"
# The first run registers a new key; later runs find it registered and the
# same password recovers it (no new registration, so the earlier backups
# stay readable).
printf '$ bkv vault status --json %s\n' "${vault_flags[*]:0:8}"
status_json=$("$bkv_bin" vault status --json "${vault_flags[@]:0:8}")
echo "$status_json"
state=$(grep -o '"status":"[a-z]*"' <<<"$status_json" | cut -d'"' -f4)
objects=$(find "$demo/repo" -type f | wc -l)
case "$state" in
  active)
    reuse "the backup key registered in the vault for demo-user: this backup" \
      "recovers it with the same password"
    ((objects == 0)) || reuse "the repository $store ($objects objects; forget + prune keep the newest two snapshots)" ;;
  none)
    if ((objects > 0)); then
      # var/bkv was removed but the store was not: its backups are sealed
      # under a key no vault holds any more. Keep them aside, start afresh.
      aside=$demo/repo.orphaned-$(date +%s)
      echo "the store holds backups but the vault has no key for demo-user" \
        "(var/bkv was removed?): moving them to $aside"
      mv "$demo/repo" "$aside"
      mkdir -p "$demo/repo"
    fi
    echo "no key registered for demo-user yet: this backup registers one" ;;
  locked)
    echo "demo-user's key was destroyed after too many wrong passwords;" \
      "remove var/ (rm -rf var) and run this again" >&2
    exit 1 ;;
  *) echo "unexpected vault status '$state'" >&2; exit 1 ;;
esac
printf '$ echo "<password>" | bkv backup %s --to %s --vault 127.0.0.1:50051 ... --password-stdin\n' "$chat" "$store"
printf '%s\n' "$password" | "$bkv_bin" backup "$chat" --to "$store" "${vault_flags[@]}"

step "6b. a day of chatting: 2000 new messages and a new photo; back up again"
run sqlite3 "$chat/messages.db" "
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000)
    INSERT INTO messages(chat_id, sender, sent_at, body)
    SELECT i % 97, 'user' || (i % 13), strftime('%s','now') + i,
      'new message ' || i || ' ' || hex(randomblob(40)) FROM n;"
head -c $((2500 * 1024)) /dev/urandom >"$chat/media/IMG-new.jpg"
echo "changed: messages.db (now $(sqlite3 "$chat/messages.db" 'SELECT count(*) FROM messages') messages), media/IMG-new.jpg"
# Only the changed chunks are uploaded: the summary line says how much was
# new and how much was already stored.
printf '$ echo "<password>" | bkv backup %s --to %s ... --password-stdin\n' "$chat" "$store"
printf '%s\n' "$password" | "$bkv_bin" backup "$chat" --to "$store" "${vault_flags[@]}"
printf '$ echo "<password>" | bkv forget --from %s --keep-last 2 ... && bkv prune ...\n' "$store"
printf '%s\n' "$password" | "$bkv_bin" forget --from "$store" --keep-last 2 "${vault_flags[@]}"
printf '%s\n' "$password" | "$bkv_bin" prune --from "$store" "${vault_flags[@]}"
printf '$ echo "<password>" | bkv snapshots --from %s ... --password-stdin\n' "$store"
printf '%s\n' "$password" | "$bkv_bin" snapshots --from "$store" "${vault_flags[@]}"

step "7. a new phone: no key anywhere; recover it through the vault and restore"
restored=$demo/restored-$(date +%s)
printf '$ echo "<password>" | bkv restore --from %s --to %s ... --password-stdin\n' "$store" "$restored"
printf '%s\n' "$password" | "$bkv_bin" restore --from "$store" --to "$restored" "${vault_flags[@]}"

step "8. prove the restored copy identical"
run diff -r "$chat" "$restored"
printf '$ sha256sum messages.db (original, restored)\n'
sha256sum "$chat/messages.db" "$restored/messages.db"
echo "identical: $(find "$restored" -type f | wc -l) files"
rm -rf "$restored"

step "9. wrong passwords spend attempts; the right one resets the count"
run "$bkv_bin" vault status "${vault_flags[@]:0:8}"
for guess in 'hunter2' 'letmein'; do
  printf '$ echo "%s" | bkv snapshots --from %s ... --password-stdin\n' "$guess" "$store"
  set +e
  printf '%s\n' "$guess" | "$bkv_bin" snapshots --from "$store" "${vault_flags[@]}"
  code=$?
  set -e
  echo "(exit code $code: wrong password)"
done
run "$bkv_bin" vault status "${vault_flags[@]:0:8}"
printf '$ echo "<password>" | bkv snapshots --from %s ... --password-stdin\n' "$store"
printf '%s\n' "$password" | "$bkv_bin" snapshots --from "$store" "${vault_flags[@]}" >/dev/null
run "$bkv_bin" vault status "${vault_flags[@]:0:8}"

step "10. stop the vault (SIGTERM drains, exits 0)"
printf '$ kill -TERM %s\n' "$vault_pid"
kill -TERM "$vault_pid"
wait "$vault_pid"
echo "vault exited with $?; audit log: $root/var/bkv/audit.log ($(wc -l <"$root/var/bkv/audit.log") lines)"
trap - EXIT

step "11. threshold: the key split across 3 local realms (2-of-3), recovered with one realm down"
# Fresh every run (its own realms, tokens, store and client state under
# var/demo/threshold), kernel-picked ports; stopped by PID at the end.
th=$demo/threshold
export BKV_REALMS_DIR=$th/realms BKV_REALMS_BASE_PORT=0
scripts/realms.sh clean >/dev/null  # what an interrupted run left
rm -rf "$th"
mkdir -p "$th/tokens" "$th/src"
chmod 700 "$th"
trap 'scripts/realms.sh down >/dev/null 2>&1 || true' EXIT
printf '$ BKV_REALMS_DIR=%s BKV_REALMS_BASE_PORT=0 scripts/realms.sh up\n' "$BKV_REALMS_DIR"
scripts/realms.sh up | grep -E '^realm-[abc]: pid'
set_file=$BKV_REALMS_DIR/realms.set
echo "realm set ($set_file): t = 2 of n = 3, limit 10; each realm its own" \
  "bkv-vault, SoftHSM token and PIN, records and token issuer"
for id in realm-a realm-b realm-c; do
  printf '$ %s token mint --sub demo-user --data-dir %s --audience %s > %s\n' \
    "$vault_bin" "$BKV_REALMS_DIR/$id" "$id" "$th/tokens/$id"
  (umask 077 && "$vault_bin" token mint --sub demo-user \
    --data-dir "$BKV_REALMS_DIR/$id" --audience "$id" >"$th/tokens/$id")
done
sqlite3 -csv "$chat/messages.db" \
  'SELECT * FROM messages ORDER BY id DESC LIMIT 1000' >"$th/src/recent.csv"
echo "backing up the newest 1000 messages ($th/src/recent.csv)"
export BKV_STATE_DIR=$th/client-state  # the SDK's memory of the newest version
printf '$ export BKV_STATE_DIR=%s\n' "$BKV_STATE_DIR"
realm_flags=(--realms "$set_file" --token-dir "$th/tokens" --account demo-user
             --password-stdin)
printf '$ echo "<password>" | bkv backup %s --to file://%s --realms %s --token-dir %s --account demo-user --password-stdin\n' \
  "$th/src" "$th/repo" "$set_file" "$th/tokens"
printf '%s\n' "$password" |
  "$bkv_bin" backup "$th/src" --to "file://$th/repo" "${realm_flags[@]}"
down_pid=$(cat "$BKV_REALMS_DIR/realm-b.pid")
printf '$ kill -TERM %s   # realm-b goes down\n' "$down_pid"
kill -TERM "$down_pid"
for _ in $(seq 1 100); do kill -0 "$down_pid" 2>/dev/null || break; sleep 0.1; done
echo "a new phone recovers the key from realm-a and realm-c (2 of 3):"
printf '$ echo "<password>" | bkv restore --from file://%s --to %s --realms %s --token-dir %s --account demo-user --password-stdin\n' \
  "$th/repo" "$th/restored" "$set_file" "$th/tokens"
printf '%s\n' "$password" | "$bkv_bin" restore --from "file://$th/repo" \
  --to "$th/restored" "${realm_flags[@]}"
run cmp "$th/src/recent.csv" "$th/restored/recent.csv"
echo "identical. What this showed: each realm holds one share of the key and"
echo "counts attempts on its own; 2 of the 3 recover it, so one realm down"
echo "costs nothing, and no single realm's operator (even with its HSM PIN and"
echo "records) can test a password offline (docs/threshold.md). The fresh-share"
echo "rotation after a recovery needs all 3 realms, so it waits for realm-b."
unset BKV_STATE_DIR
printf '$ BKV_REALMS_DIR=%s scripts/realms.sh clean\n' "$BKV_REALMS_DIR"
scripts/realms.sh clean
trap - EXIT

if ((${#reused[@]} == 0)); then
  echo "done: everything was made fresh; run it again to see it reuse the vault and the data"
else
  echo "done; reused from an earlier run:"
  printf '  - %s\n' "${reused[@]}"
fi
