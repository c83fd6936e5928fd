// Sealing a registration's secrets to one realm's identity key
// (crypto/seal_to_realm.h).
#include "crypto/seal_to_realm.h"

#include <gtest/gtest.h>

#include "tests/crypto/threshold_test_support.h"

namespace bkv::threshold {
namespace {

using testing::PublicOf;

class SealToRealmTest : public ::testing::Test {
 protected:
  SealToRealmTest()
      : sk_(SystemRandom().Scalar()),
        pk_(PublicOf(sk_)),
        context_(RegistrationContext("alice", {1})),
        payload_(SecretBytes::Random(124)) {}

  std::vector<uint8_t> Seal() {
    auto s = SealToRealm(pk_, context_, payload_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : std::vector<uint8_t>{};
  }

  SecretBytes sk_;
  ristretto255::Element pk_;
  std::vector<uint8_t> context_;
  SecretBytes payload_;
};

TEST_F(SealToRealmTest, TheRealmOpensWhatWasSealedToIt) {
  auto sealed = Seal();
  EXPECT_EQ(sealed.size(), 32 + payload_.size() + 16);
  auto opened = OpenAsRealm(sk_, context_, sealed);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_TRUE(*opened == payload_);
  EXPECT_NE(Seal(), sealed);  // a fresh ephemeral key each time
}

TEST_F(SealToRealmTest, AnotherRealmCannotOpen) {
  auto opened = OpenAsRealm(SystemRandom().Scalar(), context_, Seal());
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(SealToRealmTest, AnotherAccountOrVersionCannotOpen) {
  auto sealed = Seal();
  EXPECT_FALSE(OpenAsRealm(sk_, RegistrationContext("bob", {1}), sealed).ok());
  EXPECT_FALSE(
      OpenAsRealm(sk_, RegistrationContext("alice", {2}), sealed).ok());
  // The length prefix keeps account and version from sliding into each
  // other.
  EXPECT_NE(RegistrationContext("a", {'b'}), RegistrationContext("ab", {}));
}

TEST_F(SealToRealmTest, AnyChangeOrTruncationIsRefused) {
  auto sealed = Seal();
  for (size_t i = 0; i < sealed.size(); i += 9) {
    auto bad = sealed;
    bad[i] ^= 0x04;
    EXPECT_FALSE(OpenAsRealm(sk_, context_, bad).ok()) << i;
  }
  for (size_t len : {size_t{0}, size_t{31}, size_t{47}, sealed.size() - 1}) {
    EXPECT_FALSE(OpenAsRealm(sk_, context_, std::span(sealed).first(len)).ok())
        << len;
  }
}

}  // namespace
}  // namespace bkv::threshold
