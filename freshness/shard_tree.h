#ifndef BKV_FRESHNESS_SHARD_TREE_H_
#define BKV_FRESHNESS_SHARD_TREE_H_

// The authenticated structure over one shard's accounts (docs/rollback.md
// "Structure"): a fixed-depth bucketed Merkle tree kept in memory.
//
//   leaf    = account key (32) || digest (32), one per live account
//   bucket  = SHA-256("bkv.fresh.bucket.v1" || leaves sorted by key)
//             256 buckets, chosen by byte 8 of the account key
//   node    = SHA-256("bkv.fresh.node.v1" || left || right), depth 8
//   root    = the top node
//
// Updating a leaf rehashes its bucket and 8 nodes (lazily, at Root()).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bkv/storage/v1/record.pb.h"
#include "storage/record_codec.h"

namespace bkv::freshness {

using Digest = std::array<uint8_t, 32>;
using storage::AccountKey;

// SHA-256("bkv.fresh.record.v1" || key || deterministic serialization of
// `record`): what a leaf commits to. The record must carry the version and
// schema version the store gives it.
Digest RecordDigest(const AccountKey& key, const storage::v1::UserRecord& r);

// Which of `shards` shards holds the account (first 8 key bytes, mod).
uint32_t ShardOf(const AccountKey& key, uint32_t shards);

std::string DigestHex(const Digest& d);  // first 8 bytes, for logs

// What a leaf holds: the digest it commits to, and the record's version
// (implied by the digest; kept so a write can be checked against it).
struct LeafValue {
  Digest digest;
  uint64_t version = 0;
};

// Not thread-safe: the owner locks.
class ShardTree {
 public:
  static constexpr int kDepth = 8;
  static constexpr size_t kBuckets = size_t{1} << kDepth;

  ShardTree();

  std::optional<LeafValue> Get(const AccountKey& key) const;
  // nullopt removes the leaf.
  void Set(const AccountKey& key, const std::optional<LeafValue>& value);
  const Digest& Root();
  size_t size() const { return size_; }

 private:
  struct Leaf {
    AccountKey key;
    LeafValue value;
  };
  struct Bucket {
    std::vector<Leaf> leaves;  // sorted by key
    bool dirty = true;
  };
  void Rehash(size_t bucket);

  std::vector<Bucket> buckets_;
  // Heap layout: nodes_[1] is the root, nodes_[kBuckets + b] bucket b.
  std::vector<Digest> nodes_;
  bool dirty_ = true;
  size_t size_ = 0;
};

}  // namespace bkv::freshness

#endif  // BKV_FRESHNESS_SHARD_TREE_H_
