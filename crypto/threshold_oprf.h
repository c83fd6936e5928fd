#ifndef BKV_CRYPTO_THRESHOLD_OPRF_H_
#define BKV_CRYPTO_THRESHOLD_OPRF_H_

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/dleq.h"
#include "crypto/random.h"
#include "crypto/ristretto255.h"
#include "crypto/shamir.h"

// The threshold OPRF of docs/threshold.md: a realm evaluates its key share on
// the client's blinded element and proves it (RFC 9497 DLEQ, bound to the
// realm id and registration version); the client verifies each answer
// against the realm's registered public share and combines t of them into
// the single-key RFC 9497 evaluation k * B. Stateless; thread-safe.
namespace bkv::threshold {

using ristretto255::Element;

inline constexpr size_t kVersionSize = 16;
using RegistrationVersion = std::array<uint8_t, kVersionSize>;

// "/bkv-realm-proof/v1" || I2OSP(len(realm_id), 1) || realm_id || version.
// realm_id must pass CheckRealmId (crypto/realm_set.h).
absl::StatusOr<std::vector<uint8_t>> ProofBinding(
    std::string_view realm_id, const RegistrationVersion& version);

// One realm's answer.
struct PartialEvaluation {
  uint8_t index = 0;    // the realm's Shamir index
  Element evaluated{};  // k_i * B
  dleq::Proof proof{};
};

// Realm side: k_i * B and its proof against public_share = k_i * G.
absl::StatusOr<PartialEvaluation> EvaluateShare(
    const shamir::Share& share, const Element& public_share,
    const Element& blinded, std::span<const uint8_t> binding,
    const RandomSource& rng);

// Client side: the answer's proof verifies against the realm's registered
// public share and binding. INVALID_ARGUMENT otherwise.
absl::Status VerifyPartial(const Element& public_share, const Element& blinded,
                           std::span<const uint8_t> binding,
                           const PartialEvaluation& answer);

// k * B from exactly t verified answers with distinct indices. Refuses any
// other count: fewer than t would combine into a wrong element that reads
// as a wrong password, which must never happen.
absl::StatusOr<Element> Combine(std::span<const PartialEvaluation> answers,
                                int t);

}  // namespace bkv::threshold

#endif  // BKV_CRYPTO_THRESHOLD_OPRF_H_
