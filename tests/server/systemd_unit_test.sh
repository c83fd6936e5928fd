#!/usr/bin/env bash
# The shipped systemd unit parses and names a vault that starts: systemd's own
# checker on a copy whose ExecStart points at the built binary.
#   systemd_unit_test.sh UNIT BKV_VAULT_BIN
set -euo pipefail
unit=$1 bin=$2
command -v systemd-analyze >/dev/null || { echo "no systemd-analyze"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/bin/bkv-vault|$bin|" "$unit" >"$tmp/bkv-vault.service"
grep -q "ExecStart=$bin serve --config" "$tmp/bkv-vault.service"
systemd-analyze verify "$tmp/bkv-vault.service"
# The hardening this unit promises (docs/operations.md, "systemd").
for opt in NoNewPrivileges=yes ProtectSystem=strict LimitCORE=0 \
  CapabilityBoundingSet= MemoryDenyWriteExecute=yes UMask=0077; do
  grep -qx "$opt" "$unit" || { echo "missing $opt"; exit 1; }
done
echo "ok"
