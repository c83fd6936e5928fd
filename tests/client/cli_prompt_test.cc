// The CLI asks for vault passwords like a password manager does (issue
// 19.2): on a pseudo-terminal, with echo off, twice when a password is set,
// with a strength floor; nothing is registered when any of that fails. The
// real bkv binary against a real bkv-vault process.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "crypto/hex.h"
#include "tests/server/vault_harness.h"

namespace bkv {
namespace {

namespace fs = std::filesystem;

struct PtyRun {
  int exit_code = -1;
  std::string screen;  // everything the terminal showed
};

// Runs bkv on a new pseudo-terminal and types `answers`, one per prompt
// ("...: " at the end of the screen). Bounded to 60 s.
PtyRun RunOnPty(const std::vector<std::string>& args,
                std::vector<std::string> answers) {
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    std::vector<char*> argv = {const_cast<char*>(BKV_CLI_PATH)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  PtyRun run;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  size_t answered_at = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{master, POLLIN, 0};
    if (poll(&p, 1, 200) > 0) {
      char buf[512];
      const ssize_t n = read(master, buf, sizeof buf);
      if (n <= 0) break;  // the child closed the terminal
      run.screen.append(buf, n);
    }
    const bool prompted = run.screen.size() > answered_at &&
                          run.screen.ends_with(": ") && !answers.empty();
    if (prompted) {
      const std::string line = answers.front() + "\n";
      answers.erase(answers.begin());
      EXPECT_EQ(write(master, line.data(), line.size()),
                static_cast<ssize_t>(line.size()));
      answered_at = run.screen.size();
    }
  }
  close(master);
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

class CliPromptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(vault_.Start({"--attempt-limit", "4"})) << vault_.log();
    dir_ = fs::path(vault_.data_dir()) / "prompt";
    fs::create_directories(dir_ / "src");
    std::ofstream(dir_ / "src" / "chat.db") << "messages";
    std::ofstream(dir_ / "token") << vault_.Token("alice");
  }
  std::vector<std::string> Backup() {
    return {"backup",       (dir_ / "src").string(),
            "--to",         "file://" + (dir_ / "store").string(),
            "--vault",      vault_.address(),
            "--vault-key",  HexEncode(vault_.public_key()),
            "--account",    "alice",
            "--token-file", (dir_ / "token").string()};
  }
  bool Registered() {
    testing::TestClient client(vault_.address(), vault_.public_key());
    vault::v1::GetStatusResponse st;
    client.Status(vault_.Token("alice"), &st);
    return st.status() != vault::v1::RECORD_STATUS_NONE;
  }

  testing::VaultProcess vault_;
  fs::path dir_;
};

TEST_F(CliPromptTest, PasswordIsAskedTwiceWithoutEchoAndRegistered) {
  const std::string pw = "plum orbit canvas";
  PtyRun r = RunOnPty(Backup(), {pw, pw});
  EXPECT_EQ(r.exit_code, 0) << r.screen;
  EXPECT_NE(r.screen.find("Enter the password: "), std::string::npos);
  EXPECT_NE(r.screen.find("Repeat it to set it: "), std::string::npos);
  EXPECT_EQ(r.screen.find(pw), std::string::npos) << "echoed: " << r.screen;
  EXPECT_TRUE(Registered());
  // The next backup asks once: the key is recovered, not registered.
  PtyRun again = RunOnPty(Backup(), {pw});
  EXPECT_EQ(again.exit_code, 0) << again.screen;
  EXPECT_EQ(again.screen.find("Repeat"), std::string::npos) << again.screen;
}

TEST_F(CliPromptTest, MismatchOrWeakPasswordRegistersNothing) {
  PtyRun differ =
      RunOnPty(Backup(), {"plum orbit canvas", "plum orbit cnavas"});
  EXPECT_EQ(differ.exit_code, 2) << differ.screen;
  EXPECT_NE(differ.screen.find("differ"), std::string::npos) << differ.screen;
  PtyRun weak = RunOnPty(Backup(), {"alice123"});
  EXPECT_EQ(weak.exit_code, 2) << weak.screen;
  EXPECT_NE(weak.screen.find("too easy to guess"), std::string::npos)
      << weak.screen;
  EXPECT_FALSE(Registered());
}

// No terminal and no --password-stdin: an error saying how, not a hang.
TEST_F(CliPromptTest, NoTerminalAndNoStdinFlagSaysHow) {
  const std::string out = (dir_ / "out.txt").string();
  std::string cmd = std::string(BKV_CLI_PATH);
  for (const auto& a : Backup()) cmd += " '" + a + "'";
  cmd += " </dev/null 2>'" + out + "'";
  const int status = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(status), 2);
  std::ifstream f(out);
  const std::string err((std::istreambuf_iterator<char>(f)), {});
  EXPECT_NE(err.find("--password-stdin"), std::string::npos) << err;
  EXPECT_FALSE(Registered());
}

}  // namespace
}  // namespace bkv
