// The quorum of endorsing nodes over a real 3-member etcd cluster: three (or
// five) `bkv-vault serve` processes on one etcd, each with its own
// endorsement key in its own token, the vault's keys cloned into every
// token (`hsm init` once, the token copied, then `cluster keygen` on each),
// one token issuer, mTLS between them, and the owner ELECTED by the etcd
// lease (docs/rollback.md "Election", TTL 2 s here). Faults are real:
// owners SIGKILLed and SIGSTOPped, the owner key replaced in etcd, an
// account's keys put back as an earlier etcd state held them.
// ctest -R rollback.quorum.process.etcd
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bkv/fresh/v1/endorse.grpc.pb.h"
#include "client/vault_client.h"
#include "freshness/endorsement.h"
#include "hsm/endorsement_key.h"
#include "hsm/pin.h"
#include "hsm/pkcs11_hsm.h"
#include "storage/record_codec.h"
#include "tests/server/quorum_process.h"
#include "tests/storage/etcd_cluster.h"
#include "tests/storage/etcd_test_util.h"
#include "tests/storage/link_proxy.h"

namespace bkv::testing {
namespace {

namespace fs = std::filesystem;
using storage::testing::EtcdCluster;
using storage::testing::RawEtcd;
using vault::v1::ErrorDetail;

constexpr char kOwnerKey[] = "bkv/fresh/owner";

// Concurrent wrong guesses against one node: one thread and one account
// each, at most kGuesses per account (under the limit of 10), each thread
// stopping at its first answer without a KE2. Tallies what each account
// was told: KE2s (counted), and answers whose attempt may have counted.
class Burst {
 public:
  static constexpr int kGuesses = 8;
  struct Tally {
    int ke2 = 0, maybe = 0;
  };
  Burst(const VaultProcess& node, const std::vector<std::string>& accounts,
        const std::vector<std::string>& tokens)
      : tally_(accounts.size()) {
    for (size_t i = 0; i < accounts.size(); ++i) {
      threads_.emplace_back([this, i, &node, a = accounts[i], t = tokens[i]] {
        TestClient c(node.address(), node.public_key());
        for (int g = 0; g < kGuesses; ++g) {
          TestClient::Recovery r = c.Recover(t, a, "wrong");
          if (r.got_ke2) {
            tally_[i].ke2++;
            ke2s_++;
            continue;
          }
          if (!r.result.detail.has_value() ||
              r.result.detail->attempt() != ErrorDetail::ATTEMPT_NOT_COUNTED) {
            tally_[i].maybe++;
          }
          break;
        }
      });
    }
  }
  ~Burst() { Join(); }
  void Join() {
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  int ke2s() const { return ke2s_.load(); }
  const std::vector<Tally>& tally() const { return tally_; }

 private:
  std::vector<Tally> tally_;
  std::atomic<int> ke2s_{0};
  std::vector<std::thread> threads_;
};

class QuorumEtcdProcessTest : public QuorumProcessTest {
 protected:
  QuorumEtcdProcessTest() { hand_owner_ = false; }

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
    tls_ = *tls;
    // etcd nodes never make keys: the ceremony once, the token cloned, so
    // whichever node is elected holds the keys clients pin.
    ASSERT_EQ(
        std::system((std::string(BKV_VAULT_BIN) + " hsm init --softhsm-dir " +
                     Softhsm(0) + " >/dev/null")
                        .c_str()),
        0);
    for (int i = 1; i < nodes_; ++i) CloneToken(Softhsm(0), Softhsm(i));
    for (int i = 0; i < nodes_; ++i) {
      args_[i] = {"--storage",
                  "etcd",
                  "--etcd-endpoints",
                  absl::StrJoin(etcd_->Endpoints(), ","),
                  "--etcd-insecure",
                  "--softhsm-dir",
                  Softhsm(i),
                  "--freshness-owner-lease-ttl-s",
                  "2",
                  "--freshness-peer-cert-file",
                  tls->server_crt,
                  "--freshness-peer-key-file",
                  tls->server_key,
                  "--freshness-peer-ca-file",
                  tls->ca_crt};
    }
  }

  // Node 1 first: its development issuer signs every account token, so
  // the others get a copy before their first start.
  void StartNodes() override {
    ASSERT_NO_FATAL_FAILURE(StartNode(0));
    for (int i = 1; i < nodes_; ++i) {
      for (const char* f : {"/dev-issuer.key", "/dev-issuer.pub"}) {
        fs::copy_file(node_[0].data_dir() + f, node_[i].data_dir() + f,
                      fs::copy_options::overwrite_existing);
      }
      ASSERT_NO_FATAL_FAILURE(StartNode(i));
    }
  }

  void TearDown() override {
    for (VaultProcess& n : node_) n.Kill();
  }

  int64_t OwnerGauge(int i) {
    return Gauge(HttpGet(metrics_[i], "/metrics"),
                 "bkv_freshness_quorum_owner");
  }

  // Waits (bounded) until a running, not paused node other than `not_this`
  // serves as owner; points client_ at it. -1 if none did in 60 s.
  int WaitForOwner(int not_this = -1) {
    for (int round = 0; round < 300; ++round) {
      for (int i = 0; i < nodes_; ++i) {
        if (i == not_this || !node_[i].running() || paused_[i]) continue;
        if (OwnerGauge(i) == 1 && VaultHealth(node_[i].address()) == 1) {
          client_ = std::make_unique<TestClient>(node_[i].address(),
                                                 node_[i].public_key());
          return i;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return -1;
  }

  // The owner key's holder (its value is "<node id>/<process nonce>"), ""
  // when absent.
  std::string OwnerKeyValue() {
    RawEtcd raw(*etcd_, 0);
    etcdserverpb::RangeResponse resp;
    if (!raw.Range(kOwnerKey, 0, &resp).ok() || resp.kvs_size() == 0) {
      return "";
    }
    const std::string& v = resp.kvs(0).value();
    return v.substr(0, v.find('/'));
  }

  // The store's `<prefix>fresh/quorum` (the members digest), or another
  // `fresh/` marker; "" if absent.
  std::string QuorumMarker(const std::string& name = "quorum") {
    RawEtcd raw(*etcd_, 0);
    etcdserverpb::RangeResponse resp;
    if (!raw.Range("bkv/fresh/" + name, 0, &resp).ok() ||
        resp.kvs_size() == 0) {
      return "";
    }
    return resp.kvs(0).value();
  }

  // Bounded: true once node i logged `event`.
  bool WaitForLog(int i, const std::string& event) {
    for (int round = 0; round < 300; ++round) {
      if (node_[i].log().find(event) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  std::unique_ptr<client::VaultClient> Sdk(const std::string& account,
                                           int first) {
    client::VaultOptions o;
    o.address = node_[first].address();
    for (int i = 0; i < nodes_; ++i) {
      if (i != first) o.failover_addresses.push_back(node_[i].address());
    }
    o.server_public_key = node_[0].public_key();
    o.ksf = TestKsfParams();
    o.min_ksf = TestKsfParams();
    const std::string token = Token(account);
    o.account_token = [token] { return token; };
    o.timeout = std::chrono::seconds(20);
    auto sdk = client::VaultClient::Create(std::move(o));
    EXPECT_TRUE(sdk.ok()) << sdk.status();
    return sdk.ok() ? *std::move(sdk) : nullptr;
  }

  // Waits (bounded: 150 x 100 ms) until `pred` holds.
  template <typename Pred>
  static bool Eventually(Pred pred) {
    for (int i = 0; i < 150; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return pred();
  }

  // No node's log reports a record or shard it can't prove fresh.
  void ExpectNoStaleState() {
    for (int i = 0; i < nodes_; ++i) {
      for (const char* e :
           {"freshness_stale_record", "freshness_shard_stale"}) {
        EXPECT_EQ(node_[i].log().find(e), std::string::npos)
            << "node " << i + 1 << " logged " << e;
      }
    }
  }

  // Finding 13 of the election's review: a burst of concurrent guesses on
  // the owner, cut by `fault` (SIGSTOP, or SIGKILL) once some were
  // acknowledged; another owner is elected; a paused one is resumed, a
  // killed one restarted. For every account: attempts used >= KE2s (no
  // acknowledged count lost, no KE2 beyond the limit) and <= KE2s plus
  // the answers that did not say "not counted" (such a refusal is true).
  void BurstCutBy(int fault, const std::string& tag) {
    const int owner = WaitForOwner();
    ASSERT_GE(owner, 0);
    std::vector<std::string> accounts, tokens;
    for (int i = 0; i < 6; ++i) {
      accounts.push_back(absl::StrCat(tag, i));
      ASSERT_NO_FATAL_FAILURE(Register(accounts.back()));
      tokens.push_back(Token(accounts.back()));
    }
    Burst burst(node_[owner], accounts, tokens);
    ASSERT_TRUE(Eventually([&] { return burst.ke2s() >= 6; }));
    if (fault == SIGKILL) {
      node_[owner].Kill();
    } else {
      ASSERT_EQ(kill(node_[owner].pid(), SIGSTOP), 0);
      paused_[owner] = true;
    }
    const int next = WaitForOwner(owner);
    ASSERT_GE(next, 0) << "no other owner elected";
    if (fault == SIGSTOP) {
      ASSERT_EQ(kill(node_[owner].pid(), SIGCONT), 0);
      paused_[owner] = false;
    }
    burst.Join();
    for (size_t i = 0; i < accounts.size(); ++i) {
      const Burst::Tally& t = burst.tally()[i];
      const int used = 10 - static_cast<int>(Remaining(accounts[i]));
      EXPECT_GE(used, t.ke2) << accounts[i] << ": an acknowledged count lost";
      EXPECT_LE(used, t.ke2 + t.maybe)
          << accounts[i] << ": counted although told \"not counted\"";
    }
    if (fault == SIGSTOP) {
      EXPECT_TRUE(Eventually([&] {
        return VaultHealth(node_[owner].address()) == 2;
      })) << "the resumed owner still serves";
    } else {
      ASSERT_NO_FATAL_FAILURE(StartNode(owner));
    }
    ExpectNoStaleState();
  }

  std::unique_ptr<EtcdCluster> etcd_;
  storage::testing::TlsFiles tls_;
  bool paused_[kMaxNodes] = {};
};

class QuorumEtcdProcess5Test : public QuorumEtcdProcessTest {
 protected:
  QuorumEtcdProcess5Test() { nodes_ = 5; }
};

// Every node started with the test hook that holds its guarded etcd writes
// while its file exists (BKV_TEST_HOLD_GUARDED_WRITE, --dev only).
class QuorumEtcdHoldTest : public QuorumEtcdProcessTest {
 protected:
  void PrepareNodes() override {
    ASSERT_NO_FATAL_FAILURE(QuorumEtcdProcessTest::PrepareNodes());
    for (int i = 0; i < nodes_; ++i) {
      node_[i].set_env("BKV_TEST_HOLD_GUARDED_WRITE", Hold(i));
    }
  }
  std::string Hold(int i) const { return node_[i].data_dir() + "/hold"; }
};

// As QuorumEtcdHoldTest, and every node reaches each etcd member through
// a LinkProxy of its own, so one node's links to etcd can be cut.
class QuorumEtcdLinkTest : public QuorumEtcdHoldTest {
 protected:
  void PrepareNodes() override {
    ASSERT_NO_FATAL_FAILURE(QuorumEtcdHoldTest::PrepareNodes());
    for (int i = 0; i < nodes_; ++i) {
      std::vector<std::string> via;
      for (const std::string& e : etcd_->Endpoints()) {
        auto link = storage::testing::LinkProxy::Start(
            std::stoi(e.substr(e.rfind(':') + 1)));
        ASSERT_TRUE(link.ok()) << link.status();
        via.push_back((*link)->address());
        links_[i].push_back(*std::move(link));
      }
      for (size_t a = 0; a + 1 < args_[i].size(); ++a) {
        if (args_[i][a] == "--etcd-endpoints") {
          args_[i][a + 1] = absl::StrJoin(via, ",");
        }
      }
    }
  }
  std::vector<std::unique_ptr<storage::testing::LinkProxy>> links_[kMaxNodes];
};

// Node 3 endorser-only: `[freshness] owner_candidate = false`, and marked
// `candidate=false` in the members list every token is formed with.
constexpr int kEndorserOnly = 2;
class QuorumEtcdEndorserOnlyTest : public QuorumEtcdProcessTest {
 protected:
  void PrepareNodes() override {
    ASSERT_NO_FATAL_FAILURE(QuorumEtcdProcessTest::PrepareNodes());
    args_[kEndorserOnly].push_back("--freshness-owner-candidate=false");
    member_mark_[kEndorserOnly] = " candidate=false";
  }
};

// Lease3 review finding 1: nodes 2 and 3 endorser-only, node 3's token
// holding its own `hsm init` keys instead of the clone (as operations.md
// allows for a non-candidate).
constexpr int kOwnKeys = 2;
class QuorumEtcdOwnKeysTest : public QuorumEtcdProcessTest {
 protected:
  void PrepareNodes() override {
    ASSERT_NO_FATAL_FAILURE(QuorumEtcdProcessTest::PrepareNodes());
    args_[1].push_back("--freshness-owner-candidate=false");
    args_[kOwnKeys].push_back("--freshness-owner-candidate=false");
    fs::remove_all(Softhsm(kOwnKeys));
    ASSERT_EQ(
        std::system((std::string(BKV_VAULT_BIN) + " hsm init --softhsm-dir " +
                     Softhsm(kOwnKeys) + " >/dev/null")
                        .c_str()),
        0);
  }
};

// First forming over an empty prefix, the nodes started by the test.
class QuorumEtcdFirstFormingTest : public QuorumEtcdProcessTest {
 protected:
  void StartNodes() override {}
};

std::string ReadFile(const std::string& path) {
  std::stringstream text;
  text << std::ifstream(path).rdbuf();
  return text.str();
}

// The credentials a member presents on the peer channel.
std::shared_ptr<grpc::ChannelCredentials> PeerCredentials(
    const storage::testing::TlsFiles& files) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ReadFile(files.ca_crt);
  tls.pem_cert_chain = ReadFile(files.server_crt);
  tls.pem_private_key = ReadFile(files.server_key);
  return grpc::SslCredentials(tls);
}

TEST_F(QuorumEtcdProcessTest, EarlierEtcdStateBehindTheOwnerIsCaught) {
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
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
  const int other = (owner + 1) % nodes_;
  EXPECT_NE(node_[other].log().find("\"peer_tls\":\"mtls\""),
            std::string::npos);
  EXPECT_EQ(HeldSeq(other), HeldSeq(owner));
  EXPECT_GT(HeldSeq(other), 1);
  for (const auto& [k, v] : earlier) ASSERT_TRUE(raw.Put(k, v).ok());
  auto r = Guess("olga", kPassword);
  EXPECT_FALSE(r.got_ke2);
  ASSERT_TRUE(r.result.detail.has_value()) << r.result.status.error_message();
  EXPECT_EQ(r.result.detail->reason(), ErrorDetail::REASON_STORAGE_ROLLED_BACK);
  EXPECT_EQ(r.result.detail->attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
  // And at a take-over: the owner stopped (its lease revoked), restarted;
  // whoever is elected adopts the certified head, and the store is behind.
  ASSERT_EQ(node_[owner].Stop(), 0);
  // A clean stop revokes the lease: the key is free (or another's) at
  // once, not one TTL later.
  EXPECT_NE(OwnerKeyValue(), std::to_string(owner + 1));
  ASSERT_NO_FATAL_FAILURE(StartNode(owner));
  const int next = WaitForOwner();
  ASSERT_GE(next, 0);
  r = Guess("olga", kPassword);
  EXPECT_FALSE(r.got_ke2);
  ASSERT_TRUE(r.result.detail.has_value()) << r.result.status.error_message();
  EXPECT_EQ(r.result.detail->reason(), ErrorDetail::REASON_STORAGE_ROLLED_BACK);
  EXPECT_NE(node_[next].log().find("freshness_shard_stale"), std::string::npos);
}

// Issue 12, the owner from etcd leases: three members, none marked owner:
// exactly one is elected (owner gauge 1, Vault health SERVING), the others
// say 0 and NOT_SERVING; an SDK listing a non-owner first finds the owner
// by REASON_NOT_OWNER failover.
TEST_F(QuorumEtcdProcessTest, OneOwnerIsElectedAndClientsFailOver) {
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
  EXPECT_EQ(OwnerKeyValue(), std::to_string(owner + 1));
  for (int i = 0; i < nodes_; ++i) {
    EXPECT_EQ(OwnerGauge(i), i == owner ? 1 : 0) << "node " << i + 1;
    EXPECT_EQ(VaultHealth(node_[i].address()), i == owner ? 1 : 2)
        << "node " << i + 1;
  }
  auto sdk = Sdk("lena", (owner + 1) % nodes_);
  ASSERT_NE(sdk, nullptr);
  SecretBytes key = SecretBytes::Copy(std::string(32, 'l'));
  auto reg =
      sdk->Register("lena", SecretBytes::Copy(std::string(kPassword)), key);
  ASSERT_TRUE(reg.ok()) << reg.status();
  auto got = sdk->Recover("lena", SecretBytes::Copy(std::string(kPassword)));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Remaining("lena"), 10u);
}

// The owner guard (docs/rollback.md "Election"): the owner key replaced
// in etcd behind the owner's back, as when another member won it while
// this one was paused. The owner's lease is still alive, so only the guard
// can stop its next record write: refused, no KE2, REASON_NOT_OWNER, not
// counted, and the node steps down. Without the guard the write landed
// and the KE2 left (the term can't tell: no other owner took over).
TEST_F(QuorumEtcdProcessTest, OwnerGuardRefusesAWriteOnceTheKeyChanged) {
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
  Register("gwen");
  ASSERT_TRUE(Guess("gwen").got_ke2);
  const int64_t seq = HeldSeq(owner);
  RawEtcd raw(*etcd_, 0);
  ASSERT_TRUE(raw.Delete(kOwnerKey).ok());
  ASSERT_TRUE(raw.Put(kOwnerKey, "99").ok());  // another "owner", no lease
  auto r = Guess("gwen", kPassword);
  EXPECT_FALSE(r.got_ke2) << "a write landed without the owner key";
  ASSERT_TRUE(r.result.detail.has_value()) << r.result.status.error_message();
  EXPECT_EQ(r.result.detail->reason(), ErrorDetail::REASON_NOT_OWNER)
      << r.result.status.error_message();
  EXPECT_EQ(r.result.detail->attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
  EXPECT_EQ(HeldSeq(owner), seq) << "the chain moved for a refused write";
  // It stepped down; with the key free again one member is elected, and
  // the refused call counted nothing.
  for (int i = 0; i < 100 && VaultHealth(node_[owner].address()) != 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(VaultHealth(node_[owner].address()), 2) << "NOT_SERVING";
  EXPECT_NE(node_[owner].log().find("owner guard refused"), std::string::npos)
      << node_[owner].log();
  ASSERT_TRUE(raw.Delete(kOwnerKey).ok());
  ASSERT_GE(WaitForOwner(), 0);
  EXPECT_EQ(Remaining("gwen"), 9u);
}

// Issue test 5, fencing with the lease: the owner SIGSTOPped past its TTL;
// another member wins the key (its take-over needs both other members, so
// it completes once the paused one answers again); a counted call sent to
// the paused owner is processed when it resumes: no KE2, REASON_NOT_OWNER
// (its lease ended by its own clock), NOT_SERVING, owner gauge 0, and the
// endorsers' heads move only in the new owner's term.
TEST_F(QuorumEtcdProcessTest, PausedOwnerCannotExtendTheChainWhenResumed) {
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
  Register("paul");
  ASSERT_TRUE(Guess("paul").got_ke2);
  TestClient old_owner(node_[owner].address(), node_[owner].public_key());
  vault::v1::GetStatusResponse status;  // its channel connected before
  ASSERT_TRUE(old_owner.Status(Token("paul"), &status).ok());
  ASSERT_EQ(kill(node_[owner].pid(), SIGSTOP), 0);
  paused_[owner] = true;
  // Bounded: the lease expires after its TTL (2 s) and another wins.
  std::string holder;
  for (int i = 0; i < 150; ++i) {
    holder = OwnerKeyValue();
    if (!holder.empty() && holder != std::to_string(owner + 1)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NE(holder, std::to_string(owner + 1)) << "nobody else won the lease";
  ASSERT_FALSE(holder.empty());
  TestClient::Recovery late;
  std::thread call(
      [&] { late = old_owner.Recover(Token("paul"), "paul", kPassword); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(kill(node_[owner].pid(), SIGCONT), 0);
  paused_[owner] = false;
  call.join();
  EXPECT_FALSE(late.got_ke2) << "the resumed owner answered with a KE2";
  ASSERT_TRUE(late.result.detail.has_value())
      << late.result.status.error_message();
  EXPECT_EQ(late.result.detail->reason(), ErrorDetail::REASON_NOT_OWNER)
      << late.result.status.error_message();
  EXPECT_EQ(late.result.detail->attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
  const int next = WaitForOwner(owner);
  ASSERT_GE(next, 0) << node_[std::stoi(holder) - 1].log();
  EXPECT_EQ(VaultHealth(node_[owner].address()), 2) << "NOT_SERVING";
  EXPECT_EQ(OwnerGauge(owner), 0);
  EXPECT_NE(node_[owner].log().find("quorum_owner_lease_lost"),
            std::string::npos);
  // Every endorser holds the new owner's term; the old one's call counted
  // nothing.
  const std::string page = HttpGet(metrics_[next], "/metrics");
  const int64_t term = Gauge(page, "bkv_freshness_endorser_held_term");
  for (int i = 0; i < nodes_; ++i) {
    EXPECT_EQ(Gauge(HttpGet(metrics_[i], "/metrics"),
                    "bkv_freshness_endorser_held_term"),
              term)
        << "node " << i + 1;
  }
  EXPECT_EQ(Remaining("paul"), 9u);
}

// The local deadline (docs/rollback.md "Election" step 3): etcd frozen,
// so no keep-alive is answered and no write can be checked by the guard.
// The owner stops by its own clock, before etcd could expire the lease:
// Vault health NOT_SERVING, and a counted call is refused at once
// REASON_NOT_OWNER, not counted (without the deadline it waited for etcd
// and ended "outcome unknown"). etcd thawed: an owner is elected again and
// the account kept its attempts.
TEST_F(QuorumEtcdProcessTest, OwnerCutOffFromEtcdStopsByItsOwnClock) {
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
  Register("iris");
  for (int m = 0; m < etcd_->size(); ++m) ASSERT_TRUE(etcd_->Freeze(m).ok());
  // Bounded: TTL·5/6 (under 2 s) by the owner's clock.
  for (int i = 0; i < 100 && VaultHealth(node_[owner].address()) != 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(VaultHealth(node_[owner].address()), 2) << "NOT_SERVING";
  auto r = Guess("iris", kPassword);
  EXPECT_FALSE(r.got_ke2);
  ASSERT_TRUE(r.result.detail.has_value()) << r.result.status.error_message();
  EXPECT_EQ(r.result.detail->reason(), ErrorDetail::REASON_NOT_OWNER)
      << r.result.status.error_message();
  EXPECT_EQ(r.result.detail->attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
  for (int m = 0; m < etcd_->size(); ++m) etcd_->Thaw(m);
  ASSERT_TRUE(etcd_->WaitForLeader().ok());
  ASSERT_GE(WaitForOwner(), 0);
  EXPECT_EQ(Remaining("iris"), 10u);
}

// Finding 2 of the election's review (N = 3 availability): one member
// dead, then etcd frozen past the owner's TTL, so the owner steps down by
// its own clock. Nobody took over meanwhile (any take-over needs both
// others, the owner's endorser among them), so once etcd is back the owner
// wins the key again and serves on in its term without a Prepare. Before,
// every win was a full take-over needing both others: with one dead, no
// owner until it came back (this test timed out in WaitForOwner).
TEST_F(QuorumEtcdProcessTest, OwnerRidesOutAnEtcdLapseWithOneMemberDown) {
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
  Register("nina");
  ASSERT_TRUE(Guess("nina").got_ke2);
  const int down = (owner + 1) % nodes_;
  node_[down].Kill();
  for (int m = 0; m < etcd_->size(); ++m) ASSERT_TRUE(etcd_->Freeze(m).ok());
  for (int i = 0; i < 100 && VaultHealth(node_[owner].address()) != 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(VaultHealth(node_[owner].address()), 2) << "NOT_SERVING";
  for (int m = 0; m < etcd_->size(); ++m) etcd_->Thaw(m);
  ASSERT_TRUE(etcd_->WaitForLeader().ok());
  const int next = WaitForOwner();
  ASSERT_EQ(next, owner) << "no owner with one member down after a lapse";
  EXPECT_NE(node_[owner].log().find("quorum_owner_resumed"), std::string::npos);
  EXPECT_TRUE(Guess("nina").got_ke2);
  EXPECT_EQ(Remaining("nina"), 8u);
}

// Finding 4 of the election's review: an owner that can reach etcd but
// no endorser (both others SIGSTOPped here; a peer partition or a failing
// token alike) used to keep the lease alive and health SERVING for ever.
// Now a failed head write without a success since turns health
// NOT_SERVING, and after 3 endorse timeouts it steps down and releases the
// key (quorum_owner_stalled), so another member can try. The others back:
// an owner serves again.
TEST_F(QuorumEtcdProcessTest, OwnerThatCannotWriteHeadsStepsDown) {
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
  Register("sven");
  for (int i = 0; i < nodes_; ++i) {
    if (i == owner) continue;
    ASSERT_EQ(kill(node_[i].pid(), SIGSTOP), 0);
    paused_[i] = true;
  }
  EXPECT_FALSE(Guess("sven").got_ke2) << "a KE2 without a majority";
  bool not_serving = false, stalled = false;
  for (int i = 0; i < 300 && !stalled; ++i) {
    not_serving = not_serving || VaultHealth(node_[owner].address()) == 2;
    stalled =
        node_[owner].log().find("quorum_owner_stalled") != std::string::npos;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(not_serving) << "health stayed SERVING without a majority";
  EXPECT_TRUE(stalled) << node_[owner].log();
  EXPECT_NE(node_[owner].log().find("quorum_owner_lease_lost"),
            std::string::npos);
  for (int i = 0; i < nodes_; ++i) {
    if (!paused_[i]) continue;
    ASSERT_EQ(kill(node_[i].pid(), SIGCONT), 0);
    paused_[i] = false;
  }
  ASSERT_GE(WaitForOwner(), 0);
  EXPECT_TRUE(Guess("sven").got_ke2);
}

// Finding 3 of the election's review: a member restarted with another
// etcd_key_prefix (an operator's typo) finds that key free and wins its own
// election. Its store holds no quorum marker and no account while its
// endorser holds a certificate: it logs quorum_store_mismatch and sends no
// Prepare, so the real owner keeps serving in its term. Before, its
// take-over's Prepare fenced the real owner, again and again.
TEST_F(QuorumEtcdProcessTest, MemberOnAnotherEtcdPrefixNeverFencesTheOwner) {
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
  Register("omar");
  ASSERT_TRUE(Guess("omar").got_ke2);
  const int wrong = (owner + 1) % nodes_;
  ASSERT_EQ(node_[wrong].Stop(), 0);
  args_[wrong].push_back("--etcd-key-prefix");
  args_[wrong].push_back("typo/");
  ASSERT_NO_FATAL_FAILURE(StartNode(wrong));
  bool refused = false;
  for (int i = 0; i < 300 && !refused; ++i) {
    refused =
        node_[wrong].log().find("quorum_store_mismatch") != std::string::npos;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(refused) << node_[wrong].log();
  const int64_t term = Gauge(HttpGet(metrics_[owner], "/metrics"),
                             "bkv_freshness_endorser_promised_term");
  // A few of its campaign cycles (one TTL backoff each, TTL 2 s).
  std::this_thread::sleep_for(std::chrono::seconds(6));
  EXPECT_EQ(OwnerGauge(owner), 1) << "the real owner was fenced";
  EXPECT_EQ(Gauge(HttpGet(metrics_[owner], "/metrics"),
                  "bkv_freshness_endorser_promised_term"),
            term);
  EXPECT_TRUE(Guess("omar").got_ke2);
}

// Budget review finding 3, real processes over etcd: every member hands
// over to the same list and carries (a new members digest, the store's
// quorum marker still the old one). Node 1 alone wins the lease; its
// take-over gets no majority, and the marker must still name the old list
// (before the fix it moved at the lease win, before the majority: a
// minority on another digest wedged the members that carried right).
// With nodes 2 and 3 back, the owner's take-over succeeds, the marker
// moves (`quorum_marker_carried`) and the count stands.
TEST_F(QuorumEtcdProcessTest, QuorumMarkerMovesOnlyAfterTheTakeOversMajority) {
  ASSERT_GE(WaitForOwner(), 0);
  Register("pia");
  ASSERT_TRUE(Guess("pia").got_ke2);
  const std::string old = QuorumMarker();
  ASSERT_FALSE(old.empty());
  for (int i = 0; i < nodes_; ++i) ASSERT_EQ(node_[i].Stop(), 0);
  std::string files, out;
  for (int i = 0; i < nodes_; ++i) {
    const std::string f = node_[i].data_dir() + "/handover";
    ASSERT_EQ(Form(i, members_, "--export " + f, &out), 0) << out;
    files += (i == 0 ? "" : ",") + f;
  }
  for (int i = 0; i < nodes_; ++i) {
    ASSERT_EQ(Form(i, members_, "--carry " + files, &out), 0) << out;
  }
  ASSERT_NO_FATAL_FAILURE(StartNode(0));
  // A whole take-over: three rounds without a majority.
  ASSERT_TRUE(WaitForLog(0, "quorum_takeover_failed")) << node_[0].log();
  EXPECT_EQ(QuorumMarker(), old) << node_[0].log();
  EXPECT_EQ(node_[0].log().find("quorum_marker_carried"), std::string::npos);
  for (int i = 1; i < nodes_; ++i) ASSERT_NO_FATAL_FAILURE(StartNode(i));
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
  const std::string now = QuorumMarker();
  EXPECT_NE(now, old);
  EXPECT_NE(node_[owner].log().find("quorum_marker_carried"),
            std::string::npos);
  EXPECT_NE(node_[owner].log().find(now), std::string::npos);
  EXPECT_EQ(Remaining("pia"), 9u);
  EXPECT_TRUE(Guess("pia").got_ke2);
  EXPECT_EQ(Remaining("pia"), 8u);
  ExpectNoStaleState();
}

// Budget3 review finding 3, real processes over an empty etcd prefix: node
// 1 up alone first wins the lease, and its take-over gets no majority. It
// must leave both markers absent: before the fix it created
// `fresh/quorum` (its members digest) and `fresh/keycheck` (its keys) at
// the lease win, so a node formed from another members file, or holding
// its own `hsm init` keys, fixed them for the cluster and wedged the
// majority (`quorum_store_mismatch`, or never campaigning). With nodes 2
// and 3 up, the owner's take-over succeeds and makes both.
TEST_F(QuorumEtcdFirstFormingTest, MarkersAreMadeOnlyAfterTheFirstMajority) {
  ASSERT_NO_FATAL_FAILURE(StartNode(0));
  ASSERT_TRUE(WaitForLog(0, "quorum_takeover_failed")) << node_[0].log();
  EXPECT_EQ(QuorumMarker(), "") << node_[0].log();
  EXPECT_EQ(QuorumMarker("keycheck"), "") << node_[0].log();
  for (int i = 1; i < nodes_; ++i) {
    for (const char* f : {"/dev-issuer.key", "/dev-issuer.pub"}) {
      fs::copy_file(node_[0].data_dir() + f, node_[i].data_dir() + f,
                    fs::copy_options::overwrite_existing);
    }
    ASSERT_NO_FATAL_FAILURE(StartNode(i));
  }
  ASSERT_GE(WaitForOwner(), 0);
  EXPECT_NE(QuorumMarker(), "");
  EXPECT_NE(QuorumMarker("keycheck"), "");
  Register("pia");
  EXPECT_TRUE(Guess("pia").got_ke2);
  EXPECT_EQ(Remaining("pia"), 9u);
}

// Finding 1 (and 13) of the election's review, in real processes: a counted
// call whose record write is in flight (held by the test hook, its lease
// period's guard chosen) when the owner's lease lapses (etcd frozen past
// the TTL) and the SAME node wins the key again (the others paused, so
// only it campaigns). Its resume waits for the held call; released, the
// write still carries the first period's guard and etcd refuses it: no
// KE2, REASON_NOT_OWNER, not counted, and nothing lands behind the new
// period. After a restart and a full take-over no shard or record is
// stale. With one guard per node (before lease2) the write landed.
TEST_F(QuorumEtcdHoldTest, WriteHeldPastItsOwnersReWinIsRefusedByItsGuard) {
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
  Register("hana");
  ASSERT_TRUE(Guess("hana").got_ke2);
  RawEtcd raw(*etcd_, 0);
  const int64_t first = raw.CreateRevision(kOwnerKey);
  ASSERT_GT(first, 0);
  std::ofstream(Hold(owner)) << "hold";
  TestClient::Recovery late;
  std::thread call([&] { late = Guess("hana", kPassword); });
  ASSERT_TRUE(Eventually([&] { return fs::exists(Hold(owner) + ".held"); }))
      << node_[owner].log();
  for (int i = 0; i < nodes_; ++i) {
    if (i == owner) continue;
    ASSERT_EQ(kill(node_[i].pid(), SIGSTOP), 0);
    paused_[i] = true;
  }
  for (int m = 0; m < etcd_->size(); ++m) ASSERT_TRUE(etcd_->Freeze(m).ok());
  EXPECT_TRUE(
      Eventually([&] { return VaultHealth(node_[owner].address()) == 2; }));
  for (int m = 0; m < etcd_->size(); ++m) etcd_->Thaw(m);
  ASSERT_TRUE(etcd_->WaitForLeader().ok());
  ASSERT_TRUE(Eventually([&] {
    const int64_t now = raw.CreateRevision(kOwnerKey);
    return now != 0 && now != first &&
           OwnerKeyValue() == std::to_string(owner + 1);
  })) << "the owner did not win its key again";
  fs::remove(Hold(owner));
  call.join();
  EXPECT_FALSE(late.got_ke2) << "a write of the earlier period landed";
  ASSERT_TRUE(late.result.detail.has_value())
      << late.result.status.error_message();
  EXPECT_EQ(late.result.detail->reason(), ErrorDetail::REASON_NOT_OWNER)
      << late.result.status.error_message();
  EXPECT_EQ(late.result.detail->attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
  for (int i = 0; i < nodes_; ++i) {
    if (!paused_[i]) continue;
    ASSERT_EQ(kill(node_[i].pid(), SIGCONT), 0);
    paused_[i] = false;
  }
  ASSERT_EQ(WaitForOwner(), owner);
  EXPECT_EQ(Remaining("hana"), 9u);
  // A full take-over's scan over the store: nothing it does not cover.
  ASSERT_EQ(node_[owner].Stop(), 0);
  ASSERT_NO_FATAL_FAILURE(StartNode(owner));
  ASSERT_GE(WaitForOwner(), 0);
  EXPECT_EQ(Remaining("hana"), 9u);
  EXPECT_TRUE(Guess("hana", kPassword).got_ke2);
  ExpectNoStaleState();
}

// Finding 5 of the election's review through a vault process (finding
// 13): the owner's counted call is held before its record write; its
// links to etcd are cut and the call released, so its Txn goes into the
// cut links (no byte reaches etcd, the node can't know); the owner key is
// replaced meanwhile; the links healed, the resend is refused by the
// guard. The record is still at the version the call expected, so the
// first send never applied and never can (the changed key fails it):
// REASON_NOT_OWNER, ATTEMPT_NOT_COUNTED, no freshness_unsettled, 9
// attempts left (lease3 review findings 5 and 11; before, the answer was
// ATTEMPT_UNSPECIFIED). A record that moved on past the call's version
// stays "outcome unknown" (cluster.EtcdRecordStore's EtcdLostSendTest).
TEST_F(QuorumEtcdLinkTest, GuardRefusalAfterALostSendIsNotCountedIfUnmoved) {
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
  Register("ugo");
  ASSERT_TRUE(Guess("ugo").got_ke2);
  std::ofstream(Hold(owner)) << "hold";
  TestClient::Recovery late;
  std::thread call([&] { late = Guess("ugo", kPassword); });
  ASSERT_TRUE(Eventually([&] { return fs::exists(Hold(owner) + ".held"); }))
      << node_[owner].log();
  for (auto& link : links_[owner]) link->Sever();
  fs::remove(Hold(owner));
  // Its Txn is sent into the cut links (its account read is cached).
  std::this_thread::sleep_for(std::chrono::seconds(1));
  RawEtcd raw(*etcd_, 0);
  ASSERT_TRUE(raw.Delete(kOwnerKey).ok());
  ASSERT_TRUE(raw.Put(kOwnerKey, "99").ok());  // another "owner"
  for (auto& link : links_[owner]) link->Heal();
  call.join();
  EXPECT_FALSE(late.got_ke2);
  ASSERT_TRUE(late.result.detail.has_value())
      << late.result.status.error_message();
  EXPECT_EQ(late.result.detail->reason(), ErrorDetail::REASON_NOT_OWNER)
      << late.result.status.error_message();
  EXPECT_EQ(late.result.detail->attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED)
      << late.result.status.error_message();
  EXPECT_EQ(node_[owner].log().find("freshness_unsettled"), std::string::npos)
      << node_[owner].log();
  ASSERT_TRUE(raw.Delete(kOwnerKey).ok());
  ASSERT_GE(WaitForOwner(), 0);
  EXPECT_EQ(Remaining("ugo"), 9u);
}

// Finding 13: the owner SIGSTOPped in the middle of a burst of concurrent
// guesses (some calls past the lease check, inside the store, their head
// or record write in flight), another owner elected and taking over (five
// members: 3 of the other 4), the paused one resumed: its in-flight writes
// are fenced by the term or refused by the guard; no acknowledged count is
// lost, no "not counted" answer counted, no stale state. Two cycles, each
// pausing the owner of the time. SIGSTOP models a VM pause only partly:
// the clock runs on (its lease ends by its own deadline at once).
TEST_F(QuorumEtcdProcess5Test, OwnerPausedMidBurstLosesNoCount) {
  for (int cycle = 0; cycle < 2; ++cycle) {
    SCOPED_TRACE(cycle);
    ASSERT_NO_FATAL_FAILURE(BurstCutBy(SIGSTOP, absl::StrCat("p", cycle)));
  }
}

// Finding 13: the same with the owner SIGKILLed mid-burst (issue test 4
// style): another member takes over, every acknowledged count survives,
// the killed node rejoins as a member; two cycles.
TEST_F(QuorumEtcdProcess5Test, OwnerKilledMidBurstLosesNoCount) {
  for (int cycle = 0; cycle < 2; ++cycle) {
    SCOPED_TRACE(cycle);
    ASSERT_NO_FATAL_FAILURE(BurstCutBy(SIGKILL, absl::StrCat("k", cycle)));
  }
}

// Finding 7 of the election's review: a member configured
// `owner_candidate = false` only endorses. With both candidates paused the
// owner key expires and it is the only member running: it never
// campaigns (the key stays free over several of its follow cycles), its
// Vault health stays NOT_SERVING; the candidates resumed, one of them owns
// the chain again. Without the setting it won the free key.
TEST_F(QuorumEtcdEndorserOnlyTest, EndorserOnlyMemberNeverCampaigns) {
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
  ASSERT_NE(owner, kEndorserOnly);
  Register("cleo");
  ASSERT_TRUE(Guess("cleo").got_ke2);
  EXPECT_EQ(VaultHealth(node_[kEndorserOnly].address()), 2);
  for (int i = 0; i < nodes_; ++i) {
    if (i == kEndorserOnly) continue;
    ASSERT_EQ(kill(node_[i].pid(), SIGSTOP), 0);
    paused_[i] = true;
  }
  ASSERT_TRUE(Eventually([&] { return OwnerKeyValue().empty(); }));
  // Six of its follow cycles (TTL/3 each, TTL 2 s).
  std::this_thread::sleep_for(std::chrono::seconds(4));
  EXPECT_EQ(OwnerKeyValue(), "") << "the endorser-only member campaigned";
  EXPECT_EQ(node_[kEndorserOnly].log().find("quorum_owner_lease_won"),
            std::string::npos);
  EXPECT_EQ(OwnerGauge(kEndorserOnly), 0);
  for (int i = 0; i < nodes_; ++i) {
    if (!paused_[i]) continue;
    ASSERT_EQ(kill(node_[i].pid(), SIGCONT), 0);
    paused_[i] = false;
  }
  const int next = WaitForOwner();
  ASSERT_GE(next, 0);
  EXPECT_NE(next, kEndorserOnly);
  EXPECT_EQ(Remaining("cleo"), 9u);
}

// Lease3 review finding 4: node 3 is marked `candidate=false` in the members
// list, so the endorsers enforce what its config promises. Root on node 3's
// host (its token and PIN; here the test opens node 3's token) signs
// Prepares for the next terms, one of them node 3's own turn under the
// unmarked mapping, and sends them to nodes 1 and 2: each is refused
// PERMISSION_DENIED "not an owner candidate", counted, logged; no promise
// moves, the owner keeps serving and counting. Before, the Prepare of node
// 3's turn was granted and the owner's next head write fenced.
TEST_F(QuorumEtcdEndorserOnlyTest, NonCandidatesPrepareIsRefusedByTheOthers) {
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
  ASSERT_NE(owner, kEndorserOnly);
  Register("nina");
  ASSERT_TRUE(Guess("nina").got_ke2);
  auto members = freshness::Members::Parse(ReadFile(members_));
  ASSERT_TRUE(members.ok()) << members.status();
  const std::string token_dir = Softhsm(kEndorserOnly);
  setenv("SOFTHSM2_CONF", (token_dir + "/softhsm2.conf").c_str(), 1);
  auto pin = hsm::ReadPinFile(token_dir + "/user.pin");
  ASSERT_TRUE(pin.ok()) << pin.status();
  auto token = hsm::Pkcs11Hsm::Open(hsm::TokenOptions{}, *pin);
  unsetenv("SOFTHSM2_CONF");
  ASSERT_TRUE(token.ok()) << token.status();
  auto key = hsm::EndorsementKey::Open(*token);
  ASSERT_TRUE(key.ok()) << key.status();
  // Settled: every endorser promised the owner's term (a take-over of the
  // start-up may still be catching up one of them).
  auto promised = [&](int i) {
    return Metric(i, "bkv_freshness_endorser_promised_term");
  };
  ASSERT_TRUE(Eventually([&] {
    return promised(0) > 0 && promised(0) == promised(1) &&
           promised(1) == promised(2);
  }));
  const int64_t settled = promised(0);
  const uint64_t above = static_cast<uint64_t>(settled);
  for (int i = 0; i < 2; ++i) {
    auto stub = fresh::v1::Endorser::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(peer_[i]), PeerCredentials(tls_)));
    for (uint64_t term = above + 1; term <= above + 3; ++term) {
      auto sig =
          (*key)->Sign(freshness::PrepareStatement(members->digest(), term));
      ASSERT_TRUE(sig.ok()) << sig.status();
      fresh::v1::PrepareRequest req;
      req.set_term(term);
      req.set_proposer_signature(std::string(sig->begin(), sig->end()));
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
      fresh::v1::PrepareResponse resp;
      const grpc::Status st = stub->Prepare(&ctx, req, &resp);
      EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED)
          << "node " << i + 1 << " term " << term << ": " << st.error_message();
      EXPECT_NE(st.error_message().find("not an owner candidate"),
                std::string::npos)
          << st.error_message();
      EXPECT_FALSE(resp.granted());
    }
    EXPECT_EQ(promised(i), settled) << "node " << i + 1;
    EXPECT_EQ(Metric(i, "bkv_freshness_endorser_not_candidate_refused_total"),
              3);
    EXPECT_NE(node_[i].log().find("quorum_request_not_candidate"),
              std::string::npos)
        << node_[i].log();
  }
  EXPECT_EQ(OwnerGauge(owner), 1);
  EXPECT_TRUE(Guess("nina").got_ke2);
  EXPECT_EQ(Remaining("nina"), 8u);
}

// Finding 10 of the election's review: the owner's data_dir and token
// copied and started as a second process with the same node id (a cloned
// VM). The copy follows, sees its own id held under another process's
// nonce for longer than 3 TTLs: it logs quorum_duplicate_node_id, sets
// the metric, and its endorser answers nothing any more (UNAVAILABLE,
// unsigned), so one endorsement key answers from one place; the holder
// serves on. Before, it only logged and went on endorsing.
TEST_F(QuorumEtcdProcessTest, SecondProcessWithOneNodeIdStopsEndorsing) {
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
  VaultProcess copy;
  CloneToken(Softhsm(owner), copy.data_dir() + "/softhsm");
  for (const char* f : {"/dev-issuer.key", "/dev-issuer.pub"}) {
    fs::copy_file(node_[owner].data_dir() + f, copy.data_dir() + f,
                  fs::copy_options::overwrite_existing);
  }
  std::vector<std::string> args = args_[owner];
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--softhsm-dir") args[i + 1] = copy.data_dir() + "/softhsm";
  }
  const int metrics = FreePort(), peer = FreePort();
  args.insert(args.end(),
              {"--metrics-listen", "127.0.0.1:" + std::to_string(metrics),
               "--freshness-members-file", members_, "--freshness-node-id",
               std::to_string(owner + 1), "--freshness-peer-listen",
               "127.0.0.1:" + std::to_string(peer),
               "--freshness-endorse-timeout-ms", "2000"});
  ASSERT_TRUE(copy.Start(args)) << copy.log();
  EXPECT_TRUE(Eventually([&] {
    return copy.log().find("quorum_duplicate_node_id") != std::string::npos;
  })) << copy.log();
  EXPECT_EQ(Gauge(HttpGet(metrics, "/metrics"),
                  "bkv_freshness_quorum_duplicate_node_id"),
            1);
  auto stub = fresh::v1::Endorser::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(peer), PeerCredentials(tls_)));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  fresh::v1::PrepareRequest req;
  fresh::v1::PrepareResponse resp;
  const grpc::Status st = stub->Prepare(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE)
      << st.error_message();
  EXPECT_NE(st.error_message().find("another process runs with this node's id"),
            std::string::npos)
      << st.error_message();
  EXPECT_EQ(OwnerGauge(owner), 1) << "the key's holder stopped serving";
  copy.Kill();
}

// The guarded-write test hook is for --dev vaults only: a production start
// with it in the environment refuses, naming the variable, before it opens
// anything.
TEST(QuorumEtcdHookTest, HoldHookIsRefusedWithoutDev) {
  VaultProcess vault;
  vault.set_dev(false);
  vault.set_env("BKV_TEST_HOLD_GUARDED_WRITE", vault.data_dir() + "/hold");
  EXPECT_FALSE(vault.Start());
  EXPECT_NE(vault.log().find("BKV_TEST_HOLD_GUARDED_WRITE is a test hook"),
            std::string::npos)
      << vault.log();
}

// Lease3 review finding 8: --dev with a configured issuer_keys_file (a
// real issuer) refuses the hook too; before, `dev` alone let it through.
TEST(QuorumEtcdHookTest, HoldHookIsRefusedWithARealIssuer) {
  VaultProcess vault;
  vault.set_env("BKV_TEST_HOLD_GUARDED_WRITE", vault.data_dir() + "/hold");
  const std::string issuers = vault.data_dir() + "/issuers";
  std::ofstream(issuers) << "k1 " << std::string(64, 'a') << "\n";
  EXPECT_FALSE(vault.Start({"--issuer-keys-file", issuers}));
  EXPECT_NE(vault.log().find("BKV_TEST_HOLD_GUARDED_WRITE is a test hook"),
            std::string::npos)
      << vault.log();
}

// Issue 12: the owner SIGKILLed. Five members, so a take-over has 3 of
// the other 4 without it; another member is elected after about one TTL,
// and every acknowledged count survives (the guesses that got a KE2).
TEST_F(QuorumEtcdProcess5Test, KilledOwnerIsReplacedAndNoCountIsLost) {
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
  Register("kate");
  int counted = 0;
  for (int i = 0; i < 3; ++i) counted += Guess("kate").got_ke2 ? 1 : 0;
  EXPECT_EQ(counted, 3);
  node_[owner].Kill();
  const int next = WaitForOwner(owner);
  ASSERT_GE(next, 0);
  EXPECT_NE(next, owner);
  EXPECT_EQ(Remaining("kate"), 10u - counted);
  // Recoveries go on, through the SDK listing the dead node first.
  auto sdk = Sdk("kate", owner);
  ASSERT_NE(sdk, nullptr);
  auto got = sdk->Recover("kate", SecretBytes::Copy(std::string(kPassword)));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Remaining("kate"), 10u);
}

// Lease3 review finding 1: node 3 (own vault keys) restarted as a
// candidate by a config slip, then the owner paused past its lease. Node 3
// reads the cluster's key check (`<prefix>fresh/keycheck`, made by node
// 1's take-over), logs quorum_keys_mismatch and never campaigns, so no
// shard goes stale; node 1 resumed owns again and the account still
// counts. Before, node 3 won, took over with node 2's answer and marked
// every shard with records stale.
TEST_F(QuorumEtcdOwnKeysTest, MemberWithOwnKeysNeverOwns) {
  const int owner = WaitForOwner();
  ASSERT_EQ(owner, 0);
  Register("kira");
  ASSERT_TRUE(Guess("kira").got_ke2);
  ASSERT_EQ(node_[kOwnKeys].Stop(), 0);
  args_[kOwnKeys].pop_back();  // the slip: owner_candidate back to true
  ASSERT_NO_FATAL_FAILURE(StartNode(kOwnKeys));
  ASSERT_EQ(kill(node_[owner].pid(), SIGSTOP), 0);
  paused_[owner] = true;
  auto logged = [&](const char* event) {
    return node_[kOwnKeys].log().find(event) != std::string::npos;
  };
  EXPECT_TRUE(Eventually([&] {
    return logged("quorum_keys_mismatch") || logged("quorum_owner_lease_won");
  }));
  EXPECT_TRUE(logged("quorum_keys_mismatch")) << node_[kOwnKeys].log();
  EXPECT_FALSE(logged("quorum_owner_lease_won")) << "node 3 won the lease";
  EXPECT_EQ(OwnerKeyValue(), "");
  ASSERT_EQ(kill(node_[owner].pid(), SIGCONT), 0);
  paused_[owner] = false;
  ASSERT_EQ(WaitForOwner(), owner);
  for (int i = 0; i < nodes_; ++i) {
    EXPECT_EQ(node_[i].log().find("freshness_shard_stale"), std::string::npos)
        << "node " << i + 1;
  }
  EXPECT_EQ(Remaining("kira"), 9u);
}

// Lease3 review finding 2: the owner key's value is not signed, so an etcd
// writer can put "<node 2's id>/forged" there. Node 2 suspends itself
// after 3 TTLs (as for a real second process), and lifts it 3 TTLs after
// the forged value is gone: metric 0, its endorser judges a Prepare again,
// an owner serves. Before, the suspension lasted until a restart.
TEST_F(QuorumEtcdProcessTest, ForgedDuplicateInEtcdSuspendsNobodyForGood) {
  const int owner = WaitForOwner();
  ASSERT_GE(owner, 0);
  Register("fay");
  const int forged = (owner + 1) % nodes_;
  RawEtcd raw(*etcd_, 0);
  ASSERT_TRUE(raw.Delete(kOwnerKey).ok());
  ASSERT_TRUE(raw.Put(kOwnerKey, std::to_string(forged + 1) + "/forged").ok());
  ASSERT_TRUE(Eventually([&] {
    return node_[forged].log().find("quorum_duplicate_node_id") !=
           std::string::npos;
  })) << node_[forged].log();
  ASSERT_TRUE(raw.Delete(kOwnerKey).ok());
  ASSERT_TRUE(Eventually([&] {
    return node_[forged].log().find("quorum_duplicate_node_id_cleared") !=
           std::string::npos;
  })) << node_[forged].log();
  EXPECT_EQ(Gauge(HttpGet(metrics_[forged], "/metrics"),
                  "bkv_freshness_quorum_duplicate_node_id"),
            0);
  // It judges a Prepare again (an empty one is refused on its merits, not
  // with "another process runs with this node's id").
  auto stub = fresh::v1::Endorser::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(peer_[forged]), PeerCredentials(tls_)));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  fresh::v1::PrepareRequest req;
  fresh::v1::PrepareResponse resp;
  const grpc::Status st = stub->Prepare(&ctx, req, &resp);
  EXPECT_EQ(st.error_message().find("another process runs with this node's id"),
            std::string::npos)
      << st.error_message();
  EXPECT_GE(WaitForOwner(), 0);
  EXPECT_EQ(Remaining("fay"), 10u);
}

}  // namespace
}  // namespace bkv::testing
