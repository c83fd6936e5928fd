// The quorum of endorsing nodes (docs/rollback.md "Quorum across nodes"):
// three real SoftHSM tokens with Ed25519 endorsement keys, their endorsers
// behind real gRPC servers on loopback, the owner's FreshRecordStore over
// real RocksDB. ctest -R rollback.quorum
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bkv/vault/v1/error_detail.h"
#include "freshness/endorsement.h"
#include "freshness/endorser_recovery.h"
#include "freshness/fresh_record_store.h"
#include "freshness/quorum_head_store.h"
#include "hsm/endorsement_key.h"
#include "hsm/key_labels.h"
#include "storage/record_codec.h"
#include "storage/rocksdb_record_store.h"
#include "tests/freshness/quorum_nodes.h"
#include "tests/hsm/test_token.h"
#include "tests/storage/test_util.h"

// SoftHSM 2.6's EdDSA C_SignInit leaks the decoded key's ASN.1 string inside
// libcrypto (suppressed as libsofthsm2's in tests/lsan.supp). LeakSanitizer
// sees libsofthsm2 in the stack only with the slow unwinder: libcrypto has no
// frame pointers. Read by ASan builds only.
extern "C" const char* __asan_default_options();
extern "C" const char* __asan_default_options() {
  return "fast_unwind_on_malloc=0";
}

namespace bkv::freshness {
namespace {

using fresh::v1::Certificate;
using fresh::v1::EndorseRequest;
using fresh::v1::EndorserState;
using storage::RecordStore;
using storage::v1::UserRecord;

constexpr int kNodes = 3;

// Shards as a genesis writes them (B = the default), so a proposal
// changes only what the test means it to.
HeadTable Table(uint64_t seq, uint8_t fill) {
  HeadTable t;
  t.seq = seq;
  t.shards.resize(4, {.ceremonies_left = kDefaultCeremonies});
  t.shards[0].root.fill(fill);
  return t;
}

EndorseRequest Request(uint64_t term, const std::string& prev,
                       const HeadTable& next) {
  EndorseRequest r;
  r.set_term(term);
  r.set_prev_digest(prev);
  r.set_next_table(EncodeHeadsString(next));
  return r;
}

// A member gone bad: each answer is what the test sets (an honest peer
// otherwise, when `honest` is set).
class LyingPeer final : public EndorserPeer {
 public:
  std::function<absl::StatusOr<fresh::v1::EndorseResponse>()> endorse;
  std::function<absl::StatusOr<fresh::v1::PrepareResponse>()> prepare;
  void Endorse(const EndorseRequest&, EndorseDone done) override {
    done(endorse ? endorse() : absl::UnavailableError("down"));
  }
  void Prepare(const fresh::v1::PrepareRequest&, PrepareDone done) override {
    done(prepare ? prepare() : absl::UnavailableError("down"));
  }
  void Commit(const fresh::v1::CommitRequest&, CommitDone done) override {
    done(absl::UnavailableError("down"));
  }
  void Recover(const fresh::v1::RecoverRequest&, RecoverDone done) override {
    done(absl::UnavailableError("down"));
  }
};

class QuorumTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    auto q = testing::QuorumNodes::Create(kNodes);
    ASSERT_TRUE(q.ok()) << q.status();
    q_ = *std::move(q);
    members_ = &q_->members();
    for (int i = 0; i < kNodes; ++i) tokens_.push_back(q_->node(i).token);
  }
  void TearDown() override {
    owners_.clear();
    heads_.clear();
    inner_.reset();
    tokens_.clear();
    q_.reset();
  }
  Endorser& E(int i) { return *q_->node(i).endorser; }
  // The request signed by its term's proposer.
  EndorseRequest Signed(EndorseRequest r) {
    EXPECT_TRUE(E(ProposerOf(*members_, r.term()) - 1).SignRequest(r).ok());
    return r;
  }
  // Node `i`'s endorsement of the signed request; its refusal is an error.
  absl::StatusOr<fresh::v1::Endorsement> Sig(int i, const EndorseRequest& r) {
    auto a = E(i).Endorse(Signed(r));
    if (!a.ok()) return a.status();
    if (a->has_refusal()) return absl::FailedPreconditionError("refused");
    return a->endorsement();
  }
  absl::StatusOr<fresh::v1::PrepareResponse> Promise(int i, uint64_t term) {
    auto r = E(ProposerOf(*members_, term) - 1).SignPrepare(term);
    if (!r.ok()) return r.status();
    return E(i).Prepare(*r);
  }

  // Node `self` takes over and opens the decorator over the shared store.
  FreshRecordStore* Own(int self) {
    if (!inner_) {
      storage::RocksDbRecordStoreOptions o;
      o.data_dir = db_.path();
      auto s =
          storage::RocksDbRecordStore::Open(o, storage::testing::TestSealer());
      EXPECT_TRUE(s.ok()) << s.status();
      inner_ = *std::move(s);
    }
    heads_.push_back(q_->Heads(self));
    auto f = FreshRecordStore::Open(*inner_, *heads_.back(), {4, nullptr});
    EXPECT_TRUE(f.ok()) << f.status();
    if (!f.ok()) return nullptr;
    owners_.push_back(*std::move(f));
    return owners_.back().get();
  }
  // Node 1 owns and writes `account`'s first record (its version in *v),
  // then node 2 takes over in term 2.
  void WriteThenTakeOver(const std::string& account,
                         FreshRecordStore** old_owner,
                         FreshRecordStore** new_owner, uint64_t* v) {
    *old_owner = Own(0);
    ASSERT_NE(*old_owner, nullptr);
    auto w = (*old_owner)
                 ->CompareAndSwap(account, RecordStore::kNoRecord, Active(0));
    ASSERT_TRUE(w.ok()) << w.status();
    *v = *w;
    *new_owner = Own(1);
    ASSERT_NE(*new_owner, nullptr);
  }
  static UserRecord Active(uint32_t used) {
    UserRecord r = storage::testing::SampleRecord(used);
    r.set_state(storage::v1::RECORD_STATE_ACTIVE);
    r.set_attempt_limit(10);
    return r;
  }
  // An owner at node `self` whose peer `liar` (an index) is `lying`, the
  // others in-process.
  std::unique_ptr<QuorumHeadStore> WithLiar(int self, int liar,
                                            std::shared_ptr<LyingPeer> lying) {
    std::vector<std::shared_ptr<EndorserPeer>> peers;
    for (int i = 0; i < kNodes; ++i) {
      if (i == self) continue;
      if (i == liar) {
        peers.push_back(lying);
      } else {
        peers.push_back(std::make_shared<LocalEndorserPeer>(E(i)));
      }
    }
    peers.push_back(std::make_shared<LocalEndorserPeer>(E(self)));
    return std::make_unique<QuorumHeadStore>(
        *members_, E(self), std::move(peers), absl::Seconds(2));
  }
  uint64_t HeldSeq(int node) { return HeldHead(E(node).State()).seq(); }
  // The lagging endorser's answer may arrive after the round's majority:
  // bounded wait (50 x 100 ms) for it to hold `seq`.
  bool EventuallyHolds(int node, uint64_t seq) {
    for (int i = 0; i < 50 && HeldSeq(node) != seq; ++i) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    return HeldSeq(node) == seq;
  }

  std::unique_ptr<testing::QuorumNodes> q_;
  std::vector<std::shared_ptr<hsm::Pkcs11Hsm>> tokens_;
  const Members* members_ = nullptr;
  storage::testing::TempDir db_;
  std::unique_ptr<storage::RocksDbRecordStore> inner_;
  std::vector<std::unique_ptr<QuorumHeadStore>> heads_;
  std::vector<std::unique_ptr<FreshRecordStore>> owners_;
};

TEST_F(QuorumTest, EndorsementKeyIsNeverExtractableAndVerifies) {
  auto session = tokens_[0]->AcquireSession();
  ASSERT_TRUE(session.ok());
  auto priv = session->FindObject(CKO_PRIVATE_KEY, hsm::kEndorseKeyLabel);
  ASSERT_TRUE(priv.ok()) << priv.status();
  EXPECT_FALSE(*session->GetBoolAttribute(*priv, CKA_EXTRACTABLE));
  EXPECT_TRUE(*session->GetBoolAttribute(*priv, CKA_SENSITIVE));
  EXPECT_TRUE(absl::IsAlreadyExists(
      hsm::EndorsementKey::Generate(tokens_[0]).status()));
  auto key = hsm::EndorsementKey::Open(tokens_[0]);
  ASSERT_TRUE(key.ok());
  const std::vector<uint8_t> msg = {1, 2, 3};
  auto sig = (*key)->Sign(msg);
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(hsm::VerifyEndorsement((*key)->public_key(), msg, *sig));
  (*sig)[0] ^= 1;
  EXPECT_FALSE(hsm::VerifyEndorsement((*key)->public_key(), msg, *sig));
}

TEST_F(QuorumTest, EndorserSignsOnlyTheDirectSuccessorOfWhatItHolds) {
  auto e = [this](const EndorseRequest& r) { return Sig(0, r); };
  const std::string zero(32, '\0');
  const HeadTable a = Table(1, 0xa1), b = Table(2, 0xb2), fork = Table(2, 0xf2);
  ASSERT_TRUE(e(Request(1, zero, a)).ok());
  // Another first head (a fork of genesis) is refused.
  EXPECT_TRUE(absl::IsAborted(e(Request(1, zero, Table(1, 0xff))).status()));
  // Not linked to what it holds, or not a higher seq.
  EXPECT_TRUE(absl::IsAborted(
      e(Request(1, DigestBytes(TableDigest(fork)), b)).status()));
  EXPECT_TRUE(absl::IsAborted(
      e(Request(1, DigestBytes(TableDigest(a)), Table(1, 0xa2))).status()));
  auto sig = e(Request(1, DigestBytes(TableDigest(a)), b));
  ASSERT_TRUE(sig.ok()) << sig.status();
  // One successor per held head: a second one of `a` is refused.
  EXPECT_TRUE(absl::IsAborted(
      e(Request(1, DigestBytes(TableDigest(a)), fork)).status()));
  EXPECT_EQ(HeldSeq(0), 2u);
  // The state was in the token before the answer: a reopen holds it.
  auto again = Endorser::Open(tokens_[0], *members_, 1);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(HeldHead((*again)->State()).digest(), DigestBytes(TableDigest(b)));
}

TEST_F(QuorumTest, CertificateNeedsAMajorityOfDistinctMembers) {
  const std::string zero(32, '\0');
  const HeadTable a = Table(1, 0xa1);
  Certificate c;
  c.mutable_head()->set_term(1);
  c.mutable_head()->set_seq(1);
  c.mutable_head()->set_prev_digest(zero);
  c.mutable_head()->set_digest(DigestBytes(TableDigest(a)));
  auto one = Sig(0, Request(1, zero, a));
  ASSERT_TRUE(one.ok());
  *c.add_endorsements() = *one;
  EXPECT_FALSE(VerifyCertificate(*members_, c).ok()) << "one of three";
  *c.add_endorsements() = *one;
  EXPECT_FALSE(VerifyCertificate(*members_, c).ok()) << "the same node twice";
  c.mutable_endorsements()->RemoveLast();
  auto two = Sig(1, Request(1, zero, a));
  ASSERT_TRUE(two.ok());
  *c.add_endorsements() = *two;
  EXPECT_TRUE(VerifyCertificate(*members_, c).ok());
  Certificate forged = c;
  (*forged.mutable_endorsements(1)->mutable_signature())[5] ^= 1;
  EXPECT_FALSE(VerifyCertificate(*members_, forged).ok());
  Certificate other_head = c;
  other_head.mutable_head()->set_seq(2);
  EXPECT_FALSE(VerifyCertificate(*members_, other_head).ok());
  // Signed under another members list (node 3 left out): does not count.
  std::vector<Member> two_members(members_->all().begin(),
                                  members_->all().begin() + 2);
  auto smaller = Members::Create(two_members);
  ASSERT_TRUE(smaller.ok());
  EXPECT_NE(smaller->digest(), members_->digest());
  EXPECT_FALSE(VerifyCertificate(*smaller, c).ok());
}

TEST_F(QuorumTest, LaggingEndorserCatchesUpOnlyFromANewerCertificate) {
  const std::string zero(32, '\0');
  const HeadTable a = Table(1, 0xa1), b = Table(2, 0xb2), c = Table(3, 0xc3);
  Certificate cert_b;
  for (int i = 0; i < 2; ++i) {
    auto e = [this, i](const EndorseRequest& r) { return Sig(i, r); };
    ASSERT_TRUE(e(Request(1, zero, a)).ok());
    auto s = e(Request(1, DigestBytes(TableDigest(a)), b));
    ASSERT_TRUE(s.ok());
    *cert_b.add_endorsements() = *s;
  }
  cert_b.mutable_head()->set_term(1);
  cert_b.mutable_head()->set_seq(2);
  cert_b.mutable_head()->set_prev_digest(DigestBytes(TableDigest(a)));
  cert_b.mutable_head()->set_digest(DigestBytes(TableDigest(b)));
  ASSERT_TRUE(VerifyCertificate(*members_, cert_b).ok());
  // Node 3 was down: it holds nothing, and c is no successor of that.
  auto lagging = [this](const EndorseRequest& r) { return Sig(2, r); };
  EndorseRequest to_c = Request(1, DigestBytes(TableDigest(b)), c);
  EXPECT_TRUE(absl::IsAborted(lagging(to_c).status()));
  *to_c.mutable_prev_certificate() = cert_b;
  ASSERT_TRUE(lagging(to_c).ok());
  EXPECT_EQ(HeldSeq(2), 3u);
  // An older certificate can't move it back.
  EndorseRequest back = Request(1, DigestBytes(TableDigest(b)), Table(3, 0xee));
  *back.mutable_prev_certificate() = cert_b;
  EXPECT_TRUE(absl::IsAborted(lagging(back).status()));
}

TEST_F(QuorumTest, PromiseFencesEveryOlderTerm) {
  auto p = Promise(0, 2);
  ASSERT_TRUE(p.ok() && p->granted());
  EXPECT_FALSE(Promise(0, 2)->granted());
  EXPECT_FALSE(Promise(0, 1)->granted());
  auto old =
      E(0).Endorse(Signed(Request(1, std::string(32, '\0'), Table(1, 1))));
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_FALSE(old->has_endorsement());
  EXPECT_EQ(old->refusal().promised_term(), 2u);
  EXPECT_TRUE(VerifyRefusal(*members_, old->refusal()).ok());
  EXPECT_TRUE(Sig(0, Request(2, std::string(32, '\0'), Table(1, 1))).ok());
}

// Issue test 5, first half: one endorser lost, service continues, and it
// catches up when it returns.
TEST_F(QuorumTest, OneEndorserDownServiceContinuesAndItCatchesUp) {
  FreshRecordStore* owner = Own(0);
  ASSERT_NE(owner, nullptr);
  q_->node(2).Stop();
  uint64_t v = RecordStore::kNoRecord;
  for (uint32_t i = 0; i < 5; ++i) {
    auto next = owner->CompareAndSwap("ann", v, Active(i));
    ASSERT_TRUE(next.ok()) << next.status();
    v = *next;
  }
  const uint64_t seq = owner->Stats().seq;
  EXPECT_EQ(HeldSeq(0), seq);
  EXPECT_LT(HeldSeq(2), seq);
  ASSERT_TRUE(q_->node(2).Serve().ok());
  // The next head's request carries the certificate of the one before: the
  // returning endorser catches up from it (bounded reconnect wait).
  bool caught_up = false;
  uint32_t used = 5;
  for (; used < 10 && !caught_up; ++used) {
    auto next = owner->CompareAndSwap("ann", v, Active(used));
    ASSERT_TRUE(next.ok()) << next.status();
    v = *next;
    caught_up = EventuallyHolds(2, owner->Stats().seq);
  }
  EXPECT_TRUE(caught_up) << "node 3 holds " << HeldSeq(2) << ", owner at "
                         << owner->Stats().seq;
  EXPECT_EQ(owner->Get("ann")->attempts_used(), used - 1);
}

// Issue test 5: a majority lost, counted writes fail UNAVAILABLE (the vault
// sends no KE2 for them) and commit nothing; service resumes when they
// return.
TEST_F(QuorumTest, MajorityLostFailsWritesAndServiceResumes) {
  FreshRecordStore* owner = Own(0);
  ASSERT_NE(owner, nullptr);
  auto v = owner->CompareAndSwap("bea", RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v.ok()) << v.status();
  const uint64_t seq = owner->Stats().seq;
  q_->node(1).Stop();
  q_->node(2).Stop();
  auto lost = owner->CompareAndSwap("bea", *v, Active(1));
  EXPECT_TRUE(absl::IsUnavailable(lost.status())) << lost.status();
  EXPECT_NE(lost.status().message().find("majority"), std::string::npos)
      << lost.status();
  EXPECT_EQ(owner->Stats().seq, seq) << "no head without a certificate";
  EXPECT_EQ(HeldSeq(1), seq);
  ASSERT_TRUE(q_->node(1).Serve().ok());
  ASSERT_TRUE(q_->node(2).Serve().ok());
  // The pending write commits with the next head (bounded: 20 reads).
  absl::StatusOr<UserRecord> r = absl::UnavailableError("not tried");
  for (int i = 0; i < 20 && !r.ok(); ++i) {
    r = owner->Get("bea");
    if (!r.ok()) absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->attempts_used(), 1u) << "the write is counted, once";
  EXPECT_GT(owner->Stats().seq, seq);
  EXPECT_TRUE(owner->CompareAndSwap("bea", r->version(), Active(2)).ok());
}

// Issue test 5, fencing: a new owner's promise fences the old one; its
// write is refused, and the record it left in the store is counted once.
TEST_F(QuorumTest, OldOwnerIsFencedAndItsWriteIsCountedOnce) {
  FreshRecordStore *old_owner, *new_owner;
  uint64_t v;
  ASSERT_NO_FATAL_FAILURE(WriteThenTakeOver("cal", &old_owner, &new_owner, &v));
  EXPECT_GT(heads_[1]->Term(), heads_[0]->Term());
  EXPECT_EQ(new_owner->Get("cal")->attempts_used(), 0u);

  auto stale = old_owner->CompareAndSwap("cal", v, Active(1));
  EXPECT_FALSE(stale.ok()) << "a fenced owner's write was acknowledged";
  EXPECT_EQ(inner_->Get("cal")->attempts_used(), 1u) << "it reached the store";
  auto next =
      old_owner->CompareAndSwap("dan", RecordStore::kNoRecord, Active(0));
  EXPECT_TRUE(absl::IsUnavailable(next.status())) << "fenced owner serves on";

  auto r = new_owner->Get("cal");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->attempts_used(), 1u) << "counted once, never lost";
  auto w = new_owner->CompareAndSwap("cal", r->version(), Active(2));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(new_owner->Get("cal")->attempts_used(), 2u);
}

// Finding 8 of the election's review: an owner that still believes it owns
// the chain (a VM pause no clock saw) reads a record a later owner wrote.
// That proves a later owner, not a rollback: "not the owner", not counted,
// fenced from then on, and no stale-record alarm.
TEST_F(QuorumTest, RecordOfALaterTermMeansNotTheOwnerNotRolledBack) {
  FreshRecordStore *old_owner, *new_owner;
  uint64_t v;
  ASSERT_NO_FATAL_FAILURE(WriteThenTakeOver("eve", &old_owner, &new_owner, &v));
  auto r = new_owner->Get("eve");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(new_owner->CompareAndSwap("eve", r->version(), Active(1)).ok());

  auto read = old_owner->Get("eve");
  ASSERT_FALSE(read.ok()) << "the superseded owner served a later record";
  auto detail = vault::v1::ErrorDetailOf(read.status());
  ASSERT_TRUE(detail.has_value()) << read.status();
  EXPECT_EQ(detail->reason(), vault::v1::ErrorDetail::REASON_NOT_OWNER)
      << read.status();
  EXPECT_EQ(detail->attempt(), vault::v1::ErrorDetail::ATTEMPT_NOT_COUNTED);
  EXPECT_TRUE(read.status().GetPayload(kSupersededPayload).has_value());
  EXPECT_EQ(old_owner->Stats().stale_reads, 0u) << "a false rollback alarm";
  auto next = old_owner->Get("nobody");
  detail = vault::v1::ErrorDetailOf(next.status());
  ASSERT_TRUE(detail.has_value()) << next.status();
  EXPECT_EQ(detail->reason(), vault::v1::ErrorDetail::REASON_NOT_OWNER)
      << "the superseded store serves on";
  EXPECT_EQ(new_owner->Get("eve")->attempts_used(), 1u);
}

// A head only a minority endorsed (the old owner died before a majority)
// is not adopted (review finding 2: only a committed certificate is); its
// record comes back by the store's roll-forward: nothing counted is
// dropped.
TEST_F(QuorumTest, TakeOverAdoptsTheHighestHeldHead) {
  FreshRecordStore* old_owner = Own(0);
  ASSERT_NE(old_owner, nullptr);
  auto v = old_owner->CompareAndSwap("eve", RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v.ok());
  q_->node(1).Stop();
  q_->node(2).Stop();
  EXPECT_FALSE(old_owner->CompareAndSwap("eve", *v, Active(1)).ok());
  const uint64_t minority = HeldSeq(0);  // only node 1 holds it
  EXPECT_GT(minority, HeldSeq(1));
  ASSERT_TRUE(q_->node(1).Serve().ok());
  ASSERT_TRUE(q_->node(2).Serve().ok());
  FreshRecordStore* new_owner = Own(1);
  ASSERT_NE(new_owner, nullptr);
  EXPECT_GE(new_owner->Stats().seq, minority);
  auto r = new_owner->Get("eve");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->attempts_used(), 1u);
}

// Review finding 1: an endorser signs only for the term's proposer, answers
// a refused promise with a signed refusal and no state, and refuses a change
// of epochs or caps over the quorum path.
TEST_F(QuorumTest, UnauthenticatedProposalIsRefused) {
  const std::string zero(32, '\0');
  const HeadTable a = Table(1, 0xa1);
  // Form3 review finding 1: a first table can't start a shard with more
  // re-anchors than any deployment may configure.
  HeadTable huge = a;
  huge.shards[2].ceremonies_left = kMaxCeremonies + 1;
  auto first = Sig(0, Request(1, zero, huge));
  EXPECT_TRUE(absl::IsPermissionDenied(first.status())) << first.status();
  // Budget review finding 5: nor more than this node's own B.
  E(0).set_reanchor_limits({kDefaultCeremonies - 1});
  first = Sig(0, Request(1, zero, a));
  EXPECT_TRUE(absl::IsPermissionDenied(first.status())) << first.status();
  EXPECT_NE(first.status().message().find("reanchor_budget (3)"),
            std::string::npos)
      << first.status();
  // Budget review finding 5 (branch budget3): nor epochs and caps no
  // ceremony writes (a re-anchored shard back at its full budget, a cap
  // above this node's K); each refusal names the shard.
  E(0).set_reanchor_limits({kDefaultCeremonies, 2});
  HeadTable reset = a;
  reset.shards[1].epoch = 62;
  reset.shards[1].cap = 2;
  first = Sig(0, Request(1, zero, reset));
  EXPECT_TRUE(absl::IsPermissionDenied(first.status())) << first.status();
  EXPECT_NE(first.status().message().find("shard 1 was re-anchored 62 times"),
            std::string::npos)
      << first.status();
  HeadTable wide = a;
  wide.shards[3] = {.epoch = 1, .cap = 3, .ceremonies_left = 3};
  first = Sig(0, Request(1, zero, wide));
  EXPECT_TRUE(absl::IsPermissionDenied(first.status())) << first.status();
  EXPECT_NE(first.status().message().find("reanchor_max_attempts (2)"),
            std::string::npos)
      << first.status();
  ASSERT_TRUE(Sig(0, Request(1, zero, a)).ok());
  EndorseRequest next = Request(1, DigestBytes(TableDigest(a)), Table(2, 0xb2));
  auto unsigned_one = E(0).Endorse(next);
  EXPECT_TRUE(absl::IsPermissionDenied(unsigned_one.status()))
      << unsigned_one.status();
  // Term 1 is node 2's (index 1): node 1's own signature does not do.
  EndorseRequest by_other = next;
  ASSERT_TRUE(E(0).SignRequest(by_other).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(E(0).Endorse(by_other).status()));
  // A signature over another table does not carry over.
  EndorseRequest swapped = Signed(next);
  swapped.set_next_table(EncodeHeadsString(Table(2, 0xee)));
  EXPECT_TRUE(absl::IsPermissionDenied(E(0).Endorse(swapped).status()));
  EXPECT_EQ(HeldSeq(0), 1u);
  // Prepare: unsigned is refused without a promise or state.
  fresh::v1::PrepareRequest bare;
  bare.set_term(4);
  EXPECT_TRUE(absl::IsPermissionDenied(E(0).Prepare(bare).status()));
  EXPECT_EQ(E(0).State().promised_term(), 1u);
  ASSERT_TRUE(Promise(0, 4)->granted());
  auto refused = Promise(0, 4);
  ASSERT_TRUE(refused.ok());
  EXPECT_FALSE(refused->granted());
  EXPECT_FALSE(refused->has_state()) << "a refused Prepare leaks no state";
  EXPECT_TRUE(VerifyRefusal(*members_, refused->refusal()).ok());
  // Epochs and caps: not over the quorum path.
  HeadTable reanchored = Table(2, 0xb2);
  reanchored.shards[1].epoch = 1;
  reanchored.shards[1].cap = 10;
  auto r = Sig(0, Request(4, DigestBytes(TableDigest(a)), reanchored));
  EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
  // Form3 review finding 1: nor the lifetime budget (a raised B).
  HeadTable raised = Table(2, 0xb3);
  raised.shards[1].ceremonies_left += 1;
  r = Sig(0, Request(4, DigestBytes(TableDigest(a)), raised));
  EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
  EXPECT_TRUE(
      Sig(0, Request(4, DigestBytes(TableDigest(a)), Table(2, 2))).ok());
}

// Lease3 review finding 4: candidacy in the members list. Node 3 marked
// `candidate=false`: a Prepare or Endorse its token signs is refused
// PERMISSION_DENIED for every term, naming it (payload), with no state; the
// terms cycle over nodes 1 and 2, whose Prepares are still granted. A list
// that marks nobody keeps the v1 digest and mapping, under which node 3's
// Prepare for its own term was granted (what the endorsers used to allow).
TEST_F(QuorumTest, NonCandidatesPrepareIsRefused) {
  std::vector<Member> list = members_->all();
  auto unmarked = Members::Create(list);
  ASSERT_TRUE(unmarked.ok()) << unmarked.status();
  EXPECT_EQ(unmarked->digest(), members_->digest());
  EXPECT_FALSE(unmarked->marks_candidacy());
  list[2].candidate = false;
  auto marked = Members::Parse(Members::Create(list)->Encode());
  ASSERT_TRUE(marked.ok()) << marked.status();
  EXPECT_TRUE(marked->marks_candidacy());
  EXPECT_FALSE(marked->Find(3)->candidate);
  EXPECT_NE(marked->digest(), members_->digest());
  EXPECT_TRUE(absl::IsOutOfRange(NextTermOf(*marked, 3, 0).status()));
  auto key1 = hsm::EndorsementKey::Open(tokens_[0]);
  auto key3 = hsm::EndorsementKey::Open(tokens_[2]);
  ASSERT_TRUE(key1.ok() && key3.ok());
  auto prepare = [](const hsm::EndorsementKey& key, const Members& m,
                    uint64_t term) {
    auto sig = key.Sign(PrepareStatement(m.digest(), term));
    EXPECT_TRUE(sig.ok());
    fresh::v1::PrepareRequest p;
    p.set_term(term);
    p.set_proposer_signature(std::string(sig->begin(), sig->end()));
    return p;
  };
  const EndorserState state = E(0).State();
  const uint64_t base = state.promised_term();
  for (uint64_t term = base + 1; term <= base + 6; ++term) {
    EXPECT_NE(ProposerOf(*marked, term), 3u) << term;
    auto d = DecidePrepare(*marked, state, prepare(**key3, *marked, term));
    EXPECT_TRUE(absl::IsPermissionDenied(d.status())) << term << d.status();
    auto who = d.status().GetPayload(kNotCandidatePayload);
    ASSERT_TRUE(who.has_value()) << term << d.status();
    EXPECT_EQ(std::string(*who), "3");
    EndorseRequest r = Request(term, std::string(32, '\0'), Table(1, 1));
    auto sig = (*key3)->Sign(RequestStatement(marked->digest(), r));
    ASSERT_TRUE(sig.ok());
    r.set_proposer_signature(std::string(sig->begin(), sig->end()));
    fresh::v1::HeadRef head;
    auto e = DecideEndorse(*marked, state, r, &head);
    EXPECT_TRUE(absl::IsPermissionDenied(e.status())) << term << e.status();
    EXPECT_TRUE(e.status().GetPayload(kNotCandidatePayload).has_value());
  }
  const uint64_t t1 = *NextTermOf(*marked, 1, base);
  auto granted = DecidePrepare(*marked, state, prepare(**key1, *marked, t1));
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_EQ(granted->promised_term(), t1);
  const uint64_t t3 = *NextTermOf(*unmarked, 3, base);
  EXPECT_TRUE(
      DecidePrepare(*unmarked, state, prepare(**key3, *unmarked, t3)).ok());
  std::string typo = marked->Encode();
  typo.replace(typo.find("candidate=false"), 15, "candidate=no");
  EXPECT_TRUE(absl::IsInvalidArgument(Members::Parse(typo).status()));
  for (Member& m : list) m.candidate = false;
  EXPECT_TRUE(absl::IsInvalidArgument(Members::Create(list).status()));
}

// Review finding 5: no jump to the end of the term or seq space.
TEST_F(QuorumTest, HugeTermOrSeqIsRefused) {
  const std::string zero(32, '\0');
  for (uint64_t term : {UINT64_MAX, kMaxStep + 1}) {
    auto p = Promise(0, term);
    EXPECT_TRUE(absl::IsInvalidArgument(p.status())) << term;
  }
  EXPECT_TRUE(Promise(0, kMaxStep)->granted());
  auto far = Sig(1, Request(1, zero, Table(kMaxStep + 1, 1)));
  EXPECT_TRUE(absl::IsInvalidArgument(far.status())) << far.status();
  auto end = Sig(1, Request(1, zero, Table(UINT64_MAX, 1)));
  EXPECT_TRUE(absl::IsInvalidArgument(end.status())) << end.status();
  EXPECT_TRUE(Sig(1, Request(1, zero, Table(kMaxStep, 1))).ok());
  EXPECT_TRUE(
      absl::IsOutOfRange(NextTermOf(*members_, 1, UINT64_MAX - 1).status()));
}

// Review finding 2: a member's forged Prepare answer (a table at s+1 with
// no certificate, or a certificate that does not verify) is not adopted.
TEST_F(QuorumTest, ForgedPrepareAnswerIsNotAdopted) {
  FreshRecordStore* owner = Own(0);
  ASSERT_NE(owner, nullptr);
  ASSERT_TRUE(
      owner->CompareAndSwap("fay", RecordStore::kNoRecord, Active(3)).ok());
  const std::string committed = E(0).State().certified_table();
  ASSERT_FALSE(committed.empty());
  auto forged = std::make_shared<LyingPeer>();
  forged->prepare = [&] {
    fresh::v1::PrepareResponse r;
    r.set_granted(true);
    EndorserState s = E(2).State();
    HeadTable evil = *ParseHeadsString(committed);
    evil.seq += 1;
    evil.shards[0].root.fill(0xee);
    s.set_held_term(s.held_term() + 5);
    s.set_held_prev_digest(HeldHead(s).digest());
    s.set_held_table(EncodeHeadsString(evil));
    (*s.mutable_newest_certificate()->mutable_head()->mutable_digest()) =
        DigestBytes(TableDigest(evil));
    s.set_certified_table(EncodeHeadsString(evil));
    *r.mutable_state() = s;
    return r;
  };
  auto heads = WithLiar(1, 2, forged);
  auto adopted = heads->Read();
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  ASSERT_TRUE(adopted->has_value());
  EXPECT_EQ(EncodeHeadsString(**adopted), committed);
}

// Review finding 3: after a failed round the owner re-proposes the same
// bytes; a different table at that place is refused before any endorser
// sees it, and the retry is certified once a majority is back.
TEST_F(QuorumTest, RetryAfterLostAnswerKeepsTheTable) {
  auto heads = q_->Heads(0);
  ASSERT_TRUE(heads->Read().ok());
  const HeadTable t1 = Table(1, 0xa1);
  q_->node(1).Stop();
  q_->node(2).Stop();
  EXPECT_TRUE(absl::IsUnavailable(heads->Write(t1)));
  EXPECT_TRUE(absl::IsInternal(heads->Write(Table(1, 0xa2))));
  ASSERT_TRUE(q_->node(1).Serve().ok());
  ASSERT_TRUE(q_->node(2).Serve().ok());
  absl::Status w = absl::UnavailableError("not tried");
  for (int i = 0; i < 20 && !w.ok(); ++i) {  // bounded reconnect wait
    w = heads->Write(t1);
    if (!w.ok()) absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_TRUE(w.ok()) << w;
  EXPECT_TRUE(heads->Write(Table(2, 0xb2)).ok());
}

// Review finding 3, the decorator's side: a write whose head failed commits
// with that very head once a majority is back, later ones after it.
TEST_F(QuorumTest, FailedHeadIsRetriedAsItWas) {
  FreshRecordStore* owner = Own(1);
  ASSERT_NE(owner, nullptr);
  auto v = owner->CompareAndSwap("gus", RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v.ok()) << v.status();
  q_->node(0).Stop();
  q_->node(2).Stop();
  EXPECT_FALSE(owner->CompareAndSwap("gus", *v, Active(1)).ok());
  const uint64_t failed_seq = HeldSeq(1);
  // A second write while the head is uncertain: it may not join that head
  // (an endorser signed those bytes); it is refused before it is written
  // (counting nothing) while that head can't be certified.
  auto refused =
      owner->CompareAndSwap("ivy", RecordStore::kNoRecord, Active(4));
  ASSERT_FALSE(refused.ok());
  auto detail = vault::v1::ErrorDetailOf(refused.status());
  ASSERT_TRUE(detail.has_value()) << refused.status();
  EXPECT_EQ(detail->attempt(), vault::v1::ErrorDetail::ATTEMPT_NOT_COUNTED);
  EXPECT_EQ(HeldSeq(1), failed_seq);
  ASSERT_TRUE(q_->node(0).Serve().ok());
  ASSERT_TRUE(q_->node(2).Serve().ok());
  // Bounded: 20 reads while the peers reconnect.
  absl::StatusOr<UserRecord> r = absl::UnavailableError("not tried");
  for (int i = 0; i < 20 && !r.ok(); ++i) {
    r = owner->Get("gus");
    if (!r.ok()) absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->attempts_used(), 1u);
  EXPECT_EQ(owner->Stats().seq, failed_seq) << "the failed head, as it was";
  EXPECT_TRUE(absl::IsNotFound(owner->Get("ivy").status()));
  ASSERT_TRUE(
      owner->CompareAndSwap("ivy", RecordStore::kNoRecord, Active(4)).ok());
  auto ivy = owner->Get("ivy");
  ASSERT_TRUE(ivy.ok()) << ivy.status();
  EXPECT_EQ(ivy->attempts_used(), 4u);
  EXPECT_EQ(owner->Stats().seq, failed_seq + 1);
}

// Review finding 6: the owner writes in the term it was granted, a term of
// its own, above any signed promise it heard of.
TEST_F(QuorumTest, OwnerWritesInTheGrantedTerm) {
  ASSERT_TRUE(Promise(2, 7)->granted());
  auto heads = q_->Heads(1);
  ASSERT_TRUE(heads->Read().ok());
  // Granted 1 by a majority, but node 3's signed refusal names 7: the
  // owner prepares again above it instead of writing into a fence.
  EXPECT_EQ(heads->Term(), 10u);
  EXPECT_EQ(E(0).State().promised_term(), 10u);
  EXPECT_EQ(ProposerOf(*members_, heads->Term()), 2u);
  EXPECT_TRUE(heads->Write(Table(1, 1)).ok());
}

// Review finding 3 of issue 12: a replayed commit of the head an endorser
// already holds writes nothing to its token.
TEST_F(QuorumTest, ReplayedCommitWritesNothing) {
  auto heads = q_->Heads(0);
  ASSERT_TRUE(heads->Read().ok());
  const HeadTable t = Table(1, 0xc1);
  ASSERT_TRUE(heads->Write(t).ok());
  ASSERT_TRUE(heads->certificate().has_value());
  fresh::v1::CommitRequest replay;
  *replay.mutable_certificate() = *heads->certificate();
  replay.set_table(EncodeHeadsString(t));
  // The commit round returns at a majority: node 2's own commit may land
  // later (bounded wait, 50 x 100 ms), and is not a replay.
  for (int i = 0;
       i < 50 && E(1).State().newest_certificate().head().seq() != t.seq; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  const uint64_t writes = E(1).state_writes();
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(E(1).Commit(replay).ok());
  EXPECT_EQ(E(1).state_writes(), writes);
  EXPECT_EQ(HeldHead(E(1).State()).seq(), t.seq);
}

// Review finding 7: a member answering garbage signatures or an unsigned
// "promised 1000" neither stops nor fences a majority.
TEST_F(QuorumTest, OneBadEndorserDoesNotStopAMajority) {
  auto bad = std::make_shared<LyingPeer>();
  bad->prepare = [] {
    fresh::v1::PrepareResponse r;
    r.mutable_refusal()->set_node_id(3);
    r.mutable_refusal()->set_promised_term(1000);
    return r;
  };
  bad->endorse = [] {
    fresh::v1::EndorseResponse r;
    r.mutable_endorsement()->set_node_id(3);
    r.mutable_endorsement()->set_signature(std::string(64, 'x'));
    return r;
  };
  auto heads = WithLiar(0, 2, bad);
  // Review finding 1 (issue 12): a take-over counts only the other members'
  // promises, so with 3 members it needs both: the liar's refusal blocks it
  // (Unavailable, not fenced) until it grants.
  absl::StatusOr<std::optional<HeadTable>> blocked = heads->Read();
  EXPECT_TRUE(absl::IsUnavailable(blocked.status())) << blocked.status();
  bad->prepare = [] {
    fresh::v1::PrepareResponse r;
    r.set_granted(true);
    return r;
  };
  ASSERT_TRUE(heads->Read().ok());
  EXPECT_LT(heads->Term(), 1000u);
  ASSERT_TRUE(heads->Write(Table(1, 1)).ok());
  bad->endorse = [] {
    fresh::v1::EndorseResponse r;
    r.mutable_refusal()->set_node_id(3);
    r.mutable_refusal()->set_promised_term(1000);
    r.mutable_refusal()->set_signature(std::string(64, 'x'));
    return r;
  };
  absl::Status w = heads->Write(Table(2, 2));
  EXPECT_TRUE(w.ok()) << w;
  ASSERT_TRUE(heads->certificate().has_value());
  EXPECT_TRUE(VerifyCertificate(*members_, *heads->certificate()).ok());
}

// Review finding 9: an earlier owner's record at a tag the take-over's head
// already covers (a write that answered "not applied", its tag burned) is not
// rolled forward when it shows up after the start-up scan: it reads stale.
TEST_F(QuorumTest, CoveredTagOfAFencedOwnerIsNotAdopted) {
  FreshRecordStore* old_owner = Own(0);
  ASSERT_NE(old_owner, nullptr);
  ASSERT_TRUE(
      old_owner->CompareAndSwap("kim", RecordStore::kNoRecord, Active(0)).ok());
  const uint64_t old_term = heads_[0]->Term();
  FreshRecordStore* new_owner = Own(1);
  ASSERT_NE(new_owner, nullptr);
  auto r0 = inner_->Get("kim");
  ASSERT_TRUE(r0.ok()) << r0.status();
  UserRecord late = Active(5);
  late.set_fresh_term(old_term);
  late.set_fresh_parent(
      DigestBytes(RecordDigest(storage::DeriveAccountKey("kim"), *r0)));
  late.set_fresh_tag(new_owner->Stats().seq);  // covered
  ASSERT_TRUE(inner_->CompareAndSwap("kim", r0->version(), late).ok());
  auto r = new_owner->Get("kim");
  EXPECT_FALSE(r.ok()) << "adopted a write that answered not applied";
  // The same record at a tag above the adopted head is the fenced owner's
  // write whose KE2 never left: counted.
  auto r1 = inner_->Get("kim");
  ASSERT_TRUE(r1.ok());
  late.set_fresh_tag(new_owner->Stats().seq + 1);
  ASSERT_TRUE(inner_->CompareAndSwap("kim", r1->version(), late).ok());
  auto again = new_owner->Get("kim");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->attempts_used(), 5u);
}

// Review finding 4: an endorser token that forgets (here its state object
// written back to an earlier value, as a restored SoftHSM directory or a
// power loss gives it) during an owner change. Term 1 is node 2's (the old
// owner, partitioned), term 2 node 3's, which node 1 promised before it
// forgot. Reopened, node 1 signs nothing until it has heard the others; then
// it holds promise 2, refuses the old owner's term-1 head (without the
// round it signed it: a second certificate at seq 2, a fork), and endorses
// the new owner's.
TEST_F(QuorumTest, RestoredEndorserSignsNothingBelowWhatTheOthersKnow) {
  const std::string zero(32, '\0');
  const HeadTable h1 = Table(1, 0xa1);
  const std::string d1 = DigestBytes(TableDigest(h1));
  for (int i : {0, 1, 2}) ASSERT_TRUE(Sig(i, Request(1, zero, h1)).ok());
  const std::string before = E(0).State().SerializeAsString();
  for (int i : {0, 2}) {  // {C, B}: the old owner, node 2, is partitioned
    auto p = Promise(i, 2);
    ASSERT_TRUE(p.ok() && p->granted()) << i;
  }
  EXPECT_EQ(E(0).State().promised_term(), 2u);
  // Node 1's token forgets the promise: the earlier state, MAC valid.
  {
    auto object = hsm::AnchoredObject::Open(tokens_[0], hsm::kEndorsedLabel,
                                            hsm::kEndorsedMacLabel);
    ASSERT_TRUE(object.ok()) << object.status();
    ASSERT_TRUE((*object)->Read().ok());
    ASSERT_TRUE(
        (*object)
            ->Write(std::span(reinterpret_cast<const uint8_t*>(before.data()),
                              before.size()))
            .ok());
  }
  auto restored = Endorser::Open(tokens_[0], *members_, 1);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ((*restored)->State().promised_term(), 1u) << "not forgotten";
  EndorseRequest old_owner = Signed(Request(1, d1, Table(2, 0xb2)));
  auto refused = (*restored)->Endorse(old_owner);
  EXPECT_TRUE(absl::IsUnavailable(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("endorser recovering"),
            std::string::npos);
  auto prepare = E(1).SignPrepare(4);  // node 2's next term
  ASSERT_TRUE(prepare.ok());
  EXPECT_TRUE(absl::IsUnavailable((*restored)->Prepare(*prepare).status()));
  // The round: both others (N = 3), node 3 holding promise 2.
  std::vector<std::shared_ptr<EndorserPeer>> others = {
      std::make_shared<LocalEndorserPeer>(E(1)),
      std::make_shared<LocalEndorserPeer>(E(2))};
  ASSERT_TRUE(RecoveryRound(**restored, others, absl::Seconds(2)).ok());
  EXPECT_FALSE((*restored)->recovering());
  EXPECT_EQ((*restored)->State().promised_term(), 2u);
  auto fenced = (*restored)->Endorse(old_owner);
  ASSERT_TRUE(fenced.ok()) << fenced.status();
  EXPECT_TRUE(fenced->has_refusal()) << "signed the old owner's fork";
  auto ok = (*restored)->Endorse(Signed(Request(2, d1, Table(2, 0xc2))));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(ok->has_endorsement());
}

// Recovery review finding 8: a captured valid Recover replayed 50 times
// costs the answerer one token signature, not 50 (without the answer cache
// every replay signs); the replay gets the same signed answer; a new query
// is signed anew.
TEST_F(QuorumTest, ReplayedRecoverQuerySignsOnce) {
  auto reopened = Endorser::Open(tokens_[0], *members_, 1);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto ask = (*reopened)->AskRecovery();
  ASSERT_TRUE(ask.ok()) << ask.status();
  const uint64_t before = E(1).recover_signatures();
  auto first = E(1).AnswerRecovery(*ask);
  ASSERT_TRUE(first.ok()) << first.status();
  for (int i = 0; i < 50; ++i) {
    auto again = E(1).AnswerRecovery(*ask);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->SerializeAsString(), first->SerializeAsString());
  }
  EXPECT_EQ(E(1).recover_signatures(), before + 1);
  auto next = (*reopened)->AskRecovery();
  ASSERT_TRUE(next.ok() && E(1).AnswerRecovery(*next).ok());
  EXPECT_EQ(E(1).recover_signatures(), before + 2);
}

// The recovery round's answers: only a member's signed query is answered;
// an answer counts only for the round (nonce) it was signed for, unaltered,
// from a distinct other member; fewer than k = N - quorum + 1 = 2 leave the
// endorser recovering, saying so.
TEST_F(QuorumTest, RecoveryAnswersAreSignedAndBoundToTheirRound) {
  auto reopened = Endorser::Open(tokens_[0], *members_, 1);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  Endorser& r = **reopened;
  auto ask = r.AskRecovery();
  ASSERT_TRUE(ask.ok()) << ask.status();
  fresh::v1::RecoverRequest unsigned_ask = *ask;
  unsigned_ask.set_signature(std::string(64, '\0'));
  EXPECT_TRUE(
      absl::IsPermissionDenied(E(1).AnswerRecovery(unsigned_ask).status()));
  EXPECT_TRUE(absl::IsPermissionDenied(E(0).AnswerRecovery(*ask).status()))
      << "answered itself";
  auto a2 = E(1).AnswerRecovery(*ask);
  auto a3 = E(2).AnswerRecovery(*ask);
  ASSERT_TRUE(a2.ok() && a3.ok());
  // One answer, or the same member twice: not enough.
  absl::Status one = r.FinishRecovery(*ask, {*a2, *a2});
  EXPECT_TRUE(absl::IsUnavailable(one)) << one;
  EXPECT_NE(one.message().find("waiting for 2 of the other 2"),
            std::string::npos)
      << one;
  // A later round's answers don't serve an earlier one, nor the reverse.
  auto later = r.AskRecovery();
  ASSERT_TRUE(later.ok());
  EXPECT_TRUE(absl::IsUnavailable(r.FinishRecovery(*later, {*a2, *a3})));
  // An altered promise (pushed forward) does not verify.
  fresh::v1::RecoverResponse pushed = *a3;
  pushed.set_promised_term(1000);
  EXPECT_TRUE(absl::IsUnavailable(r.FinishRecovery(*ask, {*a2, pushed})));
  EXPECT_TRUE(r.recovering());
  // A member whose (signed) promise is more than kMaxStep above everything
  // certified does not count: it can't push the term space to its end.
  for (uint64_t t : {kMaxStep, 2 * kMaxStep}) {
    auto p = Promise(2, t);
    ASSERT_TRUE(p.ok() && p->granted()) << t;
  }
  // (A new round's query: the same nonce gets its first answer again.)
  auto ask_far = r.AskRecovery();
  ASSERT_TRUE(ask_far.ok());
  auto far = E(2).AnswerRecovery(*ask_far);
  auto a2_far = E(1).AnswerRecovery(*ask_far);
  ASSERT_TRUE(far.ok() && a2_far.ok());
  EXPECT_TRUE(absl::IsUnavailable(r.FinishRecovery(*ask_far, {*a2_far, *far})));
  ASSERT_TRUE(r.FinishRecovery(*ask, {*a2, *a3}).ok());
  EXPECT_FALSE(r.recovering());
  EXPECT_LT(r.State().promised_term(), 1000u);
}

// Recovery review finding 1: a compromised member (its token signs what it
// is asked) answers promises no proposer asked for: 2^64 - 2, a small jump
// without proof, a proof of another term, a proof signed by a non-proposer.
// None counts; the endorser recovers with honest answers and still grants
// the next term. A promise proven by its proposer's Prepare is adopted with
// its proof, which the recovered endorser answers in turn.
TEST_F(QuorumTest, UnprovenPromiseInARecoveryAnswerDoesNotCount) {
  auto reopened = Endorser::Open(tokens_[0], *members_, 1);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  Endorser& r = **reopened;
  auto ask = r.AskRecovery();
  ASSERT_TRUE(ask.ok()) << ask.status();
  auto a2 = E(1).AnswerRecovery(*ask);
  auto honest3 = E(2).AnswerRecovery(*ask);
  ASSERT_TRUE(a2.ok() && honest3.ok());
  auto key3 = hsm::EndorsementKey::Open(tokens_[2]);
  ASSERT_TRUE(key3.ok()) << key3.status();
  auto lie = [&](uint64_t promised, fresh::v1::PromiseProof proof) {
    fresh::v1::RecoverResponse a = *honest3;
    a.set_promised_term(promised);
    *a.mutable_promise_proof() = std::move(proof);
    auto sig = (*key3)->Sign(
        RecoverAnswerStatement(members_->digest(), 1, ask->nonce(), a));
    EXPECT_TRUE(sig.ok());
    a.set_signature(std::string(sig->begin(), sig->end()));
    return a;
  };
  auto prepare_of = [&](int signer, uint64_t term) {
    auto p = E(signer).SignPrepare(term);
    EXPECT_TRUE(p.ok());
    fresh::v1::PromiseProof proof;
    proof.set_kind(2);
    proof.set_term(term);
    proof.set_proposer_signature(p->proposer_signature());
    return proof;
  };
  const uint64_t t =
      std::max({E(0).State().promised_term(), E(1).State().promised_term(),
                E(2).State().promised_term()});
  const std::vector<fresh::v1::RecoverResponse> lies = {
      lie(UINT64_MAX - 1, {}), lie(t + 5, {}),
      lie(t + 6, prepare_of(ProposerOf(*members_, t + 3) - 1, t + 3)),
      lie(t + 7, prepare_of(ProposerOf(*members_, t + 8) - 1, t + 7))};
  for (const auto& l : lies) {
    std::vector<std::string> refused;
    absl::Status s = r.FinishRecovery(*ask, {*a2, l}, &refused);
    EXPECT_TRUE(absl::IsUnavailable(s)) << l.promised_term() << ": " << s;
    ASSERT_EQ(refused.size(), 1u) << l.promised_term();
    EXPECT_NE(refused[0].find("member 3"), std::string::npos) << refused[0];
    EXPECT_TRUE(r.recovering());
  }
  // A promise its proposer really asked for counts, with its proof.
  const uint64_t proven = t + 2;
  auto proof = prepare_of(ProposerOf(*members_, proven) - 1, proven);
  ASSERT_TRUE(r.FinishRecovery(*ask, {*a2, lie(proven, proof)}).ok());
  EXPECT_EQ(r.State().promised_term(), proven);
  EXPECT_TRUE(
      VerifyPromiseProof(*members_, proven, r.State().promise_proof()).ok());
  auto asked_by_2 = E(1).AskRecovery();
  ASSERT_TRUE(asked_by_2.ok());
  auto relayed = r.AnswerRecovery(*asked_by_2);
  ASSERT_TRUE(relayed.ok()) << relayed.status();
  EXPECT_TRUE(VerifyPromiseProof(*members_, relayed->promised_term(),
                                 relayed->promise_proof())
                  .ok());
  // Not wedged: the next term's proposer gets its promise.
  auto next = E(ProposerOf(*members_, proven + 1) - 1).SignPrepare(proven + 1);
  ASSERT_TRUE(next.ok());
  auto granted = r.Prepare(*next);
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_TRUE(granted->granted());
}

// Recovery review finding 9: two valid certificates at one (term, seq) with
// different digests (node 2's token signed both) are evidence, not a
// missing answer: DATA_LOSS naming the head, and the endorser stays
// recovering (the server's loop stops on it).
TEST_F(QuorumTest, TwoCertificatesAtOneHeadAreForkEvidence) {
  auto reopened = Endorser::Open(tokens_[0], *members_, 1);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  Endorser& r = **reopened;
  auto ask = r.AskRecovery();
  ASSERT_TRUE(ask.ok());
  std::vector<std::unique_ptr<hsm::EndorsementKey>> keys;
  for (int i = 0; i < kNodes; ++i) {
    auto k = hsm::EndorsementKey::Open(tokens_[i]);
    ASSERT_TRUE(k.ok()) << k.status();
    keys.push_back(*std::move(k));
  }
  // A certificate of Table(1, fill) at term 1 by `signers` (node ids).
  auto cert = [&](uint8_t fill, std::vector<uint32_t> signers) {
    Certificate c;
    c.mutable_head()->set_term(1);
    c.mutable_head()->set_seq(1);
    c.mutable_head()->set_prev_digest(std::string(32, '\0'));
    c.mutable_head()->set_digest(DigestBytes(TableDigest(Table(1, fill))));
    for (uint32_t id : signers) {
      auto sig =
          keys[id - 1]->Sign(Statement(members_->digest(), id, c.head()));
      EXPECT_TRUE(sig.ok());
      auto* e = c.add_endorsements();
      e->set_node_id(id);
      e->set_signature(std::string(sig->begin(), sig->end()));
    }
    return c;
  };
  auto answer = [&](uint32_t id, Certificate c, uint8_t fill) {
    fresh::v1::RecoverResponse a;
    a.set_node_id(id);
    a.set_promised_term(1);
    *a.mutable_newest_certificate() = std::move(c);
    a.set_certified_table(EncodeHeadsString(Table(1, fill)));
    auto sig = keys[id - 1]->Sign(
        RecoverAnswerStatement(members_->digest(), 1, ask->nonce(), a));
    EXPECT_TRUE(sig.ok());
    a.set_signature(std::string(sig->begin(), sig->end()));
    return a;
  };
  absl::Status s =
      r.FinishRecovery(*ask, {answer(2, cert(0xa1, {1, 2}), 0xa1),
                              answer(3, cert(0xb1, {2, 3}), 0xb1)});
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("a member signed twice"), std::string::npos) << s;
  EXPECT_TRUE(r.recovering());
}

// Quorum review finding 1(c): a token with its endorsement key whose state
// object (and its MAC key) is gone does not start from nothing; the
// security officer's reset gives an empty state, which the round brings up
// to the newest certificate (held too, so it signs no fork of genesis).
TEST_F(QuorumTest, LostStateRefusesToOpenAndAResetRecoversTheNewestHead) {
  FreshRecordStore* owner = Own(1);
  ASSERT_NE(owner, nullptr);
  ASSERT_TRUE(
      owner->CompareAndSwap("lea", RecordStore::kNoRecord, Active(0)).ok());
  ASSERT_TRUE(EventuallyHolds(0, HeldSeq(1)));
  {
    for (auto [cls, label] :
         {std::pair{CKO_DATA, hsm::kEndorsedLabel},
          std::pair{CKO_SECRET_KEY, hsm::kEndorsedMacLabel}}) {
      auto destroyed = hsm::testing::DestroyObjects(*tokens_[0], cls, label);
      ASSERT_TRUE(destroyed.ok()) << destroyed.status();
    }
  }
  auto gone = Endorser::Open(tokens_[0], *members_, 1);
  EXPECT_TRUE(absl::IsFailedPrecondition(gone.status())) << gone.status();
  EXPECT_NE(gone.status().message().find("the endorser state is gone"),
            std::string::npos);
  EXPECT_NE(gone.status().message().find("cluster reset-state"),
            std::string::npos);
  ASSERT_TRUE(Endorser::CreateState(tokens_[0]).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(Endorser::CreateState(tokens_[0])));
  auto fresh = Endorser::Open(tokens_[0], *members_, 1);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  std::vector<std::shared_ptr<EndorserPeer>> others = {
      std::make_shared<LocalEndorserPeer>(E(1)),
      std::make_shared<LocalEndorserPeer>(E(2))};
  ASSERT_TRUE(RecoveryRound(**fresh, others, absl::Seconds(2)).ok());
  const EndorserState s = (*fresh)->State();
  EXPECT_EQ(HeldHead(s).seq(), HeldSeq(1));
  EXPECT_EQ(s.promised_term(), E(1).State().promised_term());
  // A fork of genesis in the current term is not a successor of its head.
  auto fork = (*fresh)->Endorse(Signed(Request(
      heads_[0]->Term(), std::string(32, '\0'), Table(HeldSeq(1) + 1, 0xee))));
  EXPECT_TRUE(absl::IsAborted(fork.status())) << fork.status();
}

}  // namespace
}  // namespace bkv::freshness
