#include "hsm/key_ceremony.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sodium.h>

#include "crypto/hex.h"
#include "hsm/key_labels.h"
#include "hsm/pkcs11_status.h"
#include "tests/hsm/test_token.h"

namespace bkv::hsm {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::TestToken;

class KeyCeremonyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto token = TestToken::Create(/*with_keys=*/true);
    ASSERT_TRUE(token.ok()) << token.status();
    token_ = *std::move(token);
  }
  Pkcs11Hsm& hsm() { return *token_->hsm(); }

  std::unique_ptr<TestToken> token_;
};

// A throw-away AES key that may wrap, to try exporting the vault keys with.
CK_OBJECT_HANDLE SessionWrapKey(Pkcs11Hsm::Session& session) {
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_AES;
  CK_ULONG len = 32;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ATTRIBUTE tmpl[] = {
      {CKA_CLASS, &cls, sizeof(cls)},     {CKA_KEY_TYPE, &type, sizeof(type)},
      {CKA_VALUE_LEN, &len, sizeof(len)}, {CKA_TOKEN, &no, sizeof(no)},
      {CKA_WRAP, &yes, sizeof(yes)},      {CKA_UNWRAP, &yes, sizeof(yes)},
  };
  auto key = session.GenerateKey(CKM_AES_KEY_GEN, tmpl);
  EXPECT_TRUE(key.ok()) << key.status();
  return key.value_or(CK_INVALID_HANDLE);
}

TEST_F(KeyCeremonyTest, KeysLeaveOnlyUnderTrustedKeys) {
  auto session = hsm().AcquireSession();
  ASSERT_TRUE(session.ok());
  const CK_OBJECT_HANDLE wrapper = SessionWrapKey(*session);
  for (absl::string_view label :
       {kRecordSealKeyLabel, kOprfSeedLabel, kAkeWrapKeyLabel}) {
    SCOPED_TRACE(std::string(label));
    auto key = session->FindObject(CKO_SECRET_KEY, label);
    ASSERT_TRUE(key.ok()) << key.status();

    auto value = session->GetSecretAttribute(*key, CKA_VALUE);
    EXPECT_EQ(RvFromStatus(value.status()), CKR_ATTRIBUTE_SENSITIVE)
        << value.status();

    // Extractable only under a key the security officer marked trusted
    // (the cloning ceremony, key_clone_test.cc); never under this one.
    auto wrapped = session->WrapKey(wrapper, *key);
    EXPECT_FALSE(wrapped.ok());
    EXPECT_EQ(RvFromStatus(wrapped.status()), CKR_KEY_NOT_WRAPPABLE)
        << wrapped.status();

    for (auto [attr, want] : {std::pair{CKA_SENSITIVE, true},
                              {CKA_ALWAYS_SENSITIVE, true},
                              {CKA_WRAP_WITH_TRUSTED, true},
                              {CKA_TRUSTED, false},
                              {CKA_TOKEN, true},
                              {CKA_PRIVATE, true}}) {
      auto got = session->GetBoolAttribute(*key, attr);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(*got, want) << "attribute 0x" << std::hex << attr;
    }
  }
}

TEST_F(KeyCeremonyTest, KeysAreLimitedToTheirUse) {
  auto session = hsm().AcquireSession();
  ASSERT_TRUE(session.ok());
  auto seal = session->FindObject(CKO_SECRET_KEY, kRecordSealKeyLabel);
  auto seed = session->FindObject(CKO_SECRET_KEY, kOprfSeedLabel);
  ASSERT_TRUE(seal.ok() && seed.ok());
  // The OPRF seed cannot encrypt; the sealing key cannot MAC.
  const std::vector<uint8_t> iv(12), msg = {1, 2, 3};
  auto enc = session->EncryptAesGcm(*seed, iv, {}, msg);
  EXPECT_FALSE(enc.ok());
  auto mac = session->HmacSha512(*seal, msg);
  EXPECT_FALSE(mac.ok());
}

TEST_F(KeyCeremonyTest, SecondRunKeepsEveryKey) {
  auto before = AkeKeyPair::Load(hsm());
  ASSERT_TRUE(before.ok()) << before.status();
  auto sealer = TokenSealer::Create(token_->hsm());
  auto seed = TokenKeyedHash::Create(token_->hsm());
  ASSERT_TRUE(sealer.ok() && seed.ok());
  const std::vector<uint8_t> pt = {9, 9, 9}, ad = {1};
  auto sealed = sealer->Seal(pt, ad);
  auto mac = seed->HmacSha512(pt);
  ASSERT_TRUE(sealed.ok() && mac.ok());

  auto report = RunKeyCeremony(hsm(), {});
  ASSERT_TRUE(report.ok()) << report.status();
  for (const auto& key : report->keys) {
    EXPECT_FALSE(key.created) << key.label;
  }
  EXPECT_EQ(report->ake_public_key, before->public_key());
  EXPECT_EQ(report->ake_fingerprint_hex, before->FingerprintHex());

  // Fresh lookups after the second run find the same keys.
  auto sealer2 = TokenSealer::Create(token_->hsm());
  auto seed2 = TokenKeyedHash::Create(token_->hsm());
  ASSERT_TRUE(sealer2.ok() && seed2.ok());
  auto opened = sealer2->Open(*sealed, ad);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, pt);
  auto mac2 = seed2->HmacSha512(pt);
  ASSERT_TRUE(mac2.ok());
  EXPECT_TRUE(*mac == *mac2);
}

TEST_F(KeyCeremonyTest, ForceNewKeysReplacesThem) {
  auto before = AkeKeyPair::Load(hsm());
  auto sealer = TokenSealer::Create(token_->hsm());
  ASSERT_TRUE(before.ok() && sealer.ok());
  auto sealed = sealer->Seal(std::vector<uint8_t>{1}, {});
  ASSERT_TRUE(sealed.ok());

  auto report = RunKeyCeremony(hsm(), {.force_new_keys = true});
  ASSERT_TRUE(report.ok()) << report.status();
  for (const auto& key : report->keys) EXPECT_TRUE(key.created) << key.label;
  EXPECT_NE(report->ake_public_key, before->public_key());

  auto sealer2 = TokenSealer::Create(token_->hsm());
  ASSERT_TRUE(sealer2.ok()) << sealer2.status();
  EXPECT_EQ(sealer2->Open(*sealed, {}).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(KeyCeremonyTest, AkeKeyUnwrapsToTheStoredPublicKey) {
  auto ake = AkeKeyPair::Load(hsm());
  ASSERT_TRUE(ake.ok()) << ake.status();
  const SecretBytes& scalar = ake->RevealPrivateKey();
  ASSERT_EQ(scalar.size(), 32u);
  EXPECT_TRUE(scalar.locked());
  uint8_t pk[32];
  ASSERT_EQ(crypto_scalarmult_ristretto255_base(pk, scalar.Reveal().data()), 0);
  EXPECT_EQ(HexEncode(pk), HexEncode(ake->public_key()));

  auto inventory = InspectKeys(hsm());
  ASSERT_TRUE(inventory.ok()) << inventory.status();
  EXPECT_TRUE(inventory->complete());
  EXPECT_EQ(inventory->ake_public_key, ake->public_key());

  uint8_t digest[32];
  crypto_hash_sha256(digest, ake->public_key().data(), 32);
  EXPECT_EQ(ake->FingerprintHex(), HexEncode(digest));
}

TEST_F(KeyCeremonyTest, AkeScalarIsStoredOnlyWrapped) {
  auto ake = AkeKeyPair::Load(hsm());
  ASSERT_TRUE(ake.ok()) << ake.status();
  auto session = hsm().AcquireSession();
  ASSERT_TRUE(session.ok());
  auto blob_obj = session->FindObject(CKO_DATA, kAkePrivateLabel);
  ASSERT_TRUE(blob_obj.ok()) << blob_obj.status();
  auto is_private = session->GetBoolAttribute(*blob_obj, CKA_PRIVATE);
  ASSERT_TRUE(is_private.ok());
  EXPECT_TRUE(*is_private);
  auto blob = session->GetAttribute(*blob_obj, CKA_VALUE);
  ASSERT_TRUE(blob.ok());
  EXPECT_EQ(blob->size(), 40u);  // RFC 5649: 32 bytes + 8-byte IV block
  const auto scalar = ake->RevealPrivateKey().Reveal();
  auto at =
      std::search(blob->begin(), blob->end(), scalar.begin(), scalar.end());
  EXPECT_EQ(at, blob->end()) << "scalar appears in clear in the blob";
}

TEST_F(KeyCeremonyTest, HalfMadeAkePairIsRefused) {
  {
    auto session = hsm().AcquireSession();
    ASSERT_TRUE(session.ok());
    auto pub = session->FindObject(CKO_DATA, kAkePublicLabel);
    ASSERT_TRUE(pub.ok());
    ASSERT_TRUE(session->DestroyObject(*pub).ok());
  }
  auto report = RunKeyCeremony(hsm(), {});
  EXPECT_EQ(report.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(report.status().message(), HasSubstr("--force-new-keys"));
  EXPECT_TRUE(RunKeyCeremony(hsm(), {.force_new_keys = true}).ok());
}

TEST(AkeKeyPairTest, FromPrivateKeyDerivesPublic) {
  // RFC 9807 appendix C.1.1 uses this server_private_key.
  auto scalar = HexDecode(
      "47451a85372f8b3537e249d7b54188091fb18edde78094b43e2ba42b5eb89f0d");
  ASSERT_TRUE(scalar.ok());
  auto ake = AkeKeyPair::FromPrivateKey(SecretBytes::Copy(*scalar));
  ASSERT_TRUE(ake.ok()) << ake.status();
  EXPECT_EQ(HexEncode(ake->public_key()),
            "b2fe7af9f48cc502d016729d2fe25cdd433f2c4bc904660b2a382c9b79df1a78");
  EXPECT_FALSE(AkeKeyPair::FromPrivateKey(SecretBytes(32)).ok());
}

// The key check: the same keys pass, new keys (as a lost or damaged token
// would get) fail naming the key, and a damaged check file fails closed.
TEST_F(KeyCeremonyTest, KeyCheckTellsTheSameKeysFromNewOnes) {
  auto keys = VaultKeys::Load(token_->hsm());
  ASSERT_TRUE(keys.ok()) << keys.status();
  auto check = MakeKeyCheck(*keys);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_THAT(*check, Not(HasSubstr("\n\n")));
  EXPECT_TRUE(VerifyKeyCheck(*keys, *check, "t").ok());
  // Reloaded keys (a restart) still pass.
  auto again = VaultKeys::Load(token_->hsm());
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(VerifyKeyCheck(*again, *check, "t").ok());

  // A check file without one of its lines fails closed.
  std::string partial = *check;
  partial.erase(partial.find(std::string(kRecordSealKeyLabel)));
  auto missing = VerifyKeyCheck(*keys, partial, "t");
  EXPECT_THAT(missing.message(), HasSubstr(std::string(kRecordSealKeyLabel)));

  ASSERT_TRUE(RunKeyCeremony(hsm(), {.force_new_keys = true}).ok());
  auto fresh = VaultKeys::Load(token_->hsm());
  ASSERT_TRUE(fresh.ok());
  absl::Status s = VerifyKeyCheck(*fresh, *check, "token 'x'");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr(std::string(kOprfSeedLabel)));
  EXPECT_THAT(s.message(), HasSubstr("Restoring the HSM token"));
}

TEST_F(KeyCeremonyTest, MissingKeyObjectIsNamedWithTheRecovery) {
  {
    auto session = hsm().AcquireSession();
    ASSERT_TRUE(session.ok());
    auto seed = session->FindObject(CKO_SECRET_KEY, kOprfSeedLabel);
    ASSERT_TRUE(seed.ok());
    ASSERT_TRUE(session->DestroyObject(*seed).ok());
  }
  absl::Status s = RequireAllKeys(hsm());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr(std::string(kOprfSeedLabel)));
  EXPECT_THAT(s.message(), HasSubstr("restore the token from its backup"));
}

}  // namespace
}  // namespace bkv::hsm
