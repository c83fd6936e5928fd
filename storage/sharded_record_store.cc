#include "storage/sharded_record_store.h"

#include "crypto/status_macros.h"

namespace bkv::storage {

size_t ShardOf(const AccountKey& key, size_t shards) {
  uint64_t k = 0;
  for (int i = 0; i < 8; ++i) k = (k << 8) | key[i];
  // Jump consistent hash, as published (constants included).
  int64_t b = -1, j = 0;
  while (j < static_cast<int64_t>(shards)) {
    b = j;
    k = k * 2862933555777941757ULL + 1;
    j = static_cast<int64_t>(static_cast<double>(b + 1) *
                             (static_cast<double>(int64_t{1} << 31) /
                              static_cast<double>((k >> 33) + 1)));
  }
  return static_cast<size_t>(b);
}

absl::StatusOr<std::unique_ptr<ShardedRecordStore>> ShardedRecordStore::Create(
    std::vector<std::unique_ptr<RecordStore>> shards) {
  if (shards.empty()) {
    return absl::InvalidArgumentError("a sharded store needs a shard");
  }
  for (const auto& s : shards) {
    if (s == nullptr) return absl::InvalidArgumentError("null shard");
  }
  return std::unique_ptr<ShardedRecordStore>(
      new ShardedRecordStore(std::move(shards)));
}

RecordStore& ShardedRecordStore::For(std::string_view account_id) const {
  return *shards_[ShardOf(DeriveAccountKey(account_id), shards_.size())];
}

absl::StatusOr<v1::UserRecord> ShardedRecordStore::Get(
    std::string_view account_id) const {
  return For(account_id).Get(account_id);
}

absl::StatusOr<uint64_t> ShardedRecordStore::CompareAndSwap(
    std::string_view account_id, uint64_t expected_version,
    const v1::UserRecord& next) {
  return For(account_id).CompareAndSwap(account_id, expected_version, next);
}

absl::Status ShardedRecordStore::Delete(std::string_view account_id,
                                        uint64_t expected_version) {
  return For(account_id).Delete(account_id, expected_version);
}

absl::Status ShardedRecordStore::Shred(std::string_view account_id) {
  return For(account_id).Shred(account_id);
}

absl::Status ShardedRecordStore::SyncBarrier(std::string_view account_id) {
  // The cluster a real attempt of this account would write to: same cost.
  return For(account_id).SyncBarrier(account_id);
}

absl::StatusOr<uint64_t> ShardedRecordStore::Count() const {
  uint64_t total = 0;
  for (const auto& s : shards_) {
    BKV_ASSIGN_OR_RETURN(uint64_t n, s->Count());
    total += n;
  }
  return total;
}

absl::Status ShardedRecordStore::ForEach(Visitor visit) const {
  bool stopped = false;
  for (const auto& s : shards_) {
    BKV_RETURN_IF_ERROR(s->ForEach(
        [&](const AccountKey& key, const absl::StatusOr<v1::UserRecord>& r) {
          stopped = !visit(key, r);
          return !stopped;
        }));
    if (stopped) break;
  }
  return absl::OkStatus();
}

}  // namespace bkv::storage
