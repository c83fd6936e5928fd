#include "storage/rocksdb_record_store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sys/statvfs.h>

#include <atomic>
#include <fstream>
#include <latch>
#include <thread>

#include "tests/storage/record_store_contract.h"
#include "tests/storage/test_util.h"

namespace bkv::storage {
namespace {

using ::bkv::storage::testing::FilesContaining;
using ::bkv::storage::testing::SampleRecord;
using ::bkv::storage::testing::TempDir;
using ::bkv::storage::testing::TestSealer;
using ::bkv::storage::testing::TmpfsMount;

std::unique_ptr<RocksDbRecordStore> OpenOrDie(const std::string& dir,
                                              bool read_only = false) {
  auto store = RocksDbRecordStore::Open(
      {.data_dir = dir, .read_only = read_only}, TestSealer());
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

std::string Id(int i) { return absl::StrCat("account-", i); }

// The raw value under `db_key` and the number of queued shreds ('q' keys),
// read from `dir` by RocksDB opened read-only (a store may hold it open).
struct RawView {
  std::string value;
  int queued = 0;
};
RawView ReadRaw(const std::string& dir, const std::string& db_key) {
  rocksdb::DB* raw = nullptr;
  RawView view;
  if (!rocksdb::DB::OpenForReadOnly(rocksdb::Options(), dir, &raw).ok()) {
    ADD_FAILURE() << "cannot open " << dir << " read-only";
    return view;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  db->Get(rocksdb::ReadOptions(), db_key, &view.value).PermitUncheckedError();
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}));
  for (it->Seek("q"); it->Valid() && it->key()[0] == 'q'; it->Next()) {
    ++view.queued;
  }
  return view;
}

v1::UserRecord NeedingShred(uint32_t attempts_used) {
  v1::UserRecord r = SampleRecord(attempts_used);
  r.set_shred_pending(true);
  return r;
}

TEST(RocksDbRecordStoreTest, CreateReadUpdate) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Get("alice").status().code(), absl::StatusCode::kNotFound);

  auto v1 =
      store->CompareAndSwap("alice", RecordStore::kNoRecord, SampleRecord(0));
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ(*v1, 1u);
  auto got = store->Get("alice");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->version(), 1u);
  EXPECT_EQ(got->schema_version(), kSchemaVersion);
  EXPECT_EQ(got->opaque_record(), SampleRecord().opaque_record());

  v1::UserRecord next = *got;
  next.set_attempts_used(1);
  auto v2 = store->CompareAndSwap("alice", 1, next);
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(*v2, 2u);
  EXPECT_EQ(store->Get("alice")->attempts_used(), 1u);

  // Stale version, existing record, missing record.
  EXPECT_EQ(store->CompareAndSwap("alice", 1, next).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(store->CompareAndSwap("alice", RecordStore::kNoRecord, next)
                .status()
                .code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(store->CompareAndSwap("bob", 1, next).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(store->Get("bob").status().code(), absl::StatusCode::kNotFound);
}

TEST(RocksDbRecordStoreTest, SurvivesReopen) {
  TempDir dir;
  {
    auto store = OpenOrDie(dir.path());
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(store->CompareAndSwap(Id(i), 0, SampleRecord(i)).ok());
    }
  }
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 20; ++i) {
    auto r = store->Get(Id(i));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->attempts_used(), static_cast<uint32_t>(i));
  }
}

TEST(RocksDbRecordStoreTest, DeleteKeepsVersionsMonotonic) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_EQ(*store->CompareAndSwap("alice", 0, SampleRecord()), 1u);
  ASSERT_EQ(*store->CompareAndSwap("alice", 1, SampleRecord()), 2u);
  EXPECT_EQ(store->Delete("alice", 1).code(), absl::StatusCode::kAborted);
  ASSERT_TRUE(store->Delete("alice", 2).ok());
  EXPECT_EQ(store->Get("alice").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->Delete("alice", 2).code(), absl::StatusCode::kAborted);
  // Re-created above the old high-water mark: an old sealed copy can never
  // pass for the new record.
  EXPECT_EQ(*store->CompareAndSwap("alice", 0, SampleRecord()), 3u);
  EXPECT_EQ(store->Get("alice")->version(), 3u);
}

TEST(RocksDbRecordStoreTest, ExactlyOneConcurrentCasWins) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  testing::CheckExactlyOneConcurrentCasWins(*store, *store, "alice");
}

TEST(RocksDbRecordStoreTest, ConcurrentIncrementsAreNeverLost) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  testing::CheckConcurrentIncrementsAreNeverLost(*store, {Id(0), Id(1), Id(2)});
}

TEST(RocksDbRecordStoreTest, CountAndForEach) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(store->CompareAndSwap(Id(i), 0, SampleRecord(i)).ok());
  }
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store->Delete(Id(i), 1).ok());
  EXPECT_EQ(*store->Count(), 25u);

  int seen = 0;
  uint64_t attempts = 0;
  ASSERT_TRUE(store
                  ->ForEach([&](const AccountKey&,
                                const absl::StatusOr<v1::UserRecord>& r) {
                    EXPECT_TRUE(r.ok()) << r.status();
                    if (r.ok()) attempts += r->attempts_used();
                    ++seen;
                    return true;
                  })
                  .ok());
  EXPECT_EQ(seen, 25);
  EXPECT_EQ(attempts, 25u * (5 + 29) / 2);

  int visited = 0;
  ASSERT_TRUE(store
                  ->ForEach([&](const AccountKey&,
                                const absl::StatusOr<v1::UserRecord>&) {
                    return ++visited < 3;
                  })
                  .ok());
  EXPECT_EQ(visited, 3);
}

// Crypto-shredding: after Delete and Shred, no file of the store still holds
// the record (its key appears nowhere, so neither does its sealed value).
TEST(RocksDbRecordStoreTest, DeleteLeavesNoCopyOnDisk) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(store->CompareAndSwap(Id(i), 0, SampleRecord(i)).ok());
  }
  const std::string needle = RecordDbKey(DeriveAccountKey(Id(1)));
  auto occurrences = [&] { return FilesContaining(dir.path(), needle); };
  ASSERT_GT(occurrences(), 0);  // the WAL holds it before the delete
  ASSERT_TRUE(store->Delete(Id(1), 1).ok());
  ASSERT_TRUE(store->Shred(Id(1)).ok());
  EXPECT_EQ(occurrences(), 0);
  EXPECT_TRUE(store->Get(Id(0)).ok());
  EXPECT_TRUE(store->Get(Id(2)).ok());
}

// docs/storage.md, "a Shred cut short by a crash": the writes after which
// the vault shreds (shred_pending, LOCKED) queue the account in the same
// batch; Shred dequeues it; other writes queue nothing.
TEST(RocksDbRecordStoreTest, WritesNeedingAShredQueueItUntilTheShred) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  const std::string key = RecordDbKey(DeriveAccountKey(Id(1)));
  ASSERT_TRUE(store->CompareAndSwap(Id(1), 0, SampleRecord(0)).ok());
  EXPECT_EQ(ReadRaw(dir.path(), key).queued, 0);
  ASSERT_TRUE(store->CompareAndSwap(Id(1), 1, NeedingShred(0)).ok());
  EXPECT_EQ(ReadRaw(dir.path(), key).queued, 1);
  ASSERT_TRUE(store->Shred(Id(1)).ok());
  EXPECT_EQ(ReadRaw(dir.path(), key).queued, 0);
  v1::UserRecord locked = SampleRecord(10);
  locked.set_state(v1::RECORD_STATE_LOCKED);
  ASSERT_TRUE(store->CompareAndSwap(Id(1), 2, locked).ok());
  EXPECT_EQ(ReadRaw(dir.path(), key).queued, 1);
  EXPECT_EQ(store->Stats()->queued_shreds, 1u);  // what /metrics shows
  ASSERT_TRUE(store->Shred(Id(1)).ok());
  EXPECT_EQ(ReadRaw(dir.path(), key).queued, 0);
  EXPECT_EQ(store->Stats()->queued_shreds, 0u);
}

// The store closed between a write needing a shred and its Shred (what a
// crash leaves): the replaced version's bytes are still on disk, and the
// next open shreds them before it returns. Fails without Open's sweep.
TEST(RocksDbRecordStoreTest, OpenFinishesAShredLeftQueued) {
  TempDir dir;
  const std::string key = RecordDbKey(DeriveAccountKey(Id(1)));
  {
    auto store = OpenOrDie(dir.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CompareAndSwap(Id(1), 0, SampleRecord(0)).ok());
    ASSERT_TRUE(store->CompareAndSwap(Id(2), 0, SampleRecord(0)).ok());
  }
  const std::string old_value = ReadRaw(dir.path(), key).value;
  ASSERT_GT(old_value.size(), 512u);
  const std::string needle = old_value.substr(old_value.size() / 2, 48);
  {
    auto store = OpenOrDie(dir.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CompareAndSwap(Id(1), 1, NeedingShred(1)).ok());
  }  // no Shred
  ASSERT_GT(FilesContaining(dir.path(), needle), 0);
  ASSERT_EQ(ReadRaw(dir.path(), key).queued, 1);
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(FilesContaining(dir.path(), needle), 0);
  EXPECT_EQ(ReadRaw(dir.path(), key).queued, 0);
  EXPECT_EQ(store->Get(Id(1))->attempts_used(), 1u);
  EXPECT_TRUE(store->Get(Id(2)).ok());
}

// Review finding D1: a Shred that failed (here: never called) leaves its
// account queued; the background pass shreds it while the store stays open.
// Fails without the pass (bounded wait).
TEST(RocksDbRecordStoreTest, RetryPassFinishesAQueuedShredWhileOpen) {
  TempDir dir;
  auto opened = RocksDbRecordStore::Open(
      {.data_dir = dir.path(), .shred_retry_ms = 20}, TestSealer());
  ASSERT_TRUE(opened.ok()) << opened.status();
  RocksDbRecordStore& store = **opened;
  const std::string key = RecordDbKey(DeriveAccountKey(Id(1)));
  ASSERT_TRUE(store.CompareAndSwap(Id(1), 0, SampleRecord(0)).ok());
  const std::string old_value = ReadRaw(dir.path(), key).value;
  ASSERT_GT(old_value.size(), 512u);
  const std::string needle = old_value.substr(old_value.size() / 2, 48);
  ASSERT_GT(FilesContaining(dir.path(), needle), 0);  // in the WAL
  v1::UserRecord locked = SampleRecord(10);
  locked.set_state(v1::RECORD_STATE_LOCKED);
  ASSERT_TRUE(store.CompareAndSwap(Id(1), 1, locked).ok());  // no Shred
  // Files only while the pass runs: a read-only open could race its
  // compactions (an input deleted between MANIFEST and open).
  for (int i = 0; i < 600; ++i) {  // at most 60 s
    if (FilesContaining(dir.path(), needle) == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(FilesContaining(dir.path(), needle), 0);
  EXPECT_EQ(store.Get(Id(1))->state(), v1::RECORD_STATE_LOCKED);
  opened->reset();  // no pass left to race the read below
  EXPECT_EQ(ReadRaw(dir.path(), key).queued, 0);
}

// Review finding D7: while the free space above the reserve is less than
// what a Shred would write, the Shred is refused cleanly (kResourceExhausted,
// still queued) instead of meeting ENOSPC inside RocksDB; writes go on, and
// the Shred runs once there is room.
TEST(RocksDbRecordStoreTest, ShredWithoutRoomIsRefusedAndWritesGoOn) {
  TempDir base;
  auto mnt = TmpfsMount::Create(base.Sub("mnt"), 32 << 20);
  if (mnt.status().code() == absl::StatusCode::kPermissionDenied) {
    GTEST_SKIP() << "needs CAP_SYS_ADMIN to mount a small tmpfs: "
                 << mnt.status();
  }
  ASSERT_TRUE(mnt.ok()) << mnt.status();
  const std::string data = (*mnt)->dir() + "/data";
  auto opened = RocksDbRecordStore::Open(
      {.data_dir = data, .min_free_bytes = 1 << 20}, TestSealer());
  ASSERT_TRUE(opened.ok()) << opened.status();
  RocksDbRecordStore& store = **opened;
  std::vector<std::pair<std::string, v1::UserRecord>> records;
  for (int i = 0; i < 3000; ++i) records.emplace_back(Id(i), SampleRecord(0));
  ASSERT_TRUE(store.BulkCreate(records).ok());  // ~3.3 MiB of tables
  struct statvfs fs;
  ASSERT_EQ(::statvfs(data.c_str(), &fs), 0);
  const uint64_t free_bytes = uint64_t{fs.f_bavail} * fs.f_frsize;
  const std::string ballast = (*mnt)->dir() + "/ballast";
  {  // leaves 2.5 MiB: the reserve and room for writes, not for the Shred
    std::ofstream out(ballast, std::ios::binary);
    out << std::string(free_bytes - (5 << 19), 'b');
    ASSERT_TRUE(out.good());
  }
  v1::UserRecord locked = SampleRecord(10);
  locked.set_state(v1::RECORD_STATE_LOCKED);
  ASSERT_TRUE(store.CompareAndSwap(Id(1), 1, locked).ok());
  const absl::Status shred = store.Shred(Id(1));
  EXPECT_EQ(shred.code(), absl::StatusCode::kResourceExhausted) << shred;
  EXPECT_NE(shred.message().find("for a shred"), std::string::npos) << shred;
  EXPECT_TRUE(store.CompareAndSwap(Id(2), 1, SampleRecord(1)).ok());
  const std::string key = RecordDbKey(DeriveAccountKey(Id(1)));
  EXPECT_EQ(ReadRaw(data, key).queued, 1);
  std::filesystem::remove(ballast);
  EXPECT_TRUE(store.Shred(Id(1)).ok());
  EXPECT_EQ(ReadRaw(data, key).queued, 0);
}

TEST(RocksDbRecordStoreTest, SyncBarrierChangesNoRecord) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CompareAndSwap(Id(1), 0, SampleRecord(1)).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store->SyncBarrier("a").ok());
  EXPECT_EQ(*store->Count(), 1u);
  int seen = 0;
  ASSERT_TRUE(store
                  ->ForEach([&](const AccountKey&,
                                const absl::StatusOr<v1::UserRecord>& r) {
                    EXPECT_TRUE(r.ok()) << r.status();
                    ++seen;
                    return true;
                  })
                  .ok());
  EXPECT_EQ(seen, 1);
  auto got = store->Get(Id(1));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->version(), 1u);
}

TEST(RocksDbRecordStoreTest, SecondStoreOnSameDirectoryIsRefused) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  auto second =
      RocksDbRecordStore::Open({.data_dir = dir.path()}, TestSealer());
  ASSERT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition)
      << second.status();
  EXPECT_NE(second.status().message().find("in use"), std::string::npos)
      << second.status();
}

TEST(RocksDbRecordStoreTest, BulkCreateThenReadAndUpdate) {
  TempDir dir;
  auto store = OpenOrDie(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CompareAndSwap(Id(7), 0, SampleRecord()).ok());
  ASSERT_TRUE(store->Delete(Id(7), 1).ok());
  std::vector<std::pair<std::string, v1::UserRecord>> batch;
  for (int i = 0; i < 5000; ++i)
    batch.emplace_back(Id(i), SampleRecord(i % 10));
  ASSERT_TRUE(store->BulkCreate(batch).ok());
  EXPECT_EQ(*store->Count(), 5000u);
  EXPECT_EQ(store->Get(Id(7))->version(), 2u);  // above the tombstone
  EXPECT_EQ(store->Get(Id(4321))->attempts_used(), 1u);
  EXPECT_EQ(store->BulkCreate(std::span(batch).first(1)).code(),
            absl::StatusCode::kAborted);
  EXPECT_TRUE(store->CompareAndSwap(Id(1), 1, SampleRecord(5)).ok());
  auto stats = store->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_GT(stats->sst_bytes, 5000u * kPaddedRecordSize);
}

// Fills a small tmpfs until a synced write fails, then checks the error is
// clear, nothing acknowledged was lost, reads keep working, and writes
// resume once space is freed.
TEST(RocksDbRecordStoreTest, FullDiskFailsClearlyAndRecovers) {
  TempDir base;
  auto mnt = TmpfsMount::Create(base.Sub("mnt"), 16 << 20);
  if (mnt.status().code() == absl::StatusCode::kPermissionDenied) {
    GTEST_SKIP() << "needs CAP_SYS_ADMIN to mount a small tmpfs: "
                 << mnt.status();
  }
  ASSERT_TRUE(mnt.ok()) << mnt.status();
  const std::string ballast = (*mnt)->dir() + "/ballast";
  {
    std::ofstream out(ballast, std::ios::binary);
    std::string block(1 << 20, 'b');
    for (int i = 0; i < 4; ++i) out << block;
    ASSERT_TRUE(out.good());
  }
  const std::string data = (*mnt)->dir() + "/data";
  std::vector<int> acked;
  absl::Status failure;
  {
    auto store = RocksDbRecordStore::Open({.data_dir = data,
                                           .write_buffer_bytes = 1 << 20,
                                           .min_free_bytes = 6 << 20},
                                          TestSealer());
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 20000 && failure.ok(); ++i) {
      auto r = (*store)->CompareAndSwap(Id(i), 0, SampleRecord(i % 7));
      if (r.ok()) {
        acked.push_back(i);
      } else {
        failure = r.status();
      }
    }
    ASSERT_EQ(failure.code(), absl::StatusCode::kResourceExhausted) << failure;
    EXPECT_NE(failure.message().find("data directory " + data + " is full"),
              std::string::npos)
        << failure;
    ASSERT_GT(acked.size(), 500u);
    // Still full: still the same clear error, and reads keep working.
    EXPECT_EQ(
        (*store)->CompareAndSwap("late", 0, SampleRecord()).status().code(),
        absl::StatusCode::kResourceExhausted);
    for (int i : acked) {
      auto r = (*store)->Get(Id(i));
      ASSERT_TRUE(r.ok()) << i << ": " << r.status();
      ASSERT_EQ(r->attempts_used(), static_cast<uint32_t>(i % 7));
    }
    ASSERT_TRUE(std::filesystem::remove(ballast));
    // RocksDB notices the free space on its own schedule (seconds).
    absl::StatusOr<uint64_t> after;
    for (int i = 0; i < 150; ++i) {
      after = (*store)->CompareAndSwap("late", 0, SampleRecord(3));
      if (after.status().code() != absl::StatusCode::kResourceExhausted) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(after.ok()) << after.status();
  }
  auto store = OpenOrDie(data);
  ASSERT_NE(store, nullptr);
  for (int i : acked) {
    auto r = store->Get(Id(i));
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
    ASSERT_EQ(r->attempts_used(), static_cast<uint32_t>(i % 7));
  }
  EXPECT_EQ(store->Get("late")->attempts_used(), 3u);
}

// A volume that goes read-only can't be remounted so while RocksDB holds
// files open for writing (EBUSY), so the store is reopened on it: a
// read-write open fails clearly, a read-only open serves reads and refuses
// writes, and nothing is lost once it is writable again.
TEST(RocksDbRecordStoreTest, ReadOnlyVolumeServesReadsAndRefusesWrites) {
  TempDir base;
  auto mnt = TmpfsMount::Create(base.Sub("mnt"), 32 << 20);
  if (mnt.status().code() == absl::StatusCode::kPermissionDenied) {
    GTEST_SKIP() << "needs CAP_SYS_ADMIN to mount a tmpfs: " << mnt.status();
  }
  ASSERT_TRUE(mnt.ok()) << mnt.status();
  const std::string data = (*mnt)->dir() + "/data";
  {
    auto store = OpenOrDie(data);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(store->CompareAndSwap(Id(i), 0, SampleRecord(i)).ok());
    }
  }
  ASSERT_TRUE((*mnt)->Remount(/*read_only=*/true).ok());

  auto rw = RocksDbRecordStore::Open({.data_dir = data}, TestSealer());
  ASSERT_EQ(rw.status().code(), absl::StatusCode::kFailedPrecondition)
      << rw.status();
  EXPECT_NE(rw.status().message().find("is read-only"), std::string::npos)
      << rw.status();
  {
    auto store = OpenOrDie(data, /*read_only=*/true);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 20; ++i) {
      auto r = store->Get(Id(i));
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->attempts_used(), static_cast<uint32_t>(i));
    }
    EXPECT_EQ(*store->Count(), 20u);
    EXPECT_EQ(store->CompareAndSwap(Id(0), 1, SampleRecord()).status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
  ASSERT_TRUE((*mnt)->Remount(/*read_only=*/false).ok());
  auto store = OpenOrDie(data);
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(store->Get(Id(i))->attempts_used(), static_cast<uint32_t>(i));
  }
  EXPECT_TRUE(store->CompareAndSwap(Id(0), 1, SampleRecord(9)).ok());
}

}  // namespace
}  // namespace bkv::storage
