// bkv_loadgen: full recoveries (RecoverStart + RecoverFinish) against a real
// bkv-vault with durable counters and the real (SoftHSM) token.
//
//   bkv_loadgen [--clients N] [--seconds S] [--vault-bin PATH]
//
// --vault-bin runs another bkv-vault build (e.g. one without a feature, for
// bench/server/rollback_bench.sh). When the vault exports
// bkv_freshness_head_writes_total, HSM head writes per recovery are printed.
//
// Starts its own vault on loopback in a temporary directory, registers one
// account per client, then drives recoveries from N threads for S seconds.
// Prints recoveries/s, p50/p99 latency, and the vault's CPU seconds per
// recovery (utime + stime from /proc/<pid>/stat) divided by the in-process
// cost of GenerateKE2 + ServerFinish measured in this same run: what gRPC,
// auth, HSM and storage add on top of the protocol (target <= 1.5).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "crypto/hash.h"
#include "crypto/opaque.h"
#include "tests/server/vault_harness.h"

namespace bkv {
namespace {

using Clock = std::chrono::steady_clock;

double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  // Fields after the ")" of comm: state is field 3; utime 14, stime 15.
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  unsigned long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

// bkv_freshness_head_writes_total from /metrics; -1 if not exported.
double HeadWrites(int port) {
  const std::string m = testing::HttpGet(port, "/metrics");
  const std::string name = "\nbkv_freshness_head_writes_total ";
  const size_t at = m.find(name);
  if (at == std::string::npos) return -1;
  return std::atof(m.c_str() + at + name.size());
}

class NoStretch final : public Ksf {
 public:
  absl::StatusOr<SecretBytes> Stretch(const SecretBytes& m) const override {
    return m.Clone();
  }
};

// Seconds per GenerateKE2 + ServerFinish, in process, software seed.
double ProtocolCostSeconds() {
  HmacSha512KeyedHash seed(SecretBytes::Random(64));
  opaque::ServerKeyPair keys = opaque::ServerKeyPair::Generate();
  opaque::OpaqueServer server({}, seed, keys);
  NoStretch ksf;
  opaque::OpaqueClient client({}, ksf, keys.public_key);
  const std::vector<uint8_t> id = {'a'};
  auto pw = [] { return SecretBytes::Copy(std::string_view("pw")); };
  auto start = client.CreateRegistrationRequest(pw());
  auto resp = server.CreateRegistrationResponse(start->request, id);
  auto rec = client.FinalizeRegistrationRequest(std::move(start->state), *resp);
  double total = 0;
  const int n = 400;
  for (int i = 0; i < n; ++i) {
    auto ke1 = client.GenerateKE1(pw());
    auto t0 = Clock::now();
    auto ke2 = server.GenerateKE2(rec->record, id, ke1->ke1);
    auto t1 = Clock::now();
    auto ke3 = client.GenerateKE3(std::move(ke1->state), ke2->ke2.Serialize());
    auto t2 = Clock::now();
    auto exported = std::move(ke2->state).Export();
    auto st = opaque::ServerLoginState::Import(exported);
    auto sk = server.ServerFinish(std::move(*st), ke3->ke3);
    auto t3 = Clock::now();
    if (!sk.ok()) std::abort();
    total += std::chrono::duration<double>((t1 - t0) + (t3 - t2)).count();
  }
  return total / n;
}

int Main(int argc, char** argv) {
  int clients = 8;
  double seconds = 10;
  std::string vault_bin;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--clients") clients = std::atoi(argv[i + 1]);
    if (a == "--seconds") seconds = std::atof(argv[i + 1]);
    if (a == "--vault-bin") vault_bin = argv[i + 1];
  }
  clients = std::clamp(clients, 1, 256);
  seconds = std::clamp(seconds, 1.0, 600.0);

  testing::VaultProcess vault;
  if (!vault_bin.empty()) {
    // The harness starts its own binary: exec the other one in its place.
    vault.set_wrapper(
        {"/bin/sh", "-c", "shift; exec \"$0\" \"$@\"", vault_bin});
  }
  const int metrics_port = testing::FreePort();
  // Every budget wide open: this measures the vault, not its limits.
  std::vector<std::string> args = {"--metrics-listen",
                                   "127.0.0.1:" + std::to_string(metrics_port)};
  for (const char* budget : {"account", "read", "guess", "peer"}) {
    args.insert(args.end(),
                {std::string("--") + budget + "-burst", "100000",
                 std::string("--") + budget + "-per-second", "100000"});
  }
  if (!vault.Start(args)) {
    std::fprintf(stderr, "vault did not start:\n%s\n", vault.log().c_str());
    return 1;
  }
  std::vector<std::string> tokens;
  for (int c = 0; c < clients; ++c) {
    const std::string acct = "load-" + std::to_string(c);
    testing::TestClient client(vault.address(), vault.public_key());
    tokens.push_back(vault.Token(acct, 3600));
    if (!client.Register(tokens.back(), acct, "pw", SecretBytes::Random(32))
             .ok()) {
      std::fprintf(stderr, "registration failed\n");
      return 1;
    }
  }

  std::atomic<bool> stop{false};
  std::atomic<long> failures{0};
  std::vector<std::vector<double>> latencies(clients);
  const double cpu0 = ProcessCpuSeconds(vault.pid());
  const double heads0 = HeadWrites(metrics_port);
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      testing::TestClient client(vault.address(), vault.public_key());
      const std::string acct = "load-" + std::to_string(c);
      while (!stop) {
        auto s = Clock::now();
        auto r = client.Recover(tokens[c], acct, "pw");
        if (!r.result.ok()) ++failures;
        latencies[c].push_back(
            std::chrono::duration<double>(Clock::now() - s).count());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = ProcessCpuSeconds(vault.pid()) - cpu0;
  const double heads = HeadWrites(metrics_port) - heads0;

  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  const double n = static_cast<double>(all.size());
  if (all.empty()) return 1;
  const double protocol = ProtocolCostSeconds();
  std::printf("clients                 %d\n", clients);
  std::printf("recoveries              %.0f in %.1f s (%ld failed)\n", n, wall,
              failures.load());
  std::printf("recoveries/s            %.1f\n", n / wall);
  std::printf("latency p50 / p99       %.2f / %.2f ms\n",
              1e3 * all[all.size() / 2], 1e3 * all[all.size() * 99 / 100]);
  std::printf("vault CPU per recovery  %.0f us\n", 1e6 * cpu / n);
  std::printf("GenerateKE2+ServerFinish %.0f us (in process)\n",
              1e6 * protocol);
  std::printf("ratio                   %.2f (target <= 1.5)\n",
              (cpu / n) / protocol);
  if (heads0 >= 0) {
    std::printf("HSM head writes/recovery %.3f\n", heads / n);
  }
  vault.Stop();
  return failures.load() == 0 ? 0 : 1;
}

}  // namespace
}  // namespace bkv

int main(int argc, char** argv) { return bkv::Main(argc, argv); }
