// `bkv-vault health` (the container HEALTHCHECK) against a real vault
// process: serving answers 0, a stopped vault 1, a bad flag 2.
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "gtest/gtest.h"
#include "tests/server/vault_harness.h"

namespace bkv::testing {
namespace {

struct HealthRun {
  int code = -1;
  std::string output;  // stdout and stderr
};

HealthRun Health(const std::string& flags) {
  std::string cmd = std::string(BKV_VAULT_BIN) + " health " + flags + " 2>&1";
  HealthRun r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) r.output.append(buf, n);
  int status = ::pclose(p);
  if (status != -1 && WIFEXITED(status)) r.code = WEXITSTATUS(status);
  return r;
}

TEST(HealthCommand, ServingVaultIsHealthyAndStoppedOneIsNot) {
  VaultProcess vault;
  ASSERT_TRUE(vault.Start()) << vault.log();
  HealthRun up = Health("--addr " + vault.address() + " --timeout-ms 5000");
  EXPECT_EQ(up.code, 0) << up.output;
  EXPECT_EQ(up.output, "serving\n");

  ASSERT_EQ(vault.Stop(), 0) << vault.log();
  HealthRun down = Health("--addr " + vault.address() + " --timeout-ms 1000");
  EXPECT_EQ(down.code, 1) << down.output;
  EXPECT_NE(down.output.find(vault.address()), std::string::npos)
      << down.output;
}

TEST(HealthCommand, UsageErrorsExitTwoAndHelpZero) {
  EXPECT_EQ(Health("--bogus").code, 2);
  EXPECT_EQ(Health("--timeout-ms 0").code, 2);
  EXPECT_EQ(Health("--addr").code, 2);
  HealthRun help = Health("--help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.output.find("usage: bkv-vault health"), std::string::npos)
      << help.output;
}

}  // namespace
}  // namespace bkv::testing
