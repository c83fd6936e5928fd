// The realm-set rule and the counting arithmetic (crypto/realm_set.h,
// crypto/threshold_limits.h; docs/threshold.md).
#include "crypto/realm_set.h"

#include <gtest/gtest.h>

#include "crypto/threshold_limits.h"
#include "tests/crypto/threshold_test_support.h"

namespace bkv::threshold {
namespace {

using testing::PublicOf;

std::vector<RealmConfig> Realms(int n) {
  std::vector<RealmConfig> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({"realm-" + std::to_string(i),
                   "127.0.0.1:" + std::to_string(7000 + i),
                   PublicOf(SystemRandom().Scalar())});
  }
  return out;
}

TEST(RealmSetRuleTest, AcceptsExactlyTheDocumentedThresholds) {
  for (int n = 0; n <= kMaxRealms + 1; ++n) {
    for (int t = 0; t <= n + 1; ++t) {
      const bool expected =
          (n == 1 && t == 1) ||
          (n > 1 && n <= kMaxRealms && t >= 2 && t <= n && 2 * t > n);
      EXPECT_EQ(CheckThresholdRule(n, t).ok(), expected) << t << "-of-" << n;
    }
  }
  // The refusal says what to use instead.
  auto s = CheckThresholdRule(4, 2);
  EXPECT_NE(s.message().find("t = 3 to 4"), std::string::npos) << s;
}

TEST(RealmSetTest, CreatesAValidSetWithItsLimits) {
  auto set = RealmSet::Create(Realms(3), 2, 10);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->n(), 3);
  EXPECT_EQ(set->t(), 2);
  EXPECT_EQ(set->limits().per_realm, 5u);
  EXPECT_EQ(*set->IndexOf("realm-2"), 3);
  EXPECT_EQ(set->IndexOf("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(RealmSet::Create(Realms(1), 1, 10).ok());
}

TEST(RealmSetTest, RefusesMalformedSets) {
  EXPECT_FALSE(RealmSet::Create(Realms(3), 1, 10).ok());
  EXPECT_FALSE(RealmSet::Create(Realms(4), 2, 10).ok());
  EXPECT_FALSE(RealmSet::Create(Realms(3), 2, 1).ok());  // G would be 0
  auto dup_id = Realms(3);
  dup_id[2].id = dup_id[0].id;
  EXPECT_FALSE(RealmSet::Create(dup_id, 2, 10).ok());
  auto dup_key = Realms(3);
  dup_key[1].identity_key = dup_key[0].identity_key;
  EXPECT_FALSE(RealmSet::Create(dup_key, 2, 10).ok());
  auto bad_key = Realms(3);
  bad_key[1].identity_key = {};
  EXPECT_FALSE(RealmSet::Create(bad_key, 2, 10).ok());
  auto no_endpoint = Realms(3);
  no_endpoint[0].endpoint.clear();
  EXPECT_FALSE(RealmSet::Create(no_endpoint, 2, 10).ok());
  for (std::string id : {std::string(), std::string(65, 'a'),
                         std::string("a b"), std::string("a\nb")}) {
    auto bad_id = Realms(3);
    bad_id[0].id = id;
    EXPECT_FALSE(RealmSet::Create(bad_id, 2, 10).ok()) << id;
  }
}

TEST(AttemptLimitsTest, TheIssueExample) {
  auto l = ComputeAttemptLimits(10, 3, 2);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->per_realm, 5u);
  EXPECT_EQ(l->outsider, 7u);
  EXPECT_EQ(l->worst_case, 10u);
  auto five = ComputeAttemptLimits(10, 5, 3);
  ASSERT_TRUE(five.ok());
  EXPECT_EQ(five->per_realm, 3u);
  EXPECT_EQ(five->outsider, 5u);
  EXPECT_EQ(five->worst_case, 9u);
  auto one = ComputeAttemptLimits(10, 1, 1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->per_realm, 10u);
  EXPECT_EQ(one->worst_case, 10u);
}

// For every allowed set and limit: with c <= t - 1 corrupted realms the
// guesses floor((n - c) G / (t - c)) never exceed L, the worst case is
// c = t - 1, and G is the largest per-realm limit with that property.
TEST(AttemptLimitsTest, NoCorruptionBelowTBreaksTheLimit) {
  int cases = 0;
  for (int n = 1; n <= kMaxRealms; ++n) {
    for (int t = 1; t <= n; ++t) {
      if (!CheckThresholdRule(n, t).ok()) continue;
      for (uint32_t limit = n - t + 1; limit <= 64; ++limit) {
        auto l = ComputeAttemptLimits(limit, n, t);
        ASSERT_TRUE(l.ok());
        uint64_t worst = 0;
        for (int c = 0; c < t; ++c) {
          worst = std::max<uint64_t>(
              worst, uint64_t(n - c) * l->per_realm / uint64_t(t - c));
        }
        EXPECT_EQ(worst, l->worst_case);
        EXPECT_LE(l->worst_case, limit);
        EXPECT_GT(uint64_t(n - t + 1) * (l->per_realm + 1), limit);
        EXPECT_EQ(l->outsider, uint64_t(n) * l->per_realm / t);
        ++cases;
      }
    }
  }
  EXPECT_GT(cases, 1000);
}

TEST(AttemptLimitsTest, RefusesLimitsBelowOnePerRealm) {
  EXPECT_FALSE(ComputeAttemptLimits(1, 3, 2).ok());
  EXPECT_FALSE(ComputeAttemptLimits(10, 3, 4).ok());
  EXPECT_FALSE(ComputeAttemptLimits(10, 3, 0).ok());
  EXPECT_TRUE(ComputeAttemptLimits(2, 3, 2).ok());
}

TEST(AttemptLimitsTest, RemainingIsTheTthLargest) {
  const uint32_t r[] = {4, 0, 2};
  EXPECT_EQ(RemainingAttempts(r, 2), 2u);
  EXPECT_EQ(RemainingAttempts(r, 1), 4u);
  EXPECT_EQ(RemainingAttempts(r, 3), 0u);
  EXPECT_EQ(RemainingAttempts(std::span(r).first(1), 2), 0u);
}

}  // namespace
}  // namespace bkv::threshold
