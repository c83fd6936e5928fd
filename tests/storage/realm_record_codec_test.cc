// The realm record (record format 2, docs/threshold.md "The realm record"):
// G and the registration version are bound into the seal's associated data,
// so a storage edit of the limit makes the record unopenable (fail closed).
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <string>

#include "storage/record_codec.h"
#include "storage/rocksdb_record_store.h"
#include "tests/storage/test_util.h"

namespace bkv::storage {
namespace {

using ::bkv::storage::testing::SampleRecord;
using ::bkv::storage::testing::TempDir;
using ::bkv::storage::testing::TestSealer;

constexpr size_t kGOffset = 9;         // format u8, version u64
constexpr size_t kVersionOffset = 13;  // then G u32

v1::RealmShare Share(char fill, uint32_t g, size_t descriptor_size) {
  v1::RealmShare s;
  s.set_registration_version(std::string(16, fill));
  s.set_per_realm_limit(g);
  s.set_descriptor_bytes(std::string(descriptor_size, '\x44'));
  s.set_oprf_key_share(std::string(32, '\x11'));
  s.set_secret_share(std::string(32, '\x22'));
  s.set_wrapped_key(std::string(60, '\x33'));
  s.set_epoch(7);
  s.set_opaque_record(std::string(192, '\x55'));
  s.set_prepared_unix_ms(1);
  return s;
}

// The largest realm record: two descriptors of 16 realms with 64-byte ids.
v1::UserRecord RealmRecord(uint32_t g = 5) {
  constexpr size_t kLargestDescriptor =
      27 + 16 + 8 + 32 + 2 + 8 + 12 + 64 + 16 * (1 + 64 + 96) + 64;
  v1::UserRecord r = SampleRecord(2);
  r.set_schema_version(kSchemaVersion);
  r.set_version(42);
  r.set_attempt_limit(g);
  *r.mutable_realm() = Share('\x01', g, kLargestDescriptor);
  *r.mutable_pending_realm() = Share('\x02', g, kLargestDescriptor);
  r.set_realm_epoch(8);
  return r;
}

TEST(RealmRecordCodecTest, RoundTripInFormatTwo) {
  auto sealer = TestSealer();
  const AccountKey key = DeriveAccountKey("alice");
  const v1::UserRecord r = RealmRecord();
  auto value = SealRecord(*sealer, key, r);
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(static_cast<uint8_t>((*value)[0]), kFormatRealm);
  EXPECT_EQ(value->size(), kRealmFrameHeaderSize + kPaddedRealmRecordSize + 28);
  auto back = OpenRecord(*sealer, key, AsSpan(*value));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->SerializeAsString(), r.SerializeAsString());
  EXPECT_EQ(*PeekRecordVersion(AsSpan(*value)), 42u);
}

TEST(RealmRecordCodecTest, SealedSizeDoesNotDependOnContents) {
  auto sealer = TestSealer();
  const AccountKey key = DeriveAccountKey("alice");
  v1::UserRecord tombstone;
  tombstone.set_version(3);
  tombstone.set_realm_epoch(1);
  tombstone.set_realm_tombstone(true);
  auto a = SealRecord(*sealer, key, tombstone);
  auto b = SealRecord(*sealer, key, RealmRecord());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), b->size());
}

// A storage edit of G, in the framing: the associated data no longer
// matches, the record does not open, nothing can be evaluated or counted.
TEST(RealmRecordCodecTest, EditOfTheLimitIsUnopenable) {
  auto sealer = TestSealer();
  const AccountKey key = DeriveAccountKey("alice");
  auto value = SealRecord(*sealer, key, RealmRecord(5));
  ASSERT_TRUE(value.ok());
  for (size_t i = kGOffset; i < kGOffset + 4; ++i) {
    std::string edited = *value;
    edited[i] = static_cast<char>(edited[i] ^ 0x7f);  // e.g. G 5 -> 122
    auto opened = OpenRecord(*sealer, key, AsSpan(edited));
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << i;
    EXPECT_NE(opened.status().message().find(AccountKeyHex(key)),
              std::string::npos);
  }
  std::string edited = *value;
  edited[kVersionOffset] ^= 1;  // another registration version
  EXPECT_EQ(OpenRecord(*sealer, key, AsSpan(edited)).status().code(),
            absl::StatusCode::kDataLoss);
}

// The realm reads its stored descriptor without re-checking the dealing
// (docs/threshold.md, "Recovery reads the sealed descriptor"): that rests on
// every byte after the clear framing being sealed, descriptor included.
TEST(RealmRecordCodecTest, EditOfAnySealedByteIsUnopenable) {
  auto sealer = TestSealer();
  const AccountKey key = DeriveAccountKey("alice");
  auto value = SealRecord(*sealer, key, RealmRecord());
  ASSERT_TRUE(value.ok());
  for (size_t i = kRealmFrameHeaderSize; i < value->size(); ++i) {
    std::string edited = *value;
    edited[i] = static_cast<char>(edited[i] ^ 0x01);
    ASSERT_EQ(OpenRecord(*sealer, key, AsSpan(edited)).status().code(),
              absl::StatusCode::kDataLoss)
        << i;
  }
}

// Rewriting a realm record as format 1 (dropping G from the framing) or
// opening it as another account fails too.
TEST(RealmRecordCodecTest, DowngradeAndMoveAreUnopenable) {
  auto sealer = TestSealer();
  const AccountKey key = DeriveAccountKey("alice");
  auto value = SealRecord(*sealer, key, RealmRecord());
  ASSERT_TRUE(value.ok());
  std::string v1 = value->substr(0, kRecordFrameHeaderSize) +
                   value->substr(kRealmFrameHeaderSize);
  v1[0] = static_cast<char>(kFormatV1);
  EXPECT_EQ(OpenRecord(*sealer, key, AsSpan(v1)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(OpenRecord(*sealer, DeriveAccountKey("bob"), AsSpan(*value))
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
  std::string truncated = value->substr(0, kRealmFrameHeaderSize - 1);
  EXPECT_EQ(OpenRecord(*sealer, key, AsSpan(truncated)).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(RealmRecordCodecTest, MalformedRegistrationVersionIsNotSealed) {
  auto sealer = TestSealer();
  v1::UserRecord r = RealmRecord();
  r.mutable_realm()->set_registration_version("short");
  EXPECT_EQ(SealRecord(*sealer, DeriveAccountKey("a"), r).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The same edit through a real RocksDB store: Get reports tampering.
TEST(RealmRecordCodecTest, EditOfTheLimitOnDiskIsReportedByTheStore) {
  TempDir dir;
  const std::string id = "alice";
  {
    auto store =
        RocksDbRecordStore::Open({.data_dir = dir.path()}, TestSealer());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)
                    ->CompareAndSwap(id, RecordStore::kNoRecord, RealmRecord(5))
                    .ok());
  }
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir.path(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    const std::string k = RecordDbKey(DeriveAccountKey(id));
    std::string v;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), k, &v).ok());
    v[kGOffset + 3] = 100;  // G := 100
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), k, v).ok());
  }
  auto store = RocksDbRecordStore::Open({.data_dir = dir.path()}, TestSealer());
  ASSERT_TRUE(store.ok()) << store.status();
  auto got = (*store)->Get(id);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << got.status();
}

}  // namespace
}  // namespace bkv::storage
