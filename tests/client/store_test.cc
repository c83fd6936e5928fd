// Every BlobStore against its real server on loopback (tests/servers/,
// started by the ctest fixture): file, s3rver, nginx WebDAV.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "client/backup_set.h"
#include "client/blob_store.h"
#include "tests/client/client_test_support.h"
#include "tests/client/test_stores.h"

namespace bkv {
namespace {

using ::bkv::testing::FailingBlobStore;
using ::bkv::testing::RandomBytes;
using ::bkv::testing::ReadFile;
using ::bkv::testing::TempDir;
using ::bkv::testing::WriteFile;
using ::testing::HasSubstr;

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    env_ = testing::ServersEnv();
    if (!testing::IsLocalStore(GetParam())) {
      ASSERT_FALSE(env_.empty())
          << "servers.env missing: run through ctest (fixture bkv_servers) or "
             "tests/servers/servers.sh start";
    }
    setenv("AWS_ACCESS_KEY_ID", env_["BKV_TEST_S3_ACCESS_KEY"].c_str(), 1);
    setenv("AWS_SECRET_ACCESS_KEY", env_["BKV_TEST_S3_SECRET_KEY"].c_str(), 1);
    setenv("BKV_WEBDAV_USER", env_["BKV_TEST_WEBDAV_USER"].c_str(), 1);
    setenv("BKV_WEBDAV_PASSWORD", env_["BKV_TEST_WEBDAV_PASSWORD"].c_str(), 1);
    // Each test gets its own prefix/collection.
    const std::string unique =
        ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::string id;
    for (char c : unique) id += std::isalnum(c) ? c : '-';
    options_.s3_part_size = 1 << 20;  // multipart above 1 MiB in tests
    options_.retry_base_delay_ms = 10;
    url_ = UrlFor(id);
    auto store = testing::OpenTestStore(url_, options_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  std::string UrlFor(const std::string& id) {
    if (GetParam() == "file") return "file://" + (dir_ / ("store-" + id));
    if (GetParam() == "callback") return "callback://" + (dir_ / id);
    if (GetParam() == "s3") {
      return "s3://" + env_["BKV_TEST_S3_BUCKET"] + "/" + id +
             "?endpoint=" + env_["BKV_TEST_S3_ENDPOINT"] + "&region=us-east-1";
    }
    return "webdav://" + env_["BKV_TEST_WEBDAV_HOSTPORT"] + "/sets/" + id;
  }
  std::string DownUrl() {
    // Port 1 on loopback: nothing listens there.
    if (GetParam() == "s3") {
      return "s3://b/p?endpoint=http://127.0.0.1:1&region=us-east-1";
    }
    return "webdav://127.0.0.1:1/sets";
  }

  std::map<std::string, std::string> env_;
  TempDir dir_;
  BlobStoreOptions options_;
  std::string url_;
  std::unique_ptr<BlobStore> store_;
};

TEST_P(StoreTest, PutGetStatListDelete) {
  auto a = RandomBytes(1000, 1), b = RandomBytes(0, 2);
  ASSERT_TRUE(PutBytes(*store_, "a.bkv", a).ok());
  ASSERT_TRUE(PutBytes(*store_, "b", b).ok());
  auto got = GetBytes(*store_, "a.bkv");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, a);
  auto empty = GetBytes(*store_, "b");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->empty());
  auto st = store_->Stat("a.bkv");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->size, 1000u);
  auto list = store_->List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "a.bkv");
  EXPECT_EQ((*list)[0].size, 1000u);
  EXPECT_EQ((*list)[1].name, "b");
  // Overwrite replaces.
  ASSERT_TRUE(PutBytes(*store_, "a.bkv", b).ok());
  EXPECT_EQ(store_->Stat("a.bkv")->size, 0u);
  ASSERT_TRUE(store_->Delete("a.bkv").ok());
  ASSERT_TRUE(store_->Delete("a.bkv").ok());  // idempotent
  EXPECT_TRUE(absl::IsNotFound(store_->Stat("a.bkv").status()));
  EXPECT_EQ(store_->List()->size(), 1u);
}

TEST_P(StoreTest, MissingObjectIsNotFound) {
  auto got = GetBytes(*store_, "nothing-here");
  EXPECT_TRUE(absl::IsNotFound(got.status())) << got.status();
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("nothing-here"));
}

TEST_P(StoreTest, RejectsBadNames) {
  for (const char* bad : {"", ".hidden", "a/b", "../x", "a b"}) {
    EXPECT_EQ(PutBytes(*store_, bad, RandomBytes(1)).code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST_P(StoreTest, LargeObjectStreamsInParts) {
  // 3.5 parts at the test part size: S3 multipart with a short last part.
  auto big = RandomBytes((3 << 20) + (512 << 10), 3);
  ASSERT_TRUE(PutBytes(*store_, "big.bkv", big).ok());
  auto got = GetBytes(*store_, "big.bkv", 8 << 20);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == big);
  EXPECT_EQ(store_->Stat("big.bkv")->size, big.size());
}

TEST_P(StoreTest, FailedPutLeavesNoObject) {
  FailingBlobStore failing(*store_, (2 << 20) + 100);
  auto big = RandomBytes(3 << 20, 4);
  absl::Status s = PutBytes(failing, "partial.bkv", big);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  EXPECT_THAT(*list, ::testing::IsEmpty());
}

TEST_P(StoreTest, BackupSetRoundTripAndInterruptedUpload) {
  BackupKey key = BackupKey::Generate();
  WriteFile(dir_ / "v1", RandomBytes(300000, 5));
  BackupSet set(*store_, key);
  BackupOptions opts;
  opts.keep = 1;
  auto first = set.Backup(dir_ / "v1", opts);
  ASSERT_TRUE(first.ok()) << first.status();

  WriteFile(dir_ / "v2", RandomBytes(2 << 20, 6));
  FailingBlobStore failing(*store_, 1 << 20);
  BackupSet broken(failing, key);
  opts.compress = false;
  EXPECT_FALSE(broken.Backup(dir_ / "v2", opts).ok());

  auto records = set.List();
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].id, first->id);
  ASSERT_TRUE(set.Restore("", dir_ / "r1").ok());
  EXPECT_EQ(ReadFile(dir_ / "r1"), RandomBytes(300000, 5));

  auto second = set.Backup(dir_ / "v2", opts);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(set.Restore("", dir_ / "r2").ok());
  EXPECT_EQ(ReadFile(dir_ / "r2"), RandomBytes(2 << 20, 6));
  // keep = 1: the first backup was pruned after the second completed.
  EXPECT_EQ(store_->List()->size(), 2u);
}

// Issue 20.5/20.6 on every store: a deleted list is rebuilt from the
// objects (header-only reads that stop the download early), and a swapped
// object is refused.
TEST_P(StoreTest, RegressionRepairRebuildsListAndSwapIsRefused) {
  BackupKey key = BackupKey::Generate();
  BackupSet set(*store_, key);
  std::vector<BackupRecord> made;
  for (uint32_t i = 0; i < 2; ++i) {
    WriteFile(dir_ / "in", RandomBytes(1500000, 10 + i));  // several MiB GETs
    auto r = set.Backup(dir_ / "in", {});
    ASSERT_TRUE(r.ok()) << r.status();
    made.push_back(*r);
  }
  ASSERT_TRUE(store_->Delete(BackupSet::kManifestName).ok());
  EXPECT_EQ(set.List().status().code(), absl::StatusCode::kDataLoss);
  auto repaired = set.Repair();
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  ASSERT_EQ(repaired->records.size(), 2u);
  EXPECT_EQ(repaired->records[0].id, made[0].id);
  EXPECT_EQ(repaired->records[1].id, made[1].id);
  auto check = set.Check(/*read_data=*/true);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->clean());

  // The store serves the older backup under the newer one's name.
  auto older = GetBytes(*store_, made[0].object, 8 << 20);
  ASSERT_TRUE(older.ok());
  ASSERT_TRUE(PutBytes(*store_, made[1].object, *older).ok());
  auto r = set.Restore("", dir_ / "swapped");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("swapped or rolled back"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "swapped"));
}

TEST_P(StoreTest, ServerDownNamesTheUrl) {
  if (testing::IsLocalStore(GetParam())) GTEST_SKIP() << "no server";
  options_.max_attempts = 2;
  auto store = OpenBlobStore(DownUrl(), options_);
  ASSERT_TRUE(store.ok());
  auto list = (*store)->List();
  EXPECT_EQ(list.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(list.status().message()), HasSubstr("127.0.0.1:1"));
  absl::Status put = PutBytes(**store, "x", RandomBytes(10));
  EXPECT_EQ(put.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(put.message()), HasSubstr("127.0.0.1:1"));
}

// Issue 19.5: reading a store that is not there (a typo in the path,
// collection or bucket) is an error naming it, and creates nothing.
TEST_P(StoreTest, MissingStoreIsAnErrorForReadersAndCreatesNothing) {
  if (GetParam() == "callback") GTEST_SKIP() << "the app's store decides";
  std::string missing = UrlFor("never-made");
  if (GetParam() == "s3") {
    missing =
        "s3://no-such-bucket-bkv/p?endpoint=" + env_["BKV_TEST_S3_ENDPOINT"] +
        "&region=us-east-1";
  }
  BlobStoreOptions reader = options_;
  reader.create = false;
  auto opened = OpenBlobStore(missing, reader);
  absl::Status s = opened.status();
  if (opened.ok()) s = (*opened)->List().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("nothing to read"));
  if (GetParam() == "file") {
    EXPECT_FALSE(std::filesystem::exists(dir_ / "store-never-made"));
  }
  if (GetParam() == "webdav") {
    // A writer may list first: the collection appears with its first Put.
    auto writer = OpenBlobStore(missing, options_);
    ASSERT_TRUE(writer.ok());
    auto listed = (*writer)->List();
    ASSERT_TRUE(listed.ok()) << listed.status();
    EXPECT_TRUE(listed->empty());
    reader.create = false;
    auto again = OpenBlobStore(missing, reader);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ((*again)->List().status().code(), absl::StatusCode::kNotFound)
        << "listing as a writer must not create the collection";
  }
}

TEST_P(StoreTest, WrongCredentialsAreRejectedWithoutLeakingThem) {
  if (testing::IsLocalStore(GetParam())) GTEST_SKIP() << "no credentials";
  // s3rver checks the access key id but not the signature.
  setenv("AWS_ACCESS_KEY_ID", "unknown-key-id", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-4242", 1);
  setenv("BKV_WEBDAV_PASSWORD", "not-the-secret-4242", 1);
  auto store = OpenBlobStore(url_, options_);
  ASSERT_TRUE(store.ok());
  absl::Status s = PutBytes(**store, "x", RandomBytes(10));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_THAT(std::string(s.message()),
              ::testing::Not(HasSubstr("not-the-secret-4242")));
}

TEST(StoreUrlTest, RejectsBadUrlsAndMissingCredentials) {
  EXPECT_FALSE(OpenBlobStore("ftp://x/y").ok());
  EXPECT_FALSE(OpenBlobStore("file://relative").ok());
  EXPECT_FALSE(OpenBlobStore("webdav://user:pw@host/x").ok());
  unsetenv("AWS_ACCESS_KEY_ID");
  auto s3 = OpenBlobStore("s3://b/p?endpoint=http://127.0.0.1:9");
  EXPECT_EQ(s3.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s3.status().message()),
              HasSubstr("AWS_ACCESS_KEY_ID"));
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest,
                         ::testing::Values("file", "s3", "webdav", "callback"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace bkv
