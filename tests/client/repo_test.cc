// Repository format v2 (issue 13) against every real store on loopback:
// file, s3rver, nginx WebDAV. Incremental uploads, dedup, restore, tamper.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include "client/blob_store.h"
#include "client/repo/repository.h"
#include "crypto/hash.h"
#include "tests/client/client_test_support.h"
#include "tests/client/test_stores.h"

namespace bkv {
namespace {

using ::bkv::testing::ForwardingBlobStore;
using ::bkv::testing::RandomBytes;
using ::bkv::testing::ReadFile;
using ::bkv::testing::TempDir;
using ::bkv::testing::WriteFile;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

// Runs `before` ahead of every Put; an error fails that Put.
class PutHookStore final : public ForwardingBlobStore {
 public:
  using Hook = std::function<absl::Status(std::string_view name)>;
  PutHookStore(BlobStore& inner, Hook before)
      : ForwardingBlobStore(inner), before_(std::move(before)) {}
  absl::Status Put(std::string_view name, ByteSource& source) override {
    if (absl::Status s = before_(name); !s.ok()) return s;
    return inner_.Put(name, source);
  }

 private:
  Hook before_;
};

// Put fails for objects whose name starts with `prefix`, as a crash right
// before that object would.
PutHookStore::Hook FailPutsOf(std::string prefix) {
  return [prefix](std::string_view name) {
    return name.substr(0, prefix.size()) == prefix
               ? absl::UnavailableError("injected: process died")
               : absl::OkStatus();
  };
}

// Runs `before` once, right before the first Put of object `name`: another
// client acting between this one's read and write of it.
PutHookStore::Hook BeforeFirstPutOf(std::string name,
                                    std::function<void()> before) {
  return [name, before](std::string_view n) mutable {
    if (n == name && before) std::exchange(before, nullptr)();
    return absl::OkStatus();
  };
}

// Serves the first `torn` reads of objects whose name starts with `prefix`
// cut to their first `keep` bytes, with success: what s3rver (whose PUT
// truncates the object in place) serves while another client overwrites an
// object or is still writing it.
class TornReadStore final : public ForwardingBlobStore {
 public:
  TornReadStore(BlobStore& inner, std::string prefix, int torn, size_t keep)
      : ForwardingBlobStore(inner),
        prefix_(std::move(prefix)),
        torn_(torn),
        keep_(keep) {}
  absl::Status Get(std::string_view n, const ByteSink& sink) override {
    if (n.substr(0, prefix_.size()) != prefix_) return inner_.Get(n, sink);
    ++reads_;
    if (reads_ > torn_) return inner_.Get(n, sink);
    auto whole = GetBytes(inner_, n, 64 << 20);
    if (!whole.ok()) return whole.status();
    return sink(std::span(*whole).first(std::min(keep_, whole->size())));
  }
  int reads() const { return reads_; }

 private:
  std::string prefix_;
  int torn_;
  size_t keep_;
  int reads_ = 0;
};

class RepoTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    env_ = testing::ServersEnv();
    if (!testing::IsLocalStore(GetParam())) {
      ASSERT_FALSE(env_.empty()) << "servers.env missing: run through ctest";
    }
    store_ = OpenStore("a");
    src_ = dir_ / "src";
    fs::create_directories(src_ + "/media");
  }
  std::unique_ptr<BlobStore> OpenStore(const std::string& suffix) {
    const std::string url = testing::StoreUrlForTest(
        GetParam(), env_, dir_.path(), "repo-" + suffix);
    BlobStoreOptions o;
    o.s3_part_size = 1 << 20;
    o.retry_base_delay_ms = 10;
    auto store = testing::OpenTestStore(url, o);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  std::unique_ptr<Repository> Open(BlobStore& store, const BackupKey& key,
                                   size_t pack_target = 16 << 20) {
    RepoOptions o;
    o.create = true;
    o.state_dir = dir_ / "state";
    o.pack_target = pack_target;
    auto repo = Repository::Open(store, key, o);
    EXPECT_TRUE(repo.ok()) << repo.status();
    return repo.ok() ? std::move(*repo) : nullptr;
  }
  // A chat-history-like tree: a database, media, a small file.
  void MakeTree(size_t db_bytes) {
    db_ = RandomBytes(db_bytes, 7);
    WriteFile(src_ + "/chat.db", db_);
    WriteFile(src_ + "/media/a.jpg", RandomBytes(300 << 10, 8));
    WriteFile(src_ + "/notes.txt", RandomBytes(100, 9));
  }
  // Restores and compares every file byte for byte with the source.
  void ExpectRestoresSource(Repository& repo, const std::string& id) {
    const std::string out = dir_ / ("out-" + std::to_string(restores_++));
    auto info = repo.Restore(id, "", out);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(testing::Listing(out), testing::Listing(src_));
    for (const std::string& p : testing::Listing(src_)) {
      if (fs::is_regular_file(src_ + "/" + p)) {
        EXPECT_EQ(ReadFile(out + "/" + p), ReadFile(src_ + "/" + p)) << p;
      }
    }
  }
  void ExpectNoPartialRestore(Repository& repo, absl::StatusCode code) {
    const std::string out = dir_ / "tampered-out";
    auto info = repo.Restore("", "", out);
    EXPECT_EQ(info.status().code(), code) << info.status();
    EXPECT_FALSE(fs::exists(out));
    for (const auto& e : fs::directory_iterator(dir_.path())) {
      EXPECT_THAT(e.path().filename().string(),
                  ::testing::Not(HasSubstr(".bkv-restore")));
    }
  }
  std::string First(const std::string& prefix) {
    auto list = store_->List();
    EXPECT_TRUE(list.ok()) << list.status();
    if (!list.ok()) return "";
    for (const BlobInfo& b : *list) {
      if (b.name.rfind(prefix, 0) == 0) return b.name;
    }
    return "";
  }
  std::vector<uint8_t> Get(const std::string& name) {
    auto b = GetBytes(*store_, name, 64 << 20);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? *b : std::vector<uint8_t>{};
  }
  void Put(const std::string& name, std::span<const uint8_t> bytes) {
    ASSERT_TRUE(PutBytes(*store_, name, bytes).ok());
  }

  TempDir dir_;
  std::map<std::string, std::string> env_;
  std::unique_ptr<BlobStore> store_;
  std::string src_;
  std::vector<uint8_t> db_;
  BackupKey key_ = BackupKey::Generate();
  int restores_ = 0;
};

TEST_P(RepoTest, UnchangedSecondBackupUploadsNoChunk) {
  MakeTree(6 << 20);
  auto repo = Open(*store_, key_);
  RepoBackupStats first, second;
  auto s1 = repo->Backup(src_, &first);
  ASSERT_TRUE(s1.ok()) << s1.status();
  EXPECT_GT(first.new_chunks, 0u);
  auto s2 = repo->Backup(src_, &second);
  ASSERT_TRUE(s2.ok()) << s2.status();
  EXPECT_EQ(second.new_chunks, 0u);
  EXPECT_EQ(second.packs_uploaded, 0u);
  EXPECT_EQ(second.files_read, 0u);  // size/mtime/inode unchanged
  EXPECT_EQ(second.files_unchanged, 3u);
  // Snapshot (with its tree's id, not the tree) and head only.
  EXPECT_LT(second.uploaded_bytes, 512u);
  EXPECT_EQ(s2->seq, s1->seq + 1);
  auto snaps = repo->Snapshots();
  ASSERT_TRUE(snaps.ok());
  ASSERT_EQ(snaps->size(), 2u);
  ExpectRestoresSource(*repo, s1->id);
  ExpectRestoresSource(*repo, s2->id);
  auto check = repo->Check(true);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->clean()) << ::testing::PrintToString(check->problems);
  EXPECT_EQ(check->chunks_read, check->chunks);
}

// Snapshot format 3: an unchanged tree is stored once and named by its
// keyed id; a dropped, swapped or flipped tree is DataLoss and restores
// nothing; prune deletes the trees no remaining snapshot names.
TEST_P(RepoTest, UnchangedTreeIsStoredOnceAndGuarded) {
  MakeTree(1 << 20);
  auto repo = Open(*store_, key_);
  auto s1 = repo->Backup(src_);
  ASSERT_TRUE(s1.ok()) << s1.status();
  const std::string tree = First("tree-");
  ASSERT_EQ(tree.size(), 5u + 64u);
  RepoBackupStats st;
  ASSERT_TRUE(repo->Backup(src_, &st).ok());
  EXPECT_EQ(First("tree-"), tree);
  EXPECT_LT(st.uploaded_bytes, 512u);
  const auto original = Get(tree);
  auto flipped = original;
  flipped[flipped.size() / 2] ^= 1;
  Put(tree, flipped);
  auto snaps = repo->Snapshots();
  EXPECT_EQ(snaps.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(snaps.status().message()), HasSubstr(tree));
  ExpectNoPartialRestore(*repo, absl::StatusCode::kDataLoss);
  ASSERT_TRUE(store_->Delete(tree).ok());
  snaps = repo->Snapshots();
  EXPECT_THAT(std::string(snaps.status().message()),
              HasSubstr(tree + " is missing: the store dropped it"));
  auto check = repo->Check(false);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_FALSE(check->clean());
  // Like a damaged snapshot, a damaged tree stops backups until repaired.
  EXPECT_EQ(repo->Backup(src_).status().code(), absl::StatusCode::kDataLoss);
  Put(tree, original);
  ExpectRestoresSource(*repo, s1->id);
  // Another tree; the first, now named by no snapshot, is damaged (as an
  // interrupted write on a store without atomic puts leaves it): a backup
  // that needs it again writes it anew instead of trusting its name.
  const auto root_time = fs::last_write_time(src_);
  WriteFile(src_ + "/extra.txt", RandomBytes(120, 31));
  ASSERT_TRUE(repo->Backup(src_).ok());
  ASSERT_TRUE(repo->Forget(1).ok());
  Put(tree, flipped);
  fs::remove(src_ + "/extra.txt");  // the tree is again the first one
  fs::last_write_time(src_, root_time);
  RepoBackupStats again;
  ASSERT_TRUE(repo->Backup(src_, &again).ok());
  EXPECT_GT(again.uploaded_bytes, original.size());  // tree, snapshot, head
  ExpectRestoresSource(*repo, "");
  ASSERT_TRUE(repo->Forget(1).ok());
  auto orphan = repo->Check(false);
  ASSERT_TRUE(orphan.ok());
  EXPECT_TRUE(orphan->clean());
  EXPECT_THAT(::testing::PrintToString(orphan->notes),
              HasSubstr("named by no readable snapshot"));
  auto ps = repo->Prune();
  ASSERT_TRUE(ps.ok()) << ps.status();
  EXPECT_EQ(ps->trees_deleted, 1u);
  EXPECT_TRUE(store_->Stat(tree).ok());
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(std::count_if(list->begin(), list->end(),
                          [](const BlobInfo& b) {
                            return b.name.rfind("tree-", 0) == 0;
                          }),
            1);
  ExpectRestoresSource(*repo, "");
  check = repo->Check(true);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->clean()) << ::testing::PrintToString(check->problems);
}

TEST_P(RepoTest, OnePercentChangeUploadsAboutThat) {
  MakeTree(16 << 20);
  auto repo = Open(*store_, key_);
  ASSERT_TRUE(repo->Backup(src_).ok());
  // New message rows appended (1 % of the database) and a new media file.
  auto rows = RandomBytes(db_.size() / 100, 11);
  db_.insert(db_.end(), rows.begin(), rows.end());
  WriteFile(src_ + "/chat.db", db_);
  WriteFile(src_ + "/media/b.jpg", RandomBytes(40 << 10, 12));
  RepoBackupStats st;
  auto snap = repo->Backup(src_, &st);
  ASSERT_TRUE(snap.ok()) << snap.status();
  const uint64_t changed = rows.size() + (40 << 10);
  EXPECT_GE(st.new_bytes, changed);
  // At most the last old chunk of the database is re-cut with the rows.
  EXPECT_LE(st.new_bytes, changed + ChunkerParams::kMax);
  EXPECT_EQ(st.files_read, 2u);
  ExpectRestoresSource(*repo, snap->id);
}

TEST_P(RepoTest, InsertedByteReusesLaterChunks) {
  MakeTree(16 << 20);
  auto repo = Open(*store_, key_);
  RepoBackupStats first;
  ASSERT_TRUE(repo->Backup(src_, &first).ok());
  db_.insert(db_.begin() + db_.size() / 2, 0x42);
  WriteFile(src_ + "/chat.db", db_);
  RepoBackupStats st;
  auto snap = repo->Backup(src_, &st);
  ASSERT_TRUE(snap.ok()) << snap.status();
  // Content-defined boundaries resynchronise: one or two chunks are new.
  EXPECT_GE(st.new_chunks, 1u);
  EXPECT_LE(st.new_chunks, 2u);
  EXPECT_LE(st.new_bytes, 2u * ChunkerParams::kMax);
  ExpectRestoresSource(*repo, snap->id);
}

TEST_P(RepoTest, RestoresOnePath) {
  MakeTree(1 << 20);
  auto repo = Open(*store_, key_);
  ASSERT_TRUE(repo->Backup(src_).ok());
  const std::string out = dir_ / "one";
  auto info = repo->Restore("", "media/a.jpg", out);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(ReadFile(out), ReadFile(src_ + "/media/a.jpg"));
  auto missing = repo->Restore("", "no/such", dir_ / "none");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST_P(RepoTest, WrongKeyIsPermissionDenied) {
  MakeTree(1 << 10);
  ASSERT_TRUE(Open(*store_, key_)->Backup(src_).ok());
  RepoOptions o;
  auto other = Repository::Open(*store_, BackupKey::Generate(), o);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kPermissionDenied);
}

// Tamper suite: every change by the store is detected and leaves nothing.
TEST_P(RepoTest, DroppedPackDetected) {
  MakeTree(1 << 20);
  auto repo = Open(*store_, key_);
  ASSERT_TRUE(repo->Backup(src_).ok());
  ASSERT_TRUE(store_->Delete(First("pack-")).ok());
  ExpectNoPartialRestore(*repo, absl::StatusCode::kDataLoss);
  auto check = repo->Check(false);
  ASSERT_TRUE(check.ok());
  EXPECT_FALSE(check->clean());
}

TEST_P(RepoTest, TruncatedPackDetected) {
  MakeTree(1 << 20);
  auto repo = Open(*store_, key_);
  ASSERT_TRUE(repo->Backup(src_).ok());
  const std::string pack = First("pack-");
  auto bytes = Get(pack);
  bytes.resize(bytes.size() / 2);
  Put(pack, bytes);
  ExpectNoPartialRestore(*repo, absl::StatusCode::kDataLoss);
  auto check = repo->Check(false);
  ASSERT_TRUE(check.ok());
  EXPECT_FALSE(check->clean());
}

TEST_P(RepoTest, BitFlipInPackDetected) {
  MakeTree(1 << 20);
  auto repo = Open(*store_, key_);
  ASSERT_TRUE(repo->Backup(src_).ok());
  const std::string pack = First("pack-");
  auto bytes = Get(pack);
  bytes[bytes.size() / 3] ^= 0x01;
  Put(pack, bytes);
  ExpectNoPartialRestore(*repo, absl::StatusCode::kDataLoss);
  auto shallow = repo->Check(false);
  ASSERT_TRUE(shallow.ok());
  EXPECT_TRUE(shallow->clean());  // sizes and structure still fine
  auto deep = repo->Check(true);
  ASSERT_TRUE(deep.ok());
  EXPECT_FALSE(deep->clean());
}

// A key holder's bug: a chunk sealed under an id that is not its content's
// keyed id. Restore trusts the seal (docs/backup-format.md, "What a restore
// verifies"); check --read-data recomputes every id and reports it.
TEST_P(RepoTest, ChunkSealedUnderAnotherIdIsFoundByCheckReadData) {
  MakeTree(1 << 20);
  auto repo = Open(*store_, key_);
  ASSERT_TRUE(repo->Backup(src_).ok());
  const std::string pack = First("pack-");
  ObjectId pack_id;
  ASSERT_TRUE(ParseObjectIdHex(pack.substr(5), pack_id));
  auto bytes = Get(pack);
  auto sealed_header = PackHeaderOf(bytes);
  ASSERT_TRUE(sealed_header.ok()) << sealed_header.status();
  const RepoKeys keys = RepoKeys::Derive(key_, ChunkIdFunction::kHmacSha256);
  auto header = keys.Open(RepoObjectKind::kPackHeader, pack_id, *sealed_header);
  ASSERT_TRUE(header.ok()) << header.status();
  auto index = DecodeIndex(*header);
  ASSERT_TRUE(index.ok()) << index.status();
  const BlobLocation loc = index->packs.at(0).blobs.at(0);
  auto sealed = std::span(bytes).subspan(loc.offset, loc.length);
  auto pt = keys.Open(RepoObjectKind::kChunk, loc.id, sealed);
  ASSERT_TRUE(pt.ok()) << pt.status();
  ASSERT_EQ(pt->at(0), 0) << "random data is stored raw";
  pt->back() ^= 0x01;  // other content, same length, same id
  auto resealed = keys.Seal(RepoObjectKind::kChunk, loc.id, *pt);
  ASSERT_TRUE(resealed.ok());
  ASSERT_EQ(resealed->size(), sealed.size());
  std::copy(resealed->begin(), resealed->end(), sealed.begin());
  Put(pack, bytes);
  auto shallow = repo->Check(false);
  ASSERT_TRUE(shallow.ok());
  EXPECT_TRUE(shallow->clean());
  auto deep = repo->Check(true);
  ASSERT_TRUE(deep.ok());
  EXPECT_THAT(deep->problems,
              ::testing::Contains(HasSubstr("does not match its id")));
}

TEST_P(RepoTest, SwappedAndDuplicatedPacksDetected) {
  MakeTree(3 << 20);
  auto repo = Open(*store_, key_, 1 << 20);  // several packs
  ASSERT_TRUE(repo->Backup(src_).ok());
  std::vector<std::string> packs;
  auto list = store_->List();
  ASSERT_TRUE(list.ok()) << list.status();
  for (const BlobInfo& b : *list) {
    if (b.name.rfind("pack-", 0) == 0) packs.push_back(b.name);
  }
  ASSERT_GE(packs.size(), 2u);
  auto a = Get(packs[0]);
  auto b = Get(packs[1]);
  Put(packs[0], b);  // a duplicate of pack 1 under pack 0's name
  ExpectNoPartialRestore(*repo, absl::StatusCode::kDataLoss);
  Put(packs[1], a);  // now swapped
  ExpectNoPartialRestore(*repo, absl::StatusCode::kDataLoss);
}

TEST_P(RepoTest, DroppedIndexDetected) {
  MakeTree(1 << 20);
  auto repo = Open(*store_, key_);
  ASSERT_TRUE(repo->Backup(src_).ok());
  ASSERT_TRUE(store_->Delete(First("index-")).ok());
  ExpectNoPartialRestore(*repo, absl::StatusCode::kDataLoss);
}

TEST_P(RepoTest, ReplayedSnapshotUnderNewNameDetected) {
  MakeTree(1 << 20);
  auto repo = Open(*store_, key_);
  auto s1 = repo->Backup(src_);
  ASSERT_TRUE(s1.ok());
  // The store presents the old snapshot as a newer one.
  Put(SnapshotName(s1->seq + 1, ObjectId{1, 2, 3}), Get(s1->object));
  EXPECT_EQ(repo->Snapshots().status().code(), absl::StatusCode::kDataLoss);
  auto check = repo->Check(false);
  ASSERT_TRUE(check.ok());
  EXPECT_FALSE(check->clean());
}

TEST_P(RepoTest, SnapshotFromAnotherRepositoryDetected) {
  MakeTree(1 << 20);
  auto repo = Open(*store_, key_);
  ASSERT_TRUE(repo->Backup(src_).ok());
  auto other_store = OpenStore("b");
  auto other = Open(*other_store, BackupKey::Generate());
  auto foreign = other->Backup(src_);
  ASSERT_TRUE(foreign.ok());
  auto bytes = GetBytes(*other_store, foreign->object);
  ASSERT_TRUE(bytes.ok());
  Put(SnapshotName(5, ObjectId{9}), *bytes);
  EXPECT_EQ(repo->Snapshots().status().code(), absl::StatusCode::kDataLoss);
}

// The store swaps the snapshot objects of two repositories under different
// keys (each keeps the other's name): both refuse them, nothing restored.
TEST_P(RepoTest, SnapshotsSwappedBetweenRepositoriesDetected) {
  MakeTree(1 << 20);
  auto repo = Open(*store_, key_);
  auto mine = repo->Backup(src_);
  ASSERT_TRUE(mine.ok()) << mine.status();
  auto other_store = OpenStore("b");
  auto other = Open(*other_store, BackupKey::Generate());
  auto theirs = other->Backup(src_);
  ASSERT_TRUE(theirs.ok()) << theirs.status();
  auto their_bytes = GetBytes(*other_store, theirs->object);
  ASSERT_TRUE(their_bytes.ok());
  ASSERT_TRUE(PutBytes(*other_store, theirs->object, Get(mine->object)).ok());
  Put(mine->object, *their_bytes);
  for (Repository* r : {repo.get(), other.get()}) {
    auto snaps = r->Snapshots();
    EXPECT_EQ(snaps.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(snaps.status().message()),
                HasSubstr("failed authentication"));
    auto check = r->Check(false);
    ASSERT_TRUE(check.ok()) << check.status();
    EXPECT_FALSE(check->clean());
  }
  ExpectNoPartialRestore(*repo, absl::StatusCode::kDataLoss);
}

// Concurrent writers (docs/backup-format.md): a prune is refused while a
// backup holds a fresh lock, and changes nothing; a stale lock is removed.
TEST_P(RepoTest, PruneRefusedWhileABackupHoldsALock) {
  MakeTree(1 << 20);
  auto repo = Open(*store_, key_);
  ASSERT_TRUE(repo->Backup(src_).ok());
  WriteFile(src_ + "/chat.db", RandomBytes(1 << 20, 99));
  ASSERT_TRUE(repo->Backup(src_).ok());
  ASSERT_TRUE(repo->Forget(1).ok());
  const RepoKeys keys = RepoKeys::Derive(key_, ChunkIdFunction::kHmacSha256);
  auto before = store_->List();
  ASSERT_TRUE(before.ok());
  {
    auto held = RepoLock::Acquire(*store_, keys, repo->repo_id(), {});
    ASSERT_TRUE(held.ok()) << held.status();
    auto refused = repo->Prune();
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(std::string(refused.status().message()),
                HasSubstr("a backup from"));
    auto after = store_->List();
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->size(), before->size() + 1);  // + the held lock
  }
  // A backup killed while holding its lock (a child process that exits
  // without releasing it): its pid is gone, so prune removes it and runs.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto held = RepoLock::Acquire(*store_, keys, repo->repo_id(), {});
    if (held.ok()) held->release();  // never deleted: "killed"
    ::_exit(held.ok() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto ps = repo->Prune();
  ASSERT_TRUE(ps.ok()) << ps.status();
  EXPECT_GT(ps->packs_deleted, 0u);
  auto left = store_->List();
  ASSERT_TRUE(left.ok());
  for (const BlobInfo& b : *left) EXPECT_NE(b.name.rfind("lock-", 0), 0u);
  ExpectRestoresSource(*repo, "");
}

// A backup waits for a prune's lock, up to lock_wait_s; then Unavailable
// and no snapshot.
TEST_P(RepoTest, BackupWaitsForAPruneLock) {
  MakeTree(1 << 20);
  auto repo = Open(*store_, key_);
  ASSERT_TRUE(repo->Backup(src_).ok());
  const RepoKeys keys = RepoKeys::Derive(key_, ChunkIdFunction::kHmacSha256);
  auto prune =
      RepoLock::Acquire(*store_, keys, repo->repo_id(), {.exclusive = true});
  ASSERT_TRUE(prune.ok()) << prune.status();
  RepoOptions o;
  o.lock_wait_s = 0;
  auto waiting = Repository::Open(*store_, key_, o);
  ASSERT_TRUE(waiting.ok());
  auto refused = (*waiting)->Backup(src_);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("a prune"));
  prune->reset();  // released
  auto snaps = repo->Snapshots();
  ASSERT_TRUE(snaps.ok());
  EXPECT_EQ(snaps->size(), 1u);
  EXPECT_TRUE((*waiting)->Backup(src_).ok());
}

TEST_P(RepoTest, RolledBackHeadDetected) {
  MakeTree(1 << 20);
  auto repo = Open(*store_, key_);
  ASSERT_TRUE(repo->Backup(src_).ok());
  auto old_head = Get(Repository::kHeadName);
  auto s2 = repo->Backup(src_);
  ASSERT_TRUE(s2.ok());
  // The store serves the older head and hides the newer snapshot.
  Put(Repository::kHeadName, old_head);
  ASSERT_TRUE(store_->Delete(s2->object).ok());
  RepoOptions o;
  o.state_dir = dir_ / "state";
  auto reopened = Repository::Open(*store_, key_, o);
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(reopened.status().message()),
              HasSubstr("rolled back"));
}

// Every object another client may be writing while it is read (config,
// head, index, snapshot, lock), served empty or cut short a few times as by
// a non-atomic S3 server: read again, nothing is called damaged, the backup
// deduplicates against the index and the prune sees the backup's lock.
TEST_P(RepoTest, ShortReadDuringAnotherWriteIsReadAgain) {
  MakeTree(1 << 20);
  ASSERT_TRUE(Open(*store_, key_)->Backup(src_).ok());
  for (const auto& [prefix, keep] :
       std::vector<std::pair<std::string, size_t>>{{"config", 0},
                                                   {"config", 50},
                                                   {"head", 0},
                                                   {"head", 30},
                                                   {"index-", 0},
                                                   {"index-", 40},
                                                   {"snap-", 0},
                                                   {"snap-", 100}}) {
    SCOPED_TRACE(prefix + " cut to " + std::to_string(keep));
    TornReadStore torn(*store_, prefix, 3, keep);
    auto repo = Open(torn, key_);
    ASSERT_NE(repo, nullptr);
    RepoBackupStats st;
    auto snap = repo->Backup(src_, &st);
    ASSERT_TRUE(snap.ok()) << snap.status();
    EXPECT_EQ(st.new_chunks, 0u);
    EXPECT_GT(torn.reads(), 3);
  }
  auto repo = Open(*store_, key_);
  auto held = RepoLock::Acquire(
      *store_, RepoKeys::Derive(key_, ChunkIdFunction::kHmacSha256),
      repo->repo_id(), {});
  ASSERT_TRUE(held.ok()) << held.status();
  TornReadStore torn(*store_, "lock-", 3, 0);
  auto pruning = Open(torn, key_);
  auto refused = pruning->Prune();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("a backup from"));
}

// A head that stays empty is DataLoss after a bounded number of reads,
// saying so; nothing in the store is changed, and a later read succeeds.
TEST_P(RepoTest, HeadShortOnEveryReadIsDataLossAndLosesNothing) {
  MakeTree(1 << 20);
  ASSERT_TRUE(Open(*store_, key_)->Backup(src_).ok());
  auto before = store_->List();
  ASSERT_TRUE(before.ok());
  TornReadStore torn(*store_, Repository::kHeadName, 1000, 0);
  RepoOptions o;
  o.state_dir = dir_ / "state";
  auto repo = Repository::Open(torn, key_, o);
  EXPECT_EQ(repo.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(repo.status().message()),
              HasSubstr("head truncated: 0 bytes (the same on 6 reads"));
  EXPECT_EQ(torn.reads(), 6);
  auto after = store_->List();
  ASSERT_TRUE(after.ok());
  auto named = [](const std::vector<BlobInfo>& list) {
    std::map<std::string, uint64_t> m;
    for (const BlobInfo& b : list) m[b.name] = b.size;
    return m;
  };
  EXPECT_EQ(named(*after), named(*before));
  ExpectRestoresSource(*Open(*store_, key_), "");
}

// Device B commits between device A's read and write of the head, so the
// head names A's older snapshot: B's next open is not a rollback, and its
// backups go on (a rollback that also hides B's snapshot still is one:
// RolledBackHeadDetected).
TEST_P(RepoTest, HeadLeftOlderByAConcurrentCommitIsNotARollback) {
  MakeTree(1 << 20);
  ASSERT_TRUE(Open(*store_, key_)->Backup(src_).ok());
  RepoOptions ob;
  ob.state_dir = dir_ / "state-b";
  auto b_store = OpenStore("a");
  auto b = Repository::Open(*b_store, key_, ob);
  ASSERT_TRUE(b.ok()) << b.status();
  uint64_t b_seq = 0;
  PutHookStore racing(*store_, BeforeFirstPutOf(Repository::kHeadName, [&] {
    auto snap = (*b)->Backup(src_);
    ASSERT_TRUE(snap.ok()) << snap.status();
    b_seq = snap->seq;
  }));
  auto a_snap = Open(racing, key_)->Backup(src_);
  ASSERT_TRUE(a_snap.ok()) << a_snap.status();
  EXPECT_LT(a_snap->seq, b_seq);
  auto reopened = Repository::Open(*b_store, key_, ob);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto next = (*reopened)->Backup(src_);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_GT(next->seq, b_seq);
}

// A backup that died after its packs were stored (before its index) is
// resumed: the next backup adopts the packs and uploads no chunk again.
TEST_P(RepoTest, ResumeAfterInterruptedBackupFault) {
  MakeTree(4 << 20);
  {
    PutHookStore dying(*store_, FailPutsOf("index-"));
    auto repo = Open(dying, key_);
    EXPECT_FALSE(repo->Backup(src_).ok());
  }
  auto repo = Open(*store_, key_);
  RepoBackupStats st;
  auto snap = repo->Backup(src_, &st);
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_GE(st.packs_adopted, 1u);
  EXPECT_EQ(st.packs_uploaded, 0u);
  EXPECT_EQ(st.new_chunks, 0u);
  ExpectRestoresSource(*repo, snap->id);
}

// Cancelled midway (the SDK's cancellation): every stage stops, no index
// or snapshot is written, what was uploaded is adopted by the next backup,
// and progress was reported with new vs deduplicated bytes.
TEST_P(RepoTest, CancelledBackupStopsAndResumes) {
  MakeTree(6 << 20);
  RepoOptions o;
  o.create = true;
  o.state_dir = dir_ / "state";
  o.pack_target = 512 << 10;
  // Cancelled once a pack is stored (seen through another instance: the
  // repository's own is in use by its upload stage). It is polled per
  // window: from the second poll on (chat.db, walked first, is then queued,
  // 12 packs' worth) it waits for the upload stage, which a loaded machine
  // may run late, rather than let the backup finish uncancelled.
  auto watcher = OpenStore("a");
  RepoBackupStats last;
  int polls = 0;
  o.cancelled = [&] {
    const int waits = ++polls == 1 ? 1 : 6000;
    for (int i = 0; i < waits; ++i) {  // bounded: 6000 x >= 10 ms
      auto l = watcher->List();
      if (l.ok() && std::any_of(l->begin(), l->end(), [](const BlobInfo& b) {
            return b.name.rfind("pack-", 0) == 0;
          })) {
        return true;
      }
      if (i + 1 < waits)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  o.progress = [&](const RepoBackupStats& st) { last = st; };
  {
    auto repo = Repository::Open(*store_, key_, o);
    ASSERT_TRUE(repo.ok()) << repo.status();
    auto cancelled = (*repo)->Backup(src_);
    EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled)
        << cancelled.status();
  }
  EXPECT_GT(last.new_bytes, 0u);
  EXPECT_GT(last.planned_bytes, last.new_bytes);
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  for (const BlobInfo& b : *list) {
    EXPECT_NE(b.name.rfind("snap-", 0), 0u) << b.name;
    EXPECT_NE(b.name.rfind("index-", 0), 0u) << b.name;
    EXPECT_NE(b.name.rfind("lock-", 0), 0u) << b.name;  // released
  }
  o.cancelled = nullptr;
  auto repo = Repository::Open(*store_, key_, o);
  ASSERT_TRUE(repo.ok());
  RepoBackupStats st;
  auto snap = (*repo)->Backup(src_, &st);
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_LT(st.new_bytes, st.bytes);  // the cancelled run's packs were kept
  ExpectRestoresSource(**repo, snap->id);
}

TEST_P(RepoTest, ForgetAndPruneFreeSpaceAndKeepTheRest) {
  MakeTree(2 << 20);
  auto repo = Open(*store_, key_, 512 << 10);
  ASSERT_TRUE(repo->Backup(src_).ok());
  WriteFile(src_ + "/chat.db", RandomBytes(2 << 20, 21));  // all new
  ASSERT_TRUE(repo->Backup(src_).ok());
  WriteFile(src_ + "/media/c.jpg", RandomBytes(200 << 10, 22));
  auto last = repo->Backup(src_);
  ASSERT_TRUE(last.ok());
  auto gone = repo->Forget(2);
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(gone->size(), 1u);
  auto ps = repo->Prune();
  ASSERT_TRUE(ps.ok()) << ps.status();
  EXPECT_GT(ps->chunks_dropped, 0u);
  EXPECT_GT(ps->packs_deleted, 0u);
  auto snaps = repo->Snapshots();
  ASSERT_TRUE(snaps.ok());
  ASSERT_EQ(snaps->size(), 2u);
  ExpectRestoresSource(*repo, last->id);
  auto check = repo->Check(true);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->clean()) << ::testing::PrintToString(check->problems);
  EXPECT_EQ(check->chunks_read, check->chunks);
  EXPECT_TRUE(repo->Backup(src_).ok());  // the pruned repository takes more
}

// One flipped bit in any object (config, head, index, snapshot, pack) is
// refused, on opening or restoring, and nothing is left behind.
TEST_P(RepoTest, BitFlipInEveryObjectDetected) {
  MakeTree(1 << 20);
  ASSERT_TRUE(Open(*store_, key_)->Backup(src_).ok());
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  for (const BlobInfo& b : *list) {
    const auto original = Get(b.name);
    for (size_t at : {size_t{0}, original.size() / 2, original.size() - 1}) {
      auto bytes = original;
      bytes[at] ^= 0x10;
      Put(b.name, bytes);
      RepoOptions o;
      auto repo = Repository::Open(*store_, key_, o);
      const std::string out = dir_ / "flipped";
      absl::Status s = repo.ok() ? repo.value()->Restore("", "", out).status()
                                 : repo.status();
      EXPECT_FALSE(s.ok()) << b.name << " byte " << at;
      EXPECT_FALSE(fs::exists(out)) << b.name;
      fs::remove_all(out);
    }
    Put(b.name, original);
  }
  ExpectRestoresSource(*Open(*store_, key_), "");
}

INSTANTIATE_TEST_SUITE_P(Stores, RepoTest,
                         ::testing::Values("file", "s3", "webdav", "callback"),
                         [](const auto& info) { return info.param; });

// The chunk-id function is in the sealed config (docs/backup-format.md, "The
// chunk-id function"): a new repository names HMAC-SHA256 (2) at version 4,
// computes its ids with it, and backs up again with exact dedup; a function
// this bkv does not know is refused before anything is written; a version
// rewritten in the clear does not select another function.
// HMAC-SHA256 under its own HKDF label, computed here with OpenSSL's
// one-shot HMAC rather than by RepoKeys.
ChunkId HmacSha256Id(const BackupKey& key, std::span<const uint8_t> pt) {
  SecretBytes prk = HkdfExtract(AsBytes("bkv repo v2"), key.secret().Reveal());
  SecretBytes k = HkdfExpand(
      prk.Reveal(), AsBytes("bkv repo v2 chunk id key hmac-sha256"), 32);
  ChunkId id;
  unsigned int n = 0;
  HMAC(EVP_sha256(), k.Reveal().data(), static_cast<int>(k.Reveal().size()),
       pt.data(), pt.size(), id.data(), &n);
  EXPECT_EQ(n, id.size());
  return id;
}

// The only chunk of the only pack of a repository: its id and plaintext.
std::pair<ChunkId, std::vector<uint8_t>> OnlyChunk(const fs::path& store,
                                                   const RepoKeys& keys) {
  for (const auto& e : fs::directory_iterator(store)) {
    const std::string name = e.path().filename();
    if (name.rfind("pack-", 0) != 0) continue;
    ObjectId pack_id;
    EXPECT_TRUE(ParseObjectIdHex(name.substr(5), pack_id));
    const auto bytes = ReadFile(e.path());
    auto header =
        keys.Open(RepoObjectKind::kPackHeader, pack_id, *PackHeaderOf(bytes));
    auto index = DecodeIndex(*header);
    const BlobLocation loc = index->packs.at(0).blobs.at(0);
    auto pt = keys.Open(RepoObjectKind::kChunk, loc.id,
                        std::span(bytes).subspan(loc.offset, loc.length));
    EXPECT_TRUE(pt.ok()) << pt.status();
    return {loc.id, pt.ok() ? *pt : std::vector<uint8_t>{}};
  }
  ADD_FAILURE() << "no pack";
  return {};
}

constexpr size_t kHeader = 8 + 2 + 32;  // magic, version, key check

// A new repository in `store` with one backup of dir/src/f.
void BackUpOneFile(const TempDir& dir, const BackupKey& key, BlobStore& store,
                   const std::vector<uint8_t>& content) {
  fs::create_directories(dir / "src");
  WriteFile(dir / "src/f", content);
  RepoOptions o;
  o.create = true;
  auto repo = Repository::Open(store, key, o);
  ASSERT_TRUE(repo.ok()) << repo.status();
  ASSERT_TRUE((*repo)->Backup(dir / "src").ok());
}

TEST(RepoConfigTest, ChunkIdFunctionIsSealedInTheConfig) {
  TempDir dir;
  const std::vector<uint8_t> content = RandomBytes(100 << 10, 11);
  BackupKey key = BackupKey::Generate();
  auto store = OpenBlobStore("file://" + (dir / "store"));
  ASSERT_TRUE(store.ok());
  // One chunk (below the minimum).
  ASSERT_NO_FATAL_FAILURE(BackUpOneFile(dir, key, **store, content));
  RepoOptions o;
  o.create = true;
  const std::string cfg_path = dir / "store/config";
  const std::vector<uint8_t> cfg = ReadFile(cfg_path);
  ASSERT_EQ(cfg.size(), kHeader + RepoKeys::kOverhead + 16 + 2);
  EXPECT_EQ(cfg[9], 4);
  const RepoKeys keys = RepoKeys::Derive(key, ChunkIdFunction::kHmacSha256);
  // The clear header is the seal's AD id.
  auto pt = keys.Open(RepoObjectKind::kConfig, std::span(cfg).first(kHeader),
                      std::span(cfg).subspan(kHeader));
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_FALSE(
      keys.Open(RepoObjectKind::kConfig, {}, std::span(cfg).subspan(kHeader))
          .ok());
  EXPECT_EQ(pt->at(16), 0);
  EXPECT_EQ(pt->at(17), 2);
  // A new repository's ids are HMAC-SHA256 (stored raw: format byte 0).
  auto [id, chunk] = OnlyChunk(dir / "store", keys);
  ASSERT_EQ(chunk.size(), content.size() + 1);
  EXPECT_EQ(chunk[0], 0);
  EXPECT_EQ(id, HmacSha256Id(key, content));
  // Deduplicated exactly, and check --read-data recomputes the same ids.
  auto repo = Repository::Open(**store, key, {});
  ASSERT_TRUE(repo.ok()) << repo.status();
  RepoBackupStats st;
  WriteFile(dir / "src/g", content);
  ASSERT_TRUE((*repo)->Backup(dir / "src", &st).ok());
  EXPECT_EQ(st.new_chunks, 0u);
  auto check = (*repo)->Check(true);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->clean()) << ::testing::PrintToString(check->problems);

  // A config of `version` sealed as that version is (AD: the header from 4).
  auto rewrite = [&](uint8_t version, uint16_t function, size_t extra = 0) {
    std::vector<uint8_t> id(pt->begin(), pt->begin() + 16);
    if (version > 3) {
      id.insert(id.end(), {uint8_t(function >> 8), uint8_t(function)});
    }
    id.resize(id.size() + extra);
    std::vector<uint8_t> out(cfg.begin(), cfg.begin() + kHeader);
    out[9] = version;
    auto sealed = keys.Seal(RepoObjectKind::kConfig,
                            version > 3 ? std::span<const uint8_t>(out)
                                        : std::span<const uint8_t>(),
                            id);
    EXPECT_TRUE(sealed.ok());
    out.insert(out.end(), sealed->begin(), sealed->end());
    WriteFile(cfg_path, out);
    return out;
  };
  auto count = [&] {
    return std::distance(fs::directory_iterator(dir / "store"),
                         fs::directory_iterator());
  };
  const auto objects = count();
  rewrite(4, 99);
  auto newer = Repository::Open(**store, key, o);
  EXPECT_EQ(newer.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(newer.status().message(),
              HasSubstr("chunk-id function 99 is not supported: it was "
                        "written by a newer bkv: upgrade bkv"));
  EXPECT_EQ(count(), objects);
  // An authentic newer version (its own plaintext) asks for an upgrade.
  rewrite(5, 2, 7);
  EXPECT_EQ(Repository::Open(**store, key, o).status().message(),
            "repository version is not supported: upgrade bkv");
  // The store's edit of the version byte, of a version 4 config to any
  // other version, or of a version 3 one to 4 or above, is damage.
  auto expect_tampered = [&](std::vector<uint8_t> bytes, uint8_t version) {
    bytes[9] = version;
    WriteFile(cfg_path, bytes);
    auto s = Repository::Open(**store, key, o).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << int(version) << s;
    EXPECT_THAT(s.message(), HasSubstr("config failed authentication"));
    EXPECT_EQ(count(), objects);
  };
  for (uint8_t v : {3, 5, 255}) expect_tampered(cfg, v);
  const auto v3 = rewrite(3, 1);
  expect_tampered(v3, 4);
  rewrite(4, 2);
  auto restored = Repository::Open(**store, key, o);
  EXPECT_TRUE(restored.ok()) << restored.status();
}

// A store whose config went missing (deleted, or a 404 the store should not
// have said) is not given a new one over its objects (review finding 2):
// nothing is written, and with the config back every snapshot restores.
TEST(RepoConfigTest, MissingConfigIsNotRecreatedOverRepositoryObjects) {
  TempDir dir;
  BackupKey key = BackupKey::Generate();
  auto store = OpenBlobStore("file://" + (dir / "store"));
  ASSERT_TRUE(store.ok());
  ASSERT_NO_FATAL_FAILURE(
      BackUpOneFile(dir, key, **store, RandomBytes(100 << 10, 12)));
  RepoOptions o;
  o.create = true;
  const std::vector<uint8_t> cfg = ReadFile(dir / "store/config");
  fs::remove(dir / "store/config");
  auto count = [&] {
    return std::distance(fs::directory_iterator(dir / "store"),
                         fs::directory_iterator());
  };
  const auto objects = count();
  auto lost = Repository::Open(**store, key, o);
  EXPECT_EQ(lost.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(lost.status().message(),
              HasSubstr("holds a bkv repository (head, ...) but its config is "
                        "missing: nothing was written"));
  EXPECT_FALSE(fs::exists(dir / "store/config"));
  EXPECT_EQ(count(), objects);
  WriteFile(dir / "store/config", cfg);
  auto repo = Repository::Open(**store, key, {});
  ASSERT_TRUE(repo.ok()) << repo.status();
  ASSERT_TRUE((*repo)->Restore("", "", dir / "out").ok());
  EXPECT_EQ(ReadFile(dir / "out/f"), ReadFile(dir / "src/f"));
}

// A version 4 config may name function 1 (docs/backup-format.md): the
// previous release's repository, its config rewritten so, deduplicates
// exactly against its keyed SHA-512 chunks and checks clean.
TEST(RepoConfigTest, VersionFourNamingFunctionOneKeepsItsIds) {
  const char* src = getenv("BKV_SOURCE_DIR");
  ASSERT_NE(src, nullptr) << "BKV_SOURCE_DIR is not set";
  const fs::path vectors = fs::path(src) / "tests/vectors/repo-v2";
  TempDir dir;
  fs::copy(vectors / "store", dir / "old", fs::copy_options::recursive);
  const auto text = ReadFile(vectors / "key");  // one line
  auto key = BackupKey::Parse(std::string(text.begin(), text.end() - 1));
  ASSERT_TRUE(key.ok()) << key.status();
  const RepoKeys keys =
      RepoKeys::Derive(*key, ChunkIdFunction::kHmacSha512Trunc);
  std::vector<uint8_t> cfg = ReadFile(dir / "old/config");
  ASSERT_EQ(cfg[9], 2);
  auto pt =
      keys.Open(RepoObjectKind::kConfig, {}, std::span(cfg).subspan(kHeader));
  ASSERT_TRUE(pt.ok()) << pt.status();
  pt->insert(pt->end(), {0, 1});
  cfg.resize(kHeader);
  cfg[9] = 4;
  auto sealed = keys.Seal(RepoObjectKind::kConfig, cfg, *pt);
  ASSERT_TRUE(sealed.ok());
  cfg.insert(cfg.end(), sealed->begin(), sealed->end());
  WriteFile(dir / "old/config", cfg);
  auto store = OpenBlobStore("file://" + (dir / "old"));
  ASSERT_TRUE(store.ok());
  auto repo = Repository::Open(**store, *key, {});
  ASSERT_TRUE(repo.ok()) << repo.status();
  RepoBackupStats st;
  ASSERT_TRUE((*repo)->Backup(vectors / "expected", &st).ok());
  EXPECT_EQ(st.new_chunks, 0u);
  EXPECT_EQ(ReadFile(dir / "old/config"), cfg);
  auto check = (*repo)->Check(true);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->clean()) << ::testing::PrintToString(check->problems);
}

// Another client's first backup creates the config right after this one
// listed the store empty (two first backups at once).
class ConfigRaceStore final : public ForwardingBlobStore {
 public:
  ConfigRaceStore(BlobStore& inner, const BackupKey& key)
      : ForwardingBlobStore(inner), key_(key) {}
  absl::StatusOr<std::vector<BlobInfo>> List() override {
    auto list = inner_.List();
    if (!raced_) {
      raced_ = true;
      RepoOptions o;
      o.create = true;
      auto other = Repository::Open(inner_, key_, o);
      EXPECT_TRUE(other.ok()) << other.status();
      if (other.ok()) winner = (*other)->repo_id();
    }
    return list;
  }
  ObjectId winner{};

 private:
  const BackupKey& key_;
  bool raced_ = false;
};

// The first config stands (the file store's create-only put) and the
// second client uses it rather than replacing it (review finding 2).
TEST(RepoConfigTest, FirstOfTwoConfigsCreatedAtOnceStands) {
  TempDir dir;
  BackupKey key = BackupKey::Generate();
  auto store = OpenBlobStore("file://" + (dir / "store"));
  ASSERT_TRUE(store.ok());
  ConfigRaceStore racing(**store, key);
  RepoOptions o;
  o.create = true;
  auto repo = Repository::Open(racing, key, o);
  ASSERT_TRUE(repo.ok()) << repo.status();
  EXPECT_EQ((*repo)->repo_id(), racing.winner);
  auto again = Repository::Open(**store, key, {});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->repo_id(), racing.winner);
}

// The pack trailer as a store may serve it: too short, a length past the
// start, a length that fills the pack exactly (the repo_pack_fuzzer's
// property, here as fixed cases).
TEST(RepoCodecTest, PackHeaderOfStaysInsideThePack) {
  const std::vector<uint8_t> short_pack = {0, 0, 1};
  EXPECT_EQ(PackHeaderOf(short_pack).status().code(),
            absl::StatusCode::kDataLoss);
  const std::vector<uint8_t> past = {7, 7, 0, 0, 0, 3};
  EXPECT_EQ(PackHeaderOf(past).status().code(), absl::StatusCode::kDataLoss);
  const std::vector<uint8_t> huge = {7, 0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(PackHeaderOf(huge).status().code(), absl::StatusCode::kDataLoss);
  const std::vector<uint8_t> exact = {7, 8, 0, 0, 0, 2};
  auto h = PackHeaderOf(exact);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->data(), exact.data());
  EXPECT_EQ(h->size(), 2u);
  const std::vector<uint8_t> empty = {9, 0, 0, 0, 0};
  auto e = PackHeaderOf(empty);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->size(), 0u);
}

// Stops the process (from the store's point of view) after `ops` writes or
// deletes: every later call fails, as after a SIGKILL.
class KillAfterStore final : public BlobStore {
 public:
  KillAfterStore(BlobStore& inner, int ops) : inner_(inner), left_(ops) {}
  absl::Status Put(std::string_view name, ByteSource& source) override {
    if (!Spend()) return Dead();
    return inner_.Put(name, source);
  }
  absl::Status Get(std::string_view n, const ByteSink& s) override {
    if (left_ < 0) return Dead();
    return inner_.Get(n, s);
  }
  absl::StatusOr<std::vector<BlobInfo>> List() override {
    if (left_ < 0) return Dead();
    return inner_.List();
  }
  absl::Status Delete(std::string_view n) override {
    if (!Spend()) return Dead();
    return inner_.Delete(n);
  }
  absl::StatusOr<BlobInfo> Stat(std::string_view n) override {
    if (left_ < 0) return Dead();
    return inner_.Stat(n);
  }
  std::string url() const override { return inner_.url(); }
  bool killed() const { return left_ < 0; }

 private:
  bool Spend() { return left_-- > 0; }
  static absl::Status Dead() { return absl::AbortedError("killed"); }
  BlobStore& inner_;
  int left_;
};

// A prune killed after each of its writes and deletes in turn (every kill
// point of the run) leaves every remaining snapshot restorable byte for
// byte, and a later prune finishes the job.
TEST(RepoPruneTest, KilledPruneKeepsEverySnapshotFault) {
  TempDir dir;
  const std::string src = dir / "src";
  fs::create_directories(src);
  BackupKey key = BackupKey::Generate();
  const std::string pristine = dir / "pristine";
  std::vector<std::vector<uint8_t>> versions;
  {
    auto store = OpenBlobStore("file://" + pristine);
    ASSERT_TRUE(store.ok());
    RepoOptions o;
    o.create = true;
    o.pack_target = 256 << 10;  // many packs, many kill points
    auto repo = Repository::Open(**store, key, o);
    ASSERT_TRUE(repo.ok());
    for (uint32_t v = 0; v < 10; ++v) {
      auto data = RandomBytes(1 << 20, 100 + v);
      auto keep = RandomBytes(1 << 20, 7);  // shared by every version
      data.insert(data.end(), keep.begin(), keep.end());
      WriteFile(src + "/db", data);
      versions.push_back(data);
      // Small files, half of them changed each time, share packs with
      // live and dead chunks: prune must repack them.
      for (uint32_t f = 0; f < 12; ++f) {
        WriteFile(src + "/m" + std::to_string(f),
                  RandomBytes(24 << 10, f % 2 ? 1000 + f : 2000 + f + 50 * v));
      }
      ASSERT_TRUE((*repo)->Backup(src).ok());
    }
    ASSERT_TRUE((*repo)->Forget(2).ok());
  }
  int points = 0;
  for (int kill = 0; kill < 400; ++kill) {  // bounded; ends when not killed
    const std::string copy = dir / ("run" + std::to_string(kill));
    fs::copy(pristine, copy, fs::copy_options::recursive);
    auto store = OpenBlobStore("file://" + copy);
    ASSERT_TRUE(store.ok());
    KillAfterStore dying(**store, kill);
    {
      auto repo = Repository::Open(dying, key, RepoOptions{});
      ASSERT_TRUE(repo.ok());
      auto ps = (*repo)->Prune();
      if (!dying.killed()) {
        ASSERT_TRUE(ps.ok()) << ps.status();
        fs::remove_all(copy);
        break;
      }
    }
    ++points;
    // The "killed" prune ran in this process, so its lock does not look
    // dead (a real one's pid is gone, see repo_process_test.cc): remove it.
    for (const auto& e : fs::directory_iterator(copy)) {
      if (e.path().filename().string().rfind("lock-", 0) == 0) {
        fs::remove(e.path());
      }
    }
    auto repo = Repository::Open(**store, key, RepoOptions{});
    ASSERT_TRUE(repo.ok());
    auto snaps = (*repo)->Snapshots();
    ASSERT_TRUE(snaps.ok()) << snaps.status();
    ASSERT_EQ(snaps->size(), 2u);
    for (size_t i = 0; i < snaps->size(); ++i) {
      const std::string out =
          dir / ("out" + std::to_string(kill) + "-" + std::to_string(i));
      auto r = (*repo)->Restore((*snaps)[i].id, "", out);
      ASSERT_TRUE(r.ok()) << "kill point " << kill << ": " << r.status();
      EXPECT_EQ(ReadFile(out + "/db"), versions[versions.size() - 2 + i])
          << kill;
      fs::remove_all(out);
    }
    auto again = (*repo)->Prune();
    ASSERT_TRUE(again.ok()) << "kill point " << kill << ": " << again.status();
    auto check = (*repo)->Check(true);
    ASSERT_TRUE(check.ok());
    EXPECT_TRUE(check->clean())
        << kill << ::testing::PrintToString(check->problems);
    fs::remove_all(copy);
  }
  EXPECT_GE(points, 30);
}

// The backup's working set is bounded whatever the data size: while the
// first pack's upload is stalled, the reader hands the packer no more than
// the fixed buffers hold (docs/backup-format.md, "Working set"): the two
// pack buffers, a chunk in each sealer, the raw chunk buffers and the one
// chunk the reader waits to hand over. Unbounded queues would let it read
// the whole file meanwhile.
TEST(RepoMemoryTest, StalledUploadStopsTheReaderWithinTheWorkingSet) {
  TempDir dir;
  const std::string src = dir / "src";
  fs::create_directories(src);
  WriteFile(src + "/db", RandomBytes(64 << 20, 21));  // incompressible
  // Two packs of at least this hold more than the 8 MiB read window, so the
  // reader gets through its first window (and reports progress) before
  // anything can stop it.
  constexpr size_t kTarget = 4 << 20;
  constexpr uint64_t kMax = ChunkerParams::kMax;
  const uint64_t sealers =
      std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
  const uint64_t bound = 2 * (kTarget + kMax) + (2 * sealers + 3) * kMax;
  ASSERT_LT(bound, 48u << 20);  // well below the data

  std::mutex mu;
  std::condition_variable moved;
  uint64_t handed = 0;  // new bytes handed to the packer, under mu
  uint64_t during_stall = 0;
  auto store = OpenBlobStore("file://" + (dir / "store"));
  ASSERT_TRUE(store.ok());
  RepoOptions o;
  o.create = true;
  o.pack_target = kTarget;
  o.progress = [&](const RepoBackupStats& st) {
    std::lock_guard lock(mu);
    handed = st.new_bytes;
    moved.notify_all();
  };
  // The first pack's upload waits (at most 3 s) for the reader to exceed
  // the bound, which it must not.
  bool stalled = false;
  PutHookStore stalling(**store, [&](std::string_view name) {
    if (name.rfind("pack-", 0) != 0 || std::exchange(stalled, true)) {
      return absl::OkStatus();
    }
    std::unique_lock lock(mu);
    moved.wait_for(lock, std::chrono::seconds(3),
                   [&] { return handed > bound; });
    during_stall = handed;
    return absl::OkStatus();
  });
  auto repo = Repository::Open(stalling, BackupKey::Generate(), o);
  ASSERT_TRUE(repo.ok()) << repo.status();
  auto snap = (*repo)->Backup(src);
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_GT(during_stall, 0u);
  EXPECT_LE(during_stall, bound);
  const std::string out = dir / "out";
  ASSERT_TRUE((*repo)->Restore(snap->id, "", out).ok());
  EXPECT_EQ(ReadFile(out + "/db"), ReadFile(src + "/db"));
}

}  // namespace
}  // namespace bkv
