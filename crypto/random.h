#ifndef BKV_CRYPTO_RANDOM_H_
#define BKV_CRYPTO_RANDOM_H_

#include <cstdint>
#include <span>

#include "crypto/secret_bytes.h"

namespace bkv {

// Where protocol code draws its randomness. The system source is the only
// one used outside tests; tests substitute a scripted source to replay the
// RFC vectors, which fix every nonce, seed and blind.
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  virtual void Bytes(std::span<uint8_t> out) const = 0;
  // A uniformly random non-zero ristretto255 scalar (32 bytes).
  virtual SecretBytes Scalar() const = 0;
};

// libsodium's CSPRNG (getrandom). Thread-safe.
const RandomSource& SystemRandom();

}  // namespace bkv

#endif  // BKV_CRYPTO_RANDOM_H_
