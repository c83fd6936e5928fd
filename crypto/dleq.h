#ifndef BKV_CRYPTO_DLEQ_H_
#define BKV_CRYPTO_DLEQ_H_

#include <array>
#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/random.h"
#include "crypto/ristretto255.h"
#include "crypto/secret_bytes.h"

// The RFC 9497 §2.2 discrete-log-equality proof (VOPRF mode 0x01,
// ristretto255-SHA512), batched form: proves log_G(pk) = log_{C_i}(D_i) for
// every i, i.e. each evaluated D_i = k * C_i under the key whose public key
// is pk, without revealing k.
//
//   proof = c[32] || s[32]      (scalars, little endian)
//
// `binding` extends the composite seed's DST to "Seed-" || contextString ||
// binding, so a proof made under one binding does not verify under another.
// bkv binds a realm's proofs to its realm id and registration version
// (docs/threshold.md, "Proof binding"); an empty binding is RFC 9497 exactly
// (tested against its Appendix A.1.2 VOPRF vectors). Stateless; thread-safe.
namespace bkv::dleq {

using ristretto255::Element;

inline constexpr size_t kProofSize = 64;
using Proof = std::array<uint8_t, kProofSize>;

// "OPRFV1-" || I2OSP(0x01, 1) || "-ristretto255-SHA512" (RFC 9497 §3.1).
std::span<const uint8_t> VoprfContextString();

// GenerateProof(k, G, pk, C, D) with the proof's random scalar r drawn from
// `rng` (RFC 9497 §2.2.1). C and D have the same, non-zero length.
absl::StatusOr<Proof> GenerateProof(const SecretBytes& k, const Element& pk,
                                    std::span<const Element> c,
                                    std::span<const Element> d,
                                    std::span<const uint8_t> binding,
                                    const RandomSource& rng);

// VerifyProof (RFC 9497 §2.2.2): OK, or INVALID_ARGUMENT if the proof is
// malformed or does not verify.
absl::Status VerifyProof(const Element& pk, std::span<const Element> c,
                         std::span<const Element> d,
                         std::span<const uint8_t> binding, const Proof& proof);

}  // namespace bkv::dleq

#endif  // BKV_CRYPTO_DLEQ_H_
