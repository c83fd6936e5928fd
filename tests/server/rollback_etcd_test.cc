// Rollback resistance on etcd (docs/rollback.md), one anchored vault node
// (`freshness_single_node`) over a real etcd member: an account's record and
// watermark put back as an earlier etcd state held them, behind the running
// vault. ctest -R rollback.
#include <gtest/gtest.h>

#include <cstdlib>

#include "absl/strings/str_join.h"
#include "storage/record_codec.h"
#include "tests/server/vault_harness.h"
#include "tests/storage/etcd_cluster.h"
#include "tests/storage/etcd_test_util.h"

namespace bkv::testing {
namespace {

using storage::testing::EtcdCluster;
using storage::testing::RawEtcd;
using storage::testing::TempDir;
using vault::v1::ErrorDetail;

TEST(RollbackEtcdTest, EarlierEtcdStateIsCaughtOnTheNextRead) {
  auto etcd = EtcdCluster::Start({.members = 1});
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  TempDir token_dir;
  const std::string softhsm = token_dir.path() + "/softhsm";
  // etcd nodes never make keys: the ceremony first.
  ASSERT_EQ(std::system((std::string(BKV_VAULT_BIN) +
                         " hsm init --softhsm-dir " + softhsm + " >/dev/null")
                            .c_str()),
            0);
  VaultProcess vault;
  ASSERT_TRUE(vault.Start({"--storage", "etcd", "--etcd-endpoints",
                           absl::StrJoin((*etcd)->Endpoints(), ","),
                           "--etcd-insecure", "--softhsm-dir", softhsm,
                           "--freshness-single-node", "--guess-burst", "100"}))
      << vault.log();
  TestClient client(vault.address(), vault.public_key());
  const std::string acct = "olga";
  ASSERT_TRUE(
      client.Register(vault.Token(acct), acct, "right", SecretBytes::Random(32))
          .ok());
  RawEtcd raw(**etcd, 0);
  const auto key = storage::DeriveAccountKey(acct);
  std::map<std::string, std::string> earlier;
  for (const std::string& k : {"bkv/" + storage::RecordDbKey(key),
                               "bkv/" + storage::WatermarkDbKey(key)}) {
    etcdserverpb::RangeResponse resp;
    ASSERT_TRUE(raw.Range(k, 0, &resp).ok());
    ASSERT_EQ(resp.kvs_size(), 1) << "no etcd key " << k;
    earlier[k] = resp.kvs(0).value();
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(client.Recover(vault.Token(acct), acct, "wrong").got_ke2);
  }
  for (const auto& [k, v] : earlier) ASSERT_TRUE(raw.Put(k, v).ok());
  auto r = client.Recover(vault.Token(acct), acct, "right");
  EXPECT_FALSE(r.got_ke2);
  ASSERT_TRUE(r.result.detail.has_value()) << r.result.status.error_message();
  EXPECT_EQ(r.result.detail->reason(), ErrorDetail::REASON_STORAGE_ROLLED_BACK);
  EXPECT_EQ(r.result.detail->attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
  EXPECT_TRUE(r.backup_key.empty());
}

}  // namespace
}  // namespace bkv::testing
