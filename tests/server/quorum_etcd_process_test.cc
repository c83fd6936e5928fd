// The quorum of endorsing nodes over a real 3-member etcd cluster: three
// `bkv-vault serve` processes on one etcd, each with its own token (`hsm
// init`, then `cluster keygen`), mTLS between them, node 1 the owner. An
// account's record and watermark put back as an earlier etcd state held
// them, behind the owner, as a snapshot restore does to the vault's keys.
// ctest -R rollback.quorum.process.etcd
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_join.h"
#include "storage/record_codec.h"
#include "tests/server/quorum_process.h"
#include "tests/storage/etcd_cluster.h"
#include "tests/storage/etcd_test_util.h"

namespace bkv::testing {
namespace {

using storage::testing::EtcdCluster;
using storage::testing::RawEtcd;
using vault::v1::ErrorDetail;

class QuorumEtcdProcessTest : public QuorumProcessTest {
 protected:
  void PrepareNodes() override {
    auto etcd = EtcdCluster::Start({.members = 3});
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = *std::move(etcd);
    // mTLS between the members: one CA, a certificate (serverAuth and
    // clientAuth, IP:127.0.0.1) every member presents both ways.
    const std::string tls_dir = node_[0].data_dir() + "/tls";
    std::filesystem::create_directories(tls_dir);
    auto tls = storage::testing::MakeTlsFiles(tls_dir);
    ASSERT_TRUE(tls.ok()) << tls.status();
    for (int i = 0; i < kNodes; ++i) {
      // etcd nodes never make keys: the ceremony first, each its own token.
      ASSERT_EQ(
          std::system((std::string(BKV_VAULT_BIN) + " hsm init --softhsm-dir " +
                       Softhsm(i) + " >/dev/null")
                          .c_str()),
          0);
      args_[i] = {"--storage",        "etcd",
                  "--etcd-endpoints", absl::StrJoin(etcd_->Endpoints(), ","),
                  "--etcd-insecure",  "--softhsm-dir",
                  Softhsm(i),         "--freshness-peer-cert-file",
                  tls->server_crt,    "--freshness-peer-key-file",
                  tls->server_key,    "--freshness-peer-ca-file",
                  tls->ca_crt};
    }
  }
  void TearDown() override {
    for (VaultProcess& n : node_) n.Kill();
  }

  std::unique_ptr<EtcdCluster> etcd_;
};

TEST_F(QuorumEtcdProcessTest, EarlierEtcdStateBehindTheOwnerIsCaught) {
  Register("olga");
  RawEtcd raw(*etcd_, 0);
  const auto key = storage::DeriveAccountKey("olga");
  std::map<std::string, std::string> earlier;
  for (const std::string& k : {"bkv/" + storage::RecordDbKey(key),
                               "bkv/" + storage::WatermarkDbKey(key)}) {
    etcdserverpb::RangeResponse resp;
    ASSERT_TRUE(raw.Range(k, 0, &resp).ok());
    ASSERT_EQ(resp.kvs_size(), 1) << "no etcd key " << k;
    earlier[k] = resp.kvs(0).value();
  }
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Guess("olga").got_ke2);
  // The heads went through the endorsers, over mTLS.
  EXPECT_NE(node_[1].log().find("\"peer_tls\":\"mtls\""), std::string::npos);
  EXPECT_EQ(HeldSeq(1), HeldSeq(0));
  EXPECT_GT(HeldSeq(1), 1);
  for (const auto& [k, v] : earlier) ASSERT_TRUE(raw.Put(k, v).ok());
  auto r = Guess("olga", kPassword);
  EXPECT_FALSE(r.got_ke2);
  ASSERT_TRUE(r.result.detail.has_value()) << r.result.status.error_message();
  EXPECT_EQ(r.result.detail->reason(), ErrorDetail::REASON_STORAGE_ROLLED_BACK);
  EXPECT_EQ(r.result.detail->attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
  // And at start-up: the owner's take-over adopts the certified head, and
  // the store is behind it.
  ASSERT_EQ(node_[0].Stop(), 0);
  ASSERT_NO_FATAL_FAILURE(StartNode(0));
  client_ =
      std::make_unique<TestClient>(node_[0].address(), node_[0].public_key());
  r = Guess("olga", kPassword);
  EXPECT_FALSE(r.got_ke2);
  ASSERT_TRUE(r.result.detail.has_value()) << r.result.status.error_message();
  EXPECT_EQ(r.result.detail->reason(), ErrorDetail::REASON_STORAGE_ROLLED_BACK);
  EXPECT_NE(node_[0].log().find("freshness_shard_stale"), std::string::npos);
}

}  // namespace
}  // namespace bkv::testing
