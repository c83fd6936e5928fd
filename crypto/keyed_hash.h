#ifndef BKV_CRYPTO_KEYED_HASH_H_
#define BKV_CRYPTO_KEYED_HASH_H_

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "crypto/secret_bytes.h"

namespace bkv {

// HMAC-SHA512 under a key the caller never sees. The vault's OPRF seed lives
// behind this interface (in the HSM, hsm/), so per-user OPRF keys can be
// derived (RFC 9807 §6.3.2.2) without the seed leaving the token.
// Implementations are thread-safe.
class KeyedHash {
 public:
  virtual ~KeyedHash() = default;

  // Returns the 64-byte HMAC-SHA512 of `message`.
  virtual absl::StatusOr<SecretBytes> HmacSha512(
      std::span<const uint8_t> message) const = 0;
};

}  // namespace bkv

#endif  // BKV_CRYPTO_KEYED_HASH_H_
