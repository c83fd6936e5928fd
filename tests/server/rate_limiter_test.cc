#include "server/rate_limiter.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "server/vault_service.h"

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

// A full shard used to drop every bucket, handing drained keys (an attacker
// mid-throttle) a fresh burst. Now it forgets only full buckets and
// refuses new keys while none is full.
TEST(RateLimiterTest, FullShardNeverRefillsADrainedBucketRegression) {
  RateLimiter limiter({2, 0.001, /*max_keys_per_shard=*/2});
  ASSERT_EQ(limiter.Acquire("victim", kT0), absl::ZeroDuration());
  ASSERT_EQ(limiter.Acquire("victim", kT0), absl::ZeroDuration());
  ASSERT_GT(limiter.Acquire("victim", kT0), absl::ZeroDuration());
  // Many new keys, each drained at once: every shard fills up.
  int refused = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string key = absl::StrCat("flood", i);
    for (int j = 0; j < 3; ++j) {
      if (limiter.Acquire(key, kT0 + absl::Milliseconds(i)) >
          absl::ZeroDuration()) {
        ++refused;
      }
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_LE(limiter.size_for_testing(), 16u * 2);
  // The drained key is still drained.
  EXPECT_GT(limiter.Acquire("victim", kT0 + absl::Seconds(1)),
            absl::ZeroDuration());
}

TEST(RateLimiterTest, FullBucketsAreForgottenToMakeRoom) {
  RateLimiter limiter({1, 10, /*max_keys_per_shard=*/1});
  for (int i = 0; i < 200; ++i) {
    // Each earlier bucket is full again 100 ms after its call.
    EXPECT_EQ(limiter.Acquire(absl::StrCat("k", i),
                              kT0 + absl::Milliseconds(200 * i)),
              absl::ZeroDuration());
  }
  EXPECT_LE(limiter.size_for_testing(), 16u);
}

TEST(ClientAddressTest, ForwardedForOnlyFromTrustedProxies) {
  absl::flat_hash_set<std::string> trusted = {"10.0.0.2", "::1"};
  absl::string_view xff = "203.0.113.7, 198.51.100.4";
  EXPECT_EQ(ClientAddress("ipv4:10.0.0.9:5555", nullptr, trusted), "10.0.0.9");
  EXPECT_EQ(ClientAddress("ipv4:10.0.0.9:5555", &xff, trusted), "10.0.0.9");
  EXPECT_EQ(ClientAddress("ipv4:10.0.0.2:5555", &xff, trusted), "198.51.100.4");
  EXPECT_EQ(ClientAddress("ipv6:[::1]:443", &xff, trusted), "198.51.100.4");
  EXPECT_EQ(ClientAddress("ipv6:[::1]:443", nullptr, trusted), "::1");
  absl::string_view junk = "not-an-address";
  EXPECT_EQ(ClientAddress("ipv4:10.0.0.2:1", &junk, trusted), "10.0.0.2");
  // Port numbers never split one address into many buckets.
  EXPECT_EQ(ClientAddress("ipv4:10.0.0.9:1", nullptr, {}),
            ClientAddress("ipv4:10.0.0.9:2", nullptr, {}));
}

TEST(ClientAddressTest, TrustedProxyListIsValidated) {
  auto ok = ParseTrustedProxies(" 10.0.0.2, ::1 ,");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->size(), 2u);
  auto bad = ParseTrustedProxies("10.0.0.2, proxy.example");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("proxy.example"), std::string::npos);
}

TEST(VaultServicePolicyTest, ReadsAndGuessesHaveTheirOwnBudgets) {
  EXPECT_EQ(BudgetOf("GetStatus"), Budget::kRead);
  EXPECT_EQ(BudgetOf("GetVaultInfo"), Budget::kRead);
  EXPECT_EQ(BudgetOf("RecoverStart"), Budget::kGuess);
  for (const char* m : {"RegisterStart", "RegisterFinish", "RegisterCommit",
                        "RecoverFinish", "Delete", "RequestReset"}) {
    EXPECT_EQ(BudgetOf(m), Budget::kCall) << m;
  }
}

TEST(VaultServicePolicyTest, AdvertisedWaitIsNeverShorterAndJittered) {
  const absl::Duration wait = absl::Milliseconds(800);
  EXPECT_GE(AdvertisedWaitMs(wait, 0.0), 800u);
  EXPECT_LE(AdvertisedWaitMs(wait, 0.999), 800u + 1 + 200);
  EXPECT_GT(AdvertisedWaitMs(wait, 0.999), AdvertisedWaitMs(wait, 0.0));
  // Short waits still spread over at least 50 ms.
  EXPECT_GE(AdvertisedWaitMs(absl::Milliseconds(3), 0.99), 3u + 1 + 40);
}

}  // namespace
}  // namespace bkv::server
