// The threshold registration descriptor (crypto/threshold_descriptor.h):
// round trip, commitment, and refusal of every malformed or inconsistent
// input.
#include "crypto/threshold_descriptor.h"

#include <gtest/gtest.h>

#include "tests/crypto/threshold_test_support.h"

namespace bkv::threshold {
namespace {

using testing::Deal;
using testing::PublicOf;

Descriptor Valid(int t = 2, int n = 3) {
  Descriptor d;
  d.version = {7, 7, 7};
  d.t = t;
  d.advertised_limit = 10;
  d.per_realm_limit = 10 / (n - t + 1);
  d.ksf = {1, 1024, 1};
  SecretBytes k = SystemRandom().Scalar();
  d.public_key = PublicOf(k);
  for (const auto& share : Deal(k, t, n)) {
    d.realms.push_back({"realm-" + std::to_string(share.index),
                        PublicOf(SystemRandom().Scalar()),
                        PublicOf(share.value)});
  }
  d.wrapped_hash.fill(0xaa);
  d.commit_hash.fill(0xbb);
  return d;
}

TEST(ThresholdDescriptorTest, RoundTripsAndCommits) {
  for (auto [t, n] : {std::pair{1, 1}, {2, 3}, {3, 5}}) {
    Descriptor d = Valid(t, n);
    auto bytes = d.Serialize();
    auto parsed = Descriptor::Parse(bytes);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->Serialize(), bytes);
    EXPECT_EQ(parsed->Commitment(), d.Commitment());
  }
  Descriptor a = Valid(), b = a;
  b.commit_hash[0] ^= 1;
  EXPECT_NE(a.Commitment(), b.Commitment());
}

TEST(ThresholdDescriptorTest, EveryTruncationAndTrailingByteIsRefused) {
  auto bytes = Valid().Serialize();
  for (size_t len = 0; len < bytes.size(); ++len) {
    EXPECT_FALSE(Descriptor::Parse(std::span(bytes).first(len)).ok()) << len;
  }
  bytes.push_back(0);
  EXPECT_FALSE(Descriptor::Parse(bytes).ok());
}

TEST(ThresholdDescriptorTest, GarbageIsRefused) {
  std::vector<uint8_t> garbage(400);
  for (int round = 0; round < 64; ++round) {
    SystemRandom().Bytes(garbage);
    EXPECT_FALSE(Descriptor::Parse(garbage).ok());
  }
}

TEST(ThresholdDescriptorTest, InconsistentContentIsRefused) {
  auto refuses = [](Descriptor d) {
    return !Descriptor::Parse(d.Serialize()).ok();
  };
  Descriptor d = Valid();
  d.t = 1;  // the realm-set rule
  EXPECT_TRUE(refuses(d));
  d = Valid();
  d.per_realm_limit = 10;  // G raised
  EXPECT_TRUE(refuses(d));
  d = Valid();
  d.realms[2].public_share = PublicOf(SystemRandom().Scalar());
  EXPECT_TRUE(refuses(d));  // not on the polynomial
  d = Valid();
  d.public_key = PublicOf(SystemRandom().Scalar());
  EXPECT_TRUE(refuses(d));
  d = Valid();
  d.realms[1].realm_id = d.realms[0].realm_id;
  EXPECT_TRUE(refuses(d));
  d = Valid();
  d.realms[1].realm_id = "bad id";
  EXPECT_TRUE(refuses(d));
  d = Valid();
  d.ksf.parallelism = 0;
  EXPECT_TRUE(refuses(d));
  d = Valid();
  d.realms[0].identity_key = {};  // identity element
  EXPECT_TRUE(refuses(d));
}

}  // namespace
}  // namespace bkv::threshold
