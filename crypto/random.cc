#include "crypto/random.h"

#include <sodium.h>

#include <cstdlib>

namespace bkv {
namespace {

class SodiumRandom final : public RandomSource {
 public:
  SodiumRandom() {
    if (sodium_init() < 0) std::abort();
  }
  void Bytes(std::span<uint8_t> out) const override {
    randombytes_buf(out.data(), out.size());
  }
  SecretBytes Scalar() const override {
    SecretBytes s(crypto_core_ristretto255_SCALARBYTES);
    crypto_core_ristretto255_scalar_random(s.RevealMutable().data());
    return s;
  }
};

}  // namespace

const RandomSource& SystemRandom() {
  static const SodiumRandom* const kRandom = new SodiumRandom();
  return *kRandom;
}

}  // namespace bkv
