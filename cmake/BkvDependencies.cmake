# Every dependency comes from a Debian 12 package; scripts/install-deps.sh
# lists them. Found the standard way: CMake config packages where Debian ships
# them, pkg-config otherwise.
find_package(Threads REQUIRED)
find_package(OpenSSL 3 REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(CURL REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium>=1.0.18)
pkg_check_modules(ARGON2 REQUIRED IMPORTED_TARGET libargon2)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)


if(BKV_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
if(BKV_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# The CLI's config file and the server's (header-only).
if(BKV_BUILD_CLI OR BKV_BUILD_SERVER)
  find_package(tomlplusplus CONFIG REQUIRED)
endif()

if(NOT BKV_BUILD_SERVER)
  return()
endif()
# Server-only libraries. Debian's civetweb CMake package names /usr/bin/civetweb
# (another package), so it is found by header and library instead.
find_package(RocksDB CONFIG REQUIRED)
# PKCS#11 headers come from p11-kit; the module itself is loaded at run time.
find_path(PKCS11_INCLUDE_DIR p11-kit/pkcs11.h PATH_SUFFIXES p11-kit-1 REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_path(CIVETWEB_INCLUDE_DIR civetweb.h REQUIRED)
find_library(CIVETWEB_LIBRARY civetweb REQUIRED)
add_library(bkv::civetweb UNKNOWN IMPORTED)
set_target_properties(bkv::civetweb PROPERTIES
  IMPORTED_LOCATION ${CIVETWEB_LIBRARY}
  INTERFACE_INCLUDE_DIRECTORIES ${CIVETWEB_INCLUDE_DIR})
