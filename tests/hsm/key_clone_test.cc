// The key-cloning ceremony between two real SoftHSM tokens (one SoftHSM
// configuration, two tokens): the keys arrive usable, sensitive and
// non-extractable, and SoftHSM itself refuses to wrap them under a key the
// security officer did not mark trusted.
#include "hsm/key_clone.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "hsm/key_ceremony.h"
#include "hsm/key_labels.h"
#include "hsm/pin.h"
#include "hsm/pkcs11_status.h"
#include "hsm/softhsm_dev.h"
#include "tests/hsm/test_token.h"

namespace bkv::hsm {
namespace {

using ::testing::HasSubstr;
using testing::MakeTempDir;
using testing::RemoveTree;

constexpr char kSource[] = "bkv-src";
constexpr char kDestination[] = "bkv-dst";

std::span<const uint8_t> Bytes(absl::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class KeyCloneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    auto src = PrepareSoftHsmDir(dir_, kSource);
    ASSERT_TRUE(src.ok()) << src.status();
    ASSERT_TRUE(PrepareSoftHsmDir(dir_, kDestination).ok());
    auto pin = ReadPinFile(src->user_pin_path);
    auto so_pin = ReadPinFile(src->so_pin_path);
    ASSERT_TRUE(pin.ok() && so_pin.ok());
    pin_ = *std::move(pin);
    so_pin_ = *std::move(so_pin);
    dst_ = Open(kDestination);
    ASSERT_NE(dst_, nullptr);
  }
  void TearDown() override {
    src_.reset();
    dst_.reset();
    RemoveTree(dir_);
  }

  static TokenOptions Options(const char* label) {
    TokenOptions options;
    options.token_label = label;
    return options;
  }
  std::shared_ptr<Pkcs11Hsm> Open(const char* label) {
    auto hsm = Pkcs11Hsm::Open(Options(label), pin_);
    EXPECT_TRUE(hsm.ok()) << hsm.status();
    return hsm.value_or(nullptr);
  }

  // The source's keys by `hsm init`; then the security officer trusts
  // `transport` (the user must be logged out of the source meanwhile).
  void InitSourceAndTrust(const TransportPublicKey& transport) {
    {
      auto src = Open(kSource);
      ASSERT_NE(src, nullptr);
      ASSERT_TRUE(RunKeyCeremony(*src, {}).ok());
    }
    TrustAsSo(transport);
    src_ = Open(kSource);
  }
  void TrustAsSo(const TransportPublicKey& transport) {
    src_.reset();
    auto so = Pkcs11Hsm::OpenAsSecurityOfficer(Options(kSource), so_pin_);
    ASSERT_TRUE(so.ok()) << so.status();
    ASSERT_TRUE(TrustTransportKey(**so, transport).ok());
  }

  std::string dir_;
  SecretBytes pin_, so_pin_;
  std::shared_ptr<Pkcs11Hsm> src_, dst_;
};

TEST_F(KeyCloneTest, ClonedKeysOpenSourceSealsAndGiveSameHmacs) {
  auto transport = CreateTransportKey(*dst_);
  ASSERT_TRUE(transport.ok()) << transport.status();
  InitSourceAndTrust(*transport);
  auto src_keys = VaultKeys::Load(src_);
  ASSERT_TRUE(src_keys.ok()) << src_keys.status();
  auto sealed = src_keys->sealer.Seal(Bytes("record"), Bytes("ad"));
  auto src_mac = src_keys->oprf_seed.HmacSha512(Bytes("account"));
  ASSERT_TRUE(sealed.ok() && src_mac.ok());

  auto exported = ExportKeys(src_, *transport);
  ASSERT_TRUE(exported.ok()) << exported.status();
  auto report = ImportKeys(dst_, *exported);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->ake_public_key, src_keys->ake.public_key());

  auto dst_keys = VaultKeys::Load(dst_);
  ASSERT_TRUE(dst_keys.ok()) << dst_keys.status();
  auto opened = dst_keys->sealer.Open(*sealed, Bytes("ad"));
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(std::string(opened->begin(), opened->end()), "record");
  auto dst_mac = dst_keys->oprf_seed.HmacSha512(Bytes("account"));
  ASSERT_TRUE(dst_mac.ok());
  EXPECT_TRUE(*dst_mac == *src_mac);

  auto session = dst_->AcquireSession();
  ASSERT_TRUE(session.ok());
  for (absl::string_view label :
       {kRecordSealKeyLabel, kOprfSeedLabel, kAkeWrapKeyLabel}) {
    SCOPED_TRACE(std::string(label));
    auto key = session->FindObject(CKO_SECRET_KEY, label);
    ASSERT_TRUE(key.ok());
    // After an unwrap PKCS#11 says "was extractable once, made elsewhere".
    for (auto [attr, want] : {std::pair{CKA_SENSITIVE, true},
                              {CKA_EXTRACTABLE, false},
                              {CKA_NEVER_EXTRACTABLE, false},
                              {CKA_LOCAL, false},
                              {CKA_TOKEN, true},
                              {CKA_PRIVATE, true}}) {
      auto got = session->GetBoolAttribute(*key, attr);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(*got, want) << "attribute 0x" << std::hex << attr;
    }
  }
  // Both ceremony keys are gone: single use.
  auto left = session->FindObjects(CKO_PRIVATE_KEY, kTransportKeyLabel);
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
  auto src_session = src_->AcquireSession();
  ASSERT_TRUE(src_session.ok());
  auto trusted =
      src_session->FindObjects(CKO_PUBLIC_KEY, kTrustedTransportLabel);
  ASSERT_TRUE(trusted.ok());
  EXPECT_TRUE(trusted->empty());
}

TEST_F(KeyCloneTest, SoftHsmRefusesToWrapUnderAnUntrustedKey) {
  auto transport = CreateTransportKey(*dst_);
  ASSERT_TRUE(transport.ok());
  src_ = Open(kSource);
  ASSERT_TRUE(RunKeyCeremony(*src_, {}).ok());
  auto session = src_->AcquireSession();
  ASSERT_TRUE(session.ok());
  // The user imports the transport key as CKA_WRAP, not CKA_TRUSTED.
  ASSERT_TRUE(StoreTransportPublicKey(*src_, *transport, false).ok());
  auto untrusted = session->FindObject(CKO_PUBLIC_KEY, kTrustedTransportLabel);
  ASSERT_TRUE(untrusted.ok()) << untrusted.status();
  auto key = session->FindObject(CKO_SECRET_KEY, kOprfSeedLabel);
  ASSERT_TRUE(key.ok());
  auto wrapped = session->WrapKeyRsaOaep(*untrusted, *key);
  EXPECT_EQ(RvFromStatus(wrapped.status()), CKR_KEY_NOT_WRAPPABLE)
      << wrapped.status();
  // The same key under the ceremony's label: our error says what to do.
  auto exported = ExportKeys(src_, *transport);
  EXPECT_EQ(exported.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(exported.status().message(), HasSubstr("not marked trusted"));
}

TEST_F(KeyCloneTest, OnlyTheSecurityOfficerMarksAKeyTrusted) {
  auto transport = CreateTransportKey(*dst_);
  ASSERT_TRUE(transport.ok());
  src_ = Open(kSource);
  absl::Status s = StoreTransportPublicKey(*src_, *transport, true);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(RvFromStatus(s), CKR_OK) << s;
  // The user is logged in: no SO login beside it in this process.
  auto so = Pkcs11Hsm::OpenAsSecurityOfficer(Options(kSource), so_pin_);
  EXPECT_FALSE(so.ok());
  src_.reset();
  auto wrong = Pkcs11Hsm::OpenAsSecurityOfficer(Options(kSource), pin_);
  EXPECT_EQ(RvFromStatus(wrong.status()), CKR_PIN_INCORRECT) << wrong.status();
}

TEST_F(KeyCloneTest, ExportForAnotherTransportKeyIsRefused) {
  auto first = CreateTransportKey(*dst_);
  ASSERT_TRUE(first.ok());
  InitSourceAndTrust(*first);
  auto exported = ExportKeys(src_, *first);
  ASSERT_TRUE(exported.ok()) << exported.status();
  // A later request replaced the transport pair the export was made for.
  ASSERT_TRUE(CreateTransportKey(*dst_).ok());
  auto report = ImportKeys(dst_, *exported);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(report.status().message(), HasSubstr("export is for transport"));
}

TEST_F(KeyCloneTest, TamperedExportLeavesNothingBehind) {
  auto transport = CreateTransportKey(*dst_);
  ASSERT_TRUE(transport.ok());
  InitSourceAndTrust(*transport);
  auto exported = ExportKeys(src_, *transport);
  ASSERT_TRUE(exported.ok());
  // A check value that does not belong to these keys.
  std::string text = *exported;
  size_t at = text.find("check " + std::string(kOprfSeedLabel) + " ");
  ASSERT_NE(at, std::string::npos);
  size_t digit = at + 7 + kOprfSeedLabel.size();
  text[digit] = text[digit] == '0' ? '1' : '0';
  auto report = ImportKeys(dst_, text);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kFailedPrecondition)
      << report.status();
  auto inventory = InspectKeys(*dst_);
  ASSERT_TRUE(inventory.ok());
  for (const auto& e : inventory->entries) EXPECT_FALSE(e.present) << e.label;
  // The transport pair stayed, so the genuine export still imports.
  EXPECT_TRUE(ImportKeys(dst_, *exported).ok());
}

TEST_F(KeyCloneTest, TokenWithNonExtractableKeysCannotBeCloned) {
  auto transport = CreateTransportKey(*dst_);
  ASSERT_TRUE(transport.ok());
  {
    // A token from before the cloning ceremony: the seal key non-extractable.
    auto src = Open(kSource);
    auto session = src->AcquireSession();
    ASSERT_TRUE(session.ok());
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ULONG len = 32;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &type, sizeof(type)},
        {CKA_VALUE_LEN, &len, sizeof(len)},
        {CKA_LABEL, const_cast<char*>(kRecordSealKeyLabel.data()),
         kRecordSealKeyLabel.size()},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_DECRYPT, &yes, sizeof(yes)},
    };
    ASSERT_TRUE(session->GenerateKey(CKM_AES_KEY_GEN, tmpl).ok());
  }
  InitSourceAndTrust(*transport);
  auto exported = ExportKeys(src_, *transport);
  EXPECT_EQ(exported.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(exported.status().message(),
              HasSubstr("non-extractable (by an older"));
}

TEST_F(KeyCloneTest, NoTransportKeyForATokenWithKeys) {
  ASSERT_TRUE(RunKeyCeremony(*dst_, {}).ok());
  auto transport = CreateTransportKey(*dst_);
  EXPECT_EQ(transport.status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(KeyCloneTest, RequestFileRoundTripsAndGarbageIsRefused) {
  auto transport = CreateTransportKey(*dst_);
  ASSERT_TRUE(transport.ok());
  auto pem = transport->ToPem();
  ASSERT_TRUE(pem.ok()) << pem.status();
  auto parsed = TransportPublicKey::FromPem(*pem);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->modulus, transport->modulus);
  EXPECT_EQ(*parsed->FingerprintHex(), *transport->FingerprintHex());

  EXPECT_FALSE(TransportPublicKey::FromPem("").ok());
  EXPECT_FALSE(
      TransportPublicKey::FromPem(
          "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
          .ok());
  auto report = ImportKeys(dst_, "garbage\n");
  EXPECT_EQ(report.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bkv::hsm
