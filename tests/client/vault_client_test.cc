// The SDK's vault calls against a real bkv-vault process.
#include "client/vault_client.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <thread>

#include "tests/client/vault_test_support.h"
#include "tests/process_stop.h"
#include "tests/server/vault_harness.h"

namespace bkv::client {
namespace {

using testing::VaultProcess;

class VaultClientTest : public ::testing::Test {
 protected:
  virtual std::vector<std::string> VaultFlags() {
    return {"--attempt-limit", "3"};
  }
  void SetUp() override {
    ASSERT_TRUE(vault_.Start(VaultFlags())) << vault_.log();
    BKV_SKIP_UNLESS_V2(vault_);
  }
  VaultOptions Options(const std::string& account) {
    VaultOptions o;
    o.address = vault_.address();
    o.server_public_key = vault_.public_key();
    o.ksf = {2, 19'456, 1};
    o.account_token = [this, account] { return vault_.Token(account); };
    return o;
  }
  std::unique_ptr<VaultClient> Client(const std::string& account) {
    return Client(Options(account));
  }
  static std::unique_ptr<VaultClient> Client(VaultOptions o) {
    auto c = VaultClient::Create(std::move(o));
    EXPECT_TRUE(c.ok()) << c.status();
    return *std::move(c);
  }
  uint32_t Remaining(VaultClient& c) {
    auto st = c.Status();
    EXPECT_TRUE(st.ok()) << st.status();
    return st.ok() ? st->attempts_remaining : 999;
  }
  static SecretBytes Pw(std::string_view s) { return SecretBytes::Copy(s); }

  VaultProcess vault_;
};

TEST_F(VaultClientTest, RegisterRecoverStatusDelete) {
  BKV_SKIP_UNLESS_PROOF_OR_DELAY(vault_);
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
  // An active record is deleted only with a proof of its password.
  EXPECT_EQ(VaultError::From(c->Delete()).kind, VaultErrorKind::kProofRequired);
  auto proven = c->RecoverWithProof("acct", Pw("pw"));
  ASSERT_TRUE(proven.ok()) << proven.status();
  EXPECT_FALSE(proven->proof.empty());
  ASSERT_TRUE(c->Delete(proven->proof).ok());
  EXPECT_EQ(c->Status()->state, VaultStatus::State::kNone);
}

TEST_F(VaultClientTest, RegisterReportsTheVaultsFigures) {
  BKV_SKIP_UNLESS_PROOF_OR_DELAY(vault_);
  auto c = Client("fig");
  auto reg = c->Register("fig", Pw("pw"), SecretBytes::Random(32));
  ASSERT_TRUE(reg.ok()) << reg.status();
  EXPECT_EQ(reg->attempt_limit, 3u);
  auto st = c->Status();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->attempt_limit, 3u);
  EXPECT_NE(st->registration_id, 0u);
  EXPECT_EQ(st->registration_id, reg->registration_id);
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

TEST_F(VaultClientTest, ChangePasswordProvesTheOldOneAndKeepsTheKey) {
  BKV_SKIP_UNLESS_PROOF_OR_DELAY(vault_);
  auto c = Client("carol");
  SecretBytes key = SecretBytes::Random(32);
  ASSERT_TRUE(c->Register("carol", Pw("one"), key).ok());
  // Replacing an active record without a proof is refused, spending nothing.
  EXPECT_EQ(
      VaultError::From(
          c->Register("carol", Pw("evil"), SecretBytes::Random(32)).status())
          .kind,
      VaultErrorKind::kProofRequired);
  EXPECT_EQ(VaultError::From(
                c->ChangePassword("carol", Pw("wrong"), Pw("two")).status())
                .kind,
            VaultErrorKind::kInvalidPassword);
  ASSERT_TRUE(c->ChangePassword("carol", Pw("one"), Pw("two")).ok());
  EXPECT_EQ(VaultError::From(c->Recover("carol", Pw("one")).status()).kind,
            VaultErrorKind::kInvalidPassword);
  auto got = c->Recover("carol", Pw("two"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == key);
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

// 10.6: a client configured for another context or server identity is
// stopped by GetVaultInfo before RecoverStart; before the check, the
// mismatch looked like a wrong password and spent an attempt.
TEST_F(VaultClientTest, RegressionWrongContextIsAConfigErrorAndSpendsNothing) {
  auto c = Client("erin");
  ASSERT_TRUE(c->Register("erin", Pw("pw"), SecretBytes::Random(32)).ok());
  ASSERT_EQ(Remaining(*c), 3u);

  VaultOptions o = Options("erin");
  o.opaque_context = "bkv OPAQUE v1 (another deployment)";
  auto wrong_context = Client(o);
  const VaultError e1 =
      VaultError::From(wrong_context->Recover("erin", Pw("pw")).status());
  EXPECT_EQ(e1.kind, VaultErrorKind::kConfig) << e1.message;
  EXPECT_NE(e1.message.find("OPAQUE context"), std::string::npos);
  EXPECT_EQ(e1.attempt_spent, AttemptSpent::kNo);

  o = Options("erin");
  o.server_identity = "vault.example";
  auto wrong_identity = Client(o);
  const VaultError e2 =
      VaultError::From(wrong_identity->Recover("erin", Pw("pw")).status());
  EXPECT_EQ(e2.kind, VaultErrorKind::kConfig) << e2.message;
  EXPECT_NE(e2.message.find("server identity"), std::string::npos);
  EXPECT_EQ(Remaining(*c), 3u);
}

// 10.5: plaintext only to loopback unless explicitly allowed. Create() makes
// no call, so nothing is sent to the (unroutable) addresses below.
TEST(VaultClientTlsRule, RegressionPlaintextToANonLoopbackVaultIsRefused) {
  VaultOptions o;
  o.ksf = {2, 19'456, 1};
  for (const char* remote : {"192.0.2.1:443", "vault.example:443",
                             "dns:///vault.example:443", "[2001:db8::1]:443"}) {
    o.address = remote;
    auto c = VaultClient::Create(o);
    ASSERT_FALSE(c.ok()) << remote;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find("TLS is required"), std::string::npos);
    o.insecure_plaintext = true;
    EXPECT_TRUE(VaultClient::Create(o).ok()) << remote;
    o.insecure_plaintext = false;
    o.tls = true;
    EXPECT_TRUE(VaultClient::Create(o).ok()) << remote;
    o.tls = false;
  }
  for (const char* local : {"127.0.0.1:1", "localhost:1", "[::1]:1",
                            "unix:/tmp/vault.sock", "ipv4:127.0.0.2:1"}) {
    o.address = local;
    EXPECT_TRUE(VaultClient::Create(o).ok()) << local;
  }
}

// 20.7: the vault dies after RecoverStart counted the attempt. The client
// says one attempt was spent and how many remain (it knows from
// RecoverStart), and the vault agrees once it is back.
TEST_F(VaultClientTest, FaultVaultKilledBetweenRecoverStartAndFinish) {
  auto c = Client("frank");
  ASSERT_TRUE(c->Register("frank", Pw("pw"), SecretBytes::Random(32)).ok());
  VaultOptions o = Options("frank");
  o.timeout = std::chrono::seconds(10);
  o.before_call = [this](std::string_view rpc) {
    if (rpc == "RecoverFinish") vault_.Kill();
  };
  auto doomed = Client(o);
  const VaultError e =
      VaultError::From(doomed->Recover("frank", Pw("pw")).status());
  EXPECT_EQ(e.kind, VaultErrorKind::kTransient) << e.message;
  EXPECT_EQ(e.attempt_spent, AttemptSpent::kYes);
  EXPECT_EQ(e.attempts_remaining, 2u);
  EXPECT_NE(DescribeVaultError(e).find("one attempt was spent, 2 remain"),
            std::string::npos)
      << DescribeVaultError(e);

  ASSERT_TRUE(vault_.Start()) << vault_.log();
  auto after = Client("frank");
  EXPECT_EQ(Remaining(*after), 2u);
}

class VaultClientRetryTest : public VaultClientTest {
 protected:
  // Tiny buckets: a few reads and one guess per account, refilled at 1/s.
  std::vector<std::string> VaultFlags() override {
    return {"--attempt-limit",    "3", "--read-burst",  "6",
            "--read-per-second",  "1", "--guess-burst", "1",
            "--guess-per-second", "1"};
  }
  VaultOptions Retrying(const std::string& account) {
    VaultOptions o = Options(account);
    o.max_retry_wait = std::chrono::seconds(20);
    o.on_wait = [this](std::chrono::milliseconds, const VaultError& why) {
      ++waits_;
      EXPECT_TRUE(why.retry_safe);
    };
    return o;
  }
  std::atomic<int> waits_{0};
};

// 16.1: a read the vault refuses with a retry time succeeds after it.
TEST_F(VaultClientRetryTest, RetryRateLimitedStatusSucceedsAfterTheHint) {
  auto no_retry = Client("gina");
  // Drain the read bucket until the vault refuses (bounded).
  absl::Status refused;
  for (int i = 0; i < 10 && refused.ok(); ++i) {
    refused = no_retry->Status().status();
  }
  const VaultError e = VaultError::From(refused);
  ASSERT_EQ(e.kind, VaultErrorKind::kRateLimited) << e.message;
  EXPECT_GT(e.retry_after_ms, 0u);
  EXPECT_TRUE(e.retry_safe);

  auto retrying = Client(Retrying("gina"));
  auto st = retrying->Status();
  EXPECT_TRUE(st.ok()) << st.status();
  EXPECT_GE(waits_.load(), 1);
}

// 16.1: a rate-limited RecoverStart (ATTEMPT_NOT_COUNTED) is retried after
// the hint and the counter moves by exactly the one attempt that ran.
TEST_F(VaultClientRetryTest, RetryRateLimitedRecoverStartCountsOnce) {
  int plain_starts = 0;
  VaultOptions po = Options("hal");
  po.before_call = [&plain_starts](std::string_view rpc) {
    plain_starts += rpc == "RecoverStart";
  };
  auto plain = Client(po);
  // Status reads share a tiny bucket too: this reader waits for it.
  VaultOptions ro = Options("hal");
  ro.max_retry_wait = std::chrono::seconds(20);
  auto reader = Client(ro);
  ASSERT_TRUE(plain->Register("hal", Pw("pw"), SecretBytes::Random(32)).ok());
  // The first guess takes the only token; the second is refused uncounted.
  EXPECT_EQ(VaultError::From(plain->Recover("hal", Pw("x")).status()).kind,
            VaultErrorKind::kInvalidPassword);
  const VaultError refused =
      VaultError::From(plain->Recover("hal", Pw("x")).status());
  ASSERT_EQ(refused.kind, VaultErrorKind::kRateLimited) << refused.message;
  ASSERT_EQ(plain_starts, 2);  // the refusal was RecoverStart's
  EXPECT_EQ(refused.attempt_spent, AttemptSpent::kNo);
  EXPECT_TRUE(refused.retry_safe);
  const uint32_t before = Remaining(*reader);
  EXPECT_EQ(before, 2u);

  int starts = 0;
  VaultOptions o = Retrying("hal");
  o.before_call = [&starts](std::string_view rpc) {
    starts += rpc == "RecoverStart";
  };
  auto retrying = Client(o);
  const VaultError e =
      VaultError::From(retrying->Recover("hal", Pw("x")).status());
  EXPECT_EQ(e.kind, VaultErrorKind::kInvalidPassword) << e.message;
  EXPECT_GE(starts, 2);  // refused at least once, then ran
  EXPECT_GE(waits_.load(), 1);
  EXPECT_EQ(Remaining(*reader), before - 1);
}

// 16.1: a counted call whose answer never came is not repeated: the vault
// (stopped after the request went out) may have counted it.
TEST_F(VaultClientRetryTest, RetryNeverRepeatsAnAmbiguousRecoverStart) {
  auto plain = Client("ivy");
  ASSERT_TRUE(plain->Register("ivy", Pw("pw"), SecretBytes::Random(32)).ok());
  int starts = 0;
  VaultOptions o = Retrying("ivy");
  o.timeout = std::chrono::seconds(5);  // room for ASan
  const pid_t pid = vault_.pid();
  o.before_call = [&starts, pid](std::string_view rpc) {
    if (rpc != "RecoverStart") return;
    ++starts;
    // In force before the request goes out: no answer comes back.
    ASSERT_TRUE(bkv::testing::StopAndWait(pid));
  };
  auto c = Client(o);
  const VaultError e = VaultError::From(c->Recover("ivy", Pw("pw")).status());
  kill(pid, SIGCONT);
  EXPECT_EQ(starts, 1);
  EXPECT_EQ(waits_.load(), 0);
  EXPECT_EQ(e.kind, VaultErrorKind::kTransient) << e.message;
  EXPECT_EQ(e.attempt_spent, AttemptSpent::kUnknown);
  EXPECT_FALSE(e.retry_safe);
  EXPECT_NE(DescribeVaultError(e).find("may have been spent"),
            std::string::npos);
}

// 20.5: the answer to a password change's commit is lost (the vault is
// stopped once the commit went out, and resumed when the client repeats the
// commit to settle it). The client must end with a definite answer that
// matches the vault: here the new password is current.
TEST_F(VaultClientTest, FaultLostCommitAnswerIsSettledByTheVault) {
  BKV_SKIP_UNLESS_PROOF_OR_DELAY(vault_);
  auto c = Client("jo");
  SecretBytes key = SecretBytes::Random(32);
  ASSERT_TRUE(c->Register("jo", Pw("old"), key).ok());
  VaultOptions o = Options("jo");
  o.timeout = std::chrono::seconds(5);  // room for ASan
  const pid_t pid = vault_.pid();
  int commits = 0;
  o.before_call = [&commits, pid](std::string_view rpc) {
    if (rpc != "RegisterCommit") return;
    if (++commits == 1) {
      ASSERT_TRUE(bkv::testing::StopAndWait(pid));
    } else {
      kill(pid, SIGCONT);
    }
  };
  auto changer = Client(o);
  auto reg = changer->ChangePassword("jo", Pw("old"), Pw("new"));
  kill(pid, SIGCONT);
  ASSERT_EQ(commits, 2);  // the lost one, and the repeat
  ASSERT_TRUE(reg.ok()) << reg.status();
  auto st = c->Status();
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->registration_id, reg->registration_id);
  auto got = c->Recover("jo", Pw("new"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == key);
}

// 20.5: the vault stays silent after the commit: the client cannot know and
// says so instead of guessing.
TEST_F(VaultClientTest, FaultLostCommitWithASilentVaultSaysItIsUnknown) {
  BKV_SKIP_UNLESS_PROOF_OR_DELAY(vault_);
  auto c = Client("lee");
  ASSERT_TRUE(c->Register("lee", Pw("old"), SecretBytes::Random(32)).ok());
  VaultOptions o = Options("lee");
  o.timeout = std::chrono::seconds(5);  // room for ASan
  const pid_t pid = vault_.pid();
  o.before_call = [pid](std::string_view rpc) {
    if (rpc == "RegisterCommit") {
      ASSERT_TRUE(bkv::testing::StopAndWait(pid));
    }
  };
  auto changer = Client(o);
  auto reg = changer->ChangePassword("lee", Pw("old"), Pw("new"));
  kill(pid, SIGCONT);
  ASSERT_FALSE(reg.ok());
  const std::string msg(reg.status().message());
  EXPECT_NE(msg.find("answer to the new registration was lost"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("is unknown"), std::string::npos) << msg;
}

class VaultClientResetTest : public VaultClientTest {
 protected:
  std::vector<std::string> VaultFlags() override {
    return {"--attempt-limit", "3", "--reset-delay-s", "1"};
  }
};

// 10.4: "forgot password": a requested reset, once due, lets a new password
// (here with a new key) replace the record without the old one.
TEST_F(VaultClientResetTest, RequestedResetAllowsANewPasswordOnceDue) {
  BKV_SKIP_UNLESS_PROOF_OR_DELAY(vault_);
  auto c = Client("kim");
  ASSERT_TRUE(
      c->Register("kim", Pw("forgotten"), SecretBytes::Random(32)).ok());
  auto due = c->RequestReset();
  ASSERT_TRUE(due.ok()) << due.status();
  auto st = c->Status();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->reset_due_unix_ms, *due);
  // Bounded wait until the due time (the vault's clock is this machine's).
  for (int i = 0; i < 100; ++i) {
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    if (now > *due + 50) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  SecretBytes key2 = SecretBytes::Random(32);
  auto reg = c->Register("kim", Pw("fresh"), key2);
  ASSERT_TRUE(reg.ok()) << reg.status();
  auto got = c->Recover("kim", Pw("fresh"));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == key2);
}

}  // namespace
}  // namespace bkv::client
