// OPAQUE per realm over one threshold OPRF (docs/threshold.md, "OPAQUE per
// realm, one OPRF"), in process: a 2-of-3 registration with a dealt key, then
// logins through every pair of realms, each an RFC 9807 server with its own
// AKE key evaluating only its share.
#include <gtest/gtest.h>

#include "crypto/hash.h"
#include "crypto/opaque.h"
#include "crypto/threshold_oprf.h"
#include "tests/crypto/test_support.h"
#include "tests/crypto/threshold_test_support.h"

namespace bkv::opaque {
namespace {

using ristretto255::Element;
using testing::Deal;
using testing::ForEachSubset;
using testing::IdentityKsf;

class ThresholdOpaqueTest : public ::testing::Test {
 protected:
  static constexpr int kN = 3, kT = 2;

  ThresholdOpaqueTest()
      : seed_(SecretBytes::Random(64)), client_(Config{}, ksf_) {
    std::vector<Element> pks;
    for (int i = 0; i < kN; ++i) {
      keys_.push_back(ServerKeyPair::Generate());
    }
    for (int i = 0; i < kN; ++i) {
      servers_.emplace_back(Config{}, seed_, keys_[i]);
      pks.push_back(keys_[i].public_key);
    }
    SecretBytes k = SystemRandom().Scalar();
    auto reg =
        client_.RegisterWithKey(SecretBytes::Copy("correct horse"), k, pks);
    EXPECT_TRUE(reg.ok()) << reg.status();
    records_ = reg->records;
    export_key_ = std::move(reg->export_key);
    shares_ = Deal(k, kT, kN);
  }

  struct Round {
    ThresholdLoginStart start;
    std::vector<ServerLoginStart> answers;
  };

  Round Start(const std::string& password) {
    auto start = client_.GenerateThresholdKE1(SecretBytes::Copy(password), kN);
    EXPECT_TRUE(start.ok()) << start.status();
    Round r{std::move(*start), {}};
    for (int i = 0; i < kN; ++i) {
      EXPECT_EQ(r.start.ke1s[i].blinded_message,
                r.start.ke1s[0].blinded_message);
      auto a = servers_[i].GenerateKE2WithOprfKey(records_[i], shares_[i].value,
                                                  r.start.ke1s[i]);
      EXPECT_TRUE(a.ok()) << a.status();
      r.answers.push_back(std::move(*a));
    }
    return r;
  }

  absl::StatusOr<SecretBytes> Rwd(const Round& r, const std::vector<int>& s) {
    std::vector<threshold::PartialEvaluation> picked;
    for (int i : s) {
      picked.push_back({shares_[i].index, r.answers[i].ke2.evaluated_message});
    }
    auto z = threshold::Combine(picked, kT);
    if (!z.ok()) return z.status();
    return client_.ThresholdRandomizedPassword(r.start.state, *z);
  }

  absl::StatusOr<ClientLoginFinish> Finish(const Round& r, int realm,
                                           const SecretBytes& rwd,
                                           std::span<const uint8_t> ke2) {
    return client_.FinishThresholdLogin(r.start.state, realm, rwd,
                                        keys_[realm].public_key, ke2);
  }

  IdentityKsf ksf_;
  HmacSha512KeyedHash seed_;
  OpaqueClient client_;
  std::vector<ServerKeyPair> keys_;
  std::vector<OpaqueServer> servers_;
  std::vector<RegistrationRecord> records_;
  SecretBytes export_key_;
  std::vector<shamir::Share> shares_;
};

TEST_F(ThresholdOpaqueTest, EveryPairOfRealmsRecovers) {
  int logins = 0;
  ForEachSubset(kN, kT, [&](const std::vector<int>& subset) {
    Round r = Start("correct horse");
    auto rwd = Rwd(r, subset);
    ASSERT_TRUE(rwd.ok()) << rwd.status();
    for (int i : subset) {
      auto ke2 = r.answers[i].ke2.Serialize();
      auto done = Finish(r, i, *rwd, ke2);
      ASSERT_TRUE(done.ok()) << done.status();
      EXPECT_TRUE(done->export_key == export_key_);  // one key for all realms
      auto session =
          servers_[i].ServerFinish(std::move(r.answers[i].state), done->ke3);
      ASSERT_TRUE(session.ok()) << session.status();
      EXPECT_TRUE(*session == done->session_key);
      ++logins;
    }
  });
  EXPECT_EQ(logins, 6);
}

TEST_F(ThresholdOpaqueTest, AWrongPasswordFailsAtEveryRealm) {
  Round r = Start("wrong horse");
  auto rwd = Rwd(r, {0, 1});
  ASSERT_TRUE(rwd.ok());
  for (int i = 0; i < kN; ++i) {
    auto ke2 = r.answers[i].ke2.Serialize();
    EXPECT_TRUE(IsInvalidLogin(Finish(r, i, *rwd, ke2).status())) << i;
  }
}

TEST_F(ThresholdOpaqueTest, OneRealmsBadKe2FailsOnlyThatRealm) {
  Round r = Start("correct horse");
  auto rwd = Rwd(r, {0, 1});
  ASSERT_TRUE(rwd.ok());
  auto bad = r.answers[2].ke2.Serialize();
  bad[300] ^= 1;  // server_mac
  EXPECT_TRUE(IsInvalidLogin(Finish(r, 2, *rwd, bad).status()));
  for (int i : {0, 1}) {
    auto ke2 = r.answers[i].ke2.Serialize();
    EXPECT_TRUE(Finish(r, i, *rwd, ke2).ok()) << i;
  }
}

TEST_F(ThresholdOpaqueTest, EnvelopeIsPinnedToItsRealm) {
  Round r = Start("correct horse");
  auto rwd = Rwd(r, {0, 1});
  ASSERT_TRUE(rwd.ok());
  auto ke2 = r.answers[0].ke2.Serialize();
  auto other = client_.FinishThresholdLogin(r.start.state, 0, *rwd,
                                            keys_[1].public_key, ke2);
  EXPECT_TRUE(IsInvalidLogin(other.status()));
  EXPECT_FALSE(Finish(r, 7, *rwd, ke2).ok());  // no KE1 for realm 7
}

TEST(ThresholdOpaqueSingleRealmTest, OneRealmIsPlainRfc9807) {
  // n = 1: a standard RFC 9807 login (GenerateKE1 / GenerateKE3) works
  // against a record registered with a dealt key.
  IdentityKsf ksf;
  HmacSha512KeyedHash seed(SecretBytes::Random(64));
  ServerKeyPair keys = ServerKeyPair::Generate();
  OpaqueServer server(Config{}, seed, keys);
  OpaqueClient client(Config{}, ksf, keys.public_key);
  SecretBytes k = SystemRandom().Scalar();
  auto reg =
      client.RegisterWithKey(SecretBytes::Copy("pw"), k, {&keys.public_key, 1});
  ASSERT_TRUE(reg.ok()) << reg.status();
  auto start = client.GenerateKE1(SecretBytes::Copy("pw"));
  ASSERT_TRUE(start.ok());
  auto ke2 = server.GenerateKE2WithOprfKey(reg->records[0], k, start->ke1);
  ASSERT_TRUE(ke2.ok());
  auto done = client.GenerateKE3(std::move(start->state), ke2->ke2.Serialize());
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(done->export_key == reg->export_key);
  EXPECT_TRUE(server.ServerFinish(std::move(ke2->state), done->ke3).ok());
}

}  // namespace
}  // namespace bkv::opaque
