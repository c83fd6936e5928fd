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
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "client/vault_client.h"
#include "client/vault_errors.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "server/config.h"
#include "storage/etcd_record_store.h"
#include "tests/server/history_checker.h"
#include "tests/server/vault_harness.h"
#include "tests/storage/etcd_cluster.h"
#include "tests/storage/test_util.h"

namespace bkv::testing {
namespace {

using storage::testing::EtcdCluster;
using storage::testing::LinkProxy;
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
    auto cluster = EtcdCluster::Start({.peer_proxies = links_});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    etcd_ = *std::move(cluster);
    ASSERT_EQ(HsmInit(token_dir_.path() + "/softhsm"), 0);
    for (int i = 0; i < kNodes; ++i) {
      nodes_.push_back(std::make_unique<VaultProcess>());
      node_links_.emplace_back();
      for (int m = 0; links_ && m < etcd_->size(); ++m) {
        auto proxy = LinkProxy::Start(etcd_->client_port(m));
        ASSERT_TRUE(proxy.ok()) << proxy.status();
        node_links_[i].push_back(*std::move(proxy));
      }
    }
    // Node 0 makes the development issuer; the others trust its key.
    ASSERT_TRUE(nodes_[0]->Start(NodeArgs(0, {}))) << nodes_[0]->log();
    for (int i = 1; i < kNodes; ++i) {
      ASSERT_TRUE(nodes_[i]->Start(NodeArgs(
          i,
          {"--issuer-keys-file", nodes_[0]->data_dir() + "/dev-issuer.pub"})))
          << nodes_[i]->log();
      // One token: one server key for every node.
      ASSERT_EQ(nodes_[i]->public_key(), nodes_[0]->public_key());
    }
  }

  // Node `node`'s etcd endpoints: the members, or with links_ its own
  // proxy to each member (the vault-etcd links, to cut).
  std::vector<std::string> Endpoints(int node) {
    if (!links_) return etcd_->Endpoints();
    std::vector<std::string> out;
    for (const auto& p : node_links_[node]) out.push_back(p->address());
    return out;
  }

  std::vector<std::string> NodeArgs(int node, std::vector<std::string> extra) {
    std::vector<std::string> args = {
        "--storage", "etcd", "--etcd-endpoints",
        absl::StrJoin(Endpoints(node), ","), "--etcd-insecure", "--softhsm-dir",
        token_dir_.path() + "/softhsm", "--attempt-limit",
        std::to_string(kLimit),
        // The attempt counter, not the per-node rate limits, must be what
        // stops the guessers here.
        "--guess-burst", "1000", "--guess-per-second", "1000",
        "--account-burst", "1000", "--account-per-second", "1000",
        "--peer-burst", "10000", "--peer-per-second", "10000",
        // The history checker reads the status between guesses.
        "--read-burst", "10000", "--read-per-second", "10000"};
    if (links_) {
      // Cut links are noticed by deadlines: keep them short here.
      args.insert(args.end(), {"--etcd-call-timeout-ms", "500",
                               "--etcd-op-timeout-ms", "2000"});
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  // `guessers` threads, spread over the nodes, each making up to `guesses`
  // wrong guesses on `account` (stopping once it is locked) and reading
  // its status between guesses; everything seen goes into `history`.
  void GuessStorm(const std::string& account, int guessers, int guesses,
                  AttemptHistory& history) {
    const std::string token = Token(account);
    std::vector<std::thread> threads;
    for (int g = 0; g < guessers; ++g) {
      threads.emplace_back([&, g] {
        auto client = Client(g % kNodes);
        for (int i = 0; i < guesses; ++i) {
          const absl::Time start = absl::Now();
          TestClient::Recovery r = client->Recover(token, account, "wrong");
          if (r.got_ke2) {
            history.Add({account, AttemptHistory::Kind::kKe2,
                         r.attempts_remaining, start, absl::Now()});
          }
          if (r.result.detail &&
              r.result.detail->reason() == ErrorDetail::REASON_LOCKED) {
            return;
          }
          RecordStatus(*client, account, token, history);
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  static void RecordStatus(TestClient& client, const std::string& account,
                           const std::string& token, AttemptHistory& history) {
    const absl::Time start = absl::Now();
    vault::v1::GetStatusResponse status;
    if (client.Status(token, &status).ok()) {
      history.Add({account, AttemptHistory::Kind::kStatus,
                   status.attempts_remaining(), start, absl::Now()});
    }
  }

  std::unique_ptr<TestClient> Client(int node) {
    return std::make_unique<TestClient>(nodes_[node]->address(),
                                        nodes_[node]->public_key());
  }
  std::string Token(const std::string& account) {
    return nodes_[0]->Token(account);
  }

  bool links_ = false;  // set by fixtures that cut links
  TempDir token_dir_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::vector<std::vector<std::unique_ptr<LinkProxy>>> node_links_;
  std::vector<std::unique_ptr<VaultProcess>> nodes_;
};

TEST_F(ClusterTest, ConcurrentGuessersOverThreeNodesGetAtMostLimitKe2s) {
  const std::string account = "cluster-guessed";
  const std::string token = Token(account);
  SecretBytes key = SecretBytes::Copy(std::string(32, 'k'));
  ASSERT_TRUE(Client(0)->Register(token, account, "right", key).ok());

  // 32 guessers, spread over the nodes, each at most 8 wrong guesses (256
  // in all, far above the limit).
  AttemptHistory history(kLimit);
  GuessStorm(account, 32, 8, history);
  const std::vector<std::string> violations = history.Check();
  EXPECT_TRUE(violations.empty()) << absl::StrJoin(violations, "\n");
  EXPECT_EQ(history.Ke2s(account), static_cast<int>(kLimit));

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

// The checker itself must catch each kind of violation.
TEST(AttemptHistoryTest, FlagsDuplicateOverLimitAndBackwardsCounts) {
  const absl::Time t0 = absl::UnixEpoch();
  auto at = [&](int s) { return t0 + absl::Seconds(s); };
  using K = AttemptHistory::Kind;
  {
    AttemptHistory h(3);
    h.Add({"a", K::kKe2, 2, at(0), at(1)});
    h.Add({"a", K::kKe2, 1, at(2), at(3)});
    h.Add({"a", K::kStatus, 1, at(4), at(5)});
    h.Add({"b", K::kKe2, 2, at(0), at(1)});  // another account's own count
    EXPECT_TRUE(h.Check().empty());
  }
  {
    AttemptHistory h(3);
    h.Add({"a", K::kKe2, 2, at(0), at(3)});
    h.Add({"a", K::kKe2, 2, at(1), at(2)});
    EXPECT_EQ(h.Check().size(), 1u) << "two KE2s for one count";
  }
  {
    AttemptHistory h(3);
    h.Add({"a", K::kKe2, 3, at(0), at(1)});
    EXPECT_EQ(h.Check().size(), 1u) << "a KE2 with nothing counted";
  }
  {
    AttemptHistory h(3);
    h.Add({"a", K::kStatus, 1, at(0), at(1)});
    h.Add({"a", K::kStatus, 2, at(2), at(3)});
    EXPECT_EQ(h.Check().size(), 1u) << "the count went back";
    AttemptHistory overlapping(3);  // concurrent calls may see either order
    overlapping.Add({"a", K::kStatus, 1, at(0), at(2)});
    overlapping.Add({"a", K::kStatus, 2, at(1), at(3)});
    EXPECT_TRUE(overlapping.Check().empty());
  }
}

// Each vault node reaches every etcd member through a proxy of its own, and
// etcd's peer traffic goes through proxies too: links the test can cut.
class ClusterLinkTest : public ClusterTest {
 protected:
  ClusterLinkTest() { links_ = true; }
  void CutNodeFromEtcd(int node) {
    for (auto& p : node_links_[node]) p->Sever();
  }
  void HealNode(int node) {
    for (auto& p : node_links_[node]) p->Heal();
  }
  // A whole recovery with the right password through `node`, retried
  // (bounded: 40 x 250 ms) while the cluster heals.
  bool RecoversEventually(int node, const std::string& account,
                          const std::string& token) {
    auto client = Client(node);
    for (int i = 0; i < 40; ++i) {
      if (client->Recover(token, account, "pw").result.ok()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return false;
  }
};

TEST_F(ClusterLinkTest, NodeCutFromEtcdFailsUnavailableWhileOthersServe) {
  const std::string account = "cluster-cut-node";
  const std::string token = Token(account);
  SecretBytes key = SecretBytes::Copy(std::string(32, 'c'));
  ASSERT_TRUE(Client(1)->Register(token, account, "pw", key).ok());

  CutNodeFromEtcd(0);
  const absl::Time start = absl::Now();
  TestClient::Recovery cut = Client(0)->Recover(token, account, "pw");
  const absl::Duration took = absl::Now() - start;
  EXPECT_FALSE(cut.got_ke2) << "a KE2 without a committed count";
  EXPECT_EQ(cut.result.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << cut.result.status.error_message();
  std::cout << "node cut from etcd answered UNAVAILABLE after " << took
            << " (etcd op timeout 2 s)\n";
  // The node's log names the cause for the operator.
  EXPECT_NE(nodes_[0]->log().find("no answer before the deadline"),
            std::string::npos)
      << nodes_[0]->log();
  // The other nodes serve meanwhile, and the cut node did not spend an
  // attempt it could not count.
  TestClient::Recovery other = Client(2)->Recover(token, account, "pw");
  ASSERT_TRUE(other.result.ok()) << other.result.status.error_message();
  EXPECT_EQ(other.backup_key.RevealAsString(), key.RevealAsString());

  HealNode(0);
  EXPECT_TRUE(RecoversEventually(0, account, token));
}

TEST_F(ClusterLinkTest, EtcdMinorityCutOffServesMajorityCutOffStopsKe2s) {
  const std::string guessed = "cluster-cut-guessed", served = "cluster-cut-ok";
  const std::string served_token = Token(served);
  SecretBytes key = SecretBytes::Copy(std::string(32, 'm'));
  ASSERT_TRUE(Client(0)->Register(Token(guessed), guessed, "pw", key).ok());
  ASSERT_TRUE(Client(0)->Register(served_token, served, "pw", key).ok());
  AttemptHistory history(kLimit);

  // Minority: the leader loses every peer link (an election follows).
  auto leader = etcd_->Leader();
  ASSERT_TRUE(leader.ok()) << leader.status();
  ASSERT_TRUE(etcd_->CutOff(*leader).ok());
  for (int n = 0; n < kNodes; ++n) {
    EXPECT_TRUE(RecoversEventually(n, served, served_token)) << "node " << n;
  }
  GuessStorm(guessed, 3, 1, history);
  EXPECT_GT(history.Ke2s(guessed), 0) << "no KE2 with a majority up";

  // Majority: every member alone. Counted calls fail, no KE2, no status
  // from a stale read.
  ASSERT_TRUE(etcd_->CutOff((*leader + 1) % etcd_->size()).ok());
  const int ke2s_before = history.Ke2s(guessed);
  for (int n = 0; n < kNodes; ++n) {
    auto client = Client(n);
    TestClient::Recovery r = client->Recover(Token(guessed), guessed, "wrong");
    EXPECT_FALSE(r.got_ke2) << "node " << n << " answered without quorum";
    EXPECT_EQ(r.result.status.error_code(), grpc::StatusCode::UNAVAILABLE);
    vault::v1::GetStatusResponse status;
    EXPECT_FALSE(client->Status(Token(guessed), &status).ok())
        << "node " << n << " read without quorum";
  }
  EXPECT_EQ(history.Ke2s(guessed), ke2s_before);

  // Healed: service resumes; the guessing goes on to the lockout and the
  // whole history is consistent.
  etcd_->HealPeerLinks();
  ASSERT_TRUE(etcd_->WaitForLeader().ok());
  EXPECT_TRUE(RecoversEventually(0, served, served_token));
  GuessStorm(guessed, 6, 4, history);
  const std::vector<std::string> violations = history.Check();
  EXPECT_TRUE(violations.empty()) << absl::StrJoin(violations, "\n");
  EXPECT_LE(history.Ke2s(guessed), static_cast<int>(kLimit));
  // Every attempt is spent. An attempt counted by a write whose answer was
  // lost in the cut gave no KE2; its login stays open until it expires,
  // and the record locks then (attempt_policy.h), so LOCKED is due now
  // only if every count got its KE2.
  vault::v1::GetStatusResponse status;
  ASSERT_TRUE(Client(1)->Status(Token(guessed), &status).ok());
  EXPECT_EQ(status.attempts_remaining(), 0u);
  if (history.Ke2s(guessed) == static_cast<int>(kLimit)) {
    EXPECT_EQ(status.status(), vault::v1::RECORD_STATUS_LOCKED);
  }
  int unconfirmed = 0;
  for (const auto& node : nodes_) {
    const std::string log = node->log();
    for (size_t at = 0;
         (at = log.find("may have been applied", at)) != std::string::npos;
         ++at) {
      ++unconfirmed;
    }
  }
  std::cout << "counted without a KE2 across the cuts: "
            << kLimit - history.Ke2s(guessed)
            << "; writes etcd did not confirm (node logs): " << unconfirmed
            << "\n";
}

// A node whose storage settings are wrong exits non-zero at start-up with
// the cause in its log, and writes nothing to any cluster.
class ClusterStartupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(HsmInit(token_dir_.path() + "/softhsm"), 0);
  }
  // Starts a node expected to refuse; returns its log.
  std::string Refused(std::vector<std::string> storage_args) {
    std::vector<std::string> args = {"--storage", "etcd", "--softhsm-dir",
                                     token_dir_.path() + "/softhsm"};
    args.insert(args.end(), storage_args.begin(), storage_args.end());
    VaultProcess node;
    EXPECT_FALSE(node.Start(args)) << "started: " << node.log();
    EXPECT_GT(node.exit_status(), 0) << node.log();
    EXPECT_NE(node.log().find("storage_unavailable"), std::string::npos)
        << node.log();
    return node.log();
  }
  // Every key in cluster `c` (all prefixes), through member 0.
  static int64_t AllKeys(const EtcdCluster& c) {
    auto stub = etcdserverpb::KV::NewStub(grpc::CreateChannel(
        c.Endpoints()[0], grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    etcdserverpb::RangeRequest req;
    req.set_key(std::string(1, '\0'));
    req.set_range_end(std::string(1, '\0'));
    req.set_count_only(true);
    etcdserverpb::RangeResponse resp;
    EXPECT_TRUE(stub->Range(&ctx, req, &resp).ok());
    return resp.count();
  }
  static std::unique_ptr<EtcdCluster> StartOrDie(EtcdCluster::Options o) {
    auto c = EtcdCluster::Start(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }
  TempDir token_dir_;
};

TEST_F(ClusterStartupTest, EtcdUnreachableIsNamed) {
  auto c = StartOrDie({.members = 1});
  ASSERT_NE(c, nullptr);
  const std::string endpoint = c->Endpoints()[0];
  c->Kill(0);
  const std::string log =
      Refused({"--etcd-endpoints", endpoint, "--etcd-insecure"});
  EXPECT_NE(log.find(endpoint), std::string::npos) << log;
  EXPECT_NE(log.find("nothing listens there"), std::string::npos) << log;
}

TEST_F(ClusterStartupTest, CaThatDidNotSignTheServerIsNamed) {
  TempDir certs;
  auto tls = storage::testing::MakeTlsFiles(certs.path());
  ASSERT_TRUE(tls.ok()) << tls.status();
  auto c = StartOrDie({.members = 1, .tls = &*tls});
  ASSERT_NE(c, nullptr);
  const std::string log =
      Refused({"--etcd-endpoints", c->Endpoints()[0], "--etcd-ca-file",
               tls->other_ca_crt, "--etcd-cert-file", tls->client_crt,
               "--etcd-key-file", tls->client_key});
  EXPECT_NE(log.find("TLS handshake failed"), std::string::npos) << log;
  // Nothing written: with the right CA, the store is as it was.
  storage::EtcdRecordStoreOptions o;
  o.endpoints = c->Endpoints();
  o.ca_file = tls->ca_crt;
  o.cert_file = tls->client_crt;
  o.key_file = tls->client_key;
  auto store =
      storage::EtcdRecordStore::Open(o, storage::testing::TestSealer());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE((*store)->HoldsAccounts().value_or(true));
  EXPECT_FALSE((*store)->ReadShardMap().value_or("?").has_value());
}

TEST_F(ClusterStartupTest, MembersOfTwoClustersAreNamed) {
  auto a = StartOrDie({.members = 1}), b = StartOrDie({.members = 1});
  ASSERT_TRUE(a && b);
  const std::string log =
      Refused({"--etcd-endpoints",
               absl::StrCat(a->Endpoints()[0], ",", b->Endpoints()[0]),
               "--etcd-insecure"});
  EXPECT_NE(log.find("different clusters"), std::string::npos) << log;
  EXPECT_EQ(AllKeys(*a), 0);
  EXPECT_EQ(AllKeys(*b), 0);
}

TEST_F(ClusterStartupTest, ShardedNodeServesAndARemappedListIsRefused) {
  auto a = StartOrDie({.members = 1}), b = StartOrDie({.members = 1});
  ASSERT_TRUE(a && b);
  const std::string ea = a->Endpoints()[0], eb = b->Endpoints()[0];
  auto args = [&](const std::string& clusters) {
    return std::vector<std::string>{"--storage",
                                    "etcd",
                                    "--etcd-clusters",
                                    clusters,
                                    "--etcd-insecure",
                                    "--softhsm-dir",
                                    token_dir_.path() + "/softhsm"};
  };
  VaultProcess node;
  ASSERT_TRUE(node.Start(args(ea + ";" + eb))) << node.log();
  TestClient client(node.address(), node.public_key());
  for (int i = 0; i < 8; ++i) {
    const std::string account = absl::StrCat("sharded-node-", i);
    SecretBytes key = SecretBytes::Copy(std::string(32, 'a' + i));
    ASSERT_TRUE(client.Register(node.Token(account), account, "pw", key).ok());
    TestClient::Recovery r = client.Recover(node.Token(account), account, "pw");
    ASSERT_TRUE(r.result.ok()) << r.result.status.error_message();
    EXPECT_EQ(r.backup_key.RevealAsString(), key.RevealAsString());
  }
  EXPECT_EQ(node.Stop(), 0);
  const int64_t keys_a = AllKeys(*a), keys_b = AllKeys(*b);
  EXPECT_GT(keys_a, 1) << "no account landed on cluster a";
  EXPECT_GT(keys_b, 1) << "no account landed on cluster b";

  for (const std::string& clusters : {eb + ";" + ea, ea, ea + ";" + ea}) {
    const std::string log =
        Refused({"--etcd-clusters", clusters, "--etcd-insecure"});
    EXPECT_TRUE(log.find("cluster list changed") != std::string::npos ||
                log.find("same etcd cluster") != std::string::npos)
        << clusters << ": " << log;
  }
  EXPECT_EQ(AllKeys(*a), keys_a);
  EXPECT_EQ(AllKeys(*b), keys_b);
  ASSERT_TRUE(node.Start(args(ea + ";" + eb))) << node.log();
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
