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
  EXPECT_EQ(ClientAddress("ipv6:[::1]:443", nullptr, trusted), "::/64");
  absl::string_view junk = "not-an-address";
  EXPECT_EQ(ClientAddress("ipv4:10.0.0.2:1", &junk, trusted), "10.0.0.2");
  // Port numbers never split one address into many buckets.
  EXPECT_EQ(ClientAddress("ipv4:10.0.0.9:1", nullptr, {}),
            ClientAddress("ipv4:10.0.0.9:2", nullptr, {}));
}

// One subscriber's /64 is one bucket: rotating addresses buys nothing.
TEST(ClientAddressTest, Ipv6IsLimitedByItsSlash64) {
  EXPECT_EQ(ClientAddress("ipv6:[2001:db8:1:2::1]:5", nullptr, {}),
            "2001:db8:1:2::/64");
  EXPECT_EQ(ClientAddress("ipv6:[2001:db8:1:2:ffff:1:2:3]:5", nullptr, {}),
            "2001:db8:1:2::/64");
  EXPECT_NE(ClientAddress("ipv6:[2001:db8:1:3::1]:5", nullptr, {}),
            "2001:db8:1:2::/64");
  EXPECT_EQ(ClientAddress("ipv6:[::ffff:192.0.2.7]:5", nullptr, {}),
            "192.0.2.7");
  absl::string_view xff = "2001:db8:9:9::42";
  EXPECT_EQ(ClientAddress("ipv4:10.0.0.2:1", &xff, {"10.0.0.2"}),
            "2001:db8:9:9::/64");
}

// A proxy reaching a dual-stack listener arrives IPv4-mapped; a link-local
// peer carries a zone id. Neither escapes its match or its /64.
TEST(ClientAddressTest, MappedProxyAndZoneIdsCompareCanonicallyRegression) {
  auto trusted = ParseTrustedProxies("10.0.0.2, ::ffff:10.0.0.3");
  ASSERT_TRUE(trusted.ok()) << trusted.status();
  absl::string_view xff = "198.51.100.4";
  EXPECT_EQ(ClientAddress("ipv6:[::ffff:10.0.0.2]:443", &xff, *trusted),
            "198.51.100.4");
  EXPECT_EQ(ClientAddress("ipv4:10.0.0.3:443", &xff, *trusted), "198.51.100.4");
  EXPECT_EQ(ClientAddress("ipv6:[fe80::1:2%25eth0]:5", nullptr, {}),
            "fe80::/64");
  EXPECT_EQ(ClientAddress("ipv6:[fe80::1:2%eth0]:5", nullptr, {}),
            ClientAddress("ipv6:[fe80::7]:5", nullptr, {}));
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
