#!/usr/bin/env bash
# Three threshold realms on loopback, for development and demos
# (docs/threshold.md; docs/operations.md, "Running realms"):
#   scripts/realms.sh up       start realm-a, realm-b, realm-c; write and print
#                              the realm-set file (t = 2, L = 10)
#   scripts/realms.sh status   which realms run and answer
#   scripts/realms.sh down     stop them (their data stays)
#   scripts/realms.sh clean    down, then remove the state directory
# Each realm is its own bkv-vault process with its own data directory,
# SoftHSM development token (its own softhsm2.conf, token dir and user PIN
# under <realm>/softhsm), AKE identity key, account-token issuer (dev issuer
# under <realm>) and audience (= its realm id). Plaintext gRPC on loopback
# only. Environment: BKV_REALMS_DIR (default var/realms), BKV_REALMS_BASE_PORT
# (default 50071: realm-a 50071, b 50072, c 50073; 0: ports the kernel picks,
# read back from each realm's log), BKV_VAULT_BIN (default the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
dir=${BKV_REALMS_DIR:-$root/var/realms}
base_port=${BKV_REALMS_BASE_PORT:-50071}
vault_bin=${BKV_VAULT_BIN:-$root/build/release/server/bkv-vault}
realms=(realm-a realm-b realm-c)
set_file=$dir/realms.set

# A pid file names a running realm only if that pid is still our bkv-vault
# for that data directory (a reused pid is never signalled).
running() {
  local pidfile=$1 data=$2 pid
  [[ -f $pidfile ]] || return 1
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--data-dir $data "
}

# The "serving" line's field `key` from a realm's log.
serving_field() {
  grep -m1 '"event":"serving"' "$1" | grep -o "\"$2\":\"[^\"]*\"" | cut -d'"' -f4
}

realm_up() {
  local i=$1 id=${realms[$1]}
  local data=$dir/$id pidfile=$dir/$id.pid log=$dir/$id.log port=0
  [[ $base_port != 0 ]] && port=$((base_port + i))
  if running "$pidfile" "$data"; then
    echo "$id already running (pid $(cat "$pidfile"))"
    return
  fi
  : >"$log"
  "$vault_bin" serve --dev --data-dir "$data" --listen "127.0.0.1:$port" \
    --metrics-listen "" --realm-id "$id" --audience "$id" \
    >"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  wait_logged_serving realms.sh "$log" running "$pidfile" "$data"
  echo "$id: pid $(cat "$pidfile"), 127.0.0.1:$(serving_field "$log" port)"
}

# The realm-set file the SDK and `bkv --realms` load (docs/threshold.md,
# "The client": bkv-realm-set v1).
write_set() {
  local tmp=$set_file.tmp
  {
    echo "bkv-realm-set v1"
    echo "# the realm set of scripts/realms.sh (docs/threshold.md)"
    echo "t 2"
    echo "limit 10"
    for id in "${realms[@]}"; do
      echo "realm $id 127.0.0.1:$(serving_field "$dir/$id.log" port)" \
        "$(serving_field "$dir/$id.log" server_public_key)"
    done
  } >"$tmp"
  mv "$tmp" "$set_file"
}

up() {
  prepare_state "$vault_bin" "$dir"
  for i in "${!realms[@]}"; do realm_up "$i"; done
  write_set
  echo
  echo "realm set: $set_file"
  cat "$set_file"
  echo
  echo "tokens (one per realm, aud = its id; bkv --realms $set_file --token-dir D reads D/<realm id>):"
  for id in "${realms[@]}"; do
    echo "  $vault_bin token mint --sub ACCOUNT --data-dir $dir/$id --audience $id"
  done
}

down() {
  for id in "${realms[@]}"; do
    local pidfile=$dir/$id.pid
    if running "$pidfile" "$dir/$id"; then
      stop_process "$(cat "$pidfile")" running "$pidfile" "$dir/$id"
      echo "$id stopped"
    fi
    rm -f "$pidfile"
  done
}

status() {
  local rc=0
  for id in "${realms[@]}"; do
    if ! running "$dir/$id.pid" "$dir/$id"; then
      echo "$id: stopped"
      rc=1
      continue
    fi
    local addr=127.0.0.1:$(serving_field "$dir/$id.log" port)
    if timeout 10 "$vault_bin" health --addr "$addr" >/dev/null 2>&1; then
      echo "$id: running (pid $(cat "$dir/$id.pid")), $addr healthy"
    else
      echo "$id: running (pid $(cat "$dir/$id.pid")), $addr not healthy"
      rc=1
    fi
  done
  [[ -f $set_file ]] && echo "realm set: $set_file"
  return $rc
}

run_command scripts/realms.sh "$dir" "${1:-}"
