#ifndef BKV_SERVER_RECORD_CACHE_H_
#define BKV_SERVER_RECORD_CACHE_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "bkv/storage/v1/record.pb.h"

namespace bkv::server {

// The record this vault last wrote for each recently used account, so a
// read-modify-write (vault.cc, Mutate) can decide on it without reading the
// store first: a read is an HSM open of the sealed record and, on etcd, a
// round trip. Never trusted on its own: a decision taken on a cached record
// counts only through a compare-and-swap against the cached version, which
// fails unless the store still holds exactly that record (versions are never
// reused), and then the caller reads and decides again. Holds at most
// `capacity` records (an arbitrary one goes when full). Thread-safe.
class RecordCache {
 public:
  explicit RecordCache(size_t capacity = 16384) : capacity_(capacity) {}

  std::optional<storage::v1::UserRecord> Get(absl::string_view account) const;
  // `record.version()` must be the version the store gave it.
  void Put(absl::string_view account, const storage::v1::UserRecord& record);
  void Erase(absl::string_view account);

 private:
  const size_t capacity_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, storage::v1::UserRecord> records_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace bkv::server

#endif  // BKV_SERVER_RECORD_CACHE_H_
