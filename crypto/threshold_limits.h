#ifndef BKV_CRYPTO_THRESHOLD_LIMITS_H_
#define BKV_CRYPTO_THRESHOLD_LIMITS_H_

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"

// The counting arithmetic of docs/threshold.md ("The arithmetic"): with up to
// t - 1 realms counting nothing, every tested password still needs one
// evaluation from an honest realm, so n - t + 1 honest realms answering at
// most G times each bound the guesses by (n - t + 1) * G <= L.
namespace bkv::threshold {

struct AttemptLimits {
  uint32_t advertised = 0;  // L, what the deployment promises
  uint32_t per_realm = 0;  // G = floor(L / (n - t + 1)); an honest user's tries
  uint32_t worst_case = 0;  // (n - t + 1) * G <= L: t - 1 realms corrupted
  uint32_t outsider = 0;    // floor(n * G / t): no realm corrupted
};

// Needs 1 <= t <= n and L >= n - t + 1 (so that G >= 1); the policy on n and
// t (t >= 2, 2t > n) is the realm-set rule's, not this function's.
absl::StatusOr<AttemptLimits> ComputeAttemptLimits(uint32_t advertised, int n,
                                                   int t);

// What the client shows the user: the t-th largest attempts_remaining among
// the realms of the agreed registration (0 when fewer than t answered).
uint32_t RemainingAttempts(std::span<const uint32_t> remaining_per_realm,
                           int t);

}  // namespace bkv::threshold

#endif  // BKV_CRYPTO_THRESHOLD_LIMITS_H_
