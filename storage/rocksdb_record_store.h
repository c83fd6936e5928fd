#ifndef BKV_STORAGE_ROCKSDB_RECORD_STORE_H_
#define BKV_STORAGE_ROCKSDB_RECORD_STORE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/sealer.h"
#include "storage/record_store.h"

namespace bkv::storage {

struct RocksDbRecordStoreOptions {
  // Created if missing. Holds RocksDB's files and nothing else.
  std::string data_dir;
  // Open for reads only, e.g. while the volume is mounted read-only: Get,
  // Count and ForEach work, writes fail with kFailedPrecondition.
  bool read_only = false;
  // Per-account lock stripes for the compare-and-swap read-modify-write.
  size_t lock_stripes = 1024;
  // Memtable size. After a disk-full error RocksDB resumes by itself once
  // this much space is free again (it checks every few seconds).
  size_t write_buffer_bytes = 64 << 20;
  // Writes are refused as "full" while the data directory's filesystem has
  // less free space than this, so RocksDB itself rarely meets ENOSPC: a WAL
  // append that fails leaves its log writer in a state Debian's RocksDB 7.8
  // can abort on (an assertion) at the next sync. Keeps room for the WAL of
  // a burst and a memtable flush.
  uint64_t min_free_bytes = 16 << 20;
  // Table file size and level 1's size: a Shred's forced compaction of one
  // key rewrites about level1_bytes plus 11 table files per deeper level
  // (docs/storage.md, "Shred on RocksDB"). RocksDB's defaults (64 MiB,
  // 256 MiB) made that hundreds of MiB per Shred.
  uint64_t table_file_bytes = 2 << 20;
  uint64_t level1_bytes = 16 << 20;
  // How often a background pass retries Shreds that failed (their accounts
  // stay queued); 0: only at open. Bounds how long a failed Shred's copies
  // stay on disk while the store is open.
  uint32_t shred_retry_ms = 60'000;
};

struct RocksDbStats {
  uint64_t sst_bytes = 0;                // live table files
  uint64_t wal_bytes = 0;                // write-ahead log files
  std::vector<uint64_t> files_at_level;  // table files per LSM level
  bool busy = false;           // a flush or compaction is running or due
  uint64_t queued_shreds = 0;  // accounts whose Shred is owed ('q' keys)
};

// The embedded RecordStore (layout in storage/record_codec.h, contract in
// storage/record_store.h).
//
// Durability: every CompareAndSwap and Delete is one atomic WriteBatch
// (record + version watermark) written with WriteOptions::sync, so it is on
// disk (fdatasync of the WAL) before the call returns. Writers to different
// accounts hold different lock stripes and reach RocksDB's write queue
// together, where one leader appends the whole group to the WAL and syncs
// once: concurrent writers share fsyncs (group commit).
//
// After a disk-full or read-only error every write fails with the same clear
// status until the cause is fixed; then writes resume by themselves (RocksDB's
// own recovery once space is free, DB::Resume before the next write
// otherwise). Reads keep working throughout. RocksDB's info log goes to
// stderr (warnings and errors only), never into the data directory, so a
// full disk can't take the logger down with it.
//
// Shred compacts the record's key to the last level (its cost is bounded by
// table_file_bytes and level1_bytes). A write after which the vault shreds
// (a record with shred_pending, or LOCKED) also queues the account ('q' key,
// same synced batch); Shred dequeues it and Open finishes what a crash left
// queued (docs/storage.md, "a Shred cut short by a crash"); while open, a
// background pass retries failed ones every shred_retry_ms.
// Thread-safe.
class RocksDbRecordStore final : public RecordStore {
 public:
  // `sealer` seals every record (the HSM in production).
  static absl::StatusOr<std::unique_ptr<RocksDbRecordStore>> Open(
      const RocksDbRecordStoreOptions& options,
      std::shared_ptr<const Sealer> sealer);
  ~RocksDbRecordStore() override;

  absl::StatusOr<v1::UserRecord> Get(
      std::string_view account_id) const override;
  absl::StatusOr<uint64_t> CompareAndSwap(std::string_view account_id,
                                          uint64_t expected_version,
                                          const v1::UserRecord& next) override;
  absl::Status Delete(std::string_view account_id,
                      uint64_t expected_version) override;
  absl::Status SyncBarrier(std::string_view account_id) override;
  absl::Status Shred(std::string_view account_id) override;
  absl::StatusOr<uint64_t> Count() const override;
  absl::Status ForEach(Visitor visit) const override;

  // Creates many absent records at once (imports, benchmarks): unsynced
  // batches, then one flush to table files, so it is durable when it
  // returns OK and all-or-partly present after a crash before that. Each
  // record gets the version a create would give it. kAborted, and nothing of
  // that chunk written, if any account already has a record.
  absl::Status BulkCreate(
      std::span<const std::pair<std::string, v1::UserRecord>> records);

  absl::StatusOr<RocksDbStats> Stats() const;

 private:
  struct Impl;
  explicit RocksDbRecordStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bkv::storage

#endif  // BKV_STORAGE_ROCKSDB_RECORD_STORE_H_
