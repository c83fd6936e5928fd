// The review's attacks on the decorator that need a storage behaviour a
// real RocksDB cannot be made to show (a write applied whose answer is lost,
// a re-read answered with an old record): injected by FaultyStore over a
// real RocksDB and a real token (docs/rollback.md "Ambiguous writes").
// ctest -R rollback.decorator
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "freshness/fresh_record_store.h"
#include "freshness/reanchor.h"
#include "hsm/key_labels.h"
#include "hsm/pkcs11_hsm.h"
#include "tests/freshness/fresh_fixture.h"

namespace bkv::freshness {
namespace {

using storage::RecordStore;

class RollbackDecoratorTest : public FreshStoreTest {
 protected:
  // An account in another shard than `id`.
  static std::string OtherShard(const std::string& id) {
    std::string other = "o0";
    for (int i = 1; ShardOf(storage::DeriveAccountKey(other), 4) ==
                    ShardOf(storage::DeriveAccountKey(id), 4);
         ++i) {
      other = absl::StrCat("o", i);
    }
    return other;
  }
  bool Stale(const std::string& id) {
    return fresh_->Stats()
        .shard_stale[ShardOf(storage::DeriveAccountKey(id), 4)];
  }
};

// Review finding 1: X is stored but answered with an error and re-reads
// show the old record R1; then Y, built from the same R1, is dropped and the
// storage presents X. X must not be taken as Y's write (tag reuse plus
// "tag and parent match"): that would release a second KE2 for one count.
TEST_F(RollbackDecoratorTest, AmbiguousWriteIsSettledOnlyByExactContent) {
  auto v1 = fresh_->CompareAndSwap("ann", RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v1.ok()) << v1.status();
  auto r1 = inner_->Get("ann");
  ASSERT_TRUE(r1.ok());
  const uint64_t seq = fresh_->Stats().seq;

  store_.applied_then_fail = 1;
  store_.presented = *r1;
  store_.presented_reads = 1;
  auto x = fresh_->CompareAndSwap("ann", *v1, Active(1));  // X: counter 1
  EXPECT_FALSE(x.ok());
  ASSERT_EQ(inner_->Get("ann")->attempts_used(), 1u);  // X is in the store

  store_.drop_writes = 1;  // Y is lost; the re-read shows X
  auto y = fresh_->CompareAndSwap("ann", *v1, Active(2));
  EXPECT_FALSE(y.ok()) << "X was taken as Y's write at version " << *y;
  EXPECT_EQ(fresh_->Stats().seq, seq) << "no head may cover X or Y";
  // X was never anchored: the account refuses; other accounts serve.
  EXPECT_FALSE(fresh_->Get("ann").ok());
  EXPECT_TRUE(
      fresh_
          ->CompareAndSwap(OtherShard("ann"), RecordStore::kNoRecord, Active(0))
          .ok());
  EXPECT_FALSE(fresh_->Get("ann").ok());
}

// A write that failed after its tag was handed out burns the tag: the next
// write gets a later one, so a record the storage holds back can't pass for
// a later write's.
TEST_F(RollbackDecoratorTest, FailedWriteNeverHandsItsTagOutAgain) {
  auto v1 = fresh_->CompareAndSwap("bea", RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v1.ok());
  store_.drop_writes = 1;
  store_.fail_reads = 1;  // unsettled
  EXPECT_FALSE(fresh_->CompareAndSwap("bea", *v1, Active(1)).ok());
  const uint64_t seq = fresh_->Stats().seq;
  // The re-read now shows the anchored record: not applied, settled.
  auto got = fresh_->Get("bea");
  ASSERT_TRUE(got.ok()) << got.status();
  auto v2 = fresh_->CompareAndSwap("bea", *v1, Active(1));
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_GT(inner_->Get("bea")->fresh_tag(), seq + 1);
  Reopen();
  EXPECT_FALSE(Stale("bea"));
  EXPECT_EQ(fresh_->Get("bea")->attempts_used(), 1u);
}

// Review finding 4: a write the storage fails and then refuses to re-read
// refuses only its own account (it used to stop every head until a
// restart); a later re-read that shows exactly that write commits it.
TEST_F(RollbackDecoratorTest, UnsettledWriteRefusesOnlyItsAccount) {
  const std::string other = OtherShard("cal");
  auto v1 = fresh_->CompareAndSwap("cal", RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v1.ok());
  store_.applied_then_fail = 1;
  store_.fail_reads = 2;  // the settling re-read and the next Get's
  EXPECT_FALSE(fresh_->CompareAndSwap("cal", *v1, Active(1)).ok());
  EXPECT_TRUE(absl::IsUnavailable(fresh_->Get("cal").status()));
  auto o = fresh_->CompareAndSwap(other, RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(fresh_->CompareAndSwap(other, *o, Active(1)).ok());
  // The store answers again: the record is exactly the one sent, it counts.
  auto got = fresh_->Get("cal");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->attempts_used(), 1u);
  Reopen();
  EXPECT_FALSE(Stale("cal"));
  EXPECT_EQ(fresh_->Get("cal")->attempts_used(), 1u);
}

// Review finding 3: a record reserved behind a head in flight carries
// seq + 2; the start-up roll-forward must write its head at that seq, or the
// second restart calls an honest store stale.
TEST_F(RollbackDecoratorTest, RollForwardHeadCoversTheHighestTag) {
  auto v1 = fresh_->CompareAndSwap("dan", RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v1.ok());
  const uint64_t seq = fresh_->Stats().seq;
  auto r1 = inner_->Get("dan");
  ASSERT_TRUE(r1.ok());
  const Digest parent = RecordDigest(storage::DeriveAccountKey("dan"), *r1);
  fresh_.reset();
  // What a crash leaves: the record written with tag seq + 2, no head.
  UserRecord next = Active(1);
  next.set_fresh_parent(std::string(parent.begin(), parent.end()));
  next.set_fresh_tag(seq + 2);
  ASSERT_TRUE(inner_->CompareAndSwap("dan", *v1, next).ok());
  Reopen();  // rolls it forward
  EXPECT_FALSE(Stale("dan"));
  EXPECT_GE(fresh_->Stats().seq, seq + 2);
  Reopen();  // nothing written in between
  EXPECT_FALSE(Stale("dan"));
  EXPECT_EQ(fresh_->Get("dan")->attempts_used(), 1u);
}

// Review finding 2: during a re-anchor the storage picks which copy of each
// record comes back. A copy with a reset request, an open login or a pending
// registration loses them. Form3 review finding 1: every re-anchor caps at
// K (2, 2, 2: routine losses don't drain the cap) and spends one of the
// shard's B lifetime ceremonies; the (B+1)th needs --force and gives 0.
TEST_F(RollbackDecoratorTest, ReanchorDropsRequestsAndSpendsABudget) {
  auto v1 = fresh_->CompareAndSwap("eve", RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v1.ok());
  fresh_.reset();
  HeadTable budget = *faulty_->Read().value();  // B = 3, as configured
  for (ShardHead& h : budget.shards) h.ceremonies_left = 3;
  ASSERT_TRUE(faulty_->Write(budget).ok());
  UserRecord old = Active(0);  // what the storage brings back
  old.set_reset_requested_unix_ms(1);
  old.set_pending_registration_id(7);
  old.set_pending_opaque_record("new password");
  old.add_open_logins()->set_seq(3);
  uint64_t v = *v1;
  std::vector<uint32_t> caps, left;
  for (int round = 0; round < 5; ++round) {
    fresh_.reset();
    auto put = inner_->CompareAndSwap("eve", v, old);  // behind its back
    ASSERT_TRUE(put.ok()) << put.status();
    v = *put;
    auto report = Reanchor(*inner_, *faulty_, {4, {}, 2});
    if (round >= 3) {  // B = 3 spent: refused, naming the way out
      EXPECT_TRUE(absl::IsFailedPrecondition(report.status()))
          << report.status();
      EXPECT_NE(report.status().message().find("5 members"), std::string::npos);
      ReanchorOptions forced{4, {}, 2};
      forced.force = true;
      report = Reanchor(*inner_, *faulty_, forced);
    }
    ASSERT_TRUE(report.ok()) << report.status();
    ASSERT_EQ(report->shards.size(), 1u);
    caps.push_back(report->shards[0].cap);
    left.push_back(report->shards[0].ceremonies_left);
    Reopen();
    auto got = fresh_->Get("eve");
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->attempt_limit() - got->attempts_used(), caps.back());
    EXPECT_EQ(got->reset_requested_unix_ms(), 0);
    EXPECT_EQ(got->pending_registration_id(), 0u);
    EXPECT_TRUE(got->pending_opaque_record().empty());
    EXPECT_EQ(got->open_logins_size(), 0);
  }
  EXPECT_EQ(caps, (std::vector<uint32_t>{2, 2, 2, 0, 0}));
  EXPECT_EQ(left, (std::vector<uint32_t>{2, 1, 0, 0, 0}));
  // Written as 0x02, with the count: a restart reads it back.
  EXPECT_EQ(faulty_->Read().value()->format, 0x02);
}

// The shim's next `n` token-object creates fail with CKR_DEVICE_ERROR.
void FailTokenCreates(int n) {
  void* dl = dlopen(BKV_COPY_FAILING_MODULE, RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(dl, nullptr);
  auto fail =
      reinterpret_cast<void (*)(int)>(dlsym(dl, "bkv_test_fail_token_creates"));
  ASSERT_NE(fail, nullptr);
  fail(n);
  dlclose(dl);
}

size_t ObjectsLabelled(hsm::Pkcs11Hsm& token, const std::string& label) {
  auto session = token.AcquireSession();
  EXPECT_TRUE(session.ok()) << session.status();
  if (!session.ok()) return 0;
  auto objects = session->FindObjects(CKO_DATA, label);
  EXPECT_TRUE(objects.ok()) << objects.status();
  return objects.ok() ? objects->size() : 0;
}

// The transient-HSM-error path of the budget (the budget review's finding
// 6 fix): a re-anchor whose head write fails in the token with a transient
// device error (SoftHSM behind a shim failing the token object's create
// once) leaves the token's table as it was, its shard's budget unspent,
// and no extra or staged object; a vault opened meanwhile serves the shard
// as before. The ceremony run again (a new `rollback reanchor` process,
// a new head store) spends exactly one re-anchor and caps the record.
TEST(ReanchorTokenFault, TransientHeadWriteFailureSpendsNothingAndRetries) {
  // The create/destroy path, whose head write is a create (a token that
  // cannot rewrite in place); the in-place path's failed write:
  // AnchoredObjectOwnFaults.FailedSetIsRetriedNotFenced.
  ASSERT_EQ(setenv("BKV_TEST_REFUSE_SET", "1", 1), 0);
  auto token = hsm::testing::TestToken::Create(/*with_keys=*/false);
  ASSERT_TRUE(token.ok()) << token.status();
  auto hsm = hsm::testing::OpenThroughShim(**token, BKV_COPY_FAILING_MODULE);
  ASSERT_TRUE(hsm.ok()) << hsm.status();
  storage::testing::TempDir dir;
  storage::RocksDbRecordStoreOptions o;
  o.data_dir = dir.path();
  auto store =
      storage::RocksDbRecordStore::Open(o, storage::testing::TestSealer());
  ASSERT_TRUE(store.ok()) << store.status();
  UserRecord active = storage::testing::SampleRecord(0);
  active.set_state(storage::v1::RECORD_STATE_ACTIVE);
  active.set_attempt_limit(10);
  auto open_vault = [&](HeadStore& heads) {
    auto f = FreshRecordStore::Open(**store, heads, {4, nullptr});
    EXPECT_TRUE(f.ok()) << f.status();
    return f.ok() ? *std::move(f) : nullptr;
  };
  auto first = TokenHeadStore::Open(*hsm);
  ASSERT_TRUE(first.ok()) << first.status();
  {
    auto fresh = open_vault(**first);
    ASSERT_NE(fresh, nullptr);
    ASSERT_TRUE(
        fresh->CompareAndSwap("zoe", RecordStore::kNoRecord, active).ok());
  }
  const uint32_t shard = ShardOf(storage::DeriveAccountKey("zoe"), 4);
  const std::vector<uint8_t> before = EncodeHeads(*(*first)->Read().value());

  ASSERT_NO_FATAL_FAILURE(FailTokenCreates(1));
  auto failed = Reanchor(**store, **first, {4, {shard}, 2});
  ASSERT_FALSE(failed.ok());
  FailTokenCreates(0);
  auto reopened = TokenHeadStore::Open(*hsm);  // as a new process sees it
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(EncodeHeads(*(*reopened)->Read().value()), before)
      << "the failed ceremony changed the token's table";
  EXPECT_EQ(ObjectsLabelled(**hsm, std::string(hsm::kFreshHeadsLabel)), 1u);
  EXPECT_EQ(
      ObjectsLabelled(**hsm, std::string(hsm::kFreshHeadsLabel) + ".staging"),
      0u);
  {
    auto fresh = open_vault(**reopened);
    ASSERT_NE(fresh, nullptr);
    EXPECT_FALSE(fresh->Stats().shard_stale[shard]);
    auto got = fresh->Get("zoe");
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->attempts_used(), 0u);  // not capped: nothing happened
  }

  auto retry = TokenHeadStore::Open(*hsm);
  ASSERT_TRUE(retry.ok()) << retry.status();
  auto done = Reanchor(**store, **retry, {4, {shard}, 2});
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->shards.size(), 1u);
  EXPECT_EQ(done->shards[0].epoch, 1u);
  EXPECT_EQ(done->shards[0].cap, 2u);
  EXPECT_EQ(done->shards[0].ceremonies_left, kDefaultCeremonies - 1);
  auto fresh = open_vault(**retry);
  ASSERT_NE(fresh, nullptr);
  auto got = fresh->Get("zoe");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->attempt_limit() - got->attempts_used(), 2u);
}

// Budget review finding 7: a quorum decision re-anchors a proven shard
// whose writes roll forward (cap_rolled_forward). With its budget spent it
// is kept as certified, not refused nor given 0 attempts unnamed, while the
// shard the officer named is re-anchored.
TEST_F(RollbackDecoratorTest, SpentShardRollingForwardIsKeptNotReanchored) {
  const std::string other = OtherShard("gus");
  auto v1 = fresh_->CompareAndSwap("gus", RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v1.ok());
  auto o1 = fresh_->CompareAndSwap(other, RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(o1.ok());
  const uint64_t seq = fresh_->Stats().seq;
  auto r1 = inner_->Get("gus");
  ASSERT_TRUE(r1.ok());
  const Digest parent = RecordDigest(storage::DeriveAccountKey("gus"), *r1);
  fresh_.reset();
  const uint32_t spent = ShardOf(storage::DeriveAccountKey("gus"), 4);
  const uint32_t named = ShardOf(storage::DeriveAccountKey(other), 4);
  HeadTable table = *faulty_->Read().value();
  table.shards[spent].ceremonies_left = 0;
  ASSERT_TRUE(faulty_->Write(table).ok());
  UserRecord next = Active(1);  // a crash mid-batch: written, no head
  next.set_fresh_parent(std::string(parent.begin(), parent.end()));
  next.set_fresh_tag(seq + 2);
  ASSERT_TRUE(inner_->CompareAndSwap("gus", *v1, next).ok());
  ASSERT_TRUE(inner_->CompareAndSwap(other, *o1, Active(3)).ok());  // stale
  ReanchorOptions options{4, {named}, 2};
  options.cap_rolled_forward = true;
  auto report = Reanchor(*inner_, *faulty_, options);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->shards.size(), 1u);
  EXPECT_EQ(report->shards[0].shard, named);
  EXPECT_EQ(report->shards[0].cap, 2u);
  EXPECT_EQ(report->kept_spent, (std::vector<uint32_t>{spent}));
  const HeadTable after = *faulty_->Read().value();
  EXPECT_EQ(after.shards[spent].epoch, table.shards[spent].epoch);
  EXPECT_EQ(after.shards[spent].cap, table.shards[spent].cap);
  EXPECT_EQ(after.shards[spent].ceremonies_left, 0u);
  EXPECT_EQ(after.shards[spent].root, table.shards[spent].root);
}

// A record the store can't open would be left out (its account reads as
// absent and could be registered again without proof): refused unless the
// officer accepts it.
TEST_F(RollbackDecoratorTest, ReanchorRefusesUnreadableRecords) {
  auto v1 = fresh_->CompareAndSwap("fay", RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v1.ok());
  fresh_.reset();
  ASSERT_TRUE(inner_->CompareAndSwap("fay", *v1, Active(1)).ok());  // stale
  OpenInner(0x17);  // another sealing key
  ASSERT_TRUE(
      inner_->CompareAndSwap("zed", RecordStore::kNoRecord, Active(0)).ok());
  OpenInner();
  auto report = Reanchor(*inner_, *faulty_, {4, {}, 2});
  EXPECT_TRUE(absl::IsFailedPrecondition(report.status())) << report.status();
  ReanchorOptions accept{4, {}, 2};
  accept.accept_unreadable = true;
  report = Reanchor(*inner_, *faulty_, accept);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->unreadable, 1u);
}

// Review finding 5: another writer replaces the token's head table (a
// second vault process on the token, a re-anchor behind a running vault):
// the running decorator must not write on from its memory (that would undo
// the other writer's heads); it stops serving instead.
TEST_F(RollbackDecoratorTest, SecondHeadWriterFencesTheFirst) {
  auto v1 = fresh_->CompareAndSwap("gus", RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v1.ok());
  auto other = TokenHeadStore::Open(token_->hsm());
  ASSERT_TRUE(other.ok()) << other.status();
  auto table = (*other)->Read();
  ASSERT_TRUE(table.ok() && table->has_value());
  HeadTable moved = **table;
  ++moved.seq;
  ASSERT_TRUE((*other)->Write(moved).ok());
  auto v2 = fresh_->CompareAndSwap("gus", *v1, Active(1));
  EXPECT_TRUE(absl::IsUnavailable(v2.status())) << v2.status();
  EXPECT_TRUE(absl::IsUnavailable(fresh_->Get("gus").status()));
  auto now = (*other)->Read();
  ASSERT_TRUE(now.ok() && now->has_value());
  EXPECT_EQ((*now)->seq, moved.seq) << "the fenced writer wrote on";
}

// Finding 5 (c): a vault still running writes a head while the ceremony
// scans: the ceremony's write is refused instead of undoing that head.
TEST_F(RollbackDecoratorTest, ReanchorRefusesWhenTheHeadsMoveDuringIt) {
  auto v1 = fresh_->CompareAndSwap("ian", RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v1.ok());
  ASSERT_TRUE(inner_->CompareAndSwap("ian", *v1, Active(1)).ok());  // stale
  auto ceremony = TokenHeadStore::Open(token_->hsm());
  ASSERT_TRUE(ceremony.ok());
  store_.during_scan = [&] {  // the running vault writes the next head
    EXPECT_TRUE(fresh_->SyncBarrier("someone").ok());
  };
  auto report = Reanchor(store_, **ceremony, {4, {}, 2});
  store_.during_scan = nullptr;
  EXPECT_TRUE(absl::IsFailedPrecondition(report.status())) << report.status();
}

// Review finding 6: a token without heads over a store with records (a new
// or re-initialised token, the wrong label) is no genesis: the vault
// refuses and names the ceremony, which anchors the store with the cap.
TEST_F(RollbackDecoratorTest, GenesisOnAStoreWithRecordsNeedsTheCeremony) {
  ASSERT_TRUE(
      fresh_->CompareAndSwap("hal", RecordStore::kNoRecord, Active(0)).ok());
  fresh_.reset();
  faulty_.reset();
  token_heads_.reset();
  token_.reset();  // a new token in its place
  auto token = hsm::testing::TestToken::Create(/*with_keys=*/false);
  ASSERT_TRUE(token.ok()) << token.status();
  auto heads = TokenHeadStore::Open((*token)->hsm());
  ASSERT_TRUE(heads.ok());
  auto refused = FreshRecordStore::Open(store_, **heads, {4, nullptr});
  ASSERT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("--genesis"), std::string::npos);
  EXPECT_FALSE(Reanchor(*inner_, **heads, {4, {}, 2}).ok());
  ReanchorOptions genesis{4, {}, 2};
  genesis.genesis = true;
  auto report = Reanchor(*inner_, **heads, genesis);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->shards.size(), 4u);
  auto opened = FreshRecordStore::Open(store_, **heads, {4, nullptr});
  ASSERT_TRUE(opened.ok()) << opened.status();
  auto got = (*opened)->Get("hal");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->attempt_limit() - got->attempts_used(), 2u);
  opened->reset();
}

// Raw access to the token's head objects, as a second writer would leave
// them.
class RawHeads {
 public:
  explicit RawHeads(hsm::Pkcs11Hsm& token)
      : session_(*token.AcquireSession()) {}
  std::vector<CK_OBJECT_HANDLE> Objects() {
    return *session_.FindObjects(CKO_DATA, hsm::kFreshHeadsLabel);
  }
  std::vector<uint8_t> Only() {
    auto objects = Objects();
    EXPECT_EQ(objects.size(), 1u);
    return *session_.GetAttribute(objects.at(0), CKA_VALUE);
  }
  void DestroyAll() {
    for (CK_OBJECT_HANDLE o : Objects())
      ASSERT_TRUE(session_.DestroyObject(o).ok());
  }
  std::vector<CK_OBJECT_HANDLE> Staged() {
    return *session_.FindObjects(CKO_DATA, StagingLabel());
  }
  bool Flag(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
    return *session_.GetBoolAttribute(o, type);
  }
  static std::string StagingLabel() {
    return absl::StrCat(hsm::kFreshHeadsLabel, ".staging");
  }
  void Put(std::vector<uint8_t> value,
           std::string label = std::string(hsm::kFreshHeadsLabel)) {
    CK_OBJECT_CLASS data = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &data, sizeof(data)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_LABEL, label.data(), label.size()},
        {CKA_VALUE, value.data(), value.size()},
    };
    ASSERT_TRUE(session_.CreateObject(tmpl).ok());
  }

 private:
  hsm::Pkcs11Hsm::Session session_;
};

// A token whose heads are create/destroy objects (written before branch
// slots, or a token that refuses in-place writes).
class RollbackOldHeadsTest : public RollbackDecoratorTest {
 protected:
  RollbackOldHeadsTest() {
    head_path_ = hsm::AnchoredObject::Path::kCreateDestroy;
  }
};

// Review finding 8: two head objects of one generation (two writers, or a
// create retried after a lost answer). Different values refuse to open;
// identical ones are one write, kept once.
TEST_F(RollbackOldHeadsTest, TwoHeadsOfOneGenerationAreNotPickedSilently) {
  fresh_.reset();
  RawHeads raw(*token_->hsm());
  const std::vector<uint8_t> g = raw.Only();
  auto Advance = [&](uint64_t by) {
    auto heads = TokenHeadStore::Open(token_->hsm(), head_path_);
    ASSERT_TRUE(heads.ok()) << heads.status();
    HeadTable t = *(*heads)->Read().value();
    t.seq += by;
    ASSERT_TRUE((*heads)->Write(t).ok());
  };
  Advance(1);
  const std::vector<uint8_t> x = raw.Only();  // generation g + 1
  raw.DestroyAll();
  raw.Put(g);
  Advance(2);  // another generation g + 1
  const std::vector<uint8_t> y = raw.Only();
  ASSERT_NE(x, y);
  raw.Put(x);
  auto refused = TokenHeadStore::Open(token_->hsm());
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  raw.DestroyAll();
  raw.Put(y);
  raw.Put(y);
  auto opened = TokenHeadStore::Open(token_->hsm());
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(raw.Objects().size(), 1u);
}

// On the create/destroy path heads are staged as session objects and copied
// into the token (SoftHSM writes a copy's file twice, a create's once per
// attribute): the token holds one private token object under the heads'
// label and nothing under the staging label; a staged object a crash left on
// the token goes at the next open.
TEST_F(RollbackOldHeadsTest, HeadIsCopiedToTheTokenAndNoStagedCopyStays) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(fresh_->SyncBarrier(absl::StrCat("jo", i)).ok());
  }
  fresh_.reset();
  RawHeads raw(*token_->hsm());
  auto heads = raw.Objects();
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_TRUE(raw.Flag(heads[0], CKA_TOKEN));
  EXPECT_TRUE(raw.Flag(heads[0], CKA_PRIVATE));
  EXPECT_TRUE(raw.Staged().empty());
  raw.Put(raw.Only(), RawHeads::StagingLabel());  // as a crash mid-copy
  ASSERT_EQ(raw.Staged().size(), 1u);
  auto reopened = TokenHeadStore::Open(token_->hsm());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_TRUE(raw.Staged().empty());
  EXPECT_EQ(raw.Objects().size(), 1u);
}

// Review finding 9: the unknown-account path's stand-in for a counted
// write shows in records_committed as a real write does.
TEST_F(RollbackDecoratorTest, UnknownAccountBarrierCountsLikeAWrite) {
  const uint64_t before = fresh_->Stats().records_committed;
  ASSERT_TRUE(fresh_->SyncBarrier("nobody").ok());
  const uint64_t barrier = fresh_->Stats().records_committed - before;
  ASSERT_TRUE(
      fresh_->CompareAndSwap("ida", RecordStore::kNoRecord, Active(0)).ok());
  EXPECT_EQ(barrier, 1u);
  EXPECT_EQ(fresh_->Stats().records_committed - before, 2u);
}

}  // namespace
}  // namespace bkv::freshness
