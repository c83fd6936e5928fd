// Regression tests for the vault's edges that need no process (ctest -R
// regression): rate-limiter eviction, the metrics listener's loopback rule,
// every config key reaching a component.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/build_vault.h"
#include "server/config.h"
#include "server/rate_limiter.h"

namespace bkv::server {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

// A full shard used to drop every bucket, handing drained keys (an attacker
// mid-throttle) a fresh burst. Now it forgets only full buckets and
// refuses new keys while none is full.
TEST(RateLimiterEdgeTest, FullShardNeverRefillsADrainedBucketRegression) {
  RateLimiter limiter({2, 0.001, /*max_keys_per_shard=*/2});
  ASSERT_EQ(limiter.Acquire("victim", kT0), absl::ZeroDuration());
  ASSERT_EQ(limiter.Acquire("victim", kT0), absl::ZeroDuration());
  ASSERT_GT(limiter.Acquire("victim", kT0), absl::ZeroDuration());
  // Many new keys, each drained at once: every shard fills up.
  int refused = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string key = absl::StrCat("flood", i);
    for (int j = 0; j < 3; ++j) {
      if (limiter.Acquire(key, kT0 + absl::Milliseconds(i)) >
          absl::ZeroDuration()) {
        ++refused;
      }
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_LE(limiter.size_for_testing(), 16u * 2);
  // The drained key is still drained.
  EXPECT_GT(limiter.Acquire("victim", kT0 + absl::Seconds(1)),
            absl::ZeroDuration());
}

TEST(ConfigEdgeTest, MetricsListenGetsTheLoopbackRuleRegression) {
  auto c =
      LoadConfig(std::vector<std::string>{"--metrics-listen", "0.0.0.0:9464"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("0.0.0.0:9464"), std::string::npos);
  EXPECT_TRUE(
      LoadConfig(std::vector<std::string>{"--metrics-listen", "[::1]:9464"})
          .ok());
  EXPECT_TRUE(
      LoadConfig(std::vector<std::string>{"--metrics-listen", ""}).ok());
  EXPECT_TRUE(
      LoadConfig(std::vector<std::string>{"--metrics-listen", "0.0.0.0:9464",
                                          "--allow-plaintext-non-loopback"})
          .ok());
}

// Every config key reaches a component: setting it to a non-default value
// changes the options serve builds its components from. A new key without
// a sample here fails the test, so none can be added that goes nowhere.
TEST(ConfigEdgeTest, EveryKeyReachesItsComponentRegression) {
  const std::map<std::string, std::vector<std::string>> samples = {
      {"dev", {}},
      {"listen", {"127.0.0.2:7000"}},
      {"metrics-listen", {"127.0.0.1:9999"}},
      {"data-dir", {"/srv/other"}},
      {"tls-cert", {"c.pem", "--tls-key", "k.pem"}},
      {"tls-key", {"k.pem", "--tls-cert", "c.pem"}},
      {"allow-plaintext-non-loopback", {}},
      {"drain-timeout-s", {"3"}},
      {"max-message-bytes", {"2048"}},
      {"hsm-module", {"/opt/p11.so"}},
      {"hsm-token-label", {"other"}},
      {"hsm-pin-file", {"/etc/pin"}},
      {"softhsm-dir", {"/srv/softhsm"}},
      {"hsm-sessions", {"3"}},
      {"opaque-context", {"ctx"}},
      {"server-identity", {"vault.example"}},
      {"attempt-limit", {"5"}},
      {"login-ttl-s", {"30"}},
      {"min-ksf-memory-kib", {"16384"}},
      {"reset-delay-s", {"60"}},
      {"audience", {"aud"}},
      {"issuer", {"iss"}},
      {"issuer-keys-file", {"/etc/keys"}},
      {"read-burst", {"7"}},
      {"read-per-second", {"7"}},
      {"guess-burst", {"7"}},
      {"guess-per-second", {"7"}},
      {"account-burst", {"7"}},
      {"account-per-second", {"7"}},
      {"peer-burst", {"7"}},
      {"peer-per-second", {"7"}},
      {"unauthenticated-burst", {"7"}},
      {"unauthenticated-per-second", {"7"}},
      {"trusted-proxies", {"10.0.0.1"}},
      {"audit-log", {"/var/log/audit"}},
      // Storage keys: each sample is valid alone (etcd wants endpoints and
      // TLS or loopback plaintext, so those ride along).
      {"storage",
       {"etcd", "--etcd-endpoints", "127.0.0.1:2379", "--etcd-insecure"}},
      {"etcd-endpoints", {"127.0.0.1:1,127.0.0.1:2"}},
      {"etcd-clusters", {"127.0.0.1:1;127.0.0.1:2"}},
      {"etcd-key-prefix", {"other/"}},
      {"etcd-ca-file", {"/etc/etcd/ca.pem"}},
      {"etcd-cert-file", {"/c.pem", "--etcd-key-file", "/k.pem"}},
      {"etcd-key-file", {"/k.pem", "--etcd-cert-file", "/c.pem"}},
      {"etcd-insecure", {}},
      {"etcd-call-timeout-ms", {"500"}},
      {"etcd-op-timeout-ms", {"3000"}},
      {"shred-retry-s", {"5"}},
      {"freshness-shards", {"4"}},
      {"freshness-single-node",
       {"--storage", "etcd", "--etcd-endpoints", "127.0.0.1:2379",
        "--etcd-insecure"}},
      {"freshness-members-file",
       {"/etc/bkv/members", "--freshness-node-id", "1"}},
      {"freshness-node-id", {"2", "--freshness-members-file", "/m"}},
      {"freshness-peer-listen",
       {"127.0.0.1:7001", "--freshness-members-file", "/m",
        "--freshness-node-id", "1"}},
      {"freshness-endorse-timeout-ms", {"500"}},
      // A flag that defaults to true is set with "=false".
      {"freshness-owner-candidate",
       {"=false", "--storage", "etcd", "--etcd-endpoints", "127.0.0.1:2379",
        "--etcd-insecure", "--freshness-members-file", "/m",
        "--freshness-node-id", "1"}},
      {"freshness-owner-lease-ttl-s",
       {"9", "--freshness-members-file", "/m", "--freshness-node-id", "1"}},
      // A realm's id needs its own audience (docs/threshold.md).
      {"realm-id", {"realm-a", "--audience", "realm-a"}},
      {"pending-ttl-s", {"60"}},
      {"freshness-owner",
       {"--freshness-members-file", "/m", "--freshness-node-id", "1"}},
      {"freshness-peer-cert-file",
       {"/c", "--freshness-peer-key-file", "/k", "--freshness-peer-ca-file",
        "/ca", "--freshness-members-file", "/m", "--freshness-node-id", "1"}},
      {"freshness-peer-key-file",
       {"/k", "--freshness-peer-cert-file", "/c", "--freshness-peer-ca-file",
        "/ca", "--freshness-members-file", "/m", "--freshness-node-id", "1"}},
      {"freshness-reanchor-budget", {"3"}},        // not the default 4
      {"freshness-reanchor-max-attempts", {"1"}},  // not the default 2
      {"freshness-peer-ca-file",
       {"/ca", "--freshness-peer-cert-file", "/c", "--freshness-peer-key-file",
        "/k", "--freshness-members-file", "/m", "--freshness-node-id", "1"}},
  };
  auto defaults = LoadConfig({});
  ASSERT_TRUE(defaults.ok());
  const std::string base = DescribeForTesting(ComponentOptionsFor(*defaults));
  for (const std::string& flag : ConfigFlags()) {
    auto sample = samples.find(flag);
    ASSERT_NE(sample, samples.end()) << "no sample value for --" << flag;
    std::vector<std::string> args = {"--" + flag};
    auto rest = sample->second.begin();
    if (rest != sample->second.end() && absl::StartsWith(*rest, "=")) {
      args[0] += *rest++;
    }
    args.insert(args.end(), rest, sample->second.end());
    auto c = LoadConfig(args);
    ASSERT_TRUE(c.ok()) << flag << ": " << c.status();
    EXPECT_NE(DescribeForTesting(ComponentOptionsFor(*c)), base)
        << "--" << flag << " reaches no component";
  }
  // The session pool size reaches the HSM options (it used to stop at the
  // config).
  auto c = LoadConfig(std::vector<std::string>{"--hsm-sessions", "3"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(ComponentOptionsFor(*c).hsm.sessions, 3u);
  // RocksDB always anchors its records; etcd only for a single node.
  const std::vector<std::string> etcd = {"--storage", "etcd",
                                         "--etcd-endpoints", "127.0.0.1:2379",
                                         "--etcd-insecure"};
  EXPECT_TRUE(ComponentOptionsFor(*defaults).store.anchor);
  auto shared = LoadConfig(etcd);
  ASSERT_TRUE(shared.ok());
  EXPECT_FALSE(ComponentOptionsFor(*shared).store.anchor);
  std::vector<std::string> single = etcd;
  single.push_back("--freshness-single-node");
  auto alone = LoadConfig(single);
  ASSERT_TRUE(alone.ok());
  EXPECT_TRUE(ComponentOptionsFor(*alone).store.anchor);
  // A quorum anchors etcd's records too; its settings stand or fall
  // together.
  std::vector<std::string> quorum = etcd;
  for (const char* a :
       {"--freshness-members-file", "/m", "--freshness-node-id", "1"}) {
    quorum.push_back(a);
  }
  auto q = LoadConfig(quorum);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_TRUE(ComponentOptionsFor(*q).store.anchor);
  EXPECT_FALSE(LoadConfig(std::vector<std::string>{"--freshness-owner"}).ok());
  EXPECT_FALSE(
      LoadConfig(std::vector<std::string>{"--freshness-members-file", "/m"})
          .ok());
  single.insert(single.end(), quorum.begin() + 5, quorum.end());
  EXPECT_FALSE(LoadConfig(single).ok()) << "single_node with a quorum";
}

}  // namespace
}  // namespace bkv::server
