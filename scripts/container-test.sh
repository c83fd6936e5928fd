#!/usr/bin/env bash
# Proves docker/ the way an operator uses it, with Debian's podman (no
# registry needed): builds the Debian base images if missing (cached), builds
# docker/Dockerfile, starts docker/compose.yaml with podman-compose, has the
# host's `bkv` CLI back up with a password and recover through the containered
# vault, recreates the container and recovers again from the same volume, and
# checks the container runs non-root, read-only, with every capability
# dropped and a passing HEALTHCHECK. Removes what it started, by name.
# Needs root (rootful podman). Exits non-zero on any failure.
#   BKV_CONTAINER_KEEP_IMAGE=0 also removes the built image at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[[ $(id -u) -eq 0 ]] || { echo "container-test: run as root (rootful podman)" >&2; exit 1; }

# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh
fail() { echo "container-test: FAIL: $*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bkv-container-test.XXXXXX")
project=bkvct$$
compose=(timeout 300 podman-compose -p "$project" -f docker/compose.yaml)
image=bkv-vault:latest   # what docker/compose.yaml runs
ctr=${project}_bkv-vault_1
volume=${project}_bkv-data

use_private_podman_conf "$work"

cleanup() {
  local rc=$?
  set +e
  if ((rc != 0)) && podman container exists "$ctr" 2>/dev/null; then
    echo "-- vault log (last 30 lines)"; podman logs --tail 30 "$ctr" 2>&1
  fi
  "${compose[@]}" down -v >/dev/null 2>&1
  podman rm -f -t 5 "$ctr" >/dev/null 2>&1
  podman volume rm -f "$volume" >/dev/null 2>&1
  podman network rm -f "${project}_default" >/dev/null 2>&1
  [[ ${BKV_CONTAINER_KEEP_IMAGE:-1} == 1 ]] || podman rmi -f "$image" >/dev/null 2>&1
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

export BKV_GRPC_PORT BKV_METRICS_PORT
BKV_GRPC_PORT=$(free_port)
BKV_METRICS_PORT=$(free_port)
addr=127.0.0.1:$BKV_GRPC_PORT

phase "dependencies" scripts/install-deps.sh container
phase "build the host's bkv CLI" env BKV_TARGETS=bkv scripts/build.sh release
bkv=$root/build/release/client/bkv
phase "base images (debian:12, debian:12-slim)" docker/build-base-images.sh
phase "image $image" timeout 3600 podman build --network=host --format docker \
  -f docker/Dockerfile -t "$image" .

# Waits (bounded) until the vault in the container says it serves; prints
# its public key.
wait_serving() {
  local logs
  for _ in $(seq 1 120); do
    logs=$(podman logs "$ctr" 2>&1 || true)
    if grep -q '"event":"serving"' <<<"$logs"; then
      grep -o '"server_public_key":"[0-9a-f]*"' <<<"$logs" | tail -n1 | cut -d'"' -f4
      return
    fi
    [[ $(podman inspect -f '{{.State.Running}}' "$ctr" 2>/dev/null) == true ]] ||
      { echo "$logs" >&2; fail "the vault container is not running"; }
    sleep 0.5
  done
  fail "the vault did not serve within 60 s"
}

up() {
  "${compose[@]}" up -d >"$work/compose.log" 2>&1 || { cat "$work/compose.log"; fail "compose up"; }
}

check_hardening() {
  local uid status
  uid=$(timeout 30 podman exec "$ctr" id -u)
  [[ $uid != 0 ]] || fail "the vault runs as root"
  [[ $(podman image inspect -f '{{.Config.User}}' "$image") == bkv ]] || fail "image USER is not bkv"
  [[ $(podman inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$ctr") == true ]] || fail "root filesystem is writable"
  # As the kernel sees it from inside: / is mounted read-only.
  timeout 30 podman exec "$ctr" sh -c 'grep -q "^[^ ]* / [^ ]* ro[, ]" /proc/mounts' ||
    fail "/ is not mounted read-only inside the container"
  status=$(timeout 30 podman exec "$ctr" cat /proc/1/status)
  for cap in CapInh CapPrm CapEff CapBnd CapAmb; do
    grep -Eq "^$cap:[[:space:]]+0+$" <<<"$status" || fail "$cap not empty: $(grep "^$cap" <<<"$status")"
  done
  grep -Eq '^NoNewPrivs:[[:space:]]+1$' <<<"$status" || fail "no-new-privileges is off"
  echo "uid $uid, read-only root, no capabilities, no new privileges"
}

check_health() {
  [[ $(podman image inspect -f '{{.Config.Healthcheck.Test}}' "$image") == *"bkv-vault health"* ]] ||
    fail "the image has no HEALTHCHECK running bkv-vault health"
  timeout 60 podman healthcheck run "$ctr" || fail "HEALTHCHECK did not pass"
  echo "HEALTHCHECK passes (bkv-vault health: gRPC health service)"
}

mint_token() {  # the development issuer lives on the volume
  (umask 077 && timeout 30 podman exec "$ctr" bkv-vault token mint --sub container-user \
    --data-dir /var/lib/bkv >"$work/token")
}

password='container test password'
restore_and_compare() {  # target name
  printf '%s\n' "$password" | timeout 120 "$bkv" restore --from "file://$work/store" \
    --to "$work/$1" "${vault_flags[@]}"
  diff -r "$work/data" "$work/$1" || fail "restored copy differs"
  echo "restored $1: identical"
}

start_and_backup() {
  up
  key=$(wait_serving)
  [[ ${#key} == 64 ]] || fail "no vault public key in the log"
  check_hardening
  check_health
  mint_token
  vault_flags=(--vault "$addr" --vault-key "$key" --account container-user
               --token-file "$work/token" --password-stdin)
  mkdir -p "$work/data/media" "$work/store"
  head -c $((3 * 1024 * 1024)) /dev/urandom >"$work/data/media/photo.jpg"
  seq 1 20000 >"$work/data/messages.txt"
  printf '%s\n' "$password" | timeout 120 "$bkv" backup "$work/data" \
    --to "file://$work/store" "${vault_flags[@]}"
  restore_and_compare restored-1
}

recreate_and_recover() {
  "${compose[@]}" down >"$work/compose.log" 2>&1 || { cat "$work/compose.log"; fail "compose down"; }
  podman volume exists "$volume" || fail "compose down removed the volume"
  up
  local key2
  key2=$(wait_serving)
  [[ $key2 == "$key" ]] || fail "the vault's key changed across the restart"
  mint_token
  restore_and_compare restored-2
}

phase "compose up, backup and recovery through the container" start_and_backup
phase "new container on the same volume, recovery again" recreate_and_recover
echo "container-test: PASS"
