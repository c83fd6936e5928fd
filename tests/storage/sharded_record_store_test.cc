// ShardOf, the account-to-cluster mapping: pinned to published jump
// consistent hash values (a change would remap every deployment), and
// moving keys only onto a new shard.
#include "storage/sharded_record_store.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace bkv::storage {
namespace {

AccountKey Key(int fill) {
  AccountKey k;
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<uint8_t>(i * 37 + fill * 101);
  }
  return k;
}

TEST(ShardOfTest, MatchesAnIndependentJumpHash) {
  // From a separate implementation of Lamping & Veach's algorithm over the
  // key's first 8 bytes, big-endian, for 1, 2, 3, 5, 10 and 770 shards.
  const std::vector<std::vector<size_t>> want = {{0, 0, 2, 3, 7, 743},
                                                 {0, 0, 0, 4, 6, 360},
                                                 {0, 0, 0, 0, 7, 574},
                                                 {0, 0, 0, 0, 6, 578}};
  const size_t shards[] = {1, 2, 3, 5, 10, 770};
  for (int fill = 0; fill < 4; ++fill) {
    for (size_t i = 0; i < 6; ++i) {
      EXPECT_EQ(ShardOf(Key(fill), shards[i]), want[fill][i])
          << "key " << fill << ", " << shards[i] << " shards";
    }
  }
}

TEST(ShardOfTest, AddingAShardMovesKeysOnlyOntoIt) {
  constexpr int kKeys = 20000;
  for (size_t n = 1; n < 8; ++n) {
    int moved = 0;
    for (int i = 0; i < kKeys; ++i) {
      const AccountKey k = DeriveAccountKey(absl::StrCat("account-", i));
      const size_t before = ShardOf(k, n), after = ShardOf(k, n + 1);
      ASSERT_LT(before, n);
      if (before != after) {
        ++moved;
        EXPECT_EQ(after, n) << "a key moved between old shards";
      }
    }
    // About 1/(n+1) of the keys move: deterministic keys, so no flakiness;
    // the bounds only catch a broken hash (all or none moving).
    EXPECT_GT(moved, kKeys / static_cast<int>(n + 1) / 2) << n;
    EXPECT_LT(moved, 2 * kKeys / static_cast<int>(n + 1)) << n;
  }
}

}  // namespace
}  // namespace bkv::storage
