#include "crypto/opaque.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include "crypto/hash.h"
#include "crypto/hex.h"
#include "crypto/ksf.h"
#include "tests/crypto/test_support.h"

namespace bkv::opaque {
namespace {

using testing::IdentityKsf;

std::vector<uint8_t> Id(std::string_view s) { return {s.begin(), s.end()}; }
SecretBytes Pw(std::string_view s) { return SecretBytes::Copy(s); }

// A small Argon2id so the many round trips stay quick; one test below uses
// the production defaults.
const Argon2idKsf& SmallArgon2() {
  static const Argon2idKsf* ksf =
      new Argon2idKsf(*Argon2idKsf::Create({1, 1024, 2}));
  return *ksf;
}

class OpaqueTest : public ::testing::Test {
 protected:
  OpaqueTest()
      : oprf_seed_(SecretBytes::Random(64)),
        keys_(ServerKeyPair::Generate()),
        server_(config_, oprf_seed_, keys_) {}

  // Registers `password` for `id` with `ksf`; returns the record.
  RegistrationRecord Register(const Ksf& ksf, std::string_view id,
                              std::string_view password,
                              SecretBytes* export_key = nullptr) {
    OpaqueClient client(config_, ksf, keys_.public_key);
    auto start = client.CreateRegistrationRequest(Pw(password));
    EXPECT_TRUE(start.ok()) << start.status();
    auto response = server_.CreateRegistrationResponse(start->request, Id(id));
    EXPECT_TRUE(response.ok()) << response.status();
    auto finish =
        client.FinalizeRegistrationRequest(std::move(start->state), *response);
    EXPECT_TRUE(finish.ok()) << finish.status();
    if (export_key) *export_key = std::move(finish->export_key);
    return finish->record;
  }

  Config config_;
  HmacSha512KeyedHash oprf_seed_;
  ServerKeyPair keys_;
  OpaqueServer server_;
};

TEST_F(OpaqueTest, RoundTripWithArgon2idAgreesOnKeys) {
  SecretBytes reg_export;
  auto record = Register(SmallArgon2(), "acct-1", "correct horse", &reg_export);
  OpaqueClient client(config_, SmallArgon2(), keys_.public_key);
  auto ke1 = client.GenerateKE1(Pw("correct horse"));
  ASSERT_TRUE(ke1.ok());
  auto ke2 = server_.GenerateKE2(record, Id("acct-1"), ke1->ke1);
  ASSERT_TRUE(ke2.ok());
  auto ke3 = client.GenerateKE3(std::move(ke1->state), ke2->ke2.Serialize());
  ASSERT_TRUE(ke3.ok()) << ke3.status();
  auto session = server_.ServerFinish(std::move(ke2->state), ke3->ke3);
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_TRUE(*session == ke3->session_key);
  EXPECT_EQ(session->size(), 64u);
  EXPECT_TRUE(reg_export == ke3->export_key);
  EXPECT_EQ(ke3->server_public_key, keys_.public_key);
}

TEST_F(OpaqueTest, RoundTripWithDefaultArgon2idParameters) {
  Argon2idParams defaults;
  EXPECT_EQ(defaults.iterations, 3u);
  EXPECT_EQ(defaults.memory_kib, 65536u);
  EXPECT_EQ(defaults.parallelism, 4u);
  auto ksf = Argon2idKsf::Create(defaults);
  ASSERT_TRUE(ksf.ok());
  auto record = Register(*ksf, "acct-d", "pw");
  OpaqueClient client(config_, *ksf, keys_.public_key);
  auto ke1 = client.GenerateKE1(Pw("pw"));
  ASSERT_TRUE(ke1.ok());
  auto ke2 = server_.GenerateKE2(record, Id("acct-d"), ke1->ke1);
  ASSERT_TRUE(ke2.ok());
  auto ke3 = client.GenerateKE3(std::move(ke1->state), ke2->ke2.Serialize());
  ASSERT_TRUE(ke3.ok()) << ke3.status();
  EXPECT_TRUE(server_.ServerFinish(std::move(ke2->state), ke3->ke3).ok());
}

TEST(Argon2idKsfTest, MatchesLibsodiumForOneLane) {
  // An independent implementation of the same function: libsodium's
  // crypto_pwhash is Argon2id v1.3 with p = 1.
  ASSERT_GE(sodium_init(), 0);
  auto ksf = Argon2idKsf::Create({2, 4096, 1});
  ASSERT_TRUE(ksf.ok());
  SecretBytes msg = SecretBytes::Copy(std::string_view("oprf output bytes"));
  auto ours = ksf->Stretch(msg);
  ASSERT_TRUE(ours.ok());
  uint8_t theirs[64];
  uint8_t salt[crypto_pwhash_SALTBYTES] = {};
  ASSERT_EQ(crypto_pwhash(theirs, sizeof theirs, msg.RevealAsString().data(),
                          msg.size(), salt, 2, 4096 * 1024,
                          crypto_pwhash_ALG_ARGON2ID13),
            0);
  EXPECT_EQ(HexEncode(ours->Reveal()), HexEncode(theirs));
}

TEST(Argon2idKsfTest, RejectsUnusableParameters) {
  EXPECT_FALSE(Argon2idKsf::Create({0, 65536, 4}).ok());
  EXPECT_FALSE(Argon2idKsf::Create({3, 16, 4}).ok());
  EXPECT_FALSE(Argon2idKsf::Create({3, 65536, 0}).ok());
  EXPECT_FALSE(Argon2idKsf::Create({3, (4u << 20) + 1, 4}).ok());
  EXPECT_TRUE(Argon2idKsf::Create({3, 65536, 4}).ok());
}

TEST_F(OpaqueTest, WrongPasswordIsInvalidLogin) {
  IdentityKsf ksf;
  auto record = Register(ksf, "acct-2", "right");
  OpaqueClient client(config_, ksf, keys_.public_key);
  auto ke1 = client.GenerateKE1(Pw("wrong"));
  ASSERT_TRUE(ke1.ok());
  auto ke2 = server_.GenerateKE2(record, Id("acct-2"), ke1->ke1);
  ASSERT_TRUE(ke2.ok());
  auto ke3 = client.GenerateKE3(std::move(ke1->state), ke2->ke2.Serialize());
  EXPECT_TRUE(IsInvalidLogin(ke3.status())) << ke3.status();
}

TEST_F(OpaqueTest, WrongCredentialIdentifierIsInvalidLogin) {
  IdentityKsf ksf;
  auto record = Register(ksf, "acct-3", "pw");
  OpaqueClient client(config_, ksf, keys_.public_key);
  auto ke1 = client.GenerateKE1(Pw("pw"));
  ASSERT_TRUE(ke1.ok());
  // Another account's OPRF key: the password no longer opens the envelope.
  auto ke2 = server_.GenerateKE2(record, Id("acct-4"), ke1->ke1);
  ASSERT_TRUE(ke2.ok());
  EXPECT_TRUE(IsInvalidLogin(
      client.GenerateKE3(std::move(ke1->state), ke2->ke2.Serialize())
          .status()));
}

TEST_F(OpaqueTest, TamperedKe2AtEveryPositionIsInvalidLogin) {
  IdentityKsf ksf;
  auto record = Register(ksf, "acct-5", "pw");
  OpaqueClient client(config_, ksf, keys_.public_key);
  for (size_t pos = 0; pos < kKe2Size; ++pos) {
    auto ke1 = client.GenerateKE1(Pw("pw"));
    ASSERT_TRUE(ke1.ok());
    auto ke2 = server_.GenerateKE2(record, Id("acct-5"), ke1->ke1);
    ASSERT_TRUE(ke2.ok());
    auto bytes = ke2->ke2.Serialize();
    bytes[pos] ^= static_cast<uint8_t>(1u << (pos % 8));
    auto ke3 = client.GenerateKE3(std::move(ke1->state), bytes);
    ASSERT_TRUE(IsInvalidLogin(ke3.status()))
        << "position " << pos << ": " << ke3.status();
  }
}

TEST_F(OpaqueTest, TamperedKe3AtEveryPositionIsInvalidLogin) {
  IdentityKsf ksf;
  auto record = Register(ksf, "acct-6", "pw");
  OpaqueClient client(config_, ksf, keys_.public_key);
  for (size_t pos = 0; pos < kKe3Size; ++pos) {
    auto ke1 = client.GenerateKE1(Pw("pw"));
    ASSERT_TRUE(ke1.ok());
    auto ke2 = server_.GenerateKE2(record, Id("acct-6"), ke1->ke1);
    ASSERT_TRUE(ke2.ok());
    auto ke3 = client.GenerateKE3(std::move(ke1->state), ke2->ke2.Serialize());
    ASSERT_TRUE(ke3.ok());
    auto bytes = ke3->ke3.Serialize();
    bytes[pos] ^= 0x80;
    auto parsed = KE3::Parse(bytes);
    ASSERT_TRUE(parsed.ok());
    auto session = server_.ServerFinish(std::move(ke2->state), *parsed);
    ASSERT_TRUE(IsInvalidLogin(session.status()))
        << "position " << pos << ": " << session.status();
  }
}

TEST_F(OpaqueTest, PinnedServerKeyMismatchIsInvalidLogin) {
  IdentityKsf ksf;
  auto record = Register(ksf, "acct-7", "pw");
  ServerKeyPair other = ServerKeyPair::Generate();
  OpaqueClient client(config_, ksf, other.public_key);
  auto ke1 = client.GenerateKE1(Pw("pw"));
  ASSERT_TRUE(ke1.ok());
  auto ke2 = server_.GenerateKE2(record, Id("acct-7"), ke1->ke1);
  ASSERT_TRUE(ke2.ok());
  EXPECT_TRUE(IsInvalidLogin(
      client.GenerateKE3(std::move(ke1->state), ke2->ke2.Serialize())
          .status()));
}

TEST_F(OpaqueTest, RegistrationRefusesUnpinnedServer) {
  IdentityKsf ksf;
  ServerKeyPair other = ServerKeyPair::Generate();
  OpaqueClient client(config_, ksf, other.public_key);
  auto start = client.CreateRegistrationRequest(Pw("pw"));
  ASSERT_TRUE(start.ok());
  auto response = server_.CreateRegistrationResponse(start->request, Id("a"));
  ASSERT_TRUE(response.ok());
  auto finish =
      client.FinalizeRegistrationRequest(std::move(start->state), *response);
  EXPECT_EQ(finish.status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(OpaqueTest, ContextMismatchIsInvalidLogin) {
  IdentityKsf ksf;
  auto record = Register(ksf, "acct-8", "pw");
  Config other = config_;
  other.context = "another deployment";
  OpaqueClient client(other, ksf, keys_.public_key);
  auto ke1 = client.GenerateKE1(Pw("pw"));
  ASSERT_TRUE(ke1.ok());
  auto ke2 = server_.GenerateKE2(record, Id("acct-8"), ke1->ke1);
  ASSERT_TRUE(ke2.ok());
  EXPECT_TRUE(IsInvalidLogin(
      client.GenerateKE3(std::move(ke1->state), ke2->ke2.Serialize())
          .status()));
}

TEST_F(OpaqueTest, StatesAreConsumedOnce) {
  IdentityKsf ksf;
  auto record = Register(ksf, "acct-9", "pw");
  OpaqueClient client(config_, ksf, keys_.public_key);
  auto ke1 = client.GenerateKE1(Pw("pw"));
  ASSERT_TRUE(ke1.ok());
  auto ke2 = server_.GenerateKE2(record, Id("acct-9"), ke1->ke1);
  ASSERT_TRUE(ke2.ok());
  auto ke2_bytes = ke2->ke2.Serialize();
  auto ke3 = client.GenerateKE3(std::move(ke1->state), ke2_bytes);
  ASSERT_TRUE(ke3.ok());
  // NOLINTNEXTLINE(bugprone-use-after-move): the point of the test.
  auto again = client.GenerateKE3(std::move(ke1->state), ke2_bytes);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(server_.ServerFinish(std::move(ke2->state), ke3->ke3).ok());
  // NOLINTNEXTLINE(bugprone-use-after-move)
  auto replay = server_.ServerFinish(std::move(ke2->state), ke3->ke3);
  EXPECT_EQ(replay.status().code(), absl::StatusCode::kFailedPrecondition);

  auto start = client.CreateRegistrationRequest(Pw("pw"));
  ASSERT_TRUE(start.ok());
  auto response = server_.CreateRegistrationResponse(start->request, Id("x"));
  ASSERT_TRUE(response.ok());
  ASSERT_TRUE(
      client.FinalizeRegistrationRequest(std::move(start->state), *response)
          .ok());
  // NOLINTNEXTLINE(bugprone-use-after-move)
  EXPECT_EQ(
      client.FinalizeRegistrationRequest(std::move(start->state), *response)
          .status()
          .code(),
      absl::StatusCode::kFailedPrecondition);
}

TEST_F(OpaqueTest, ServerLoginStateSurvivesExportImport) {
  IdentityKsf ksf;
  auto record = Register(ksf, "acct-10", "pw");
  OpaqueClient client(config_, ksf, keys_.public_key);
  auto ke1 = client.GenerateKE1(Pw("pw"));
  ASSERT_TRUE(ke1.ok());
  auto ke2 = server_.GenerateKE2(record, Id("acct-10"), ke1->ke1);
  ASSERT_TRUE(ke2.ok());
  SecretBytes exported = std::move(ke2->state).Export();
  EXPECT_EQ(exported.size(), kServerLoginStateSize);
  auto imported = ServerLoginState::Import(exported);
  ASSERT_TRUE(imported.ok());
  auto ke3 = client.GenerateKE3(std::move(ke1->state), ke2->ke2.Serialize());
  ASSERT_TRUE(ke3.ok());
  auto session = server_.ServerFinish(std::move(*imported), ke3->ke3);
  ASSERT_TRUE(session.ok());
  EXPECT_TRUE(*session == ke3->session_key);
  EXPECT_FALSE(ServerLoginState::Import(SecretBytes(127)).ok());
}

TEST_F(OpaqueTest, FakeKe2LooksLikeARealOneAndNeverFinishes) {
  IdentityKsf ksf;
  OpaqueClient client(config_, ksf, keys_.public_key);
  auto ke1 = client.GenerateKE1(Pw("pw"));
  ASSERT_TRUE(ke1.ok());
  auto fake = server_.GenerateFakeKE2(Id("nobody"), ke1->ke1);
  ASSERT_TRUE(fake.ok()) << fake.status();
  auto bytes = fake->ke2.Serialize();
  EXPECT_EQ(bytes.size(), kKe2Size);
  EXPECT_TRUE(KE2::Parse(bytes).ok());
  EXPECT_TRUE(IsInvalidLogin(
      client.GenerateKE3(std::move(ke1->state), bytes).status()));
  // Stable per identifier, like a real record; different across identifiers.
  auto r1 = server_.FakeRecord(Id("nobody"));
  auto r2 = server_.FakeRecord(Id("nobody"));
  auto r3 = server_.FakeRecord(Id("somebody"));
  ASSERT_TRUE(r1.ok() && r2.ok() && r3.ok());
  EXPECT_EQ(r1->Serialize(), r2->Serialize());
  EXPECT_NE(r1->Serialize(), r3->Serialize());
}

// ------------------------------------------------------------ parsing

TEST(OpaqueParseTest, WrongLengthsAreRejected) {
  std::vector<uint8_t> buf(400, 0x42);
  for (size_t len : {0, 1, 31, 33, 63, 65, 95, 97, 191, 193, 319, 321}) {
    std::span<const uint8_t> s(buf.data(), len);
    if (len != 32) {
      EXPECT_FALSE(RegistrationRequest::Parse(s).ok()) << len;
    }
    if (len != 64) {
      EXPECT_FALSE(RegistrationResponse::Parse(s).ok()) << len;
      EXPECT_FALSE(KE3::Parse(s).ok()) << len;
    }
    EXPECT_FALSE(RegistrationRecord::Parse(s).ok()) << len;
    EXPECT_FALSE(KE1::Parse(s).ok()) << len;
    EXPECT_FALSE(KE2::Parse(s).ok()) << len;
  }
  auto err = KE1::Parse(std::span<const uint8_t>(buf.data(), 95)).status();
  EXPECT_EQ(err.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(err.message().find("KE1 must be 96 bytes, got 95"),
            std::string::npos)
      << err;
}

TEST(OpaqueParseTest, IdentityAndNonCanonicalElementsAreRejected) {
  ServerKeyPair k = ServerKeyPair::Generate();
  std::vector<uint8_t> identity(32, 0);
  // 2^255 - 1: above the field prime, so not a canonical encoding.
  std::vector<uint8_t> non_canonical(32, 0xff);
  non_canonical[31] = 0x7f;
  // Canonical field elements that are negative (odd) are not valid either.
  std::vector<uint8_t> negative(32, 0);
  negative[0] = 1;

  for (const auto& bad : {identity, non_canonical, negative}) {
    auto req = RegistrationRequest::Parse(bad);
    EXPECT_EQ(req.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(req.status().message().find("blinded_message"),
              std::string::npos);

    std::vector<uint8_t> ke1(96, 0);
    std::copy(k.public_key.begin(), k.public_key.end(), ke1.begin());
    std::copy(bad.begin(), bad.end(), ke1.begin() + 64);
    auto parsed = KE1::Parse(ke1);
    EXPECT_FALSE(parsed.ok());
    EXPECT_NE(parsed.status().message().find("client_public_keyshare"),
              std::string::npos)
        << parsed.status();

    std::vector<uint8_t> rec(192, 7);
    std::copy(bad.begin(), bad.end(), rec.begin());
    EXPECT_FALSE(RegistrationRecord::Parse(rec).ok());
  }
  EXPECT_NE(
      RegistrationRequest::Parse(identity).status().message().find("identity"),
      std::string::npos);
}

TEST(OpaqueParseTest, ScalarsOutOfRangeAreRejected) {
  std::vector<uint8_t> zero(32, 0);
  std::vector<uint8_t> order = *HexDecode(
      "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
  std::vector<uint8_t> max(32, 0xff);
  std::vector<uint8_t> order_minus_1 = order;
  order_minus_1[0] -= 1;
  EXPECT_FALSE(ServerKeyPair::FromPrivateKey(zero).ok());
  EXPECT_FALSE(ServerKeyPair::FromPrivateKey(order).ok());
  EXPECT_FALSE(ServerKeyPair::FromPrivateKey(max).ok());
  EXPECT_FALSE(ServerKeyPair::FromPrivateKey(std::span(max).first(31)).ok());
  EXPECT_TRUE(ServerKeyPair::FromPrivateKey(order_minus_1).ok());
}

TEST(OpaqueParseTest, RandomGarbageNeverCrashesAndRoundTripsWhenValid) {
  std::vector<uint8_t> buf(kKe2Size);
  size_t valid = 0;
  for (int i = 0; i < 2000; ++i) {
    randombytes_buf(buf.data(), buf.size());
    auto ke2 = KE2::Parse(buf);
    if (ke2.ok()) {
      ++valid;
      EXPECT_EQ(testing::ToVec(ke2->Serialize()), buf);
    }
    auto ke1 = KE1::Parse(std::span(buf).first(kKe1Size));
    if (ke1.ok()) {
      EXPECT_EQ(testing::ToVec(ke1->Serialize()),
                testing::ToVec(std::span(buf).first(kKe1Size)));
    }
  }
  // About 1/8 of random strings encode ristretto points; two must be valid.
  EXPECT_LT(valid, 200u);
}

}  // namespace
}  // namespace bkv::opaque
