// `bkv backup` (incremental by default), `bkv snapshots`, `bkv restore
// --snapshot --path`, `bkv forget`, `bkv prune`, `bkv check [--read-data]` on
// a v2 repository (issue 13), as a user runs them; the store is a file://
// directory.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/client/client_test_support.h"

namespace bkv {
namespace {

namespace fs = std::filesystem;
using ::bkv::testing::RandomBytes;
using ::bkv::testing::ReadFile;
using ::bkv::testing::TempDir;
using ::bkv::testing::WriteFile;

// The number a top-level JSON field holds (-1 when it is missing), whatever
// the fields' order.
int64_t JsonField(const std::string& json, const std::string& field) {
  const std::string key = "\"" + field + "\":";
  const size_t at = json.find(key);
  if (at == std::string::npos) return -1;
  return std::strtoll(json.c_str() + at + key.size(), nullptr, 10);
}

struct CliRun {
  int exit_code;
  std::string out, err;
};

class RepoCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "src/media");
    WriteFile(dir_ / "src/chat.db", RandomBytes(3 << 20, 3));
    WriteFile(dir_ / "src/media/a.jpg", RandomBytes(5000, 4));
    ASSERT_EQ(Bkv({"key", "new", "--out", dir_ / "k"}).exit_code, 0);
    store_ = "file://" + (dir_ / "store");
  }
  // `env`: NAME=VALUE set in the child only; HOME and XDG_CONFIG_HOME point
  // into the test's directory so no user config file is read.
  CliRun Bkv(const std::vector<std::string>& args,
             const std::vector<std::string>& env = {}) {
    const std::string out = dir_ / "out.txt", err = dir_ / "err.txt";
    pid_t pid = fork();
    if (pid == 0) {
      int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(o, 1);
      dup2(e, 2);
      setenv("BKV_STATE_DIR", (dir_ / "state").c_str(), 1);
      setenv("HOME", dir_.path().c_str(), 1);
      setenv("XDG_CONFIG_HOME", (dir_ / "config").c_str(), 1);
      for (const char* v : {"BKV_STORE", "BKV_KEY_FILE", "BKV_VAULT"}) {
        unsetenv(v);
      }
      for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> argv = {const_cast<char*>(BKV_CLI_PATH)};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    auto slurp = [](const std::string& p) {
      std::ifstream f(p);
      return std::string((std::istreambuf_iterator<char>(f)), {});
    };
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out),
            slurp(err)};
  }
  CliRun Backup() {
    return Bkv({"backup", dir_ / "src", "--to", store_, "--key-file",
                dir_ / "k", "--json"});
  }
  TempDir dir_;
  std::string store_;
};

TEST_F(RepoCliTest, SecondBackupUploadsNothingNewAndRestores) {
  CliRun first = Backup();
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.out.find("\"seq\":1"), std::string::npos) << first.out;
  // A new repository is version 4: its sealed config names HMAC-SHA256
  // (repo.RepoConfigTest.ChunkIdFunctionIsSealedInTheConfig opens it).
  EXPECT_EQ(ReadFile(dir_ / "store/config")[9], 4);
  // The old flag is accepted with a note.
  CliRun second = Bkv({"backup", dir_ / "src", "--to", store_, "--key-file",
                       dir_ / "k", "--incremental", "--json"});
  EXPECT_NE(second.err.find("--incremental is deprecated"), std::string::npos)
      << second.err;
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(JsonField(second.out, "new_chunks"), 0) << second.out;
  EXPECT_EQ(JsonField(second.out, "packs_uploaded"), 0) << second.out;
  CliRun list =
      Bkv({"snapshots", "--from", store_, "--key-file", dir_ / "k", "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("\"seq\":2"), std::string::npos) << list.out;
  const std::string id =
      first.out.substr(first.out.find("\"snapshot\":\"") + 12, 8);
  CliRun one =
      Bkv({"restore", "--from", store_, "--key-file", dir_ / "k", "--to",
           dir_ / "a.jpg", "--snapshot", id, "--path", "media/a.jpg"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(ReadFile(dir_ / "a.jpg"), ReadFile(dir_ / "src/media/a.jpg"));
  CliRun all = Bkv({"restore", "--from", store_, "--key-file", dir_ / "k",
                    "--to", dir_ / "all", "--snapshot", "latest", "--json"});
  EXPECT_NE(all.out.find(
                second.out.substr(second.out.find("\"snapshot\":\""), 12 + 32)),
            std::string::npos)
      << all.out << second.out;
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(ReadFile(dir_ / "all/chat.db"), ReadFile(dir_ / "src/chat.db"));
  CliRun forget = Bkv({"forget", "--from", store_, "--key-file", dir_ / "k",
                       "--keep-last", "1", "--json"});
  ASSERT_EQ(forget.exit_code, 0) << forget.err;
  EXPECT_NE(forget.out.find(id), std::string::npos) << forget.out;
  CliRun prune =
      Bkv({"prune", "--from", store_, "--key-file", dir_ / "k", "--json"});
  ASSERT_EQ(prune.exit_code, 0) << prune.err;
  // Both snapshots had the same tree, which the kept one still names.
  EXPECT_NE(prune.out.find("\"trees_deleted\":0,"), std::string::npos)
      << prune.out;
  CliRun check =
      Bkv({"check", "--from", store_, "--key-file", dir_ / "k", "--read-data"});
  EXPECT_EQ(check.exit_code, 0) << check.out;
  CliRun bad = Bkv({"forget", "--from", store_, "--key-file", dir_ / "k",
                    "--keep-last", "0"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

// A repository written by bkv before tree objects (config version 2,
// snapshots with inline entries; tests/vectors/repo-v2, made by the release
// before this one): both snapshots restore and check clean; the next backup
// upgrades it (config 3, a tree object) and every snapshot still restores.
TEST_F(RepoCliTest, OldVersion2RepositoryRestoresAndUpgrades) {
  const char* src = std::getenv("BKV_SOURCE_DIR");
  const fs::path vectors = fs::path(src ? src : ".") / "tests/vectors/repo-v2";
  ASSERT_TRUE(fs::exists(vectors / "store/config")) << vectors;
  fs::copy(vectors / "store", dir_ / "old");
  const std::string old = "file://" + (dir_ / "old");
  const std::string key = vectors / "key";
  auto restore = [&](const std::string& snap, const std::string& to) {
    return Bkv({"restore", "--from", old, "--key-file", key, "--to", dir_ / to,
                "--snapshot", snap});
  };
  ASSERT_EQ(restore("01d9411e", "first").exit_code, 0);
  auto text = [](const std::string& t) {
    return std::vector<uint8_t>(t.begin(), t.end());
  };
  EXPECT_EQ(ReadFile(dir_ / "first/a.txt"),
            text("hello from a v2 repository\n"));
  CliRun second = restore("74857df6", "second");
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(ReadFile(dir_ / "second/a.txt"),
            text("changed in the second snapshot\n"));
  EXPECT_EQ(ReadFile(dir_ / "second/sub/b.bin"),
            ReadFile(vectors / "expected/sub/b.bin"));
  EXPECT_EQ(fs::read_symlink(dir_ / "second/link"), "a.txt");
  EXPECT_TRUE(fs::is_directory(dir_ / "second/empty"));
  auto check = [&] {
    return Bkv({"check", "--from", old, "--key-file", key, "--read-data"});
  };
  EXPECT_EQ(check().exit_code, 0) << check().out;
  CliRun up = Bkv(
      {"backup", dir_ / "second", "--to", old, "--key-file", key, "--json"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  // Another path, so every file is read: its chunks' keyed SHA-512 ids
  // (function 1) are all stored already. Version 3 keeps function 1.
  EXPECT_EQ(JsonField(up.out, "new_chunks"), 0) << up.out;
  EXPECT_EQ(ReadFile(dir_ / "old/config")[9], 3);
  size_t trees = 0;
  for (const auto& e : fs::directory_iterator(dir_ / "old")) {
    trees += e.path().filename().string().rfind("tree-", 0) == 0;
  }
  EXPECT_EQ(trees, 1u);
  ASSERT_EQ(restore("01d9411e", "first-again").exit_code, 0);
  CliRun latest = restore("latest", "latest");
  ASSERT_EQ(latest.exit_code, 0) << latest.err;
  EXPECT_EQ(ReadFile(dir_ / "latest/sub/b.bin"),
            ReadFile(vectors / "expected/sub/b.bin"));
  EXPECT_EQ(check().exit_code, 0) << check().out;
  // Incremental on top: one new file is the only new chunk, and check
  // --read-data recomputes every id, old and new, with the one function.
  WriteFile(dir_ / "second/new.bin", RandomBytes(100000, 9));
  CliRun more = Bkv(
      {"backup", dir_ / "second", "--to", old, "--key-file", key, "--json"});
  ASSERT_EQ(more.exit_code, 0) << more.err;
  EXPECT_EQ(JsonField(more.out, "new_chunks"), 1) << more.out;
  EXPECT_EQ(ReadFile(dir_ / "old/config")[9], 3);
  EXPECT_EQ(check().exit_code, 0) << check().out;
  ASSERT_EQ(restore("latest", "newest").exit_code, 0);
  EXPECT_EQ(ReadFile(dir_ / "newest/new.bin"), RandomBytes(100000, 9));
  EXPECT_EQ(ReadFile(dir_ / "newest/sub/b.bin"),
            ReadFile(vectors / "expected/sub/b.bin"));
}

TEST_F(RepoCliTest, CheckReadDataFindsAFlippedBit) {
  ASSERT_EQ(Backup().exit_code, 0);
  CliRun clean = Bkv({"check", "--from", store_, "--key-file", dir_ / "k",
                      "--read-data", "--json"});
  EXPECT_EQ(clean.exit_code, 0) << clean.out << clean.err;
  for (const auto& e : fs::directory_iterator(dir_ / "store")) {
    if (e.path().filename().string().rfind("pack-", 0) != 0) continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(1000);
    char c = 0;
    f.read(&c, 1);
    c ^= 1;
    f.seekp(1000);
    f.write(&c, 1);
  }
  CliRun shallow = Bkv({"check", "--from", store_, "--key-file", dir_ / "k"});
  EXPECT_EQ(shallow.exit_code, 0) << shallow.out;
  CliRun deep =
      Bkv({"check", "--from", store_, "--key-file", dir_ / "k", "--read-data"});
  EXPECT_EQ(deep.exit_code, 4) << deep.out;
  EXPECT_NE(deep.out.find("problem: pack-"), std::string::npos) << deep.out;
  CliRun restore = Bkv({"restore", "--from", store_, "--key-file", dir_ / "k",
                        "--to", dir_ / "out"});
  EXPECT_EQ(restore.exit_code, 4) << restore.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

// Today's three snapshots share a day and an ISO week: --keep-daily 1 and
// --keep-weekly 1 keep only the newest, --keep-last 2 the newest two.
TEST_F(RepoCliTest, ForgetPoliciesKeepTheNewestOfEachPeriod) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    WriteFile(dir_ / "src/notes.txt", RandomBytes(100, 20 + i));
    CliRun b = Backup();
    ASSERT_EQ(b.exit_code, 0) << b.err;
    ids.push_back(b.out.substr(b.out.find("\"snapshot\":\"") + 12, 32));
  }
  auto forget = [&](const std::string& flag, const std::string& n) {
    return Bkv({"forget", "--from", store_, "--key-file", dir_ / "k", flag, n,
                "--keep-last", "0", "--json"});
  };
  CliRun last = Bkv({"forget", "--from", store_, "--key-file", dir_ / "k",
                     "--keep-last", "2", "--json"});
  ASSERT_EQ(last.exit_code, 0) << last.err;
  EXPECT_EQ(last.out, "{\"forgotten\":[\"" + ids[0] + "\"]}\n");
  CliRun weekly = forget("--keep-weekly", "1");
  ASSERT_EQ(weekly.exit_code, 0) << weekly.err;
  EXPECT_EQ(weekly.out, "{\"forgotten\":[\"" + ids[1] + "\"]}\n");
  CliRun daily = forget("--keep-daily", "5");
  ASSERT_EQ(daily.exit_code, 0) << daily.err;
  EXPECT_EQ(daily.out, "{\"forgotten\":[]}\n");
  CliRun snaps =
      Bkv({"snapshots", "--from", store_, "--key-file", dir_ / "k", "--json"});
  EXPECT_NE(snaps.out.find(ids[2]), std::string::npos) << snaps.out;
  EXPECT_EQ(snaps.out.find(ids[1]), std::string::npos) << snaps.out;
  EXPECT_EQ(forget("--keep-daily", "x").exit_code, 2);
}

// A store holding a single-stream (v1) set: plain `bkv backup` keeps adding
// v1 backups (saying so), `bkv restore` detects the format, and --format 2
// into it is refused.
TEST_F(RepoCliTest, V1SetStaysV1AndRestores) {
  CliRun v1 = Bkv({"backup", dir_ / "src", "--to", store_, "--key-file",
                   dir_ / "k", "--format", "1", "--json"});
  ASSERT_EQ(v1.exit_code, 0) << v1.err;
  EXPECT_NE(v1.out.find("\"format\":1,"), std::string::npos) << v1.out;
  CliRun again = Backup();
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("\"format\":1,"), std::string::npos) << again.out;
  EXPECT_NE(again.err.find("single-stream (v1) backup set"), std::string::npos)
      << again.err;
  CliRun v2 = Bkv({"backup", dir_ / "src", "--to", store_, "--key-file",
                   dir_ / "k", "--format", "2"});
  EXPECT_EQ(v2.exit_code, 2) << v2.err;
  CliRun r = Bkv({"restore", "--from", store_, "--key-file", dir_ / "k", "--to",
                  dir_ / "out"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir_ / "out/chat.db"), ReadFile(dir_ / "src/chat.db"));
  EXPECT_FALSE(fs::exists(dir_ / "store/config"));
}

// Restore takes a target as people type it: an existing empty folder, a
// trailing slash, `--snapshot latest` (v2) and `--backup latest` (v1). A
// folder with anything in it is still refused (exit 7) and left as it was.
TEST_F(RepoCliTest, RestoreAcceptsEmptyFolderTrailingSlashAndLatest) {
  ASSERT_EQ(Backup().exit_code, 0);
  const std::string key = dir_ / "k";
  const std::string empty = dir_ / "empty";
  fs::create_directories(empty);
  CliRun r = Bkv({"restore", "--from", store_, "--to", empty + "/",
                  "--key-file", key, "--snapshot", "latest"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(empty + "/chat.db"), ReadFile(dir_ / "src/chat.db"));
  // Not empty now: refused, nothing touched.
  r = Bkv({"restore", "--from", store_, "--to", empty, "--key-file", key});
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_NE(r.err.find("empty folder"), std::string::npos) << r.err;
  EXPECT_EQ(ReadFile(empty + "/chat.db"), ReadFile(dir_ / "src/chat.db"));

  const std::string v1 = "file://" + (dir_ / "v1");
  ASSERT_EQ(Bkv({"backup", dir_ / "src", "--to", v1, "--key-file", key,
                 "--format", "1"})
                .exit_code,
            0);
  const std::string empty1 = dir_ / "empty1";
  fs::create_directories(empty1);
  r = Bkv({"restore", "--from", v1, "--to", empty1 + "//", "--key-file", key,
           "--backup", "latest"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(empty1 + "/media/a.jpg"),
            ReadFile(dir_ / "src/media/a.jpg"));
  // A failed restore puts the empty folder back.
  const std::string empty2 = dir_ / "empty2";
  fs::create_directories(empty2);
  r = Bkv({"restore", "--from", store_, "--to", empty2, "--key-file", key,
           "--snapshot", "ffffffff"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_TRUE(fs::is_directory(empty2));
}

// Fifos and sockets are not backed up, and the backup says so: counted and
// named on stderr, listed in --json.
TEST_F(RepoCliTest, BackupReportsSkippedSpecialFiles) {
  ASSERT_EQ(::mkfifo((dir_ / "src/media/pipe").c_str(), 0600), 0);
  ASSERT_EQ(::mkfifo((dir_ / "src/fifo").c_str(), 0600), 0);
  CliRun r = Backup();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("skipped 2 special files (fifo, socket or device): "
                       "fifo, media/pipe"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("\"skipped_special\":[\"fifo\",\"media/pipe\"]"),
            std::string::npos)
      << r.out;
  fs::remove(dir_ / "src/fifo");
  fs::remove(dir_ / "src/media/pipe");
  r = Backup();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("skipped"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("\"skipped_special\":[]"), std::string::npos) << r.out;
}

// A single-stream (v1) backup leaves them out too, and says so as a v2
// backup does: counted and named on stderr, listed in --json.
TEST_F(RepoCliTest, V1BackupReportsSkippedSpecialFiles) {
  ASSERT_EQ(::mkfifo((dir_ / "src/media/pipe").c_str(), 0600), 0);
  const std::string v1 = store_ + "-v1";
  CliRun r = Bkv({"backup", dir_ / "src", "--to", v1, "--key-file", dir_ / "k",
                  "--format", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("skipped 1 special file (fifo, socket or device): "
                       "media/pipe"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("\"skipped_special\":[\"media/pipe\"]"),
            std::string::npos)
      << r.out;
  const std::string target = dir_ / "v1-restored";
  r = Bkv({"restore", "--from", v1, "--to", target, "--key-file", dir_ / "k"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(target + "/media/a.jpg"));
  EXPECT_FALSE(fs::exists(target + "/media/pipe"));
}

// Settings come from flags, then the environment, then the config file
// ($XDG_CONFIG_HOME/bkv/config.toml or --config FILE); secrets never from
// the file (client/cli/settings.h).
TEST_F(RepoCliTest, SettingsFromEnvironmentThenConfigFile) {
  ASSERT_EQ(Backup().exit_code, 0);
  const std::string key = dir_ / "k", other = dir_ / "other";
  ASSERT_EQ(Bkv({"key", "new", "--out", other}).exit_code, 0);
  // The environment alone.
  CliRun r = Bkv({"snapshots", "--json"},
                 {"BKV_STORE=" + store_, "BKV_KEY_FILE=" + key});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"seq\":1"), std::string::npos) << r.out;
  // A flag beats the environment: the other key is wrong (exit 3).
  r = Bkv({"snapshots", "--key-file", other},
          {"BKV_STORE=" + store_, "BKV_KEY_FILE=" + key});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  // A key file on the command line is not replaced by a vault from the
  // environment (no vault runs at that address).
  r = Bkv({"snapshots", "--key-file", key},
          {"BKV_STORE=" + store_, "BKV_VAULT=127.0.0.1:1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The default config file; the environment beats it.
  fs::create_directories(dir_ / "config/bkv");
  std::ofstream(dir_ / "config/bkv/config.toml")
      << "store = \"" << store_ << "\"\nkey_file = \"" << other << "\"\n";
  r = Bkv({"snapshots"});
  EXPECT_EQ(r.exit_code, 3) << r.err;  // the file's (wrong) key was used
  r = Bkv({"snapshots"}, {"BKV_KEY_FILE=" + key});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // backup takes the store as --to; ~/ is the home directory.
  std::ofstream(dir_ / "named.toml")
      << "store = \"" << store_ << "\"\nkey_file = \"~/k\"\n";
  r = Bkv({"backup", dir_ / "src", "--config", dir_ / "named.toml", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"seq\":2"), std::string::npos) << r.out;
  // Mistakes in the file are configuration errors (exit 2) that say what.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"password = \"hunter22\"\n", "secrets never come from the config file"},
      {"token = \"abc\"\n", "secrets never come from the config file"},
      {"stroe = \"file:///x\"\n", "unknown setting 'stroe'"},
      {"store = 3\n", "'store' must be a string"},
      {"store = \n", "config file"},
  };
  for (const auto& [text, message] : bad) {
    std::ofstream(dir_ / "bad.toml") << text;
    r = Bkv({"snapshots", "--config", dir_ / "bad.toml"});
    EXPECT_EQ(r.exit_code, 2) << text << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << text << r.err;
    EXPECT_EQ(r.err.find("hunter22"), std::string::npos) << r.err;
  }
  r = Bkv({"snapshots", "--config", dir_ / "missing.toml"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace bkv
