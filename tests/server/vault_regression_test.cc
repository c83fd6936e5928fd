// Regression tests for the vault hardening findings (issue 10): each replays
// an attack against a real bkv-vault process (SoftHSM, RocksDB, gRPC on
// loopback) and fails on the code before the fix.
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <chrono>
#include <thread>

#include "storage/record_codec.h"
#include "tests/server/vault_harness.h"

namespace bkv::testing {
namespace {

using vault::v1::ErrorDetail;
using vault::v1::RecordStatus;

class VaultRegressionTest : public VaultFixture {
 protected:
  // Expects a refusal with `reason` and no attempt counted.
  static void ExpectRefused(const TestClient::Result& r, grpc::StatusCode code,
                            ErrorDetail::Reason reason) {
    EXPECT_EQ(r.status.error_code(), code) << r.status.error_message();
    ASSERT_TRUE(r.detail.has_value()) << r.status.error_message();
    EXPECT_EQ(r.detail->reason(), reason);
  }
  std::string Proof(const std::string& acct, const std::string& password) {
    auto rec = client_->Recover(vault_.Token(acct), acct, password);
    EXPECT_TRUE(rec.result.ok()) << rec.result.status.error_message();
    EXPECT_FALSE(rec.proof.empty());
    return rec.proof;
  }
};

// 10.1: a captured registration_state replayed with the attacker's own
// record used to evaluate the OPRF key of the committed record, uncounted.
TEST_F(VaultRegressionTest, ReplayedRegisterFinishIsNoGuessingOracle) {
  StartVault();
  const std::string acct = "victim1";
  const std::string token = vault_.Token(acct);
  TestClient::Registration victim;
  ASSERT_TRUE(client_->StartRegistration(token, acct, "pw", &victim).ok());
  vault::v1::RegisterFinishResponse finished;
  ASSERT_TRUE(client_->SendFinish(token, victim.finish, &finished).ok());
  ASSERT_TRUE(
      client_
          ->SendCommit(token, client_->CommitRequest(victim, finished,
                                                     SecretBytes::Random(32)))
          .ok());
  EXPECT_EQ(Status(acct).registration_id(),
            victim.start.registration_id());  // the id RegisterStart named
  TestClient::Registration guess;
  ASSERT_TRUE(client_->StartRegistration(token, acct, "guess", &guess).ok());
  guess.finish.set_registration_state(victim.start.registration_state());
  for (int i = 0; i < 3; ++i) {
    vault::v1::RegisterFinishResponse out;
    auto r = client_->SendFinish(token, guess.finish, &out);
    ExpectRefused(r, grpc::StatusCode::FAILED_PRECONDITION,
                  ErrorDetail::REASON_STATE_EXPIRED);
    EXPECT_TRUE(out.ke2().empty());
    // The exact captured request fares no better.
    r = client_->SendFinish(token, victim.finish, &out);
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(out.ke2().empty());
  }
  EXPECT_EQ(Status(acct).attempts_remaining(), 10u);
}

// 10.1: a second RegisterFinish between the victim's finish and commit used
// to swap the pending record, and the victim's commit installed it.
TEST_F(VaultRegressionTest, SecondFinishCannotSwapThePendingRecord) {
  StartVault();
  const std::string acct = "victim2";
  const std::string token = vault_.Token(acct);
  TestClient::Registration victim, attacker;
  ASSERT_TRUE(client_->StartRegistration(token, acct, "victim", &victim).ok());
  vault::v1::RegisterFinishResponse finished;
  ASSERT_TRUE(client_->SendFinish(token, victim.finish, &finished).ok());
  ASSERT_TRUE(
      client_->StartRegistration(token, acct, "attacker", &attacker).ok());
  attacker.finish.set_registration_state(victim.start.registration_state());
  vault::v1::RegisterFinishResponse out;
  EXPECT_FALSE(client_->SendFinish(token, attacker.finish, &out).ok());
  SecretBytes key = SecretBytes::Random(32);
  auto commit =
      client_->SendCommit(token, client_->CommitRequest(victim, finished, key));
  ASSERT_TRUE(commit.ok()) << commit.status.error_message();
  auto rec = client_->Recover(token, acct, "victim");
  ASSERT_TRUE(rec.result.ok()) << rec.result.status.error_message();
  EXPECT_TRUE(rec.backup_key == key);
}

// 10.1: replaying a captured RegisterFinish + RegisterCommit pair used to
// reset a partly spent counter without the password.
TEST_F(VaultRegressionTest, ReplayedFinishAndCommitCannotResetTheCounter) {
  StartVault();
  const std::string acct = "victim3";
  const std::string token = vault_.Token(acct);
  TestClient::Registration victim;
  ASSERT_TRUE(client_->StartRegistration(token, acct, "pw", &victim).ok());
  vault::v1::RegisterFinishResponse finished;
  ASSERT_TRUE(client_->SendFinish(token, victim.finish, &finished).ok());
  const auto commit =
      client_->CommitRequest(victim, finished, SecretBytes::Random(32));
  ASSERT_TRUE(client_->SendCommit(token, commit).ok());
  for (int i = 0; i < 3; ++i) client_->Recover(token, acct, "wrong");
  ASSERT_EQ(Status(acct).attempts_remaining(), 7u);

  vault::v1::RegisterFinishResponse out;
  EXPECT_FALSE(client_->SendFinish(token, victim.finish, &out).ok());
  auto again = client_->SendCommit(token, commit);
  ExpectRefused(again, grpc::StatusCode::FAILED_PRECONDITION,
                ErrorDetail::REASON_STATE_EXPIRED);
  EXPECT_EQ(Status(acct).attempts_remaining(), 7u);
}

// 10.4: the account token alone no longer replaces an ACTIVE record.
TEST_F(VaultRegressionTest, TokenOnlyReRegistrationIsRefused) {
  StartVault();
  const std::string acct = "victim4";
  SecretBytes key = RegisterOrDie(acct, "pw");
  auto r = client_->Register(vault_.Token(acct), acct, "attacker",
                             SecretBytes::Random(32));
  ExpectRefused(r, grpc::StatusCode::FAILED_PRECONDITION,
                ErrorDetail::REASON_PROOF_REQUIRED);
  EXPECT_NE(r.status.error_message().find("RequestReset"), std::string::npos);
  auto rec = client_->Recover(vault_.Token(acct), acct, "pw");
  ASSERT_TRUE(rec.result.ok());
  EXPECT_TRUE(rec.backup_key == key);
}

// 10.4: nor does it delete one.
TEST_F(VaultRegressionTest, TokenOnlyDeleteIsRefused) {
  StartVault();
  const std::string acct = "victim5";
  RegisterOrDie(acct, "pw");
  ExpectRefused(client_->Delete(vault_.Token(acct)),
                grpc::StatusCode::FAILED_PRECONDITION,
                ErrorDetail::REASON_PROOF_REQUIRED);
  EXPECT_EQ(Status(acct).status(), RecordStatus::RECORD_STATUS_ACTIVE);
  // With proof of the password it goes through, and stays idempotent.
  EXPECT_TRUE(client_->Delete(vault_.Token(acct), Proof(acct, "pw")).ok());
  EXPECT_TRUE(client_->Delete(vault_.Token(acct)).ok());
  EXPECT_EQ(Status(acct).status(), RecordStatus::RECORD_STATUS_NONE);
}

TEST_F(VaultRegressionTest, ProofOfAnotherAccountOrRegistrationIsRefused) {
  StartVault();
  const std::string a = "owner-a", b = "owner-b";
  RegisterOrDie(a, "pw-a");
  RegisterOrDie(b, "pw-b");
  const std::string proof_a = Proof(a, "pw-a");
  // a's proof doesn't open for b.
  auto foreign = client_->Delete(vault_.Token(b), proof_a);
  EXPECT_EQ(foreign.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Status(b).status(), RecordStatus::RECORD_STATUS_ACTIVE);
  // a changes password with it; the proof named the old registration.
  ASSERT_TRUE(client_
                  ->Register(vault_.Token(a), a, "pw-a2",
                             SecretBytes::Random(32), proof_a)
                  .ok());
  ExpectRefused(client_->Delete(vault_.Token(a), proof_a),
                grpc::StatusCode::FAILED_PRECONDITION,
                ErrorDetail::REASON_PROOF_REQUIRED);
  EXPECT_EQ(Status(a).status(), RecordStatus::RECORD_STATUS_ACTIVE);
}

TEST_F(VaultRegressionTest, ResetNotYetDueIsRefused) {
  StartVault();  // default delay: 7 days
  const std::string acct = "victim6";
  RegisterOrDie(acct, "pw");
  vault::v1::RequestResetResponse reset;
  ASSERT_TRUE(client_->RequestReset(vault_.Token(acct), &reset).ok());
  const uint64_t due = reset.reset_due_unix_ms();
  const uint64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count();
  EXPECT_GT(due, now_ms + 6ull * 24 * 3600 * 1000);
  EXPECT_EQ(Status(acct).reset_due_unix_ms(), due);
  // The first request stands.
  ASSERT_TRUE(client_->RequestReset(vault_.Token(acct), &reset).ok());
  EXPECT_EQ(reset.reset_due_unix_ms(), due);
  ExpectRefused(client_->Register(vault_.Token(acct), acct, "new",
                                  SecretBytes::Random(32)),
                grpc::StatusCode::FAILED_PRECONDITION,
                ErrorDetail::REASON_PROOF_REQUIRED);
  ExpectRefused(client_->Delete(vault_.Token(acct)),
                grpc::StatusCode::FAILED_PRECONDITION,
                ErrorDetail::REASON_PROOF_REQUIRED);
}

TEST_F(VaultRegressionTest, DueResetReplacesWithoutPassword) {
  StartVault({"--reset-delay-s", "1"});
  const std::string acct = "forgetful";
  RegisterOrDie(acct, "forgotten");
  vault::v1::RequestResetResponse reset;
  ASSERT_TRUE(client_->RequestReset(vault_.Token(acct), &reset).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  SecretBytes key = SecretBytes::Random(32);
  auto r = client_->Register(vault_.Token(acct), acct, "new", key);
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  auto s = Status(acct);
  EXPECT_EQ(s.reset_due_unix_ms(), 0u);  // the commit ends the reset
  auto rec = client_->Recover(vault_.Token(acct), acct, "new");
  ASSERT_TRUE(rec.result.ok());
  EXPECT_TRUE(rec.backup_key == key);
}

TEST_F(VaultRegressionTest, RecoveryCancelsAPendingReset) {
  StartVault({"--reset-delay-s", "1"});
  const std::string acct = "victim7";
  RegisterOrDie(acct, "pw");
  vault::v1::RequestResetResponse reset;
  ASSERT_TRUE(client_->RequestReset(vault_.Token(acct), &reset).ok());
  ASSERT_TRUE(client_->Recover(vault_.Token(acct), acct, "pw").result.ok());
  EXPECT_EQ(Status(acct).reset_due_unix_ms(), 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  ExpectRefused(client_->Delete(vault_.Token(acct)),
                grpc::StatusCode::FAILED_PRECONDITION,
                ErrorDetail::REASON_PROOF_REQUIRED);
}

// 10.3: after a password change no file of the data directory still holds
// the old record (which, with the HSM, the old password would open).
TEST_F(VaultRegressionTest, PasswordChangeShredsTheOldRecord) {
  StartVault();
  const std::string acct = "changer";
  RegisterOrDie(acct, "old");
  const std::string proof = Proof(acct, "old");
  StopVault();
  // The sealed value of the old registration's latest version.
  std::string old_value;
  {
    rocksdb::DB* db = nullptr;
    rocksdb::Options opts;
    ASSERT_TRUE(
        rocksdb::DB::OpenForReadOnly(opts, vault_.data_dir() + "/records", &db)
            .ok());
    std::unique_ptr<rocksdb::DB> owner(db);
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(),
                        storage::RecordDbKey(storage::DeriveAccountKey(acct)),
                        &old_value)
                    .ok());
  }
  ASSERT_GT(old_value.size(), 512u);
  const std::string needle = old_value.substr(old_value.size() / 2, 48);
  ASSERT_GT(FilesContaining(vault_.data_dir() + "/records", needle), 0);
  StartVault();
  ASSERT_TRUE(client_
                  ->Register(vault_.Token(acct), acct, "new",
                             SecretBytes::Random(32), proof)
                  .ok());
  EXPECT_EQ(FilesContaining(vault_.data_dir() + "/records", needle), 0);
  StopVault();
  EXPECT_EQ(FilesContaining(vault_.data_dir(), needle), 0);
}

// 10.7: an account with no record reports the configured limit, and a
// lowered limit applies to records made under a higher one.
TEST_F(VaultRegressionTest, StatusReportsTheLimitThatApplies) {
  StartVault({"--attempt-limit", "6"});
  EXPECT_EQ(Status("nobody").attempt_limit(), 6u);
  RegisterOrDie("lim", "pw");
  StopVault();
  StartVault({"--attempt-limit", "3"});
  auto s = Status("lim");
  EXPECT_EQ(s.attempt_limit(), 3u);
  EXPECT_EQ(s.attempts_remaining(), 3u);
  for (int i = 0; i < 3; ++i) client_->Recover(vault_.Token("lim"), "lim", "x");
  EXPECT_EQ(Status("lim").status(), RecordStatus::RECORD_STATUS_LOCKED);
}

}  // namespace
}  // namespace bkv::testing
