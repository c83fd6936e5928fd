#!/usr/bin/env bash
# Installs the Debian 12 packages bkv needs, and only those missing.
# Idempotent: does nothing (and never calls apt-get) when all are present.
# Works as root or through sudo.
set -euo pipefail

# Build and run time.
PACKAGES=(
  cmake g++ make pkg-config
  libssl-dev libsodium-dev libargon2-dev zlib1g-dev
  libabsl-dev libprotobuf-dev protobuf-compiler
  libgrpc++-dev protobuf-compiler-grpc
  librocksdb-dev
  softhsm2 libp11-kit-dev
  libcurl4-openssl-dev libzstd-dev libarchive-dev
  # zxcvbn: the CLI's password strength floor (client/cli/password.h).
  libzxcvbn-dev
  # man pages of bkv and bkv-vault, generated at build time.
  help2man
  libtomlplusplus-dev libcivetweb-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # The SDK's JVM binding (bindings/java) and its JUnit 5 suite.
  openjdk-17-jdk-headless junit5
  # etcd's v3 API schema (.proto) for the vault's etcd record store; the
  # client needs none of it (configure with -DBKV_WITH_ETCD=OFF).
  golang-etcd-server-dev
  # lld links the test programs several times faster than GNU ld (CMake
  # falls back to GNU ld without it).
  lld
)
# Extra groups, selected by arguments (e.g. `install-deps.sh test`).
for group in "$@"; do
  case "$group" in
    # Test servers on loopback: nginx with WebDAV for the WebDAV store; node
    # for the S3-compatible server (npm s3rver, see tests/servers/).
    test) PACKAGES+=(procps nginx-light libnginx-mod-http-dav-ext sqlite3)
          PACKAGES+=(fiu-utils)  # tests/client/fault_test.cc: fiu-run (libfiu)
          PACKAGES+=(strace)  # fault_test.cc: the order of a restore's fsyncs and rename
          PACKAGES+=(faketime)  # clock steps: ctest -R 'WallClock|NineMinutes'
          PACKAGES+=(openssl)  # tests/servers/servers.sh: openssl passwd -apr1
          PACKAGES+=(etcd-server)  # real etcd clusters on loopback (ctest -R cluster)
          PACKAGES+=(opensc)  # pkcs11-tool: an independent reading of cloned HSM keys
          PACKAGES+=(abigail-tools)  # scripts/sdk-check.sh: abidiff
          PACKAGES+=(chromium)  # ctest -R passkey: headless, virtual authenticator
          PACKAGES+=(ccache)  # the SDK check's client-only build reuses the release objects
          command -v node >/dev/null || PACKAGES+=(nodejs)
          command -v npm >/dev/null || PACKAGES+=(npm) ;;
    bench) PACKAGES+=(age openssl procps etcd-server restic sqlite3 time bc) ;;
    demo) PACKAGES+=(sqlite3) ;;
    fuzz) PACKAGES+=(clang-14 libclang-rt-14-dev) ;;
    # scripts/container-test.sh: rootful podman with Debian's runc (crun
    # refuses hybrid cgroups), podman-compose for docker/compose.yaml, and
    # debootstrap to build the Debian base images without a registry; CNI's
    # dnsname plugin so that compose services find each other by name
    # (docker/compose.cluster.yaml).
    container) PACKAGES+=(podman podman-compose runc debootstrap uidmap)
               PACKAGES+=(golang-github-containernetworking-plugin-dnsname)
               PACKAGES+=(debian-archive-keyring ca-certificates) ;;
    *) echo "install-deps.sh: unknown group '$group'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
