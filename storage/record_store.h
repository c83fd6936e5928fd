#ifndef BKV_STORAGE_RECORD_STORE_H_
#define BKV_STORAGE_RECORD_STORE_H_

#include <cstdint>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bkv/storage/v1/record.pb.h"
#include "storage/record_codec.h"

namespace bkv::storage {

// The payload key on a write refused by the owner guard alone
// (EtcdRecordStore::Guarded): this node no longer holds the quorum's owner
// key. Its value is kOwnerGuardAmbiguous when an earlier send of the write
// may have committed (outcome unknown), else "1": nothing was written.
// Here, not in the etcd store, because the freshness layer reads it too.
inline constexpr char kOwnerGuardPayload[] = "bkv.storage/owner-guard";
inline constexpr char kOwnerGuardAmbiguous[] = "ambiguous";

// Versioned user records keyed by account id: the contract every back end
// implements (RocksDB embedded, etcd later for several vault nodes). It knows
// records, not passwords: the attempt policy lives in server/ and drives the
// store with read-modify-write cycles (Get, change, CompareAndSwap).
//
// Contract:
//  - Versions are assigned by the store: strictly increasing per account and
//    never reused, not even after Delete. A record's version is
//    `record.version()`.
//  - A write that returns OK is durable (on RocksDB: synced to disk before
//    the call returns), so a counted attempt survives a crash.
//  - Writes are linearizable per account: of several CompareAndSwap calls on
//    the same expected version, exactly one succeeds; the others fail with
//    kAborted and must re-read.
//  - A record changed behind the store's back is reported as kDataLoss with
//    a message naming the account key (AccountKeyHex), never as kNotFound
//    and never silently repaired, so tampering can't reset a counter or
//    re-open registration.
//  - kResourceExhausted (disk full) and kFailedPrecondition (read-only data
//    directory) leave the stored data intact; reads keep working.
//  - kUnavailable from a write leaves its outcome unknown: it may apply
//    later (e.g. a log entry whose sync failed, replayed at the next open),
//    whatever the underlying errno.
// Implementations are thread-safe.
class RecordStore {
 public:
  // expected_version for "no record exists" (create-if-absent).
  static constexpr uint64_t kNoRecord = 0;

  virtual ~RecordStore() = default;

  // The current record, kNotFound if the account has none (never had one,
  // or it was deleted), kDataLoss if it was tampered with.
  virtual absl::StatusOr<v1::UserRecord> Get(
      std::string_view account_id) const = 0;

  // Stores `next` iff the account's current version is `expected_version`
  // (kNoRecord: no record exists). The store sets `schema_version` and
  // `version`; the caller's values for those are ignored. Returns the new
  // version. kAborted on a version mismatch or an existing record.
  virtual absl::StatusOr<uint64_t> CompareAndSwap(
      std::string_view account_id, uint64_t expected_version,
      const v1::UserRecord& next) = 0;

  // Removes the record iff it is at `expected_version`. The account's
  // version high-water mark survives, so a later create continues above it.
  // It does not shred: the caller does when the record held a key.
  virtual absl::Status Delete(std::string_view account_id,
                              uint64_t expected_version) = 0;

  // Drops every superseded copy of the account's record from the store's
  // files (write-ahead log, tables), so a value overwritten or deleted is
  // gone from disk now rather than at some later compaction. The vault calls
  // it when a record locks (its wrapped key was just erased), after a
  // password change and after deleting a record that held a key. Copies in
  // backups of the data directory are out of its reach. A write of a record
  // with shred_pending set or in state LOCKED is always followed by a Shred:
  // RocksDB queues it durably with the write and finishes it at the next
  // open if a crash comes between.
  virtual absl::Status Shred(std::string_view account_id) = 0;

  // A synced write that changes no record, costing what a counted attempt
  // costs. The vault calls it on the unknown-account path so that path takes
  // as long as a real attempt (no timing oracle for account existence).
  // `account_id` is the account the call stands in for (the freshness
  // decorator serialises it like a write to that account).
  virtual absl::Status SyncBarrier(std::string_view account_id) = 0;

  // Number of live records. O(records): for metrics, not for request paths.
  virtual absl::StatusOr<uint64_t> Count() const = 0;

  // Visits every live record (and every inconsistency, as a kDataLoss
  // status) in account-key order from one consistent snapshot. Stops early
  // when `visit` returns false. The account id itself is not stored, so the
  // visitor gets the account key.
  using Visitor = absl::FunctionRef<bool(
      const AccountKey& key, const absl::StatusOr<v1::UserRecord>& record)>;
  virtual absl::Status ForEach(Visitor visit) const = 0;
};

}  // namespace bkv::storage

#endif  // BKV_STORAGE_RECORD_STORE_H_
