#!/usr/bin/env bash
# Proves docker/compose.cluster.yaml under podman: 3 etcd containers, the key
# ceremony, 3 vault nodes. The host's `bkv` backs up through node 1 and
# recovers through node 3; then one vault container and one etcd container
# are killed and the backup is recovered again through the survivors (the
# CLI fails over past the dead node). Removes what it started, by name.
# Needs root (rootful podman), like scripts/container-test.sh, whose base
# images and image build it shares. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[[ $(id -u) -eq 0 ]] || { echo "container-cluster-test: run as root" >&2; exit 1; }

# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
fail() { echo "container-cluster-test: FAIL: $*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bkv-cluster-ct.XXXXXX")
project=bkvcc$$
compose=(timeout 300 podman-compose -p "$project" -f docker/compose.cluster.yaml)
ctr() { echo "${project}_$1_1"; }

use_private_podman_conf "$work"

cleanup() {
  local rc=$?
  set +e
  if ((rc != 0)); then
    for c in vault1 vault2 vault3 etcd1; do
      echo "-- $c log (last 15 lines)"; podman logs --tail 15 "$(ctr $c)" 2>&1
    done
  fi
  # The containers with their anonymous volumes (the image's VOLUME, e.g.
  # the ceremony's), then the named volumes and the network.
  podman ps -aq --filter "label=io.podman.compose.project=$project" |
    xargs -r podman rm -f -v >/dev/null 2>&1
  "${compose[@]}" down -v >/dev/null 2>&1
  for v in etcd1-data etcd2-data etcd3-data bkv-token bkv-issuer vault2-data vault3-data; do
    podman volume rm -f "${project}_$v" >/dev/null 2>&1
  done
  podman network rm -f "${project}_default" >/dev/null 2>&1
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

export BKV_VAULT1_PORT BKV_VAULT2_PORT BKV_VAULT3_PORT
BKV_VAULT1_PORT=$(free_port)
BKV_VAULT2_PORT=$(free_port)
BKV_VAULT3_PORT=$(free_port)
addr() { local v="BKV_VAULT$1_PORT"; echo "127.0.0.1:${!v}"; }

# Bounded wait until a vault container logs "serving"; prints its key.
wait_serving() {
  local c logs
  c=$(ctr "$1")
  for _ in $(seq 1 120); do
    logs=$(podman logs "$c" 2>&1 || true)
    if grep -q '"event":"serving"' <<<"$logs"; then
      grep -o '"server_public_key":"[0-9a-f]*"' <<<"$logs" | tail -n1 | cut -d'"' -f4
      return
    fi
    sleep 0.5
  done
  echo "$logs" >&2
  fail "$1 did not serve within 60 s"
}

images() {
  docker/build-base-images.sh
  timeout 3600 podman build --network=host --format docker \
    -f docker/Dockerfile -t bkv-vault:latest .
  timeout 1200 podman build --network=host --format docker \
    -f docker/etcd.Dockerfile -t bkv-etcd:latest .
}

# Started step by step: podman-compose does not wait for depends_on
# conditions (ceremony completed, node 1 healthy).
bring_up() {
  "${compose[@]}" up -d etcd1 etcd2 etcd3 >"$work/up.log" 2>&1 || { cat "$work/up.log"; fail "etcd up"; }
  "${compose[@]}" up -d ceremony >"$work/up.log" 2>&1 || { cat "$work/up.log"; fail "ceremony up"; }
  [[ $(timeout 300 podman wait "$(ctr ceremony)") == 0 ]] || fail "the key ceremony failed"
  "${compose[@]}" up -d vault1 >"$work/up.log" 2>&1 || { cat "$work/up.log"; fail "vault1 up"; }
  key=$(wait_serving vault1)
  [[ ${#key} == 64 ]] || fail "no public key in vault1's log"
  "${compose[@]}" up -d vault2 vault3 >"$work/up.log" 2>&1 || { cat "$work/up.log"; fail "vault2/3 up"; }
  for n in vault2 vault3; do
    [[ $(wait_serving $n) == "$key" ]] || fail "$n serves another key"
  done
  (umask 077 && timeout 30 podman exec "$(ctr vault1)" bkv-vault token mint \
    --sub cluster-user --data-dir /var/lib/bkv >"$work/token")
}

password='container cluster test password'
vault_args() {  # vault address list
  echo --vault "$1" --vault-key "$key" --account cluster-user \
    --token-file "$work/token" --password-stdin
}
restore_and_compare() {  # target name, vault address list
  # shellcheck disable=SC2046
  printf '%s\n' "$password" | timeout 120 "$bkv" restore \
    --from "file://$work/store" --to "$work/$1" $(vault_args "$2")
  diff -r "$work/data" "$work/$1" || fail "restored copy $1 differs"
  echo "restored $1 through $2: identical"
}

backup_node1_recover_node3() {
  mkdir -p "$work/data" "$work/store"
  head -c $((1024 * 1024)) /dev/urandom >"$work/data/photo.jpg"
  seq 1 20000 >"$work/data/messages.txt"
  # shellcheck disable=SC2046
  printf '%s\n' "$password" | timeout 120 "$bkv" backup "$work/data" \
    --to "file://$work/store" $(vault_args "$(addr 1)")
  restore_and_compare restored-1 "$(addr 3)"
}

kill_and_recover() {
  # Stopped without grace, as a user stop so that the restart policy
  # leaves them down.
  timeout 60 podman stop -t 0 "$(ctr vault1)" "$(ctr etcd1)" >/dev/null
  [[ $(podman inspect -f '{{.State.Running}}' "$(ctr vault1)") == false ]] || fail "vault1 still runs"
  restore_and_compare restored-2 "$(addr 1),$(addr 2),$(addr 3)"
}

phase "dependencies" scripts/install-deps.sh container
phase "build the host's bkv CLI" env BKV_TARGETS=bkv scripts/build.sh release
bkv=$root/build/release/client/bkv
phase "images (base, bkv-vault, bkv-etcd)" images
phase "up: 3 etcd, ceremony, 3 vault nodes" bring_up
phase "backup through node 1, recovery through node 3" backup_node1_recover_node3
phase "vault1 and etcd1 killed, recovery through the others" kill_and_recover
echo "container-cluster-test: PASS"
