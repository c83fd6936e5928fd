// Recovery through 2-of-3 threshold realms beside two comparators, same run,
// same KSF (docs/threshold.md, "The bench"; issue 18 "Done when"):
//  - "1-of-1 realm": one realm as a 1-of-1 realm set, the n = 1 case of the
//    same code path (ThresholdClient, protocol v3, the same rotation
//    setting; issue 18 item 1);
//  - "v2 vault": the deployed single-vault protocol (VaultClient, no
//    rotation).
// Real bkv-vault processes on loopback, each its own SoftHSM token and
// RocksDB. Prints one block per path, then the ratios of 2-of-3 against
// each comparator:
//  - wall clock: p50/p90 of sequential recoveries (time to the key; the
//    paths interleaved), with --rotate 1 the rotation's own time after the
//    key; recoveries/s with C client threads per path;
//  - CPU per recovery of every process (its CPU clock, utime + stime, read
//    before and after): each vault process, the client (this process).
//    Per-realm capacity relative to a comparator = the comparator vault's
//    CPU per recovery / the busiest 2-of-3 realm's: the load-independent
//    figure. "sequential" sums a path's own segments of the latency loop;
//    "whole sequential loop" is each process's CPU over the entire loop
//    (each serves one path), which also holds the work a vault does after
//    its answer reached the client (a 2-of-3 path's segment ends at its
//    last-needed answer, with other realms of the group still running on
//    this 2-core machine) and ~0.5 ms/s of idle CPU;
//  - with --rotate 1, CPU per rotation, and each realm's handler time per
//    rotation RPC (Start, Prepare, Commit) from its /metrics.
//
//   threshold_bench [--recoveries N (default 30)] [--seconds S (default 5)]
//                   [--clients C (default 4)] [--rotate 0|1 (default 0)]
//                   [--skip 1of1|v2 (a comparator left out; its vault still
//                   starts)]
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
#include <sstream>
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
const Argon2idParams kKsf{2, 19'456, 1};  // the client floor, every path

// The paths; kGroup is measured, the other two are its comparators.
enum Path : size_t { kGroup, kSolo, kV2, kPaths };
const char* const kName[kPaths] = {"2-of-3 realms", "1-of-1 realm", "v2 vault"};

std::vector<std::string> OpenBudgets() {
  std::vector<std::string> args;
  for (const char* budget : {"account", "read", "guess", "peer"}) {
    args.insert(args.end(),
                {std::string("--") + budget + "-burst", "100000",
                 std::string("--") + budget + "-per-second", "100000"});
  }
  return args;
}

// A vault process of one path, with its metrics port (0: none).
struct Vault {
  std::unique_ptr<testing::VaultProcess> process;
  int metrics = 0;
};

struct Fixture {
  // realm-a, -b, -c (kGroup), realm-s (kSolo), the v2 vault; a Cpu reading
  // has this process (the clients) after them.
  std::vector<Vault> vaults;
  std::string group_set, solo_set;
  bool rotate = false;
  std::array<bool, kPaths> on{true, true, true};
};

constexpr size_t kVaults = 5, kClient = 5, kProcs = 6;
// The vault processes of each path, as indexes into Fixture::vaults.
const std::vector<size_t> kVaultsOf[kPaths] = {{0, 1, 2}, {3}, {4}};

bool StartVault(Fixture& f, const std::string& realm_id) {
  Vault v{std::make_unique<testing::VaultProcess>(), 0};
  auto args = OpenBudgets();
  if (!realm_id.empty()) {
    v.metrics = testing::FreePort();
    args.insert(args.end(),
                {"--realm-id", realm_id, "--audience", realm_id,
                 "--metrics-listen", "127.0.0.1:" + std::to_string(v.metrics)});
  }
  const bool ok = v.process->Start(args);
  f.vaults.push_back(std::move(v));
  return ok;
}

// Vault i serves as realm id RealmId(i): realm-a..c, realm-s.
std::string RealmId(size_t i) {
  return i < 3 ? std::string("realm-") + char('a' + i) : "realm-s";
}

// Vault i's line in a realm-set file.
std::string RealmLine(const Fixture& f, size_t i) {
  const auto& p = *f.vaults[i].process;
  return "realm " + RealmId(i) + " " + p.address() + " " +
         HexEncode(p.public_key()) + "\n";
}

bool Start(Fixture& f) {
  for (size_t i = 0; i < 4; ++i) {
    if (!StartVault(f, RealmId(i))) return false;
  }
  if (!StartVault(f, "")) return false;
  f.group_set = "bkv-realm-set v1\nt 2\nlimit 10\n";
  for (size_t i = 0; i < 3; ++i) f.group_set += RealmLine(f, i);
  f.solo_set = "bkv-realm-set v1\nt 1\nlimit 10\n" + RealmLine(f, 3);
  return true;
}

// CPU seconds (all threads, user + system) of each process in Fixture
// order. The process CPU clock is /proc/PID/stat's utime + stime at
// nanosecond resolution.
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
  Cpu c{};
  for (size_t i = 0; i < kVaults; ++i) c[i] = CpuOf(f.vaults[i].process->pid());
  c[kClient] = CpuOf(0);
  return c;
}

// Adds (after - before) into `sum`.
void AddCpu(Cpu& sum, const Cpu& before, const Cpu& after) {
  for (size_t i = 0; i < kProcs; ++i) sum[i] += after[i] - before[i];
}

std::unique_ptr<client::ThresholdClient> Realms(const Fixture& f,
                                                const std::string& set,
                                                const std::string& acct) {
  client::ThresholdOptions o;
  o.vault.ksf = kKsf;
  o.rotate = f.rotate;
  o.account_token = [&f, acct](const std::string& id) {
    const size_t i = id == "realm-s" ? 3 : id.back() - 'a';
    return f.vaults[i].process->Token(acct, 3600, id);
  };
  return std::move(*client::ThresholdClient::Create(*client::ParseRealmSet(set),
                                                    std::move(o)));
}

std::unique_ptr<client::VaultClient> V2(const Fixture& f,
                                        const std::string& acct) {
  const auto& p = *f.vaults[4].process;
  client::VaultOptions o;
  o.address = p.address();
  o.server_public_key = p.public_key();
  o.ksf = kKsf;
  const std::string token = p.Token(acct, 3600);
  o.account_token = [token] { return token; };
  return std::move(*client::VaultClient::Create(std::move(o)));
}

// One path of one account: recover (true: got the key); rotation waits for
// the client's background rotation (false: one ended in an error).
struct Fns {
  std::function<bool()> recover, rotation;
};
using Account = std::array<Fns, kPaths>;

Fns ThresholdFns(std::shared_ptr<client::ThresholdClient> r,
                 std::shared_ptr<SecretBytes> pw, const std::string& acct) {
  return {[r, pw, acct] { return r->Recover(acct, *pw).ok(); },
          [r] {
            auto ended = r->WaitForRotation();
            return !ended.has_value() || ended->status.ok();
          }};
}

// One account per client on every path that is on, registered.
Account Prepare(const Fixture& f, const std::string& acct) {
  auto pw =
      std::make_shared<SecretBytes>(SecretBytes::Copy("bench horse battery"));
  auto key = SecretBytes::Random(32);
  std::shared_ptr<client::ThresholdClient> g = Realms(f, f.group_set, acct);
  bool ok = g->Register(acct, *pw, key).ok();
  Account a{ThresholdFns(g, pw, acct), Fns{}, Fns{}};
  if (f.on[kSolo]) {
    std::shared_ptr<client::ThresholdClient> s = Realms(f, f.solo_set, acct);
    ok = ok && s->Register(acct, *pw, key).ok();
    a[kSolo] = ThresholdFns(s, pw, acct);
  }
  if (f.on[kV2]) {
    std::shared_ptr<client::VaultClient> v = V2(f, acct);
    ok = ok && v->Register(acct, *pw, key).ok();
    a[kV2] = {[v, pw, acct] { return v->Recover(acct, *pw).ok(); },
              [] { return true; }};
  }
  if (!ok) {
    std::fprintf(stderr, "threshold_bench: registration failed\n");
    std::exit(1);
  }
  return a;
}

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * (v.size() - 1))];
}

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

void Check(bool ok, const char* path, const char* what) {
  if (!ok) std::fprintf(stderr, "threshold_bench: %s: %s failed\n", path, what);
}

// What the bench measured of one path.
struct Figures {
  std::vector<double> key, rot, cycle;  // ms per sequential recovery
  Cpu key_cpu{}, rot_cpu{};             // sums over the latency loop
  Cpu loop_cpu{};  // the whole latency loop, every path (same for all)
  Cpu load_cpu{};  // sum over the throughput phase
  long done = 0;   // recoveries in the throughput phase
  // Handler seconds per call of each rotation RPC, per realm (/metrics).
  std::vector<std::array<double, 3>> rpc_ms;
};
using Results = std::array<Figures, kPaths>;

// Sequential recoveries of account `a`, the paths interleaved and their
// order reversed every other round: time to the key, then the rotation
// after it (an immediate return without one), each with its CPU; and each
// process's CPU over the whole loop (`loop`).
void Latency(const Fixture& f, const Account& a, int n, Results& r, Cpu& loop) {
  const Cpu start = ReadCpu(f);
  for (int i = 0; i < n; ++i) {
    for (size_t k = 0; k < kPaths; ++k) {
      const size_t p = i % 2 == 0 ? k : kPaths - 1 - k;
      if (!f.on[p]) continue;
      Figures& x = r[p];
      const Cpu c0 = ReadCpu(f);
      const auto t0 = Clock::now();
      Check(a[p].recover(), kName[p], "a recovery");
      const auto t1 = Clock::now();
      const Cpu c1 = ReadCpu(f);
      Check(a[p].rotation(), kName[p], "a rotation");
      const auto t2 = Clock::now();
      AddCpu(x.key_cpu, c0, c1);
      AddCpu(x.rot_cpu, c1, ReadCpu(f));
      x.key.push_back(Ms(t0, t1));
      x.rot.push_back(Ms(t1, t2));
      x.cycle.push_back(Ms(t0, t2));
    }
  }
  AddCpu(loop, start, ReadCpu(f));
}

// Recoveries completed on path `p` by one thread per account in `seconds`;
// the CPU of the phase (rotations waited for before the second reading).
void Throughput(const Fixture& f, const std::vector<Account>& accounts,
                size_t p, double seconds, Figures& x) {
  std::atomic<long> done{0};
  const Cpu before = ReadCpu(f);
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (const Account& a : accounts) {
    threads.emplace_back([&, fn = a[p].recover] {
      while (Clock::now() < end) {
        if (fn()) ++done;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const Account& a : accounts)
    Check(a[p].rotation(), kName[p], "rotation");
  AddCpu(x.load_cpu, before, ReadCpu(f));
  x.done = done;
}

// Sum and count of bkv_request_duration_seconds for `method`, outcome OK.
std::array<double, 2> HandlerSeconds(const std::string& page,
                                     const std::string& method) {
  std::array<double, 2> out{};
  const std::string labels = "{method=\"" + method + "\",outcome=\"OK\"} ";
  for (int k = 0; k < 2; ++k) {
    const std::string key = std::string("bkv_request_duration_seconds_") +
                            (k == 0 ? "sum" : "count") + labels;
    const size_t at = page.find(key);
    if (at != std::string::npos) {
      out[k] = std::atof(page.c_str() + at + key.size());
    }
  }
  return out;
}

const char* const kRotationRpcs[3] = {"ThresholdRegisterStart",
                                      "ThresholdRegisterPrepare",
                                      "ThresholdRegisterCommit"};

// Per realm of `p`: the rotation RPCs' {sum, count} now.
using RpcTotals = std::vector<std::array<std::array<double, 2>, 3>>;
RpcTotals ReadRpcs(const Fixture& f, size_t p) {
  RpcTotals out;
  for (size_t v : kVaultsOf[p]) {
    const std::string page = testing::HttpGet(f.vaults[v].metrics, "/metrics");
    out.push_back({});
    for (int m = 0; m < 3; ++m)
      out.back()[m] = HandlerSeconds(page, kRotationRpcs[m]);
  }
  return out;
}

// ms per call between two readings.
std::vector<std::array<double, 3>> RpcMs(const RpcTotals& a,
                                         const RpcTotals& b) {
  std::vector<std::array<double, 3>> out(a.size());
  for (size_t v = 0; v < a.size(); ++v) {
    for (int m = 0; m < 3; ++m) {
      const double calls = b[v][m][1] - a[v][m][1];
      out[v][m] = calls > 0 ? (b[v][m][0] - a[v][m][0]) / calls * 1e3 : 0;
    }
  }
  return out;
}

// Busiest of path p's vault processes in `cpu`, ms per `n`.
double VaultMs(const Cpu& cpu, size_t p, double n) {
  double most = 0;
  for (size_t v : kVaultsOf[p]) most = std::max(most, cpu[v]);
  return most / n * 1e3;
}

// "a b c" ms per `n` of path p's vault processes.
std::string EachVault(const Cpu& cpu, size_t p, double n) {
  std::ostringstream s;
  s.precision(1);
  s << std::fixed;
  for (size_t v : kVaultsOf[p])
    s << (v == kVaultsOf[p][0] ? "" : " ") << cpu[v] / n * 1e3;
  return s.str();
}

void PrintPath(const Fixture& f, size_t p, const Figures& x, int n,
               double seconds, int clients) {
  const bool rotates = f.rotate && p != kV2;
  std::printf("== %s (%s) ==\n", kName[p],
              p == kV2  ? "VaultClient, protocol v2, no rotation"
              : rotates ? "ThresholdClient, protocol v3, rotation on"
                        : "ThresholdClient, protocol v3, rotation off");
  std::printf("  time to key (ms, %d sequential): p50 %.1f p90 %.1f\n", n,
              Percentile(x.key, 0.5), Percentile(x.key, 0.9));
  std::printf("  cpu per recovery, sequential (ms): vault %s | client %.1f\n",
              EachVault(x.key_cpu, p, n).c_str(), x.key_cpu[kClient] / n * 1e3);
  std::printf("  cpu per %s, whole sequential loop (ms): vault %s\n",
              rotates ? "recovery + rotation" : "recovery",
              EachVault(x.loop_cpu, p, n).c_str());
  std::printf("  cpu per recovery, under load (ms): vault %s | client %.1f\n",
              EachVault(x.load_cpu, p, x.done).c_str(),
              x.load_cpu[kClient] / x.done * 1e3);
  std::printf("  throughput (%d clients, %.0f s, wall): %.1f recoveries/s\n",
              clients, seconds, x.done / seconds);
  if (!rotates) return;
  std::printf(
      "  rotation after the key (ms): p50 %.1f p90 %.1f | key + rotation p50 "
      "%.1f\n",
      Percentile(x.rot, 0.5), Percentile(x.rot, 0.9), Percentile(x.cycle, 0.5));
  std::printf("  cpu per rotation (ms): vault %s | client %.1f\n",
              EachVault(x.rot_cpu, p, n).c_str(), x.rot_cpu[kClient] / n * 1e3);
  for (size_t v = 0; v < x.rpc_ms.size(); ++v) {
    std::printf(
        "  %s handler ms per rotation RPC (/metrics, wall): Start %.1f Prepare "
        "%.1f Commit %.1f\n",
        RealmId(kVaultsOf[p][v]).c_str(), x.rpc_ms[v][0], x.rpc_ms[v][1],
        x.rpc_ms[v][2]);
  }
}

// 2-of-3 against comparator c: time-to-key ratio (2-of-3 / c), capacity
// (c's vault CPU per recovery / the busiest 2-of-3 realm's), client CPU
// ratio, wall throughput ratio; with rotation both ways, the realm CPU per
// rotation ratio.
void PrintRatios(const Fixture& f, const Results& r, size_t c, int n) {
  const Figures &g = r[kGroup], &x = r[c];
  std::printf(
      "2-of-3 vs %s: time to key p50 %.2f | capacity sequential %.2f, whole "
      "loop %.2f, under load %.2f | client cpu sequential %.2f, under load "
      "%.2f | wall throughput %.2f",
      kName[c], Percentile(g.key, 0.5) / Percentile(x.key, 0.5),
      VaultMs(x.key_cpu, c, n) / VaultMs(g.key_cpu, kGroup, n),
      VaultMs(x.loop_cpu, c, n) / VaultMs(g.loop_cpu, kGroup, n),
      VaultMs(x.load_cpu, c, x.done) / VaultMs(g.load_cpu, kGroup, g.done),
      g.key_cpu[kClient] / x.key_cpu[kClient],
      (g.load_cpu[kClient] / g.done) / (x.load_cpu[kClient] / x.done),
      static_cast<double>(g.done) / static_cast<double>(x.done));
  if (f.rotate && c != kV2) {
    std::printf(" | realm cpu per rotation %.2f",
                VaultMs(g.rot_cpu, kGroup, n) / VaultMs(x.rot_cpu, c, n));
  }
  std::printf("\n");
}

}  // namespace
}  // namespace bkv

int main(int argc, char** argv) {
  int recoveries = 30, clients = 4;
  double seconds = 5;
  bkv::Fixture f;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--recoveries") recoveries = std::atoi(v.c_str());
    if (a == "--seconds") seconds = std::atof(v.c_str());
    if (a == "--clients") clients = std::atoi(v.c_str());
    if (a == "--rotate") f.rotate = std::atoi(v.c_str()) != 0;
    if (a == "--skip" && v == "1of1") f.on[bkv::kSolo] = false;
    if (a == "--skip" && v == "v2") f.on[bkv::kV2] = false;
  }
  if (!bkv::Start(f)) {
    std::fprintf(stderr, "threshold_bench: a vault did not start\n");
    return 1;
  }
  std::vector<bkv::Account> accounts;
  for (int c = 0; c < clients; ++c) {
    accounts.push_back(bkv::Prepare(f, "bench-" + std::to_string(c)));
  }
  bkv::Results r;
  std::array<bkv::RpcTotals, bkv::kPaths> rpc0;
  for (size_t p : {bkv::kGroup, bkv::kSolo}) rpc0[p] = bkv::ReadRpcs(f, p);
  bkv::Cpu loop{};
  bkv::Latency(f, accounts[0], recoveries, r, loop);
  for (auto& x : r) x.loop_cpu = loop;
  for (size_t p : {bkv::kGroup, bkv::kSolo}) {
    r[p].rpc_ms = bkv::RpcMs(rpc0[p], bkv::ReadRpcs(f, p));
  }
  for (size_t p = 0; p < bkv::kPaths; ++p) {
    if (f.on[p]) bkv::Throughput(f, accounts, p, seconds, r[p]);
  }
  // Every realm of a group serves every recovery of it (KE1 and KE3 go to
  // all of it), so a realm's throughput is the group's recoveries/s; on one
  // shared machine that is bounded by all processes' CPU together.
  for (size_t p = 0; p < bkv::kPaths; ++p) {
    if (f.on[p]) bkv::PrintPath(f, p, r[p], recoveries, seconds, clients);
  }
  for (size_t c : {bkv::kSolo, bkv::kV2}) {
    if (f.on[c]) bkv::PrintRatios(f, r, c, recoveries);
  }
  return 0;
}
