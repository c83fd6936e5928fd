#!/usr/bin/env bash
# The SDK as an app team gets it, checked end to end (scripts/test.sh runs it):
#  1. a client-only build (-DBKV_BUILD_SERVER=OFF) in build/sdk: none of the
#     server's dependencies may be found or linked;
#  2. `cmake --install` into a temporary prefix;
#  3. libbkv.so's ABI against the baseline client/abi/libbkv.abi (abidiff):
#     an incompatible change fails unless BKV_VERSION_MAJOR (the SONAME) was
#     bumped and the baseline regenerated in the same commit;
#  4. examples/ built against the installed package with find_package and
#     with pkg-config, each running a backup/restore round trip.
#   scripts/sdk-check.sh --update-baseline   rewrites client/abi/libbkv.abi
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
jobs=${BKV_JOBS:-$(nproc)}
baseline=client/abi/libbkv.abi
build=build/sdk

args=(-DCMAKE_BUILD_TYPE=Release -DBKV_BUILD_SERVER=OFF -DBKV_BUILD_CLI=OFF -DBKV_BUILD_TESTS=OFF
      -DBKV_BUILD_BENCH=OFF)
if command -v ccache >/dev/null; then
  args+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$PWD")}
fi
[[ -f $build/CMakeCache.txt ]] || cmake -S . -B "$build" "${args[@]}" >/dev/null
cmake --build "$build" -j "$jobs" --target bkv_shared bkv_client >/dev/null

# 1. Client-only: nothing of the server's was looked for or linked.
lib=$(readlink -f "$build/client/libbkv.so")
if grep -qiE '^(RocksDB|tomlplusplus|PKCS11_INCLUDE|CIVETWEB|BKV_ETCD)' "$build/CMakeCache.txt"; then
  echo "sdk-check: the client-only build looked for a server dependency:" >&2
  grep -iE '^(RocksDB|tomlplusplus|PKCS11_INCLUDE|CIVETWEB|BKV_ETCD)' "$build/CMakeCache.txt" >&2
  exit 1
fi
needed() { readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
if needed | grep -qiE 'rocksdb|softhsm|civetweb|toml|p11'; then
  echo "sdk-check: libbkv.so links a server dependency" >&2; needed >&2; exit 1
fi

prefix=$(mktemp -d /tmp/bkv-sdk-XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix/usr" >/dev/null

# 3. ABI. abidw reads the types from libbkv.so's debug info (c_api*.cc are
# built with -g) and keeps only those the public header declares.
abi_of() {
  abidw --no-corpus-path --no-comp-dir-path --drop-private-types \
        --exported-interfaces-only --headers-dir "$src/client/include/bkv" "$1"
}
if [[ ${1:-} == --update-baseline ]]; then
  abi_of "$lib" > "$baseline"
  echo "sdk-check: wrote $baseline"
fi
set +e
report=$(abidiff --exported-interfaces-only --drop-private-types \
         --headers-dir2 "$src/client/include/bkv" "$baseline" "$lib")
rc=$?
set -e
# abidiff's exit status is a bit field (1, 2: error; 4: changed; 8:
# incompatible), but it files a changed struct layout under "changed", so
# anything removed or changed fails; additions alone are compatible.
breaking=$(sed -nE 's/^(Functions|Variables) changes summary: ([0-9]+) Removed, ([0-9]+) Changed.*/\2 \3/p' <<<"$report" |
           awk '{n += $1 + $2} END {print n + 0}')
if (( rc & 11 )) || (( breaking > 0 )); then
  echo "$report" >&2
  echo "sdk-check: libbkv.so breaks the ABI of $baseline (abidiff exit $rc)." \
       "Either keep it compatible, or bump BKV_VERSION_MAJOR (the SONAME) and" \
       "run scripts/sdk-check.sh --update-baseline in the same commit." >&2
  exit 1
fi
if (( rc & 4 )); then
  echo "$report"
  echo "sdk-check: compatible ABI additions; record them with" \
       "scripts/sdk-check.sh --update-baseline"
fi

# 4. Consumers of the installed package.
work=$prefix/work
mkdir -p "$work"
head -c 3000000 /dev/urandom > "$work/input.bin"
cmake -S examples -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix/usr" >/dev/null
cmake --build "$work/build" -j "$jobs" >/dev/null
mkdir "$work/c" "$work/cpp" "$work/pc"
"$work/build/backup_restore_c" "$work/input.bin" "$work/c"
"$work/build/backup_restore_cpp" "$work/input.bin" "$work/cpp"
# pkg-config, with the library found through its installed path only.
PKG_CONFIG_PATH=$prefix/usr/lib/pkgconfig
export PKG_CONFIG_PATH
cc -Wall -Werror -o "$work/pc/backup_restore" examples/backup_restore.c \
   $(pkg-config --cflags --libs bkv)
LD_LIBRARY_PATH=$prefix/usr/lib "$work/pc/backup_restore" "$work/input.bin" "$work/pc"

exported=$(nm -D --defined-only "$lib" | grep -c ' T ')
echo "sdk-check: libbkv.so.$(sed -n 's/^#define BKV_VERSION_MAJOR //p' client/include/bkv/bkv.h):" \
     "$exported exported functions, $(stat -c %s "$lib") bytes" \
     "($(strip -o "$prefix/stripped.so" "$lib" && stat -c %s "$prefix/stripped.so") stripped); ABI matches $baseline"
echo "sdk-check: libbkv.so links: $(needed | sort | tr '\n' ' ')"
