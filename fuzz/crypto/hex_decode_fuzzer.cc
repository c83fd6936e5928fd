#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "crypto/hex.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto decoded = bkv::HexDecode(in);
  if (decoded.ok()) {
    // Decoding is canonical up to case: re-encoding must match lower-cased.
    std::string lower(in);
    for (char& c : lower) c = (c >= 'A' && c <= 'F') ? c - 'A' + 'a' : c;
    if (bkv::HexEncode(*decoded) != lower) std::abort();
  }
  return 0;
}
