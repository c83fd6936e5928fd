#include "server/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <tuple>

#include "server/quorum_config.h"

namespace bkv::server {
namespace {

std::string WriteTemp(const std::string& text) {
  char path[] = "/tmp/bkv-config-test-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << text;
  return path;
}

// The flags of node 1 of a quorum over etcd, its store named by `flag`.
std::vector<std::string> QuorumOverEtcd(std::string flag, std::string value) {
  return {"--freshness-members-file",
          "/m",
          "--freshness-node-id",
          "1",
          "--storage",
          "etcd",
          "--etcd-insecure",
          std::move(flag),
          std::move(value)};
}

TEST(ConfigTest, EmbeddedDefaults) {
  auto c = LoadConfig({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "127.0.0.1:50051");
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9464");
  EXPECT_EQ(c->data_dir, "./var/bkv");
  EXPECT_EQ(c->attempt_limit, 10);
  EXPECT_EQ(c->AuditLogPath(), "./var/bkv/audit.log");
}

TEST(ConfigTest, TomlThenFlagsOverride) {
  std::string path = WriteTemp(
      "[server]\nlisten = \"127.0.0.2:7000\"\ndata_dir = \"/srv/bkv\"\n"
      "[policy]\nattempt_limit = 5\n[rate_limit]\naccount_per_second = 2\n");
  std::vector<std::string> args = {"--config", path, "--attempt-limit=7"};
  auto c = LoadConfig(args);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "127.0.0.2:7000");
  EXPECT_EQ(c->data_dir, "/srv/bkv");
  EXPECT_EQ(c->attempt_limit, 7);
  EXPECT_DOUBLE_EQ(c->account_per_second, 2.0);
  unlink(path.c_str());
}

TEST(ConfigTest, ErrorsSayWhatIsWrong) {
  std::string bad_key = WriteTemp("[server]\nlisten_on = \"x\"\n");
  auto c = LoadConfig(std::vector<std::string>{"--config", bad_key});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("listen_on"), std::string::npos);
  unlink(bad_key.c_str());

  std::string bad_toml = WriteTemp("[server\nlisten=");
  EXPECT_FALSE(LoadConfig(std::vector<std::string>{"--config", bad_toml}).ok());
  unlink(bad_toml.c_str());

  auto flag = LoadConfig(std::vector<std::string>{"--no-such-flag", "1"});
  EXPECT_NE(flag.status().message().find("no-such-flag"), std::string::npos);
  EXPECT_FALSE(
      LoadConfig(std::vector<std::string>{"--attempt-limit", "0"}).ok());
  EXPECT_FALSE(
      LoadConfig(std::vector<std::string>{"--attempt-limit", "lots"}).ok());
}

// docs/storage.md, "Shred on RocksDB": the retry interval of failed shreds
// is configurable and bounded (review: T bounded and configurable).
TEST(ConfigTest, ShredRetryIsBounded) {
  auto c = LoadConfig({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->shred_retry_s, 60);
  auto set = LoadConfig(std::vector<std::string>{"--shred-retry-s", "5"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->shred_retry_s, 5);
  for (const char* bad : {"0", "3601"}) {
    auto refused = LoadConfig(std::vector<std::string>{"--shred-retry-s", bad});
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.status().message().find("shred_retry_s"),
              std::string::npos)
        << refused.status();
  }
}

// The head table of every shard is one token attribute (at most 64 KiB):
// a shard count it cannot hold is refused at load, not at the first head
// write (branch slots).
TEST(ConfigTest, ShardsAreBoundedByWhatTheTokenHolds) {
  auto most =
      LoadConfig(std::vector<std::string>{"--freshness-shards", "1487"});
  ASSERT_TRUE(most.ok()) << most.status();
  auto over =
      LoadConfig(std::vector<std::string>{"--freshness-shards", "1488"});
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.status().message().find("shards must be 1 to 1487"),
            std::string::npos)
      << over.status();
  EXPECT_NE(over.status().message().find("64 KiB"), std::string::npos);
}

// Budget review finding 8: K is a setting with a checked range, B·K below
// the attempt limit is checked at load (the error names the bound), and
// unset B and K follow the limit.
TEST(ConfigTest, ReanchorBudgetTimesKStaysBelowTheAttemptLimit) {
  auto load = [](std::vector<std::string> args) { return LoadConfig(args); };
  auto c = load({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->freshness_reanchor_budget, 4);
  EXPECT_EQ(c->freshness_reanchor_max_attempts, 2);
  for (auto [limit, b, k] : {std::tuple{16, 4, 2},
                             {9, 4, 2},
                             {8, 4, 1},
                             {5, 4, 1},
                             {4, 3, 1},
                             {2, 1, 1},
                             {1, 1, 1}}) {
    auto d = load({"--attempt-limit", std::to_string(limit)});
    ASSERT_TRUE(d.ok()) << limit << ": " << d.status();
    EXPECT_EQ(d->freshness_reanchor_budget, b) << limit;
    EXPECT_EQ(d->freshness_reanchor_max_attempts, k) << limit;
  }
  auto set = load({"--freshness-reanchor-max-attempts", "3",
                   "--freshness-reanchor-budget", "3"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->freshness_reanchor_max_attempts, 3);
  // Only K set: B still follows the limit and K (9 / 3 = 3).
  auto only_k = load({"--freshness-reanchor-max-attempts", "3"});
  ASSERT_TRUE(only_k.ok()) << only_k.status();
  EXPECT_EQ(only_k->freshness_reanchor_budget, 3);
  auto bound = load({"--freshness-reanchor-max-attempts", "3",
                     "--freshness-reanchor-budget", "4"});
  ASSERT_FALSE(bound.ok());
  EXPECT_NE(bound.status().message().find(
                "reanchor_budget x reanchor_max_attempts = 4 x 3 = 12 must be "
                "below [policy] attempt_limit 10"),
            std::string::npos)
      << bound.status();
  // Budget3 review finding 1: every config main accepted (reanchor_budget
  // set, K new) still loads; the unset K follows the set B, and a B above
  // what the limit allows is lowered (a table's larger left then counts as
  // min(left, B)).
  for (auto [limit, b_set, b, k] : {std::tuple{3, 4, 2, 1},
                                    {4, 4, 3, 1},
                                    {10, 8, 8, 1},
                                    {10, 4, 4, 2},
                                    {6, 4, 4, 1},
                                    {2, 64, 1, 1},
                                    {1, 4, 4, 1}}) {
    auto d = load({"--attempt-limit", std::to_string(limit),
                   "--freshness-reanchor-budget", std::to_string(b_set)});
    ASSERT_TRUE(d.ok()) << limit << "," << b_set << ": " << d.status();
    EXPECT_EQ(d->freshness_reanchor_budget, b) << limit << "," << b_set;
    EXPECT_EQ(d->freshness_reanchor_max_attempts, k) << limit << "," << b_set;
  }
  EXPECT_FALSE(load({"--freshness-reanchor-budget", "65"}).ok());
  // The old defaults under a lowered limit, both set explicitly: refused.
  EXPECT_FALSE(load({"--attempt-limit", "5", "--freshness-reanchor-budget", "4",
                     "--freshness-reanchor-max-attempts", "2"})
                   .ok());
  for (const char* k : {"0", "10", "-1"}) {
    auto r = load({"--freshness-reanchor-max-attempts", k});
    ASSERT_FALSE(r.ok()) << k;
    EXPECT_NE(r.status().message().find(
                  "reanchor_max_attempts must be 1 to attempt_limit - 1 (9)"),
              std::string::npos)
        << r.status();
  }
  // A ceremony's --max-attempts: the setting when not given, never above.
  EXPECT_EQ(*c->CeremonyMaxAttempts(0, true), 2u);
  EXPECT_EQ(*c->CeremonyMaxAttempts(1, true), 1u);
  EXPECT_NE(c->CeremonyMaxAttempts(10, true).status().message().find(
                "below the attempt limit"),
            std::string::npos);
  auto above = c->CeremonyMaxAttempts(3, true);
  ASSERT_FALSE(above.ok());
  EXPECT_NE(above.status().message().find(
                "--max-attempts 3 is above [freshness] reanchor_max_attempts "
                "(2)"),
            std::string::npos)
      << above.status();
  EXPECT_EQ(*c->CeremonyMaxAttempts(9, false), 9u);  // a single --genesis
}

TEST(ConfigTest, PlaintextOnlyOnLoopbackUnlessForced) {
  EXPECT_FALSE(
      LoadConfig(std::vector<std::string>{"--listen", "0.0.0.0:1"}).ok());
  EXPECT_FALSE(
      LoadConfig(std::vector<std::string>{"--listen", "10.1.2.3:1"}).ok());
  EXPECT_TRUE(LoadConfig(std::vector<std::string>{"--listen", "[::1]:1"}).ok());
  EXPECT_TRUE(
      LoadConfig(std::vector<std::string>{"--listen", "127.9.9.9:1"}).ok());
  EXPECT_TRUE(
      LoadConfig(std::vector<std::string>{"--listen", "0.0.0.0:1",
                                          "--allow-plaintext-non-loopback"})
          .ok());
  EXPECT_TRUE(
      LoadConfig(std::vector<std::string>{"--listen", "0.0.0.0:1", "--tls-cert",
                                          "c.pem", "--tls-key", "k.pem"})
          .ok());
}

}  // namespace
}  // namespace bkv::server

namespace bkv::server {
namespace {

TEST(ConfigTest, RateLimitBudgetsProxiesAndResetDelay) {
  auto c = LoadConfig({});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->reset_delay_s, 7 * 24 * 3600);
  EXPECT_LT(c->guess_burst, c->read_burst);
  std::string path = WriteTemp(
      "[rate_limit]\nguess_burst = 4\nread_per_second = 0.5\n"
      "trusted_proxies = \"10.0.0.2, ::1\"\n[policy]\nreset_delay_s = 60\n");
  c = LoadConfig(std::vector<std::string>{"--config", path});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->guess_burst, 4);
  EXPECT_DOUBLE_EQ(c->read_per_second, 0.5);
  EXPECT_EQ(c->trusted_proxies, "10.0.0.2, ::1");
  EXPECT_EQ(c->reset_delay_s, 60);
  unlink(path.c_str());
  EXPECT_FALSE(
      LoadConfig(std::vector<std::string>{"--trusted-proxies", "proxy.local"})
          .ok());
  EXPECT_FALSE(
      LoadConfig(std::vector<std::string>{"--guess-per-second", "0"}).ok());
  EXPECT_FALSE(
      LoadConfig(std::vector<std::string>{"--reset-delay-s", "0"}).ok());
}

TEST(ConfigTest, EtcdClustersFromTomlArraysOrAFlag) {
  const std::string toml = WriteTemp(
      "[storage]\nbackend = \"etcd\"\netcd_insecure = true\n"
      "etcd_clusters = [[\"127.0.0.1:1\", \"127.0.0.1:2\"], "
      "[\"127.0.0.1:3\"]]\n");
  auto c = LoadConfig(std::vector<std::string>{"--config", toml});
  ASSERT_TRUE(c.ok()) << c.status();
  const std::vector<std::vector<std::string>> want = {
      {"127.0.0.1:1", "127.0.0.1:2"}, {"127.0.0.1:3"}};
  EXPECT_EQ(c->EtcdClusters(), want);
  auto flag = LoadConfig(std::vector<std::string>{
      "--storage", "etcd", "--etcd-insecure", "--etcd-clusters",
      "127.0.0.1:1,127.0.0.1:2;127.0.0.1:3"});
  ASSERT_TRUE(flag.ok()) << flag.status();
  EXPECT_EQ(flag->EtcdClusters(), want);
  // One cluster by its old key is the one-element list.
  auto single = LoadConfig(
      std::vector<std::string>{"--storage", "etcd", "--etcd-insecure",
                               "--etcd-endpoints", "127.0.0.1:1,127.0.0.1:2"});
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(single->EtcdClusters().size(), 1u);
  // Not a list of lists, an empty cluster, both keys, plaintext off loopback.
  const std::string flat = WriteTemp(
      "[storage]\nbackend = \"etcd\"\netcd_insecure = true\n"
      "etcd_clusters = [\"127.0.0.1:1\"]\n");
  EXPECT_FALSE(LoadConfig(std::vector<std::string>{"--config", flat}).ok());
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--etcd-clusters", "127.0.0.1:1;;127.0.0.1:2"},
        {"--etcd-clusters", "127.0.0.1:1", "--etcd-endpoints", "127.0.0.1:2"},
        {"--etcd-clusters", "127.0.0.1:1;10.0.0.9:2379"}}) {
    std::vector<std::string> args = {"--storage", "etcd", "--etcd-insecure"};
    args.insert(args.end(), bad.begin(), bad.end());
    EXPECT_FALSE(LoadConfig(args).ok()) << bad[1];
  }
  unlink(toml.c_str());
  unlink(flat.c_str());
}

// The [freshness] quorum settings, the members file read and checked at
// start: each mistake refused with what to fix.
TEST(ConfigTest, QuorumMembersFileIsCheckedAtStart) {
  const std::string k1(64, 'a'), k2(64, 'b'), k3(64, 'c');
  auto load = [](const std::string& members, std::vector<std::string> extra) {
    std::vector<std::string> args = {"--freshness-members-file",
                                     WriteTemp(members), "--freshness-node-id",
                                     "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto c = LoadConfig(args);
    EXPECT_TRUE(c.ok()) << c.status();
    return LoadQuorumSettings(*c);
  };
  auto error = [&](const std::string& members,
                   std::vector<std::string> extra = {}) {
    auto q = load(members, std::move(extra));
    return q.ok() ? std::string("accepted") : std::string(q.status().message());
  };
  const std::string three = "# a comment\n1 " + k1 + " 127.0.0.1:7001\n2 " +
                            k2 + " 127.0.0.1:7002\n3 " + k3 +
                            " 127.0.0.1:7003\n";
  auto q = load(three, {});
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->members.all().size(), 3u);
  EXPECT_EQ(q->peer_listen, "127.0.0.1:7001");  // its members line's
  EXPECT_FALSE(q->owner);
  EXPECT_NE(error(three.substr(0, three.rfind("3 "))).find("at least 3"),
            std::string::npos);
  EXPECT_NE(error(three + "1 " + std::string(64, 'd') + " 127.0.0.1:7004\n")
                .find("appears twice"),
            std::string::npos);
  EXPECT_NE(
      error(three + "4 " + k1 + " 127.0.0.1:7004\n").find("appears twice"),
      std::string::npos);
  EXPECT_NE(error(three + "4 abcd 127.0.0.1:7004\n").find("64 hex digits"),
            std::string::npos);
  EXPECT_NE(
      error(three, {"--freshness-node-id", "9"}).find("node_id 9 is not in"),
      std::string::npos);
  EXPECT_NE(error(three + "4 " + std::string(64, 'e') + " 127.0.0.1\n")
                .find("not host:port"),
            std::string::npos);
  const std::string remote =
      three + "4 " + std::string(64, 'f') + " 10.1.2.3:7004\n";
  EXPECT_NE(error(remote).find("plaintext"), std::string::npos);
  EXPECT_EQ(error(remote, {"--allow-plaintext-non-loopback"}), "accepted");
  const std::string pem = WriteTemp("PEM");
  EXPECT_EQ(error(remote, {"--freshness-peer-cert-file", pem,
                           "--freshness-peer-key-file", pem,
                           "--freshness-peer-ca-file", pem}),
            "accepted");
  std::vector<std::string> half = {"--freshness-members-file", "/m",
                                   "--freshness-node-id",      "1",
                                   "--freshness-peer-ca-file", pem};
  EXPECT_FALSE(LoadConfig(half).ok());
  auto missing = LoadConfig(std::vector<std::string>{
      "--freshness-members-file", "/nonexistent/members", "--freshness-node-id",
      "1"});
  ASSERT_TRUE(missing.ok());
  EXPECT_NE(std::string(LoadQuorumSettings(*missing).status().message())
                .find("/nonexistent/members"),
            std::string::npos);
}

// docs/rollback.md "Election": with etcd the quorum elects its owner, so
// `owner` (the RocksDB quorum's hand-picked owner) is refused there, as
// are several clusters (the lease key and the guard live in one) and a
// TTL out of range.
TEST(ConfigTest, QuorumOverEtcdElectsItsOwner) {
  const std::vector<std::string> etcd =
      QuorumOverEtcd("--etcd-endpoints", "127.0.0.1:2379");
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = etcd;
    args.insert(args.end(), extra.begin(), extra.end());
    auto c = LoadConfig(args);
    return c.ok() ? std::string("accepted") : std::string(c.status().message());
  };
  auto c = LoadConfig(etcd);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->ElectsOwner());
  EXPECT_EQ(c->freshness_owner_lease_ttl_s, 5);
  EXPECT_NE(with({"--freshness-owner"}).find("elect the owner"),
            std::string::npos);
  EXPECT_NE(with({"--freshness-owner-lease-ttl-s", "1"}).find("2 to 60"),
            std::string::npos);
  EXPECT_EQ(with({"--freshness-owner-lease-ttl-s", "2"}), "accepted");
  std::vector<std::string> two =
      QuorumOverEtcd("--etcd-clusters", "127.0.0.1:1;127.0.0.1:2");
  auto several = LoadConfig(two);
  ASSERT_FALSE(several.ok());
  EXPECT_NE(std::string(several.status().message()).find("one etcd cluster"),
            std::string::npos);
  // RocksDB: the owner is chosen by hand.
  auto rocks = LoadConfig(std::vector<std::string>{"--freshness-members-file",
                                                   "/m", "--freshness-node-id",
                                                   "1", "--freshness-owner"});
  ASSERT_TRUE(rocks.ok()) << rocks.status();
  EXPECT_FALSE(rocks->ElectsOwner());
}

// Finding 7 of the election's review: endorser-only members of an elected
// quorum; meaningless (refused) where the owner is chosen by hand.
TEST(ConfigTest, OwnerCandidateIsForTheElectedOwnerOnly) {
  std::vector<std::string> etcd =
      QuorumOverEtcd("--etcd-endpoints", "127.0.0.1:2379");
  auto c = LoadConfig(etcd);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->freshness_owner_candidate) << "every member campaigns";
  etcd.push_back("--freshness-owner-candidate=false");
  auto endorser_only = LoadConfig(etcd);
  ASSERT_TRUE(endorser_only.ok()) << endorser_only.status();
  EXPECT_FALSE(endorser_only->freshness_owner_candidate);
  auto rocks = LoadConfig(std::vector<std::string>{
      "--freshness-members-file", "/m", "--freshness-node-id", "1",
      "--freshness-owner-candidate=false"});
  ASSERT_FALSE(rocks.ok());
  EXPECT_NE(std::string(rocks.status().message()).find("owner_candidate"),
            std::string::npos)
      << rocks.status();
}

// Lease3 review finding 4: `serve` checks `owner_candidate` against this
// node's mark in the (formed) members list. A list that marks node 2
// `candidate=false` refuses either config disagreeing with it; a list that
// marks nobody keeps `owner_candidate = false` local (allowed); over
// RocksDB the owner must be a candidate.
TEST(ConfigTest, OwnerCandidateMustMatchTheMembersList) {
  const std::string list = "1 " + std::string(64, 'a') + " 127.0.0.1:7001\n2 " +
                           std::string(64, 'b') + " 127.0.0.1:7002";
  const std::string unmarked =
      list + "\n3 " + std::string(64, 'c') + " 127.0.0.1:7003\n";
  const std::string marked = list + " candidate=false\n3 " +
                             std::string(64, 'c') + " 127.0.0.1:7003\n";
  auto check = [](const std::string& members, uint32_t node, bool candidate,
                  bool elected) {
    std::vector<std::string> args =
        QuorumOverEtcd("--etcd-endpoints", "127.0.0.1:2379");
    if (!elected) args = {"--freshness-owner"};
    args.insert(args.end(), {"--freshness-members-file", WriteTemp(members),
                             "--freshness-node-id", std::to_string(node)});
    auto c = LoadConfig(args);
    EXPECT_TRUE(c.ok()) << c.status();
    auto q = LoadQuorumSettings(*c);
    EXPECT_TRUE(q.ok()) << q.status();
    q->owner_candidate = candidate;
    return CheckCandidacy(*q);
  };
  EXPECT_TRUE(check(marked, 2, false, true).ok());
  EXPECT_TRUE(check(marked, 1, true, true).ok());
  absl::Status slip = check(marked, 2, true, true);
  EXPECT_TRUE(absl::IsInvalidArgument(slip)) << slip;
  EXPECT_NE(std::string(slip.message()).find("candidate=false"),
            std::string::npos)
      << slip;
  EXPECT_TRUE(absl::IsInvalidArgument(check(marked, 1, false, true)));
  EXPECT_TRUE(check(unmarked, 2, false, true).ok()) << "an old list";
  EXPECT_TRUE(absl::IsInvalidArgument(check(marked, 2, true, false)));
  EXPECT_TRUE(check(marked, 1, true, false).ok());
}

}  // namespace
}  // namespace bkv::server
