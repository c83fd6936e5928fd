// Shamir sharing over ristretto255 scalars (crypto/shamir.h).
#include "crypto/shamir.h"

#include <gtest/gtest.h>

#include "tests/crypto/threshold_test_support.h"

namespace bkv::shamir {
namespace {

using testing::Deal;
using testing::ForEachSubset;
using testing::PublicOf;

std::vector<Share> Pick(const std::vector<Share>& all,
                        const std::vector<int>& positions) {
  std::vector<Share> out;
  for (int p : positions) out.push_back({all[p].index, all[p].value.Clone()});
  return out;
}

TEST(ShamirTest, EveryTSubsetRecoversTheSecret) {
  for (auto [t, n] : {std::pair{1, 1}, {2, 3}, {3, 5}, {4, 7}}) {
    SecretBytes secret = SystemRandom().Scalar();
    auto shares = Deal(secret, t, n);
    ASSERT_EQ(shares.size(), static_cast<size_t>(n));
    int subsets = 0;
    ForEachSubset(n, t, [&](const std::vector<int>& s) {
      auto got = Combine(Pick(shares, s));
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_TRUE(*got == secret) << t << "-of-" << n;
      ++subsets;
    });
    EXPECT_GT(subsets, 0);
  }
}

TEST(ShamirTest, TMinusOneSharesDoNotRecover) {
  SecretBytes secret = SystemRandom().Scalar();
  auto shares = Deal(secret, 3, 5);
  ForEachSubset(5, 2, [&](const std::vector<int>& s) {
    auto got = Combine(Pick(shares, s));
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_FALSE(*got == secret);
  });
}

TEST(ShamirTest, AWrongShareGivesAWrongSecret) {
  SecretBytes secret = SystemRandom().Scalar();
  auto shares = Deal(secret, 2, 3);
  auto picked = Pick(shares, {0, 2});
  picked[1].value.RevealMutable()[0] ^= 1;
  auto got = Combine(picked);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(*got == secret);
}

TEST(ShamirTest, DuplicateAndZeroIndicesAreRefused) {
  SecretBytes secret = SystemRandom().Scalar();
  auto shares = Deal(secret, 2, 3);
  auto dup = Pick(shares, {1, 1});
  EXPECT_EQ(Combine(dup).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(Combine(dup).status().message().find("given twice"),
            std::string::npos);
  auto zero = Pick(shares, {0, 1});
  zero[0].index = 0;
  EXPECT_EQ(Combine(zero).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Combine({}).status().code(), absl::StatusCode::kInvalidArgument);
  const uint8_t idx[] = {1, 2};
  EXPECT_FALSE(LagrangeCoefficient(3, idx).ok());
}

TEST(ShamirTest, SplitRefusesBadParameters) {
  SecretBytes secret = SystemRandom().Scalar();
  EXPECT_FALSE(Split(secret, 0, 3, SystemRandom()).ok());
  EXPECT_FALSE(Split(secret, 4, 3, SystemRandom()).ok());
  EXPECT_FALSE(Split(secret, 2, 256, SystemRandom()).ok());
  EXPECT_FALSE(Split(SecretBytes(32), 2, 3, SystemRandom()).ok());  // zero
  SecretBytes big(32);
  std::fill(big.RevealMutable().begin(), big.RevealMutable().end(), 0xff);
  EXPECT_FALSE(Split(big, 2, 3, SystemRandom()).ok());  // not below L
}

TEST(ShamirTest, LagrangeCoefficientsOfTwoOfThree) {
  // Indices {1, 2}: lambda_1 = 2 / (2 - 1) = 2, lambda_2 = 1 / (1 - 2) = -1.
  const uint8_t idx[] = {1, 2};
  auto l1 = LagrangeCoefficient(1, idx);
  auto l2 = LagrangeCoefficient(2, idx);
  ASSERT_TRUE(l1.ok() && l2.ok());
  EXPECT_TRUE(*l1 == ristretto255::SmallScalar(2));
  auto sum = ristretto255::ScalarAdd(*l2, ristretto255::SmallScalar(1));
  ASSERT_TRUE(sum.ok());
  EXPECT_TRUE(*sum == SecretBytes(32));  // lambda_2 + 1 == 0
}

TEST(ShamirTest, CombineInExponentMatchesTheKey) {
  SecretBytes k = SystemRandom().Scalar();
  auto shares = Deal(k, 3, 5);
  ForEachSubset(5, 3, [&](const std::vector<int>& s) {
    std::vector<Point> points;
    for (int p : s)
      points.push_back({shares[p].index, PublicOf(shares[p].value)});
    auto got = CombineInExponent(points);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, PublicOf(k));
  });
}

std::vector<Point> PublicShares(const std::vector<Share>& shares) {
  std::vector<Point> out;
  for (const Share& s : shares) out.push_back({s.index, PublicOf(s.value)});
  return out;
}

TEST(ShamirTest, PublicSharesOfOneDealingAreConsistent) {
  for (auto [t, n] : {std::pair{1, 1}, {2, 3}, {3, 5}}) {
    SecretBytes k = SystemRandom().Scalar();
    auto points = PublicShares(Deal(k, t, n));
    EXPECT_TRUE(CheckPublicShares(PublicOf(k), points, t).ok()) << t << n;
  }
}

TEST(ShamirTest, ForeignOrMismatchedPublicSharesAreRefused) {
  SecretBytes k = SystemRandom().Scalar();
  auto points = PublicShares(Deal(k, 2, 3));
  // A share from another dealing of the same key.
  auto other = PublicShares(Deal(k, 2, 3));
  auto mixed = points;
  mixed[2] = other[2];
  EXPECT_EQ(CheckPublicShares(PublicOf(k), mixed, 2).code(),
            absl::StatusCode::kFailedPrecondition);
  // The right shares under another public key.
  EXPECT_EQ(
      CheckPublicShares(PublicOf(SystemRandom().Scalar()), points, 2).code(),
      absl::StatusCode::kFailedPrecondition);
  // Too few to check, duplicates.
  EXPECT_FALSE(
      CheckPublicShares(PublicOf(k), std::span(points).first(1), 2).ok());
  auto dup = points;
  dup[1].index = dup[0].index;
  EXPECT_FALSE(CheckPublicShares(PublicOf(k), dup, 2).ok());
}

}  // namespace
}  // namespace bkv::shamir
