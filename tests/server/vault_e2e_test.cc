// End to end against a real bkv-vault process: real SoftHSM token, real
// RocksDB, real gRPC on loopback.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include "crypto/opaque.h"
#include "tests/server/vault_harness.h"

namespace bkv::testing {
namespace {

using vault::v1::ErrorDetail;
using vault::v1::GetStatusResponse;
using vault::v1::RecordStatus;

class VaultE2eTest : public ::testing::Test {
 protected:
  void StartVault(std::vector<std::string> args = {}) {
    ASSERT_TRUE(vault_.Start(std::move(args))) << vault_.log();
    client_ =
        std::make_unique<TestClient>(vault_.address(), vault_.public_key());
  }
  void Restart() {
    // Close our connection first: a connected client holds the drain open.
    client_.reset();
    ASSERT_EQ(vault_.Stop(), 0) << vault_.log();
    StartVault();
  }
  // A recovery started and answered, its KE3 computed but not yet sent.
  struct Captured {
    std::string ke3;
    std::string state;
  };
  Captured CaptureLogin(const std::string& account,
                        const std::string& password) {
    auto ke1 = client_->opaque().GenerateKE1(SecretBytes::Copy(password));
    auto ke1_bytes = ke1->ke1.Serialize();
    vault::v1::RecoverStartRequest req;
    req.set_ke1(std::string(ke1_bytes.begin(), ke1_bytes.end()));
    vault::v1::RecoverStartResponse resp;
    grpc::ClientContext ctx;
    TestClient::Authorize(ctx, vault_.Token(account));
    if (!client_->stub().RecoverStart(&ctx, req, &resp).ok()) return {};
    auto ke3 = client_->opaque().GenerateKE3(
        std::move(ke1->state),
        std::span<const uint8_t>(
            reinterpret_cast<const uint8_t*>(resp.ke2().data()),
            resp.ke2().size()));
    if (!ke3.ok()) return {};
    auto ke3_bytes = ke3->ke3.Serialize();
    return {std::string(ke3_bytes.begin(), ke3_bytes.end()),
            resp.login_state()};
  }
  std::pair<TestClient::Result, vault::v1::RecoverFinishResponse> Finish(
      const std::string& account, const Captured& login) {
    vault::v1::RecoverFinishRequest req;
    req.set_ke3(login.ke3);
    req.set_login_state(login.state);
    grpc::ClientContext ctx;
    TestClient::Authorize(ctx, vault_.Token(account));
    vault::v1::RecoverFinishResponse resp;
    auto s = client_->stub().RecoverFinish(&ctx, req, &resp);
    return {TestClient::ResultOf(s, ctx), resp};
  }

  GetStatusResponse Status(const std::string& account) {
    GetStatusResponse s;
    auto r = client_->Status(vault_.Token(account), &s);
    EXPECT_TRUE(r.ok()) << r.status.error_message();
    return s;
  }

  VaultProcess vault_;
  std::unique_ptr<TestClient> client_;
};

TEST_F(VaultE2eTest, RegisterRecoverAndChangePassword) {
  StartVault();
  const std::string acct = "alice";
  SecretBytes key = SecretBytes::Random(32);
  auto reg = client_->Register(vault_.Token(acct), acct, "hunter2", key);
  ASSERT_TRUE(reg.ok()) << reg.status.error_message();
  EXPECT_EQ(Status(acct).status(), RecordStatus::RECORD_STATUS_ACTIVE);
  EXPECT_EQ(Status(acct).attempts_remaining(), 10u);

  auto rec = client_->Recover(vault_.Token(acct), acct, "hunter2");
  ASSERT_TRUE(rec.result.ok()) << rec.result.status.error_message();
  EXPECT_TRUE(rec.backup_key == key);
  EXPECT_EQ(rec.attempts_remaining, 9u);
  EXPECT_EQ(Status(acct).attempts_remaining(), 10u);  // reset on success

  // Change the password (and key) with the recovery's proof: the old one
  // stops working.
  ASSERT_FALSE(rec.proof.empty());
  SecretBytes key2 = SecretBytes::Random(32);
  auto change =
      client_->Register(vault_.Token(acct), acct, "new pass", key2, rec.proof);
  ASSERT_TRUE(change.ok()) << change.status.error_message();
  auto old = client_->Recover(vault_.Token(acct), acct, "hunter2");
  EXPECT_EQ(old.result.status.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  auto fresh = client_->Recover(vault_.Token(acct), acct, "new pass");
  ASSERT_TRUE(fresh.result.ok()) << fresh.result.status.error_message();
  EXPECT_TRUE(fresh.backup_key == key2);
  client_.reset();
  EXPECT_EQ(vault_.Stop(), 0);
}

TEST_F(VaultE2eTest, LimitMinusOneWrongThenRightResets) {
  StartVault({"--attempt-limit", "4"});
  const std::string acct = "bob";
  SecretBytes key = SecretBytes::Random(32);
  ASSERT_TRUE(client_->Register(vault_.Token(acct), acct, "right", key).ok());
  for (int i = 0; i < 3; ++i) {
    auto r = client_->Recover(vault_.Token(acct), acct, "wrong");
    ASSERT_EQ(r.result.status.error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    ASSERT_TRUE(r.result.detail.has_value());
    EXPECT_EQ(r.result.detail->reason(), ErrorDetail::REASON_INVALID_LOGIN);
    EXPECT_EQ(r.result.detail->attempts_remaining(), 3u - i);
  }
  auto ok = client_->Recover(vault_.Token(acct), acct, "right");
  ASSERT_TRUE(ok.result.ok()) << ok.result.status.error_message();
  EXPECT_TRUE(ok.backup_key == key);
  EXPECT_EQ(Status(acct).attempts_remaining(), 4u);
}

TEST_F(VaultE2eTest, LimitWrongLocksAndSurvivesRestart) {
  StartVault({"--attempt-limit", "3"});
  const std::string acct = "carol";
  ASSERT_TRUE(
      client_
          ->Register(vault_.Token(acct), acct, "right", SecretBytes::Random(32))
          .ok());
  auto first = client_->Recover(vault_.Token(acct), acct, "wrong");
  ASSERT_FALSE(first.result.ok());
  // A restart keeps the count.
  Restart();
  EXPECT_EQ(Status(acct).attempts_remaining(), 2u);
  client_->Recover(vault_.Token(acct), acct, "wrong");
  auto last = client_->Recover(vault_.Token(acct), acct, "wrong");
  ASSERT_TRUE(last.result.detail.has_value());
  EXPECT_EQ(last.result.detail->reason(), ErrorDetail::REASON_LOCKED);
  EXPECT_EQ(Status(acct).status(), RecordStatus::RECORD_STATUS_LOCKED);

  auto right = client_->Recover(vault_.Token(acct), acct, "right");
  EXPECT_FALSE(right.result.ok());
  EXPECT_FALSE(right.got_ke2);
  ASSERT_TRUE(right.result.detail.has_value());
  EXPECT_EQ(right.result.detail->reason(), ErrorDetail::REASON_LOCKED);
  Restart();
  EXPECT_EQ(Status(acct).status(), RecordStatus::RECORD_STATUS_LOCKED);
  EXPECT_FALSE(client_->Recover(vault_.Token(acct), acct, "right").result.ok());
  // Delete is the only way forward, and it is idempotent.
  EXPECT_TRUE(client_->Delete(vault_.Token(acct)).ok());
  EXPECT_TRUE(client_->Delete(vault_.Token(acct)).ok());
  EXPECT_EQ(Status(acct).status(), RecordStatus::RECORD_STATUS_NONE);
}

TEST_F(VaultE2eTest, ConcurrentGuessersNeverGetMoreThanTheLimit) {
  StartVault({"--attempt-limit", "10", "--account-burst", "1000",
              "--account-per-second", "1000"});
  const std::string acct = "dave";
  ASSERT_TRUE(
      client_
          ->Register(vault_.Token(acct), acct, "right", SecretBytes::Random(32))
          .ok());
  std::atomic<int> ke2s{0};
  std::vector<std::thread> threads;
  const std::string token = vault_.Token(acct);
  for (int t = 0; t < 32; ++t) {
    threads.emplace_back([&] {
      TestClient c(vault_.address(), vault_.public_key());
      for (int i = 0; i < 3; ++i) {
        auto r = c.Recover(token, acct, "guess");
        if (r.got_ke2) ++ke2s;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(ke2s.load(), 10);
  EXPECT_GE(ke2s.load(), 1);
  EXPECT_EQ(Status(acct).status(), RecordStatus::RECORD_STATUS_LOCKED);
}

TEST_F(VaultE2eTest, SigkillMidStormNeverLosesACountedAttempt) {
  StartVault({"--attempt-limit", "16", "--account-burst", "1000",
              "--account-per-second", "1000"});
  const std::string acct = "erin";
  ASSERT_TRUE(
      client_
          ->Register(vault_.Token(acct), acct, "right", SecretBytes::Random(32))
          .ok());
  const std::string token = vault_.Token(acct);
  std::atomic<int> ke2s{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&] {
      TestClient c(vault_.address(), vault_.public_key());
      for (int i = 0; i < 4 && !stop; ++i) {
        auto r = c.Recover(token, acct, "guess");
        if (r.got_ke2) ++ke2s;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  vault_.Kill();
  stop = true;
  for (auto& t : threads) t.join();
  StartVault();
  auto s = Status(acct);
  // Every KE2 a client received was counted on disk first.
  const uint32_t used = 16 - s.attempts_remaining();
  EXPECT_GE(used, static_cast<uint32_t>(ke2s.load()))
      << "status " << s.ShortDebugString();
}

TEST_F(VaultE2eTest, ReplayedAndForeignStatesAreRejected) {
  StartVault();
  const std::string a = "frank", b = "grace";
  SecretBytes key = SecretBytes::Random(32);
  ASSERT_TRUE(client_->Register(vault_.Token(a), a, "pw", key).ok());
  ASSERT_TRUE(
      client_->Register(vault_.Token(b), b, "pw", SecretBytes::Random(32))
          .ok());
  Captured login = CaptureLogin(a, "pw");
  ASSERT_FALSE(login.ke3.empty());

  // Another account's token with a's state: refused, no key.
  auto foreign = Finish(b, login);
  EXPECT_EQ(foreign.first.status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(foreign.second.sealed_key().empty());
  // The real finish works once...
  auto first = Finish(a, login);
  ASSERT_TRUE(first.first.ok()) << first.first.status.error_message();
  EXPECT_FALSE(first.second.sealed_key().empty());
  // ...and its replay gets nothing.
  auto replay = Finish(a, login);
  EXPECT_EQ(replay.first.status.error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(replay.second.sealed_key().empty());
  // A tampered state doesn't open.
  login.state[login.state.size() / 2] ^= 1;
  EXPECT_EQ(Finish(a, login).first.status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(VaultE2eTest, ExpiredStateIsRejected) {
  StartVault({"--login-ttl-s", "1"});
  const std::string acct = "heidi";
  ASSERT_TRUE(
      client_->Register(vault_.Token(acct), acct, "pw", SecretBytes::Random(32))
          .ok());
  Captured login = CaptureLogin(acct, "pw");
  ASSERT_FALSE(login.ke3.empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  auto [r, resp] = Finish(acct, login);
  ASSERT_TRUE(r.detail.has_value());
  EXPECT_EQ(r.detail->attempt(), ErrorDetail::ATTEMPT_SPENT);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(r.detail.has_value());
  EXPECT_EQ(r.detail->reason(), ErrorDetail::REASON_STATE_EXPIRED);
  EXPECT_TRUE(resp.sealed_key().empty());
}

TEST_F(VaultE2eTest, TokenFailuresAreUnauthenticated) {
  StartVault();
  GetStatusResponse out;
  EXPECT_EQ(client_->Status("", &out).status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(client_->Status("not.a.jwt", &out).status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(client_->Status(vault_.Token("x", -3600), &out).status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);  // expired
  EXPECT_EQ(client_->Status(vault_.Token("x", 600, "other-vault"), &out)
                .status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  std::string forged = vault_.Token("x");
  forged[forged.size() - 5] = forged[forged.size() - 5] == 'A' ? 'B' : 'A';
  auto r = client_->Status(forged, &out);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(client_->Status(vault_.Token("x"), &out).ok());
  // No attempt was spent by any of the refused calls.
  auto rec = client_->Recover("garbage", "x", "pw");
  EXPECT_EQ(rec.result.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_FALSE(rec.got_ke2);
}

TEST_F(VaultE2eTest, RateLimitsAnswerResourceExhaustedWithRetryAfter) {
  StartVault({"--read-burst", "3", "--read-per-second", "0.01"});
  GetStatusResponse out;
  const std::string token = vault_.Token("ivan");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client_->Status(token, &out).ok());
  auto r = client_->Status(token, &out);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  ASSERT_TRUE(r.detail.has_value());
  EXPECT_EQ(r.detail->reason(), ErrorDetail::REASON_RATE_LIMITED);
  EXPECT_GT(r.detail->retry_after_ms(), 0u);
  // Another account is not affected.
  EXPECT_TRUE(client_->Status(vault_.Token("judy"), &out).ok());
}

TEST_F(VaultE2eTest, MalformedAndOversizedInputsNameTheField) {
  StartVault();
  const std::string acct = "ken";
  ASSERT_TRUE(
      client_->Register(vault_.Token(acct), acct, "pw", SecretBytes::Random(32))
          .ok());
  auto call = [&](const std::string& ke1) {
    vault::v1::RecoverStartRequest req;
    req.set_ke1(ke1);
    vault::v1::RecoverStartResponse resp;
    grpc::ClientContext ctx;
    TestClient::Authorize(ctx, vault_.Token(acct));
    return client_->stub().RecoverStart(&ctx, req, &resp);
  };
  for (const std::string& bad :
       {std::string(), std::string(95, 'a'), std::string(4000, 'a'),
        std::string(96, '\0')}) {
    auto s = call(bad);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("ke1"), std::string::npos)
        << s.error_message();
  }
  // Far over the message limit: refused by gRPC before any work.
  EXPECT_NE(call(std::string(1 << 20, 'a')).error_code(), grpc::StatusCode::OK);
  // None of it changed the record.
  EXPECT_EQ(Status(acct).attempts_remaining(), 10u);
}

TEST_F(VaultE2eTest, UnknownAccountLooksLikeAKnownOne) {
  StartVault();
  const std::string known = "liam";
  ASSERT_TRUE(
      client_
          ->Register(vault_.Token(known), known, "pw", SecretBytes::Random(32))
          .ok());
  auto start = [&](const std::string& account) {
    auto ke1 =
        client_->opaque().GenerateKE1(SecretBytes::Copy(std::string_view("x")));
    vault::v1::RecoverStartRequest req;
    auto b = ke1->ke1.Serialize();
    req.set_ke1(std::string(b.begin(), b.end()));
    vault::v1::RecoverStartResponse resp;
    grpc::ClientContext ctx;
    TestClient::Authorize(ctx, vault_.Token(account));
    EXPECT_TRUE(client_->stub().RecoverStart(&ctx, req, &resp).ok());
    return resp;
  };
  auto k = start(known);
  auto u = start("nobody-here");
  EXPECT_EQ(k.ke2().size(), opaque::kKe2Size);
  EXPECT_EQ(u.ke2().size(), opaque::kKe2Size);
  EXPECT_EQ(k.login_state().size(), u.login_state().size());
  EXPECT_EQ(k.ByteSizeLong(), u.ByteSizeLong());
  EXPECT_EQ(u.attempts_remaining(), k.attempts_remaining());
  // The unknown account's login fails like a wrong password.
  auto r = client_->Recover(vault_.Token("nobody-here"), "nobody-here", "x");
  EXPECT_EQ(r.result.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(r.result.detail.has_value());
  EXPECT_EQ(r.result.detail->reason(), ErrorDetail::REASON_INVALID_LOGIN);
}

TEST_F(VaultE2eTest, MetricsCountAttemptsAndShowTheFakePathDidRealWork) {
  const int port = FreePort();
  StartVault({"--metrics-listen", "127.0.0.1:" + std::to_string(port)});
  const std::string acct = "nina";
  ASSERT_TRUE(
      client_->Register(vault_.Token(acct), acct, "pw", SecretBytes::Random(32))
          .ok());
  ASSERT_TRUE(client_->Recover(vault_.Token(acct), acct, "pw").result.ok());
  client_->Recover(vault_.Token("ghost"), "ghost", "pw");
  const std::string m = HttpGet(port, "/metrics");
  ASSERT_NE(m.find("200 OK"), std::string::npos) << m;
  EXPECT_NE(m.find("bkv_attempts_total{outcome=\"success\"} 1"),
            std::string::npos)
      << m;
  // The unknown account's attempt counts as "started", like a real one:
  // /metrics must not tell which accounts exist.
  EXPECT_NE(m.find("bkv_attempts_total{outcome=\"started\"} 2"),
            std::string::npos)
      << m;
  EXPECT_EQ(m.find("unknown_account"), std::string::npos);
  EXPECT_NE(
      m.find("bkv_requests_total{method=\"RecoverStart\",outcome=\"OK\"} 2"),
      std::string::npos);
  // The unknown account's answer cost a synced write and HSM work, like a
  // real attempt's: the timing class is the same by construction.
  // Its synced writes are labelled as the swaps they stand in for.
  EXPECT_EQ(m.find("sync_barrier"), std::string::npos) << m;
  EXPECT_NE(m.find("bkv_storage_duration_seconds_count{op=\"cas\"}"),
            std::string::npos);
  EXPECT_NE(m.find("bkv_hsm_duration_seconds_count{op=\"hmac\"}"),
            std::string::npos);
  EXPECT_EQ(HttpGet(port, "/other").find("200 OK"), std::string::npos);
}

// Registering must not evaluate the OPRF key that guards the active record:
// otherwise a token holder could test guesses through RegisterStart without
// spending attempts, against the masked envelope of one counted KE2.
TEST_F(VaultE2eTest, RegistrationIsNoOracleForTheActiveOprfKey) {
  StartVault();
  const std::string acct = "olga";
  ASSERT_TRUE(
      client_->Register(vault_.Token(acct), acct, "pw", SecretBytes::Random(32))
          .ok());
  auto ke1 = client_->opaque().GenerateKE1(
      SecretBytes::Copy(std::string_view("guess")));
  auto ke1_bytes = ke1->ke1.Serialize();
  const std::string blinded(ke1_bytes.begin(), ke1_bytes.begin() + 32);

  auto register_eval = [&] {
    vault::v1::RegisterStartRequest req;
    req.set_registration_request(blinded);
    vault::v1::RegisterStartResponse resp;
    grpc::ClientContext ctx;
    TestClient::Authorize(ctx, vault_.Token(acct));
    EXPECT_TRUE(client_->stub().RegisterStart(&ctx, req, &resp).ok());
    return resp.registration_response().substr(0, 32);
  };
  vault::v1::RecoverStartRequest req;
  req.set_ke1(std::string(ke1_bytes.begin(), ke1_bytes.end()));
  vault::v1::RecoverStartResponse resp;
  {
    grpc::ClientContext ctx;
    TestClient::Authorize(ctx, vault_.Token(acct));
    ASSERT_TRUE(client_->stub().RecoverStart(&ctx, req, &resp).ok());
  }
  const std::string recover_eval = resp.ke2().substr(0, 32);
  const std::string a = register_eval(), b = register_eval();
  EXPECT_NE(a, recover_eval);
  EXPECT_NE(b, recover_eval);
  EXPECT_NE(a, b);  // every registration has its own key
}

TEST_F(VaultE2eTest, UnwritableAuditLogFailsClosed) {
  StartVault({"--audit-log", "/dev/full"});
  const std::string acct = "mia";
  auto reg = client_->Register(vault_.Token(acct), acct, "pw",
                               SecretBytes::Random(32));
  EXPECT_EQ(reg.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << reg.status.error_message();
  auto rec = client_->Recover(vault_.Token(acct), acct, "pw");
  EXPECT_FALSE(rec.result.ok());
  EXPECT_TRUE(rec.backup_key.empty());
}

TEST_F(VaultE2eTest, SigtermDrainsAndExitsZero) {
  StartVault();
  EXPECT_EQ(vault_.Stop(), 0) << vault_.log();
  EXPECT_NE(vault_.log().find("\"stopped\""), std::string::npos);
}

}  // namespace
}  // namespace bkv::testing
