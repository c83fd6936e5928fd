// Recovery through 2-of-3 threshold realms beside one vault, same run, same
// KSF (docs/threshold.md, issue 18 "Done when"): real bkv-vault processes on
// loopback (each realm its own SoftHSM token and RocksDB), the SDK clients
// (client::ThresholdClient, client::VaultClient). Prints p50/p90 latency of
// sequential recoveries, then recoveries/s with N client threads (each its
// own account), and the ratios threshold / single. Per-realm throughput is
// the threshold recoveries/s (every realm of the group serves each one).
//
//   threshold_bench [--recoveries N (default 30)] [--seconds S (default 5)]
//                   [--clients C (default 4)] [--rotate 0|1 (default 0)]
// --rotate 1 measures the SDK's default path: a fresh registration (a second
// KSF run and Start/Prepare/Commit at all n) after each recovery.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "client/realm_set_file.h"
#include "client/threshold_client.h"
#include "client/vault_client.h"
#include "crypto/hex.h"
#include "tests/server/vault_harness.h"

namespace bkv {
namespace {

using Clock = std::chrono::steady_clock;
const Argon2idParams kKsf{2, 19'456, 1};  // the client floor, both paths

std::vector<std::string> OpenBudgets() {
  std::vector<std::string> args;
  for (const char* budget : {"account", "read", "guess", "peer"}) {
    args.insert(args.end(),
                {std::string("--") + budget + "-burst", "100000",
                 std::string("--") + budget + "-per-second", "100000"});
  }
  return args;
}

struct Fixture {
  std::vector<std::unique_ptr<testing::VaultProcess>> realms;
  std::unique_ptr<testing::VaultProcess> single;
  std::string set_text;
  bool rotate = false;
};

bool Start(Fixture& f) {
  std::string set = "bkv-realm-set v1\nt 2\nlimit 10\n";
  for (int i = 0; i < 3; ++i) {
    const std::string id = std::string("realm-") + char('a' + i);
    auto p = std::make_unique<testing::VaultProcess>();
    auto args = OpenBudgets();
    args.insert(args.end(), {"--realm-id", id, "--audience", id});
    if (!p->Start(args)) return false;
    set += "realm " + id + " " + p->address() + " " +
           HexEncode(p->public_key()) + "\n";
    f.realms.push_back(std::move(p));
  }
  f.single = std::make_unique<testing::VaultProcess>();
  f.set_text = set;
  return f.single->Start(OpenBudgets());
}

std::unique_ptr<client::ThresholdClient> Realms(Fixture& f,
                                                const std::string& acct) {
  client::ThresholdOptions o;
  o.vault.ksf = kKsf;
  o.rotate = f.rotate;
  o.account_token = [&f, acct](const std::string& id) {
    return f.realms[id.back() - 'a']->Token(acct, 3600, id);
  };
  return std::move(*client::ThresholdClient::Create(
      *client::ParseRealmSet(f.set_text), std::move(o)));
}

std::unique_ptr<client::VaultClient> Single(Fixture& f,
                                            const std::string& acct) {
  client::VaultOptions o;
  o.address = f.single->address();
  o.server_public_key = f.single->public_key();
  o.ksf = kKsf;
  const std::string token = f.single->Token(acct, 3600);
  o.account_token = [token] { return token; };
  return std::move(*client::VaultClient::Create(std::move(o)));
}

// One account per client on both paths, registered; recover() -> ok.
struct Pair {
  std::function<bool()> threshold, single;
};

Pair Prepare(Fixture& f, const std::string& acct) {
  auto pw =
      std::make_shared<SecretBytes>(SecretBytes::Copy("bench horse battery"));
  auto key = SecretBytes::Random(32);
  std::shared_ptr<client::ThresholdClient> r = Realms(f, acct);
  std::shared_ptr<client::VaultClient> s = Single(f, acct);
  if (!r->Register(acct, *pw, key).ok() || !s->Register(acct, *pw, key).ok()) {
    std::fprintf(stderr, "threshold_bench: registration failed\n");
    std::exit(1);
  }
  return {[r, pw, acct] { return r->Recover(acct, *pw).ok(); },
          [s, pw, acct] { return s->Recover(acct, *pw).ok(); }};
}

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * (v.size() - 1))];
}

double TimeOne(const std::function<bool()>& recover) {
  const auto start = Clock::now();
  if (!recover()) std::fprintf(stderr, "threshold_bench: a recovery failed\n");
  return std::chrono::duration<double, std::milli>(Clock::now() - start)
      .count();
}

// Sequential recoveries, alternating paths; milliseconds.
void Latency(const Pair& p, int n) {
  std::vector<double> t, s;
  for (int i = 0; i < n; ++i) {
    t.push_back(TimeOne(p.threshold));
    s.push_back(TimeOne(p.single));
  }
  std::printf(
      "latency (ms, %d sequential each): threshold 2-of-3 p50 %.1f p90 %.1f | "
      "single p50 %.1f p90 %.1f | p50 ratio %.2f\n",
      n, Percentile(t, 0.5), Percentile(t, 0.9), Percentile(s, 0.5),
      Percentile(s, 0.9), Percentile(t, 0.5) / Percentile(s, 0.5));
}

double Throughput(const std::vector<Pair>& pairs, bool threshold,
                  double seconds) {
  std::atomic<long> done{0};
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (const Pair& p : pairs) {
    threads.emplace_back([&, fn = threshold ? p.threshold : p.single] {
      while (Clock::now() < end) {
        if (fn()) ++done;
      }
    });
  }
  for (auto& t : threads) t.join();
  return done / seconds;
}

}  // namespace
}  // namespace bkv

int main(int argc, char** argv) {
  int recoveries = 30, clients = 4;
  double seconds = 5;
  bkv::Fixture f;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--recoveries") recoveries = std::atoi(argv[i + 1]);
    if (a == "--seconds") seconds = std::atof(argv[i + 1]);
    if (a == "--clients") clients = std::atoi(argv[i + 1]);
    if (a == "--rotate") f.rotate = std::atoi(argv[i + 1]) != 0;
  }
  if (!bkv::Start(f)) {
    std::fprintf(stderr, "threshold_bench: a vault did not start\n");
    return 1;
  }
  std::vector<bkv::Pair> pairs;
  for (int c = 0; c < clients; ++c) {
    pairs.push_back(bkv::Prepare(f, "bench-" + std::to_string(c)));
  }
  bkv::Latency(pairs[0], recoveries);
  const double t = bkv::Throughput(pairs, true, seconds);
  const double s = bkv::Throughput(pairs, false, seconds);
  // Every realm of the group serves every threshold recovery (KE1 and KE3
  // go to all of it), so a realm's throughput is the recoveries/s.
  std::printf(
      "throughput (%d clients, %.0f s each): threshold %.1f recoveries/s "
      "(each realm served them all) | single %.1f recoveries/s | "
      "per-realm ratio %.2f\n",
      clients, seconds, t, s, t / s);
  return 0;
}
