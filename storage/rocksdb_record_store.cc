#include "storage/rocksdb_record_store.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/metadata.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "crypto/status_macros.h"
#include "storage/account_check.h"

namespace bkv::storage {
namespace {

// A sync of a file RocksDB had already written failed: for the WAL, the
// entry is in the file and the next open replays it, whatever the errno.
bool SyncFailed(absl::string_view detail) {
  return absl::StrContains(detail, "While fdatasync") ||
         absl::StrContains(detail, "While fsync");
}

// The one place a rocksdb::Status becomes an absl::Status. Messages name the
// data directory and what to do; RocksDB's own text follows for operators.
// `attempted_write`: `s` answers a write RocksDB accepted into its log
// (not one refused up front), so a failed sync leaves its outcome unknown:
// kUnavailable (record_store.h), never "full" or "read-only".
absl::Status FromRocksDb(const rocksdb::Status& s, absl::string_view data_dir,
                         absl::string_view op, bool attempted_write = false) {
  if (s.ok()) return absl::OkStatus();
  const std::string detail = s.ToString();
  auto with = [&](absl::string_view what) {
    return absl::StrCat("data directory ", data_dir, " ", what, " (", op,
                        "; rocksdb: ", detail, ")");
  };
  if (attempted_write && SyncFailed(detail)) {
    return absl::UnavailableError(
        with("could not sync a write, which may still apply when the vault "
             "restarts (its log entry is on disk); check the disk, then "
             "restart the vault"));
  }
  if (s.IsNoSpace() || absl::StrContains(detail, "No space left")) {
    return absl::ResourceExhaustedError(
        with("is full: free space, then retry; reads keep working"));
  }
  if (absl::StrContains(detail, "Read-only file system")) {
    return absl::FailedPreconditionError(with(
        "is read-only: remount it read-write, then retry; reads keep working "
        "(open with read_only to serve reads from a read-only volume)"));
  }
  if (absl::StrContains(detail, "Permission denied")) {
    return absl::FailedPreconditionError(
        with("is not writable by this process: fix its ownership or mode"));
  }
  if (absl::StrContains(detail, "LOCK") &&
      (absl::StrContains(detail, "temporarily unavailable") ||
       absl::StrContains(detail, "lock hold"))) {
    return absl::FailedPreconditionError(
        with("is in use by another vault process or store"));
  }
  if (s.IsCorruption()) {
    return absl::DataLossError(
        with("is corrupted: restore it from a backup; do not delete it"));
  }
  if (s.IsInvalidArgument() && absl::StrContains(detail, "does not exist")) {
    return absl::NotFoundError(with("holds no database"));
  }
  if (s.IsIOError() || s.IsBusy() || s.IsTryAgain() || s.IsTimedOut() ||
      s.IsIncomplete()) {
    return absl::UnavailableError(with("failed an I/O operation; retry"));
  }
  return absl::InternalError(with("failed"));
}

// The shred queue (docs/storage.md, "a Shred cut short by a crash"):
// 'q' | account key -> the version whose write left old copies to shred.
std::string ShredMarkerDbKey(const AccountKey& key) {
  std::string k = RecordDbKey(key);
  k[0] = 'q';
  return k;
}

// The writes after which the vault shreds at once (storage/record_store.h).
bool NeedsShred(const v1::UserRecord& record) {
  return record.shred_pending() || record.state() == v1::RECORD_STATE_LOCKED;
}

// RocksDB's info log, warnings and errors only, on stderr.
class StderrLogger final : public rocksdb::Logger {
 public:
  StderrLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    char line[1024];
    vsnprintf(line, sizeof(line), format, ap);
    fprintf(stderr, "rocksdb: %s\n", line);
  }
};

}  // namespace

struct RocksDbRecordStore::Impl {
  RocksDbRecordStoreOptions options;
  std::shared_ptr<const Sealer> sealer;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<std::mutex> stripes;
  std::mutex resume_mu;
  std::atomic<bool> needs_resume{false};
  // The retry pass (shred_retry_ms).
  std::mutex retry_mu;
  std::condition_variable retry_cv;
  bool stopping = false;
  std::thread retry_thread;

  Impl(const RocksDbRecordStoreOptions& o, std::shared_ptr<const Sealer> s)
      : options(o),
        sealer(std::move(s)),
        stripes(std::max<size_t>(1, o.lock_stripes)) {}

  absl::Status Check(const rocksdb::Status& s, absl::string_view op,
                     bool attempted_write = false) const {
    return FromRocksDb(s, options.data_dir, op, attempted_write);
  }

  std::mutex& StripeFor(const AccountKey& key) {
    uint64_t h;
    std::memcpy(&h, key.data(), sizeof(h));
    return stripes[h % stripes.size()];
  }

  absl::Status CheckWritable() const {
    if (!options.read_only) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("record store on ", options.data_dir,
                     " was opened read-only: writes are disabled"));
  }

  // Both keys from one consistent view.
  absl::StatusOr<RawAccount> Read(const AccountKey& key) const {
    const std::string keys[2] = {RecordDbKey(key), WatermarkDbKey(key)};
    std::vector<rocksdb::Slice> slices = {keys[0], keys[1]};
    std::vector<std::string> values;
    std::vector<rocksdb::Status> st =
        db->MultiGet(rocksdb::ReadOptions(), slices, &values);
    RawAccount raw;
    std::optional<std::string>* out[2] = {&raw.record, &raw.watermark};
    for (int i = 0; i < 2; ++i) {
      if (st[i].IsNotFound()) continue;
      BKV_RETURN_IF_ERROR(Check(st[i], "read"));
      *out[i] = std::move(values[i]);
    }
    return raw;
  }

  // The free-space reserve (RocksDbRecordStoreOptions::min_free_bytes).
  // `needed` more than the reserve: what a Shred is about to write.
  absl::Status CheckFreeSpace(uint64_t needed = 0) const {
    struct statvfs fs;
    if (options.min_free_bytes == 0 ||
        ::statvfs(options.data_dir.c_str(), &fs) != 0) {
      return absl::OkStatus();  // no reserve, or the write itself will tell
    }
    const uint64_t free_bytes = uint64_t{fs.f_bavail} * fs.f_frsize;
    if (free_bytes >= options.min_free_bytes + needed) return absl::OkStatus();
    return absl::ResourceExhaustedError(absl::StrCat(
        "data directory ", options.data_dir,
        " is full: free space, then retry; reads keep working (", free_bytes,
        " bytes free, ", options.min_free_bytes, " kept in reserve",
        needed == 0 ? "" : absl::StrCat(" plus ", needed, " for a shred"),
        ")"));
  }

  // About what a Shred writes before it deletes its inputs (docs/storage.md,
  // "Shred on RocksDB"): the memtable, levels 0 and 1, then one file and the
  // ~10 below it per deeper level, at the largest file size found there
  // (files from before a smaller table_file_bytes stay large until
  // rewritten); never more than the whole store.
  uint64_t ShredOutputBound() const {
    rocksdb::ColumnFamilyMetaData meta;
    db->GetColumnFamilyMetaData(&meta);
    uint64_t memtables = 0;
    db->GetIntProperty("rocksdb.cur-size-all-mem-tables", &memtables);
    uint64_t bound = memtables;
    for (const rocksdb::LevelMetaData& level : meta.levels) {
      if (level.files.empty()) continue;
      uint64_t largest = options.table_file_bytes;
      for (const rocksdb::SstFileMetaData& f : level.files) {
        largest = std::max<uint64_t>(largest, f.size);
      }
      bound += level.level <= 1 ? level.size : 11 * largest;
    }
    return std::min(bound, memtables + meta.size);
  }

  // Compacts the record's key down to the last level: the memtable is
  // flushed (its WAL becomes obsolete and is deleted) and every table file
  // holding an older version is rewritten without it. Then drops the
  // account's shred marker unless a newer write replaced it meanwhile (its
  // own Shred follows).
  absl::Status ShredKey(const AccountKey& key) {
    const std::string marker_key = ShredMarkerDbKey(key);
    std::string before;
    const bool marked =
        db->Get(rocksdb::ReadOptions(), marker_key, &before).ok();
    // Refused cleanly (still queued) rather than meeting ENOSPC inside
    // RocksDB, where a failed flush stops every write.
    BKV_RETURN_IF_ERROR(CheckFreeSpace(ShredOutputBound()));
    const std::string begin = RecordDbKey(key);
    std::string end = begin;
    end.push_back('\0');
    rocksdb::Slice b(begin), e(end);
    rocksdb::CompactRangeOptions cro;
    cro.bottommost_level_compaction =
        rocksdb::BottommostLevelCompaction::kForce;
    BKV_RETURN_IF_ERROR(
        Check(db->CompactRange(cro, &b, &e), "shred compaction"));
    if (!marked) return absl::OkStatus();
    std::lock_guard<std::mutex> lock(StripeFor(key));
    std::string now;
    if (!db->Get(rocksdb::ReadOptions(), marker_key, &now).ok() ||
        now != before) {
      return absl::OkStatus();
    }
    // Unsynced: if a crash loses it, the next open shreds once more.
    return Check(db->Delete(rocksdb::WriteOptions(), marker_key),
                 "remove shred marker");
  }

  // The accounts whose Shred is owed.
  std::vector<AccountKey> QueuedShreds() const {
    std::vector<AccountKey> queued;
    rocksdb::ReadOptions ro;
    rocksdb::Slice upper("r");
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
    for (it->Seek("q"); it->Valid(); it->Next()) {
      AccountKey key;
      if (it->key().size() != 1 + key.size()) continue;
      std::memcpy(key.data(), it->key().data() + 1, key.size());
      queued.push_back(key);
    }
    return queued;  // its iterator (pinning old files) is released here
  }

  // Finishes the Shreds a crash (or a failure) left queued. A failure is
  // logged and its marker kept: the next pass, Shred or open retries.
  void FinishQueuedShreds() {
    const std::vector<AccountKey> queued = QueuedShreds();
    int failed = 0;
    absl::Status first;
    for (const AccountKey& key : queued) {
      if (Stopping()) break;  // a shutdown waits for one Shred at most
      absl::Status s = ShredKey(key);
      if (!s.ok() && failed++ == 0) first = s;
    }
    if (failed > 0) {  // one line per pass, however many failed
      rocksdb::Log(rocksdb::InfoLogLevel::WARN_LEVEL, db->GetOptions().info_log,
                   "%d of %zu queued shreds failed, kept for the next retry; "
                   "first: %s",
                   failed, queued.size(), first.ToString().c_str());
    }
  }

  bool Stopping() {
    std::lock_guard<std::mutex> lock(retry_mu);
    return stopping;
  }

  void StartRetries() {
    if (options.read_only || options.shred_retry_ms == 0) return;
    retry_thread = std::thread([this] {
      const auto interval = std::chrono::milliseconds(options.shred_retry_ms);
      std::unique_lock<std::mutex> lock(retry_mu);
      while (!retry_cv.wait_for(lock, interval, [this] { return stopping; })) {
        lock.unlock();
        FinishQueuedShreds();
        lock.lock();
      }
    });
  }

  void StopRetries() {
    {
      std::lock_guard<std::mutex> lock(retry_mu);
      stopping = true;
    }
    retry_cv.notify_all();
    if (retry_thread.joinable()) retry_thread.join();
  }

  absl::Status Write(rocksdb::WriteBatch& batch, bool sync) {
    BKV_RETURN_IF_ERROR(CheckFreeSpace());
    // After a failed write RocksDB refuses writes until resumed. Resuming is
    // best effort (kBusy while RocksDB's own disk-full recovery waits for
    // space): the write's status below is what the caller learns. While it
    // stays stopped, a write fails with the earlier error before reaching
    // the log: nothing of it lands.
    bool stopped = false;
    if (needs_resume.load()) {
      std::lock_guard<std::mutex> lock(resume_mu);
      if (needs_resume.load()) stopped = !db->Resume().ok();
    }
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    wo.disableWAL = !sync;
    rocksdb::Status s = db->Write(wo, &batch);
    needs_resume.store(!s.ok());
    return Check(s, sync ? "synced write" : "unsynced bulk write",
                 sync && !stopped);
  }
};

RocksDbRecordStore::RocksDbRecordStore(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

RocksDbRecordStore::~RocksDbRecordStore() {
  if (impl_) impl_->StopRetries();
  if (impl_ && impl_->db) impl_->db->Close().PermitUncheckedError();
}

absl::StatusOr<std::unique_ptr<RocksDbRecordStore>> RocksDbRecordStore::Open(
    const RocksDbRecordStoreOptions& options,
    std::shared_ptr<const Sealer> sealer) {
  if (sealer == nullptr) {
    return absl::InvalidArgumentError("record store needs a Sealer");
  }
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError("record store needs a data directory");
  }
  if (!options.read_only) {
    std::error_code ec;
    std::filesystem::create_directories(options.data_dir, ec);
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create data directory ", options.data_dir, ": ",
                       ec.message()));
    }
  }
  rocksdb::Options ro;
  ro.create_if_missing = !options.read_only;
  ro.max_background_jobs = 2;
  // Many writers wait on one WAL sync: let them sleep instead of spinning,
  // and let the group leader insert the whole group into the memtable (one
  // wake-up per follower). Measured in bench/storage on 2 cores: +15 %.
  ro.enable_write_thread_adaptive_yield = false;
  ro.allow_concurrent_memtable_write = false;
  // Sealed records are random bytes: compression would only cost CPU.
  ro.compression = rocksdb::kNoCompression;
  ro.bottommost_compression = rocksdb::kNoCompression;
  ro.write_buffer_size = options.write_buffer_bytes;
  ro.target_file_size_base = options.table_file_bytes;
  ro.max_bytes_for_level_base = options.level1_bytes;
  ro.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  ro.info_log = std::make_shared<StderrLogger>();
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  ro.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  auto impl = std::make_unique<Impl>(options, std::move(sealer));
  rocksdb::DB* db = nullptr;
  rocksdb::Status s =
      options.read_only
          ? rocksdb::DB::OpenForReadOnly(ro, options.data_dir, &db)
          : rocksdb::DB::Open(ro, options.data_dir, &db);
  BKV_RETURN_IF_ERROR(impl->Check(s, "open"));
  impl->db.reset(db);
  if (!options.read_only) impl->FinishQueuedShreds();
  impl->StartRetries();
  return std::unique_ptr<RocksDbRecordStore>(
      new RocksDbRecordStore(std::move(impl)));
}

absl::StatusOr<v1::UserRecord> RocksDbRecordStore::Get(
    std::string_view account_id) const {
  const AccountKey key = DeriveAccountKey(account_id);
  BKV_ASSIGN_OR_RETURN(RawAccount raw, impl_->Read(key));
  BKV_ASSIGN_OR_RETURN(AccountState state, CheckAccount(key, raw));
  if (!state.live) {
    return absl::NotFoundError(
        absl::StrCat("no record for account key ", AccountKeyHex(key)));
  }
  return OpenRecord(*impl_->sealer, key, AsSpan(*raw.record));
}

absl::StatusOr<uint64_t> RocksDbRecordStore::CompareAndSwap(
    std::string_view account_id, uint64_t expected_version,
    const v1::UserRecord& next) {
  BKV_RETURN_IF_ERROR(impl_->CheckWritable());
  const AccountKey key = DeriveAccountKey(account_id);
  std::lock_guard<std::mutex> lock(impl_->StripeFor(key));
  BKV_ASSIGN_OR_RETURN(RawAccount raw, impl_->Read(key));
  BKV_ASSIGN_OR_RETURN(AccountState state, CheckAccount(key, raw));
  const uint64_t current = state.live ? state.version : kNoRecord;
  if (current != expected_version) {
    return absl::AbortedError(absl::StrCat(
        "record for account key ", AccountKeyHex(key), " is at version ",
        current, " (0: none), not ", expected_version, ": re-read and retry"));
  }
  v1::UserRecord record = next;
  record.set_schema_version(kSchemaVersion);
  record.set_version(state.high_water + 1);
  BKV_ASSIGN_OR_RETURN(std::string value,
                       SealRecord(*impl_->sealer, key, record));
  rocksdb::WriteBatch batch;
  batch.Put(RecordDbKey(key), value);
  batch.Put(WatermarkDbKey(key),
            EncodeWatermark({Watermark::State::kLive, record.version()}));
  if (NeedsShred(record)) {  // durable exactly when the write is
    batch.Put(ShredMarkerDbKey(key), absl::StrCat(record.version()));
  }
  BKV_RETURN_IF_ERROR(impl_->Write(batch, /*sync=*/true));
  return record.version();
}

absl::Status RocksDbRecordStore::Delete(std::string_view account_id,
                                        uint64_t expected_version) {
  BKV_RETURN_IF_ERROR(impl_->CheckWritable());
  const AccountKey key = DeriveAccountKey(account_id);
  std::lock_guard<std::mutex> lock(impl_->StripeFor(key));
  BKV_ASSIGN_OR_RETURN(RawAccount raw, impl_->Read(key));
  BKV_ASSIGN_OR_RETURN(AccountState state, CheckAccount(key, raw));
  if (!state.live || state.version != expected_version) {
    return absl::AbortedError(absl::StrCat(
        "record for account key ", AccountKeyHex(key), " is at version ",
        state.live ? state.version : 0, " (0: none), not ", expected_version,
        ": re-read and retry"));
  }
  rocksdb::WriteBatch batch;
  batch.Delete(RecordDbKey(key));
  batch.Put(WatermarkDbKey(key),
            EncodeWatermark({Watermark::State::kDeleted, state.version}));
  return impl_->Write(batch, /*sync=*/true);
}

absl::Status RocksDbRecordStore::Shred(std::string_view account_id) {
  return impl_->ShredKey(DeriveAccountKey(account_id));
}

absl::Status RocksDbRecordStore::SyncBarrier(std::string_view) {
  BKV_RETURN_IF_ERROR(impl_->CheckWritable());
  // One fixed key below the 'r'/'w' spaces, overwritten each time: a WAL
  // append and sync in the same write group as real attempts.
  rocksdb::WriteBatch batch;
  batch.Put("b", "");
  return impl_->Write(batch, /*sync=*/true);
}

absl::StatusOr<uint64_t> RocksDbRecordStore::Count() const {
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper("s");
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro));
  uint64_t n = 0;
  for (it->Seek("r"); it->Valid(); it->Next()) ++n;
  BKV_RETURN_IF_ERROR(impl_->Check(it->status(), "count"));
  return n;
}

absl::Status RocksDbRecordStore::ForEach(Visitor visit) const {
  const rocksdb::Snapshot* snap = impl_->db->GetSnapshot();
  rocksdb::Slice r_upper("s"), w_upper("x");
  rocksdb::ReadOptions r_opts, w_opts;
  r_opts.snapshot = w_opts.snapshot = snap;
  r_opts.iterate_upper_bound = &r_upper;
  w_opts.iterate_upper_bound = &w_upper;
  absl::Status result;
  {
    std::unique_ptr<rocksdb::Iterator> r(impl_->db->NewIterator(r_opts));
    std::unique_ptr<rocksdb::Iterator> w(impl_->db->NewIterator(w_opts));
    r->Seek("r");
    w->Seek("w");
    // Records and watermarks sort by the same account key: merge them.
    auto account_of = [](const rocksdb::Iterator& it) {
      return rocksdb::Slice(it.key().data() + 1, it.key().size() - 1);
    };
    while (r->Valid() || w->Valid()) {
      const int order = !r->Valid()   ? 1
                        : !w->Valid() ? -1
                                      : account_of(*r).compare(account_of(*w));
      const rocksdb::Slice id = order <= 0 ? account_of(*r) : account_of(*w);
      RawAccount raw;
      if (order <= 0) raw.record = r->value().ToString();
      if (order >= 0) raw.watermark = w->value().ToString();
      const bool advance_r = raw.record.has_value();
      const bool advance_w = raw.watermark.has_value();
      if (!VisitAccount(*impl_->sealer, id.ToStringView(), raw, visit)) break;
      if (advance_r) r->Next();
      if (advance_w) w->Next();
    }
    result = impl_->Check(r->status(), "iterate records");
    if (result.ok()) result = impl_->Check(w->status(), "iterate watermarks");
  }
  impl_->db->ReleaseSnapshot(snap);
  return result;
}

absl::Status RocksDbRecordStore::BulkCreate(
    std::span<const std::pair<std::string, v1::UserRecord>> records) {
  BKV_RETURN_IF_ERROR(impl_->CheckWritable());
  // Holding every stripe keeps other writers out of the unsynced window.
  std::vector<std::unique_lock<std::mutex>> locks;
  locks.reserve(impl_->stripes.size());
  for (std::mutex& m : impl_->stripes) locks.emplace_back(m);

  constexpr size_t kChunk = 4096;
  for (size_t begin = 0; begin < records.size(); begin += kChunk) {
    const size_t end = std::min(records.size(), begin + kChunk);
    rocksdb::WriteBatch batch;
    absl::flat_hash_set<std::string> seen;
    for (size_t i = begin; i < end; ++i) {
      const AccountKey key = DeriveAccountKey(records[i].first);
      BKV_ASSIGN_OR_RETURN(RawAccount raw, impl_->Read(key));
      BKV_ASSIGN_OR_RETURN(AccountState state, CheckAccount(key, raw));
      if (state.live || !seen.insert(RecordDbKey(key)).second) {
        return absl::AbortedError(absl::StrCat(
            "account key ", AccountKeyHex(key), " already has a record"));
      }
      v1::UserRecord record = records[i].second;
      record.set_schema_version(kSchemaVersion);
      record.set_version(state.high_water + 1);
      BKV_ASSIGN_OR_RETURN(std::string value,
                           SealRecord(*impl_->sealer, key, record));
      batch.Put(RecordDbKey(key), value);
      batch.Put(WatermarkDbKey(key),
                EncodeWatermark({Watermark::State::kLive, record.version()}));
    }
    BKV_RETURN_IF_ERROR(impl_->Write(batch, /*sync=*/false));
  }
  rocksdb::FlushOptions flush;
  flush.wait = true;
  return impl_->Check(impl_->db->Flush(flush), "flush after bulk create");
}

absl::StatusOr<RocksDbStats> RocksDbRecordStore::Stats() const {
  RocksDbStats stats;
  impl_->db->GetIntProperty("rocksdb.live-sst-files-size", &stats.sst_bytes);
  rocksdb::VectorLogPtr wals;
  BKV_RETURN_IF_ERROR(
      impl_->Check(impl_->db->GetSortedWalFiles(wals), "list WAL files"));
  for (const auto& wal : wals) stats.wal_bytes += wal->SizeFileBytes();
  rocksdb::DB& db = *impl_->db;
  for (int level = 0; level < db.NumberLevels(); ++level) {
    std::string files;
    db.GetProperty(absl::StrCat("rocksdb.num-files-at-level", level), &files);
    stats.files_at_level.push_back(std::strtoull(files.c_str(), nullptr, 10));
  }
  for (const char* busy :
       {"rocksdb.num-running-compactions", "rocksdb.num-running-flushes",
        "rocksdb.compaction-pending", "rocksdb.mem-table-flush-pending"}) {
    uint64_t n = 0;
    db.GetIntProperty(busy, &n);
    stats.busy = stats.busy || n != 0;
  }
  stats.queued_shreds = impl_->QueuedShreds().size();
  return stats;
}

}  // namespace bkv::storage
