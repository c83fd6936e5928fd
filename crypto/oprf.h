#ifndef BKV_CRYPTO_OPRF_H_
#define BKV_CRYPTO_OPRF_H_

#include <cstdint>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"
#include "crypto/hash.h"
#include "crypto/ristretto255.h"
#include "crypto/secret_bytes.h"

// RFC 9497 OPRF, mode 0x00 (base OPRF), suite ristretto255-SHA512 — the OPRF
// underneath OPAQUE (RFC 9807 §5). Stateless functions; thread-safe.
namespace bkv::oprf {

using ristretto255::Element;

// "OPRFV1-" || I2OSP(0x00, 1) || "-" || "ristretto255-SHA512" (RFC 9497 §3.1).
std::span<const uint8_t> ContextString();

// RFC 9497 §3.2.1 DeriveKeyPair(seed, info) -> secret scalar (the public key
// is ScalarMultBase of it when needed).
absl::StatusOr<SecretBytes> DeriveKeyPair(std::span<const uint8_t> seed,
                                          std::span<const uint8_t> info);

// RFC 9497 §3.3.1 Blind with a caller-chosen blind; returns blinded element.
absl::StatusOr<Element> Blind(std::span<const uint8_t> input,
                              const SecretBytes& blind);

// RFC 9497 §3.3.1 BlindEvaluate.
absl::StatusOr<Element> BlindEvaluate(const SecretBytes& sk,
                                      const Element& blinded);

// RFC 9497 §3.3.1 Finalize: the 64-byte OPRF output.
absl::StatusOr<SecretBytes> Finalize(std::span<const uint8_t> input,
                                     const SecretBytes& blind,
                                     const Element& evaluated);

}  // namespace bkv::oprf

#endif  // BKV_CRYPTO_OPRF_H_
