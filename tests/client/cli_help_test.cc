// 16.5: every command and subcommand in the CLI's own table answers --help
// with exit 0 and its flags, run through the real binary.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_split.h"
#include "client/cli/cli.h"

namespace bkv {
namespace {

struct Result {
  int code;
  std::string out;
};

Result RunBkv(const std::string& args) {
  const std::string cmd = std::string(BKV_CLI_PATH) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(CliHelp, EveryCommandAnswersHelpWithItsFlags) {
  const std::vector<std::string> names = cli::CommandNames();
  ASSERT_GE(names.size(), 8u);
  for (const std::string& name : names) {
    for (const char* flag : {"--help", "-h"}) {
      Result r = RunBkv(name + " " + flag);
      EXPECT_EQ(r.code, 0) << name << " " << flag << ": " << r.out;
      EXPECT_EQ(r.out.rfind("usage: bkv " + name, 0), 0u)
          << name << ": " << r.out;
      EXPECT_NE(r.out.find("--help"), std::string::npos) << name;
    }
    // --help wins over whatever else is on the line, even bad flags.
    Result r = RunBkv(name + " --no-such-flag --help");
    EXPECT_EQ(r.code, 0) << name;
  }
  // The top level lists every top-level command.
  Result top = RunBkv("--help");
  EXPECT_EQ(top.code, 0);
  for (const std::string& name : names) {
    const std::vector<std::string> words = absl::StrSplit(name, ' ');
    EXPECT_NE(top.out.find("bkv " + words[0]), std::string::npos) << name;
  }
}

TEST(CliHelp, VaultCommandsExplainWhyPlaintextIsDangerous) {
  for (const char* cmd : {"vault status", "backup", "vault reset"}) {
    Result r = RunBkv(std::string(cmd) + " --help");
    EXPECT_NE(r.out.find("--insecure-plaintext"), std::string::npos) << cmd;
    EXPECT_NE(r.out.find("in the clear"), std::string::npos) << cmd;
    EXPECT_NE(r.out.find("--opaque-context"), std::string::npos) << cmd;
  }
}

}  // namespace
}  // namespace bkv
