// `bkv backup/restore --vault ... --password-stdin` and `bkv vault ...`,
// the real CLI binary against a real bkv-vault process.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "crypto/hex.h"
#include "tests/server/vault_harness.h"

#ifndef BKV_CLI_PATH
#error "BKV_CLI_PATH must name the bkv binary"
#endif

namespace bkv {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int exit_code;
  std::string out, err;
};

// Runs bkv with `args`, feeding `input` on stdin. Bounded by the vault's
// own deadlines; nothing here loops.
CliRun Bkv(const std::vector<std::string>& args, const std::string& input,
           const fs::path& dir) {
  const fs::path out = dir / "out.txt", err = dir / "err.txt",
                 in = dir / "in.txt";
  std::ofstream(in) << input;
  pid_t pid = fork();
  if (pid == 0) {
    int i = open(in.c_str(), O_RDONLY);
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(i, 0);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<char*> argv = {const_cast<char*>(BKV_CLI_PATH)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  auto slurp = [](const fs::path& p) {
    std::ifstream f(p);
    return std::string((std::istreambuf_iterator<char>(f)), {});
  };
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

class CliVaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Each CLI run makes up to four calls; the default per-account burst
    // is meant for people, not for a test running a dozen commands.
    ASSERT_TRUE(
        vault_.Start({"--attempt-limit", "4", "--account-burst", "100"}))
        << vault_.log();
    dir_ = fs::path(vault_.data_dir()) / "cli";
    fs::create_directories(dir_ / "src" / "media");
    std::ofstream(dir_ / "src" / "chat.db") << std::string(300'000, 'c');
    std::ofstream(dir_ / "src" / "media" / "a.jpg") << "jpeg bytes";
    std::ofstream(dir_ / "token") << vault_.Token("alice");
  }
  std::vector<std::string> VaultFlags() {
    return {"--vault",         vault_.address(),
            "--vault-key",     HexEncode(vault_.public_key()),
            "--account",       "alice",
            "--token-file",    (dir_ / "token").string(),
            "--password-stdin"};
  }
  std::vector<std::string> With(std::vector<std::string> head) {
    auto f = VaultFlags();
    head.insert(head.end(), f.begin(), f.end());
    return head;
  }
  std::string Store() { return "file://" + (dir_ / "store").string(); }

  testing::VaultProcess vault_;
  fs::path dir_;
};

TEST_F(CliVaultTest, BackupWithPasswordThenRestoreWithIt) {
  fs::create_directories(dir_ / "store");
  CliRun b1 = Bkv(With({"backup", (dir_ / "src").string(), "--to", Store()}),
                  "correct horse\n", dir_);
  ASSERT_EQ(b1.exit_code, 0) << b1.err;
  EXPECT_NE(b1.err.find("registered a new backup key"), std::string::npos);
  // The second backup recovers the same key instead of making a new one.
  CliRun b2 = Bkv(With({"backup", (dir_ / "src").string(), "--to", Store()}),
                  "correct horse\n", dir_);
  ASSERT_EQ(b2.exit_code, 0) << b2.err;
  EXPECT_EQ(b2.err.find("registered"), std::string::npos);

  CliRun wrong = Bkv(
      With({"restore", "--from", Store(), "--to", (dir_ / "wrong").string()}),
      "battery staple\n", dir_);
  EXPECT_EQ(wrong.exit_code, 3) << wrong.err;
  EXPECT_NE(wrong.err.find("wrong password; 3 attempts remaining"),
            std::string::npos)
      << wrong.err;
  EXPECT_FALSE(fs::exists(dir_ / "wrong"));

  CliRun r = Bkv(With({"restore", "--from", Store(), "--to",
                       (dir_ / "restored").string()}),
                 "correct horse\n", dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream restored(dir_ / "restored" / "chat.db");
  std::string content((std::istreambuf_iterator<char>(restored)), {});
  EXPECT_EQ(content, std::string(300'000, 'c'));

  CliRun st = Bkv(With({"vault", "status", "--json"}), "", dir_);
  ASSERT_EQ(st.exit_code, 0) << st.err;
  EXPECT_NE(st.out.find("\"status\":\"active\""), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("\"attempts_remaining\":4"), std::string::npos);
}

TEST_F(CliVaultTest, LockedAfterTheLimitAndMisuseIsRefused) {
  fs::create_directories(dir_ / "store");
  ASSERT_EQ(Bkv(With({"backup", (dir_ / "src").string(), "--to", Store()}),
                "pw\n", dir_)
                .exit_code,
            0);
  CliRun last;
  for (int i = 0; i < 4; ++i) {
    last = Bkv(With({"list", "--from", Store()}), "nope\n", dir_);
  }
  EXPECT_EQ(last.exit_code, 8) << last.err;
  CliRun right = Bkv(With({"list", "--from", Store()}), "pw\n", dir_);
  EXPECT_EQ(right.exit_code, 8) << right.err;

  // A password on the command line is refused outright.
  CliRun argv_pw =
      Bkv({"backup", "x", "--to", Store(), "--password", "pw"}, "", dir_);
  EXPECT_EQ(argv_pw.exit_code, 2);
  // No pin, no call.
  CliRun no_pin =
      Bkv({"vault", "status", "--vault", vault_.address(), "--account", "alice",
           "--token-file", (dir_ / "token").string()},
          "", dir_);
  EXPECT_EQ(no_pin.exit_code, 2) << no_pin.err;
  // Delete, then the account has no key.
  EXPECT_EQ(Bkv(With({"vault", "delete"}), "", dir_).exit_code, 0);
  CliRun gone = Bkv(With({"vault", "status", "--json"}), "", dir_);
  EXPECT_NE(gone.out.find("\"status\":\"none\""), std::string::npos);
}

}  // namespace
}  // namespace bkv
