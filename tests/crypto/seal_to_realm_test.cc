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
        reg_(testing::DealRegistration(SystemRandom().Scalar(), 2, 3)),
        record_(192, 0x5a),
        context_(PrepareContext("alice", reg_.descriptor, {1}, record_)),
        payload_(SecretBytes::Random(124)) {}

  std::vector<uint8_t> Seal() {
    auto s = SealToRealm(pk_, context_, payload_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : std::vector<uint8_t>{};
  }

  SecretBytes sk_;
  ristretto255::Element pk_;
  testing::Dealing reg_;
  std::vector<uint8_t> record_;
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

TEST_F(SealToRealmTest, AnotherContextCannotOpen) {
  // Another account, another ticket (a replayed Prepare), another
  // descriptor (version, commit hash) or another record: each is refused.
  auto sealed = Seal();
  auto opens = [&](const std::vector<uint8_t>& context) {
    return OpenAsRealm(sk_, context, sealed).ok();
  };
  EXPECT_FALSE(opens(PrepareContext("bob", reg_.descriptor, {1}, record_)));
  EXPECT_FALSE(opens(PrepareContext("alice", reg_.descriptor, {2}, record_)));
  Descriptor other = reg_.descriptor;
  other.version[0] ^= 1;
  EXPECT_FALSE(opens(PrepareContext("alice", other, {1}, record_)));
  other = reg_.descriptor;
  other.commit_hash[0] ^= 1;
  EXPECT_FALSE(opens(PrepareContext("alice", other, {1}, record_)));
  auto record = record_;
  record[100] ^= 1;
  EXPECT_FALSE(opens(PrepareContext("alice", reg_.descriptor, {1}, record)));
  EXPECT_TRUE(opens(PrepareContext("alice", reg_.descriptor, {1}, record_)));
  // The length prefix keeps the account from sliding into what follows.
  EXPECT_NE(PrepareContext("a", reg_.descriptor, {1}, record_),
            PrepareContext("a\x07", reg_.descriptor, {1}, record_));
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
