// The threshold registration descriptor (crypto/threshold_descriptor.h):
// round trip, commitment, and refusal of every malformed or inconsistent
// input.
#include "crypto/threshold_descriptor.h"

#include <gtest/gtest.h>

#include "tests/crypto/threshold_test_support.h"

namespace bkv::threshold {
namespace {

using testing::Deal;
using testing::DealRegistration;
using testing::PublicOf;

Descriptor Valid(int t = 2, int n = 3) {
  return DealRegistration(SystemRandom().Scalar(), t, n).descriptor;
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
  // The epoch and the chain to the previous registration are committed too.
  b = a;
  b.epoch = (uint64_t{1} << 32) + 1;
  auto parsed = Descriptor::Parse(b.Serialize());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->epoch, b.epoch);
  EXPECT_NE(a.Commitment(), b.Commitment());
  b = a;
  b.previous_commitment = a.Commitment();
  EXPECT_NE(a.Commitment(), b.Commitment());
  EXPECT_EQ(Descriptor::Parse(b.Serialize())->previous_commitment,
            a.Commitment());
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
  d = Valid();
  d.realms[2].second_public_share = PublicOf(SystemRandom().Scalar());
  EXPECT_TRUE(refuses(d));  // S_i not on the second polynomial
  d = Valid();
  d.second_public_key = d.public_key;
  EXPECT_TRUE(refuses(d));
  d = Valid();
  d.epoch = 0;
  EXPECT_TRUE(refuses(d));
}

TEST(ThresholdDescriptorTest, OneRealmListedTwiceIsRefused) {
  // The same realm under two ids would hold two of the t shares.
  Descriptor d = Valid();
  d.realms[2].identity_key = d.realms[0].identity_key;
  auto parsed = Descriptor::Parse(d.Serialize());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("same identity key"),
            std::string::npos);
}

TEST(ThresholdDescriptorTest, KsfBelowTheFloorIsRefused) {
  for (Argon2idParams weak :
       {Argon2idParams{1, 8, 1}, Argon2idParams{3, kMinKsf.memory_kib - 1, 1},
        Argon2idParams{0, kMinKsf.memory_kib, 1}}) {
    Descriptor d = Valid();
    d.ksf = weak;
    EXPECT_EQ(Descriptor::Parse(d.Serialize()).status().code(),
              absl::StatusCode::kInvalidArgument)
        << weak.iterations << " " << weak.memory_kib;
  }
  Descriptor d = Valid();
  d.ksf = kMinKsf;
  EXPECT_TRUE(Descriptor::Parse(d.Serialize()).ok());
}

TEST(ThresholdDescriptorTest, ConstantDealingIsRefused) {
  // K_i = K (or S_i = S) at every realm: each realm alone holds the secret.
  Descriptor d = Valid();
  for (auto& realm : d.realms) realm.public_share = d.public_key;
  EXPECT_EQ(Descriptor::Parse(d.Serialize()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  d = Valid();
  for (auto& realm : d.realms) realm.second_public_share = d.second_public_key;
  EXPECT_EQ(Descriptor::Parse(d.Serialize()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// The realm's recovery path (docs/threshold.md, "Recovery reads the sealed
// descriptor"): every check of Parse but the dealing's.
TEST(ThresholdDescriptorTest, ParseSealedSkipsOnlyTheDealingCheck) {
  Descriptor d = Valid();
  auto bytes = d.Serialize();
  auto sealed = Descriptor::ParseSealed(bytes);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(sealed->Serialize(), bytes);
  for (size_t len = 0; len < bytes.size(); ++len) {
    EXPECT_FALSE(Descriptor::ParseSealed(std::span(bytes).first(len)).ok());
  }
  bytes.push_back(0);
  EXPECT_FALSE(Descriptor::ParseSealed(bytes).ok());
  // The policy floors hold for sealed bytes too (rthr finding 5): the t/n
  // rule, G, distinct realms, the KSF floor (memory and passes), epoch >= 1.
  std::vector<Descriptor> layout_faults(8, Valid());
  layout_faults[0].t = 1;
  layout_faults[1].per_realm_limit = 10;
  layout_faults[2].realms[1].realm_id = layout_faults[2].realms[0].realm_id;
  layout_faults[3].ksf.memory_kib = kMinKsf.memory_kib - 1;
  layout_faults[4].realms[0].identity_key = {};
  layout_faults[5].ksf.iterations = 0;
  layout_faults[6].epoch = 0;
  layout_faults[7].realms.pop_back();  // 2-of-2
  for (const Descriptor& bad : layout_faults) {
    EXPECT_FALSE(Descriptor::ParseSealed(bad.Serialize()).ok());
  }
  // Only the dealing is left to the seal (Prepare checked it in full).
  d = Valid();
  d.realms[2].public_share = PublicOf(SystemRandom().Scalar());
  EXPECT_FALSE(Descriptor::Parse(d.Serialize()).ok());
  EXPECT_TRUE(Descriptor::ParseSealed(d.Serialize()).ok());
}

TEST(ThresholdDescriptorTest, MustNameThePinnedRealmSet) {
  Descriptor d = Valid();
  std::vector<RealmConfig> pinned;
  for (const auto& realm : d.realms) {
    pinned.push_back({realm.realm_id, "127.0.0.1:1", realm.identity_key});
  }
  auto set = RealmSet::Create(pinned, 2, 10);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_TRUE(CheckMatchesRealmSet(d, *set).ok());
  auto refused = [&](const Descriptor& other) {
    return CheckMatchesRealmSet(other, *set).code() ==
           absl::StatusCode::kFailedPrecondition;
  };
  Descriptor other = d;
  other.realms[1].identity_key = PublicOf(SystemRandom().Scalar());
  EXPECT_TRUE(refused(other));  // a key replaced
  other = d;
  other.realms[2].realm_id = "realm-x";
  EXPECT_TRUE(refused(other));  // a realm swapped in
  other = d;
  std::swap(other.realms[0], other.realms[1]);
  EXPECT_TRUE(refused(other));  // indices moved
  other = d;
  other.advertised_limit = 20;
  EXPECT_TRUE(refused(other));
  EXPECT_TRUE(refused(Valid(3, 5)));
}

TEST(ThresholdDescriptorTest, SharesAreCheckedAgainstTheirCommitments) {
  testing::Dealing reg = DealRegistration(SystemRandom().Scalar(), 2, 3);
  const Descriptor& d = reg.descriptor;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(CheckShare(d, i, ShareKind::kKey, reg.shares[i].value).ok());
    EXPECT_TRUE(
        CheckShare(d, i, ShareKind::kSecond, reg.second_shares[i].value).ok());
  }
  // A realm releasing another realm's s_i, its k_i in place of s_i, or a
  // random scalar is caught and named.
  auto wrong = CheckShare(d, 0, ShareKind::kSecond, reg.second_shares[1].value);
  EXPECT_EQ(wrong.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(wrong.message().find("realm-1"), std::string::npos);
  EXPECT_FALSE(CheckShare(d, 0, ShareKind::kSecond, reg.shares[0].value).ok());
  EXPECT_FALSE(CheckShare(d, 2, ShareKind::kKey, SystemRandom().Scalar()).ok());
  EXPECT_FALSE(CheckShare(d, 2, ShareKind::kKey, SecretBytes(32)).ok());
  EXPECT_FALSE(CheckShare(d, 3, ShareKind::kKey, reg.shares[0].value).ok());
}

}  // namespace
}  // namespace bkv::threshold
