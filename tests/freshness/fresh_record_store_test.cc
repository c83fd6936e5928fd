// The freshness decorator over a real RocksDB store and a real SoftHSM token,
// with head-write faults injected (docs/rollback.md). ctest -R freshness.
#include "freshness/fresh_record_store.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "freshness/reanchor.h"
#include "tests/freshness/fresh_fixture.h"

namespace bkv::freshness {
namespace {

TEST(HeadTableTest, RoundTripsAndRejectsGarbage) {
  HeadTable t;
  t.seq = 77;
  t.shards.resize(3);
  t.shards[1].epoch = 2;
  t.shards[1].cap = 2;
  t.shards[2].root.fill(0xab);
  auto bytes = EncodeHeads(t);
  auto back = ParseHeads(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->seq, 77u);
  EXPECT_EQ(back->shards[1].epoch, 2u);
  EXPECT_EQ(back->shards[2].root, t.shards[2].root);
  for (size_t cut : {size_t{0}, size_t{5}, bytes.size() - 1}) {
    EXPECT_TRUE(absl::IsDataLoss(
        ParseHeads(std::span<const uint8_t>(bytes.data(), cut)).status()));
  }
  EXPECT_EQ(back->shards[1].ceremonies_left, 0u);
  bytes[0] = 0x03;
  EXPECT_TRUE(absl::IsDataLoss(ParseHeads(bytes).status()));
}

// Budget review finding 5, narrowed by budget3 review finding 1: a node
// refuses only a table that no ceremony of any release writes (each
// refusal names the shard); a table made under another B or K (main wrote
// left 4 and cap 2 whatever the settings) is adopted.
TEST(HeadTableTest, RangesOfAnAdoptedTable) {
  HeadTable t;
  t.shards.resize(3, {.ceremonies_left = 4});
  t.shards[1] = {.epoch = 1, .cap = 2, .ceremonies_left = 3};
  t.shards[2] = {.epoch = 9, .cap = 0, .ceremonies_left = 0};  // forced
  EXPECT_TRUE(CheckHeadRanges(t, {}).ok());
  // Main's tables under a node's smaller B: adopted (finding 1).
  EXPECT_TRUE(CheckHeadRanges(t, {1}).ok());
  HeadTable made_under_b8 = t;
  made_under_b8.shards[1].ceremonies_left = 7;
  EXPECT_TRUE(CheckHeadRanges(made_under_b8, {}).ok());
  auto refused = [&](const HeadTable& bad, const std::string& says) {
    absl::Status s = CheckHeadRanges(bad, {});
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_NE(s.message().find(says), std::string::npos) << s;
  };
  HeadTable reset = t;
  reset.shards[1].ceremonies_left = 64;
  refused(reset,
          "shard 1 was re-anchored 1 times and still has 64 left, more than "
          "any reanchor_budget (64) allows");
  HeadTable huge = t;
  huge.shards[0].ceremonies_left = 65;
  refused(huge, "shard 0 was re-anchored 0 times and still has 65 left");
  HeadTable zero = t;
  zero.shards[1].cap = 0;
  refused(zero, "shard 1 was re-anchored with cap 0 but has 3");
  HeadTable last = t;
  last.shards[2].epoch = UINT32_MAX;
  refused(last, "shard 2 is at the last epoch");
  // An endorser's first table: caps within its K.
  HeadTable wide = t;
  wide.shards[1].cap = 9;
  absl::Status s = CheckHeadRanges(wide, {4, 2});
  EXPECT_NE(s.message().find("shard 1 caps its re-anchored records at 9 "
                             "attempts, above this node's [freshness] "
                             "reanchor_max_attempts (2)"),
            std::string::npos)
      << s;
  EXPECT_TRUE(CheckHeadRanges(wide, {}).ok());
  // Not before a re-anchor: epoch 0's cap means nothing.
  HeadTable fresh = t;
  fresh.shards[0].cap = 9;
  EXPECT_TRUE(CheckHeadRanges(fresh, {4, 2}).ok());
}

// Budget3 review finding 1: a lower B counts as min(left, B): a ceremony
// spends from it, never refuses nor keeps the larger count.
TEST(HeadTableTest, ALowerBudgetSpendsFromTheSmallerCount) {
  const ShardHead mains{.ceremonies_left = 4};
  EXPECT_EQ(ReanchoredHead(mains, 1, 2).ceremonies_left, 1u);
  EXPECT_EQ(ReanchoredHead(mains, 1, 2).cap, 1u);
  EXPECT_EQ(ReanchoredHead(mains, 2, 4).ceremonies_left, 3u);
  EXPECT_EQ(ReanchoredHead(mains, 2, 9).ceremonies_left, 3u);
  const ShardHead spent{.epoch = 2, .cap = 2, .ceremonies_left = 0};
  EXPECT_EQ(ReanchoredHead(spent, 2, 4).cap, 0u);
}

// Budget3 review finding 2: the cap is on the limit the vault counts,
// min(record's, configured L). Against the record's own, a record
// registered at 10 under L = 5 read 10 - 1 = 9 used, 0 left, and the next
// status call locked it and destroyed its key.
TEST(ReanchoredTest, CapsTheEffectiveLimit) {
  UserRecord r = storage::testing::SampleRecord(0);
  r.set_state(storage::v1::RECORD_STATE_ACTIVE);
  r.set_attempt_limit(10);
  r.set_attempts_used(0);
  UserRecord lowered = r;
  Reanchored(lowered, 1, 5);
  EXPECT_EQ(std::min(lowered.attempt_limit(), 5u) - lowered.attempts_used(),
            1u);
  UserRecord unchanged = r;
  Reanchored(unchanged, 2, 10);
  EXPECT_EQ(unchanged.attempts_used(), 8u);
  UserRecord raised = r;  // L above the record's: the record's counts
  Reanchored(raised, 2, 16);
  EXPECT_EQ(raised.attempts_used(), 8u);
  UserRecord within = r;  // limit at most the cap: untouched
  Reanchored(within, 5, 5);
  EXPECT_EQ(within.attempts_used(), 0u);
}

// Form3 review finding 1: tables written before the lifetime budget (0x01,
// no `left`) are read with the derived count and written back byte for
// byte (their certificates keep verifying); a changed count gives 0x02.
TEST(HeadTableTest, ReadsTheOldFormatWithADerivedBudget) {
  std::vector<uint8_t> v1 = {0x01, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 9};
  for (auto [epoch, cap] : {std::pair{0, 0}, {2, 1}, {1, 0}, {1, 2}, {1, 9}}) {
    for (int b : {0, 0, 0, epoch, 0, 0, 0, cap}) {
      v1.push_back(static_cast<uint8_t>(b));
    }
    v1.insert(v1.end(), 32, 0xcd);
  }
  auto t = ParseHeads(v1);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->format, 0x01);
  EXPECT_EQ(t->seq, 9u);
  EXPECT_EQ(t->shards[0].ceremonies_left, kDefaultCeremonies);
  // Budget review finding 6: never more than the old rule still allowed
  // (caps cap - 1 down to 1), nor than the default B has left.
  EXPECT_EQ(t->shards[1].ceremonies_left, 0u);  // old rule: next cap 0
  EXPECT_EQ(t->shards[2].ceremonies_left, 0u);  // spent stays spent
  EXPECT_EQ(t->shards[3].ceremonies_left, 1u);  // old rule: cap 1 once
  EXPECT_EQ(t->shards[4].ceremonies_left, kDefaultCeremonies - 1);
  EXPECT_EQ(EncodeHeads(*t), v1);
  HeadTable changed = *t;
  changed.shards[0].ceremonies_left = 3;
  const std::vector<uint8_t> v2 = EncodeHeads(changed);
  EXPECT_EQ(v2[0], 0x02);
  EXPECT_EQ(v2.size(), 13u + 5 * 44);
  auto back = ParseHeads(v2);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->shards[0].ceremonies_left, 3u);
  EXPECT_EQ(back->shards[3].ceremonies_left, 1u);
  EXPECT_EQ(EncodeHeads(*back), v2);
}

TEST(ShardTreeTest, RootCommitsToTheLeafSetWhateverTheOrder) {
  AccountKey a = storage::DeriveAccountKey("a"),
             b = storage::DeriveAccountKey("b");
  LeafValue la{{1}, 1}, lb{{2}, 1};
  ShardTree t1, t2;
  const Digest empty = t1.Root();
  t1.Set(a, la);
  t1.Set(b, lb);
  t2.Set(b, lb);
  t2.Set(a, la);
  EXPECT_EQ(t1.Root(), t2.Root());
  EXPECT_NE(t1.Root(), empty);
  t2.Set(a, LeafValue{{3}, 2});
  EXPECT_NE(t1.Root(), t2.Root());
  t1.Set(a, std::nullopt);
  t1.Set(b, std::nullopt);
  EXPECT_EQ(t1.Root(), empty);
  EXPECT_EQ(t1.size(), 0u);
}

TEST_F(FreshStoreTest, WritesReadDeleteAndCreateAgain) {
  auto v1 =
      fresh_->CompareAndSwap("ann", storage::RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v1.ok()) << v1.status();
  auto v2 = fresh_->CompareAndSwap("ann", *v1, Active(1));
  ASSERT_TRUE(v2.ok()) << v2.status();
  // A stale expected version is refused by the anchored leaf.
  EXPECT_TRUE(
      absl::IsAborted(fresh_->CompareAndSwap("ann", *v1, Active(0)).status()));
  Reopen();
  auto got = fresh_->Get("ann");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->attempts_used(), 1u);
  EXPECT_EQ(*fresh_->Count(), 1u);
  ASSERT_TRUE(fresh_->Delete("ann", *v2).ok());
  EXPECT_TRUE(absl::IsNotFound(fresh_->Get("ann").status()));
  Reopen();
  EXPECT_TRUE(absl::IsNotFound(fresh_->Get("ann").status()));
  EXPECT_TRUE(
      fresh_->CompareAndSwap("ann", storage::RecordStore::kNoRecord, Active(0))
          .ok());
  EXPECT_EQ(fresh_->Stats().head_writes, 1u);  // since the last Reopen
  EXPECT_GT(fresh_->Stats().seq, 4u);
}

// A head the token did not take: the caller hears "unavailable" without an
// effect (so the vault says "possibly spent"), and the write counts as soon
// as a later head covers it.
TEST_F(FreshStoreTest, FailedHeadWriteCountsLaterNeverLess) {
  auto v1 =
      fresh_->CompareAndSwap("bob", storage::RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v1.ok());
  faulty_->fail = 1;
  auto v2 = fresh_->CompareAndSwap("bob", *v1, Active(1));
  EXPECT_TRUE(absl::IsUnavailable(v2.status())) << v2.status();
  EXPECT_FALSE(vault::v1::ErrorDetailOf(v2.status()).has_value());
  auto got = fresh_->Get("bob");  // commits it now
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->attempts_used(), 1u);
  Reopen();
  EXPECT_EQ(fresh_->Get("bob")->attempts_used(), 1u);
}

// The same head failure, then a restart before anything retries it: the
// start-up check rolls the write forward.
TEST_F(FreshStoreTest, WriteWithoutHeadIsRolledForwardAtStartUp) {
  auto v1 =
      fresh_->CompareAndSwap("cyd", storage::RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v1.ok());
  faulty_->fail = 1;
  EXPECT_FALSE(fresh_->CompareAndSwap("cyd", *v1, Active(1)).ok());
  Reopen();
  EXPECT_FALSE(fresh_->Stats()
                   .shard_stale[ShardOf(storage::DeriveAccountKey("cyd"), 4)]);
  EXPECT_EQ(fresh_->Get("cyd")->attempts_used(), 1u);
}

// A record changed behind the decorator's back, with the store's own checks
// satisfied: refused on the next read, and its shard is stale after a
// restart while the other shards serve.
TEST_F(FreshStoreTest, RecordChangedBehindItsBackIsRefused) {
  std::string other = "x0";
  for (int i = 1; ShardOf(storage::DeriveAccountKey(other), 4) ==
                  ShardOf(storage::DeriveAccountKey("dee"), 4);
       ++i) {
    other = absl::StrCat("x", i);
  }
  auto v1 =
      fresh_->CompareAndSwap("dee", storage::RecordStore::kNoRecord, Active(3));
  ASSERT_TRUE(v1.ok());
  ASSERT_TRUE(
      fresh_->CompareAndSwap(other, storage::RecordStore::kNoRecord, Active(0))
          .ok());
  ASSERT_TRUE(inner_->CompareAndSwap("dee", *v1, Active(0)).ok());
  ExpectRolledBack(fresh_->Get("dee").status());
  // A write on the store's version is refused: it is not the anchored one.
  EXPECT_TRUE(absl::IsAborted(
      fresh_->CompareAndSwap("dee", *v1 + 1, Active(0)).status()));
  Reopen();
  EXPECT_TRUE(fresh_->Stats()
                  .shard_stale[ShardOf(storage::DeriveAccountKey("dee"), 4)]);
  ExpectRolledBack(fresh_->Get("dee").status());
  EXPECT_TRUE(fresh_->Get(other).ok());
  EXPECT_GT(fresh_->Stats().stale_reads, 0u);
}

TEST_F(FreshStoreTest, ShardCountIsFixedAtGenesis) {
  fresh_.reset();
  auto f = FreshRecordStore::Open(*inner_, *faulty_, {8, nullptr});
  EXPECT_TRUE(absl::IsFailedPrecondition(f.status())) << f.status();
}

// Re-anchoring a stale shard: served again, every record capped at K, and
// an old copy can't escape the cap.
TEST_F(FreshStoreTest, ReanchorCapsTheStaleShard) {
  auto v1 =
      fresh_->CompareAndSwap("eve", storage::RecordStore::kNoRecord, Active(0));
  ASSERT_TRUE(v1.ok());
  ASSERT_TRUE(inner_->CompareAndSwap("eve", *v1, Active(1)).ok());
  fresh_.reset();
  auto report = Reanchor(*inner_, *faulty_, {4, {}, 2});
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->shards.size(), 1u);
  EXPECT_EQ(report->shards[0].epoch, 1u);
  Reopen();
  auto got = fresh_->Get("eve");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->attempt_limit() - got->attempts_used(), 2u);
  // The next write keeps the cap (the policy writes what it read).
  ASSERT_TRUE(fresh_->CompareAndSwap("eve", got->version(), *got).ok());
  Reopen();
  EXPECT_EQ(fresh_->Get("eve")->attempts_used(), 8u);
  // A second re-anchor with nothing stale changes nothing.
  fresh_.reset();
  report = Reanchor(*inner_, *faulty_, {4, {}, 5});
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->shards.empty());
}

}  // namespace
}  // namespace bkv::freshness
