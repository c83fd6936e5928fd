#!/usr/bin/env bash
# scripts/realms.sh up / status / down against the real bkv-vault, in a
# temporary state directory on kernel-chosen ports (parallel-safe):
# three realms with their own data directory, SoftHSM token (conf, token dir,
# PIN), identity key and issuer; a realm-set file that names them; `down`
# stops exactly the realms it started; the CLI backs up and restores through
# the realm-set file it wrote (with one realm stopped for the restore).
# Usage: realms_script_test.sh SCRIPT VAULT_BIN BKV_BIN
set -euo pipefail
script=$1
export BKV_VAULT_BIN=$2
bkv=$3
export BKV_REALMS_DIR
BKV_REALMS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bkv-realms-test-XXXXXX")
export BKV_REALMS_BASE_PORT=0
bystander=
pids=
cleanup() {
  "$script" down >/dev/null 2>&1 || true
  for pid in $pids; do  # ours even if a pid file was lost
    grep -qF "$BKV_REALMS_DIR" "/proc/$pid/cmdline" 2>/dev/null && kill "$pid"
  done
  [[ -n $bystander ]] && kill "$bystander" 2>/dev/null || true
  rm -rf "$BKV_REALMS_DIR"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$script" up >"$BKV_REALMS_DIR/up.out"
set_file=$BKV_REALMS_DIR/realms.set
[[ -f $set_file ]] || fail "no realm-set file"
[[ $(head -n 1 "$set_file") == "bkv-realm-set v1" ]] || fail "not a bkv-realm-set v1 file"
grep -q '^t 2$' "$set_file" || fail "t missing"
grep -q '^limit 10$' "$set_file" || fail "limit missing"
[[ $(grep -c '^realm ' "$set_file") == 3 ]] || fail "not three realms"
keys=$(grep -o '^realm realm-[abc] 127\.0\.0\.1:[0-9]* [0-9a-f]\{64\}$' "$set_file" |
  awk '{print $4}' | sort -u | wc -l)
[[ $keys == 3 ]] || fail "identity keys not three distinct 64-hex keys"
endpoints=$(grep '^realm ' "$set_file" | awk '{print $3}' | sort -u | wc -l)
[[ $endpoints == 3 ]] || fail "endpoints not three distinct loopback ports"
for id in realm-a realm-b realm-c; do
  d=$BKV_REALMS_DIR/$id
  [[ -f $d/softhsm/softhsm2.conf && -f $d/softhsm/user.pin && -d $d/records ]] ||
    fail "$id lacks its own token or records"
  grep -q "^directories.tokendir = $d/softhsm/tokens" "$d/softhsm/softhsm2.conf" ||
    fail "$id's SoftHSM conf does not point at its own token dir"
  [[ -f $d/dev-issuer.key ]] || fail "$id has no issuer of its own"
done
[[ $(cat "$BKV_REALMS_DIR"/realm-*/softhsm/user.pin | sort -u | wc -l) == 3 ]] ||
  fail "the realms share a PIN"
"$script" status || fail "status after up"

# The documented path: one token per realm, then `bkv --realms` on the file.
cli=$BKV_REALMS_DIR/cli
mkdir -p "$cli/src" "$cli/tokens" "$cli/store"
head -c 50000 /dev/urandom >"$cli/src/chat.db"
for id in realm-a realm-b realm-c; do
  "$BKV_VAULT_BIN" token mint --sub alice --data-dir "$BKV_REALMS_DIR/$id" \
    --audience "$id" >"$cli/tokens/$id" || fail "token mint for $id"
done
realm_flags=(--realms "$set_file" --token-dir "$cli/tokens" --account alice --password-stdin)
export BKV_STATE_DIR=$cli/state
echo "correct horse battery staple" |
  timeout 120 "$bkv" backup "$cli/src" --to "file://$cli/store" "${realm_flags[@]}" ||
  fail "bkv backup --realms"
kill -STOP "$(cat "$BKV_REALMS_DIR/realm-b.pid")"
echo "correct horse battery staple" |
  timeout 120 "$bkv" restore --from "file://$cli/store" --to "$cli/restored" "${realm_flags[@]}" ||
  { kill -CONT "$(cat "$BKV_REALMS_DIR/realm-b.pid")"; fail "bkv restore --realms with realm-b stopped"; }
kill -CONT "$(cat "$BKV_REALMS_DIR/realm-b.pid")"
cmp "$cli/src/chat.db" "$cli/restored/chat.db" || fail "restored bytes differ"
again=$("$script" up)
[[ $(grep -c "already running" <<<"$again") == 3 ]] || fail "a second up started more"

# A process that is not ours under a realm's pid file is never signalled.
sleep 60 &
bystander=$!
pids=$(cat "$BKV_REALMS_DIR"/realm-*.pid)
echo "$bystander" >"$BKV_REALMS_DIR/realm-c.pid"
"$script" down
kill -0 "$bystander" || fail "down killed a process it did not start"
alive() {  # a zombie (exited, not yet reaped by whoever adopted it) is not
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}
for pid in $pids; do
  # realm-c's pid file was overwritten: stop it ourselves.
  if alive "$pid"; then
    grep -q realm-c "/proc/$pid/cmdline" || fail "pid $pid still running after down"
    kill -TERM "$pid"
  fi
done
if "$script" status; then fail "status succeeds with the realms down"; fi
echo "PASS"
