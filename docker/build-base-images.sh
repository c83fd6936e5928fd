#!/usr/bin/env bash
# Builds the Debian 12 base images docker/Dockerfile starts from (debian:12
# and debian:12-slim) from Debian's own packages, for machines that reach a
# Debian mirror but no container registry. Needs root, debootstrap, podman.
#
#   docker/build-base-images.sh          # builds only what is missing
#
# The root filesystem is cached as a tarball (debootstrap takes minutes):
# BKV_CACHE_DIR (default ~/.cache/bkv). The mirror is the one apt uses here,
# or BKV_DEBIAN_MIRROR.
set -euo pipefail

SUITE=bookworm
IMAGES=(debian:12 debian:12-slim)
CACHE_DIR=${BKV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bkv}
TARBALL=$CACHE_DIR/debian-12-minbase.tar

log() { echo "base-images: $*" >&2; }

# The first Debian archive URI in apt's sources (deb822 or one-line form).
debian_mirror() {
  if [[ -n ${BKV_DEBIAN_MIRROR:-} ]]; then echo "$BKV_DEBIAN_MIRROR"; return; fi
  local files=() uri
  shopt -s nullglob
  files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list)
  shopt -u nullglob
  uri=$(awk '
    /^[[:space:]]*URIs:/ { for (i = 2; i <= NF; i++) print $i }
    /^[[:space:]]*deb[[:space:]]/ { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; break } }
  ' "${files[@]}" 2>/dev/null | grep -v -e security -e '^cdrom:' | grep -E '/debian/?$' | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

have_image() { podman image exists "$1"; }

build_tarball() {
  local mirror root
  mirror=$(debian_mirror)
  root=$(mktemp -d "${TMPDIR:-/tmp}/bkv-rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  log "debootstrap --variant=minbase $SUITE from $mirror (a few minutes)"
  local start=$SECONDS
  debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -n 20 "$root.log" >&2; rm -f "$root.log"
    log "debootstrap failed; is $mirror reachable? (set BKV_DEBIAN_MIRROR)"; exit 1
  }
  rm -f "$root.log"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  mkdir -p "$CACHE_DIR"
  tar --numeric-owner -C "$root" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  rm -rf "$root"
  trap - EXIT
  log "root filesystem cached in $TARBALL ($((SECONDS - start)) s)"
}

main() {
  [[ $(id -u) -eq 0 ]] || { log "run as root (rootful podman, debootstrap)"; exit 1; }
  local missing=() img
  for img in "${IMAGES[@]}"; do have_image "$img" || missing+=("$img"); done
  if ((${#missing[@]} == 0)); then log "reusing ${IMAGES[*]}"; return; fi
  if [[ -s $TARBALL ]]; then log "reusing cached $TARBALL"; else build_tarball; fi
  local id
  id=$(podman import --change 'CMD ["/bin/bash"]' "$TARBALL" "${missing[0]}")
  for img in "${missing[@]:1}"; do podman tag "$id" "$img"; done
  log "imported ${missing[*]}"
}

main "$@"
