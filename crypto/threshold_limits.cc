#include "crypto/threshold_limits.h"

#include <algorithm>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace bkv::threshold {

absl::StatusOr<AttemptLimits> ComputeAttemptLimits(uint32_t advertised, int n,
                                                   int t) {
  if (t < 1 || t > n || n > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat("threshold ", t, " of ", n, " realms: need 1 <= t <= n"));
  }
  const uint64_t honest_needed = static_cast<uint64_t>(n - t + 1);
  if (advertised < honest_needed) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attempt limit ", advertised, " is below n - t + 1 = ", honest_needed,
        ": each realm would allow 0 attempts; raise the limit to at least ",
        honest_needed));
  }
  AttemptLimits out;
  out.advertised = advertised;
  out.per_realm = static_cast<uint32_t>(advertised / honest_needed);
  out.worst_case = static_cast<uint32_t>(honest_needed * out.per_realm);
  out.outsider = static_cast<uint32_t>(
      static_cast<uint64_t>(n) * out.per_realm / static_cast<uint64_t>(t));
  return out;
}

uint32_t RemainingAttempts(std::span<const uint32_t> remaining_per_realm,
                           int t) {
  if (t < 1 || remaining_per_realm.size() < static_cast<size_t>(t)) return 0;
  std::vector<uint32_t> sorted(remaining_per_realm.begin(),
                               remaining_per_realm.end());
  std::nth_element(sorted.begin(), sorted.begin() + (t - 1), sorted.end(),
                   std::greater<>());
  return sorted[t - 1];
}

}  // namespace bkv::threshold
