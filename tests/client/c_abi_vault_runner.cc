// Runs the C program c_abi_vault_test against a real bkv-vault process: the
// C side can't use the C++ harness, so this starts the vault, mints an
// account token and passes both through the environment.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "crypto/hex.h"
#include "tests/client/run_program.h"
#include "tests/client/vault_test_support.h"
#include "tests/server/vault_harness.h"

namespace bkv {
namespace {

using ::bkv::testing::RunProgram;

TEST(CAbiVault, CProgramPassesAgainstARealVault) {
  testing::VaultProcess vault;
  ASSERT_TRUE(vault.Start({"--attempt-limit", "3", "--account-burst", "100",
                           "--read-burst", "100", "--guess-burst", "100"}))
      << vault.log();
  BKV_SKIP_UNLESS_V2(vault);
  BKV_SKIP_UNLESS_PROOF_OR_DELAY(vault);
  const std::string account = "c-abi-acct";
  const auto& pk = vault.public_key();
  const std::string key_hex = HexEncode(std::span<const uint8_t>(pk));
  ASSERT_EQ(key_hex.size(), 64u);
  int status =
      RunProgram({BKV_C_ABI_VAULT_TEST_PATH},
                 {"BKV_TEST_VAULT_ADDR=" + vault.address(),
                  "BKV_TEST_VAULT_KEY=" + key_hex,
                  "BKV_TEST_VAULT_TOKEN=" + vault.Token(account),
                  "BKV_TEST_VAULT_ACCOUNT=" + account,
                  "BKV_TEST_VAULT_PID=" + std::to_string(vault.pid())});
  ASSERT_NE(status, -1) << "could not start " << BKV_C_ABI_VAULT_TEST_PATH;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "c_abi_vault_test failed (wait status " << status
      << "); its checks are in the output above. Vault log:\n"
      << vault.log();
}

}  // namespace
}  // namespace bkv
