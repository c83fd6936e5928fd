#include "server/record_cache.h"

namespace bkv::server {

std::optional<storage::v1::UserRecord> RecordCache::Get(
    absl::string_view account) const {
  absl::MutexLock lock(&mu_);
  auto it = records_.find(account);
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

void RecordCache::Put(absl::string_view account,
                      const storage::v1::UserRecord& record) {
  if (capacity_ == 0) return;
  absl::MutexLock lock(&mu_);
  auto it = records_.find(account);
  if (it != records_.end()) {
    it->second = record;
    return;
  }
  if (records_.size() >= capacity_) records_.erase(records_.begin());
  records_.emplace(std::string(account), record);
}

void RecordCache::Erase(absl::string_view account) {
  absl::MutexLock lock(&mu_);
  records_.erase(account);
}

}  // namespace bkv::server
