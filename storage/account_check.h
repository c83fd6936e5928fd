#ifndef BKV_STORAGE_ACCOUNT_CHECK_H_
#define BKV_STORAGE_ACCOUNT_CHECK_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "crypto/sealer.h"
#include "storage/record_codec.h"
#include "storage/record_store.h"

namespace bkv::storage {

// An account's two stored values (record_codec.h) as read from one snapshot;
// nullopt where the key is absent.
struct RawAccount {
  std::optional<std::string> record;
  std::optional<std::string> watermark;
};

// What the record and its watermark say together, once checked.
struct AccountState {
  bool live = false;
  uint64_t version = 0;     // current version when live
  uint64_t high_water = 0;  // highest version ever written (0: none)
};

// Cross-checks framing and watermark without unsealing, so writers detect a
// removed, resurrected or rolled-back record cheaply: kDataLoss (TamperError)
// on any inconsistency. Shared by the RocksDB and etcd back ends.
absl::StatusOr<AccountState> CheckAccount(const AccountKey& key,
                                          const RawAccount& raw);

// One step of ForEach over an account's two raw values, keyed by `id` as
// stored: a malformed key or a failed check goes to `visit` as an error, a
// live record unsealed, a deleted account not at all. Returns whether to go
// on (what `visit` returned, or true when it was not called).
bool VisitAccount(const Sealer& sealer, std::string_view id,
                  const RawAccount& raw, RecordStore::Visitor visit);

}  // namespace bkv::storage

#endif  // BKV_STORAGE_ACCOUNT_CHECK_H_
