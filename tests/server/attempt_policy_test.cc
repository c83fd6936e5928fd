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
      RegisterFinish(std::nullopt, kRecord, Ksf(3), reg_id, 0, kNow, kLimits);
  EXPECT_EQ(fin.outcome, RegisterOutcome::kProceed);
  auto commit =
      RegisterCommit(fin.next, reg_id, true, true, kWrapped, kNow, kLimits);
  EXPECT_EQ(commit.outcome, RegisterOutcome::kProceed);
  return *commit.next;
}

TEST(PolicyRegisterTest, TwoPhaseCreatesActiveRecord) {
  auto fin = RegisterFinish(std::nullopt, kRecord, Ksf(3), 7, 0, kNow, kLimits);
  ASSERT_EQ(fin.outcome, RegisterOutcome::kProceed);
  EXPECT_EQ(fin.next->state(), RECORD_STATE_PENDING);
  EXPECT_EQ(GetStatus(fin.next, kNow, kLimits).status, Status::kNone);
  // A pending record is not registered: recovery gets the fake path.
  EXPECT_EQ(RecoverStart(fin.next, kNow, kLimits).outcome,
            StartOutcome::kNotRegistered);

  UserRecord active = Active();
  EXPECT_EQ(active.state(), RECORD_STATE_ACTIVE);
  EXPECT_EQ(active.opaque_record(), kRecord);
  EXPECT_EQ(active.sealed_backup_key(), kWrapped);
  EXPECT_EQ(active.registration_id(), 7u);
  EXPECT_TRUE(active.pending_opaque_record().empty());
  auto status = GetStatus(active, kNow, kLimits);
  EXPECT_EQ(status.status, Status::kActive);
  EXPECT_EQ(status.attempts_remaining, 10u);
}

TEST(PolicyRegisterTest, InterruptedReRegistrationKeepsCounterAndKey) {
  UserRecord r = Active();
  auto start = RecoverStart(r, kNow, kLimits);
  ASSERT_EQ(start.outcome, StartOutcome::kProceed);
  r = *start.next;  // one attempt spent
  auto fin =
      RegisterFinish(r, std::string(192, 'n'), Ksf(4), 8, 7, kNow, kLimits);
  ASSERT_EQ(fin.outcome, RegisterOutcome::kProceed);
  // Never committed: everything active is untouched.
  EXPECT_EQ(fin.next->attempts_used(), 1u);
  EXPECT_EQ(fin.next->opaque_record(), kRecord);
  EXPECT_EQ(fin.next->sealed_backup_key(), kWrapped);
  EXPECT_EQ(fin.next->state(), RECORD_STATE_ACTIVE);
  EXPECT_EQ(GetStatus(fin.next, kNow, kLimits).attempts_remaining, 9u);
}

TEST(PolicyRegisterTest, CommitReplacesAtomicallyAndResets) {
  UserRecord r = *RecoverStart(Active(), kNow, kLimits).next;
  auto fin =
      RegisterFinish(r, std::string(192, 'n'), Ksf(4), 8, 7, kNow, kLimits);
  auto commit = RegisterCommit(fin.next, 8, true, true, std::string(60, 'w'),
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
  auto fin = RegisterFinish(std::nullopt, kRecord, Ksf(3), 7, 0, kNow, kLimits);
  EXPECT_EQ(
      RegisterCommit(fin.next, 6, true, true, kWrapped, kNow, kLimits).outcome,
      RegisterOutcome::kStale);
  EXPECT_EQ(RegisterCommit(std::nullopt, 7, true, true, kWrapped, kNow, kLimits)
                .outcome,
            RegisterOutcome::kStale);
  EXPECT_EQ(
      RegisterCommit(fin.next, 7, true, false, kWrapped, kNow, kLimits).outcome,
      RegisterOutcome::kInvalidProof);
  // The pending slot holds another record than the ticket was issued for.
  EXPECT_EQ(
      RegisterCommit(fin.next, 7, false, true, kWrapped, kNow, kLimits).outcome,
      RegisterOutcome::kStale);
  // Once committed, replaying the commit finds no pending registration.
  UserRecord active = Active(7);
  EXPECT_EQ(
      RegisterCommit(active, 7, true, true, kWrapped, kNow, kLimits).outcome,
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
    auto f = RecoverFinish(s.next, s.registration_id, s.login_seq, false, kNow,
                           kLimits);
    ASSERT_EQ(f.outcome, FinishOutcome::kInvalidLogin) << i;
    EXPECT_EQ(f.attempts_remaining, 10u - (i + 1));
    r = *f.next;
  }
  auto s = RecoverStart(r, kNow, kLimits);
  ASSERT_EQ(s.outcome, StartOutcome::kProceed);
  EXPECT_EQ(s.attempts_remaining, 0u);
  auto f = RecoverFinish(s.next, s.registration_id, s.login_seq, true, kNow,
                         kLimits);
  ASSERT_EQ(f.outcome, FinishOutcome::kRelease);
  EXPECT_EQ(f.next->attempts_used(), 0u);
  EXPECT_EQ(f.next->sealed_backup_key(), kWrapped);
  EXPECT_EQ(GetStatus(f.next, kNow, kLimits).attempts_remaining, 10u);
}

TEST(PolicyRecoverTest, LimitWrongLocksForGood) {
  UserRecord r = Active();
  FinishDecision f;
  for (int i = 0; i < 10; ++i) {
    auto s = RecoverStart(r, kNow, kLimits);
    ASSERT_EQ(s.outcome, StartOutcome::kProceed);
    f = RecoverFinish(s.next, s.registration_id, s.login_seq, false, kNow,
                      kLimits);
    r = *f.next;
  }
  EXPECT_EQ(f.outcome, FinishOutcome::kLocked);
  EXPECT_EQ(r.state(), RECORD_STATE_LOCKED);
  EXPECT_TRUE(r.sealed_backup_key().empty());
  EXPECT_EQ(GetStatus(r, kNow, kLimits).status, Status::kLocked);
  EXPECT_EQ(RecoverStart(r, kNow, kLimits).outcome, StartOutcome::kLocked);
  // Even a correct proof for an old login state gets nothing.
  EXPECT_EQ(RecoverFinish(r, 7, 0, true, kNow, kLimits).outcome,
            FinishOutcome::kLocked);
  EXPECT_EQ(RegisterFinish(r, kRecord, Ksf(3), 9, 0, kNow, kLimits).outcome,
            RegisterOutcome::kLocked);
}

TEST(PolicyRecoverTest, LoginStateIsUsableOnce) {
  UserRecord r = Active();
  auto s = RecoverStart(r, kNow, kLimits);
  auto f = RecoverFinish(s.next, s.registration_id, s.login_seq, false, kNow,
                         kLimits);
  ASSERT_EQ(f.outcome, FinishOutcome::kInvalidLogin);
  // Replaying the same state, even with a "valid" proof, is stale.
  auto replay = RecoverFinish(f.next, s.registration_id, s.login_seq, true,
                              kNow, kLimits);
  EXPECT_EQ(replay.outcome, FinishOutcome::kStale);
  EXPECT_FALSE(replay.next.has_value());

  auto s2 = RecoverStart(f.next, kNow, kLimits);
  auto ok = RecoverFinish(s2.next, s2.registration_id, s2.login_seq, true, kNow,
                          kLimits);
  ASSERT_EQ(ok.outcome, FinishOutcome::kRelease);
  EXPECT_EQ(RecoverFinish(ok.next, s2.registration_id, s2.login_seq, true, kNow,
                          kLimits)
                .outcome,
            FinishOutcome::kStale);
}

TEST(PolicyRecoverTest, ExpiredOrForeignStatesAreStale) {
  UserRecord r = Active(7);
  auto s = RecoverStart(r, kNow, kLimits);
  EXPECT_EQ(RecoverFinish(s.next, 7, s.login_seq, true, kNow + 60'000, kLimits)
                .outcome,
            FinishOutcome::kStale);
  // A state from an earlier registration of the same account.
  EXPECT_EQ(RecoverFinish(s.next, 6, s.login_seq, true, kNow, kLimits).outcome,
            FinishOutcome::kStale);
  // An unknown seq.
  EXPECT_EQ(RecoverFinish(s.next, 7, 99, true, kNow, kLimits).outcome,
            FinishOutcome::kStale);
  EXPECT_EQ(RecoverFinish(std::nullopt, 7, 0, true, kNow, kLimits).outcome,
            FinishOutcome::kStale);
}

TEST(PolicyRecoverTest, ConcurrentLoginsEachCountAndSuccessClosesAll) {
  UserRecord r = Active();
  auto a = RecoverStart(r, kNow, kLimits);
  auto b = RecoverStart(a.next, kNow, kLimits);
  EXPECT_NE(a.login_seq, b.login_seq);
  EXPECT_EQ(b.next->attempts_used(), 2u);
  auto ok = RecoverFinish(b.next, 7, a.login_seq, true, kNow, kLimits);
  ASSERT_EQ(ok.outcome, FinishOutcome::kRelease);
  EXPECT_EQ(RecoverFinish(ok.next, 7, b.login_seq, true, kNow, kLimits).outcome,
            FinishOutcome::kStale);
}

TEST(PolicyRecoverTest, LastOpenLoginMaySucceedAfterOthersFail) {
  Limits two{2, 60'000};
  auto fin = RegisterFinish(std::nullopt, kRecord, Ksf(3), 1, 0, kNow, two);
  UserRecord r =
      *RegisterCommit(fin.next, 1, true, true, kWrapped, kNow, two).next;
  auto a = RecoverStart(r, kNow, two);
  auto b = RecoverStart(a.next, kNow, two);
  auto fa = RecoverFinish(b.next, 1, a.login_seq, false, kNow, kLimits);
  // b is still open: not locked yet.
  EXPECT_EQ(fa.outcome, FinishOutcome::kInvalidLogin);
  EXPECT_EQ(fa.attempts_remaining, 0u);
  auto fb = RecoverFinish(fa.next, 1, b.login_seq, true, kNow, kLimits);
  EXPECT_EQ(fb.outcome, FinishOutcome::kRelease);
}

TEST(PolicyStatusTest, NoneActiveLockedAndLazyLock) {
  EXPECT_EQ(GetStatus(std::nullopt, kNow, kLimits).status, Status::kNone);
  Limits one{1, 60'000};
  auto fin = RegisterFinish(std::nullopt, kRecord, Ksf(3), 1, 0, kNow, one);
  UserRecord r =
      *RegisterCommit(fin.next, 1, true, true, kWrapped, kNow, one).next;
  auto s = RecoverStart(r, kNow, one);
  auto view = GetStatus(s.next, kNow, kLimits);
  EXPECT_EQ(view.status, Status::kActive);
  EXPECT_EQ(view.attempts_remaining, 0u);
  EXPECT_FALSE(view.write.has_value());
  // The abandoned last attempt expires: status reports and writes the lock.
  auto later = GetStatus(s.next, kNow + 60'000, kLimits);
  EXPECT_EQ(later.status, Status::kLocked);
  ASSERT_TRUE(later.write.has_value());
  EXPECT_EQ(later.write->state(), RECORD_STATE_LOCKED);
  EXPECT_TRUE(later.write->sealed_backup_key().empty());
}

// One RegisterFinish per registration id: pending, active and consumed ids
// are all refused, before any authority check.
TEST(PolicyRegisterTest, EachRegistrationIdFinishesOnce) {
  auto fin = RegisterFinish(std::nullopt, kRecord, Ksf(3), 7, 0, kNow, kLimits);
  ASSERT_EQ(fin.outcome, RegisterOutcome::kProceed);
  EXPECT_EQ(
      RegisterFinish(fin.next, kRecord, Ksf(3), 7, 0, kNow, kLimits).outcome,
      RegisterOutcome::kReplayed);
  // A newer registration supersedes 7; 7 stays consumed.
  auto other = RegisterFinish(fin.next, kRecord, Ksf(3), 8, 0, kNow, kLimits);
  ASSERT_EQ(other.outcome, RegisterOutcome::kProceed);
  EXPECT_EQ(
      RegisterFinish(other.next, kRecord, Ksf(3), 7, 0, kNow, kLimits).outcome,
      RegisterOutcome::kReplayed);
  UserRecord active = Active(7);
  EXPECT_EQ(
      RegisterFinish(active, kRecord, Ksf(3), 7, 7, kNow, kLimits).outcome,
      RegisterOutcome::kReplayed);
  // Consumed ids are forgotten once every ticket naming them has expired.
  EXPECT_EQ(RegisterFinish(other.next, kRecord, Ksf(3), 7, 0,
                           kNow + kLimits.login_ttl_ms, kLimits)
                .outcome,
            RegisterOutcome::kProceed);
}

TEST(PolicyRegisterTest, ConsumedIdsAreBounded) {
  auto r = RegisterFinish(std::nullopt, kRecord, Ksf(3), 1, 0, kNow, kLimits);
  uint64_t id = 2;
  for (; id < 100; ++id) {
    auto next = RegisterFinish(r.next, kRecord, Ksf(3), id, 0, kNow, kLimits);
    if (next.outcome != RegisterOutcome::kProceed) {
      EXPECT_EQ(next.outcome, RegisterOutcome::kBusy);
      EXPECT_EQ(next.retry_after_ms, kLimits.login_ttl_ms);
      break;
    }
    r = next;
  }
  EXPECT_EQ(r.next->consumed_registrations_size(), kMaxConsumedRegistrations);
  EXPECT_LE(r.next->ByteSizeLong() + 192 + 16 * 16 + 80, 1020u);
}

TEST(PolicyAuthorityTest, ReplacingAnActiveRecordNeedsProofOrDueReset) {
  UserRecord active = Active(7);
  EXPECT_EQ(
      RegisterFinish(active, kRecord, Ksf(3), 8, 0, kNow, kLimits).outcome,
      RegisterOutcome::kProofRequired);
  EXPECT_EQ(
      RegisterFinish(active, kRecord, Ksf(3), 8, 6, kNow, kLimits).outcome,
      RegisterOutcome::kProofRequired);  // proof of another registration
  EXPECT_EQ(
      RegisterFinish(active, kRecord, Ksf(3), 8, 7, kNow, kLimits).outcome,
      RegisterOutcome::kProceed);
  EXPECT_EQ(Delete(active, 0, kNow, kLimits), DeleteOutcome::kProofRequired);
  EXPECT_EQ(Delete(active, 7, kNow, kLimits), DeleteOutcome::kDelete);
  EXPECT_EQ(Delete(std::nullopt, 0, kNow, kLimits), DeleteOutcome::kAbsent);

  auto reset = RequestReset(active, kNow, kLimits);
  ASSERT_EQ(reset.outcome, ResetOutcome::kRequested);
  EXPECT_EQ(reset.due_ms, kNow + kLimits.reset_delay_ms);
  // The first request stands.
  auto again = RequestReset(reset.next, kNow + 5, kLimits);
  EXPECT_FALSE(again.next.has_value());
  EXPECT_EQ(again.due_ms, reset.due_ms);
  EXPECT_EQ(GetStatus(reset.next, kNow, kLimits).reset_due_unix_ms,
            reset.due_ms);
  EXPECT_EQ(Delete(reset.next, 0, reset.due_ms - 1, kLimits),
            DeleteOutcome::kProofRequired);
  EXPECT_EQ(Delete(reset.next, 0, reset.due_ms, kLimits),
            DeleteOutcome::kDelete);
  auto via_reset =
      RegisterFinish(reset.next, kRecord, Ksf(3), 8, 0, reset.due_ms, kLimits);
  ASSERT_EQ(via_reset.outcome, RegisterOutcome::kProceed);
  EXPECT_TRUE(via_reset.next->pending_via_reset());

  // A successful recovery cancels the reset and the registration it allowed.
  auto s = RecoverStart(via_reset.next, reset.due_ms, kLimits);
  auto f = RecoverFinish(s.next, 7, s.login_seq, true, reset.due_ms, kLimits);
  ASSERT_EQ(f.outcome, FinishOutcome::kRelease);
  EXPECT_EQ(f.next->reset_requested_unix_ms(), 0);
  EXPECT_TRUE(f.next->pending_opaque_record().empty());
  // Review finding C6 of branch shred: the dropped version is shredded.
  EXPECT_TRUE(f.next->shred_pending());
  EXPECT_EQ(
      RegisterCommit(f.next, 8, true, true, kWrapped, reset.due_ms, kLimits)
          .outcome,
      RegisterOutcome::kStale);
}

TEST(PolicyLimitTest, TheLowerLimitApplies) {
  UserRecord active = Active(7);  // limit 10
  Limits lowered{3, 60'000};
  EXPECT_EQ(EffectiveLimit(active, lowered), 3u);
  EXPECT_EQ(GetStatus(active, kNow, lowered).attempts_remaining, 3u);
  EXPECT_EQ(GetStatus(std::nullopt, kNow, lowered).attempt_limit, 3u);
  Limits raised{16, 60'000};
  EXPECT_EQ(GetStatus(active, kNow, raised).attempt_limit, 10u);
  for (int i = 0; i < 3; ++i) {
    auto s = RecoverStart(active, kNow, lowered);
    ASSERT_EQ(s.outcome, StartOutcome::kProceed);
    active = *RecoverFinish(s.next, 7, s.login_seq, false, kNow, lowered).next;
  }
  EXPECT_EQ(active.state(), RECORD_STATE_LOCKED);
}

TEST(PolicyRecoverTest, RefundGivesBackAnUnansweredAttempt) {
  UserRecord r = Active(7);
  auto s = RecoverStart(r, kNow, kLimits);
  auto refunded = RefundStart(s.next, 7, s.login_seq);
  ASSERT_TRUE(refunded.has_value());
  EXPECT_EQ(refunded->attempts_used(), 0u);
  EXPECT_EQ(refunded->open_logins_size(), 0);
  // Nothing to undo twice, nor for another registration's login.
  EXPECT_FALSE(RefundStart(refunded, 7, s.login_seq).has_value());
  EXPECT_FALSE(RefundStart(s.next, 6, s.login_seq).has_value());
}

}  // namespace
}  // namespace bkv::server::policy
