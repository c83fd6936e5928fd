// Rollback resistance against a real bkv-vault process (docs/rollback.md):
// real SoftHSM token, real RocksDB, the store rolled back by copying its
// files, crashes by SIGKILL. ctest -R rollback.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "freshness/shard_tree.h"
#include "storage/record_codec.h"
#include "tests/server/vault_harness.h"

namespace bkv::testing {
namespace {

namespace fs = std::filesystem;
using vault::v1::ErrorDetail;

constexpr uint32_t kShards = 16;

uint32_t ShardOfAccount(const std::string& account) {
  return freshness::ShardOf(storage::DeriveAccountKey(account), kShards);
}

// Two accounts in different shards.
std::pair<std::string, std::string> AccountsInTwoShards(const std::string& p) {
  const std::string a = p + "-a";
  for (int i = 0; i < 100; ++i) {
    std::string b = p + "-b" + std::to_string(i);
    if (ShardOfAccount(b) != ShardOfAccount(a)) return {a, b};
  }
  return {a, a};
}

class RollbackTest : public VaultFixture {
 protected:
  std::string Records() const { return vault_.data_dir() + "/records"; }
  void CopyRecords(const std::string& to) {
    fs::remove_all(to);
    fs::copy(Records(), to, fs::copy_options::recursive);
  }
  void RestoreRecords(const std::string& from) {
    fs::remove_all(Records());
    fs::copy(from, Records(), fs::copy_options::recursive);
  }
  // Runs `bkv-vault rollback reanchor` against this vault's data directory.
  int Reanchor(const std::vector<std::string>& extra, std::string* output) {
    std::string cmd = std::string(BKV_VAULT_BIN) +
                      " rollback reanchor --data-dir " + vault_.data_dir();
    for (const auto& a : extra) cmd += " " + a;
    cmd += " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return -1;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
    return WEXITSTATUS(pclose(p));
  }
  void GuessUntilLocked(const std::string& acct) {
    for (int i = 0; i < 12; ++i) {
      auto r = client_->Recover(vault_.Token(acct), acct, "wrong");
      if (r.result.detail &&
          r.result.detail->reason() == ErrorDetail::REASON_LOCKED) {
        return;
      }
      ASSERT_TRUE(r.got_ke2) << r.result.status.error_message();
    }
    ADD_FAILURE() << "never locked";
  }
  static void ExpectRolledBack(const TestClient::Recovery& r) {
    EXPECT_FALSE(r.got_ke2);
    ASSERT_TRUE(r.result.detail.has_value()) << r.result.status.error_message();
    EXPECT_EQ(r.result.detail->reason(),
              ErrorDetail::REASON_STORAGE_ROLLED_BACK)
        << r.result.status.error_message();
    EXPECT_EQ(r.result.detail->attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
    EXPECT_EQ(r.result.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  }
};

// The reproduction: copy, lock out, restore the copy, restart.
TEST_F(RollbackTest, RestoredRecordsAfterLockoutGiveNoGuessAndNoKey) {
  StartVault();
  auto [acct, other] = AccountsInTwoShards("ivan");
  RegisterOrDie(acct, "right");
  SecretBytes other_key = RegisterOrDie(other, "other-pw");
  StopVault();
  const std::string copy = vault_.data_dir() + "/records-copy";
  CopyRecords(copy);
  StartVault();
  GuessUntilLocked(acct);
  StopVault();
  RestoreRecords(copy);
  StartVault();
  EXPECT_NE(vault_.log().find("freshness_shard_stale"), std::string::npos)
      << vault_.log();
  auto r = client_->Recover(vault_.Token(acct), acct, "right");
  ExpectRolledBack(r);
  EXPECT_TRUE(r.backup_key.empty());
  // The other shard serves.
  auto o = client_->Recover(vault_.Token(other), other, "other-pw");
  ASSERT_TRUE(o.result.ok()) << o.result.status.error_message();
  EXPECT_TRUE(o.backup_key == other_key);
}

}  // namespace
}  // namespace bkv::testing
