// The quorum re-anchor's decision check (freshness/member_change.h
// ApplyDecision): a decision file can re-anchor, never reset the budget.
// ctest -R rollback.quorum.MemberChange
#include "freshness/member_change.h"

#include <gtest/gtest.h>

#include "freshness/head_table.h"

namespace bkv::freshness {
namespace {

HeadTable Table(uint64_t seq, std::vector<std::pair<uint32_t, uint32_t>> ec) {
  HeadTable t;
  t.seq = seq;
  for (auto [epoch, cap] : ec) {
    ShardHead h;
    h.epoch = epoch;
    h.cap = cap;
    h.root[0] = static_cast<uint8_t>(epoch + 1);  // kept shards keep it
    t.shards.push_back(h);
  }
  return t;
}

// A carry whose base is `t` at term 7.
Carry Based(const HeadTable& t) {
  Carry c;
  fresh::v1::HeadRef* b = c.formed.mutable_base();
  b->set_term(7);
  b->set_seq(t.seq);
  b->set_prev_digest(std::string(32, '\0'));
  b->set_digest(DigestBytes(TableDigest(t)));
  c.formed.set_base_table(EncodeHeadsString(t));
  c.state.set_promised_term(7);
  return c;
}

absl::Status Apply(const HeadTable& was, const HeadTable& next, uint32_t k) {
  Carry c = Based(was);
  return ApplyDecision(EncodeHeadsString(next), k, c);
}

TEST(MemberChangeTest, DecisionMayOnlyReanchorWithinTheBudget) {
  const HeadTable was = Table(10, {{0, 0}, {1, 2}});
  // Shard 0 first re-anchored (cap K = 2), shard 1 kept: accepted.
  Carry c = Based(was);
  const HeadTable ok = Table(11, {{1, 2}, {1, 2}});
  ASSERT_TRUE(ApplyDecision(EncodeHeadsString(ok), 2, c).ok());
  EXPECT_EQ(c.formed.base().seq(), 11u);
  EXPECT_EQ(c.formed.base().term(), 7u);
  EXPECT_EQ(c.formed.base().prev_digest(), DigestBytes(TableDigest(was)));
  EXPECT_EQ(c.state.newest_certificate().head().digest(),
            DigestBytes(TableDigest(ok)));
  EXPECT_EQ(c.state.newest_certificate().endorsements_size(), 0);
  // Shard 1 re-anchored again: at most min(K, 2) - 1 = 1.
  EXPECT_TRUE(Apply(was, Table(11, {{0, 0}, {2, 1}}), 2).ok());
  EXPECT_EQ(Apply(was, Table(11, {{0, 0}, {2, 2}}), 2).code(),
            absl::StatusCode::kPermissionDenied);
  // A cap raised without a re-anchor, an epoch skipped or reset, a K above
  // this node's, no higher seq, another shard count: refused.
  for (const HeadTable& bad :
       {Table(11, {{0, 0}, {1, 5}}), Table(11, {{2, 2}, {1, 2}}),
        Table(11, {{0, 0}, {0, 10}}), Table(10, {{1, 2}, {1, 2}}),
        Table(11, {{1, 2}})}) {
    EXPECT_EQ(Apply(was, bad, 2).code(), absl::StatusCode::kPermissionDenied)
        << bad.seq;
  }
  EXPECT_EQ(Apply(was, Table(11, {{1, 5}, {1, 2}}), 2).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(Apply(was, Table(11, {{1, 5}, {1, 2}}), 5).ok());
}

// Review finding 4: a decision that leaves a shard at its epoch and cap
// must leave its certified root too, or any signer could give a rolled-back
// shard its old budget under the carried certificate's name.
TEST(MemberChangeTest, KeptShardKeepsItsCertifiedRoot) {
  const HeadTable was = Table(10, {{0, 0}, {1, 2}});
  HeadTable laundered = Table(11, {{1, 2}, {1, 2}});
  laundered.shards[1].root[5] ^= 1;  // shard 1 "kept", another root
  EXPECT_EQ(Apply(was, laundered, 2).code(),
            absl::StatusCode::kPermissionDenied);
  HeadTable reanchored = Table(11, {{1, 2}, {2, 1}});
  reanchored.shards[1].root[5] ^= 1;  // a re-anchor chooses it: capped
  EXPECT_TRUE(Apply(was, reanchored, 2).ok());
}

TEST(MemberChangeTest, GenesisDecisionReanchorsEveryShard) {
  Carry c;  // no certificate among the hand-overs
  EXPECT_TRUE(
      ApplyDecision(EncodeHeadsString(Table(3, {{1, 2}, {1, 2}})), 2, c).ok());
  EXPECT_EQ(c.formed.base().term(), 0u);
  Carry d;
  EXPECT_EQ(
      ApplyDecision(EncodeHeadsString(Table(3, {{1, 2}, {0, 0}})), 2, d).code(),
      absl::StatusCode::kPermissionDenied);
}

// Cform review finding 1: one stale or lying hand-over is outweighed only
// with N - q + 2 of them (3 of 3, 3 of 4, 4 of 5, 5 of 7).
TEST(MemberChangeTest, CarryBoundOutweighsOneStaleToken) {
  for (auto [n, bound] : {std::pair{3, 3}, {4, 3}, {5, 4}, {7, 5}}) {
    std::string text;
    for (int i = 1; i <= n; ++i) {
      text += std::to_string(i) + " " + std::string(63, '0') +
              std::to_string(i) + " 127.0.0.1:" + std::to_string(9000 + i) +
              "\n";
    }
    auto m = Members::Parse(text);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(CarryBound(*m), static_cast<size_t>(bound)) << n;
  }
}

// Form3 review finding 2: the export counts the hand-overs the carry can
// get before the token stops serving. With 3 members and node 3 lost, the
// 2 survivors are below the bound 3; naming node 3 as exporting reaches it.
TEST(MemberChangeTest, ExportCountsTheHandOversTheCarryCanGet) {
  auto list = [](const std::string& key3) {
    std::string text;
    for (int i = 1; i <= 3; ++i) {
      text += std::to_string(i) + " " +
              (i == 3 ? key3 : std::string(63, '0') + std::to_string(i)) +
              " 127.0.0.1:" + std::to_string(9000 + i) + "\n";
    }
    return *Members::Parse(text);
  };
  const Members from = list(std::string(63, '0') + "3");
  const Members to = list(std::string(63, '0') + "9");
  auto lost = ExpectedHandOvers(from, to, {});
  ASSERT_TRUE(lost.ok()) << lost.status();
  EXPECT_EQ(*lost, 2u);
  EXPECT_LT(*lost, CarryBound(from));
  auto swapped = ExpectedHandOvers(from, to, {3});
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  EXPECT_EQ(*swapped, CarryBound(from));
  EXPECT_EQ(*ExpectedHandOvers(from, from, {}), 3u);
  EXPECT_FALSE(ExpectedHandOvers(from, to, {2}).ok());  // a survivor
  EXPECT_FALSE(ExpectedHandOvers(from, to, {4}).ok());  // no member
}

// Below the carry bound no record is proven fresh: a decision that keeps
// any shard at its epoch is refused, one re-anchoring every shard is not.
TEST(MemberChangeTest, BelowTheBoundTheDecisionReanchorsEveryShard) {
  const HeadTable was = Table(10, {{0, 0}, {1, 2}});
  Carry kept = Based(was);
  kept.below_bound = true;
  EXPECT_EQ(
      ApplyDecision(EncodeHeadsString(Table(11, {{1, 2}, {1, 2}})), 2, kept)
          .code(),
      absl::StatusCode::kPermissionDenied);
  Carry every = Based(was);
  every.below_bound = true;
  EXPECT_TRUE(
      ApplyDecision(EncodeHeadsString(Table(11, {{1, 2}, {2, 1}})), 2, every)
          .ok());
}

}  // namespace
}  // namespace bkv::freshness
