#ifndef BKV_CRYPTO_SEALER_H_
#define BKV_CRYPTO_SEALER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"

namespace bkv {

// An AEAD that holds its key out of reach: the HSM implements it with a
// non-extractable token key (hsm/), AesGcmSealer in software for tests that
// need no token. Callers see operations, never keys.
//
// Seal output is self-contained (it carries its own nonce), so Open needs only
// the sealed bytes and the same associated data.
// Implementations are thread-safe.
class Sealer {
 public:
  virtual ~Sealer() = default;

  virtual absl::StatusOr<std::vector<uint8_t>> Seal(
      std::span<const uint8_t> plaintext,
      std::span<const uint8_t> associated_data) const = 0;

  // Fails with a DataLoss status ("authentication failed") when the sealed
  // bytes or the associated data were changed.
  virtual absl::StatusOr<std::vector<uint8_t>> Open(
      std::span<const uint8_t> sealed,
      std::span<const uint8_t> associated_data) const = 0;
};

}  // namespace bkv

#endif  // BKV_CRYPTO_SEALER_H_
