#include "server/attempt_policy.h"

#include <gtest/gtest.h>

namespace bkv::server::policy {
namespace {

using storage::v1::KsfParams;
using storage::v1::RECORD_STATE_ACTIVE;
using storage::v1::RECORD_STATE_LOCKED;
using storage::v1::RECORD_STATE_PENDING;

constexpr int64_t kNow = 1'700'000'000'000;
constexpr Limits kLimits{10, 60'000};
const std::string kRecord(192, 'r');
const std::string kWrapped(60, 'k');

KsfParams Ksf(uint32_t t) {
  KsfParams k;
  k.set_iterations(t);
  k.set_memory_kib(65536);
  k.set_parallelism(4);
  return k;
}

// An active record, made the way the vault makes one.
UserRecord Active(uint64_t reg_id = 7) {
  auto fin =
      RegisterFinish(std::nullopt, kRecord, Ksf(3), reg_id, kNow, kLimits);
  EXPECT_EQ(fin.outcome, RegisterOutcome::kProceed);
  auto commit = RegisterCommit(fin.next, reg_id, true, kWrapped, kNow, kLimits);
  EXPECT_EQ(commit.outcome, RegisterOutcome::kProceed);
  return *commit.next;
}

TEST(PolicyRegisterTest, TwoPhaseCreatesActiveRecord) {
  auto fin = RegisterFinish(std::nullopt, kRecord, Ksf(3), 7, kNow, kLimits);
  ASSERT_EQ(fin.outcome, RegisterOutcome::kProceed);
  EXPECT_EQ(fin.next->state(), RECORD_STATE_PENDING);
  EXPECT_EQ(GetStatus(fin.next, kNow).status, Status::kNone);
  // A pending record is not registered: recovery gets the fake path.
  EXPECT_EQ(RecoverStart(fin.next, kNow, kLimits).outcome,
            StartOutcome::kNotRegistered);

  UserRecord active = Active();
  EXPECT_EQ(active.state(), RECORD_STATE_ACTIVE);
  EXPECT_EQ(active.opaque_record(), kRecord);
  EXPECT_EQ(active.sealed_backup_key(), kWrapped);
  EXPECT_EQ(active.registration_id(), 7u);
  EXPECT_TRUE(active.pending_opaque_record().empty());
  auto status = GetStatus(active, kNow);
  EXPECT_EQ(status.status, Status::kActive);
  EXPECT_EQ(status.attempts_remaining, 10u);
}

TEST(PolicyRegisterTest, InterruptedReRegistrationKeepsCounterAndKey) {
  UserRecord r = Active();
  auto start = RecoverStart(r, kNow, kLimits);
  ASSERT_EQ(start.outcome, StartOutcome::kProceed);
  r = *start.next;  // one attempt spent
  auto fin = RegisterFinish(r, std::string(192, 'n'), Ksf(4), 8, kNow, kLimits);
  ASSERT_EQ(fin.outcome, RegisterOutcome::kProceed);
  // Never committed: everything active is untouched.
  EXPECT_EQ(fin.next->attempts_used(), 1u);
  EXPECT_EQ(fin.next->opaque_record(), kRecord);
  EXPECT_EQ(fin.next->sealed_backup_key(), kWrapped);
  EXPECT_EQ(fin.next->state(), RECORD_STATE_ACTIVE);
  EXPECT_EQ(GetStatus(fin.next, kNow).attempts_remaining, 9u);
}

TEST(PolicyRegisterTest, CommitReplacesAtomicallyAndResets) {
  UserRecord r = *RecoverStart(Active(), kNow, kLimits).next;
  auto fin = RegisterFinish(r, std::string(192, 'n'), Ksf(4), 8, kNow, kLimits);
  auto commit = RegisterCommit(fin.next, 8, true, std::string(60, 'w'),
                               kNow + 1, kLimits);
  ASSERT_EQ(commit.outcome, RegisterOutcome::kProceed);
  EXPECT_EQ(commit.next->opaque_record(), std::string(192, 'n'));
  EXPECT_EQ(commit.next->ksf().iterations(), 4u);
  EXPECT_EQ(commit.next->sealed_backup_key(), std::string(60, 'w'));
  EXPECT_EQ(commit.next->attempts_used(), 0u);
  EXPECT_EQ(commit.next->registration_id(), 8u);
  EXPECT_EQ(commit.next->open_logins_size(), 0);
}

TEST(PolicyRegisterTest, CommitNeedsMatchingPendingAndValidProof) {
  auto fin = RegisterFinish(std::nullopt, kRecord, Ksf(3), 7, kNow, kLimits);
  EXPECT_EQ(RegisterCommit(fin.next, 6, true, kWrapped, kNow, kLimits).outcome,
            RegisterOutcome::kStale);
  EXPECT_EQ(
      RegisterCommit(std::nullopt, 7, true, kWrapped, kNow, kLimits).outcome,
      RegisterOutcome::kStale);
  EXPECT_EQ(RegisterCommit(fin.next, 7, false, kWrapped, kNow, kLimits).outcome,
            RegisterOutcome::kInvalidProof);
  // Once committed, replaying the commit finds no pending registration.
  UserRecord active = Active(7);
  EXPECT_EQ(RegisterCommit(active, 7, true, kWrapped, kNow, kLimits).outcome,
            RegisterOutcome::kStale);
}

TEST(PolicyRecoverTest, StartCountsBeforeAnswering) {
  UserRecord r = Active();
  for (uint32_t i = 1; i <= 10; ++i) {
    auto d = RecoverStart(r, kNow, kLimits);
    ASSERT_EQ(d.outcome, StartOutcome::kProceed) << i;
    ASSERT_TRUE(d.next.has_value());
    EXPECT_EQ(d.next->attempts_used(), i);
    EXPECT_EQ(d.attempts_remaining, 10 - i);
    EXPECT_EQ(d.registration_id, 7u);
    EXPECT_EQ(d.login_seq, i - 1);
    EXPECT_EQ(d.expires_ms, kNow + 60'000);
    r = *d.next;
  }
  // All ten spent, all still open: wait for them, don't lock yet.
  auto wait = RecoverStart(r, kNow + 1, kLimits);
  EXPECT_EQ(wait.outcome, StartOutcome::kWaitForOpenLogin);
  EXPECT_EQ(wait.retry_after_ms, 59'999);
  EXPECT_FALSE(wait.next.has_value());
  // Abandoned attempts count: once they expire the record locks.
  auto locked = RecoverStart(r, kNow + 60'000, kLimits);
  EXPECT_EQ(locked.outcome, StartOutcome::kLocked);
  ASSERT_TRUE(locked.next.has_value());
  EXPECT_EQ(locked.next->state(), RECORD_STATE_LOCKED);
  EXPECT_TRUE(locked.next->sealed_backup_key().empty());
}

TEST(PolicyRecoverTest, LimitMinusOneWrongThenRightSucceedsAndResets) {
  UserRecord r = Active();
  for (int i = 0; i < 9; ++i) {
    auto s = RecoverStart(r, kNow, kLimits);
    ASSERT_EQ(s.outcome, StartOutcome::kProceed);
    auto f = RecoverFinish(s.next, s.registration_id, s.login_seq, false, kNow);
    ASSERT_EQ(f.outcome, FinishOutcome::kInvalidLogin) << i;
    EXPECT_EQ(f.attempts_remaining, 10u - (i + 1));
    r = *f.next;
  }
  auto s = RecoverStart(r, kNow, kLimits);
  ASSERT_EQ(s.outcome, StartOutcome::kProceed);
  EXPECT_EQ(s.attempts_remaining, 0u);
  auto f = RecoverFinish(s.next, s.registration_id, s.login_seq, true, kNow);
  ASSERT_EQ(f.outcome, FinishOutcome::kRelease);
  EXPECT_EQ(f.next->attempts_used(), 0u);
  EXPECT_EQ(f.next->sealed_backup_key(), kWrapped);
  EXPECT_EQ(GetStatus(f.next, kNow).attempts_remaining, 10u);
}

TEST(PolicyRecoverTest, LimitWrongLocksForGood) {
  UserRecord r = Active();
  FinishDecision f;
  for (int i = 0; i < 10; ++i) {
    auto s = RecoverStart(r, kNow, kLimits);
    ASSERT_EQ(s.outcome, StartOutcome::kProceed);
    f = RecoverFinish(s.next, s.registration_id, s.login_seq, false, kNow);
    r = *f.next;
  }
  EXPECT_EQ(f.outcome, FinishOutcome::kLocked);
  EXPECT_EQ(r.state(), RECORD_STATE_LOCKED);
  EXPECT_TRUE(r.sealed_backup_key().empty());
  EXPECT_EQ(GetStatus(r, kNow).status, Status::kLocked);
  EXPECT_EQ(RecoverStart(r, kNow, kLimits).outcome, StartOutcome::kLocked);
  // Even a correct proof for an old login state gets nothing.
  EXPECT_EQ(RecoverFinish(r, 7, 0, true, kNow).outcome, FinishOutcome::kLocked);
  EXPECT_EQ(RegisterFinish(r, kRecord, Ksf(3), 9, kNow, kLimits).outcome,
            RegisterOutcome::kLocked);
}

TEST(PolicyRecoverTest, LoginStateIsUsableOnce) {
  UserRecord r = Active();
  auto s = RecoverStart(r, kNow, kLimits);
  auto f = RecoverFinish(s.next, s.registration_id, s.login_seq, false, kNow);
  ASSERT_EQ(f.outcome, FinishOutcome::kInvalidLogin);
  // Replaying the same state, even with a "valid" proof, is stale.
  auto replay =
      RecoverFinish(f.next, s.registration_id, s.login_seq, true, kNow);
  EXPECT_EQ(replay.outcome, FinishOutcome::kStale);
  EXPECT_FALSE(replay.next.has_value());

  auto s2 = RecoverStart(f.next, kNow, kLimits);
  auto ok =
      RecoverFinish(s2.next, s2.registration_id, s2.login_seq, true, kNow);
  ASSERT_EQ(ok.outcome, FinishOutcome::kRelease);
  EXPECT_EQ(RecoverFinish(ok.next, s2.registration_id, s2.login_seq, true, kNow)
                .outcome,
            FinishOutcome::kStale);
}

TEST(PolicyRecoverTest, ExpiredOrForeignStatesAreStale) {
  UserRecord r = Active(7);
  auto s = RecoverStart(r, kNow, kLimits);
  EXPECT_EQ(RecoverFinish(s.next, 7, s.login_seq, true, kNow + 60'000).outcome,
            FinishOutcome::kStale);
  // A state from an earlier registration of the same account.
  EXPECT_EQ(RecoverFinish(s.next, 6, s.login_seq, true, kNow).outcome,
            FinishOutcome::kStale);
  // An unknown seq.
  EXPECT_EQ(RecoverFinish(s.next, 7, 99, true, kNow).outcome,
            FinishOutcome::kStale);
  EXPECT_EQ(RecoverFinish(std::nullopt, 7, 0, true, kNow).outcome,
            FinishOutcome::kStale);
}

TEST(PolicyRecoverTest, ConcurrentLoginsEachCountAndSuccessClosesAll) {
  UserRecord r = Active();
  auto a = RecoverStart(r, kNow, kLimits);
  auto b = RecoverStart(a.next, kNow, kLimits);
  EXPECT_NE(a.login_seq, b.login_seq);
  EXPECT_EQ(b.next->attempts_used(), 2u);
  auto ok = RecoverFinish(b.next, 7, a.login_seq, true, kNow);
  ASSERT_EQ(ok.outcome, FinishOutcome::kRelease);
  EXPECT_EQ(RecoverFinish(ok.next, 7, b.login_seq, true, kNow).outcome,
            FinishOutcome::kStale);
}

TEST(PolicyRecoverTest, LastOpenLoginMaySucceedAfterOthersFail) {
  Limits two{2, 60'000};
  auto fin = RegisterFinish(std::nullopt, kRecord, Ksf(3), 1, kNow, two);
  UserRecord r = *RegisterCommit(fin.next, 1, true, kWrapped, kNow, two).next;
  auto a = RecoverStart(r, kNow, two);
  auto b = RecoverStart(a.next, kNow, two);
  auto fa = RecoverFinish(b.next, 1, a.login_seq, false, kNow);
  // b is still open: not locked yet.
  EXPECT_EQ(fa.outcome, FinishOutcome::kInvalidLogin);
  EXPECT_EQ(fa.attempts_remaining, 0u);
  auto fb = RecoverFinish(fa.next, 1, b.login_seq, true, kNow);
  EXPECT_EQ(fb.outcome, FinishOutcome::kRelease);
}

TEST(PolicyStatusTest, NoneActiveLockedAndLazyLock) {
  EXPECT_EQ(GetStatus(std::nullopt, kNow).status, Status::kNone);
  Limits one{1, 60'000};
  auto fin = RegisterFinish(std::nullopt, kRecord, Ksf(3), 1, kNow, one);
  UserRecord r = *RegisterCommit(fin.next, 1, true, kWrapped, kNow, one).next;
  auto s = RecoverStart(r, kNow, one);
  auto view = GetStatus(s.next, kNow);
  EXPECT_EQ(view.status, Status::kActive);
  EXPECT_EQ(view.attempts_remaining, 0u);
  EXPECT_FALSE(view.write.has_value());
  // The abandoned last attempt expires: status reports and writes the lock.
  auto later = GetStatus(s.next, kNow + 60'000);
  EXPECT_EQ(later.status, Status::kLocked);
  ASSERT_TRUE(later.write.has_value());
  EXPECT_EQ(later.write->state(), RECORD_STATE_LOCKED);
  EXPECT_TRUE(later.write->sealed_backup_key().empty());
}

}  // namespace
}  // namespace bkv::server::policy
