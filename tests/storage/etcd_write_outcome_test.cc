// The rule that settles a guarded etcd write whose guard failed, in
// particular after an ambiguous send (timeout after the request went out).
#include "storage/etcd_write_outcome.h"

#include <gtest/gtest.h>

#include "tests/storage/test_util.h"

namespace bkv::storage {
namespace {

using ::bkv::storage::testing::SampleRecord;
using ::bkv::storage::testing::TestSealer;

class SettleTest : public ::testing::Test {
 protected:
  // The account with a live record at `version`.
  RawAccount Live(uint64_t version) {
    v1::UserRecord r = SampleRecord();
    r.set_version(version);
    return {*SealRecord(*sealer_, key_, r),
            EncodeWatermark({Watermark::State::kLive, version})};
  }
  RawAccount Deleted(uint64_t version) {
    return {std::nullopt,
            EncodeWatermark({Watermark::State::kDeleted, version})};
  }
  const AccountKey key_ = DeriveAccountKey("settle");
  std::shared_ptr<const Sealer> sealer_ = TestSealer();
};

TEST_F(SettleTest, OurExactBytesAfterAnAmbiguousSendMeanCommitted) {
  // CAS 3 -> 4 sent, answer lost, re-sent: the guard now fails because the
  // first send committed.
  const RawAccount now = Live(4);
  const GuardedWrite ours{3, 4, now.record};
  EXPECT_TRUE(SettleFailedGuard(key_, ours, /*ambiguous=*/true, now).ok());
  // Without an ambiguous send the same bytes can't be ours: abort.
  EXPECT_EQ(SettleFailedGuard(key_, ours, false, now).code(),
            absl::StatusCode::kAborted);
}

TEST_F(SettleTest, AnotherWritersSameVersionMeansOursNeverCommitted) {
  // Version 4 live with other bytes (a fresh seal has a fresh nonce): only
  // one Txn guarded on version 3's revisions commits, and it wasn't ours.
  const RawAccount now = Live(4);
  const GuardedWrite ours{3, 4, Live(4).record};
  EXPECT_EQ(SettleFailedGuard(key_, ours, true, now).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(SettleFailedGuard(key_, ours, false, now).code(),
            absl::StatusCode::kAborted);
}

TEST_F(SettleTest, SupersededSinceIsUnknownAfterAnAmbiguousSend) {
  // Ours may have committed as 4 and been overwritten by 5, or deleted.
  const GuardedWrite ours{3, 4, Live(4).record};
  EXPECT_EQ(SettleFailedGuard(key_, ours, true, Live(5)).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(SettleFailedGuard(key_, ours, true, Deleted(4)).code(),
            absl::StatusCode::kUnavailable);
  // Without an ambiguous send it is a plain conflict.
  EXPECT_EQ(SettleFailedGuard(key_, ours, false, Live(5)).code(),
            absl::StatusCode::kAborted);
}

TEST_F(SettleTest, BelowOurVersionOursNeverCommitted) {
  // The guard failed on a change that did not reach our version (e.g. a
  // tamper-free delete of version 3 keeps the high-water mark at 3).
  const GuardedWrite ours{3, 4, Live(4).record};
  EXPECT_EQ(SettleFailedGuard(key_, ours, true, Deleted(3)).code(),
            absl::StatusCode::kAborted);
}

TEST_F(SettleTest, DeleteSettledByItsTombstone) {
  const GuardedWrite del{5, 5, std::nullopt};
  EXPECT_TRUE(SettleFailedGuard(key_, del, true, Deleted(5)).ok());
  EXPECT_EQ(SettleFailedGuard(key_, del, false, Deleted(5)).code(),
            absl::StatusCode::kAborted);
  // Re-created above it: our delete may or may not be what happened first.
  EXPECT_EQ(SettleFailedGuard(key_, del, true, Live(6)).code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(SettleTest, TamperedStateIsDataLossWhateverTheSend) {
  RawAccount now = Live(4);
  now.watermark = EncodeWatermark({Watermark::State::kLive, 5});  // rollback
  const GuardedWrite ours{3, 4, Live(4).record};
  EXPECT_EQ(SettleFailedGuard(key_, ours, true, now).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(SettleFailedGuard(key_, ours, false, now).code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace bkv::storage
