#ifndef BKV_SERVER_RATE_LIMITER_H_
#define BKV_SERVER_RATE_LIMITER_H_

#include <array>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace bkv::server {

// Token buckets keyed by a string (account id, peer address). Checked before
// any crypto or HSM work, so a flood costs the vault almost nothing.
// Thread-safe: keys are sharded over independent locks. Memory is bounded:
// each shard forgets full (idle) buckets once it holds `max_keys_per_shard`.
class RateLimiter {
 public:
  struct Options {
    double burst = 20;      // bucket capacity
    double per_second = 1;  // refill rate
    size_t max_keys_per_shard = 1 << 14;
  };

  explicit RateLimiter(Options options) : options_(options) {}

  // Zero if the call may proceed (and spends one token); otherwise how long
  // until a token is available.
  absl::Duration Acquire(absl::string_view key, absl::Time now);

 private:
  struct Bucket {
    double tokens;
    absl::Time updated;
  };
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, Bucket> buckets ABSL_GUARDED_BY(mu);
  };
  static constexpr size_t kShards = 16;

  void Evict(Shard& shard, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  const Options options_;
  std::array<Shard, kShards> shards_;
};

}  // namespace bkv::server

#endif  // BKV_SERVER_RATE_LIMITER_H_
