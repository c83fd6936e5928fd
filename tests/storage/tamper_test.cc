// Records changed on disk behind the store's back: each must come back as
// kDataLoss naming the account key (not the id), never as "no record" and
// never silently repaired.
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <optional>

#include "storage/rocksdb_record_store.h"
#include "tests/storage/test_util.h"

namespace bkv::storage {
namespace {

using ::bkv::storage::testing::SampleRecord;
using ::bkv::storage::testing::TempDir;
using ::bkv::storage::testing::TestSealer;

// Direct access to the database files, as an attacker with the disk has.
class RawDb {
 public:
  explicit RawDb(const std::string& dir) {
    rocksdb::DB* db = nullptr;
    rocksdb::Options options;
    EXPECT_TRUE(rocksdb::DB::Open(options, dir, &db).ok());
    db_.reset(db);
  }
  std::optional<std::string> Get(const std::string& key) {
    std::string v;
    if (!db_->Get(rocksdb::ReadOptions(), key, &v).ok()) return std::nullopt;
    return v;
  }
  void Put(const std::string& key, const std::string& value) {
    EXPECT_TRUE(db_->Put(rocksdb::WriteOptions(), key, value).ok());
  }
  void Delete(const std::string& key) {
    EXPECT_TRUE(db_->Delete(rocksdb::WriteOptions(), key).ok());
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

class StorageTamperTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    store_.reset();
    auto s = RocksDbRecordStore::Open({.data_dir = dir_.path()}, TestSealer());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }

  // Runs `edit` on the raw database while the store is closed.
  template <typename F>
  void Tamper(F edit) {
    store_.reset();
    {
      RawDb raw(dir_.path());
      edit(raw);
    }
    Reopen();
  }

  uint64_t Create(const std::string& id, uint32_t attempts = 0) {
    auto v = store_->CompareAndSwap(id, RecordStore::kNoRecord,
                                    SampleRecord(attempts));
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : 0;
  }

  // kDataLoss whose message names the account key and not the account id.
  void ExpectTampered(const absl::Status& s, const std::string& id) {
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_NE(s.message().find(AccountKeyHex(DeriveAccountKey(id))),
              std::string::npos)
        << s;
    EXPECT_EQ(s.message().find(id), std::string::npos) << s;
  }

  static std::string R(const std::string& id) {
    return RecordDbKey(DeriveAccountKey(id));
  }
  static std::string W(const std::string& id) {
    return WatermarkDbKey(DeriveAccountKey(id));
  }

  TempDir dir_;
  std::unique_ptr<RocksDbRecordStore> store_;
};

TEST_F(StorageTamperTest, BitFlipAnywhereIsDetected) {
  const std::string id = "user-alice@example.org";
  Create(id);
  std::optional<std::string> good;
  Tamper([&](RawDb& raw) { good = raw.Get(R(id)); });
  ASSERT_TRUE(good.has_value());
  // Framing, every version byte, nonce, ciphertext start/middle/end, tag.
  std::vector<size_t> positions = {0,
                                   1,
                                   2,
                                   3,
                                   4,
                                   5,
                                   6,
                                   7,
                                   8,
                                   9,
                                   15,
                                   21,
                                   22,
                                   500,
                                   good->size() - 17,
                                   good->size() - 1};
  for (size_t pos : positions) {
    for (uint8_t bit : {0x01, 0x80}) {
      std::string bad = *good;
      bad[pos] = static_cast<char>(bad[pos] ^ bit);
      Tamper([&](RawDb& raw) { raw.Put(R(id), bad); });
      ExpectTampered(store_->Get(id).status(), id);
    }
  }
  Tamper([&](RawDb& raw) { raw.Put(R(id), *good); });
  EXPECT_TRUE(store_->Get(id).ok());
}

TEST_F(StorageTamperTest, WatermarkBitFlipIsDetected) {
  const std::string id = "user-bob";
  Create(id);
  std::optional<std::string> wm;
  Tamper([&](RawDb& raw) { wm = raw.Get(W(id)); });
  ASSERT_TRUE(wm.has_value());
  for (size_t pos = 0; pos < wm->size(); ++pos) {
    std::string bad = *wm;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x04);
    Tamper([&](RawDb& raw) { raw.Put(W(id), bad); });
    ExpectTampered(store_->Get(id).status(), id);
  }
}

TEST_F(StorageTamperTest, RecordsSwappedBetweenAccountsAreDetected) {
  const std::string a = "user-a", b = "user-b";
  Create(a, 9);  // nearly locked
  Create(b, 0);
  Tamper([&](RawDb& raw) {
    auto ra = raw.Get(R(a)), rb = raw.Get(R(b));
    raw.Put(R(a), *rb);
    raw.Put(R(b), *ra);
  });
  ExpectTampered(store_->Get(a).status(), a);
  ExpectTampered(store_->Get(b).status(), b);
  // A record is still there, so registration can't start over. (Writers
  // check framing and watermark, not the seal: they hold a version only
  // from a Get, which unseals.)
  EXPECT_EQ(store_->CompareAndSwap(a, RecordStore::kNoRecord, SampleRecord())
                .status()
                .code(),
            absl::StatusCode::kAborted);
}

TEST_F(StorageTamperTest, OlderVersionWrittenBackIsDetected) {
  const std::string id = "user-carol";
  Create(id, 0);
  std::optional<std::string> v1;
  Tamper([&](RawDb& raw) { v1 = raw.Get(R(id)); });
  for (uint32_t used = 1; used <= 3; ++used) {
    auto r = store_->Get(id);
    ASSERT_TRUE(r.ok());
    r->set_attempts_used(used);
    ASSERT_TRUE(store_->CompareAndSwap(id, r->version(), *r).ok());
  }
  // The attempt counter rolled back to 0: version 1 over version 4.
  Tamper([&](RawDb& raw) { raw.Put(R(id), *v1); });
  auto got = store_->Get(id);
  ExpectTampered(got.status(), id);
  EXPECT_NE(got.status().message().find("older than"), std::string::npos);
  // A writer holding either version can't paper over it.
  ExpectTampered(store_->CompareAndSwap(id, 1, SampleRecord()).status(), id);
  ExpectTampered(store_->CompareAndSwap(id, 4, SampleRecord()).status(), id);
  ExpectTampered(store_->Delete(id, 1), id);
}

TEST_F(StorageTamperTest, RemovedRecordIsNotReportedAsAbsent) {
  const std::string id = "user-dave";
  Create(id, 7);
  Tamper([&](RawDb& raw) { raw.Delete(R(id)); });
  ExpectTampered(store_->Get(id).status(), id);
  // Re-registration over the hole is refused.
  ExpectTampered(
      store_->CompareAndSwap(id, RecordStore::kNoRecord, SampleRecord())
          .status(),
      id);
}

TEST_F(StorageTamperTest, RemovedWatermarkIsDetected) {
  const std::string id = "user-erin";
  Create(id);
  Tamper([&](RawDb& raw) { raw.Delete(W(id)); });
  ExpectTampered(store_->Get(id).status(), id);
}

TEST_F(StorageTamperTest, DeletedRecordWrittenBackIsDetected) {
  const std::string id = "user-frank";
  Create(id);
  std::optional<std::string> old;
  Tamper([&](RawDb& raw) { old = raw.Get(R(id)); });
  ASSERT_TRUE(store_->Delete(id, 1).ok());
  Tamper([&](RawDb& raw) { raw.Put(R(id), *old); });
  ExpectTampered(store_->Get(id).status(), id);
}

TEST_F(StorageTamperTest, CopyFromBeforeDeleteOverRecreatedRecord) {
  // Re-creation continues above the tombstone, so a copy from before the
  // delete is older than the high-water mark.
  const std::string id = "user-grace";
  Create(id);
  std::optional<std::string> old_r;
  Tamper([&](RawDb& raw) { old_r = raw.Get(R(id)); });
  ASSERT_TRUE(store_->Delete(id, 1).ok());
  ASSERT_EQ(Create(id), 2u);
  Tamper([&](RawDb& raw) { raw.Put(R(id), *old_r); });
  ExpectTampered(store_->Get(id).status(), id);
}

TEST_F(StorageTamperTest, RecordSealedUnderAnotherKeyIsDetected) {
  const std::string id = "user-heidi";
  Create(id);
  store_.reset();
  auto other = RocksDbRecordStore::Open({.data_dir = dir_.path()},
                                        TestSealer(/*fill=*/0x43));
  ASSERT_TRUE(other.ok());
  ExpectTampered((*other)->Get(id).status(), id);
}

TEST_F(StorageTamperTest, ForEachReportsTamperedRecords) {
  Create("user-1");
  Create("user-2");
  Create("user-3");
  Tamper([&](RawDb& raw) { raw.Delete(R("user-2")); });
  int ok = 0, lost = 0;
  ASSERT_TRUE(store_
                  ->ForEach([&](const AccountKey& key,
                                const absl::StatusOr<v1::UserRecord>& r) {
                    if (r.ok()) ++ok;
                    if (r.status().code() == absl::StatusCode::kDataLoss) {
                      ++lost;
                      EXPECT_EQ(key, DeriveAccountKey("user-2"));
                    }
                    return true;
                  })
                  .ok());
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(lost, 1);
}

}  // namespace
}  // namespace bkv::storage
