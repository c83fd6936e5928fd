#include "client/backup_stream.h"

#include <archive.h>
#include <archive_entry.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "client/backup_set.h"
#include "client/file_blob_store.h"
#include "tests/client/client_test_support.h"

namespace bkv {
namespace {

using ::bkv::testing::FailingBlobStore;
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

TEST(ManifestTest, RoundTripAndGarbage) {
  std::vector<BackupRecord> in = {{"00112233445566778899aabbccddeeff",
                                   "backup-x.bkv", 1700000000,
                                   BackupContent::kTree, 10, 20}};
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
