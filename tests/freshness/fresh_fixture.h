// The freshness decorator's test fixture: a real RocksDB store and a real
// SoftHSM token, with faults injected into the head table and the store.
#ifndef BKV_TESTS_FRESHNESS_FRESH_FIXTURE_H_
#define BKV_TESTS_FRESHNESS_FRESH_FIXTURE_H_

#include <gtest/gtest.h>

#include <functional>
#include <memory>

#include "bkv/vault/v1/error_detail.h"
#include "bkv/vault/v1/vault.pb.h"
#include "freshness/fresh_record_store.h"
#include "storage/rocksdb_record_store.h"
#include "tests/hsm/test_token.h"
#include "tests/storage/test_util.h"

namespace bkv::freshness {

using storage::v1::UserRecord;
using vault::v1::ErrorDetail;

// The token's head store, failing its next `fail` writes on demand.
class FaultyHeads final : public HeadStore {
 public:
  explicit FaultyHeads(HeadStore& real) : real_(real) {}
  absl::StatusOr<std::optional<HeadTable>> Read() override {
    return real_.Read();
  }
  absl::Status Write(const HeadTable& t) override {
    if (fail > 0) {
      --fail;
      return absl::UnavailableError("injected: token busy");
    }
    return real_.Write(t);
  }
  int fail = 0;

 private:
  HeadStore& real_;
};

// The record store as a misbehaving storage shows it: a write applied (or
// dropped) whose answer is an error, reads answered with an old record or
// an error. Each fault fires once per count.
class FaultyStore final : public storage::RecordStore {
 public:
  absl::StatusOr<UserRecord> Get(std::string_view id) const override {
    if (fail_reads > 0) {
      --fail_reads;
      return absl::UnavailableError("injected: read timed out");
    }
    if (presented_reads > 0) {
      --presented_reads;
      return presented;
    }
    return real->Get(id);
  }
  absl::StatusOr<uint64_t> CompareAndSwap(std::string_view id,
                                          uint64_t expected,
                                          const UserRecord& next) override {
    if (drop_writes > 0) {
      --drop_writes;
      return absl::UnavailableError("injected: write outcome unknown");
    }
    auto v = real->CompareAndSwap(id, expected, next);
    if (v.ok() && applied_then_fail > 0) {
      --applied_then_fail;
      return absl::UnavailableError("injected: answer lost after the write");
    }
    return v;
  }
  absl::Status Delete(std::string_view id, uint64_t expected) override {
    return real->Delete(id, expected);
  }
  absl::Status Shred(std::string_view id) override { return real->Shred(id); }
  absl::Status SyncBarrier(std::string_view id) override {
    return real->SyncBarrier(id);
  }
  absl::StatusOr<uint64_t> Count() const override { return real->Count(); }
  absl::Status ForEach(Visitor visit) const override {
    if (during_scan) during_scan();
    return real->ForEach(std::move(visit));
  }

  storage::RecordStore* real = nullptr;
  mutable int fail_reads = 0, presented_reads = 0;
  UserRecord presented;
  int drop_writes = 0, applied_then_fail = 0;
  std::function<void()> during_scan;  // runs as a scan starts
};

class FreshStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto token = hsm::testing::TestToken::Create(/*with_keys=*/false);
    ASSERT_TRUE(token.ok()) << token.status();
    token_ = *std::move(token);
    auto heads = TokenHeadStore::Open(token_->hsm(), head_path_);
    ASSERT_TRUE(heads.ok()) << heads.status();
    token_heads_ = *std::move(heads);
    faulty_ = std::make_unique<FaultyHeads>(*token_heads_);
    OpenInner();
    Reopen();
  }
  // `fill`: the sealing key's bytes (another key: records it can't read).
  void OpenInner(uint8_t fill = 0x42) {
    inner_.reset();
    storage::RocksDbRecordStoreOptions o;
    o.data_dir = dir_.path();
    auto s = storage::RocksDbRecordStore::Open(
        o, storage::testing::TestSealer(fill));
    ASSERT_TRUE(s.ok()) << s.status();
    inner_ = *std::move(s);
    store_.real = inner_.get();
  }
  // A restart: the tree is rebuilt from the store and checked.
  void Reopen(uint32_t shards = 4) {
    fresh_.reset();
    auto f = FreshRecordStore::Open(store_, *faulty_, {shards, nullptr});
    ASSERT_TRUE(f.ok()) << f.status();
    fresh_ = *std::move(f);
  }
  static UserRecord Active(uint32_t used) {
    UserRecord r = storage::testing::SampleRecord(used);
    r.set_state(storage::v1::RECORD_STATE_ACTIVE);
    r.set_attempt_limit(10);
    return r;
  }
  static void ExpectRolledBack(const absl::Status& s) {
    EXPECT_TRUE(absl::IsUnavailable(s)) << s;
    auto d = vault::v1::ErrorDetailOf(s);
    ASSERT_TRUE(d.has_value()) << s;
    EXPECT_EQ(d->reason(), ErrorDetail::REASON_STORAGE_ROLLED_BACK);
    EXPECT_EQ(d->attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
  }

  // kCreateDestroy: heads written as tokens before branch slots had them.
  hsm::AnchoredObject::Path head_path_ = hsm::AnchoredObject::Path::kUnknown;
  storage::testing::TempDir dir_;
  std::unique_ptr<hsm::testing::TestToken> token_;
  std::unique_ptr<TokenHeadStore> token_heads_;
  std::unique_ptr<FaultyHeads> faulty_;
  std::unique_ptr<storage::RocksDbRecordStore> inner_;
  FaultyStore store_;  // over inner_: what the decorator decorates
  std::unique_ptr<FreshRecordStore> fresh_;
};

}  // namespace bkv::freshness

#endif  // BKV_TESTS_FRESHNESS_FRESH_FIXTURE_H_
