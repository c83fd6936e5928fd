// Runs the JUnit 5 suite of the JVM binding (BkvTest.java) against real
// bkv-vault processes (one for the vault calls, one with a tiny read burst
// for the rate-limit case) and the s3rver and nginx WebDAV servers of the
// ctest fixture. The harness mints the accounts' tokens and passes
// everything through the environment.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "crypto/hex.h"
#include "tests/client/client_test_support.h"
#include "tests/client/run_program.h"
#include "tests/server/vault_harness.h"

namespace bkv {
namespace {

std::string KeyHex(const testing::VaultProcess& vault) {
  const auto& pk = vault.public_key();
  return HexEncode(std::span<const uint8_t>(pk));
}

TEST(JavaBinding, JUnitSuitePassesAgainstARealVault) {
  testing::VaultProcess vault, limited;
  ASSERT_TRUE(vault.Start({"--attempt-limit", "3", "--account-burst", "100",
                           "--read-burst", "100", "--guess-burst", "100"}))
      << vault.log();
  ASSERT_TRUE(limited.Start({"--read-burst", "2", "--read-per-second", "0.01"}))
      << limited.log();
  std::vector<std::string> env = {
      "BKV_TEST_VAULT_ADDR=" + vault.address(),
      "BKV_TEST_VAULT_KEY=" + KeyHex(vault),
      "BKV_TEST_LIMITED_VAULT_ADDR=" + limited.address(),
      "BKV_TEST_LIMITED_VAULT_KEY=" + KeyHex(limited),
      "BKV_TEST_LIMITED_VAULT_TOKEN=" + limited.Token("java-limited")};
  auto servers = testing::ServersEnv();
  ASSERT_FALSE(servers.empty()) << "servers.env missing: run through ctest";
  for (const auto& [name, value] : servers) env.push_back(name + "=" + value);
  env.push_back("AWS_ACCESS_KEY_ID=" + servers["BKV_TEST_S3_ACCESS_KEY"]);
  env.push_back("AWS_SECRET_ACCESS_KEY=" + servers["BKV_TEST_S3_SECRET_KEY"]);
  env.push_back("BKV_WEBDAV_USER=" + servers["BKV_TEST_WEBDAV_USER"]);
  env.push_back("BKV_WEBDAV_PASSWORD=" + servers["BKV_TEST_WEBDAV_PASSWORD"]);
  for (const char* account : {"java-a", "java-b", "java-c"}) {
    env.push_back(std::string("BKV_TEST_VAULT_TOKEN_") + account[5] + "=" +
                  vault.Token(account));
  }
  const int status = testing::RunProgram(
      {"java", "-Dbkv.jni.library=" BKV_JNI_LIBRARY, "-jar", BKV_JUNIT_CONSOLE,
       "--disable-banner", "--details=tree", "--fail-if-no-tests",
       "--class-path", BKV_JAVA_JAR ":" BKV_JAVA_TEST_JAR, "--select-class",
       "dev.bkv.BkvTest"},
      env);
  ASSERT_NE(status, -1) << "could not start java";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the JUnit suite failed (wait status " << status
      << "); its report is above. Vault log:\n"
      << vault.log();
}

}  // namespace
}  // namespace bkv
