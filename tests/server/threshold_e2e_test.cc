// Threshold realms against real bkv-vault processes (docs/threshold.md, "The
// realm's server side"): each realm is its own process with its own SoftHSM
// token, RocksDB and AKE identity key, started with `--realm-id`. The client
// (tests/server/threshold_realms.h) is built from the crypto core only: it
// deals the key, seals each realm's share to its identity key, and at
// recovery verifies every DLEQ proof before it combines and sends any KE3.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sodium.h>

#include <chrono>
#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "crypto/threshold_descriptor.h"
#include "storage/record_codec.h"
#include "tests/server/threshold_realms.h"

namespace bkv::testing {
namespace {

using vault::v1::ErrorDetail;

class ThresholdE2eTest : public ::testing::Test, public ThresholdRealms {};

TEST_F(ThresholdE2eTest, OneRealmRegistersAndRecovers) {
  StartRealms(1);
  Sent sent = Register(1, "correct horse battery");
  auto st = Status(realms_[0]);
  EXPECT_EQ(st.status(), vault::v1::RECORD_STATUS_ACTIVE);
  EXPECT_EQ(st.committed_limit(), 10u);
  EXPECT_EQ(st.commitment(), Str(sent.descriptor.Commitment()));
  auto got = Recover("correct horse battery", {0});
  ExpectRecovered(got, sent);
  EXPECT_EQ(got.remaining, std::vector<uint32_t>{9});
  // A repeated Commit of the active version is OK (roll-forward).
  EXPECT_TRUE(Commit(realms_[0], sent.commits[0]).ok());
}

TEST_F(ThresholdE2eTest, TwoOfThreeRecoverThroughAnyPair) {
  StartRealms(3);
  Sent sent = Register(2, "correct horse battery");
  EXPECT_EQ(Status(realms_[2]).committed_limit(), 5u);
  ExpectRecovered(Recover("correct horse battery", {0, 1}), sent);
  ExpectRecovered(Recover("correct horse battery", {1, 2}), sent);
  // Realm a is down: b and c still recover.
  realms_[0].process->Kill();
  ExpectRecovered(Recover("correct horse battery", {2, 1}), sent);
}

// Wrong guesses count at each realm, and at G the realm destroys its share:
// LOCKED, and the status reports it.
TEST_F(ThresholdE2eTest, SharesAreDestroyedAtTheLimit) {
  StartRealms(1, {"--login-ttl-s", "1"});
  Register(1, "correct horse battery", /*limit=*/2);
  auto first = Recover("wrong password", {0});
  EXPECT_EQ(first.result.status.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(first.remaining, std::vector<uint32_t>{1});
  auto second = Recover("wrong password", {0});
  EXPECT_EQ(second.remaining, std::vector<uint32_t>{0});
  // Both logins expire unanswered (the client had no KE3): then LOCKED.
  for (int i = 0; i < 50; ++i) {
    if (Status(realms_[0]).status() == vault::v1::RECORD_STATUS_LOCKED) break;
    usleep(100 * 1000);
  }
  EXPECT_EQ(Status(realms_[0]).status(), vault::v1::RECORD_STATUS_LOCKED);
  auto third = Recover("correct horse battery", {0});
  EXPECT_EQ(third.result.status.error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(third.result.detail.has_value());
  EXPECT_EQ(third.result.detail->reason(), ErrorDetail::REASON_LOCKED);
}

// docs/threshold.md, review finding 1: capture Prepare and Commit, lock,
// Delete, replay -> FAILED_PRECONDITION, status NONE, nothing counted.
TEST_F(ThresholdE2eTest, ReplayedRegistrationAfterLockAndDeleteIsRefused) {
  // The default login TTL: the registration tickets are still valid when
  // replayed, so only the epoch tombstone stands in the way.
  StartRealms(1);
  Sent sent = Register(1, "correct horse battery", /*limit=*/1);
  auto guess = GarbageGuess(realms_[0]);
  ASSERT_TRUE(guess.detail.has_value());
  EXPECT_EQ(guess.detail->reason(), ErrorDetail::REASON_LOCKED);
  ASSERT_EQ(Status(realms_[0]).status(), vault::v1::RECORD_STATUS_LOCKED);
  ASSERT_TRUE(realms_[0].client->Delete(realms_[0].token).ok());
  ASSERT_EQ(Status(realms_[0]).status(), vault::v1::RECORD_STATUS_NONE);
  auto prepare = Prepare(realms_[0], sent.prepares[0]);
  EXPECT_EQ(prepare.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << prepare.status.error_message();
  auto commit = Commit(realms_[0], sent.commits[0]);
  EXPECT_EQ(commit.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  auto st = Status(realms_[0]);
  EXPECT_EQ(st.status(), vault::v1::RECORD_STATUS_NONE);
  EXPECT_EQ(st.epoch(), sent.descriptor.epoch);  // the tombstone kept it
  EXPECT_TRUE(st.commitment().empty());
  // A fresh registration (higher epoch, new ticket) is accepted.
  Sent again = Register(1, "another horse battery");
  ExpectRecovered(Recover("another horse battery", {0}), again);
}

// Review of the realm side, finding 1: the client prepared X everywhere but
// only realm a's Commit landed, and it lost X's commit secret. V is still at
// t (b, c); a's proof for V from the recovery before the rotation (the one
// that authorized X) still authorizes a new registration at a, so the
// account can be registered at all three again. Fails without the
// superseded registration id (PROOF_REQUIRED at a).
TEST_F(ThresholdE2eTest, InterruptedCommitCanBeReregistered) {
  StartRealms(3, {"--pending-ttl-s", "1"});
  Sent v = Register(2, "old horse battery");
  Recovered before = Recover("old horse battery", {0, 1, 2});
  ASSERT_TRUE(before.result.ok()) << before.result.status.error_message();
  Sent x = Register(2, "new horse battery", 10, /*commit=*/false,
                    /*send=*/true, before.proofs);
  ASSERT_TRUE(Commit(realms_[0], x.commits[0]).ok());
  // The user recovers V through b and c, as the status round finds it.
  Recovered via_bc = Recover("old horse battery", {1, 2});
  ExpectRecovered(via_bc, v);
  // X's pending shares at b and c block another version for pending_ttl.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  Sent y = Register(2, "third horse battery", 10, true, true,
                    {before.proofs[0], via_bc.proofs[1], via_bc.proofs[2]});
  for (auto& r : realms_) {
    EXPECT_EQ(Status(r).commitment(), Str(y.descriptor.Commitment())) << r.id;
  }
  ExpectRecovered(Recover("third horse battery", {0, 1}), y);
  // Y superseded V at b and was recovered there: b's proof of V (still
  // unexpired) no longer authorizes.
  Sent z = Register(2, "fourth horse battery", 10, false, false,
                    {"", via_bc.proofs[1]});
  auto refused = Prepare(realms_[1], z.prepares[1]);
  ASSERT_TRUE(refused.detail.has_value()) << refused.status.error_message();
  EXPECT_EQ(refused.detail->reason(), ErrorDetail::REASON_PROOF_REQUIRED);
}

// Review of the realm side, finding 2: an epoch at the end of the range (or
// a jump of more than 2^32) is refused, so the account's epoch cannot be
// spent; a normal registration still succeeds afterwards.
TEST_F(ThresholdE2eTest, HugeEpochIsRefused) {
  StartRealms(1);
  for (uint64_t epoch :
       {uint64_t{1} << 63, UINT64_MAX, (uint64_t{1} << 32) + 1}) {
    Sent huge =
        Register(1, "correct horse battery", 10, false, false, {}, epoch);
    auto res = Prepare(realms_[0], huge.prepares[0]);
    EXPECT_EQ(res.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << epoch << ": " << res.status.error_message();
    ASSERT_TRUE(res.detail.has_value());
    EXPECT_EQ(res.detail->attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
    EXPECT_EQ(Status(realms_[0]).epoch(), 0u) << epoch;
  }
  Sent ok = Register(1, "correct horse battery");
  EXPECT_EQ(ok.descriptor.epoch, 1u);
  ExpectRecovered(Recover("correct horse battery", {0}), ok);
}

// Review of the realm side, finding 3: a pending version replaced after its
// TTL leaves no file of the realm's data directory (its k_i, s_i, wrapped
// sealed in the old record version). Fails without the shred at Prepare.
TEST_F(ThresholdE2eTest, ReplacedPendingVersionIsShredded) {
  StartRealms(1, {"--pending-ttl-s", "1"});
  Register(1, "correct horse battery", 10, /*commit=*/false);
  VaultProcess& p = *realms_[0].process;
  realms_[0].client.reset();
  ASSERT_EQ(p.Stop(), 0);  // flushed: the pending version is in an SST
  std::string old_value;
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(),
                                             p.data_dir() + "/records", &raw)
                    .ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(
        db->Get(rocksdb::ReadOptions(),
                storage::RecordDbKey(storage::DeriveAccountKey(kAccount)),
                &old_value)
            .ok());
  }
  ASSERT_GT(old_value.size(), 512u);
  const std::string needle = old_value.substr(old_value.size() / 2, 48);
  const std::string records = p.data_dir() + "/records";
  ASSERT_GT(VaultFixture::FilesContaining(records, needle), 0);
  ASSERT_TRUE(p.Start()) << p.log();
  realms_[0].client = std::make_unique<TestClient>(p.address(), p.public_key());
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // the TTL
  Sent y = Register(1, "another horse battery", 10, /*commit=*/false);
  EXPECT_EQ(Status(realms_[0]).pending_commitment(),
            Str(y.descriptor.Commitment()));
  EXPECT_EQ(VaultFixture::FilesContaining(records, needle), 0);
  realms_[0].client.reset();
  ASSERT_EQ(p.Stop(), 0);
  EXPECT_EQ(VaultFixture::FilesContaining(p.data_dir(), needle), 0);
}

// docs/storage.md, "a Shred cut short by a crash": the realm dies (SIGKILL)
// once a rotation's Commit is durable and before the Shred of the version it
// replaced; that version's bytes are still on disk. The restart finishes the
// Shred before serving. Fails without the store's shred queue (the old
// record stays until the account's next commit or recovery).
TEST_F(ThresholdE2eTest, CrashBetweenCommitAndShredIsFinishedAtRestart) {
  SetFault(0, "kill-before-shred");
  StartRealms(1);
  Register(1, "old horse battery");
  Recovered before = Recover("old horse battery", {0});
  ASSERT_TRUE(before.result.ok()) << before.result.status.error_message();
  VaultProcess& p = *realms_[0].process;
  realms_[0].client.reset();
  ASSERT_EQ(p.Stop(), 0);  // flushed: the active version is in an SST
  const std::string old_value = ReadRecordValue(p.data_dir(), kAccount);
  ASSERT_GT(old_value.size(), 512u);
  const std::string needle = old_value.substr(old_value.size() / 2, 48);
  const std::string records = p.data_dir() + "/records";
  ASSERT_TRUE(RestartRealm(0)) << p.log();
  Sent x = Register(1, "new horse battery", 10, /*commit=*/false,
                    /*send=*/true, before.proofs);
  auto commit = Commit(realms_[0], x.commits[0]);
  EXPECT_FALSE(commit.ok());
  EXPECT_EQ(p.Kill(), 128 + SIGKILL);  // it killed itself: reaped here
  ASSERT_GT(VaultFixture::FilesContaining(records, needle), 0);
  ASSERT_TRUE(RestartRealm(0)) << p.log();
  EXPECT_EQ(VaultFixture::FilesContaining(records, needle), 0);
  EXPECT_EQ(Status(realms_[0]).commitment(), Str(x.descriptor.Commitment()));
  realms_[0].client.reset();
  ASSERT_EQ(p.Stop(), 0);
  EXPECT_EQ(VaultFixture::FilesContaining(p.data_dir(), needle), 0);
}

// Per-realm audience: a token for another realm (or the v2 audience) is
// refused before anything, and a realm whose audience is not its id does
// not start.
TEST_F(ThresholdE2eTest, TokensForAnotherAudienceAreRefused) {
  StartRealms(2);
  Realm& a = realms_[0];
  vault::v1::ThresholdStatusResponse out;
  a.token = a.process->Token(kAccount, 600, realms_[1].id);
  EXPECT_EQ(Call(a, &vault::v1::Vault::Stub::ThresholdStatus,
                 vault::v1::ThresholdStatusRequest(), &out)
                .status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  a.token = a.process->Token(kAccount, 600, "bkv-vault");
  EXPECT_EQ(Call(a, &vault::v1::Vault::Stub::ThresholdStatus,
                 vault::v1::ThresholdStatusRequest(), &out)
                .status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  VaultProcess misconfigured;
  EXPECT_FALSE(misconfigured.Start({"--realm-id", "realm-x"}));
  EXPECT_NE(misconfigured.log().find("audience"), std::string::npos)
      << misconfigured.log();
}

// A realm record is never evaluated through the v2 calls; a recovery that
// names another realm or another version is refused without counting.
TEST_F(ThresholdE2eTest, MismatchedCallsAreRefusedUncounted) {
  StartRealms(1);
  Register(1, "correct horse battery");
  auto v2 = realms_[0].client->Recover(realms_[0].token, kAccount,
                                       "correct horse battery");
  EXPECT_EQ(v2.result.status.error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  vault::v1::ThresholdRecoverStartRequest req;
  auto start = realms_[0].client->opaque().GenerateThresholdKE1(
      SecretBytes::Copy("x"), 1);
  req.set_ke1(Str(start->ke1s[0].Serialize()));
  req.set_realm_id("realm-z");
  req.set_commitment(Status(realms_[0]).commitment());
  vault::v1::ThresholdRecoverStartResponse resp;
  auto wrong_realm = Call(
      realms_[0], &vault::v1::Vault::Stub::ThresholdRecoverStart, req, &resp);
  EXPECT_EQ(wrong_realm.status.error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  req.set_realm_id(realms_[0].id);
  req.set_commitment(std::string(32, '\0'));
  auto wrong_version = Call(
      realms_[0], &vault::v1::Vault::Stub::ThresholdRecoverStart, req, &resp);
  EXPECT_EQ(wrong_version.status.error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(wrong_version.detail.has_value());
  EXPECT_EQ(wrong_version.detail->attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
  EXPECT_EQ(Status(realms_[0]).attempts_remaining(), 10u);
  // A Finish naming another account after a counted Start: refused, and the
  // attempt its Start counted stays spent (review of realm3, finding 10).
  req.set_commitment(Status(realms_[0]).commitment());
  ASSERT_TRUE(Call(realms_[0], &vault::v1::Vault::Stub::ThresholdRecoverStart,
                   req, &resp)
                  .ok());
  vault::v1::ThresholdRecoverFinishRequest fin;
  fin.set_account("mallory");
  fin.set_ke3(std::string(64, '\0'));
  fin.set_login_state(resp.login_state());
  vault::v1::ThresholdRecoverFinishResponse out;
  auto other = Call(realms_[0], &vault::v1::Vault::Stub::ThresholdRecoverFinish,
                    fin, &out);
  EXPECT_EQ(other.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(other.detail.has_value());
  EXPECT_EQ(other.detail->reason(), ErrorDetail::REASON_ACCOUNT_MISMATCH);
  EXPECT_EQ(other.detail->attempt(), ErrorDetail::ATTEMPT_SPENT);
  EXPECT_EQ(Status(realms_[0]).attempts_remaining(), 9u);
}

// A Prepare the realm cannot verify is refused before anything is stored:
// the record swapped under a recorded payload, another account's ticket, a
// descriptor for another realm, a limit above the realm's own.
TEST_F(ThresholdE2eTest, PrepareRefusesWhatItCannotVerify) {
  StartRealms(1, {"--attempt-limit", "5"});
  Realm& r = realms_[0];
  Sent sent = Register(1, "correct horse battery", /*limit=*/5,
                       /*commit=*/false, /*send=*/false);
  auto p = sent.prepares[0];
  p.set_record(std::string(192, '\x01'));  // another record: context differs
  EXPECT_EQ(Prepare(r, p).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  p = sent.prepares[0];
  p.set_payload(p.payload().substr(0, 40));
  EXPECT_EQ(Prepare(r, p).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  threshold::Descriptor other = sent.descriptor;
  other.realms[0].realm_id = "realm-z";
  p = sent.prepares[0];
  p.set_registration_descriptor(Str(other.Serialize()));
  auto wrong_realm = Prepare(r, p);
  EXPECT_EQ(wrong_realm.status.error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(wrong_realm.detail.has_value());
  EXPECT_EQ(wrong_realm.detail->reason(), ErrorDetail::REASON_REALM_MISMATCH);
  Realm bob{r.id, nullptr, nullptr, r.process->Token("bob", 600, r.id)};
  bob.client = std::make_unique<TestClient>(r.process->address(),
                                            r.process->public_key());
  EXPECT_EQ(Prepare(bob, sent.prepares[0]).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // alice's ticket
  auto st = Status(r);
  EXPECT_EQ(st.status(), vault::v1::RECORD_STATUS_NONE);
  EXPECT_EQ(st.epoch(), 0u);  // nothing stored
  // L = 10 for n = 1 means G = 10, above this realm's limit of 5.
  Sent high = Register(1, "correct horse battery", /*limit=*/10,
                       /*commit=*/false, /*send=*/false);
  auto too_high = Prepare(r, high.prepares[0]);
  EXPECT_EQ(too_high.status.error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(too_high.status.error_message().find("limit"), std::string::npos);
  // The untouched Prepare still goes through.
  EXPECT_TRUE(Prepare(r, sent.prepares[0]).ok());
}

// Issue 18: the limit cannot be raised by editing one realm's stored limit.
// The edit makes the record unopenable: nothing is evaluated or counted.
TEST_F(ThresholdE2eTest, EditingTheStoredLimitMakesTheRecordUnopenable) {
  StartRealms(1);
  Register(1, "correct horse battery", /*limit=*/3);
  VaultProcess& p = *realms_[0].process;
  realms_[0].client.reset();
  ASSERT_EQ(p.Stop(), 0);
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(
        rocksdb::DB::Open(rocksdb::Options(), p.data_dir() + "/records", &raw)
            .ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    const std::string key =
        storage::RecordDbKey(storage::DeriveAccountKey(kAccount));
    std::string v;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), key, &v).ok());
    ASSERT_EQ(static_cast<uint8_t>(v[0]), storage::kFormatRealm);
    ASSERT_EQ(v[12], 3);  // G, the last byte of its u32
    v[12] = 100;
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, v).ok());
  }
  ASSERT_TRUE(p.Start()) << p.log();
  realms_[0].client = std::make_unique<TestClient>(p.address(), p.public_key());
  vault::v1::ThresholdStatusResponse out;
  auto st = Call(realms_[0], &vault::v1::Vault::Stub::ThresholdStatus,
                 vault::v1::ThresholdStatusRequest(), &out);
  // The freshness layer sees the unopenable record and refuses the shard
  // (UNAVAILABLE, STORAGE_ROLLED_BACK); the log says why.
  EXPECT_FALSE(st.ok());
  EXPECT_NE(p.log().find("is tampered"), std::string::npos);
  vault::v1::ThresholdRecoverStartRequest req;
  auto start = realms_[0].client->opaque().GenerateThresholdKE1(
      SecretBytes::Copy("x"), 1);
  req.set_ke1(Str(start->ke1s[0].Serialize()));
  req.set_realm_id(realms_[0].id);
  vault::v1::ThresholdRecoverStartResponse resp;
  auto guess = Call(realms_[0], &vault::v1::Vault::Stub::ThresholdRecoverStart,
                    req, &resp);
  EXPECT_FALSE(guess.ok());
  EXPECT_TRUE(resp.ke2().empty());  // nothing evaluated
}

// Cross-realm replay: realm A's Prepare sent to realm B is refused (A's
// ticket does not open at B; with B's ticket, A's payload does not open for
// B's key and nonce). Nothing is stored; the honest Prepares then succeed.
TEST_F(ThresholdE2eTest, APrepareForOneRealmIsRefusedByAnother) {
  StartRealms(3);
  Sent sent = Register(2, "correct horse battery", 10, /*commit=*/false,
                       /*send=*/false);
  EXPECT_EQ(Prepare(realms_[1], sent.prepares[0]).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  auto p = sent.prepares[0];
  p.set_ticket(sent.prepares[1].ticket());
  p.set_record(sent.prepares[1].record());
  EXPECT_EQ(Prepare(realms_[1], p).status.error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Status(realms_[1]).epoch(), 0u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(Prepare(realms_[i], sent.prepares[i]).ok()) << i;
  }
  // Prepared, not committed: the status round names the pending version.
  auto pending = Status(realms_[1]);
  EXPECT_EQ(pending.pending_commitment(), Str(sent.descriptor.Commitment()));
  EXPECT_TRUE(pending.commitment().empty());
  EXPECT_EQ(pending.status(), vault::v1::RECORD_STATUS_NONE);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(Commit(realms_[i], sent.commits[i]).ok()) << i;
  }
  EXPECT_TRUE(Status(realms_[1]).pending_commitment().empty());
  ExpectRecovered(Recover("correct horse battery", {0, 2}), sent);
}

}  // namespace
}  // namespace bkv::testing
