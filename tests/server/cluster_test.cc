// Several real `bkv-vault serve` nodes over one real 3-member etcd cluster
// on loopback, sharing one SoftHSM token (`bkv-vault hsm init`): the attempt
// limit holds across nodes, a lockout is seen by every node, and a login
// started on a node that dies finishes on another.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "client/vault_client.h"
#include "client/vault_errors.h"
#include "server/config.h"
#include "tests/server/vault_harness.h"
#include "tests/storage/etcd_cluster.h"
#include "tests/storage/test_util.h"

namespace bkv::testing {
namespace {

using storage::testing::EtcdCluster;
using storage::testing::TempDir;
using vault::v1::ErrorDetail;

constexpr int kNodes = 3;
constexpr uint32_t kLimit = 10;

// Runs `bkv-vault hsm init --softhsm-dir dir`; returns its exit status.
int HsmInit(const std::string& dir) {
  pid_t pid = fork();
  if (pid == 0) {
    execl(BKV_VAULT_BIN, BKV_VAULT_BIN, "hsm", "init", "--softhsm-dir",
          dir.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = EtcdCluster::Start({});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    etcd_ = *std::move(cluster);
    ASSERT_EQ(HsmInit(token_dir_.path() + "/softhsm"), 0);
    for (int i = 0; i < kNodes; ++i) {
      nodes_.push_back(std::make_unique<VaultProcess>());
    }
    // Node 0 makes the development issuer; the others trust its key.
    ASSERT_TRUE(nodes_[0]->Start(NodeArgs({}))) << nodes_[0]->log();
    for (int i = 1; i < kNodes; ++i) {
      ASSERT_TRUE(nodes_[i]->Start(NodeArgs(
          {"--issuer-keys-file", nodes_[0]->data_dir() + "/dev-issuer.pub"})))
          << nodes_[i]->log();
      // One token: one server key for every node.
      ASSERT_EQ(nodes_[i]->public_key(), nodes_[0]->public_key());
    }
  }

  std::vector<std::string> NodeArgs(std::vector<std::string> extra) {
    std::vector<std::string> args = {
        "--storage", "etcd", "--etcd-endpoints",
        absl::StrJoin(etcd_->Endpoints(), ","), "--etcd-insecure",
        "--softhsm-dir", token_dir_.path() + "/softhsm", "--attempt-limit",
        std::to_string(kLimit),
        // The attempt counter, not the per-node rate limits, must be what
        // stops the guessers here.
        "--guess-burst", "1000", "--guess-per-second", "1000",
        "--account-burst", "1000", "--account-per-second", "1000",
        "--peer-burst", "10000", "--peer-per-second", "10000"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  std::unique_ptr<TestClient> Client(int node) {
    return std::make_unique<TestClient>(nodes_[node]->address(),
                                        nodes_[node]->public_key());
  }
  std::string Token(const std::string& account) {
    return nodes_[0]->Token(account);
  }

  TempDir token_dir_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::vector<std::unique_ptr<VaultProcess>> nodes_;
};

TEST_F(ClusterTest, ConcurrentGuessersOverThreeNodesGetAtMostLimitKe2s) {
  const std::string account = "cluster-guessed";
  const std::string token = Token(account);
  SecretBytes key = SecretBytes::Copy(std::string(32, 'k'));
  ASSERT_TRUE(Client(0)->Register(token, account, "right", key).ok());

  // 32 guessers, spread over the nodes, each at most 8 wrong guesses (256
  // in all, far above the limit); each stops once told the account is
  // locked.
  constexpr int kGuessers = 32;
  absl::Mutex mu;
  std::vector<uint32_t> remaining_at_ke2;  // guarded by mu
  std::vector<std::thread> threads;
  for (int g = 0; g < kGuessers; ++g) {
    threads.emplace_back([&, g] {
      auto client = Client(g % kNodes);
      for (int i = 0; i < 8; ++i) {
        TestClient::Recovery r = client->Recover(token, account, "wrong");
        if (r.got_ke2) {
          absl::MutexLock lock(&mu);
          remaining_at_ke2.push_back(r.attempts_remaining);
        }
        if (r.result.detail &&
            r.result.detail->reason() == ErrorDetail::REASON_LOCKED) {
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();

  // History: each KE2 was handed out against its own committed counter
  // value (attempts_remaining after counting), never past the limit.
  EXPECT_EQ(remaining_at_ke2.size(), kLimit);
  std::set<uint32_t> distinct(remaining_at_ke2.begin(), remaining_at_ke2.end());
  EXPECT_EQ(distinct.size(), remaining_at_ke2.size())
      << "two KE2s for one counter value";
  for (uint32_t r : remaining_at_ke2) EXPECT_LT(r, kLimit);

  // The lockout destroyed the key for every node: each reports it locked
  // and hands the right password no KE2.
  for (int n = 0; n < kNodes; ++n) {
    auto client = Client(n);
    vault::v1::GetStatusResponse status;
    ASSERT_TRUE(client->Status(token, &status).ok());
    EXPECT_EQ(status.status(), vault::v1::RECORD_STATUS_LOCKED) << "node " << n;
    TestClient::Recovery r = client->Recover(token, account, "right");
    EXPECT_FALSE(r.got_ke2) << "node " << n;
    EXPECT_EQ(r.backup_key.size(), 0u);
  }
}

TEST_F(ClusterTest, LoginStartedOnAKilledNodeFinishesOnAnother) {
  const std::string account = "cluster-failover";
  const std::string token = Token(account);
  SecretBytes key = SecretBytes::Copy(std::string(32, 'f'));
  ASSERT_TRUE(Client(1)->Register(token, account, "pw", key).ok());

  auto a = Client(0);
  auto ke1 = a->opaque().GenerateKE1(SecretBytes::Copy(std::string("pw")));
  ASSERT_TRUE(ke1.ok());
  vault::v1::RecoverStartRequest start;
  const auto ke1_bytes = ke1->ke1.Serialize();
  start.set_ke1(std::string(ke1_bytes.begin(), ke1_bytes.end()));
  vault::v1::RecoverStartResponse started;
  {
    grpc::ClientContext ctx;
    TestClient::Authorize(ctx, token);
    ASSERT_TRUE(a->stub().RecoverStart(&ctx, start, &started).ok());
  }
  nodes_[0]->Kill();  // mid-recovery: after KE2, before KE3

  auto ke3 = a->opaque().GenerateKE3(
      std::move(ke1->state),
      {reinterpret_cast<const uint8_t*>(started.ke2().data()),
       started.ke2().size()});
  ASSERT_TRUE(ke3.ok());
  vault::v1::RecoverFinishRequest finish;
  const auto ke3_bytes = ke3->ke3.Serialize();
  finish.set_ke3(std::string(ke3_bytes.begin(), ke3_bytes.end()));
  finish.set_login_state(started.login_state());
  vault::v1::RecoverFinishResponse finished;
  auto b = Client(2);
  grpc::ClientContext ctx;
  TestClient::Authorize(ctx, token);
  grpc::Status s = b->stub().RecoverFinish(&ctx, finish, &finished);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(finished.sealed_key().empty());

  // The finished login refunded its attempt on the shared record.
  vault::v1::GetStatusResponse status;
  ASSERT_TRUE(b->Status(token, &status).ok());
  EXPECT_EQ(status.attempts_remaining(), kLimit);
  // And a whole recovery through a surviving node gives the key back.
  TestClient::Recovery r = Client(1)->Recover(token, account, "pw");
  ASSERT_TRUE(r.result.ok()) << r.result.status.error_message();
  EXPECT_EQ(r.backup_key.RevealAsString(), key.RevealAsString());
}

// The SDK over all three nodes, node 0 first; `calls` records every RPC
// attempt, and `before` runs ahead of each (to kill a node mid-recovery).
std::unique_ptr<client::VaultClient> SdkClient(
    const std::vector<std::unique_ptr<VaultProcess>>& nodes,
    const std::string& token, std::vector<std::string>* calls,
    std::function<void(std::string_view)> before) {
  client::VaultOptions o;
  o.address = nodes[0]->address();
  for (size_t i = 1; i < nodes.size(); ++i) {
    o.failover_addresses.push_back(nodes[i]->address());
  }
  o.server_public_key = nodes[0]->public_key();
  o.ksf = TestKsfParams();
  o.min_ksf = TestKsfParams();
  o.account_token = [token] { return token; };
  o.timeout = std::chrono::seconds(20);
  o.before_call = [calls, before](std::string_view rpc) {
    calls->emplace_back(rpc);
    if (before) before(rpc);
  };
  auto c = client::VaultClient::Create(std::move(o));
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

int Count(const std::vector<std::string>& calls, const std::string& rpc) {
  return static_cast<int>(std::count(calls.begin(), calls.end(), rpc));
}

TEST_F(ClusterTest, SdkRetryFinishesRecoveryOnAnotherNodeAfterSigkill) {
  const std::string account = "cluster-sdk-finish";
  const std::string token = Token(account);
  std::vector<std::string> calls;
  bool killed = false;
  auto sdk = SdkClient(nodes_, token, &calls, [&](std::string_view rpc) {
    if (rpc == "RecoverFinish" && !killed) {
      killed = true;
      nodes_[0]->Kill();  // after KE2, before KE3 reaches it
    }
  });
  ASSERT_NE(sdk, nullptr);
  SecretBytes key = SecretBytes::Copy(std::string(32, 's'));
  ASSERT_TRUE(
      sdk->Register(account, SecretBytes::Copy(std::string("pw")), key).ok());
  auto got = sdk->Recover(account, SecretBytes::Copy(std::string("pw")));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->RevealAsString(), key.RevealAsString());
  EXPECT_TRUE(killed);
  EXPECT_EQ(Count(calls, "RecoverStart"), 1);
  EXPECT_EQ(Count(calls, "RecoverFinish"), 2);  // node 0, then node 1
  auto status = sdk->Status();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->attempts_remaining, kLimit);
}

TEST_F(ClusterTest, SdkRetryNeverRepeatsARecoverStartOnAnotherNode) {
  const std::string account = "cluster-sdk-start";
  const std::string token = Token(account);
  std::vector<std::string> calls;
  bool killed = false;
  auto sdk = SdkClient(nodes_, token, &calls, [&](std::string_view rpc) {
    if (rpc == "RecoverStart" && !killed) {
      killed = true;
      nodes_[0]->Kill();
    }
  });
  ASSERT_NE(sdk, nullptr);
  SecretBytes key = SecretBytes::Copy(std::string(32, 't'));
  ASSERT_TRUE(
      sdk->Register(account, SecretBytes::Copy(std::string("pw")), key).ok());
  auto failed = sdk->Recover(account, SecretBytes::Copy(std::string("pw")));
  ASSERT_FALSE(failed.ok());
  const client::VaultError e = client::VaultError::From(failed.status());
  EXPECT_EQ(e.kind, client::VaultErrorKind::kTransient);
  EXPECT_NE(e.attempt_spent, client::AttemptSpent::kNo)
      << "a RecoverStart that got no answer may have been counted";
  EXPECT_EQ(Count(calls, "RecoverStart"), 1) << "repeated on another node";
  EXPECT_EQ(Count(calls, "RecoverFinish"), 0);
  // The next recovery goes to a live node.
  auto got = sdk->Recover(account, SecretBytes::Copy(std::string("pw")));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->RevealAsString(), key.RevealAsString());
}

TEST(ClusterConfigTest, EtcdSettingsAreCheckedAtLoad) {
  using server::LoadConfig;
  auto no_endpoints = LoadConfig(std::vector<std::string>{"--storage", "etcd"});
  EXPECT_FALSE(no_endpoints.ok());
  auto plaintext_remote = LoadConfig(
      std::vector<std::string>{"--storage", "etcd", "--etcd-endpoints",
                               "10.0.0.5:2379", "--etcd-insecure"});
  ASSERT_FALSE(plaintext_remote.ok());
  EXPECT_NE(plaintext_remote.status().message().find("etcd_ca_file"),
            std::string::npos);
  // A private network may carry plaintext when the operator says so.
  auto private_net = LoadConfig(std::vector<std::string>{
      "--storage", "etcd", "--etcd-endpoints", "10.0.0.5:2379",
      "--etcd-insecure", "--allow-plaintext-non-loopback"});
  EXPECT_TRUE(private_net.ok()) << private_net.status();
  auto no_tls = LoadConfig(std::vector<std::string>{
      "--storage", "etcd", "--etcd-endpoints", "10.0.0.5:2379"});
  EXPECT_FALSE(no_tls.ok());
  auto bad_backend =
      LoadConfig(std::vector<std::string>{"--storage", "sqlite"});
  EXPECT_FALSE(bad_backend.ok());
  auto ok = LoadConfig(std::vector<std::string>{
      "--storage", "etcd", "--etcd-endpoints", "10.0.0.5:2379,10.0.0.6:2379",
      "--etcd-ca-file", "/ca.pem"});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->EtcdEndpoints().size(), 2u);
}

}  // namespace
}  // namespace bkv::testing
