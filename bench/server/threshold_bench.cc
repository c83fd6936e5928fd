// Recovery through 2-of-3 threshold realms beside one vault, same run, same
// KSF (docs/threshold.md, "The bench"; issue 18 "Done when"): real bkv-vault
// processes on loopback (each realm its own SoftHSM token and RocksDB), the
// SDK clients (client::ThresholdClient, client::VaultClient). Prints
//  - wall clock: p50/p90 of sequential recoveries (time to the key), with
//    --rotate 1 the rotation's own time after the key; recoveries/s with C
//    client threads per path;
//  - CPU per recovery of every process (its CPU clock, utime + stime, read
//    before and after): each realm, the single vault, the client (this
//    process). Per-realm capacity relative to one vault = single vault's CPU
//    per recovery / the busiest realm's: the load-independent figure.
//
//   threshold_bench [--recoveries N (default 30)] [--seconds S (default 5)]
//                   [--clients C (default 4)] [--rotate 0|1 (default 0)]
// --rotate 1 measures the SDK's default path: a fresh registration (a second
// KSF run and Start/Prepare/Commit at all n) after each recovery, on the
// client's background thread.
#include <sys/types.h>
#include <time.h>

#include <algorithm>
#include <array>
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

// CPU seconds (all threads, user + system) of each process: realm-a, -b,
// -c, the single vault, this process (the clients). The process CPU clock
// is /proc/PID/stat's utime + stime at nanosecond resolution.
constexpr size_t kProcs = 5;
using Cpu = std::array<double, kProcs>;

double CpuOf(pid_t pid) {
  clockid_t clock;
  timespec ts{};
  if (clock_getcpuclockid(pid, &clock) != 0 || clock_gettime(clock, &ts) != 0) {
    std::fprintf(stderr, "threshold_bench: no CPU clock for pid %d\n", pid);
    std::exit(1);
  }
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

Cpu ReadCpu(const Fixture& f) {
  return {CpuOf(f.realms[0]->pid()), CpuOf(f.realms[1]->pid()),
          CpuOf(f.realms[2]->pid()), CpuOf(f.single->pid()), CpuOf(0)};
}

// Adds (after - before) into `sum`.
void AddCpu(Cpu& sum, const Cpu& before, const Cpu& after) {
  for (size_t i = 0; i < kProcs; ++i) sum[i] += after[i] - before[i];
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

// One account per client on both paths, registered; threshold/single
// recover (true: got the key); rotation waits for the threshold client's
// background rotation (false: one ended in an error).
struct Pair {
  std::function<bool()> threshold, single, rotation;
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
          [s, pw, acct] { return s->Recover(acct, *pw).ok(); },
          [r] {
            auto ended = r->WaitForRotation();
            return !ended.has_value() || ended->status.ok();
          }};
}

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * (v.size() - 1))];
}

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

void Check(bool ok, const char* what) {
  if (!ok) std::fprintf(stderr, "threshold_bench: %s failed\n", what);
}

// Per recovery, in ms: each realm (nt threshold recoveries), the single
// vault (ns recoveries), the client on each path.
void PrintCpu(const char* label, const Cpu& t, double nt, const Cpu& s,
              double ns) {
  const double realm = std::max({t[0], t[1], t[2]}) / nt * 1e3;
  const double single = s[3] / ns * 1e3;
  const double client_t = t[4] / nt * 1e3, client_s = s[4] / ns * 1e3;
  std::printf(
      "cpu per recovery, %s (ms): realms %.1f %.1f %.1f | single vault %.1f | "
      "per-realm capacity (single / busiest realm) %.2f | client: threshold "
      "%.1f single %.1f (ratio %.2f)\n",
      label, t[0] / nt * 1e3, t[1] / nt * 1e3, t[2] / nt * 1e3, single,
      single / realm, client_t, client_s, client_t / client_s);
}

// Sequential recoveries, alternating paths: time to the key, then (with
// rotation) the rotation after it, each with its CPU.
void Latency(const Fixture& f, const Pair& p, int n) {
  std::vector<double> key, rot, cycle, single;
  Cpu key_cpu{}, rot_cpu{}, single_cpu{};
  for (int i = 0; i < n; ++i) {
    const Cpu c0 = ReadCpu(f);
    const auto t0 = Clock::now();
    Check(p.threshold(), "a threshold recovery");
    const auto t1 = Clock::now();
    const Cpu c1 = ReadCpu(f);
    Check(p.rotation(), "a rotation");
    const auto t2 = Clock::now();
    const Cpu c2 = ReadCpu(f);
    Check(p.single(), "a single-vault recovery");
    const auto t3 = Clock::now();
    AddCpu(key_cpu, c0, c1);
    AddCpu(rot_cpu, c1, c2);
    AddCpu(single_cpu, c2, ReadCpu(f));
    key.push_back(Ms(t0, t1));
    rot.push_back(Ms(t1, t2));
    cycle.push_back(Ms(t0, t2));
    single.push_back(Ms(t2, t3));
  }
  std::printf(
      "latency (ms, %d sequential each): threshold 2-of-3 time to key p50 "
      "%.1f p90 %.1f | single p50 %.1f p90 %.1f | p50 ratio %.2f\n",
      n, Percentile(key, 0.5), Percentile(key, 0.9), Percentile(single, 0.5),
      Percentile(single, 0.9), Percentile(key, 0.5) / Percentile(single, 0.5));
  PrintCpu("sequential", key_cpu, n, single_cpu, n);
  if (!f.rotate) return;
  std::printf(
      "rotation after the key (ms): p50 %.1f p90 %.1f | key + rotation p50 "
      "%.1f (ratio to single %.2f)\n",
      Percentile(rot, 0.5), Percentile(rot, 0.9), Percentile(cycle, 0.5),
      Percentile(cycle, 0.5) / Percentile(single, 0.5));
  std::printf("cpu per rotation (ms): realms %.1f %.1f %.1f | client %.1f\n",
              rot_cpu[0] / n * 1e3, rot_cpu[1] / n * 1e3, rot_cpu[2] / n * 1e3,
              rot_cpu[4] / n * 1e3);
}

// Recoveries completed by one thread per pair in `seconds`; the CPU of the
// phase (rotations waited for before the second reading) added to `cpu`.
long Throughput(const Fixture& f, const std::vector<Pair>& pairs,
                bool threshold, double seconds, Cpu& cpu) {
  std::atomic<long> done{0};
  const Cpu before = ReadCpu(f);
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
  for (const Pair& p : pairs) Check(p.rotation(), "a rotation");
  AddCpu(cpu, before, ReadCpu(f));
  return done;
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
  bkv::Latency(f, pairs[0], recoveries);
  bkv::Cpu tc{}, sc{};
  const long t = bkv::Throughput(f, pairs, true, seconds, tc);
  const long s = bkv::Throughput(f, pairs, false, seconds, sc);
  // Every realm of the group serves every threshold recovery (KE1 and KE3
  // go to all of it), so a realm's throughput is the recoveries/s; on one
  // shared machine that is bounded by all processes' CPU together.
  std::printf(
      "throughput (%d clients, %.0f s each, wall clock): threshold %.1f "
      "recoveries/s | single %.1f recoveries/s | ratio %.2f\n",
      clients, seconds, t / seconds, s / seconds,
      static_cast<double>(t) / static_cast<double>(s));
  bkv::PrintCpu("under load", tc, t, sc, s);
  return 0;
}
