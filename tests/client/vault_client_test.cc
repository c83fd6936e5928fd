// The SDK's vault calls against a real bkv-vault process.
#include "client/vault_client.h"

#include <gtest/gtest.h>

#include "tests/server/vault_harness.h"

namespace bkv::client {
namespace {

using testing::VaultProcess;

class VaultClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(vault_.Start({"--attempt-limit", "3"})) << vault_.log();
  }
  std::unique_ptr<VaultClient> Client(const std::string& account) {
    VaultOptions o;
    o.address = vault_.address();
    o.server_public_key = vault_.public_key();
    o.ksf = {2, 19'456, 1};
    o.account_token = [this, account] { return vault_.Token(account); };
    auto c = VaultClient::Create(std::move(o));
    EXPECT_TRUE(c.ok()) << c.status();
    return *std::move(c);
  }
  static SecretBytes Pw(std::string_view s) { return SecretBytes::Copy(s); }

  VaultProcess vault_;
};

TEST_F(VaultClientTest, RegisterRecoverStatusDelete) {
  auto c = Client("acct");
  SecretBytes key = SecretBytes::Random(32);
  auto none = c->Recover("acct", Pw("pw"));
  EXPECT_EQ(VaultError::From(none.status()).kind,
            VaultErrorKind::kNotRegistered);
  ASSERT_TRUE(c->Register("acct", Pw("pw"), key).ok());
  auto got = c->Recover("acct", Pw("pw"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == key);
  auto st = c->Status();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state, VaultStatus::State::kActive);
  EXPECT_EQ(st->attempts_remaining, 3u);
  ASSERT_TRUE(c->Delete().ok());
  EXPECT_EQ(c->Status()->state, VaultStatus::State::kNone);
}

TEST_F(VaultClientTest, TypedErrorsForWrongPasswordAndLock) {
  auto c = Client("bob");
  ASSERT_TRUE(c->Register("bob", Pw("right"), SecretBytes::Random(32)).ok());
  auto e1 = VaultError::From(c->Recover("bob", Pw("wrong")).status());
  EXPECT_EQ(e1.kind, VaultErrorKind::kInvalidPassword);
  EXPECT_EQ(e1.attempts_remaining, 2u);
  VaultError::From(c->Recover("bob", Pw("wrong")).status());
  auto e3 = VaultError::From(c->Recover("bob", Pw("wrong")).status());
  EXPECT_EQ(e3.kind, VaultErrorKind::kLocked);
  auto after = VaultError::From(c->Recover("bob", Pw("right")).status());
  EXPECT_EQ(after.kind, VaultErrorKind::kLocked);
}

TEST_F(VaultClientTest, ChangePasswordKeepsServiceConsistent) {
  auto c = Client("carol");
  ASSERT_TRUE(c->Register("carol", Pw("one"), SecretBytes::Random(32)).ok());
  SecretBytes key2 = SecretBytes::Random(32);
  // Replacing an ACTIVE record needs proof of its password: recover first.
  EXPECT_FALSE(c->Register("carol", Pw("two"), key2).ok());
  ASSERT_TRUE(c->Recover("carol", Pw("one")).ok());
  ASSERT_TRUE(c->Register("carol", Pw("two"), key2).ok());
  EXPECT_EQ(VaultError::From(c->Recover("carol", Pw("one")).status()).kind,
            VaultErrorKind::kInvalidPassword);
  auto got = c->Recover("carol", Pw("two"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == key2);
}

TEST_F(VaultClientTest, WrongPinnedKeyUnauthenticatedAndDownAreTyped) {
  VaultOptions o;
  o.address = vault_.address();
  o.server_public_key = opaque::ServerKeyPair::Generate().public_key;
  o.ksf = {2, 19'456, 1};
  o.account_token = [this] { return vault_.Token("dave"); };
  auto wrong_vault = *VaultClient::Create(o);
  EXPECT_FALSE(
      wrong_vault->Register("dave", Pw("pw"), SecretBytes::Random(32)).ok());

  o.server_public_key = vault_.public_key();
  o.account_token = [] { return std::string("not-a-token"); };
  auto bad_token = *VaultClient::Create(o);
  EXPECT_EQ(VaultError::From(bad_token->Status().status()).kind,
            VaultErrorKind::kUnauthenticated);

  o.address = "127.0.0.1:1";  // nothing listens there
  o.timeout = std::chrono::milliseconds(2000);
  auto down = *VaultClient::Create(o);
  EXPECT_EQ(VaultError::From(down->Status().status()).kind,
            VaultErrorKind::kTransient);

  o.ksf = {1, 1024, 1};
  EXPECT_EQ(VaultClient::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bkv::client
