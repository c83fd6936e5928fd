// The quorum of endorsing nodes as real `bkv-vault serve` processes: the
// fixture of quorum_process_test.cc and quorum_etcd_process_test.cc. Three
// nodes, each with its own SoftHSM token and endorsement key made by
// `bkv-vault cluster keygen`, the members file assembled from its output,
// node 1 the owner, nodes 2 and 3 endorsing on loopback peer ports (or,
// over etcd, up to five nodes electing their owner).
#ifndef BKV_TESTS_SERVER_QUORUM_PROCESS_H_
#define BKV_TESTS_SERVER_QUORUM_PROCESS_H_

#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/synchronization/notification.h"
#include "bkv/vault/v1/vault.grpc.pb.h"
#include "tests/server/vault_harness.h"

namespace bkv::testing {

constexpr int kNodes = 3;
constexpr int kMaxNodes = 5;
constexpr char kPassword[] = "correct horse battery staple";

// Runs `bkv-vault <args>`; its stdout and stderr, and the exit code.
inline int RunVault(const std::string& args, std::string* output) {
  FILE* p =
      popen((std::string(BKV_VAULT_BIN) + " " + args + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  return WEXITSTATUS(pclose(p));
}

// The value of `name` on a /metrics page, -1 when absent.
inline int64_t Gauge(const std::string& page, const std::string& name) {
  std::istringstream lines(page);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name + " ", 0) == 0) {
      return std::stoll(line.substr(name.size() + 1));
    }
  }
  return -1;
}

// grpc.health.v1.Health/Check for the service bkv.vault.v1.Vault: its
// ServingStatus (1 SERVING, 2 NOT_SERVING), -1 on an error. Debian ships no
// health.proto: the request and answer are encoded by hand.
inline int VaultHealth(
    const std::string& address,
    const std::string& name = vault::v1::Vault::service_full_name()) {
  grpc::GenericStub stub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  const std::string request = std::string(1, '\x0a') +
                              std::string(1, static_cast<char>(name.size())) +
                              name;
  grpc::Slice slice(request);
  grpc::ByteBuffer req(&slice, 1), resp;
  grpc::Status st;
  absl::Notification done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &req, &resp, [&](grpc::Status s) {
                   st = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  grpc::Slice out;
  if (!st.ok() || !resp.DumpToSingleSlice(&out).ok() || out.size() != 2 ||
      out.begin()[0] != 0x08) {
    return -1;
  }
  return out.begin()[1];
}

class QuorumProcessTest : public ::testing::Test {
 protected:
  // Under ASan (scripts/test.sh sets ASAN_OPTIONS) the vaults sign with
  // SoftHSM's EdDSA, whose leak at C_SignInit tests/lsan.supp matches only
  // when LSan unwinds slowly (libcrypto has no frame pointers): the vault
  // processes inherit the option; this process needs none.
  static void SlowUnwindInChildrenUnderAsan() {
    const char* asan = std::getenv("ASAN_OPTIONS");
    if (asan == nullptr ||
        std::string(asan).find("fast_unwind_on_malloc") != std::string::npos) {
      return;
    }
    setenv("ASAN_OPTIONS",
           (std::string(asan) + ":fast_unwind_on_malloc=0").c_str(), 1);
  }

  // Before the ceremony: a subclass's storage (etcd) and tokens, its flags
  // per node in args_.
  virtual void PrepareNodes() {}

  void SetUp() override {
    SlowUnwindInChildrenUnderAsan();
    ASSERT_NO_FATAL_FAILURE(PrepareNodes());
    std::string members;
    for (int i = 0; i < nodes_; ++i) {
      peer_[i] = FreePort();
      metrics_[i] = FreePort();
      std::string line;
      ASSERT_NO_FATAL_FAILURE(Keygen(i, &line));
      members += line + member_mark_[i] + "\n";
    }
    members_ = node_[0].data_dir() + "/members";
    std::ofstream(members_) << "# the quorum of this test\n" << members;
    for (int i = 0; i < nodes_; ++i) {
      std::string out;
      ASSERT_EQ(Form(i, members_, "", &out), 0) << out;
    }
    ASSERT_NO_FATAL_FAILURE(StartNodes());
    client_ =
        std::make_unique<TestClient>(node_[0].address(), node_[0].public_key());
  }

  // `cluster keygen` on node i's token; *line is its members-file line
  // ("id key peer").
  void Keygen(int i, std::string* line) {
    std::string out;
    ASSERT_EQ(RunVault("cluster keygen --dev --data-dir " +
                           node_[i].data_dir() + Identity(i) + Flags(i),
                       &out),
              0)
        << out;
    const size_t at = out.find("members line:");
    ASSERT_NE(at, std::string::npos) << out;
    std::istringstream fields(out.substr(at + 13));
    std::string id, key, peer;
    fields >> id >> key >> peer;
    *line = id + " " + key + " " + peer;
  }

  // The endorsers first, then the owner.
  virtual void StartNodes() {
    for (int i = 1; i < nodes_; ++i) ASSERT_NO_FATAL_FAILURE(StartNode(i));
    ASSERT_NO_FATAL_FAILURE(StartNode(0));
  }

  // `to` becomes a copy of the SoftHSM token directory `from` (the vault's
  // keys cloned, as the cloning ceremony does), its config naming `to`.
  static void CloneToken(const std::string& from, const std::string& to) {
    Copy(from, to);
    const std::string conf = to + "/softhsm2.conf";
    std::stringstream text;
    text << std::ifstream(conf).rdbuf();
    std::string c = text.str();
    for (size_t at; (at = c.find(from)) != std::string::npos;) {
      c.replace(at, from.size(), to);
    }
    std::ofstream(conf, std::ios::trunc) << c;
  }

  std::string Identity(int i) const {
    // keygen needs a members file named, not read.
    return " --freshness-members-file " +
           (members_.empty() ? std::string("unused") : members_) +
           " --freshness-node-id " + std::to_string(i + 1) +
           " --freshness-peer-listen 127.0.0.1:" + std::to_string(peer_[i]);
  }

  // The security officer's `cluster form` on node i (its vault stopped),
  // with the dev token's SO PIN; `extra`: --export OUT or --carry FILES.
  int Form(int i, const std::string& members, const std::string& extra,
           std::string* out) const {
    return RunVault("cluster form --dev --data-dir " + node_[i].data_dir() +
                        Identity(i) + Flags(i) + " --members " + members +
                        " --node-id " + std::to_string(i + 1) +
                        " --so-pin-file " + Softhsm(i) + "/so.pin " + extra,
                    out);
  }

  std::string Flags(int i) const {
    std::string out;
    for (const std::string& a : args_[i]) out += " " + a;
    return out;
  }

  void StartNode(int i, bool owner = false) {
    std::vector<std::string> args = args_[i];
    args.insert(
        args.end(),
        {"--metrics-listen", "127.0.0.1:" + std::to_string(metrics_[i]),
         "--freshness-members-file", members_, "--freshness-node-id",
         std::to_string(i + 1), "--freshness-endorse-timeout-ms", "2000",
         // Lockouts in a few seconds, not a rate limit.
         "--guess-burst", "100"});
    if ((i == 0 && hand_owner_) || owner) args.push_back("--freshness-owner");
    ASSERT_TRUE(node_[i].Start(args)) << "node " << i + 1 << ":\n"
                                      << node_[i].log();
  }

  // Starts node 1 on `owner`, setting `started` when its start returns;
  // true once its log shows it waiting for the quorum before then
  // (bounded: 20 s). The caller joins `owner`.
  bool StartOwnerWaiting(std::thread& owner, std::atomic<bool>& started) {
    owner = std::thread([&] {
      StartNode(0);
      started = true;
    });
    bool waiting = false;
    for (int i = 0; i < 200 && !waiting && !started; ++i) {
      waiting =
          node_[0].log().find("freshness_quorum_waiting") != std::string::npos;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return waiting;
  }

  std::string Token(const std::string& account) const {
    return node_[0].Token(account);
  }
  void Register(const std::string& account) {
    auto r = client_->Register(Token(account), account, kPassword,
                               SecretBytes::Copy(std::string(32, 'k')));
    ASSERT_TRUE(r.ok()) << r.status.error_message();
  }
  uint32_t Remaining(const std::string& account) {
    vault::v1::GetStatusResponse s;
    auto r = client_->Status(Token(account), &s);
    EXPECT_TRUE(r.ok()) << r.status.error_message();
    return s.attempts_remaining();
  }
  TestClient::Recovery Guess(const std::string& account,
                             const std::string& password = "wrong") {
    return client_->Recover(Token(account), account, password);
  }
  int64_t HeldSeq(int i) {
    return Gauge(HttpGet(metrics_[i], "/metrics"),
                 "bkv_freshness_endorser_held_seq");
  }
  int64_t Metric(int i, const std::string& name) {
    return Gauge(HttpGet(metrics_[i], "/metrics"), name);
  }
  // Bounded wait (100 x 100 ms) for node i's endorser to leave recovery.
  bool Recovered(int i) {
    for (int n = 0; n < 100; ++n) {
      if (Metric(i, "bkv_freshness_endorser_recovering") == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  // A client to node 1 again, after it restarted.
  void Reconnect() {
    client_ =
        std::make_unique<TestClient>(node_[0].address(), node_[0].public_key());
  }
  // Copies node 1's records to `copy` (node 1 stopped for it), then spends
  // all ten guesses of `account`: the copy is from before the lockout.
  void LockOutAfterCopy(const std::string& account, const std::string& copy) {
    ASSERT_EQ(node_[0].Stop(), 0);
    Copy(Records(), copy);
    ASSERT_NO_FATAL_FAILURE(StartNode(0));
    Reconnect();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(Guess(account).got_ke2);
  }
  std::string Softhsm(int i) const { return node_[i].data_dir() + "/softhsm"; }
  std::string Records() const { return node_[0].data_dir() + "/records"; }
  static void Copy(const std::string& from, const std::string& to) {
    std::filesystem::remove_all(to);
    std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
  }

  int nodes_ = kNodes;      // members of this quorum, up to kMaxNodes
  bool hand_owner_ = true;  // node 1 started with `owner` (RocksDB)
  VaultProcess node_[kMaxNodes];
  std::vector<std::string> args_[kMaxNodes];  // storage and token flags
  // Appended to node i's members line (" candidate=false").
  std::string member_mark_[kMaxNodes];
  int peer_[kMaxNodes] = {};
  int metrics_[kMaxNodes] = {};
  std::string members_;
  std::unique_ptr<TestClient> client_;
};

}  // namespace bkv::testing

#endif  // BKV_TESTS_SERVER_QUORUM_PROCESS_H_
