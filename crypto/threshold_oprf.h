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

struct Descriptor;  // crypto/threshold_descriptor.h

// One realm's answer, as it arrives. It carries no index: which share it is
// follows from which realm answered, never from the answer itself.
struct PartialEvaluation {
  Element evaluated{};  // k_i * B
  dleq::Proof proof{};
};

// An answer whose proof verified against one descriptor entry; its index is
// that entry's position + 1. Only VerifyPartial makes one, so Combine cannot
// be handed an unverified or mislabelled point.
class VerifiedPartial {
 public:
  uint8_t index() const { return point_.index; }
  const Element& evaluated() const { return point_.value; }

 private:
  friend absl::StatusOr<VerifiedPartial> VerifyPartial(
      const Descriptor&, size_t, const Element&, const PartialEvaluation&);
  explicit VerifiedPartial(shamir::Point p) : point_(p) {}
  shamir::Point point_;
};

// Realm side: k_i * B and its proof against public_share = k_i * G.
absl::StatusOr<PartialEvaluation> EvaluateShare(
    const shamir::Share& share, const Element& public_share,
    const Element& blinded, std::span<const uint8_t> binding,
    const RandomSource& rng);

// Client side: the answer of the realm at `position` (0-based) in the agreed
// descriptor; its proof must verify against that entry's public share K_i
// under the binding of that entry's realm id and the descriptor's version.
// INVALID_ARGUMENT otherwise (the caller reports that realm's fault).
absl::StatusOr<VerifiedPartial> VerifyPartial(const Descriptor& descriptor,
                                              size_t position,
                                              const Element& blinded,
                                              const PartialEvaluation& answer);

// k * B from exactly t verified answers with distinct indices. Refuses any
// other count: fewer than t would combine into a wrong element that reads
// as a wrong password, which must never happen.
absl::StatusOr<Element> Combine(std::span<const VerifiedPartial> answers,
                                int t);

}  // namespace bkv::threshold

#endif  // BKV_CRYPTO_THRESHOLD_OPRF_H_
