#ifndef BKV_SERVER_RATE_LIMITER_H_
#define BKV_SERVER_RATE_LIMITER_H_

#include <array>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace bkv::server {

// A monotonic "now" for rate limits and log sampling: wall-clock steps
// (NTP, an operator's `date -s`) must neither refill nor freeze a bucket.
// Only differences between two values mean anything.
absl::Time MonotonicNow();

// Token buckets keyed by a string (account id, peer address). Checked before
// any crypto or HSM work, so a flood costs the vault almost nothing.
// Thread-safe: keys are sharded over independent locks. Memory is bounded:
// a shard holding `max_keys_per_shard` forgets buckets that have refilled
// completely (they carry no state). It never forgets a drained bucket: if
// every bucket of the shard is still refilling, a new key is refused until
// one is full again (fail closed: forgetting would hand out a new burst).
class RateLimiter {
 public:
  struct Options {
    double burst = 20;      // bucket capacity
    double per_second = 1;  // refill rate
    size_t max_keys_per_shard = 1 << 14;
  };

  explicit RateLimiter(Options options) : options_(options) {}

  // Zero if the call may proceed (and spends one token); otherwise how long
  // until a token is available. `now` comes from MonotonicNow() (or a test
  // clock); it must not go backwards by more than noise.
  absl::Duration Acquire(absl::string_view key, absl::Time now);

  size_t size_for_testing();

 private:
  struct Bucket {
    double tokens;
    absl::Time updated;
  };
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, Bucket> buckets ABSL_GUARDED_BY(mu);
    // No bucket of this shard is full before then: skip eviction scans.
    absl::Time next_full ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  };
  static constexpr size_t kShards = 16;

  absl::Time FullAt(const Bucket& b) const;
  void Evict(Shard& shard, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  const Options options_;
  std::array<Shard, kShards> shards_;
};

// The address a call is rate-limited by. `peer` is gRPC's peer string
// ("ipv4:10.0.0.7:5555", "ipv6:[::1]:5555"); the port is dropped. When the
// peer is one of `trusted_proxies` (plain addresses, "10.0.0.2" or "::1")
// and the call carries `x-forwarded-for`, the last address of that header
// is the client's: the one our proxy appended, which a client cannot forge.
// Anyone else's x-forwarded-for is ignored. Addresses compare canonically
// (IPv4-mapped as IPv4, zone ids dropped). IPv6 addresses are limited by
// their /64 ("2001:db8:1:2::/64"), IPv4-mapped ones as IPv4.
std::string ClientAddress(absl::string_view peer,
                          const absl::string_view* forwarded_for,
                          const absl::flat_hash_set<std::string>& trusted);

// "10.0.0.1, ::1" -> {"10.0.0.1", "::1"}; an error names a bad entry.
absl::StatusOr<absl::flat_hash_set<std::string>> ParseTrustedProxies(
    absl::string_view list);

}  // namespace bkv::server

#endif  // BKV_SERVER_RATE_LIMITER_H_
