// The realm's registration decisions (server/realm_policy.h) and the v2
// counting path on a realm record: pure functions, every path.
#include "server/realm_policy.h"

#include <gtest/gtest.h>

#include "server/attempt_policy.h"
#include "tests/crypto/threshold_test_support.h"

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
  auto c =
      Commit(p.next, std::string(16, v), std::string(32, v), 77, kNow, kLimits);
  EXPECT_EQ(c.outcome, CommitOutcome::kCommitted);
  return *c.next;
}

TEST(RealmPolicyTest, PrepareThenCommitActivatesWithLimitG) {
  auto p = Prepare(std::nullopt, Share('a', 1), 0, kNow, kTtl, kLimits);
  ASSERT_EQ(p.outcome, PrepareOutcome::kProceed);
  EXPECT_EQ(p.next->state(), RECORD_STATE_PENDING);
  EXPECT_EQ(p.next->realm_epoch(), 1u);
  auto c = Commit(p.next, std::string(16, 'a'), std::string(32, 'a'), 77, kNow,
                  kLimits);
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
  auto again =
      Commit(r, std::string(16, 'a'), std::string(32, 'a'), 78, kNow, kLimits);
  EXPECT_EQ(again.outcome, CommitOutcome::kAlreadyActive);
  EXPECT_FALSE(again.next.has_value());
  auto p = Prepare(r, Share('b', 2), 0, kNow, kTtl, kLimits);
  ASSERT_EQ(p.outcome, PrepareOutcome::kProofRequired);    // ACTIVE: authority
  p = Prepare(r, Share('b', 2), 77, kNow, kTtl, kLimits);  // with a proof
  ASSERT_EQ(p.outcome, PrepareOutcome::kProceed);
  EXPECT_EQ(p.next->realm().registration_version(), std::string(16, 'a'));
  EXPECT_EQ(p.next->attempt_limit(), 5u);  // the active version untouched
  EXPECT_EQ(Commit(p.next, std::string(16, 'b'), std::string(32, 'x'), 79, kNow,
                   kLimits)
                .outcome,
            CommitOutcome::kStale);  // wrong commit secret
  EXPECT_EQ(Commit(p.next, std::string(16, 'c'), std::string(32, 'b'), 79, kNow,
                   kLimits)
                .outcome,
            CommitOutcome::kStale);  // another version
  auto c = Commit(p.next, std::string(16, 'b'), std::string(32, 'b'), 79, kNow,
                  kLimits);
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
  EXPECT_EQ(Commit(tombstone, std::string(16, 'a'), std::string(32, 'a'), 1,
                   kNow, kLimits)
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

// Review finding 3: a replaced pending share is shredded, not just dropped.
TEST(RealmPolicyTest, ReplacingAnExpiredPendingShredsIt) {
  auto p = Prepare(std::nullopt, Share('a', 1), 0, kNow, kTtl, kLimits);
  EXPECT_FALSE(p.next->shred_pending());  // nothing replaced yet
  auto q = Prepare(p.next, Share('b', 2), 0, kNow + kTtl, kTtl, kLimits);
  ASSERT_EQ(q.outcome, PrepareOutcome::kProceed);
  EXPECT_TRUE(q.next->shred_pending());
  EXPECT_EQ(q.next->pending_realm().registration_version(),
            std::string(16, 'b'));
}

// Review finding 4: a v2 pending registration's id stays a replay after a
// realm Prepare drops it; Commit consumes the id it supersedes.
TEST(RealmPolicyTest, PrepareConsumesAPendingV2Registration) {
  UserRecord v2;
  v2.set_state(RECORD_STATE_PENDING);
  v2.set_pending_registration_id(4242);
  v2.set_pending_opaque_record("record");
  auto p = Prepare(v2, Share('a', 1), 0, kNow, kTtl, kLimits);
  ASSERT_EQ(p.outcome, PrepareOutcome::kProceed);
  EXPECT_EQ(p.next->pending_registration_id(), 0u);
  ASSERT_EQ(p.next->consumed_registrations_size(), 1);
  EXPECT_EQ(p.next->consumed_registrations(0).registration_id(), 4242u);
  UserRecord r = Active('a', 1);  // registration id 77
  auto q = Prepare(r, Share('b', 2), 77, kNow, kTtl, kLimits);
  auto c = Commit(q.next, std::string(16, 'b'), std::string(32, 'b'), 78, kNow,
                  kLimits);
  ASSERT_EQ(c.outcome, CommitOutcome::kCommitted);
  bool consumed = false;
  for (const auto& e : c.next->consumed_registrations()) {
    consumed |= e.registration_id() == 77u;
  }
  EXPECT_TRUE(consumed);
}

// Review finding 2: the epoch cannot be spent in one Prepare.
TEST(RealmPolicyTest, EpochCannotJumpToTheEnd) {
  EXPECT_EQ(
      Prepare(std::nullopt, Share('a', UINT64_MAX), 0, kNow, kTtl, kLimits)
          .outcome,
      PrepareOutcome::kEpochTooFar);
  EXPECT_EQ(Prepare(std::nullopt, Share('a', kMaxEpochJump + 1), 0, kNow, kTtl,
                    kLimits)
                .outcome,
            PrepareOutcome::kEpochTooFar);
  auto p =
      Prepare(std::nullopt, Share('a', kMaxEpochJump), 0, kNow, kTtl, kLimits);
  ASSERT_EQ(p.outcome, PrepareOutcome::kProceed);
  EXPECT_EQ(Prepare(p.next, Share('b', 2 * kMaxEpochJump + 1), 0, kNow + kTtl,
                    kTtl, kLimits)
                .outcome,
            PrepareOutcome::kEpochTooFar);
}

// Review finding 1: ACTIVE on a version committed here but never recovered,
// a proof of the version it superseded still authorizes a Prepare; after
// the first recovery of the new version, only its own proof does.
TEST(RealmPolicyTest, ProofOfTheSupersededVersionAuthorizesUntilRecovery) {
  UserRecord r = Active('a', 1);  // registration id 77
  auto p = Prepare(r, Share('b', 2), 77, kNow, kTtl, kLimits);
  auto c = Commit(p.next, std::string(16, 'b'), std::string(32, 'b'), 78, kNow,
                  kLimits);
  ASSERT_EQ(c.outcome, CommitOutcome::kCommitted);
  EXPECT_EQ(c.next->superseded_registration_id(), 77u);
  EXPECT_EQ(Prepare(*c.next, Share('c', 3), 77, kNow, kTtl, kLimits).outcome,
            PrepareOutcome::kProceed);
  EXPECT_EQ(Prepare(*c.next, Share('c', 3), 76, kNow, kTtl, kLimits).outcome,
            PrepareOutcome::kProofRequired);
  auto s = policy::RecoverStart(*c.next, kNow, kLimits);
  auto f = policy::RecoverFinish(*s.next, s.registration_id, s.login_seq, true,
                                 kNow, kLimits);
  ASSERT_EQ(f.outcome, policy::FinishOutcome::kRelease);
  EXPECT_EQ(Prepare(*f.next, Share('c', 3), 77, kNow, kTtl, kLimits).outcome,
            PrepareOutcome::kProofRequired);
  EXPECT_EQ(Prepare(*f.next, Share('c', 3), 78, kNow, kTtl, kLimits).outcome,
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
      Commit(r, std::string(16, 'a'), std::string(32, 'a'), 1, kNow, kLimits)
          .outcome,
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

// Review of the threshold release (rthr), findings 4 and 5: recovery
// reads the descriptor of a sealed record only if it is the one the record
// names (hash = commitment, epoch and G = the share's) and every policy
// floor of Parse holds; anything else is DataLoss, nothing evaluated.
RealmShare Stored(const threshold::Descriptor& d) {
  const auto bytes = d.Serialize();
  const auto c = d.Commitment();
  RealmShare s;
  s.set_descriptor_bytes(std::string(bytes.begin(), bytes.end()));
  s.set_commitment(std::string(c.begin(), c.end()));
  s.set_epoch(d.epoch);
  s.set_per_realm_limit(d.per_realm_limit);
  return s;
}

TEST(RealmPolicyTest, StoredDescriptorMustMatchItsRecord) {
  const threshold::Descriptor d =
      bkv::testing::DealRegistration(SystemRandom().Scalar(), 2, 3).descriptor;
  auto ok = StoredDescriptor(Stored(d));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->Commitment(), d.Commitment());
  const auto refused = [](const RealmShare& s, const char* why) {
    auto got = StoredDescriptor(s);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << why;
    return std::string(got.status().message());
  };
  RealmShare bad = Stored(d);
  (*bad.mutable_commitment())[0] ^= 1;
  EXPECT_NE(refused(bad, "hash").find("does not match its commitment"),
            std::string::npos);
  bad = Stored(d);
  bad.set_epoch(d.epoch + 1);
  refused(bad, "epoch");
  bad = Stored(d);
  bad.set_per_realm_limit(d.per_realm_limit + 1);
  refused(bad, "G");
  // Floors, with the record agreeing: the epoch bound, the KSF floor, the
  // t/n rule (a realm never stores such a descriptor; the seal alone would
  // not catch one written with the realm's key).
  threshold::Descriptor far = d;
  far.epoch = kMaxEpoch + 1;
  refused(Stored(far), "epoch bound");
  threshold::Descriptor weak = d;
  weak.ksf.memory_kib = threshold::kMinKsf.memory_kib - 1;
  refused(Stored(weak), "KSF floor");
  threshold::Descriptor two = d;
  two.realms.pop_back();  // 2-of-2: not n = 2t - 1
  refused(Stored(two), "t/n rule");
}

}  // namespace
}  // namespace bkv::server::realm_policy
