#ifndef BKV_STORAGE_SHARDED_RECORD_STORE_H_
#define BKV_STORAGE_SHARDED_RECORD_STORE_H_

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/record_store.h"

namespace bkv::storage {

// The shard of `key` among `shards` (>= 1): jump consistent hash (Lamping,
// Veach 2014) of the key's first 8 bytes. Stable: a function of the key and
// the shard count only. Going from N to N+1 shards moves about 1/(N+1) of
// the keys, all of them onto the new shard (docs/storage.md, "Several
// clusters").
size_t ShardOf(const AccountKey& key, size_t shards);

// Several RecordStores behind one: each account lives in exactly one shard,
// ShardOf(its account key), so every per-account guarantee of the contract
// (storage/record_store.h) is the shard's. The vault does not know.
// Differences, all outside request paths:
//  - Count sums the shards' counts, each at its own moment.
//  - ForEach visits shard after shard, each in account-key order from its
//    own snapshot: no global order, no one snapshot across shards.
//  - SyncBarrier goes to the shards in turn.
// Which store is which shard must never change while records exist
// (storage/etcd_shards.h checks it for etcd). Thread-safe if the shards are.
class ShardedRecordStore final : public RecordStore {
 public:
  static absl::StatusOr<std::unique_ptr<ShardedRecordStore>> Create(
      std::vector<std::unique_ptr<RecordStore>> shards);

  absl::StatusOr<v1::UserRecord> Get(
      std::string_view account_id) const override;
  absl::StatusOr<uint64_t> CompareAndSwap(std::string_view account_id,
                                          uint64_t expected_version,
                                          const v1::UserRecord& next) override;
  absl::Status Delete(std::string_view account_id,
                      uint64_t expected_version) override;
  absl::Status Shred(std::string_view account_id) override;
  absl::Status SyncBarrier(std::string_view account_id) override;
  absl::StatusOr<uint64_t> Count() const override;
  absl::Status ForEach(Visitor visit) const override;

  size_t shard_count() const { return shards_.size(); }
  RecordStore& shard(size_t i) { return *shards_[i]; }

 private:
  explicit ShardedRecordStore(std::vector<std::unique_ptr<RecordStore>> shards)
      : shards_(std::move(shards)) {}
  RecordStore& For(std::string_view account_id) const;

  std::vector<std::unique_ptr<RecordStore>> shards_;
};

}  // namespace bkv::storage

#endif  // BKV_STORAGE_SHARDED_RECORD_STORE_H_
