#ifndef BKV_CRYPTO_REALM_SET_H_
#define BKV_CRYPTO_REALM_SET_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/ristretto255.h"
#include "crypto/threshold_limits.h"

// A client's realm set (docs/threshold.md, "Terms"): n independent vaults,
// any t of which recover, and the advertised attempt limit L. Immutable once
// created; thread-safe.
namespace bkv::threshold {

inline constexpr int kMaxRealms = 16;
inline constexpr size_t kMaxRealmIdSize = 64;

struct RealmConfig {
  std::string id;        // 1..64 printable ASCII bytes, unique in the set
  std::string endpoint;  // gRPC target
  ristretto255::Element identity_key{};  // the realm's pinned AKE public key
};

// The rule, in one place: 1 <= n <= 16; n = 1 needs t = 1; n > 1 needs
// t >= 2 and 2t > n (any two groups of t realms overlap, so at most one
// registration version can be held by t realms). Realms check descriptors
// with it too.
absl::Status CheckThresholdRule(int n, int t);

// A realm id: 1..64 printable ASCII bytes without spaces.
absl::Status CheckRealmId(std::string_view id);

class RealmSet {
 public:
  // Refuses a set that breaks CheckThresholdRule, duplicate or malformed
  // realm ids, empty endpoints, invalid or repeated identity keys, and a
  // limit below n - t + 1; the message says what to change.
  static absl::StatusOr<RealmSet> Create(std::vector<RealmConfig> realms, int t,
                                         uint32_t attempt_limit);

  int n() const { return static_cast<int>(realms_.size()); }
  int t() const { return t_; }
  const AttemptLimits& limits() const { return limits_; }
  std::span<const RealmConfig> realms() const { return realms_; }

  // The realm's Shamir index: its 1-based position. NOT_FOUND otherwise.
  absl::StatusOr<uint8_t> IndexOf(std::string_view realm_id) const;

 private:
  RealmSet(std::vector<RealmConfig> realms, int t, AttemptLimits limits)
      : realms_(std::move(realms)), t_(t), limits_(limits) {}

  std::vector<RealmConfig> realms_;
  int t_;
  AttemptLimits limits_;
};

}  // namespace bkv::threshold

#endif  // BKV_CRYPTO_REALM_SET_H_
