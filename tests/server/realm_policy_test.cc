// The realm's registration decisions (server/realm_policy.h) and the v2
// counting path on a realm record: pure functions, every path.
#include "server/realm_policy.h"

#include <gtest/gtest.h>

#include "server/attempt_policy.h"

namespace bkv::server::realm_policy {
namespace {

using storage::v1::RECORD_STATE_ACTIVE;
using storage::v1::RECORD_STATE_LOCKED;
using storage::v1::RECORD_STATE_PENDING;

constexpr int64_t kNow = 1'000'000;
constexpr int64_t kTtl = 600'000;
const policy::Limits kLimits{};

RealmShare Share(char version, uint64_t epoch, uint32_t g = 5) {
  RealmShare s;
  s.set_registration_version(std::string(16, version));
  s.set_per_realm_limit(g);
  s.set_descriptor_bytes("descriptor");
  s.set_oprf_key_share(std::string(32, 'k'));
  s.set_secret_share(std::string(32, 's'));
  s.set_wrapped_key(std::string(60, 'w'));
  s.set_epoch(epoch);
  s.set_opaque_record(std::string(192, 'r'));
  s.set_commit_hash(std::string(32, version));
  s.set_commitment(std::string(32, 'c'));
  return s;
}

// Prepared and committed: an ACTIVE realm record on version `v`.
UserRecord Active(char v, uint64_t epoch) {
  auto p = Prepare(std::nullopt, Share(v, epoch), 0, kNow, kTtl, kLimits);
  EXPECT_EQ(p.outcome, PrepareOutcome::kProceed);
  auto c = Commit(p.next, std::string(16, v), std::string(32, v), 77, kNow);
  EXPECT_EQ(c.outcome, CommitOutcome::kCommitted);
  return *c.next;
}

TEST(RealmPolicyTest, PrepareThenCommitActivatesWithLimitG) {
  auto p = Prepare(std::nullopt, Share('a', 1), 0, kNow, kTtl, kLimits);
  ASSERT_EQ(p.outcome, PrepareOutcome::kProceed);
  EXPECT_EQ(p.next->state(), RECORD_STATE_PENDING);
  EXPECT_EQ(p.next->realm_epoch(), 1u);
  auto c = Commit(p.next, std::string(16, 'a'), std::string(32, 'a'), 77, kNow);
  ASSERT_EQ(c.outcome, CommitOutcome::kCommitted);
  EXPECT_EQ(c.next->state(), RECORD_STATE_ACTIVE);
  EXPECT_EQ(c.next->attempt_limit(), 5u);
  EXPECT_EQ(c.next->registration_id(), 77u);
  EXPECT_EQ(c.next->opaque_record(), std::string(192, 'r'));
  EXPECT_EQ(c.next->sealed_backup_key(), std::string(60, 'w'));
  EXPECT_FALSE(c.next->has_pending_realm());
  EXPECT_FALSE(c.superseded_active);
}

TEST(RealmPolicyTest, CommitIsIdempotentAndNeedsTheSecret) {
  UserRecord r = Active('a', 1);
  auto again = Commit(r, std::string(16, 'a'), std::string(32, 'a'), 78, kNow);
  EXPECT_EQ(again.outcome, CommitOutcome::kAlreadyActive);
  EXPECT_FALSE(again.next.has_value());
  auto p = Prepare(r, Share('b', 2), 0, kNow, kTtl, kLimits);
  ASSERT_EQ(p.outcome, PrepareOutcome::kProofRequired);    // ACTIVE: authority
  p = Prepare(r, Share('b', 2), 77, kNow, kTtl, kLimits);  // with a proof
  ASSERT_EQ(p.outcome, PrepareOutcome::kProceed);
  EXPECT_EQ(p.next->realm().registration_version(), std::string(16, 'a'));
  EXPECT_EQ(p.next->attempt_limit(), 5u);  // the active version untouched
  EXPECT_EQ(Commit(p.next, std::string(16, 'b'), std::string(32, 'x'), 79, kNow)
                .outcome,
            CommitOutcome::kStale);  // wrong commit secret
  EXPECT_EQ(Commit(p.next, std::string(16, 'c'), std::string(32, 'b'), 79, kNow)
                .outcome,
            CommitOutcome::kStale);  // another version
  auto c = Commit(p.next, std::string(16, 'b'), std::string(32, 'b'), 79, kNow);
  ASSERT_EQ(c.outcome, CommitOutcome::kCommitted);
  EXPECT_TRUE(c.superseded_active);
}

TEST(RealmPolicyTest, EpochMustRiseEvenAfterATombstone) {
  UserRecord r = Active('a', 3);
  EXPECT_EQ(Prepare(r, Share('b', 3), 77, kNow, kTtl, kLimits).outcome,
            PrepareOutcome::kStaleEpoch);
  UserRecord tombstone;
  tombstone.set_realm_tombstone(true);
  tombstone.set_realm_epoch(3);
  auto p = Prepare(tombstone, Share('a', 3), 0, kNow, kTtl, kLimits);
  EXPECT_EQ(p.outcome, PrepareOutcome::kStaleEpoch);  // the replay
  EXPECT_EQ(p.epoch, 3u);
  p = Prepare(tombstone, Share('b', 4), 0, kNow, kTtl, kLimits);
  ASSERT_EQ(p.outcome, PrepareOutcome::kProceed);
  EXPECT_FALSE(p.next->realm_tombstone());
  EXPECT_EQ(
      Commit(tombstone, std::string(16, 'a'), std::string(32, 'a'), 1, kNow)
          .outcome,
      CommitOutcome::kStale);
}

TEST(RealmPolicyTest, PendingVersionBlocksAnotherUntilItsTtl) {
  auto p = Prepare(std::nullopt, Share('a', 1), 0, kNow, kTtl, kLimits);
  auto busy = Prepare(p.next, Share('b', 2), 0, kNow + 1, kTtl, kLimits);
  EXPECT_EQ(busy.outcome, PrepareOutcome::kPendingBusy);
  EXPECT_EQ(busy.retry_after_ms, kTtl - 1);
  EXPECT_EQ(
      Prepare(p.next, Share('b', 2), 0, kNow + kTtl, kTtl, kLimits).outcome,
      PrepareOutcome::kProceed);
}

// A version prepared on the strength of a due reset goes when the password
// holder recovers (v2's "forgot password" rule); one with a proof stays.
TEST(RealmPolicyTest, RecoveryDropsAVersionAResetAuthorized) {
  for (bool via_reset : {true, false}) {
    UserRecord r = Active('a', 1);
    r.set_reset_requested_unix_ms(kNow - kLimits.reset_delay_ms - 1);
    auto p = Prepare(r, Share('b', 2), via_reset ? 0 : 77, kNow, kTtl, kLimits);
    ASSERT_EQ(p.outcome, PrepareOutcome::kProceed);
    auto s = policy::RecoverStart(*p.next, kNow, kLimits);
    ASSERT_EQ(s.outcome, policy::StartOutcome::kProceed);
    auto f = policy::RecoverFinish(*s.next, s.registration_id, s.login_seq,
                                   true, kNow, kLimits);
    ASSERT_EQ(f.outcome, policy::FinishOutcome::kRelease);
    EXPECT_EQ(f.next->has_pending_realm(), !via_reset) << via_reset;
    EXPECT_EQ(f.next->realm().registration_version(), std::string(16, 'a'));
  }
}

// The v2 counting path on a realm record: G failures lock it and erase
// k_i, s_i and wrapped; a locked record refuses Prepare and Commit.
TEST(RealmPolicyTest, LockoutAtGErasesTheShares) {
  UserRecord r = Active('a', 1);
  for (int i = 0; i < 5; ++i) {
    auto s = policy::RecoverStart(r, kNow, kLimits);
    ASSERT_EQ(s.outcome, policy::StartOutcome::kProceed) << i;
    auto f = policy::RecoverFinish(*s.next, s.registration_id, s.login_seq,
                                   false, kNow, kLimits);
    r = *f.next;
  }
  EXPECT_EQ(r.state(), RECORD_STATE_LOCKED);
  EXPECT_TRUE(r.realm().oprf_key_share().empty());
  EXPECT_TRUE(r.realm().secret_share().empty());
  EXPECT_TRUE(r.realm().wrapped_key().empty());
  EXPECT_TRUE(r.sealed_backup_key().empty());
  EXPECT_EQ(r.realm().per_realm_limit(), 5u);  // framing still binds G
  EXPECT_EQ(Prepare(r, Share('b', 2), 0, kNow, kTtl, kLimits).outcome,
            PrepareOutcome::kLocked);
  EXPECT_EQ(
      Commit(r, std::string(16, 'a'), std::string(32, 'a'), 1, kNow).outcome,
      CommitOutcome::kLocked);
}

// G is capped by the realm's configured limit (min), never raised by it.
TEST(RealmPolicyTest, EffectiveLimitIsTheLowerOfGAndConfigured) {
  UserRecord r = Active('a', 1);
  policy::Limits lower = kLimits;
  lower.attempt_limit = 3;
  EXPECT_EQ(policy::EffectiveLimit(r, lower), 3u);
  policy::Limits higher = kLimits;
  higher.attempt_limit = 16;
  EXPECT_EQ(policy::EffectiveLimit(r, higher), 5u);
}

}  // namespace
}  // namespace bkv::server::realm_policy
