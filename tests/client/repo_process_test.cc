// The repository (format v2) with real `bkv` processes against every real
// store on loopback (file, s3rver, nginx WebDAV): two devices backing up
// while a prune runs, and a backup killed with SIGKILL then resumed.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include "client/blob_store.h"
#include "tests/client/client_test_support.h"

namespace bkv {
namespace {

namespace fs = std::filesystem;
using ::bkv::testing::RandomBytes;
using ::bkv::testing::ReadFile;
using ::bkv::testing::TempDir;
using ::bkv::testing::WriteFile;

struct Proc {
  pid_t pid = -1;
  std::string out, err;  // files
};

struct Done {
  int code = -1;
  std::string out, err;
};

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// The 32 hex digits after "key":" in a JSON line.
std::string JsonId(const std::string& json, const std::string& key) {
  const std::string k = "\"" + key + "\":\"";
  const size_t at = json.find(k);
  return at == std::string::npos ? "" : json.substr(at + k.size(), 32);
}

class RepoProcessTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    env_ = testing::ServersEnv();
    if (GetParam() != "file") {
      ASSERT_FALSE(env_.empty()) << "servers.env missing: run through ctest";
    }
    ASSERT_EQ(Wait(Spawn({"key", "new", "--out", dir_ / "k"}, "a")).code, 0);
  }

  std::string Url(const std::string& suffix) {
    return testing::StoreUrlForTest(GetParam(), env_, dir_.path(),
                                    "proc-" + suffix);
  }

  // Starts `bkv args...` as device `device` (its own client state).
  // A v1 backup of 64 MiB of random bytes (seed `seed`) to `url`, started.
  Proc StartBigV1Backup(const std::string& url, int seed) {
    const std::string src = dir_ / "src";
    fs::create_directories(src);
    WriteFile(src + "/big", RandomBytes(64 << 20, seed));
    return Spawn(WithKey({"backup", src, "--to", url, "--format", "1"}), "a");
  }
  Proc Spawn(const std::vector<std::string>& args, const std::string& device) {
    Proc p;
    const std::string tag = std::to_string(runs_++);
    p.out = dir_ / ("out-" + tag);
    p.err = dir_ / ("err-" + tag);
    const std::string state = dir_ / ("state-" + device);
    p.pid = ::fork();
    if (p.pid == 0) {
      int o = ::open(p.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int e = ::open(p.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(o, 1);
      ::dup2(e, 2);
      ::setenv("BKV_STATE_DIR", state.c_str(), 1);
      std::vector<char*> argv = {const_cast<char*>(BKV_CLI_PATH)};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return p;
  }

  // Waits at most 120 s, then kills it (the test then fails on its code).
  Done Wait(const Proc& p) {
    int status = 0;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (::waitpid(p.pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(p.pid, SIGKILL);
        ::waitpid(p.pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, Slurp(p.out),
            Slurp(p.err)};
  }

  Done Bkv(const std::vector<std::string>& args,
           const std::string& device = "a") {
    return Wait(Spawn(args, device));
  }

  std::vector<std::string> WithKey(std::vector<std::string> args) {
    args.insert(args.end(), {"--key-file", dir_ / "k", "--json"});
    return args;
  }

  // A device's chat history: a database, some media.
  void MakeTree(const std::string& root, uint32_t seed) {
    fs::create_directories(root + "/media");
    WriteFile(root + "/chat.db", RandomBytes(1 << 20, seed));
    WriteFile(root + "/media/a.jpg", RandomBytes(200 << 10, seed + 1));
  }

  // Restores snapshot `id` and compares it byte for byte with `expected`.
  void ExpectRestores(const std::string& url, const std::string& id,
                      const std::string& expected) {
    const std::string out = dir_ / ("restored-" + id);
    Done r =
        Bkv(WithKey({"restore", "--from", url, "--to", out, "--snapshot", id}));
    ASSERT_EQ(r.code, 0) << id << ": " << r.err;
    EXPECT_EQ(testing::Listing(out), testing::Listing(expected)) << id;
    for (const std::string& p : testing::Listing(expected)) {
      if (fs::is_regular_file(expected + "/" + p)) {
        EXPECT_EQ(ReadFile(out + "/" + p), ReadFile(expected + "/" + p))
            << id << " " << p;
      }
    }
  }

  // Sum of the pack objects' sizes, and their count.
  std::pair<uint64_t, size_t> PackBytes(const std::string& url) {
    auto store = OpenBlobStore(url);
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return {0, 0};
    auto list = (*store)->List();
    EXPECT_TRUE(list.ok()) << list.status();
    std::pair<uint64_t, size_t> total{0, 0};
    for (const BlobInfo& b : list.ok() ? *list : std::vector<BlobInfo>{}) {
      if (b.name.rfind("pack-", 0) != 0) continue;
      total.first += b.size;
      ++total.second;
    }
    return total;
  }

  std::map<std::string, std::string> env_;
  TempDir dir_;
  int runs_ = 0;
};

// Two devices of one account create one repository at the same moment, then
// back up into it while a third client prunes, three rounds. Before each
// round device B makes the only snapshot a forget keeps, so everything of
// device A is garbage to the prune while A backs up the very same data: the
// dangerous case (A deduplicates against chunks the prune sweeps). The prune
// either runs (the backups wait for it) or is refused while a backup holds
// its lock; nothing else fails, and every snapshot restores byte-identical
// to its source at that round.
TEST_P(RepoProcessTest, ConcurrentBackupsAndPruneKeepEverySnapshot) {
  const std::string url = Url("repo");
  const std::string a = dir_ / "a", b = dir_ / "b";
  MakeTree(a, 1);
  MakeTree(b, 2);
  WriteFile(a + "/big.db", RandomBytes(6 << 20, 3));  // many chunks to reuse
  auto verify = [&](const Done& done, const std::string& src) {
    ASSERT_EQ(done.code, 0) << done.err;
    const std::string id = JsonId(done.out, "snapshot");
    ASSERT_EQ(id.size(), 32u) << done.out;
    ExpectRestores(url, id, src);
  };
  auto backup = [&](const std::string& src, const std::string& device) {
    return Spawn(WithKey({"backup", src, "--to", url, "--lock-wait", "100"}),
                 device);
  };
  // Both devices create the repository at the same moment.
  {
    Proc pa = backup(a, "a"), pb = backup(b, "b");
    Done da = Wait(pa), db = Wait(pb);
    verify(da, a);
    verify(db, b);
  }
  int pruned = 0, refused = 0;
  for (int round = 1; round <= 3; ++round) {
    WriteFile(b + "/media/r" + std::to_string(round) + ".jpg",
              RandomBytes(300 << 10, 20 + round));
    verify(Wait(backup(b, "b")), b);
    ASSERT_EQ(Bkv(WithKey({"forget", "--from", url, "--keep-last", "1"})).code,
              0);
    Proc pa = backup(a, "a"), pb = backup(b, "b");
    Proc pp = Spawn(WithKey({"prune", "--from", url}), "c");
    Done da = Wait(pa), db = Wait(pb), dp = Wait(pp);
    if (dp.code == 0) {
      ++pruned;
    } else {
      ASSERT_EQ(dp.code, 6) << dp.err;  // unavailable: a backup holds a lock
      EXPECT_NE(dp.err.find("lock-"), std::string::npos) << dp.err;
      ++refused;
    }
    verify(da, a);
    verify(db, b);
  }
  std::cout << "[ info ] concurrent prunes: " << pruned << " ran, " << refused
            << " refused\n";
  ASSERT_EQ(Bkv(WithKey({"prune", "--from", url})).code, 0);
  Done check = Bkv(WithKey({"check", "--from", url, "--read-data"}));
  EXPECT_EQ(check.code, 0) << check.out << check.err;
}

// SIGKILL once the first pack is stored; the next backup adopts what was
// stored and uploads only the rest: the store then holds the same pack bytes
// as one clean backup (give or take the per-pack framing), not a chunk twice.
TEST_P(RepoProcessTest, SigkilledBackupResumesWithoutReuploadFault) {
  const std::string src = dir_ / "src";
  fs::create_directories(src);
  for (int i = 0; i < 3; ++i) {
    WriteFile(src + "/part" + std::to_string(i), RandomBytes(8 << 20, 30 + i));
  }
  const std::string ref = Url("ref"), url = Url("repo");
  ASSERT_EQ(Bkv(WithKey({"backup", src, "--to", ref}), "r").code, 0);
  const auto clean = PackBytes(ref);
  ASSERT_GE(clean.second, 2u);

  auto store = OpenBlobStore(url);
  ASSERT_TRUE(store.ok()) << store.status();
  Proc p = Spawn(WithKey({"backup", src, "--to", url}), "a");
  bool killed = false;
  for (int i = 0; i < 20000 && !killed; ++i) {  // bounded: 20000 x >= 1 ms
    auto list = (*store)->List();
    for (const BlobInfo& b : list.ok() ? *list : std::vector<BlobInfo>{}) {
      if (b.name.rfind("pack-", 0) == 0) killed = ::kill(p.pid, SIGKILL) == 0;
    }
    int status;
    if (!killed && ::waitpid(p.pid, &status, WNOHANG) == p.pid) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  Done d = Wait(p);
  ASSERT_TRUE(killed) << "the backup ended before a pack was stored: " << d.err;
  const auto stored = PackBytes(url);
  ASSERT_GE(stored.second, 1u);

  Done resumed = Bkv(WithKey({"backup", src, "--to", url}), "a");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_EQ(resumed.out.find("\"packs_adopted\":0"), std::string::npos)
      << resumed.out;
  const auto after = PackBytes(url);
  const uint64_t slack = 4096 * (after.second + clean.second);
  EXPECT_LE(after.first, clean.first + slack) << "a chunk was uploaded twice";
  EXPECT_GE(after.first + slack, clean.first);
  ExpectRestores(url, JsonId(resumed.out, "snapshot"), src);
  // The killed process's lock (its pid is gone) does not block a prune.
  Done prune = Bkv(WithKey({"prune", "--from", url}));
  EXPECT_EQ(prune.code, 0) << prune.err;
}

// Where a store keeps its objects on this machine ("" for s3rver, which
// implements neither ListMultipartUploads nor AbortMultipartUpload: S3 is
// checked through the listing only).
std::string BackingDir(const std::string& kind, const std::string& url,
                       const std::string& servers_dir) {
  if (kind == "file") return url.substr(std::string("file://").size());
  if (kind == "webdav") {
    return servers_dir + "/dav/data" + url.substr(url.find("/sets/"));
  }
  return "";
}

// Names in a backing directory that only an unfinished write leaves.
std::vector<std::string> Temporaries(const std::string& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.find(".tmp-") != std::string::npos || name.rfind("tmp~", 0) == 0) {
      found.push_back(name);
    }
  }
  return found;
}

// Names under `dir` that a restore stages its output in.
std::vector<std::string> Staging(const std::string& dir) {
  std::vector<std::string> found;
  for (const std::string& p : testing::Listing(dir)) {
    if (p.find(".bkv-restore-") != std::string::npos) found.push_back(p);
  }
  return found;
}

// Sends `sig` to `p` once `ready()` holds (polled every ms, at most 20 s);
// false when the process ended first.
bool SignalWhen(const Proc& p, int sig, const std::function<bool()>& ready) {
  for (int i = 0; i < 20000; ++i) {
    if (ready()) return ::kill(p.pid, sig) == 0;
    int status;
    if (::waitpid(p.pid, &status, WNOHANG) == p.pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// Ctrl-C (SIGINT) or SIGTERM mid-backup and mid-restore: exit 130/143 with
// one line saying so; no temporary object, no lock and no snapshot in the
// store; no restore staging folder and no restored byte on disk. The next
// backup completes and restores.
TEST_P(RepoProcessTest, InterruptedBackupAndRestoreCleanUpFault) {
  const std::string src = dir_ / "src";
  fs::create_directories(src);
  for (int i = 0; i < 6; ++i) {
    WriteFile(src + "/part" + std::to_string(i), RandomBytes(8 << 20, 40 + i));
  }
  const std::string url = Url("repo");
  auto store = OpenBlobStore(url);
  ASSERT_TRUE(store.ok()) << store.status();
  auto names = [&](const std::string& prefix) {
    std::vector<std::string> out;
    auto list = (*store)->List();
    for (const BlobInfo& b : list.ok() ? *list : std::vector<BlobInfo>{}) {
      if (b.name.rfind(prefix, 0) == 0) out.push_back(b.name);
    }
    return out;
  };
  const std::string backing = BackingDir(
      GetParam(), url,
      env_.empty() ? ""
                   : fs::path(BKV_TEST_SERVERS_ENV).parent_path().string());
  for (int sig : {SIGINT, SIGTERM}) {
    const size_t packs = names("pack-").size();  // an earlier run's stay
    Proc p = Spawn(WithKey({"backup", src, "--to", url}), "a");
    ASSERT_TRUE(SignalWhen(p, sig, [&] {
      return names("pack-").size() > packs;
    })) << "the backup ended before a pack was stored";
    Done d = Wait(p);
    EXPECT_EQ(d.code, 128 + sig) << d.err;
    // s3rver cannot abort a multipart upload a pack was in; the message
    // then says so (InterruptedS3UploadSaysWhatItCouldNotAbortFault).
    const bool honest =
        d.err.find("interrupted: cleaned up") != std::string::npos ||
        (GetParam() == "s3" &&
         d.err.find("NOT all cleaned up") != std::string::npos);
    EXPECT_TRUE(honest) << d.err;
    if (!backing.empty()) {
      ASSERT_TRUE(fs::is_directory(backing)) << backing;  // else proves nothing
      EXPECT_THAT(Temporaries(backing), ::testing::IsEmpty());
    }
    EXPECT_THAT(names("lock-"), ::testing::IsEmpty());
    EXPECT_THAT(names("snap-"), ::testing::IsEmpty());
  }
  Done done = Bkv(WithKey({"backup", src, "--to", url}));
  ASSERT_EQ(done.code, 0) << done.err;

  const std::string target = dir_ / "restored";
  Proc r = Spawn(WithKey({"restore", "--from", url, "--to", target}), "a");
  ASSERT_TRUE(SignalWhen(r, SIGINT, [&] {
    return !Staging(dir_.path()).empty();
  })) << "the restore ended before it staged anything";
  Done rd = Wait(r);
  EXPECT_EQ(rd.code, 130) << rd.err;
  EXPECT_FALSE(fs::exists(target));
  EXPECT_THAT(Staging(dir_.path()), ::testing::IsEmpty());
  ExpectRestores(url, JsonId(done.out, "snapshot"), src);
}

// The same for a single-stream (v1) set, on the file store: the `.tmp-*`
// object of the interrupted upload and the restore's hidden partial file go.
TEST_P(RepoProcessTest, InterruptedSingleStreamCleansUpFault) {
  if (GetParam() != "file") GTEST_SKIP() << "v1 is checked on the file store";
  const std::string url = Url("v1");
  const std::string backing = BackingDir("file", url, "");
  const std::string src = dir_ / "src";
  Proc p = StartBigV1Backup(url, 50);
  ASSERT_TRUE(SignalWhen(p, SIGINT, [&] {
    return !Temporaries(backing).empty();
  })) << "the backup ended before it wrote anything";
  Done d = Wait(p);
  EXPECT_EQ(d.code, 130) << d.err;
  EXPECT_THAT(Temporaries(backing), ::testing::IsEmpty());

  ASSERT_EQ(Bkv(WithKey({"backup", src, "--to", url, "--format", "1"})).code,
            0);
  const std::string target = dir_ / "restored";
  Proc r = Spawn(WithKey({"restore", "--from", url, "--to", target}), "a");
  ASSERT_TRUE(SignalWhen(r, SIGINT, [&] {
    return !Staging(dir_.path()).empty();
  })) << "the restore ended before it staged anything";
  Done rd = Wait(r);
  EXPECT_EQ(rd.code, 130) << rd.err;
  EXPECT_FALSE(fs::exists(target));
  EXPECT_THAT(Staging(dir_.path()), ::testing::IsEmpty());
}

// Sets `path`'s modification time an hour back: a leftover from earlier.
void Backdate(const std::string& path) {
  const timespec times[2] = {{::time(nullptr) - 3600, 0},
                             {::time(nullptr) - 3600, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

// What SIGKILL leaves (no chance to clean up) the next run removes: the
// `.tmp-*` object of a killed upload goes with the next backup, the staging
// folder of a killed restore with the next restore next to it. A temporary
// that a live process holds locked stays, however old.
TEST_P(RepoProcessTest, SigkillLeftoversAreSweptByTheNextRunFault) {
  if (GetParam() != "file") GTEST_SKIP() << "leftovers on disk: file store";
  const std::string url = Url("kill");
  const std::string backing = BackingDir("file", url, "");
  const std::string src = dir_ / "src";
  Proc p = StartBigV1Backup(url, 60);
  ASSERT_TRUE(SignalWhen(p, SIGKILL, [&] {
    return !Temporaries(backing).empty();
  })) << "the backup ended before it wrote anything";
  Wait(p);
  const std::vector<std::string> left = Temporaries(backing);
  ASSERT_EQ(left.size(), 1u);
  Backdate(backing + "/" + left[0]);
  // A live writer's temporary, as old: locked, so it stays.
  const std::string live = backing + "/.tmp-0123456789abcdef-live";
  int fd = ::open(live.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  Backdate(live);
  Done next = Bkv(WithKey({"backup", src, "--to", url, "--format", "1"}));
  ::close(fd);
  ASSERT_EQ(next.code, 0) << next.err;
  EXPECT_NE(next.err.find("deleted 1 temporary object"), std::string::npos)
      << next.err;
  EXPECT_THAT(Temporaries(backing),
              ::testing::ElementsAre(".tmp-0123456789abcdef-live"));

  const std::string v2 = Url("kill2");
  ASSERT_EQ(Bkv(WithKey({"backup", src, "--to", v2})).code, 0);
  const std::string target = dir_ / "restored";
  Proc r = Spawn(WithKey({"restore", "--from", v2, "--to", target}), "a");
  ASSERT_TRUE(SignalWhen(r, SIGKILL, [&] {
    return !Staging(dir_.path()).empty();
  })) << "the restore ended before it staged anything";
  Wait(r);
  std::vector<std::string> staged;
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    const std::string n = e.path().filename().string();
    if (n.rfind(".bkv-restore-", 0) == 0) staged.push_back(e.path().string());
  }
  ASSERT_EQ(staged.size(), 1u);
  Backdate(staged[0]);
  Done again = Bkv(WithKey({"restore", "--from", v2, "--to", target}));
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.err.find("staging folder of an interrupted restore"),
            std::string::npos)
      << again.err;
  EXPECT_THAT(Staging(dir_.path()), ::testing::IsEmpty());
  EXPECT_EQ(ReadFile(target + "/big"), ReadFile(src + "/big"));
}

// A v1 (single-stream) restore killed with SIGKILL leaves its staging
// folder with decrypted data in it; the next restore next to it deletes it,
// as it does a v2 restore's, and a running restore's locked folder stays.
TEST_P(RepoProcessTest, SigkilledV1RestoreIsSweptByTheNextRestoreFault) {
  if (GetParam() != "file") GTEST_SKIP() << "staging on disk: one store";
  const std::string url = Url("killv1");
  const std::string src = dir_ / "src";
  Proc b = StartBigV1Backup(url, 61);
  ASSERT_EQ(Wait(b).code, 0);
  const std::string target = dir_ / "restored";
  Proc r = Spawn(WithKey({"restore", "--from", url, "--to", target}), "a");
  ASSERT_TRUE(SignalWhen(r, SIGKILL, [&] {
    for (const std::string& p : Staging(dir_.path())) {
      const std::string path = dir_ / p;
      std::error_code ec;
      if (fs::is_regular_file(path, ec) && fs::file_size(path, ec) > 0) {
        return true;
      }
    }
    return false;
  })) << "the restore ended before it staged anything";
  Wait(r);
  std::vector<std::string> staged;
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    const std::string n = e.path().filename().string();
    if (n.rfind(".bkv-restore-", 0) == 0) staged.push_back(e.path().string());
  }
  ASSERT_EQ(staged.size(), 1u);
  EXPECT_TRUE(fs::is_directory(staged[0])) << staged[0];
  Backdate(staged[0]);
  // A live restore's staging folder, as old: locked, so it stays.
  const std::string live = dir_ / ".bkv-restore-live00";
  fs::create_directory(live);
  int fd = ::open(live.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  Backdate(live);
  Done again = Bkv(WithKey({"restore", "--from", url, "--to", target}));
  ::close(fd);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.err.find("deleted " + staged[0]), std::string::npos)
      << again.err;
  EXPECT_FALSE(fs::exists(staged[0]));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_EQ(ReadFile(target + "/big"), ReadFile(src + "/big"));
}

// The multipart uploads s3rver holds parts of, by id: under its directory,
// <bucket>/<...>_uploads/<id>/<part number>.
std::set<std::string> S3Uploads(const std::string& s3_dir) {
  std::set<std::string> ids;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(s3_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.filename() == "1" &&
        p.parent_path().parent_path().filename().string().ends_with(
            "uploads")) {
      ids.insert(p.parent_path().filename().string());
    }
  }
  return ids;
}

// SIGINT during an S3 multipart upload: the upload is aborted, and where
// the server refuses (s3rver has no AbortMultipartUpload) the message names
// the upload it kept instead of claiming a clean up.
TEST_P(RepoProcessTest, InterruptedS3UploadSaysWhatItCouldNotAbortFault) {
  if (GetParam() != "s3") GTEST_SKIP() << "multipart uploads: S3";
  const std::string s3_dir =
      (fs::path(BKV_TEST_SERVERS_ENV).parent_path() / "s3").string();
  const std::set<std::string> before = S3Uploads(s3_dir);
  Proc p = StartBigV1Backup(Url("mpu"), 62);
  std::string id;
  ASSERT_TRUE(SignalWhen(p, SIGINT, [&] {
    for (const std::string& u : S3Uploads(s3_dir)) {
      if (!before.contains(u)) id = u;
    }
    return !id.empty();
  })) << "the backup ended before it uploaded a part";
  Done d = Wait(p);
  EXPECT_EQ(d.code, 130) << d.err;
  const bool kept = S3Uploads(s3_dir).contains(id);
  EXPECT_TRUE(kept) << "s3rver aborted or completed upload " << id
                    << ": this run proves nothing";
  if (kept) {
    EXPECT_NE(d.err.find("NOT all cleaned up"), std::string::npos) << d.err;
    EXPECT_NE(d.err.find("multipart upload " + id), std::string::npos) << d.err;
    EXPECT_NE(d.err.find("AbortIncompleteMultipartUpload"), std::string::npos)
        << d.err;
    EXPECT_EQ(d.err.find("interrupted: cleaned up"), std::string::npos)
        << d.err;
  }
}

// A JSON object's `"key":{..."field":N` count, or -1.
long long JsonCount(const std::string& json, const std::string& key,
                    const std::string& field) {
  const size_t at = json.find("\"" + key + "\":{");
  if (at == std::string::npos) return -1;
  const size_t f = json.find("\"" + field + "\":", at);
  if (f == std::string::npos) return -1;
  return std::atoll(json.c_str() + f + field.size() + 3);
}

// Issue 19.4: what killed runs left is found by `bkv check` (count, bytes,
// --json), deleted by prune, and a live writer's temporary is not. The
// leftovers are made as SIGKILL leaves them: a file `.tmp-*` no process
// holds, a WebDAV `tmp~*` whose PUT completed and whose MOVE never came
// (nginx keeps an unfinished body out of the collection). s3rver cannot
// list unfinished multipart uploads: check says so and still passes.
TEST_P(RepoProcessTest, CheckReportsLeftoversAndPruneRemovesThemFault) {
  const std::string url = Url("left");
  const std::string src = dir_ / "src";
  fs::create_directories(src);
  WriteFile(src + "/a", RandomBytes(1000, 7));
  ASSERT_EQ(Bkv(WithKey({"backup", src, "--to", url})).code, 0);
  const std::string backing = BackingDir(
      GetParam(), url,
      env_.empty() ? ""
                   : fs::path(BKV_TEST_SERVERS_ENV).parent_path().string());
  if (GetParam() == "s3") {
    Done check = Bkv(WithKey({"check", "--from", url}));
    EXPECT_EQ(check.code, 0) << check.err;
    EXPECT_NE(check.out.find("\"listed\":false"), std::string::npos)
        << check.out;
    EXPECT_EQ(Bkv(WithKey({"prune", "--from", url})).code, 0);
    return;
  }
  ASSERT_TRUE(fs::is_directory(backing)) << backing;
  // Named as this store's Put names its temporaries.
  const std::string tmp = GetParam() == "webdav" ? "tmp~" : ".tmp-";
  const std::string stale = backing + "/" + tmp + "00112233445566778-pack-x";
  WriteFile(stale, RandomBytes(4321, 8));
  Backdate(stale);
  // A live writer's: on file locked (however old), on WebDAV fresh.
  const std::string live = backing + "/" + tmp + "0123456789abcdef-live";
  WriteFile(live, RandomBytes(10, 9));
  int fd = ::open(live.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  if (GetParam() == "file") Backdate(live);

  Done check = Bkv(WithKey({"check", "--from", url}));
  EXPECT_EQ(check.code, 0) << check.err;
  EXPECT_EQ(JsonCount(check.out, "leftovers", "objects"), 1) << check.out;
  EXPECT_EQ(JsonCount(check.out, "leftovers", "bytes"), 4321) << check.out;
  Done text = Bkv({"check", "--from", url, "--key-file", dir_ / "k"});
  EXPECT_NE(text.out.find("leftovers: 1 temporary object (4.2 KiB)"),
            std::string::npos)
      << text.out;
  EXPECT_EQ(Temporaries(backing).size(), 2u) << "check deletes nothing";

  Done prune = Bkv(WithKey({"prune", "--from", url}));
  ASSERT_EQ(prune.code, 0) << prune.err;
  EXPECT_EQ(JsonCount(prune.out, "leftovers_deleted", "objects"), 1)
      << prune.out;
  EXPECT_THAT(Temporaries(backing),
              ::testing::ElementsAre(tmp + "0123456789abcdef-live"));
  Done after = Bkv(WithKey({"check", "--from", url}));
  EXPECT_EQ(JsonCount(after.out, "leftovers", "objects"), 0) << after.out;
  ::close(fd);
}

// SIGKILL mid-upload of a large backup to WebDAV: nginx drops the
// unfinished body, so the collection holds no temporary, and the next
// backup completes.
TEST_P(RepoProcessTest, SigkilledWebDavUploadLeavesNothingFault) {
  if (GetParam() != "webdav") GTEST_SKIP() << "nginx's own temporaries";
  const std::string url = Url("killdav");
  const std::string backing = BackingDir(
      "webdav", url, fs::path(BKV_TEST_SERVERS_ENV).parent_path().string());
  Proc p = StartBigV1Backup(url, 61);
  auto store = OpenBlobStore(url);
  ASSERT_TRUE(store.ok()) << store.status();
  // Killed once the collection exists (the upload is under way).
  ASSERT_TRUE(SignalWhen(p, SIGKILL, [&] { return fs::is_directory(backing); }))
      << "the backup ended before it created the collection";
  Wait(p);
  EXPECT_THAT(Temporaries(backing), ::testing::IsEmpty());
  Done check = Bkv(WithKey({"check", "--from", url}));
  EXPECT_EQ(JsonCount(check.out, "leftovers", "objects"), 0) << check.out;
}

INSTANTIATE_TEST_SUITE_P(Stores, RepoProcessTest,
                         ::testing::Values("file", "s3", "webdav"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace bkv
