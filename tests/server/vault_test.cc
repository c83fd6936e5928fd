// The Vault domain class over an in-memory RecordStore and AuditLog (test
// doubles that can inject faults); OPAQUE, key transport and tickets are the
// real ones. The process-level tests (vault_e2e_*) use real RocksDB.
#include "server/vault.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "absl/synchronization/mutex.h"
#include "crypto/aes_gcm_sealer.h"
#include "crypto/hash.h"
#include "crypto/key_transport.h"
#include "server/errors.h"

namespace bkv::server {
namespace {

using storage::v1::UserRecord;
using vault::v1::ErrorDetail;

class MemoryRecordStore final : public storage::RecordStore {
 public:
  absl::StatusOr<UserRecord> Get(std::string_view id) const override {
    absl::MutexLock l(&mu_);
    ++gets;
    auto it = records_.find(std::string(id));
    if (it == records_.end()) return absl::NotFoundError("no record");
    return it->second;
  }
  absl::StatusOr<uint64_t> CompareAndSwap(std::string_view id,
                                          uint64_t expected,
                                          const UserRecord& next) override {
    absl::MutexLock l(&mu_);
    if (full) return absl::ResourceExhaustedError("disk is full");
    auto it = records_.find(std::string(id));
    const uint64_t current = it == records_.end() ? 0 : it->second.version();
    if (current != expected) return absl::AbortedError("version moved");
    UserRecord r = next;
    r.set_version(++high_water_);
    records_[std::string(id)] = r;
    if (r.shred_pending()) ++shred_pending_writes;
    return Answer(r.version());
  }
  absl::Status Delete(std::string_view id, uint64_t expected) override {
    absl::MutexLock l(&mu_);
    auto it = records_.find(std::string(id));
    if (it == records_.end() || it->second.version() != expected) {
      return absl::AbortedError("version moved");
    }
    records_.erase(it);
    return Answer(0).status();
  }
  absl::Status Shred(std::string_view) override {
    if (shred_fails) return absl::UnavailableError("compaction failed");
    ++shreds;
    return absl::OkStatus();
  }
  absl::Status SyncBarrier(std::string_view) override {
    return full ? absl::ResourceExhaustedError("disk is full")
                : absl::OkStatus();
  }
  absl::StatusOr<uint64_t> Count() const override {
    absl::MutexLock l(&mu_);
    return records_.size();
  }
  absl::Status ForEach(Visitor) const override {
    return absl::UnimplementedError("not needed here");
  }

  bool full = false;
  bool shred_fails = false;
  int shreds = 0;
  int shred_pending_writes = 0;  // writes that queue a shred (RocksDB)
  mutable int gets = 0;
  // The next writes apply but answer "outcome unknown", as the freshness
  // decorator does when the head write after a record write fails.
  int unknown_outcome = 0;

 private:
  absl::StatusOr<uint64_t> Answer(uint64_t version) {
    if (unknown_outcome == 0) return version;
    --unknown_outcome;
    return absl::UnavailableError("injected: the head write failed");
  }

  mutable absl::Mutex mu_;
  std::map<std::string, UserRecord> records_;
  uint64_t high_water_ = 0;
};

class MemoryAuditLog final : public AuditLog {
 public:
  absl::Status Record(const Event& e) override {
    const std::string key = std::string(e.event) + "/" + std::string(e.outcome);
    if (failing.count(key)) return absl::UnavailableError("audit disk full");
    lines.push_back(key);
    return absl::OkStatus();
  }
  absl::Status Ready() override {
    return ready ? absl::OkStatus() : absl::UnavailableError("no room");
  }
  bool ready = true;
  std::set<std::string> failing;  // "event/outcome" lines that fail
  std::vector<std::string> lines;
};

std::span<const uint8_t> Bytes(const std::vector<uint8_t>& v) { return v; }

class VaultTest : public ::testing::Test {
 protected:
  static constexpr Argon2idParams kKsf{1, 8, 1};

  VaultTest()
      : seed_(SecretBytes::Random(64)),
        keys_(opaque::ServerKeyPair::Generate()),
        server_(opaque::Config{}, seed_, keys_),
        sealer_(*AesGcmSealer::Create(SecretBytes::Random(32))),
        ksf_(*Argon2idKsf::Create(kKsf)),
        client_(opaque::Config{}, ksf_, keys_.public_key) {
    Reset(10);
  }
  void Reset(uint32_t limit) { vault_ = NewNode(limit); }
  // Another vault over the same store (a second node: its own record cache).
  std::unique_ptr<Vault> NewNode(uint32_t limit) {
    Vault::Options o;
    o.limits.attempt_limit = limit;
    o.limits.min_ksf_memory_kib = 8;
    o.default_ksf = kKsf;
    o.now_ms = [this] { return now_; };
    return std::make_unique<Vault>(o, server_, store_, sealer_, audit_,
                                   metrics_);
  }

  absl::Status Register(const std::string& acct, const std::string& pw,
                        const SecretBytes& key,
                        const std::vector<uint8_t>& proof = {},
                        bool commit = true) {
    auto start = client_.CreateRegistrationRequest(SecretBytes::Copy(pw));
    auto req = start->request.Serialize();
    auto step = vault_->RegisterStart(acct, req);
    if (!step.ok()) return step.status();
    auto resp = opaque::RegistrationResponse::Parse(Bytes(step->response));
    auto fin =
        client_.FinalizeRegistrationRequest(std::move(start->state), *resp);
    auto ke1 = client_.GenerateKE1(SecretBytes::Copy(pw));
    auto record = fin->record.Serialize();
    auto ke1_bytes = ke1->ke1.Serialize();
    auto login = vault_->RegisterFinish(acct, record, kKsf, ke1_bytes,
                                        Bytes(step->registration_state), proof);
    if (!login.ok() || !commit) return login.status();
    auto ke3 = client_.GenerateKE3(std::move(ke1->state), Bytes(login->ke2));
    auto wrapped = key_transport::WrapBackupKey(ke3->export_key, acct, key);
    auto sealed = key_transport::Seal(
        ke3->session_key, key_transport::Direction::kRegister, acct, *wrapped);
    auto ke3_bytes = ke3->ke3.Serialize();
    return vault_
        ->RegisterCommit(acct, ke3_bytes, Bytes(login->login_state), *sealed)
        .status();
  }

  // Recovers; on success returns the proof.
  absl::StatusOr<std::vector<uint8_t>> Recover(const std::string& acct,
                                               const std::string& pw) {
    auto ke1 = client_.GenerateKE1(SecretBytes::Copy(pw));
    auto ke1_bytes = ke1->ke1.Serialize();
    auto start = vault_->RecoverStart(acct, ke1_bytes);
    if (!start.ok()) return start.status();
    auto ke3 =
        client_.GenerateKE3(std::move(ke1->state), Bytes(start->login.ke2));
    std::vector<uint8_t> ke3_bytes(64, 1);
    if (ke3.ok()) {
      auto b = ke3->ke3.Serialize();
      ke3_bytes.assign(b.begin(), b.end());
    }
    auto released =
        vault_->RecoverFinish(acct, ke3_bytes, Bytes(start->login.login_state));
    if (!released.ok()) return released.status();
    return released->proof;
  }

  uint32_t Remaining(const std::string& acct) {
    return vault_->GetStatus(acct)->attempts_remaining;
  }
  static ErrorDetail Detail(const absl::Status& s) {
    auto d = GetDetail(s);
    EXPECT_TRUE(d.has_value()) << s;
    return d.value_or(ErrorDetail());
  }

  int64_t now_ = 1'700'000'000'000;
  HmacSha512KeyedHash seed_;
  opaque::ServerKeyPair keys_;
  opaque::OpaqueServer server_;
  AesGcmSealer sealer_;
  Argon2idKsf ksf_;
  opaque::OpaqueClient client_;
  MemoryRecordStore store_;
  MemoryAuditLog audit_;
  Metrics metrics_;
  std::unique_ptr<Vault> vault_;
};

TEST_F(VaultTest, PasswordChangeWithProofShredsTheOldRecord) {
  ASSERT_TRUE(Register("a", "old", SecretBytes::Random(32)).ok());
  auto proof = Recover("a", "old");
  ASSERT_TRUE(proof.ok()) << proof.status();
  const int before = store_.shreds;
  ASSERT_TRUE(Register("a", "new", SecretBytes::Random(32), *proof).ok());
  EXPECT_EQ(store_.shreds, before + 1);
  EXPECT_FALSE(Recover("a", "old").ok());
  EXPECT_TRUE(Recover("a", "new").ok());
}

// A commit whose audit line fails after the swap landed is still OK: the new
// password is in force, and saying "refused" would send the user back to
// the old one.
TEST_F(VaultTest, FaultAuditAfterACommitKeepsTheAnswerOk) {
  ASSERT_TRUE(Register("a", "old", SecretBytes::Random(32)).ok());
  auto proof = Recover("a", "old");
  ASSERT_TRUE(proof.ok()) << proof.status();
  audit_.failing.insert("register_commit/active");
  EXPECT_TRUE(Register("a", "new", SecretBytes::Random(32), *proof).ok());
  audit_.failing.clear();
  EXPECT_TRUE(Recover("a", "new").ok());
}

// A shred that fails after a commit landed leaves the commit OK and a
// durable marker; the account's next RecoverStart shreds and clears it.
TEST_F(VaultTest, FaultShredAfterACommitIsRetriedOnTheNextWrite) {
  ASSERT_TRUE(Register("a", "old", SecretBytes::Random(32)).ok());
  auto proof = Recover("a", "old");
  ASSERT_TRUE(proof.ok()) << proof.status();
  const int before = store_.shreds;
  store_.shred_fails = true;
  EXPECT_TRUE(Register("a", "new", SecretBytes::Random(32), *proof).ok());
  EXPECT_TRUE(store_.Get("a")->shred_pending());
  store_.shred_fails = false;
  EXPECT_TRUE(Recover("a", "new").ok());
  EXPECT_EQ(store_.shreds, before + 1);
  EXPECT_FALSE(store_.Get("a")->shred_pending());
}

// An audit log without room refuses the change before anything is written.
TEST_F(VaultTest, FaultAuditNotReadyRefusesAChangeBeforeWriting) {
  ASSERT_TRUE(Register("a", "old", SecretBytes::Random(32)).ok());
  auto proof = Recover("a", "old");
  ASSERT_TRUE(proof.ok()) << proof.status();
  const uint64_t active = vault_->GetStatus("a")->registration_id;
  audit_.ready = false;
  absl::Status s = Register("a", "new", SecretBytes::Random(32), *proof);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Detail(s).attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
  EXPECT_EQ(vault_->Delete("a", *proof).code(), absl::StatusCode::kUnavailable);
  audit_.ready = true;
  EXPECT_EQ(vault_->GetStatus("a")->registration_id, active);
  EXPECT_TRUE(Recover("a", "old").ok());
}

// Deleting a first registration's PENDING record (never held a key) forces
// no shred; deleting an ACTIVE one does.
TEST_F(VaultTest, DeleteShredsOnlyARecordThatHeldAKeyRegression) {
  ASSERT_TRUE(Register("p", "pw", SecretBytes::Random(32), {}, false).ok());
  const int before = store_.shreds;
  const int marked = store_.shred_pending_writes;
  ASSERT_TRUE(vault_->Delete("p").ok());
  EXPECT_EQ(store_.shreds, before);
  EXPECT_EQ(store_.shred_pending_writes, marked);  // nothing queued either
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  auto proof = Recover("a", "pw");
  ASSERT_TRUE(proof.ok()) << proof.status();
  ASSERT_TRUE(vault_->Delete("a", *proof).ok());
  EXPECT_EQ(store_.shreds, before + 1);
}

TEST_F(VaultTest, ReplacingWithoutProofNamesBothWaysOut) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  absl::Status s = Register("a", "other", SecretBytes::Random(32));
  EXPECT_EQ(Detail(s).reason(), ErrorDetail::REASON_PROOF_REQUIRED);
  EXPECT_NE(s.message().find("proof"), std::string::npos);
  EXPECT_NE(s.message().find("RequestReset"), std::string::npos);
  EXPECT_EQ(Detail(vault_->Delete("a")).reason(),
            ErrorDetail::REASON_PROOF_REQUIRED);
}

// The record cache (server/record_cache.h): a node that answered an
// account's last calls decides its next one without reading the store, and
// a cached record that another node has moved on from never decides.
TEST_F(VaultTest, ARecoveryAfterTheFirstReadsNothing) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  Reset(10);  // a fresh node: its cache is empty
  store_.gets = 0;
  ASSERT_TRUE(Recover("a", "pw").ok());
  EXPECT_EQ(store_.gets, 1);  // RecoverStart's read; the finish used its write
  ASSERT_TRUE(Recover("a", "pw").ok());
  EXPECT_EQ(store_.gets, 1);
}

TEST_F(VaultTest, AStaleCachedRecordNeverDecides) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  EXPECT_FALSE(Recover("a", "x").ok());  // node A caches 9 left
  std::unique_ptr<Vault> a = NewNode(10);
  std::swap(vault_, a);  // node B guesses twice
  EXPECT_FALSE(Recover("a", "x").ok());
  EXPECT_FALSE(Recover("a", "x").ok());
  std::swap(vault_, a);  // back on A, whose cache says 9
  auto guess = Recover("a", "x");
  EXPECT_EQ(Detail(guess.status()).attempts_remaining(), 6u);
  EXPECT_EQ(Remaining("a"), 6u);
}

TEST_F(VaultTest, ALockoutOnAnotherNodeWinsOverTheCache) {
  Reset(3);
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  ASSERT_TRUE(Recover("a", "pw").ok());  // A caches an active record
  std::unique_ptr<Vault> a = NewNode(3);
  std::swap(vault_, a);  // node B spends every attempt: locked
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(Recover("a", "x").ok());
  std::swap(vault_, a);
  auto start = vault_->RecoverStart(
      "a", client_.GenerateKE1(SecretBytes::Copy("pw"))->ke1.Serialize());
  ASSERT_FALSE(start.ok());
  EXPECT_EQ(Detail(start.status()).reason(), ErrorDetail::REASON_LOCKED);
  EXPECT_EQ(vault_->GetStatus("a")->status, policy::Status::kLocked);
}

// The operator's purge (docs/threshold.md, "Operator purge of one
// account"): a record younger than the quiet time is refused with nothing
// written or audited; once it is that old it is deleted, shredded and
// audited before and after; a record that changed since it was seen (a
// node still serving it) is refused.
TEST_F(VaultTest, PurgeWaitsForAQuietRecord) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  Vault::PurgeRequest r{/*quiet_ms=*/120'000, /*skew_ms=*/60'000, true, 0};
  now_ += 120'000 - 1;
  auto seen = vault_->Purge("a", r);
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(seen->wait_ms, 1);
  EXPECT_EQ(seen->state, "ACTIVE");
  r.preview = false;
  r.expected_version = seen->version;
  const int shreds = store_.shreds;
  const int marked = store_.shred_pending_writes;
  const size_t lines = audit_.lines.size();
  EXPECT_TRUE(absl::IsFailedPrecondition(vault_->Purge("a", r).status()));
  EXPECT_TRUE(store_.Get("a").ok());
  EXPECT_EQ(audit_.lines.size(), lines);
  now_ += 1;
  r.expected_version = seen->version - 1;  // another record than the one seen
  EXPECT_TRUE(absl::IsAborted(vault_->Purge("a", r).status()));
  r.expected_version = seen->version;
  auto purged = vault_->Purge("a", r);
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_TRUE(purged->unfinished.ok());
  EXPECT_TRUE(absl::IsNotFound(store_.Get("a").status()));
  EXPECT_EQ(store_.shreds, shreds + 1);
  // Its shred was queued durably before the delete (a crash between them).
  EXPECT_EQ(store_.shred_pending_writes, marked + 1);
  ASSERT_EQ(audit_.lines.size(), lines + 2);
  EXPECT_EQ(audit_.lines[lines], "purge/started state=ACTIVE epoch=0");
  EXPECT_EQ(audit_.lines[lines + 1], "purge/purged");
  EXPECT_TRUE(absl::IsNotFound(vault_->Purge("a", r).status()));
  EXPECT_EQ(audit_.lines.size(), lines + 2);  // an absent account: no line
}

// A last write further in the future than the clock margin is a clock
// problem: refused, even as a preview.
TEST_F(VaultTest, PurgeRefusesARecordFromTheFuture) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  now_ -= 60'001;
  auto seen = vault_->Purge("a", {120'000, 60'000, true, 0});
  EXPECT_TRUE(absl::IsFailedPrecondition(seen.status())) << seen.status();
  EXPECT_NE(seen.status().message().find("check the clocks"),
            std::string::npos);
}

// An audit log that cannot take the first line refuses the purge before the
// delete; a shred that fails after it is reported, the record being gone.
TEST_F(VaultTest, FaultPurgeAuditRefusalDeletesNothing) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  const uint64_t version = store_.Get("a")->version();
  audit_.failing.insert("purge/started state=ACTIVE epoch=0");
  EXPECT_EQ(vault_->Purge("a", {0, 0, false, version}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_TRUE(store_.Get("a").ok());
  audit_.failing.clear();
  store_.shred_fails = true;
  auto purged = vault_->Purge("a", {0, 0, false, version});
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_NE(purged->unfinished.message().find("shred failed"),
            std::string::npos)
      << purged->unfinished;
  EXPECT_TRUE(absl::IsNotFound(store_.Get("a").status()));
}

TEST_F(VaultTest, ResetBecomesDueAfterTheDelay) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  auto due = vault_->RequestReset("a");
  ASSERT_TRUE(due.ok());
  EXPECT_EQ(*due, now_ + policy::Limits().reset_delay_ms);
  now_ = *due - 1;
  EXPECT_FALSE(vault_->Delete("a").ok());
  now_ = *due;
  EXPECT_TRUE(vault_->Delete("a").ok());
}

// Review finding C6 of branch shred: a successful recovery drops the
// registration a due reset allowed (the password holder is back); that
// version leaves storage history at once. It was left to compaction.
TEST_F(VaultTest, RecoveryThatDropsAResetRegistrationShredsIt) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  auto due = vault_->RequestReset("a");
  ASSERT_TRUE(due.ok());
  now_ = *due;
  ASSERT_TRUE(Register("a", "new", SecretBytes::Random(32), {}, false).ok());
  ASSERT_TRUE(store_.Get("a")->pending_via_reset());
  const int shreds = store_.shreds;
  ASSERT_TRUE(Recover("a", "pw").ok());
  EXPECT_EQ(store_.shreds, shreds + 1);
  EXPECT_FALSE(store_.Get("a")->pending_via_reset());
  EXPECT_FALSE(store_.Get("a")->shred_pending());  // settled
}

// Review finding D3 of branch shred: deleting a record that held a key first
// writes it with shred_pending (what makes RocksDB queue the shred, finished
// at the next open if a crash comes before the Shred); a key-less PENDING
// record is deleted without. There was no such write before.
TEST_F(VaultTest, DeleteOfARecordThatHeldAKeyQueuesItsShredFirst) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  auto proof = Recover("a", "pw");
  ASSERT_TRUE(proof.ok()) << proof.status();
  const int before = store_.shred_pending_writes;
  const int shreds = store_.shreds;
  ASSERT_TRUE(vault_->Delete("a", *proof).ok());
  EXPECT_EQ(store_.shred_pending_writes, before + 1);
  EXPECT_EQ(store_.shreds, shreds + 1);
  EXPECT_FALSE(store_.Get("a").ok());
}

// Review finding C2 of branch shred: a record already flagged (its marker may
// be gone: SettleShred's shred ran, its clearing write did not) is still
// rewritten with the flag before the Delete.
TEST_F(VaultTest, DeleteOfAFlaggedRecordQueuesItsShredAgain) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  auto proof = Recover("a", "pw");
  ASSERT_TRUE(proof.ok()) << proof.status();
  auto flagged = store_.Get("a");
  ASSERT_TRUE(flagged.ok());
  flagged->set_shred_pending(true);
  ASSERT_TRUE(store_.CompareAndSwap("a", flagged->version(), *flagged).ok());
  const int before = store_.shred_pending_writes;
  ASSERT_TRUE(vault_->Delete("a", *proof).ok());
  EXPECT_EQ(store_.shred_pending_writes, before + 1);
}

// Review finding C3 of branch shred: a realm record that held a share is
// deleted by a tombstone that carries shred_pending (RocksDB queues its shred
// in the same write).
TEST_F(VaultTest, RealmDeleteTombstoneQueuesItsShred) {
  storage::v1::UserRecord pending;
  pending.set_state(storage::v1::RECORD_STATE_PENDING);
  pending.set_realm_epoch(1);
  pending.mutable_pending_realm()->set_oprf_key_share(std::string(32, 'k'));
  ASSERT_TRUE(store_.CompareAndSwap("r", 0, pending).ok());
  ASSERT_TRUE(vault_->Delete("r").ok());
  auto tombstone = store_.Get("r");
  ASSERT_TRUE(tombstone.ok()) << tombstone.status();
  EXPECT_TRUE(tombstone->realm_tombstone());
  EXPECT_TRUE(tombstone->shred_pending());
}

TEST_F(VaultTest, LockoutShredsCountsAndAuditsOnce) {
  Reset(2);
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  const int before = store_.shreds;
  EXPECT_FALSE(Recover("a", "x").ok());
  auto last = Recover("a", "x");
  EXPECT_EQ(Detail(last.status()).reason(), ErrorDetail::REASON_LOCKED);
  EXPECT_EQ(store_.shreds, before + 1);
  EXPECT_EQ(
      std::count(audit_.lines.begin(), audit_.lines.end(), "lockout/locked"),
      1);
  EXPECT_NE(metrics_.RenderPrometheus().find("bkv_lockouts_total 1"),
            std::string::npos);
}

// Review finding D2 of branch shred (docs/storage.md): a lockout whose shred
// fails still answers LOCKED, counts and audits the lockout (the store keeps
// the shred queued). It failed the call with the shred's error before.
TEST_F(VaultTest, FaultLockoutWhoseShredFailsStillAnswersLocked) {
  Reset(2);
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  EXPECT_FALSE(Recover("a", "x").ok());
  store_.shred_fails = true;
  auto last = Recover("a", "x");
  EXPECT_EQ(Detail(last.status()).reason(), ErrorDetail::REASON_LOCKED)
      << last.status();
  EXPECT_EQ(
      std::count(audit_.lines.begin(), audit_.lines.end(), "lockout/locked"),
      1);
  EXPECT_NE(metrics_.RenderPrometheus().find("bkv_lockouts_total 1"),
            std::string::npos);
}

// Review finding 7 (docs/rollback.md): the locking write's outcome is
// unknown (it commits later): the old copies are shredded anyway and the
// answer does not promise the attempt back.
TEST_F(VaultTest, LockWithUnknownOutcomeShredsAnywayRegression) {
  Reset(2);
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  EXPECT_FALSE(Recover("a", "x").ok());
  const int before = store_.shreds;
  auto ke1 = client_.GenerateKE1(SecretBytes::Copy("x"));
  auto start = vault_->RecoverStart("a", ke1->ke1.Serialize());
  ASSERT_TRUE(start.ok()) << start.status();
  store_.unknown_outcome = 1;
  std::vector<uint8_t> wrong_ke3(64, 1);
  auto last =
      vault_->RecoverFinish("a", wrong_ke3, Bytes(start->login.login_state));
  ASSERT_FALSE(last.ok());
  EXPECT_EQ(store_.shreds, before + 1);
  EXPECT_NE(last.status().message().find("may already be counted"),
            std::string::npos)
      << last.status();
  EXPECT_EQ(last.status().message().find("get the attempt back"),
            std::string::npos);
}

TEST_F(VaultTest, DeleteWithUnknownOutcomeShredsAnywayRegression) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  auto proof = Recover("a", "pw");
  ASSERT_TRUE(proof.ok()) << proof.status();
  const int before = store_.shreds;
  store_.unknown_outcome = 1;
  EXPECT_FALSE(vault_->Delete("a", *proof).ok());
  EXPECT_EQ(store_.shreds, before + 1);
}

TEST_F(VaultTest, StatusWithoutRecordReportsTheConfiguredLimit) {
  auto s = vault_->GetStatus("nobody");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->status, policy::Status::kNone);
  EXPECT_EQ(s->attempt_limit, 10u);
}

TEST_F(VaultTest, FaultAuditNotReadyRefusesBeforeCounting) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  audit_.ready = false;
  auto r = Recover("a", "pw");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Detail(r.status()).reason(), ErrorDetail::REASON_VAULT_UNAVAILABLE);
  EXPECT_EQ(Detail(r.status()).attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
  EXPECT_EQ(Remaining("a"), 10u);
}

TEST_F(VaultTest, FaultAuditLineAfterCountingRefundsTheAttempt) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  audit_.failing.insert("recover_start/counted");
  for (int i = 0; i < 12; ++i) {  // more than the limit: nothing adds up
    auto r = Recover("a", "pw");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(Detail(r.status()).attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
  }
  EXPECT_EQ(Remaining("a"), 10u);
  audit_.failing.clear();
  EXPECT_TRUE(Recover("a", "pw").ok());
}

TEST_F(VaultTest, FaultFullStoreRefusesBeforeCounting) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  store_.full = true;
  auto r = Recover("a", "pw");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Detail(r.status()).reason(), ErrorDetail::REASON_VAULT_UNAVAILABLE);
  EXPECT_EQ(Detail(r.status()).attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
  store_.full = false;
  EXPECT_EQ(Remaining("a"), 10u);
}

TEST_F(VaultTest, FaultProvenPasswordResetsTheCounterEvenIfReleaseFails) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  EXPECT_FALSE(Recover("a", "wrong").ok());
  ASSERT_EQ(Remaining("a"), 9u);
  audit_.failing.insert("recover_finish/success");
  auto r = Recover("a", "pw");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Detail(r.status()).attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
  EXPECT_EQ(Remaining("a"), 10u);
}

TEST_F(VaultTest, WrongPasswordSaysTheAttemptWasSpent) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  auto r = Recover("a", "wrong");
  EXPECT_EQ(Detail(r.status()).reason(), ErrorDetail::REASON_INVALID_LOGIN);
  EXPECT_EQ(Detail(r.status()).attempt(), ErrorDetail::ATTEMPT_SPENT);
  auto unknown = Recover("ghost", "pw");
  EXPECT_EQ(Detail(unknown.status()).attempts_remaining(), 9u);
  EXPECT_EQ(Detail(unknown.status()).attempt(), ErrorDetail::ATTEMPT_SPENT);
}

TEST_F(VaultTest, ProofExpiresAfterTenMinutes) {
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  auto proof = Recover("a", "pw");
  ASSERT_TRUE(proof.ok());
  now_ += policy::Limits().proof_ttl_ms;
  EXPECT_EQ(Detail(vault_->Delete("a", *proof)).reason(),
            ErrorDetail::REASON_PROOF_REQUIRED);
  now_ -= 1;
  EXPECT_TRUE(vault_->Delete("a", *proof).ok());
}

TEST_F(VaultTest, ResetNeedsAnActiveRecord) {
  EXPECT_EQ(Detail(vault_->RequestReset("nobody").status()).reason(),
            ErrorDetail::REASON_NOT_REGISTERED);
  Reset(1);
  ASSERT_TRUE(Register("a", "pw", SecretBytes::Random(32)).ok());
  EXPECT_FALSE(Recover("a", "x").ok());  // locked
  EXPECT_EQ(Detail(vault_->RequestReset("a").status()).reason(),
            ErrorDetail::REASON_LOCKED);
  EXPECT_TRUE(vault_->Delete("a").ok());  // a locked record needs nothing
}

}  // namespace
}  // namespace bkv::server
