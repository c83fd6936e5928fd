#include "server/rate_limiter.h"

#include <algorithm>
#include <functional>

namespace bkv::server {

absl::Duration RateLimiter::Acquire(absl::string_view key, absl::Time now) {
  Shard& shard = shards_[std::hash<std::string_view>()(
                             std::string_view(key.data(), key.size())) %
                         kShards];
  absl::MutexLock lock(&shard.mu);
  auto it = shard.buckets.find(key);
  if (it == shard.buckets.end()) {
    if (shard.buckets.size() >= options_.max_keys_per_shard) Evict(shard, now);
    it = shard.buckets.emplace(std::string(key), Bucket{options_.burst, now})
             .first;
  }
  Bucket& b = it->second;
  const double elapsed =
      absl::ToDoubleSeconds(std::max(now - b.updated, absl::ZeroDuration()));
  b.tokens = std::min(options_.burst, b.tokens + elapsed * options_.per_second);
  b.updated = std::max(b.updated, now);
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return absl::ZeroDuration();
  }
  return absl::Seconds((1 - b.tokens) / options_.per_second);
}

void RateLimiter::Evict(Shard& shard, absl::Time now) {
  // A bucket that would be full now carries no state worth keeping.
  absl::erase_if(shard.buckets, [&](const auto& kv) {
    const Bucket& b = kv.second;
    return b.tokens +
               absl::ToDoubleSeconds(now - b.updated) * options_.per_second >=
           options_.burst;
  });
  // Still full: everyone is active; drop the whole shard rather than grow.
  if (shard.buckets.size() >= options_.max_keys_per_shard) {
    shard.buckets.clear();
  }
}

}  // namespace bkv::server
