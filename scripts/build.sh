#!/usr/bin/env bash
# Configures (once) and builds one flavour incrementally.
#   scripts/build.sh [release|asan|fuzz]   -> build/<flavour>
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
jobs=${BKV_JOBS:-$(nproc)}
case "$flavour" in
  release) args=(-DCMAKE_BUILD_TYPE=Release) ;;
  # -O1 -g1 (line tables): what ASan recommends; ~40% less compile time than
  # -O2 -g, and its reports still name file and line. GCC's
  # maybe-uninitialized guesses change with the optimisation level; the
  # release build keeps them errors.
  asan)    args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DBKV_SANITIZE=ON -DBKV_BUILD_BENCH=OFF
                 "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG -Wno-error=maybe-uninitialized"
                 "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG -Wno-error=maybe-uninitialized") ;;
  fuzz)    args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DBKV_FUZZ=ON -DBKV_BUILD_TESTS=OFF
                 -DBKV_BUILD_BENCH=OFF -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14) ;;
  *) echo "build.sh: unknown flavour '$flavour' (release|asan|fuzz)" >&2; exit 2 ;;
esac
# ccache, when installed, makes rebuilds and other checkouts' builds cheap.
if command -v ccache >/dev/null; then
  args+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$PWD")}
fi
dir=build/$flavour
if [[ ! -f $dir/CMakeCache.txt ]]; then
  cmake -S . -B "$dir" "${args[@]}" >/dev/null
fi
# BKV_TARGETS="a b" limits the build to those targets (in the fuzz flavour
# too: there it replaces the default, every fuzzer).
target=()
for t in ${BKV_TARGETS:-}; do target+=(--target "$t"); done
[[ $flavour == fuzz && ${#target[@]} -eq 0 ]] && target=(--target bkv_fuzzers)
cmake --build "$dir" -j "$jobs" "${target[@]}"
