#include "storage/record_codec.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/storage/test_util.h"

namespace bkv::storage {
namespace {

using ::bkv::storage::testing::SampleRecord;
using ::bkv::storage::testing::TestSealer;

std::vector<uint8_t> Bytes(const std::string& s) {
  return {s.begin(), s.end()};
}

TEST(RecordCodecTest, PadRoundTrip) {
  v1::UserRecord record = SampleRecord(3);
  record.set_schema_version(kSchemaVersion);
  auto padded = PadRecord(record);
  ASSERT_TRUE(padded.ok()) << padded.status();
  EXPECT_EQ(padded->size(), kPaddedRecordSize);
  auto back = UnpadRecord(*padded);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->SerializeAsString(), record.SerializeAsString());
}

TEST(RecordCodecTest, SealedSizeDoesNotDependOnContents) {
  auto sealer = TestSealer();
  const AccountKey key = DeriveAccountKey("alice");
  v1::UserRecord empty;
  empty.set_version(1);
  v1::UserRecord full = SampleRecord(9);
  full.set_version(1);
  full.set_pending_opaque_record(std::string(192, '\x33'));
  auto a = SealRecord(*sealer, key, empty);
  auto b = SealRecord(*sealer, key, full);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), b->size());
  EXPECT_EQ(a->size(), kRecordFrameHeaderSize + kPaddedRecordSize + 28);
}

// Every field at its largest production size, with as many open logins as
// the default attempt limit allows, must fit the fixed padding.
TEST(RecordCodecTest, LargestProductionRecordFits) {
  v1::UserRecord r = SampleRecord(10);
  const uint64_t kMax64 = ~uint64_t{0};
  r.set_schema_version(kSchemaVersion);
  r.set_state(v1::RECORD_STATE_LOCKED);
  r.set_sealed_backup_key(std::string(128, '\x22'));
  r.set_attempts_used(~0u);
  r.set_attempt_limit(~0u);
  r.set_version(kMax64);
  r.set_created_unix_ms(-1);
  r.set_updated_unix_ms(-1);
  r.set_pending_opaque_record(std::string(192, '\x33'));
  *r.mutable_pending_ksf() = r.ksf();
  r.mutable_pending_ksf()->set_memory_kib(~0u);
  r.set_registration_id(kMax64);
  r.set_pending_registration_id(kMax64);
  r.set_next_login_seq(kMax64);
  for (int i = 0; i < 10; ++i) {
    auto* login = r.add_open_logins();
    login->set_seq(kMax64);
    login->set_expires_unix_ms(-1);
  }
  RecordProperty("serialized_bytes", static_cast<int>(r.ByteSizeLong()));
  EXPECT_LE(r.ByteSizeLong(), kMaxRecordSize);
  EXPECT_TRUE(PadRecord(r).ok());
}

TEST(RecordCodecTest, RejectsRecordThatDoesNotFitThePadding) {
  v1::UserRecord record;
  record.set_opaque_record(std::string(kMaxRecordSize, 'x'));
  EXPECT_EQ(PadRecord(record).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RecordCodecTest, UnpadRejectsMalformedPlaintext) {
  std::vector<uint8_t> ok(kPaddedRecordSize, 0);
  EXPECT_TRUE(UnpadRecord(ok).ok());  // n = 0: the empty record.

  auto expect_bad = [](std::vector<uint8_t> p, const char* why) {
    EXPECT_EQ(UnpadRecord(p).status().code(), absl::StatusCode::kDataLoss)
        << why;
  };
  expect_bad(std::vector<uint8_t>(kPaddedRecordSize - 1, 0), "short");
  expect_bad(std::vector<uint8_t>(kPaddedRecordSize + 1, 0), "long");
  expect_bad({}, "empty");
  auto p = ok;
  p[2] = 0x03;
  p[3] = 0xfd;  // n = 1021 > kMaxRecordSize
  expect_bad(p, "length over the maximum");
  p = ok;
  p[0] = 0xff;
  expect_bad(p, "huge length");
  p = ok;
  p[kPaddedRecordSize - 1] = 1;
  expect_bad(p, "non-zero padding");
  p = ok;
  p[3] = 1;
  p[4] = 0xff;  // a truncated varint tag
  expect_bad(p, "unparseable proto");
}

TEST(RecordCodecTest, GarbageValuesNeverOpen) {
  auto sealer = TestSealer();
  const AccountKey key = DeriveAccountKey("alice");
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> value(rng() % 1200);
    for (auto& b : value) b = static_cast<uint8_t>(rng());
    if (!value.empty() && (i % 2) == 0) value[0] = kFormatV1;
    auto r = OpenRecord(*sealer, key, value);
    ASSERT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << i;
    EXPECT_NE(r.status().message().find(AccountKeyHex(key)), std::string::npos);
  }
}

TEST(RecordCodecTest, TruncationsAndExtensionsNeverOpen) {
  auto sealer = TestSealer();
  const AccountKey key = DeriveAccountKey("alice");
  v1::UserRecord record = SampleRecord();
  record.set_schema_version(kSchemaVersion);
  record.set_version(4);
  auto value = SealRecord(*sealer, key, record);
  ASSERT_TRUE(value.ok());
  auto bytes = Bytes(*value);
  ASSERT_TRUE(OpenRecord(*sealer, key, bytes).ok());
  for (size_t n = 0; n < bytes.size(); n += 7) {
    EXPECT_EQ(
        OpenRecord(*sealer, key, std::span(bytes).first(n)).status().code(),
        absl::StatusCode::kDataLoss)
        << n;
  }
  bytes.push_back(0);
  EXPECT_EQ(OpenRecord(*sealer, key, bytes).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(RecordCodecTest, WatermarkRoundTripAndGarbage) {
  for (auto state : {Watermark::State::kLive, Watermark::State::kDeleted}) {
    auto wm = ParseWatermark(AsSpan(EncodeWatermark({state, 0x0102030405})));
    ASSERT_TRUE(wm.ok());
    EXPECT_EQ(wm->state, state);
    EXPECT_EQ(wm->version, 0x0102030405u);
  }
  std::mt19937 rng(11);
  for (int i = 0; i < 500; ++i) {
    std::string v(rng() % 16, '\0');
    for (auto& c : v) c = static_cast<char>(rng());
    if (v.size() == kWatermarkSize && v[0] == 1 && (v[1] == 1 || v[1] == 2)) {
      continue;  // a well-formed watermark by chance
    }
    EXPECT_EQ(ParseWatermark(AsSpan(v)).status().code(),
              absl::StatusCode::kDataLoss);
  }
}

TEST(RecordCodecTest, AccountKeysAreDistinctAndHideIds) {
  const AccountKey a = DeriveAccountKey("alice");
  EXPECT_EQ(a, DeriveAccountKey("alice"));
  EXPECT_NE(a, DeriveAccountKey("alicf"));
  EXPECT_NE(a, DeriveAccountKey(""));
  EXPECT_EQ(AccountKeyHex(a).size(), 16u);
  EXPECT_EQ(RecordDbKey(a).size(), 33u);
  EXPECT_NE(RecordDbKey(a), WatermarkDbKey(a));
}

// A Sealer whose token is unreachable: says nothing about the record, so it
// must not be reported as tampering.
class UnavailableSealer final : public Sealer {
 public:
  absl::StatusOr<std::vector<uint8_t>> Seal(
      std::span<const uint8_t>, std::span<const uint8_t>) const override {
    return absl::UnavailableError("token not present");
  }
  absl::StatusOr<std::vector<uint8_t>> Open(
      std::span<const uint8_t>, std::span<const uint8_t>) const override {
    return absl::UnavailableError("token not present");
  }
};

TEST(RecordCodecTest, SealerOutageIsNotReportedAsDataLoss) {
  auto sealer = TestSealer();
  const AccountKey key = DeriveAccountKey("alice");
  v1::UserRecord record = SampleRecord();
  record.set_schema_version(kSchemaVersion);
  record.set_version(1);
  auto value = SealRecord(*sealer, key, record);
  ASSERT_TRUE(value.ok());
  UnavailableSealer down;
  EXPECT_EQ(OpenRecord(down, key, AsSpan(*value)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(SealRecord(down, key, record).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(RecordCodecTest, UnknownSchemaVersionIsRejected) {
  auto sealer = TestSealer();
  const AccountKey key = DeriveAccountKey("alice");
  v1::UserRecord record = SampleRecord();
  record.set_schema_version(kSchemaVersion + 1);
  record.set_version(1);
  auto value = SealRecord(*sealer, key, record);
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(OpenRecord(*sealer, key, AsSpan(*value)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace bkv::storage
