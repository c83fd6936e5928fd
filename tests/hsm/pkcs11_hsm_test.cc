#include "hsm/pkcs11_hsm.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "hsm/pkcs11_status.h"
#include "hsm/token_sealer.h"
#include "tests/hsm/test_token.h"

namespace bkv::hsm {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::TestToken;

TEST(Pkcs11HsmTest, MissingModule) {
  TokenOptions options;
  options.module_path = "/nonexistent/libnothing-pkcs11.so";
  auto hsm = Pkcs11Hsm::Open(options, SecretBytes::Copy("1234"));
  EXPECT_EQ(hsm.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(hsm.status().message(),
              HasSubstr("PKCS#11 module /nonexistent/libnothing-pkcs11.so "
                        "could not be loaded"));
}

TEST(Pkcs11HsmTest, NotAPkcs11Module) {
  TokenOptions options;
  options.module_path = "libz.so.1";  // a real library, but not PKCS#11
  auto hsm = Pkcs11Hsm::Open(options, SecretBytes::Copy("1234"));
  EXPECT_EQ(hsm.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(hsm.status().message(),
              HasSubstr("libz.so.1 is not a PKCS#11 module"));
}

TEST(Pkcs11HsmTest, MissingTokenNamesLabelAndRemedy) {
  auto token = TestToken::Create(/*with_keys=*/false);
  ASSERT_TRUE(token.ok()) << token.status();
  TokenOptions options = (*token)->options();
  options.token_label = "no-such-token";
  auto hsm = Pkcs11Hsm::Open(options, (*token)->pin());
  EXPECT_EQ(hsm.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(hsm.status().message(),
              HasSubstr("token 'no-such-token' not found in module"));
  EXPECT_THAT(hsm.status().message(), HasSubstr("'bkv-test'"));
  EXPECT_THAT(hsm.status().message(), HasSubstr("run `bkv-vault hsm init`"));
}

TEST(Pkcs11HsmTest, WrongPinSaysSoAndHidesThePin) {
  auto token = TestToken::Create(/*with_keys=*/false);
  ASSERT_TRUE(token.ok()) << token.status();
  (*token)->CloseHsm();  // no logged-in session left in this process
  const std::string wrong = "wrong-pin-31337";
  auto hsm = Pkcs11Hsm::Open((*token)->options(), SecretBytes::Copy(wrong));
  EXPECT_EQ(hsm.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(RvFromStatus(hsm.status()), CKR_PIN_INCORRECT);
  EXPECT_THAT(hsm.status().message(), HasSubstr("C_Login: CKR_PIN_INCORRECT"));
  EXPECT_THAT(hsm.status().message(), HasSubstr("wrong PIN"));
  EXPECT_THAT(hsm.status().message(), HasSubstr("token 'bkv-test'"));
  EXPECT_THAT(hsm.status().message(), Not(HasSubstr(wrong)));
}

TEST(Pkcs11HsmTest, KeyLabelMissingBeforeCeremony) {
  auto token = TestToken::Create(/*with_keys=*/false);
  ASSERT_TRUE(token.ok()) << token.status();
  auto sealer = TokenSealer::Create((*token)->hsm());
  EXPECT_EQ(sealer.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(sealer.status().message(),
              HasSubstr("key label 'bkv-record-seal-v1' missing"));
  EXPECT_THAT(sealer.status().message(), HasSubstr("bkv-vault hsm init"));
}

TEST(Pkcs11HsmTest, SessionPoolIsBounded) {
  auto token = TestToken::Create(/*with_keys=*/false);
  ASSERT_TRUE(token.ok()) << token.status();
  TokenOptions options = (*token)->options();
  options.max_sessions = 2;
  options.session_wait = absl::Milliseconds(50);
  auto hsm = Pkcs11Hsm::Open(options, (*token)->pin());
  ASSERT_TRUE(hsm.ok()) << hsm.status();
  auto a = (*hsm)->AcquireSession();
  auto b = (*hsm)->AcquireSession();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->handle(), b->handle());
  auto c = (*hsm)->AcquireSession();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kDeadlineExceeded);
  const CK_SESSION_HANDLE reused = a->handle();
  { auto released = std::move(*a); }
  auto d = (*hsm)->AcquireSession();
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->handle(), reused);
}

TEST(Pkcs11HsmTest, TwoHandlesShareTheModule) {
  auto token = TestToken::Create(/*with_keys=*/true);
  ASSERT_TRUE(token.ok()) << token.status();
  auto second = Pkcs11Hsm::Open((*token)->options(), (*token)->pin());
  ASSERT_TRUE(second.ok()) << second.status();
  (*token)->CloseHsm();  // the first goes; the module must stay usable
  auto sealer = TokenSealer::Create(*second);
  ASSERT_TRUE(sealer.ok()) << sealer.status();
  const std::vector<uint8_t> pt = {1, 2, 3};
  auto sealed = sealer->Seal(pt, {});
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  auto opened = sealer->Open(*sealed, {});
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, pt);
}

TEST(Pkcs11HsmTest, TokenRandomness) {
  auto token = TestToken::Create(/*with_keys=*/false);
  ASSERT_TRUE(token.ok()) << token.status();
  auto session = (*token)->hsm()->AcquireSession();
  ASSERT_TRUE(session.ok());
  std::vector<uint8_t> a(32), b(32);
  ASSERT_TRUE(session->GenerateRandom(a).ok());
  ASSERT_TRUE(session->GenerateRandom(b).ok());
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace bkv::hsm
