#!/usr/bin/env bash
# A local vault cluster on loopback, for development and demos:
#   scripts/cluster.sh up       3 etcd members + 3 bkv-vault nodes
#   scripts/cluster.sh status   which processes run, the etcd leader's health
#   scripts/cluster.sh down     stop them (the data under var/cluster stays)
#   scripts/cluster.sh clean    down, then remove var/cluster
# Ports: etcd clients 23791-23793 (peers 23801-23803), vault gRPC
# 50061-50063, metrics 9471-9473. Each node has its own SoftHSM development
# token (var/cluster/softhsmN): node 1's keys come from `bkv-vault hsm init`,
# nodes 2 and 3 get copies through the cloning ceremony (hsm export-request,
# export, import; the keys travel only wrapped for the receiving token). One
# development issuer (node 1's). Plaintext to etcd on loopback only; a real
# deployment uses TLS (docs/operations.md, "Several vault nodes").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
dir=$root/var/cluster
vault_bin=$root/build/release/server/bkv-vault
etcd_bin=${BKV_ETCD:-/usr/bin/etcd}
nodes=(1 2 3)
endpoints=127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793
initial=m1=http://127.0.0.1:23801,m2=http://127.0.0.1:23802,m3=http://127.0.0.1:23803

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

etcd_up() {
  local i=$1
  local pidfile=$dir/etcd$i.pid
  running "$pidfile" && { echo "etcd m$i already running"; return; }
  local state=new
  [[ -d $dir/etcd$i/member ]] && state=existing
  mkdir -p "$dir/etcd$i"
  "$etcd_bin" --name=m$i --data-dir="$dir/etcd$i" \
    --listen-client-urls=http://127.0.0.1:2379$i \
    --advertise-client-urls=http://127.0.0.1:2379$i \
    --listen-peer-urls=http://127.0.0.1:2380$i \
    --initial-advertise-peer-urls=http://127.0.0.1:2380$i \
    --initial-cluster=$initial --initial-cluster-token=bkv-local \
    --initial-cluster-state=$state --log-level=warn --logger=zap \
    >"$dir/etcd$i.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  echo "etcd m$i: pid $(cat "$pidfile"), client 127.0.0.1:2379$i"
}

# Waits (at most 30 s) until every member reports a healthy cluster.
wait_etcd() {
  for _ in $(seq 1 300); do
    local ok=0
    for i in "${nodes[@]}"; do
      curl -sf http://127.0.0.1:2379$i/health | grep -q '"true"' && ok=$((ok + 1))
    done
    [[ $ok == "${#nodes[@]}" ]] && return 0
    sleep 0.1
  done
  echo "cluster.sh: etcd not healthy after 30 s; see $dir/etcd*.log" >&2
  return 1
}

vault_up() {
  local i=$1
  local pidfile=$dir/vault$i.pid log=$dir/vault$i.log
  running "$pidfile" && { echo "vault node $i already running"; return; }
  local args=(serve --dev --data-dir "$dir/node$i" --listen 127.0.0.1:5006$i
    --metrics-listen 127.0.0.1:947$i --softhsm-dir "$dir/softhsm$i"
    --storage etcd --etcd-endpoints $endpoints --etcd-insecure)
  # Node 1 makes the development issuer; the others trust its key.
  [[ $i != 1 ]] && args+=(--issuer-keys-file "$dir/node1/dev-issuer.pub")
  : >"$log"
  "$vault_bin" "${args[@]}" >"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  wait_logged_serving cluster.sh "$log" running "$pidfile"
  echo "vault node $i: pid $(cat "$pidfile"), 127.0.0.1:5006$i"
}

# Copies node 1's keys to node i's own token, unless it has them. Here the
# script reads the fingerprint itself; across machines the operator compares
# it over a second channel (docs/operations.md, "Adding a vault node").
clone_keys() {
  local i=$1 token=$dir/softhsm$i
  if [[ -f $token/softhsm2.conf ]] &&
    "$vault_bin" hsm status --softhsm-dir "$token" >/dev/null 2>&1; then
    return
  fi
  local request=$dir/transport$i.pem export=$dir/keys$i.export fingerprint
  fingerprint=$("$vault_bin" hsm export-request --softhsm-dir "$token" \
    --out "$request" | sed -n 's/^transport key fingerprint (SHA-256): //p')
  "$vault_bin" hsm export --softhsm-dir "$dir/softhsm1" --request "$request" \
    --fingerprint "$fingerprint" --out "$export" >/dev/null
  "$vault_bin" hsm import --softhsm-dir "$token" --in "$export" >/dev/null
  rm -f "$request" "$export"
  echo "node $i: keys cloned to its own token ($token)"
}

up() {
  prepare_state "$vault_bin" "$dir"
  for i in "${nodes[@]}"; do etcd_up "$i"; done
  wait_etcd
  # The key ceremony once, on node 1's token; the others get clones.
  if [[ ! -f $dir/softhsm1/softhsm2.conf ]]; then
    "$vault_bin" hsm init --softhsm-dir "$dir/softhsm1"
  fi
  for i in "${nodes[@]:1}"; do clone_keys "$i"; done
  for i in "${nodes[@]}"; do vault_up "$i"; done
  echo
  echo "vault nodes: 127.0.0.1:50061,127.0.0.1:50062,127.0.0.1:50063"
  grep -o '"server_public_key":"[0-9a-f]*"' "$dir/vault1.log" | head -1
  echo "tokens: $vault_bin token mint --sub ACCOUNT --data-dir $dir/node1"
}

down() {
  for name in vault3 vault2 vault1 etcd3 etcd2 etcd1; do
    local pidfile=$dir/$name.pid
    if running "$pidfile"; then
      stop_process "$(cat "$pidfile")" running "$pidfile"
      echo "$name stopped"
    fi
    rm -f "$pidfile"
  done
}

status() {
  local rc=0
  for name in etcd1 etcd2 etcd3 vault1 vault2 vault3; do
    if running "$dir/$name.pid"; then
      echo "$name: running (pid $(cat "$dir/$name.pid"))"
    else
      echo "$name: stopped"; rc=1
    fi
  done
  for i in "${nodes[@]}"; do
    curl -sf http://127.0.0.1:2379$i/health >/dev/null &&
      echo "etcd m$i: healthy" || { echo "etcd m$i: not healthy"; rc=1; }
  done
  for i in "${nodes[@]}"; do
    if running "$dir/vault$i.pid"; then
      "$vault_bin" health --addr 127.0.0.1:5006$i >/dev/null 2>&1 &&
        echo "vault node $i: healthy" || { echo "vault node $i: not healthy"; rc=1; }
    fi
  done
  return $rc
}

run_command scripts/cluster.sh "$dir" "${1:-}"
