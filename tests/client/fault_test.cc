// The client fault suite: the `bkv` CLI, as a user runs it, against full,
// read-only, vanished and unreachable stores and targets, with write and
// fsync failures injected by libfiu (fiu-run) and SIGKILL mid-backup. Every
// case checks the two promises: a failure exits with the documented code
// (never 0, never a crash), and no backup that was reported saved is lost.
//
// ENOSPC and read-only stores need small tmpfs mounts, hence root (CI runs
// as root); those cases skip with a message otherwise.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/client/client_test_support.h"

namespace bkv {
namespace {

namespace fs = std::filesystem;
using ::bkv::testing::RandomBytes;
using ::bkv::testing::ReadFile;
using ::bkv::testing::TempDir;
using ::bkv::testing::WriteFile;
using ::testing::HasSubstr;

// What the suite measured, printed when the process ends.
struct Tally {
  int faults = 0;      // faults injected
  int files_lost = 0;  // files of a saved backup that did not restore intact
  ~Tally() {
    std::printf("[fault suite] faults injected: %d, files lost: %d\n", faults,
                files_lost);
  }
};
Tally tally;

constexpr int kUnavailable = 6;  // bkv's exit code for I/O and store errors
constexpr int kCorrupted = 4;

struct Result {
  int code;  // exit code, or 128 + signal
  std::string out;
  std::string err;
};

class ClientFault : public ::testing::Test {
 protected:
  // BKV_TEST_CLI runs the suite against another build (e.g. an older one,
  // to see the regression cases fail).
  static std::string Cli() {
    const char* other = std::getenv("BKV_TEST_CLI");
    return other != nullptr ? other : BKV_CLI_PATH;
  }
  ~ClientFault() override {
    for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) {
      ::umount2(it->c_str(), MNT_DETACH);
    }
  }

  // Runs a shell command line with bkv's path as $BKV.
  Result Sh(const std::string& cmd) {
    const std::string err_file = dir_ / "stderr.txt";
    const std::string full = "BKV=" + Cli() + "; " + cmd + " 2>" + err_file;
    FILE* p = popen(full.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    const int status = pclose(p);
    auto err = ReadFile(err_file);
    const int code =
        WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    return {code, out, std::string(err.begin(), err.end())};
  }
  // This suite drives the single-stream (v1) pipeline, which `bkv backup`
  // still writes with --format 1; the repository's own faults are in
  // repo_test.cc and repo_process_test.cc.
  static std::string V1(const std::string& args) {
    return args.rfind("backup ", 0) == 0 ? args + " --format 1" : args;
  }
  Result Bkv(const std::string& args) { return Sh("$BKV " + V1(args)); }
  // bkv under libfiu with the given fiu-run -c spec (POSIX wrappers).
  Result Fiu(const std::string& spec, const std::string& args) {
    ++tally.faults;
#if defined(__SANITIZE_ADDRESS__)
    // fiu-run replaces LD_PRELOAD, and ASan must be loaded first: preload
    // both by hand (what fiu-run does), ASan first. libfiu leaks its
    // enable string on purpose; bkv's own leaks are still reported.
    const std::string supp = dir_ / "lsan.supp";
    if (!fs::exists(supp)) {
      const std::string text = "leak:fiu_run_preload.so\n";
      WriteFile(supp, std::span(reinterpret_cast<const uint8_t*>(text.data()),
                                text.size()));
    }
    return Sh("FIU_ENABLE='" + spec + "' LSAN_OPTIONS=suppressions=" + supp +
              " LD_PRELOAD='" + AsanRuntime() +
              " /usr/lib/fiu/fiu_run_preload.so"
              " /usr/lib/fiu/fiu_posix_preload.so' $BKV " +
              V1(args));
#else
    return Sh("fiu-run -x -c '" + spec + "' $BKV " + V1(args));
#endif
  }
  // The ASan runtime this process (built like bkv) runs with.
  static std::string AsanRuntime() {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
      const size_t at = line.find('/');
      if (at != std::string::npos &&
          line.find("libasan.so") != std::string::npos) {
        return line.substr(at);
      }
    }
    return "libasan.so";
  }

  std::string Key() {
    if (!fs::exists(dir_ / "k")) {
      EXPECT_EQ(Bkv("key new --out " + (dir_ / "k")).code, 0);
    }
    return " --key-file " + (dir_ / "k");
  }

  // A tmpfs of `kib` KiB at a fresh directory; false (and a skip message)
  // when this process may not mount.
  bool MountTmpfs(const std::string& path, int kib) {
    fs::create_directories(path);
    const std::string opts = "size=" + std::to_string(kib) + "k,mode=0755";
    if (::mount("tmpfs", path.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
      return false;
    }
    mounts_.push_back(path);
    return true;
  }
  bool RemountReadOnly(const std::string& path) {
    return ::mount(nullptr, path.c_str(), nullptr, MS_REMOUNT | MS_RDONLY,
                   nullptr) == 0;
  }

  // A chat-like tree: one large database, many media files, a subdirectory.
  std::string MakeTree(const std::string& name, size_t files, size_t each,
                       uint32_t seed) {
    const std::string src = dir_ / name;
    fs::create_directories(src + "/media");
    WriteFile(src + "/chat.db", RandomBytes(each * 4, seed));
    for (size_t i = 0; i < files; ++i) {
      WriteFile(src + "/media/" + std::to_string(i) + ".jpg",
                RandomBytes(each, seed + 1 + i));
    }
    return src;
  }

  // Restores `id` (empty: newest) from `store` into a fresh directory and
  // counts the files of `src` that did not come back byte-identical.
  int LostFiles(const std::string& store, const std::string& src,
                const std::string& id = "") {
    const std::string out = dir_ / ("verify-" + std::to_string(++verify_));
    Result r = Bkv("restore --from " + store + " --to " + out + Key() +
                   (id.empty() ? "" : " --backup " + id));
    EXPECT_EQ(r.code, 0) << r.err;
    int lost = 0;
    for (const auto& e : fs::recursive_directory_iterator(src)) {
      if (!e.is_regular_file()) continue;
      const std::string rel = fs::relative(e.path(), src).string();
      if (ReadFile(out + "/" + rel) != ReadFile(e.path())) ++lost;
    }
    tally.files_lost += lost;
    fs::remove_all(out);
    return lost;
  }

  std::string Store(const std::string& name) {
    return "file://" + (dir_ / name);
  }
  static std::string IdOf(const std::string& json) {
    const size_t at = json.find("\"id\":\"");
    return at == std::string::npos ? "" : json.substr(at + 6, 32);
  }

  TempDir dir_;
  std::vector<std::string> mounts_;
  int verify_ = 0;
};

#define REQUIRE_MOUNT(ok)                                                   \
  if (!(ok)) {                                                              \
    GTEST_SKIP() << "needs root to mount a small tmpfs (CI runs as root); " \
                    "run the fault suite as root to cover ENOSPC and "      \
                    "read-only stores";                                     \
  }

// 20.1: a tree restore onto a full filesystem exited 0 with zero-filled
// files. Now: exit 6, nothing left on the target filesystem.
TEST_F(ClientFault, RegressionTreeRestoreOntoFullFilesystemFails) {
  const std::string src = MakeTree("tree", 40, 64 << 10, 1);  // ~2.8 MiB
  const std::string store = Store("store");
  ASSERT_EQ(Bkv("backup " + src + " --to " + store + Key()).code, 0);
  const std::string small = dir_ / "small";
  REQUIRE_MOUNT(MountTmpfs(small, 1024));
  ++tally.faults;
  Result r = Bkv("restore --from " + store + " --to " + small + "/out" + Key());
  EXPECT_EQ(r.code, kUnavailable) << r.err;
  EXPECT_THAT(r.err, HasSubstr("No space left on device"));
  EXPECT_THAT(::bkv::testing::Listing(small), ::testing::IsEmpty())
      << "no partial target and no temporary left behind";
  EXPECT_EQ(LostFiles(store, src), 0);
}

// A restore whose every write(2) or fsync(2) fails: exit 6, no target.
TEST_F(ClientFault, RegressionInjectedWriteAndFsyncFailuresDuringRestore) {
  const std::string src = MakeTree("tree", 8, 32 << 10, 2);
  const std::string store = Store("store");
  ASSERT_EQ(Bkv("backup " + src + " --to " + store + Key()).code, 0);
  WriteFile(dir_ / "one.db", RandomBytes(300000, 3));
  ASSERT_EQ(
      Bkv("backup " + (dir_ / "one.db") + " --to " + Store("store1") + Key())
          .code,
      0);
  struct Case {
    const char* spec;
    std::string store;
  } cases[] = {
      {"enable name=posix/io/rw/write,failinfo=28", store},
      {"enable name=posix/io/rw/write,failinfo=5", store},
      {"enable name=posix/io/rw/write,failinfo=5", Store("store1")},
      {"enable name=posix/io/sync/fsync,failinfo=5", Store("store1")},
  };
  int i = 0;
  for (const Case& c : cases) {
    const std::string target = dir_ / ("out" + std::to_string(i++));
    Result r =
        Fiu(c.spec, "restore --from " + c.store + " --to " + target + Key());
    EXPECT_EQ(r.code, kUnavailable) << c.spec << ": " << r.err;
    EXPECT_FALSE(fs::exists(target)) << c.spec;
  }
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    EXPECT_THAT(e.path().filename().string(),
                ::testing::Not(HasSubstr("bkv-restore")))
        << "a restore temporary was left behind";
  }
  EXPECT_EQ(LostFiles(store, src), 0);
}

// A repository (v2) restore must not publish data that is not on disk: an
// fsync failure (injected by libfiu) fails it with exit 6 before the rename,
// and leaves neither the target nor the temporary. Before, one syncfs (which
// libfiu cannot fail) ran, then the rename, then an fsync of the parent whose
// failure left the target published under a failed restore.
TEST_F(ClientFault, RestoreSyncFailurePublishesNothing) {
  const std::string src = MakeTree("tree", 6, 48 << 10, 70);
  const std::string store = Store("store");
  ASSERT_EQ(Sh("$BKV backup " + src + " --to " + store + Key()).code, 0);
  WriteFile(dir_ / "one.db", RandomBytes(200000, 71));
  ASSERT_EQ(Sh("$BKV backup " + (dir_ / "one.db") + " --to " + Store("store1") +
               Key())
                .code,
            0);
  int i = 0;
  for (const std::string& from : {store, Store("store1")}) {
    const std::string target = dir_ / ("out" + std::to_string(i++));
    Result r = Fiu("enable name=posix/io/sync/fsync,failinfo=5",
                   "restore --from " + from + " --to " + target + Key());
    EXPECT_EQ(r.code, kUnavailable) << from << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("fsync"));
    EXPECT_THAT(r.err, HasSubstr("Input/output error"));
    EXPECT_FALSE(fs::exists(target)) << from;
  }
  for (const auto& e : fs::directory_iterator(dir_.path())) {
    EXPECT_THAT(e.path().filename().string(),
                ::testing::Not(HasSubstr("bkv-restore")))
        << "a restore temporary was left behind";
  }
  EXPECT_EQ(LostFiles(store, src), 0);
}

// The parent directory's fsync after the rename that publishes a restore
// fails (a test-only LD_PRELOAD shim fails only that directory's fsync):
// the rename is undone, so a restore that did not say done leaves neither
// the target nor its temporary; v2 (a tree and one file) and v1.
TEST_F(ClientFault, RestoreParentSyncFailureUndoesTheRename) {
  const std::string src = MakeTree("tree", 3, 32 << 10, 90);
  ASSERT_EQ(Sh("$BKV backup " + src + " --to " + Store("v2") + Key()).code, 0);
  ASSERT_EQ(Bkv("backup " + src + " --to " + Store("v1") + Key()).code, 0);
  const std::string parent = fs::canonical(dir_.path()) / "pub";
  fs::create_directories(parent);
  struct Case {
    std::string store, path, target;
  };
  for (const Case& c : {Case{Store("v2"), "", "tree-out"},
                        Case{Store("v2"), " --path chat.db", "one.db"},
                        Case{Store("v1"), "", "v1-out"}}) {
    const std::string target = parent + "/" + c.target;
    const std::string args =
        "restore --from " + c.store + c.path + " --to " + target + Key();
    ++tally.faults;
#if defined(__SANITIZE_ADDRESS__)
    const std::string preload = AsanRuntime() + " " BKV_FAIL_DIR_FSYNC_SO;
#else
    const std::string preload = BKV_FAIL_DIR_FSYNC_SO;
#endif
    Result r = Sh("BKV_TEST_FAIL_DIR_FSYNC='" + parent + "' LD_PRELOAD='" +
                  preload + "' $BKV " + args);
    EXPECT_EQ(r.code, kUnavailable) << c.target << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("fsync directory " + parent));
    EXPECT_FALSE(fs::exists(target)) << c.target << " left published";
    for (const auto& e : fs::directory_iterator(parent)) {
      EXPECT_THAT(e.path().filename().string(),
                  ::testing::Not(HasSubstr("bkv-restore")))
          << "a restore temporary was left behind";
    }
    Result again = Sh("$BKV " + args);  // the same restore, no fault
    EXPECT_EQ(again.code, 0) << again.err;
    EXPECT_TRUE(fs::exists(target)) << c.target;
  }
  EXPECT_EQ(ReadFile(parent + "/one.db"), ReadFile(src + "/chat.db"));
  EXPECT_EQ(ReadFile(parent + "/tree-out/media/2.jpg"),
            ReadFile(src + "/media/2.jpg"));
}

// What fsync(2)s returned 0 before the first renameat2(2), from an
// `strace -f -y` log (a call another thread interrupts is split into an
// "<unfinished ...>" line and a "resumed>" line of the same pid); the
// rename's source path in `*renamed`.
std::set<std::string> SyncedBeforeRename(const std::string& log,
                                         std::string* renamed) {
  std::set<std::string> synced;
  std::map<std::string, std::string> pending;  // pid -> path
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    const std::string pid = line.substr(0, line.find(' '));
    const bool ok = line.ends_with(" = 0");
    if (const size_t at = line.find("renameat2("); at != std::string::npos) {
      const size_t q = line.find('"', at);
      *renamed = line.substr(q + 1, line.find('"', q + 1) - q - 1);
      break;
    }
    if (line.find("<... fsync resumed>") != std::string::npos) {
      if (ok) synced.insert(pending[pid]);
      continue;
    }
    const size_t at = line.find(" fsync(");
    if (at == std::string::npos) continue;
    const size_t open = line.find('<', at), close = line.find('>', open);
    const std::string path = line.substr(open + 1, close - open - 1);
    if (line.find("<unfinished") != std::string::npos) {
      pending[pid] = path;
    } else if (ok) {
      synced.insert(path);
    }
  }
  return synced;
}

// The rename that publishes a restore comes after every restored file and
// directory was fsynced, checked on the system calls of a real restore.
TEST_F(ClientFault, RestoreSyncsEveryFileBeforeTheRename) {
  if (Sh("strace -f -o /dev/null true").code != 0) {
    GTEST_SKIP() << "needs strace (scripts/install-deps.sh test) and ptrace";
  }
  const std::string src = MakeTree("tree", 12, 40 << 10, 80);
  fs::create_directories(src + "/media/empty-dir");
  WriteFile(src + "/media/empty.txt", {});
  ASSERT_EQ(Sh("$BKV backup " + src + " --to " + Store("store") + Key()).code,
            0);
  const std::string log = dir_ / "strace.log";
  // LeakSanitizer cannot run under ptrace: an ASan build's CLI would abort.
  Result r =
      Sh("ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0\" "
         "strace -f -y -qq -e trace=fsync,renameat2 -o " +
         log + " $BKV restore --from " + Store("store") + " --to " +
         (dir_ / "out") + Key());
  ASSERT_EQ(r.code, 0) << r.err;
  auto bytes = ReadFile(log);
  std::string staged;
  const std::set<std::string> synced =
      SyncedBeforeRename(std::string(bytes.begin(), bytes.end()), &staged);
  ASSERT_THAT(staged, HasSubstr(".bkv-restore-"));
  EXPECT_TRUE(synced.contains(staged)) << "the restored root";
  int checked = 0;
  for (const auto& e : fs::recursive_directory_iterator(src)) {
    const std::string rel = fs::relative(e.path(), src).string();
    EXPECT_TRUE(synced.contains(staged + "/" + rel))
        << rel << " was not synced before the rename";
    ++checked;
  }
  EXPECT_EQ(checked, 16);  // 14 files, 2 directories
  EXPECT_EQ(LostFiles(Store("store"), src), 0);
}

// 20 item 4: a tree backup into a read-only store aborted with a double
// free (exit 134). Now: exit 6 every time, the store unchanged.
TEST_F(ClientFault, RegressionTreeBackupToReadOnlyStoreNoDoubleFree) {
  // The archive's first block reaches the failing upload inside a large
  // file's data: the path that freed a Status twice.
  const std::string src = MakeTree("tree", 4, 64 << 10, 4);
  WriteFile(src + "/history.db", RandomBytes(3 << 20, 12));
  const std::string mnt = dir_ / "ro";
  REQUIRE_MOUNT(MountTmpfs(mnt, 4096));
  const std::string store = "file://" + mnt + "/store";
  WriteFile(dir_ / "small.txt", RandomBytes(1000, 5));
  Result first = Bkv("backup " + (dir_ / "small.txt") + " --to " + store +
                     Key() + " --json");
  ASSERT_EQ(first.code, 0) << first.err;
  ASSERT_TRUE(RemountReadOnly(mnt));
  for (int i = 0; i < 5; ++i) {
    ++tally.faults;
    Result r = Bkv("backup " + src + " --to " + store + Key());
    EXPECT_EQ(r.code, kUnavailable) << "run " << i << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("Read-only file system"));
  }
  const std::string out = dir_ / "restored.txt";
  ASSERT_EQ(Bkv("restore --from " + store + " --to " + out + Key()).code, 0);
  EXPECT_EQ(ReadFile(out), RandomBytes(1000, 5));
}

// A store that fills up mid-upload (tree and file backups): exit 6, no
// crash, no temporary left, the previous backup intact.
TEST_F(ClientFault, RegressionBackupIntoFillingStore) {
  const std::string src = MakeTree("tree", 30, 64 << 10, 6);  // ~2.2 MiB
  const std::string first = MakeTree("first", 2, 16 << 10, 7);
  const std::string mnt = dir_ / "full";
  REQUIRE_MOUNT(MountTmpfs(mnt, 1024));
  const std::string store = "file://" + mnt;
  ASSERT_EQ(Bkv("backup " + first + " --to " + store + Key()).code, 0);
  for (int i = 0; i < 5; ++i) {
    ++tally.faults;
    Result r = Bkv("backup " + src + " --to " + store + Key() +
                   (i % 2 ? " --no-compress" : ""));
    EXPECT_EQ(r.code, kUnavailable) << "run " << i << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("No space left on device"));
  }
  WriteFile(dir_ / "big.db", RandomBytes(2 << 20, 8));
  ++tally.faults;
  Result f = Bkv("backup " + (dir_ / "big.db") + " --to " + store + Key());
  EXPECT_EQ(f.code, kUnavailable) << f.err;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(mnt)) {
    names.push_back(e.path().filename().string());
  }
  EXPECT_EQ(names.size(), 2u) << "one backup object and the list, no temps";
  EXPECT_EQ(LostFiles(store, first), 0);
  EXPECT_EQ(Bkv("check --from " + store + Key()).code, 0);
}

// Write and fsync failures injected into the file store during a backup.
TEST_F(ClientFault, InjectedWriteAndFsyncFailuresDuringBackup) {
  const std::string first = MakeTree("first", 3, 16 << 10, 9);
  const std::string src = MakeTree("tree", 6, 64 << 10, 10);
  const std::string store = Store("store");
  ASSERT_EQ(Bkv("backup " + first + " --to " + store + Key()).code, 0);
  for (const char* spec : {"enable name=posix/io/rw/write,failinfo=28",
                           "enable name=posix/io/rw/write,failinfo=5",
                           "enable name=posix/io/sync/fsync,failinfo=5"}) {
    Result r = Fiu(spec, "backup " + src + " --to " + store + Key());
    EXPECT_EQ(r.code, kUnavailable) << spec << ": " << r.err;
  }
  EXPECT_EQ(LostFiles(store, first), 0);
  Result check = Bkv("check --from " + store + Key());
  EXPECT_EQ(check.code, 0) << check.out << check.err;
}

// A store directory that vanished or cannot exist, and servers that are
// down: exit 6 with the store named, never a crash.
TEST_F(ClientFault, VanishedStoreAndServersDown) {
  const std::string src = MakeTree("tree", 4, 32 << 10, 11);
  WriteFile(dir_ / "blocker", RandomBytes(10));
  ++tally.faults;
  Result r = Bkv("backup " + src + " --to file://" + (dir_ / "blocker") +
                 "/store" + Key());
  EXPECT_EQ(r.code, kUnavailable) << r.err;
  EXPECT_THAT(r.err, HasSubstr("blocker/store"));

  // A store directory that vanished (an unmounted disk) is reported, not
  // recreated empty as "no backups".
  const std::string gone = Store("gone");
  ASSERT_EQ(Bkv("backup " + src + " --to " + gone + Key()).code, 0);
  fs::remove_all(dir_ / "gone");
  for (const std::string& cmd :
       {"list --from " + gone,
        "restore --from " + gone + " --to " + (dir_ / "r"),
        "check --from " + gone, "repair --from " + gone}) {
    ++tally.faults;
    Result v = Bkv(cmd + Key());
    EXPECT_EQ(v.code, 5) << cmd << ": " << v.err;
    EXPECT_THAT(v.err, HasSubstr("does not exist"));
  }
  EXPECT_FALSE(fs::exists(dir_ / "gone"));

  // A port that was free a moment ago: nothing listens on it.
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string port = std::to_string(ntohs(a.sin_port));
  ::close(s);
  for (const std::string& url : {"s3://bucket/set?endpoint=http://127.0.0.1:" +
                                     port + "&region=us-east-1",
                                 "webdav://127.0.0.1:" + port + "/set"}) {
    ++tally.faults;
    Result b =
        Sh("AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=y "
           "BKV_WEBDAV_USER=u BKV_WEBDAV_PASSWORD=p $BKV backup " +
           src + " --to '" + url + "'" + Key());
    EXPECT_EQ(b.code, kUnavailable) << url << ": " << b.err;
  }
}

// 20.5: a damaged list blocked every restore and backup with exit 3 "wrong
// backup key". Now it is corruption (exit 4) with advice; restore by id
// still works; check finds it; repair rebuilds it with every backup.
TEST_F(ClientFault, RegressionDamagedListIsCorruptionAndRepairable) {
  const std::string store = Store("store");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    WriteFile(dir_ / "db", RandomBytes(20000, 20 + i));
    Result b =
        Bkv("backup " + (dir_ / "db") + " --to " + store + Key() + " --json");
    ASSERT_EQ(b.code, 0) << b.err;
    ids.push_back(IdOf(b.out));
  }
  auto list = ReadFile(dir_ / "store/latest");
  list[list.size() / 2] ^= 0x01;
  WriteFile(dir_ / "store/latest", list);
  ++tally.faults;
  Result l = Bkv("list --from " + store + Key());
  EXPECT_EQ(l.code, kCorrupted) << l.err;
  EXPECT_THAT(l.err, HasSubstr("bkv repair"));
  EXPECT_EQ(
      Bkv("restore --from " + store + " --to " + (dir_ / "n") + Key()).code,
      kCorrupted);
  WriteFile(dir_ / "db", RandomBytes(100, 99));
  EXPECT_EQ(Bkv("backup " + (dir_ / "db") + " --to " + store + Key()).code,
            kCorrupted);
  // A named backup restores without the list.
  Result byid = Bkv("restore --from " + store + " --to " + (dir_ / "b1") +
                    Key() + " --backup " + ids[1].substr(0, 8));
  ASSERT_EQ(byid.code, 0) << byid.err;
  EXPECT_EQ(ReadFile(dir_ / "b1"), RandomBytes(20000, 21));

  Result check = Bkv("check --from " + store + Key() + " --json");
  EXPECT_EQ(check.code, kCorrupted);
  EXPECT_THAT(check.out, HasSubstr("\"list\":\"damaged\""));
  Result repair = Bkv("repair --from " + store + Key() + " --json");
  ASSERT_EQ(repair.code, 0) << repair.err;
  EXPECT_THAT(repair.out, HasSubstr("\"backups\":3"));
  Result listed = Bkv("list --from " + store + Key());
  ASSERT_EQ(listed.code, 0) << listed.err;
  for (const std::string& id : ids) EXPECT_THAT(listed.out, HasSubstr(id));
  EXPECT_EQ(Bkv("check --from " + store + Key() + " --read-data").code, 0);
  ASSERT_EQ(
      Bkv("restore --from " + store + " --to " + (dir_ / "newest") + Key())
          .code,
      0);
  EXPECT_EQ(ReadFile(dir_ / "newest"), RandomBytes(20000, 22));
}

// 20.5: a deleted list listed nothing and exited 0, orphaning every backup.
TEST_F(ClientFault, RegressionMissingListIsNotNoBackups) {
  const std::string store = Store("store");
  for (int i = 0; i < 2; ++i) {
    WriteFile(dir_ / "db", RandomBytes(5000, 30 + i));
    ASSERT_EQ(Bkv("backup " + (dir_ / "db") + " --to " + store + Key()).code,
              0);
  }
  fs::remove(dir_ / "store/latest");
  ++tally.faults;
  Result l = Bkv("list --from " + store + Key());
  EXPECT_EQ(l.code, kCorrupted);
  EXPECT_THAT(l.err, HasSubstr("missing"));
  EXPECT_THAT(l.err, HasSubstr("2 backup objects"));
  EXPECT_EQ(Bkv("check --from " + store + Key()).code, kCorrupted);
  ASSERT_EQ(Bkv("repair --from " + store + Key()).code, 0);
  ASSERT_EQ(
      Bkv("restore --from " + store + " --to " + (dir_ / "r") + Key()).code, 0);
  EXPECT_EQ(ReadFile(dir_ / "r"), RandomBytes(5000, 31));
  EXPECT_EQ(Bkv("check --from " + store + Key()).code, 0);
}

// 20.6: an object swapped for another backup under the same key restored
// the other version under the requested id. Now: exit 4, nothing restored.
TEST_F(ClientFault, RegressionSwappedObjectIsRefused) {
  const std::string store = Store("store");
  std::vector<std::string> objects;
  for (int i = 0; i < 2; ++i) {
    WriteFile(dir_ / "db", RandomBytes(5000, 40 + i));
    Result b =
        Bkv("backup " + (dir_ / "db") + " --to " + store + Key() + " --json");
    ASSERT_EQ(b.code, 0);
    const size_t at = b.out.find("\"object\":\"") + 10;
    objects.push_back(b.out.substr(at, b.out.find('"', at) - at));
  }
  // The store rolls the newest back to the older version.
  fs::copy_file(dir_ / ("store/" + objects[0]), dir_ / ("store/" + objects[1]),
                fs::copy_options::overwrite_existing);
  ++tally.faults;
  Result r = Bkv("restore --from " + store + " --to " + (dir_ / "r") + Key());
  EXPECT_EQ(r.code, kCorrupted) << r.err;
  EXPECT_THAT(r.err, HasSubstr("swapped or rolled back"));
  EXPECT_FALSE(fs::exists(dir_ / "r"));
  Result check = Bkv("check --from " + store + Key());
  EXPECT_EQ(check.code, kCorrupted);
  EXPECT_THAT(check.out, HasSubstr(objects[1]));
}

// 20.8: the restored root got mode 0700 instead of the source's.
TEST_F(ClientFault, RegressionRestoredRootKeepsItsMode) {
  const std::string src = MakeTree("tree", 2, 1000, 50);
  ASSERT_EQ(::chmod(src.c_str(), 0751), 0);
  ASSERT_EQ(::chmod((src + "/media").c_str(), 0705), 0);
  ASSERT_EQ(Bkv("backup " + src + " --to " + Store("store") + Key()).code, 0);
  ASSERT_EQ(
      Bkv("restore --from " + Store("store") + " --to " + (dir_ / "r") + Key())
          .code,
      0);
  struct stat st;
  ASSERT_EQ(::stat((dir_ / "r").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0751u);
  ASSERT_EQ(::stat((dir_ / "r/media").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0705u);
}

// SIGKILL of `bkv backup` at chosen points of the upload: the previous
// backup stays listed and restorable, and check/repair reconcile the rest.
TEST_F(ClientFault, SigkillDuringBackupKeepsThePreviousBackup) {
  const std::string first = MakeTree("first", 3, 16 << 10, 60);
  const std::string src = MakeTree("tree", 24, 256 << 10, 61);  // ~7 MiB
  const std::string store = Store("store");
  Result b = Bkv("backup " + first + " --to " + store + Key() + " --json");
  ASSERT_EQ(b.code, 0) << b.err;
  const std::string first_id = IdOf(b.out);
  // Kill once the upload's temporary holds this many bytes (0: as soon as
  // it exists).
  for (uintmax_t point :
       {uintmax_t{0}, uintmax_t{1} << 20, uintmax_t{4} << 20}) {
    const std::string bkv = Cli();
    const std::string keyf = dir_ / "k";
    // A loaded machine can let the whole upload slip between two polls;
    // that run is repeated (at most 3), never counted as a kill.
    bool killed = false;
    for (int attempt = 0; attempt < 3 && !killed; ++attempt) {
      // Temporaries of earlier killed runs stay (invisible to List); only the
      // new run's count.
      std::set<std::string> old;
      for (const auto& e : fs::directory_iterator(dir_ / "store")) {
        old.insert(e.path().filename().string());
      }
      pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        std::freopen("/dev/null", "w", stdout);
        std::freopen("/dev/null", "w", stderr);
        ::execl(bkv.c_str(), "bkv", "backup", src.c_str(), "--to",
                store.c_str(), "--key-file", keyf.c_str(), "--no-compress",
                "--format", "1", static_cast<char*>(nullptr));
        ::_exit(127);
      }
      const auto deadline =
          std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (!killed && std::chrono::steady_clock::now() < deadline) {
        for (const auto& e : fs::directory_iterator(dir_ / "store")) {
          const std::string n = e.path().filename().string();
          std::error_code ec;
          if (n.rfind(".tmp-", 0) == 0 && !old.count(n) &&
              fs::file_size(e.path(), ec) >= point && !ec) {
            ::kill(pid, SIGKILL);
            killed = true;
            break;
          }
        }
        if (!killed) {
          int st;
          if (::waitpid(pid, &st, WNOHANG) == pid) {
            pid = -1;
            break;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      }
      if (pid > 0) {
        if (!killed) ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
    EXPECT_TRUE(killed) << "the backup finished before kill point " << point;
    ++tally.faults;
    Result l = Bkv("list --from " + store + Key());
    EXPECT_EQ(l.code, 0) << l.err;
    EXPECT_THAT(l.out, HasSubstr(first_id));
    EXPECT_EQ(LostFiles(store, first, first_id), 0);
    // Killed between the object's rename and the list's: check names the
    // unlisted backup and repair adds it. Anything else must be clean.
    Result check = Bkv("check --from " + store + Key());
    if (check.code != 0) {
      EXPECT_EQ(check.code, kCorrupted) << check.err;
      EXPECT_THAT(check.out, HasSubstr("not in the list"));
      EXPECT_EQ(Bkv("repair --from " + store + Key()).code, 0);
      EXPECT_EQ(Bkv("check --from " + store + Key()).code, 0);
    }
  }
}

}  // namespace
}  // namespace bkv
