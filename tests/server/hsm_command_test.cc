// `bkv-vault hsm ...` end to end: the real binary, a real SoftHSM token in a
// temporary directory.
#include "server/hsm_command.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/server/command_run.h"

namespace bkv::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using testing::LineAfter;
using testing::Slurp;
using VaultRun = testing::CommandResult;

class HsmCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/bkv-cli-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    tmp_ = tmpl;
    dir_ = tmp_ + "/softhsm";
    unsetenv("BKV_HSM_PIN");
    unsetenv("SOFTHSM2_CONF");
  }
  void TearDown() override { std::filesystem::remove_all(tmp_); }

  // Arguments are test-controlled paths and flags; no PIN ever goes here.
  VaultRun Vault(const std::string& args) {
    return testing::RunShell(std::string("'") + BKV_VAULT_BIN + "' " + args,
                             tmp_);
  }
  static std::string Line(const std::string& text, const std::string& key) {
    return LineAfter(text, key);
  }

  std::string tmp_, dir_;
};

constexpr char kFingerprint[] = "server public key fingerprint (SHA-256): ";

TEST_F(HsmCommandTest, InitSoftHsmDirTwiceKeepsKeys) {
  VaultRun first = Vault("hsm init --softhsm-dir '" + dir_ + "'");
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_THAT(first.out, HasSubstr("created under"));
  EXPECT_THAT(first.out, HasSubstr("bkv-record-seal-v1: created"));
  EXPECT_THAT(first.out, HasSubstr("self-tests: passed"));
  const std::string fingerprint = Line(first.out, kFingerprint);
  EXPECT_EQ(fingerprint.size(), 64u) << first.out;

  for (const char* name : {"user.pin", "so.pin"}) {
    struct stat st;
    ASSERT_EQ(stat((dir_ + "/" + name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_mode & 0777, 0600) << name;
    // The PIN is in the file, and nowhere in what the command printed.
    std::string pin = Slurp(dir_ + "/" + name);
    while (!pin.empty() && pin.back() == '\n') pin.pop_back();
    EXPECT_GE(pin.size(), 16u);
    EXPECT_THAT(first.out + first.err, Not(HasSubstr(pin)));
  }
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/softhsm2.conf"));

  VaultRun second = Vault("hsm init --softhsm-dir '" + dir_ + "'");
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_THAT(second.out, HasSubstr("found under"));
  EXPECT_THAT(second.out, HasSubstr("bkv-record-seal-v1: kept"));
  EXPECT_THAT(second.out, Not(HasSubstr(": created")));
  EXPECT_EQ(Line(second.out, kFingerprint), fingerprint);

  VaultRun status = Vault("hsm status --softhsm-dir '" + dir_ + "'");
  ASSERT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_EQ(Line(status.out, kFingerprint), fingerprint);
}

TEST_F(HsmCommandTest, NormalPathWithPinFileOrEnv) {
  ASSERT_EQ(Vault("hsm init --softhsm-dir '" + dir_ + "'").exit_code, 0);
  setenv("SOFTHSM2_CONF", (dir_ + "/softhsm2.conf").c_str(), 1);
  VaultRun by_file =
      Vault("hsm status --token-label bkv --pin-file '" + dir_ + "/user.pin'");
  EXPECT_EQ(by_file.exit_code, 0) << by_file.out << by_file.err;

  std::string pin = Slurp(dir_ + "/user.pin");
  pin.pop_back();
  setenv("BKV_HSM_PIN", pin.c_str(), 1);
  VaultRun by_env = Vault("hsm init --token-label bkv");
  unsetenv("BKV_HSM_PIN");
  EXPECT_EQ(by_env.exit_code, 0) << by_env.out << by_env.err;
  EXPECT_THAT(by_env.out, HasSubstr("bkv-oprf-seed-v1: kept"));

  VaultRun no_pin = Vault("hsm status --token-label bkv");
  EXPECT_EQ(no_pin.exit_code, 1);
  EXPECT_THAT(no_pin.err, HasSubstr("--pin-file"));
}

TEST_F(HsmCommandTest, OperatorMistakesGetClearErrors) {
  ASSERT_EQ(Vault("hsm init --softhsm-dir '" + dir_ + "'").exit_code, 0);
  setenv("SOFTHSM2_CONF", (dir_ + "/softhsm2.conf").c_str(), 1);
  const std::string wrong = tmp_ + "/wrong.pin";
  {
    std::ofstream(wrong) << "not-the-pin-0000\n";
    chmod(wrong.c_str(), 0600);
  }
  VaultRun bad_pin = Vault("hsm status --pin-file '" + wrong + "'");
  EXPECT_EQ(bad_pin.exit_code, 1);
  EXPECT_THAT(bad_pin.err, HasSubstr("wrong PIN"));
  EXPECT_THAT(bad_pin.err, Not(HasSubstr("not-the-pin-0000")));

  chmod(wrong.c_str(), 0644);
  VaultRun open_file = Vault("hsm status --pin-file '" + wrong + "'");
  EXPECT_EQ(open_file.exit_code, 1);
  EXPECT_THAT(open_file.err, HasSubstr("chmod 600"));

  VaultRun no_token = Vault("hsm status --token-label other --pin-file '" +
                            dir_ + "/user.pin'");
  EXPECT_EQ(no_token.exit_code, 1);
  EXPECT_THAT(no_token.err, HasSubstr("token 'other' not found"));
  EXPECT_THAT(no_token.err, HasSubstr("bkv-vault hsm init"));

  VaultRun no_module =
      Vault("hsm status --module /nonexistent/p11.so --pin-file '" + dir_ +
            "/user.pin'");
  EXPECT_EQ(no_module.exit_code, 1);
  EXPECT_THAT(no_module.err,
              HasSubstr("/nonexistent/p11.so could not be loaded"));
}

TEST_F(HsmCommandTest, PinIsNeverAFlag) {
  VaultRun r = Vault("hsm init --pin 424242");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("never go on the command line"));
  EXPECT_THAT(r.err, Not(HasSubstr("424242")));
}

TEST_F(HsmCommandTest, HelpDocumentsFlags) {
  VaultRun top = Vault("--help");
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_THAT(top.out, HasSubstr("bkv-vault hsm init"));
  VaultRun init = Vault("hsm init --help");
  EXPECT_EQ(init.exit_code, 0);
  for (const char* flag :
       {"--module", "--token-label", "--pin-file", "--softhsm-dir",
        "--force-new-keys", "BKV_HSM_PIN"}) {
    EXPECT_THAT(init.out, HasSubstr(flag));
  }
  EXPECT_EQ(Vault("bogus").exit_code, 2);
  EXPECT_EQ(Vault("hsm").exit_code, 2);
}

// One parser for every subcommand: `--flag value` and `--flag=value` alike,
// a flag without its value or with another flag as its value is a usage
// error, a typo gets a suggestion, and a PIN-like flag is refused without
// echoing its value, on the real binary and token.
TEST_F(HsmCommandTest, FlagSyntaxIsOneParser) {
  VaultRun eq = Vault("hsm init --softhsm-dir='" + dir_ + "'");
  ASSERT_EQ(eq.exit_code, 0) << eq.err;
  VaultRun spaced = Vault("hsm status --softhsm-dir '" + dir_ + "'");
  EXPECT_EQ(spaced.exit_code, 0) << spaced.err;
  EXPECT_EQ(Line(spaced.out, kFingerprint), Line(eq.out, kFingerprint));

  VaultRun dangling = Vault("hsm status --softhsm-dir");
  EXPECT_EQ(dangling.exit_code, 2);
  EXPECT_THAT(dangling.err, HasSubstr("--softhsm-dir"));
  VaultRun flag_as_value = Vault("hsm status --softhsm-dir --token-label bkv");
  EXPECT_EQ(flag_as_value.exit_code, 2);
  EXPECT_THAT(flag_as_value.err, HasSubstr("needs a value"));

  // `--flag=` is an empty value, not the next word.
  VaultRun empty =
      Vault("hsm status --token-label= --softhsm-dir '" + dir_ + "'");
  EXPECT_EQ(empty.exit_code, 1) << empty.err;
  EXPECT_THAT(empty.err, HasSubstr("token '' not found"));

  VaultRun typo = Vault("hsm status --sofhsm-dir '" + dir_ + "'");
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_THAT(typo.err, HasSubstr("did you mean `--softhsm-dir`"));
  EXPECT_THAT(typo.err, HasSubstr("bkv-vault hsm status --help"));
  VaultRun sub_typo = Vault("hsm statsu");
  EXPECT_EQ(sub_typo.exit_code, 2);
  EXPECT_THAT(sub_typo.err, HasSubstr("did you mean `status`"));
  // A flag of another subcommand is not this one's.
  EXPECT_EQ(Vault("hsm status --force-new-keys --softhsm-dir '" + dir_ + "'")
                .exit_code,
            2);

  for (const char* secret :
       {"hsm status --pin=424242", "hsm export --so-pin 424242",
        "serve --hsm-pin=424242"}) {
    VaultRun r = Vault(secret);
    EXPECT_EQ(r.exit_code, 2) << secret;
    EXPECT_THAT(r.err, HasSubstr("never go on the command line")) << secret;
    EXPECT_THAT(r.out + r.err, Not(HasSubstr("424242"))) << secret;
  }
  EXPECT_EQ(Vault("token mint --sub=a --ttl-s=0").exit_code, 2);
  EXPECT_EQ(Vault("serve --attempt-limit").exit_code, 2);
  VaultRun serve_typo = Vault("serve --atempt-limit=3");
  EXPECT_EQ(serve_typo.exit_code, 2);
  EXPECT_THAT(serve_typo.err, HasSubstr("did you mean `--attempt-limit`"));
}

}  // namespace
}  // namespace bkv::server
