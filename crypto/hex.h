#ifndef BKV_CRYPTO_HEX_H_
#define BKV_CRYPTO_HEX_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace bkv {

// Lower-case hex of public bytes (fingerprints, test vectors). Never use it
// on secrets: the result is an ordinary string.
std::string HexEncode(std::span<const uint8_t> bytes);

// The value of one hex digit (either case), or -1.
int HexDigitValue(char c);

// Strict: even length, [0-9a-fA-F] only.
absl::StatusOr<std::vector<uint8_t>> HexDecode(std::string_view hex);

}  // namespace bkv

#endif  // BKV_CRYPTO_HEX_H_
