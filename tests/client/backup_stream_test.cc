#include "client/backup_stream.h"

#include <archive.h>
#include <archive_entry.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "client/backup_set.h"
#include "client/file_blob_store.h"
#include "tests/client/client_test_support.h"

namespace bkv {
namespace {

using ::bkv::testing::FailingBlobStore;
using ::bkv::testing::ForwardingBlobStore;
using ::bkv::testing::Listing;
using ::bkv::testing::RandomBytes;
using ::bkv::testing::ReadFile;
using ::bkv::testing::TempDir;
using ::bkv::testing::WriteFile;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

class BackupStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = *OpenBlobStore("file://" + (dir_ / "store"));
    fs::create_directories(dir_ / "out");
  }
  BackupRecord Backup(const std::string& path, BackupOptions opts = {}) {
    opts.chunk_size = opts.chunk_size == 64 * 1024 ? 4096 : opts.chunk_size;
    BackupSet set(*store_, key_);
    auto r = set.Backup(path, opts);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : BackupRecord{};
  }
  // Restore output is either complete at `target` or absent, and no
  // temporary is ever left next to it.
  void ExpectNoOutput() {
    EXPECT_THAT(Listing(dir_ / "out"), ::testing::IsEmpty());
  }
  std::string StoredPath(const BackupRecord& r) {
    return dir_ / ("store/" + r.object);
  }

  TempDir dir_;
  BackupKey key_ = BackupKey::Generate();
  std::unique_ptr<BlobStore> store_;
};

TEST_F(BackupStreamTest, FileRoundTripSizesWithAndWithoutCompression) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{4096}, size_t{3 << 20}}) {
    for (bool compress : {false, true}) {
      SCOPED_TRACE(::testing::Message() << n << " compress " << compress);
      auto data = RandomBytes(n, static_cast<uint32_t>(n));
      WriteFile(dir_ / "in.bin", data);
      BackupOptions opts;
      opts.compress = compress;
      BackupRecord r = Backup(dir_ / "in.bin", opts);
      EXPECT_EQ(r.input_bytes, n);
      const std::string target = dir_ / "out/restored.bin";
      BackupSet set(*store_, key_);
      auto restored = set.Restore(r.id, target);
      ASSERT_TRUE(restored.ok()) << restored.status();
      EXPECT_EQ(ReadFile(target), data);
      fs::remove(target);
    }
  }
}

TEST_F(BackupStreamTest, CompressionShrinksText) {
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "message " + std::to_string(i % 50);
  WriteFile(
      dir_ / "chat.txt",
      std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  BackupRecord r = Backup(dir_ / "chat.txt");
  EXPECT_LT(r.stored_bytes, text.size() / 4);
}

TEST_F(BackupStreamTest, TreeRoundTrip) {
  const std::string src = dir_ / "tree";
  fs::create_directories(src + "/media/2024");
  fs::create_directories(src + "/empty");
  WriteFile(src + "/chat.db", RandomBytes(300000, 7));
  WriteFile(src + "/media/2024/a.jpg", RandomBytes(70000, 8));
  WriteFile(src + "/zero", {});
  fs::create_symlink("chat.db", src + "/link");
  BackupRecord r = Backup(src);
  EXPECT_EQ(r.content, BackupContent::kTree);
  BackupSet set(*store_, key_);
  const std::string target = dir_ / "out/tree";
  ASSERT_TRUE(set.Restore("", target).ok());
  EXPECT_EQ(Listing(target), Listing(src));
  EXPECT_EQ(ReadFile(target + "/chat.db"), ReadFile(src + "/chat.db"));
  EXPECT_EQ(ReadFile(target + "/media/2024/a.jpg"),
            ReadFile(src + "/media/2024/a.jpg"));
  EXPECT_EQ(fs::read_symlink(target + "/link"), "chat.db");
}

TEST_F(BackupStreamTest, RestoreRefusesExistingTarget) {
  WriteFile(dir_ / "in.bin", RandomBytes(100));
  Backup(dir_ / "in.bin");
  WriteFile(dir_ / "out/x", RandomBytes(5));
  BackupSet set(*store_, key_);
  auto r = set.Restore("", dir_ / "out/x");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadFile(dir_ / "out/x"), RandomBytes(5));
}

TEST_F(BackupStreamTest, CorruptedObjectLeavesNoOutput) {
  WriteFile(dir_ / "in.bin", RandomBytes(200000));
  BackupRecord r = Backup(dir_ / "in.bin");
  auto bytes = ReadFile(StoredPath(r));
  bytes[bytes.size() - 10] ^= 1;  // in the final chunk's tag
  WriteFile(StoredPath(r), bytes);
  BackupSet set(*store_, key_);
  auto restored = set.Restore("", dir_ / "out/file");
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(restored.status().message()),
              HasSubstr("failed authentication"));
  ExpectNoOutput();
}

TEST_F(BackupStreamTest, TruncatedTreeLeavesNoOutput) {
  const std::string src = dir_ / "tree";
  fs::create_directories(src);
  WriteFile(src + "/a", RandomBytes(100000, 1));
  WriteFile(src + "/b", RandomBytes(100000, 2));
  BackupOptions opts;
  opts.compress = false;
  BackupRecord r = Backup(src, opts);
  auto bytes = ReadFile(StoredPath(r));
  bytes.resize(BackupHeader::kSize + 30 * SealedChunkSize(4096));
  WriteFile(StoredPath(r), bytes);
  BackupSet set(*store_, key_);
  auto restored = set.Restore("", dir_ / "out/tree");
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(restored.status().message()),
              HasSubstr("final chunk is missing"));
  ExpectNoOutput();
}

TEST_F(BackupStreamTest, WrongKeyFailsBeforeOutput) {
  WriteFile(dir_ / "in.bin", RandomBytes(1000));
  BackupRecord r = Backup(dir_ / "in.bin");
  BackupKey other = BackupKey::Generate();
  BackupSet set(*store_, other);
  EXPECT_EQ(set.List().status().code(), absl::StatusCode::kPermissionDenied);
  auto s = StreamRestore(*store_, r.object, other, dir_ / "out/f");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("wrong backup key"));
  ExpectNoOutput();
}

// An archive crafted to escape the target must be refused, whatever else it
// holds, and leave nothing behind.
void ExpectUnsafeRefused(BackupStreamTest* t, BlobStore& store,
                         const BackupKey& key, const std::string& out,
                         const std::function<void(struct archive*)>& add,
                         const std::string& why) {
  std::vector<uint8_t> tar(1 << 20);
  size_t used = 0;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open_memory(a, tar.data(), tar.size(), &used);
  add(a);
  archive_write_close(a);
  archive_write_free(a);
  tar.resize(used);
  BackupParams p;
  p.content = BackupContent::kTree;
  p.chunk_size = 4096;
  auto sealed = EncryptBackup(key, p, tar);
  ASSERT_TRUE(sealed.ok());
  ASSERT_TRUE(PutBytes(store, "evil.bkv", *sealed).ok());
  auto r = StreamRestore(store, "evil.bkv", key, out + "/tree");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << why;
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(why));
  EXPECT_THAT(Listing(out), ::testing::IsEmpty());
  (void)t;
}

void AddFile(struct archive* a, const char* name, const char* data) {
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, name);
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, strlen(data));
  archive_write_header(a, e);
  archive_write_data(a, data, strlen(data));
  archive_entry_free(e);
}

void AddSymlink(struct archive* a, const char* name, const char* to) {
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, name);
  archive_entry_set_filetype(e, AE_IFLNK);
  archive_entry_set_perm(e, 0777);
  archive_entry_set_symlink(e, to);
  archive_write_header(a, e);
  archive_entry_free(e);
}

TEST_F(BackupStreamTest, UnsafeArchivesAreRefused) {
  const std::string out = dir_ / "out";
  const std::string outside = dir_ / "outside";
  fs::create_directories(outside);
  ExpectUnsafeRefused(
      this, *store_, key_, out,
      [](struct archive* a) {
        AddFile(a, "ok.txt", "fine");
        AddFile(a, "../escape.txt", "evil");
      },
      "leaves the target");
  ExpectUnsafeRefused(
      this, *store_, key_, out,
      [&](struct archive* a) {
        AddFile(a, (outside + "/abs.txt").c_str(), "evil");
      },
      "is absolute");
  ExpectUnsafeRefused(
      this, *store_, key_, out,
      [&](struct archive* a) {
        AddSymlink(a, "link", outside.c_str());
        AddFile(a, "link/through.txt", "evil");
      },
      "link/through.txt");
  EXPECT_THAT(Listing(outside), ::testing::IsEmpty());
  EXPECT_FALSE(fs::exists(dir_ / "escape.txt"));
}

TEST_F(BackupStreamTest, InterruptedUploadLeavesLatestIntact) {
  WriteFile(dir_ / "v1.bin", RandomBytes(50000, 1));
  BackupRecord first = Backup(dir_ / "v1.bin");
  WriteFile(dir_ / "v2.bin", RandomBytes(400000, 2));
  FailingBlobStore failing(*store_, 100000);
  BackupSet broken(failing, key_);
  BackupOptions opts;
  opts.chunk_size = 4096;
  opts.compress = false;
  opts.keep = 1;
  auto r = broken.Backup(dir_ / "v2.bin", opts);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("injected failure"));

  BackupSet set(*store_, key_);
  auto records = set.List();
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].id, first.id);
  auto objects = store_->List();
  ASSERT_TRUE(objects.ok());
  EXPECT_EQ(objects->size(), 2u);  // the first backup and "latest"
  EXPECT_THAT(Listing(dir_ / "store"), ::testing::SizeIs(2));  // no temps
  ASSERT_TRUE(set.Restore("", dir_ / "out/v1.bin").ok());
  EXPECT_EQ(ReadFile(dir_ / "out/v1.bin"), RandomBytes(50000, 1));
}

TEST_F(BackupStreamTest, PruneKeepsNewestAfterSuccess) {
  std::vector<BackupRecord> made;
  BackupOptions opts;
  opts.keep = 2;
  for (int i = 0; i < 3; ++i) {
    WriteFile(dir_ / "in.bin", RandomBytes(1000, i));
    made.push_back(Backup(dir_ / "in.bin", opts));
  }
  BackupSet set(*store_, key_);
  auto records = set.List();
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].id, made[1].id);
  EXPECT_EQ((*records)[1].id, made[2].id);
  EXPECT_TRUE(absl::IsNotFound(store_->Stat(made[0].object).status()));
  // Restore by id prefix.
  ASSERT_TRUE(set.Restore(made[1].id.substr(0, 6), dir_ / "out/b").ok());
  EXPECT_EQ(ReadFile(dir_ / "out/b"), RandomBytes(1000, 1));
  EXPECT_TRUE(
      absl::IsNotFound(set.Restore("ffff0000", dir_ / "out/c").status()));
}

TEST_F(BackupStreamTest, MissingSourceNamesThePath) {
  BackupSet set(*store_, key_);
  auto r = set.Backup(dir_ / "nope", {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("nope"));
}

TEST_F(BackupStreamTest, ProgressReachesTotal) {
  WriteFile(dir_ / "in.bin", RandomBytes(1 << 20));
  std::atomic<uint64_t> last{0}, total{0};
  BackupOptions opts;
  opts.stream.progress = [&](uint64_t d, uint64_t t) {
    last = d;
    total = t;
  };
  Backup(dir_ / "in.bin", opts);
  EXPECT_EQ(last.load(), 1u << 20);
  EXPECT_EQ(total.load(), 1u << 20);
}

// Seals a crafted tree archive as object `name`.
void PutTree(BlobStore& store, const BackupKey& key, const std::string& name,
             const std::function<void(struct archive*)>& add) {
  std::vector<uint8_t> tar(1 << 20);
  size_t used = 0;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open_memory(a, tar.data(), tar.size(), &used);
  add(a);
  archive_write_close(a);
  archive_write_free(a);
  tar.resize(used);
  BackupParams p;
  p.content = BackupContent::kTree;
  p.chunk_size = 4096;
  auto sealed = EncryptBackup(key, p, tar);
  ASSERT_TRUE(sealed.ok());
  ASSERT_TRUE(PutBytes(store, name, *sealed).ok());
}

void AddRoot(struct archive* a, mode_t type, mode_t perm) {
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, ".");
  archive_entry_set_filetype(e, type);
  archive_entry_set_perm(e, perm);
  archive_write_header(a, e);
  archive_entry_free(e);
}

// Issue 20.8: the root gets the archived mode ("." entry), 0755 for archives
// written before the root entry existed, and a "." that is no directory is
// refused.
TEST_F(BackupStreamTest, RegressionRestoredRootModeFromTheRootEntry) {
  struct stat st;
  PutTree(*store_, key_, "rooted.bkv", [](struct archive* a) {
    AddRoot(a, AE_IFDIR, 0750);
    AddFile(a, "a.txt", "a");
  });
  ASSERT_TRUE(StreamRestore(*store_, "rooted.bkv", key_, dir_ / "out/r1").ok());
  ASSERT_EQ(::stat((dir_ / "out/r1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(ReadFile(dir_ / "out/r1/a.txt"), std::vector<uint8_t>{'a'});

  PutTree(*store_, key_, "old.bkv",
          [](struct archive* a) { AddFile(a, "a.txt", "a"); });
  ASSERT_TRUE(StreamRestore(*store_, "old.bkv", key_, dir_ / "out/r2").ok());
  ASSERT_EQ(::stat((dir_ / "out/r2").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);

  PutTree(*store_, key_, "badroot.bkv",
          [](struct archive* a) { AddRoot(a, AE_IFREG, 0644); });
  auto r = StreamRestore(*store_, "badroot.bkv", key_, dir_ / "out/r3");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir_ / "out/r3"));
}

// A store whose Get fails for backup objects, as an unreachable server.
class UnreadableObjectsStore final : public ForwardingBlobStore {
 public:
  using ForwardingBlobStore::ForwardingBlobStore;
  absl::Status Get(std::string_view name, const ByteSink& sink) override {
    if (IsBackupObjectName(name)) {
      return absl::UnavailableError("injected failure: server unreachable");
    }
    return inner_.Get(name, sink);
  }
};

// Issue 20.5: the list is rebuilt from the authenticated objects, in order,
// with every backup; an intact list is left alone.
TEST_F(BackupStreamTest, RegressionRepairRebuildsTheListFromTheObjects) {
  std::vector<BackupRecord> made;
  for (int i = 0; i < 3; ++i) {
    WriteFile(dir_ / "in.bin", RandomBytes(3000, 70 + i));
    made.push_back(Backup(dir_ / "in.bin"));
  }
  BackupSet set(*store_, key_);
  auto intact = set.Repair();
  ASSERT_TRUE(intact.ok()) << intact.status();
  EXPECT_FALSE(intact->rewritten);
  auto list = ReadFile(dir_ / "store/latest");
  list[20] ^= 0x40;
  WriteFile(dir_ / "store/latest", list);
  auto listed = set.List();
  EXPECT_EQ(listed.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(listed.status().message()), HasSubstr("bkv repair"));
  auto check = set.Check(/*read_data=*/true);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->list, CheckReport::ListState::kDamaged);
  EXPECT_FALSE(check->clean());

  auto repaired = set.Repair();
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  EXPECT_TRUE(repaired->rewritten);
  EXPECT_EQ(repaired->added, 3u);
  auto records = set.List();
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*records)[i].id, made[i].id);
    EXPECT_EQ((*records)[i].object, made[i].object);
    EXPECT_EQ((*records)[i].stored_bytes, made[i].stored_bytes);
  }
  ASSERT_TRUE(set.Restore("", dir_ / "out/newest").ok());
  EXPECT_EQ(ReadFile(dir_ / "out/newest"), RandomBytes(3000, 72));
  EXPECT_TRUE(set.Check(false)->clean());
}

// A backup the list lacks (a crash between upload and list) and a listed
// object that vanished: check names both; repair adds and drops them.
TEST_F(BackupStreamTest, CheckAndRepairReconcileListAndObjects) {
  WriteFile(dir_ / "in.bin", RandomBytes(2000, 80));
  BackupRecord first = Backup(dir_ / "in.bin");
  const auto old_list = ReadFile(dir_ / "store/latest");
  WriteFile(dir_ / "in.bin", RandomBytes(2000, 81));
  BackupRecord second = Backup(dir_ / "in.bin");
  WriteFile(dir_ / "store/latest", old_list);  // second is now unlisted
  fs::remove(StoredPath(first));
  BackupSet set(*store_, key_);
  auto check = set.Check(false);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->list, CheckReport::ListState::kOk);
  ASSERT_EQ(check->problems.size(), 2u);
  EXPECT_THAT(check->problems[0], HasSubstr("is missing"));
  EXPECT_THAT(check->problems[1], HasSubstr("not in the list"));
  auto repaired = set.Repair();
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  EXPECT_EQ(repaired->added, 1u);
  EXPECT_EQ(repaired->dropped, 1u);
  auto records = set.List();
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].id, second.id);
  EXPECT_TRUE(set.Check(true)->clean());
}

// A store that cannot serve the objects must not make repair shrink the
// list: it fails and changes nothing.
TEST_F(BackupStreamTest, RepairNeverDropsBackupsTheStoreFailedToServe) {
  WriteFile(dir_ / "in.bin", RandomBytes(2000, 90));
  Backup(dir_ / "in.bin");
  fs::remove(dir_ / "store/latest");
  UnreadableObjectsStore flaky(*store_);
  BackupSet set(flaky, key_);
  auto repaired = set.Repair();
  EXPECT_EQ(repaired.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(fs::exists(dir_ / "store/latest"));
  EXPECT_EQ(set.Check(false).status().code(), absl::StatusCode::kUnavailable);
}

// A wrong key is still "wrong key" (exit 3), not a damaged list.
TEST_F(BackupStreamTest, WrongKeyIsNotReportedAsDamage) {
  WriteFile(dir_ / "in.bin", RandomBytes(2000, 91));
  Backup(dir_ / "in.bin");
  BackupSet other(*store_, BackupKey::Generate());
  EXPECT_EQ(other.List().status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(other.Check(false).status().code(),
            absl::StatusCode::kPermissionDenied);
  const auto before = ReadFile(dir_ / "store/latest");
  EXPECT_EQ(other.Repair().status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ReadFile(dir_ / "store/latest"), before);
}

TEST(BackupObjectNameTest, CurrentAndOlderNames) {
  EXPECT_TRUE(
      IsBackupObjectName("backup-20261202T073011.042Z-c97d710e9335d9ed.bkv"));
  EXPECT_TRUE(
      IsBackupObjectName("backup-20261202T073011Z-c97d710e9335d9ed.bkv"));
  for (const char* bad :
       {"latest", "backup-20261202T073011Z-c97d710e9335d9e.bkv",
        "backup-20261202T073011Z-C97D710E9335D9ED.bkv",
        "backup-2026120XT073011Z-c97d710e9335d9ed.bkv",
        "backup-20261202T073011.4Z-c97d710e9335d9ed.bkv",
        "backup-20261202T073011Z-c97d710e9335d9ed.bkv.tmp"}) {
    EXPECT_FALSE(IsBackupObjectName(bad)) << bad;
  }
}

TEST(ManifestTest, RoundTripAndGarbage) {
  std::vector<BackupRecord> in = {{"00112233445566778899aabbccddeeff",
                                   "backup-x.bkv",
                                   1700000000,
                                   BackupContent::kTree,
                                   10,
                                   20,
                                   {}}};
  auto out = DecodeManifest(EncodeManifest(in));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].object, "backup-x.bkv");
  EXPECT_EQ((*out)[0].content, BackupContent::kTree);
  for (const char* bad :
       {"", "bkv-manifest 2\n", "bkv-manifest 1", "bkv-manifest 1\nx y z\n",
        "bkv-manifest 1\n00112233445566778899aabbccddeeff "
        "../x 1 0 1 1\n"}) {
    EXPECT_FALSE(DecodeManifest(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace bkv
