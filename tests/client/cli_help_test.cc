// 16.5, 19.6: every command and subcommand of both binaries answers --help
// with exit 0 and its own usage, and --version, run through the real
// binaries; the command tree is walked from their own --help.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/cli/cli.h"

namespace bkv {
namespace {

struct Result {
  int code;
  std::string out;
};

Result Run(const std::string& binary, const std::string& args) {
  const std::string cmd = binary + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

Result RunBkv(const std::string& args) { return Run(BKV_CLI_PATH, args); }

// The commands a binary's --help lists: lines "  NAME WORD... summary"
// (leaves by their full name), their groups added.
std::set<std::string> ListedCommands(const std::string& binary) {
  const std::string name = binary.substr(binary.rfind('/') + 1);
  Result top = Run(binary, "--help");
  EXPECT_EQ(top.code, 0) << top.out;
  std::set<std::string> commands;
  for (absl::string_view line : absl::StrSplit(top.out, '\n')) {
    if (!absl::ConsumePrefix(&line, "  " + name + " ")) continue;
    std::string words(
        absl::StripAsciiWhitespace(line.substr(0, line.find("  "))));
    if (size_t sp = words.find(' '); sp != std::string::npos) {
      commands.insert(words.substr(0, sp));  // the group
    }
    commands.insert(words);
  }
  return commands;
}

// Every command of `binary` answers --help with its own usage line and
// --version with the version; a mistyped command gets a suggestion.
void WalkTree(const std::string& binary, size_t at_least) {
  const std::string name = binary.substr(binary.rfind('/') + 1);
  const std::set<std::string> commands = ListedCommands(binary);
  EXPECT_GE(commands.size(), at_least);
  for (const std::string& cmd : commands) {
    Result help = Run(binary, cmd + " --help");
    EXPECT_EQ(help.code, 0) << cmd << ": " << help.out;
    const std::string first_word = cmd.substr(0, cmd.find(' '));
    EXPECT_EQ(help.out.rfind("usage: " + name + " " + first_word, 0), 0u)
        << cmd << ": " << help.out;
    Result version = Run(binary, cmd + " --version");
    EXPECT_EQ(version.code, 0) << cmd << ": " << version.out;
    EXPECT_EQ(version.out.rfind(name + " ", 0), 0u) << cmd << version.out;
  }
  Result typo = Run(binary, "hepl");
  EXPECT_EQ(typo.code, 2) << typo.out;
  Result version = Run(binary, "--version");
  EXPECT_EQ(version.code, 0);
  EXPECT_EQ(version.out.rfind(name + " ", 0), 0u) << version.out;
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

TEST(CliHelp, BkvTreeWalk) {
  WalkTree(BKV_CLI_PATH, 15);
  // The walk found every command of the CLI's own tree.
  const std::set<std::string> listed = ListedCommands(BKV_CLI_PATH);
  for (const std::string& name : cli::CommandNames()) {
    EXPECT_TRUE(listed.count(name)) << name;
  }
}

TEST(CliHelp, VaultTreeWalk) {
#ifdef BKV_VAULT_PATH
  WalkTree(BKV_VAULT_PATH, 12);
  for (const char* cmd : {"serve", "hsm init", "token mint", "health",
                          "rollback reanchor", "hsm export-request"}) {
    EXPECT_TRUE(ListedCommands(BKV_VAULT_PATH).count(cmd)) << cmd;
  }
#else
  GTEST_SKIP() << "client-only build: no bkv-vault";
#endif
}

TEST(CliHelp, FlagSyntaxAndTypos) {
  // --flag=value and --flag value alike; a missing value and an unknown
  // flag are usage errors (2), an unknown one with a suggestion.
  Result eq = RunBkv("list --from=file:///nonexistent/bkv-help-test");
  Result sp = RunBkv("list --from file:///nonexistent/bkv-help-test");
  EXPECT_EQ(eq.code, sp.code) << eq.out << sp.out;
  EXPECT_NE(eq.code, 2) << eq.out;
  Result missing = RunBkv("list --from");
  EXPECT_EQ(missing.code, 2) << missing.out;
  EXPECT_NE(missing.out.find("--from"), std::string::npos) << missing.out;
  Result typo = RunBkv("list --frmo x");
  EXPECT_EQ(typo.code, 2) << typo.out;
  EXPECT_NE(typo.out.find("did you mean `--from`"), std::string::npos)
      << typo.out;
  Result cmd = RunBkv("snapshtos");
  EXPECT_EQ(cmd.code, 2) << cmd.out;
  EXPECT_NE(cmd.out.find("did you mean `snapshots`"), std::string::npos)
      << cmd.out;
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
