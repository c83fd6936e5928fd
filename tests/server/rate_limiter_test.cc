#include "server/rate_limiter.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace bkv::server {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

TEST(RateLimiterTest, BurstThenRefill) {
  RateLimiter limiter({3, 1});
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(limiter.Acquire("a", kT0), absl::ZeroDuration());
  }
  absl::Duration wait = limiter.Acquire("a", kT0);
  EXPECT_GT(wait, absl::ZeroDuration());
  EXPECT_LE(wait, absl::Seconds(1));
  // Other keys have their own bucket.
  EXPECT_EQ(limiter.Acquire("b", kT0), absl::ZeroDuration());
  // One second later one token is back.
  EXPECT_EQ(limiter.Acquire("a", kT0 + absl::Seconds(1)), absl::ZeroDuration());
  EXPECT_GT(limiter.Acquire("a", kT0 + absl::Seconds(1)), absl::ZeroDuration());
}

TEST(RateLimiterTest, NeverExceedsBurstAfterIdle) {
  RateLimiter limiter({2, 10});
  EXPECT_EQ(limiter.Acquire("a", kT0), absl::ZeroDuration());
  const absl::Time later = kT0 + absl::Hours(1);
  EXPECT_EQ(limiter.Acquire("a", later), absl::ZeroDuration());
  EXPECT_EQ(limiter.Acquire("a", later), absl::ZeroDuration());
  EXPECT_GT(limiter.Acquire("a", later), absl::ZeroDuration());
}

TEST(RateLimiterTest, MemoryStaysBoundedUnderManyKeys) {
  RateLimiter limiter({1, 1, /*max_keys_per_shard=*/4});
  // 16 shards x 4 keys: far more keys than that still work, and a key that
  // was evicted while full is not worse off than a new one.
  for (int i = 0; i < 10'000; ++i) {
    EXPECT_EQ(limiter.Acquire(absl::StrCat("k", i), kT0 + absl::Seconds(i)),
              absl::ZeroDuration());
  }
}

}  // namespace
}  // namespace bkv::server
