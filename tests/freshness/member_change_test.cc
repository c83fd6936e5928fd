// The quorum re-anchor's decision check (freshness/member_change.h
// ApplyDecision): a decision file can re-anchor, never reset the budget.
// ctest -R rollback.quorum.MemberChange
#include "freshness/member_change.h"

#include <gtest/gtest.h>

#include "freshness/head_table.h"

namespace bkv::freshness {
namespace {

// Each shard: epoch, cap and ceremonies left.
struct Head {
  uint32_t epoch, cap, left;
};

HeadTable Table(uint64_t seq, std::vector<Head> heads) {
  HeadTable t;
  t.seq = seq;
  for (auto [epoch, cap, left] : heads) {
    ShardHead h;
    h.epoch = epoch;
    h.cap = cap;
    h.ceremonies_left = left;
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

// The checking member's B: the tables below were made with 8.
constexpr uint32_t kB = 8;

absl::Status Apply(const HeadTable& was, const HeadTable& next, uint32_t k,
                   uint32_t b = kB) {
  Carry c = Based(was);
  return ApplyDecision(EncodeHeadsString(next), k, c, b);
}

TEST(MemberChangeTest, DecisionMayOnlyReanchorWithinTheBudget) {
  const HeadTable was = Table(10, {{0, 0, 8}, {1, 2, 7}});
  // Shard 0 first re-anchored (cap K = 2), shard 1 kept: accepted.
  Carry c = Based(was);
  const HeadTable ok = Table(11, {{1, 2, 7}, {1, 2, 7}});
  ASSERT_TRUE(ApplyDecision(EncodeHeadsString(ok), 2, c, kB).ok());
  EXPECT_EQ(c.formed.base().seq(), 11u);
  EXPECT_EQ(c.formed.base().term(), 7u);
  EXPECT_EQ(c.formed.base().prev_digest(), DigestBytes(TableDigest(was)));
  EXPECT_EQ(c.state.newest_certificate().head().digest(),
            DigestBytes(TableDigest(ok)));
  EXPECT_EQ(c.state.newest_certificate().endorsements_size(), 0);
  // Form3 review finding 1: shard 1 re-anchored again keeps cap K = 2 (the
  // cap no longer shrinks) and spends one ceremony: 7 -> 6.
  EXPECT_TRUE(Apply(was, Table(11, {{0, 0, 8}, {2, 2, 6}}), 2).ok());
  EXPECT_TRUE(Apply(was, Table(11, {{0, 0, 8}, {2, 1, 6}}), 2).ok());
  // Budget3 review finding 1: a checker with a lower B (4) counts the
  // shard's 7 as 4: the decision must leave 3, not 6.
  EXPECT_TRUE(Apply(was, Table(11, {{0, 0, 8}, {2, 2, 3}}), 2, 4).ok());
  EXPECT_FALSE(Apply(was, Table(11, {{0, 0, 8}, {2, 2, 6}}), 2, 4).ok());
  // Budget review finding 5: cap 0 for a shard that has ceremonies left
  // (any member's decision taking every attempt) is refused.
  EXPECT_EQ(Apply(was, Table(11, {{0, 0, 8}, {2, 0, 6}}), 2).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Apply(was, Table(11, {{1, 0, 7}, {1, 2, 7}}), 2).code(),
            absl::StatusCode::kPermissionDenied);
  // A cap raised without a re-anchor, an epoch skipped or reset, a K above
  // this node's, no higher seq, another shard count; a re-anchor that does
  // not spend a ceremony or raises the count; a kept shard with another
  // count: refused.
  for (const HeadTable& bad :
       {Table(11, {{0, 0, 8}, {1, 5, 7}}), Table(11, {{2, 2, 7}, {1, 2, 7}}),
        Table(11, {{0, 0, 8}, {0, 10, 7}}), Table(10, {{1, 2, 7}, {1, 2, 7}}),
        Table(11, {{1, 2, 7}}), Table(11, {{0, 0, 8}, {2, 2, 7}}),
        Table(11, {{0, 0, 8}, {2, 2, 8}}), Table(11, {{1, 2, 8}, {1, 2, 7}}),
        Table(11, {{0, 0, 8}, {1, 2, 6}}), Table(11, {{0, 0, 9}, {1, 2, 7}})}) {
    EXPECT_EQ(Apply(was, bad, 2).code(), absl::StatusCode::kPermissionDenied)
        << bad.seq << " " << bad.shards[0].ceremonies_left;
  }
  EXPECT_EQ(Apply(was, Table(11, {{1, 5, 7}, {1, 2, 7}}), 2).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(Apply(was, Table(11, {{1, 5, 7}, {1, 2, 7}}), 5).ok());
}

// Form3 review finding 1: with no ceremony left a re-anchor gives cap 0 and
// stays at 0 (--force); any cap, or a count brought back, is refused.
TEST(MemberChangeTest, SpentBudgetReanchorsOnlyToNoAttempts) {
  const HeadTable was = Table(10, {{3, 2, 0}});
  EXPECT_TRUE(Apply(was, Table(11, {{4, 0, 0}}), 2).ok());
  for (const HeadTable& bad :
       {Table(11, {{4, 1, 0}}), Table(11, {{4, 2, 0}}), Table(11, {{4, 0, 1}}),
        Table(11, {{4, 2, 8}})}) {
    EXPECT_EQ(Apply(was, bad, 2).code(), absl::StatusCode::kPermissionDenied)
        << bad.shards[0].cap << " " << bad.shards[0].ceremonies_left;
  }
}

// Review finding 4: a decision that leaves a shard at its epoch and cap
// must leave its certified root too, or any signer could give a rolled-back
// shard its old budget under the carried certificate's name.
TEST(MemberChangeTest, KeptShardKeepsItsCertifiedRoot) {
  const HeadTable was = Table(10, {{0, 0, 8}, {1, 2, 7}});
  HeadTable laundered = Table(11, {{1, 2, 7}, {1, 2, 7}});
  laundered.shards[1].root[5] ^= 1;  // shard 1 "kept", another root
  EXPECT_EQ(Apply(was, laundered, 2).code(),
            absl::StatusCode::kPermissionDenied);
  HeadTable reanchored = Table(11, {{1, 2, 7}, {2, 2, 6}});
  reanchored.shards[1].root[5] ^= 1;  // a re-anchor chooses it: capped
  EXPECT_TRUE(Apply(was, reanchored, 2).ok());
}

TEST(MemberChangeTest, GenesisDecisionReanchorsEveryShard) {
  Carry c;  // no certificate among the hand-overs; this node's B is 4
  EXPECT_TRUE(
      ApplyDecision(EncodeHeadsString(Table(3, {{1, 2, 3}, {1, 1, 3}})), 2, c)
          .ok());
  EXPECT_EQ(c.formed.base().term(), 0u);
  // A shard not re-anchored, a budget not spent by the genesis ceremony or
  // above this node's B, a cap above K: refused. Budget review finding 5:
  // a genesis leaving a shard fewer ceremonies than B - 1 (0 among them)
  // or cap 0 is refused too.
  for (auto [heads, b] : {std::pair{Table(3, {{1, 2, 7}, {0, 0, 8}}), 8u},
                          {Table(3, {{1, 2, 7}, {1, 2, 8}}), 8u},
                          {Table(3, {{1, 2, 7}, {1, 2, 7}}), 4u},
                          {Table(3, {{1, 3, 7}, {1, 2, 7}}), 8u},
                          {Table(3, {{1, 2, 3}, {1, 2, 0}}), 4u},
                          {Table(3, {{1, 2, 3}, {1, 2, 2}}), 4u},
                          {Table(3, {{1, 2, 3}, {1, 0, 3}}), 4u}}) {
    Carry d;
    EXPECT_EQ(ApplyDecision(EncodeHeadsString(heads), 2, d, b).code(),
              absl::StatusCode::kPermissionDenied)
        << b << " " << heads.shards[1].cap << " "
        << heads.shards[1].ceremonies_left;
  }
  Carry e;  // B = 1: the genesis spends the only one
  EXPECT_TRUE(ApplyDecision(EncodeHeadsString(Table(3, {{1, 2, 0}, {1, 2, 0}})),
                            2, e, 1)
                  .ok());
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
  const HeadTable was = Table(10, {{0, 0, 8}, {1, 2, 7}});
  Carry kept = Based(was);
  kept.below_bound = true;
  EXPECT_EQ(ApplyDecision(EncodeHeadsString(Table(11, {{1, 2, 7}, {1, 2, 7}})),
                          2, kept, kB)
                .code(),
            absl::StatusCode::kPermissionDenied);
  Carry every = Based(was);
  every.below_bound = true;
  EXPECT_TRUE(
      ApplyDecision(EncodeHeadsString(Table(11, {{1, 2, 7}, {2, 2, 6}})), 2,
                    every, kB)
          .ok());
}

}  // namespace
}  // namespace bkv::freshness
