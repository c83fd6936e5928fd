// bkv_loadgen: full recoveries (RecoverStart + RecoverFinish) against a real
// bkv-vault with durable counters and the real (SoftHSM) token.
//
//   bkv_loadgen [--clients N] [--seconds S] [--store rocksdb|etcd]
//               [--nodes K] [--vault-bin PATH] [--recoveries R]
//               [--callgrind]
//
// --recoveries R makes each client do exactly R recoveries instead of
// running for S seconds: a fixed amount of work, for instruction counts.
// --callgrind is for vaults run under `valgrind --tool=callgrind` (a
// --vault-bin script that execs valgrind): their counters are zeroed with
// `callgrind_control -z` just before the load and dumped with `-d` after it,
// so the dump holds the recoveries' instructions and nothing of start-up or
// registration (bench/server/instructions_per_recovery.sh).
// --protocol-only runs only the in-process GenerateKE2 + ServerFinish
// measurement (that script counts its instructions under callgrind).
//
// --vault-bin runs another bkv-vault build (e.g. one without a feature, for
// bench/server/rollback_bench.sh). When the vaults export
// bkv_freshness_head_writes_total, HSM head writes per recovery are printed.
//
// Starts its own vaults on loopback in temporary directories (with --store
// etcd: a real 3-member etcd cluster and K vault nodes on it, sharing one
// development token), registers one account per client, then drives
// recoveries from N threads for S seconds, client c on node c % K. Prints
// recoveries/s, p50/p99 latency, the vaults' CPU seconds per recovery
// (utime + stime from /proc/<pid>/stat, summed over nodes) divided by the
// in-process cost of GenerateKE2 + ServerFinish measured in this same run
// (what gRPC, auth, HSM and storage add on top of the protocol), and with
// etcd the unary gRPC calls etcd served per recovery (its own
// grpc_server_handled_total, summed over members). The last line,
// "RESULT key=value ...", is for bench/server/cpu_per_recovery.sh.
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "crypto/hash.h"
#include "crypto/opaque.h"
#include "tests/server/vault_harness.h"
#include "tests/storage/etcd_cluster.h"

namespace bkv {
namespace {

using Clock = std::chrono::steady_clock;

// utime + stime of `pid` in seconds; `sys` (if set) gets stime alone.
double ProcessCpuSeconds(pid_t pid, double* sys = nullptr) {
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
  if (sys != nullptr) *sys = static_cast<double>(stime) / sysconf(_SC_CLK_TCK);
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

// Voluntary and involuntary context switches of `pid`, summed over its live
// threads (/proc/PID/task/*/status; a thread that ended took its counts).
std::pair<double, double> ContextSwitches(pid_t pid) {
  std::pair<double, double> total{0, 0};
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(task.path() / "status");
    std::string line;
    while (std::getline(in, line)) {
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      const double v = std::atof(line.c_str() + colon + 1);
      if (line.starts_with("voluntary_ctxt_switches")) total.first += v;
      if (line.starts_with("nonvoluntary_ctxt_switches")) total.second += v;
    }
  }
  return total;
}

class NoStretch final : public Ksf {
 public:
  absl::StatusOr<SecretBytes> Stretch(const SecretBytes& m) const override {
    return m.Clone();
  }
};

// CPU seconds this thread has used: like the vault's utime + stime, and
// unlike wall time not inflated when other processes share the cores.
double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * ts.tv_nsec;
}

// CPU seconds per GenerateKE2 + ServerFinish, in process, software seed.
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
    double t0 = ThreadCpuSeconds();
    auto ke2 = server.GenerateKE2(rec->record, id, ke1->ke1);
    double t1 = ThreadCpuSeconds();
    auto ke3 = client.GenerateKE3(std::move(ke1->state), ke2->ke2.Serialize());
    double t2 = ThreadCpuSeconds();
    auto exported = std::move(ke2->state).Export();
    auto st = opaque::ServerLoginState::Import(exported);
    auto sk = server.ServerFinish(std::move(*st), ke3->ke3);
    double t3 = ThreadCpuSeconds();
    if (!sk.ok()) std::abort();
    total += (t1 - t0) + (t3 - t2);
  }
  return total / n;
}

struct Options {
  int clients = 8;
  double seconds = 10;
  std::string store = "rocksdb";
  int nodes = 1;
  std::string vault_bin;  // empty: this build's bkv-vault
  long recoveries = 0;    // per client; 0: run for `seconds`
  bool callgrind = false;
  bool protocol_only = false;
};

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--callgrind" || a == "--protocol-only") {
      (a == "--callgrind" ? o.callgrind : o.protocol_only) = true;
      continue;
    }
    if (i + 1 == argc) break;
    if (a == "--recoveries") o.recoveries = std::atol(argv[i + 1]);
    if (a == "--clients") o.clients = std::atoi(argv[i + 1]);
    if (a == "--seconds") o.seconds = std::atof(argv[i + 1]);
    if (a == "--store") o.store = argv[i + 1];
    if (a == "--nodes") o.nodes = std::atoi(argv[i + 1]);
    if (a == "--vault-bin") o.vault_bin = argv[i + 1];
    ++i;
  }
  o.recoveries = std::clamp(o.recoveries, 0L, 100000L);
  o.clients = std::clamp(o.clients, 1, 256);
  o.seconds = std::clamp(o.seconds, 1.0, 600.0);
  o.nodes = o.store == "etcd" ? std::clamp(o.nodes, 1, 8) : 1;
  return o;
}

// Runs `bkv-vault hsm init --softhsm-dir dir` quietly; true on success.
bool HsmInit(const std::string& dir) {
  const std::string cmd = std::string("'") + BKV_VAULT_BIN +
                          "' hsm init --softhsm-dir '" + dir + "' >/dev/null";
  return std::system(cmd.c_str()) == 0;
}

// bkv_freshness_head_writes_total summed over the nodes' /metrics; -1 when
// the vaults do not export it.
double HeadWrites(const std::vector<int>& metrics_ports) {
  const std::string name = "\nbkv_freshness_head_writes_total ";
  double total = -1;
  for (int port : metrics_ports) {
    const std::string m = testing::HttpGet(port, "/metrics");
    const size_t at = m.find(name);
    if (at == std::string::npos) continue;
    total = std::max(total, 0.0) + std::atof(m.c_str() + at + name.size());
  }
  return total;
}

// The vault nodes, started; empty if one failed. Each serves /metrics on a
// port added to `metrics_ports`.
std::vector<std::unique_ptr<testing::VaultProcess>> StartNodes(
    const Options& o, storage::testing::EtcdCluster* etcd,
    const std::string& token_dir, std::vector<int>* metrics_ports) {
  // Every budget wide open: this measures the vault, not its limits.
  std::vector<std::string> args;
  for (const char* budget : {"account", "read", "guess", "peer"}) {
    args.insert(args.end(),
                {std::string("--") + budget + "-burst", "100000",
                 std::string("--") + budget + "-per-second", "100000"});
  }
  if (etcd != nullptr) {
    args.insert(args.end(), {"--storage", "etcd", "--etcd-endpoints",
                             absl::StrJoin(etcd->Endpoints(), ","),
                             "--etcd-insecure", "--softhsm-dir", token_dir});
  }
  std::vector<std::unique_ptr<testing::VaultProcess>> nodes;
  for (int i = 0; i < o.nodes; ++i) {
    auto node = std::make_unique<testing::VaultProcess>();
    if (!o.vault_bin.empty()) {
      // The harness starts its own binary: exec the other one in its place.
      node->set_wrapper(
          {"/bin/sh", "-c", "shift; exec \"$0\" \"$@\"", o.vault_bin});
    }
    metrics_ports->push_back(testing::FreePort());
    std::vector<std::string> node_args = args;
    node_args.insert(node_args.end(),
                     {"--metrics-listen",
                      "127.0.0.1:" + std::to_string(metrics_ports->back())});
    // Node 0 makes the development issuer; the others trust its key.
    if (i > 0) {
      node_args.insert(
          node_args.end(),
          {"--issuer-keys-file", nodes[0]->data_dir() + "/dev-issuer.pub"});
    }
    if (!node->Start(node_args)) {
      std::fprintf(stderr, "vault did not start:\n%s\n", node->log().c_str());
      return {};
    }
    nodes.push_back(std::move(node));
  }
  return nodes;
}

// Unary gRPC calls etcd has served, summed over members.
double EtcdCalls(const storage::testing::EtcdCluster* etcd) {
  if (etcd == nullptr) return 0;
  double total = 0;
  for (const std::string& endpoint : etcd->Endpoints()) {
    std::pair<std::string, std::string> hp = absl::StrSplit(endpoint, ':');
    std::istringstream lines(
        testing::HttpGet(std::stoi(hp.second), "/metrics"));
    std::string line;
    while (std::getline(lines, line)) {
      if (line.starts_with("grpc_server_handled_total{") &&
          line.find("grpc_type=\"unary\"") != std::string::npos) {
        total += std::atof(line.substr(line.rfind(' ') + 1).c_str());
      }
    }
  }
  return total;
}

// CPU seconds of the nodes (`sys`: the kernel's part) and their voluntary /
// involuntary context switches (`cs`), summed.
double NodesCpuSeconds(
    const std::vector<std::unique_ptr<testing::VaultProcess>>& nodes,
    double* sys, std::pair<double, double>* cs) {
  double total = 0;
  *sys = 0;
  *cs = {0, 0};
  for (const auto& node : nodes) {
    double node_sys = 0;
    total += ProcessCpuSeconds(node->pid(), &node_sys);
    *sys += node_sys;
    const auto node_cs = ContextSwitches(node->pid());
    cs->first += node_cs.first;
    cs->second += node_cs.second;
  }
  return total;
}

// Runs `callgrind_control FLAG PID` for every node (vaults under callgrind).
void CallgrindControl(
    const std::vector<std::unique_ptr<testing::VaultProcess>>& nodes,
    const char* flag) {
  for (const auto& node : nodes) {
    const std::string cmd = std::string("callgrind_control ") + flag + " " +
                            std::to_string(node->pid()) + " >/dev/null";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "callgrind_control %s failed\n", flag);
    }
  }
}

struct Load {
  std::vector<double> latencies;  // sorted
  long failures = 0;
  double wall = 0, cpu = 0, sys = 0, etcd_calls = 0;  // sys: kernel part
  double head_writes = -1;                            // -1: not exported
  std::pair<double, double> cs;  // context switches: voluntary, involuntary
};

Load Drive(const Options& o,
           const std::vector<std::unique_ptr<testing::VaultProcess>>& nodes,
           const storage::testing::EtcdCluster* etcd,
           const std::vector<int>& metrics_ports) {
  const double heads0 = HeadWrites(metrics_ports);
  std::vector<std::string> tokens;
  for (int c = 0; c < o.clients; ++c) {
    const auto& node = *nodes[c % nodes.size()];
    const std::string acct = "load-" + std::to_string(c);
    testing::TestClient client(node.address(), node.public_key());
    tokens.push_back(nodes[0]->Token(acct, 3600));
    if (!client.Register(tokens.back(), acct, "pw", SecretBytes::Random(32))
             .ok()) {
      std::fprintf(stderr, "registration failed\n");
      return {};
    }
  }
  std::atomic<bool> stop{false};
  std::atomic<long> failures{0};
  std::vector<std::vector<double>> latencies(o.clients);
  if (o.callgrind) CallgrindControl(nodes, "-z");
  double sys0 = 0;
  std::pair<double, double> cs0;
  const double cpu0 = NodesCpuSeconds(nodes, &sys0, &cs0);
  const double calls0 = EtcdCalls(etcd);
  // For tools that attach to the nodes during the load (strace, perf):
  // bench/server/syscalls_per_recovery.sh.
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::printf("LOADING pid=%d metrics_port=%d\n", nodes[i]->pid(),
                metrics_ports[i]);
  }
  std::fflush(stdout);
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < o.clients; ++c) {
    threads.emplace_back([&, c] {
      const auto& node = *nodes[c % nodes.size()];
      testing::TestClient client(node.address(), node.public_key());
      const std::string acct = "load-" + std::to_string(c);
      for (long i = 0; o.recoveries > 0 ? i < o.recoveries : !stop; ++i) {
        auto s = Clock::now();
        auto r = client.Recover(tokens[c], acct, "pw");
        if (!r.result.ok()) ++failures;
        latencies[c].push_back(
            std::chrono::duration<double>(Clock::now() - s).count());
      }
    });
  }
  if (o.recoveries == 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  }
  stop = true;
  for (auto& t : threads) t.join();
  Load load;
  load.wall = std::chrono::duration<double>(Clock::now() - t0).count();
  load.cpu = NodesCpuSeconds(nodes, &load.sys, &load.cs) - cpu0;
  load.sys -= sys0;
  load.cs = {load.cs.first - cs0.first, load.cs.second - cs0.second};
  if (o.callgrind) CallgrindControl(nodes, "-d");
  load.etcd_calls = EtcdCalls(etcd) - calls0;
  if (heads0 >= 0) load.head_writes = HeadWrites(metrics_ports) - heads0;
  load.failures = failures.load();
  for (auto& l : latencies) {
    load.latencies.insert(load.latencies.end(), l.begin(), l.end());
  }
  std::sort(load.latencies.begin(), load.latencies.end());
  return load;
}

void Report(const Options& o, const Load& load, double protocol) {
  const auto& all = load.latencies;
  const double n = static_cast<double>(all.size());
  const double p50 = 1e3 * all[all.size() / 2];
  const double p99 = 1e3 * all[all.size() * 99 / 100];
  const double ratio = (load.cpu / n) / protocol;
  std::printf("store / nodes           %s / %d\n", o.store.c_str(), o.nodes);
  std::printf("clients                 %d\n", o.clients);
  std::printf("recoveries              %.0f in %.1f s (%ld failed)\n", n,
              load.wall, load.failures);
  std::printf("recoveries/s            %.1f\n", n / load.wall);
  std::printf("latency p50 / p99       %.2f / %.2f ms\n", p50, p99);
  std::printf("vault CPU per recovery  %.0f us (%.0f us in the kernel)\n",
              1e6 * load.cpu / n, 1e6 * load.sys / n);
  std::printf("context switches/recovery %.1f voluntary, %.1f involuntary\n",
              load.cs.first / n, load.cs.second / n);
  std::printf("GenerateKE2+ServerFinish %.0f us (in process)\n",
              1e6 * protocol);
  std::printf("ratio                   %.2f (target <= 2.5)\n", ratio);
  if (o.store == "etcd") {
    std::printf("etcd calls per recovery %.2f\n", load.etcd_calls / n);
  }
  if (load.head_writes >= 0) {
    std::printf("HSM head writes/recovery %.3f\n", load.head_writes / n);
  }
  std::printf(
      "RESULT store=%s nodes=%d clients=%d recoveries=%.0f rps=%.1f "
      "p50_ms=%.2f p99_ms=%.2f cpu_us=%.0f protocol_us=%.0f ratio=%.2f "
      "etcd_calls=%.2f failed=%ld sys_us=%.0f vcs=%.1f ivcs=%.1f\n",
      o.store.c_str(), o.nodes, o.clients, n, n / load.wall, p50, p99,
      1e6 * load.cpu / n, 1e6 * protocol, ratio, load.etcd_calls / n,
      load.failures, 1e6 * load.sys / n, load.cs.first / n, load.cs.second / n);
}

int Main(int argc, char** argv) {
  const Options o = ParseOptions(argc, argv);
  if (o.protocol_only) {
    std::printf("GenerateKE2+ServerFinish %.0f us\n",
                1e6 * ProtocolCostSeconds());
    return 0;
  }
  if (o.store != "rocksdb" && o.store != "etcd") {
    std::fprintf(stderr, "--store must be rocksdb or etcd\n");
    return 2;
  }
  std::unique_ptr<storage::testing::EtcdCluster> etcd;
  storage::testing::TempDir token_dir;
  if (o.store == "etcd") {
    auto cluster = storage::testing::EtcdCluster::Start({});
    if (!cluster.ok() || !HsmInit(token_dir.path() + "/softhsm")) {
      std::fprintf(stderr, "etcd or the token did not start\n");
      return 1;
    }
    etcd = *std::move(cluster);
  }
  std::vector<int> metrics_ports;
  auto nodes =
      StartNodes(o, etcd.get(), token_dir.path() + "/softhsm", &metrics_ports);
  if (nodes.empty()) return 1;
  Load load = Drive(o, nodes, etcd.get(), metrics_ports);
  if (load.latencies.empty()) return 1;
  Report(o, load, ProtocolCostSeconds());
  for (auto& node : nodes) node->Stop();
  return load.failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace bkv

int main(int argc, char** argv) { return bkv::Main(argc, argv); }
