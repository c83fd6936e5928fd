// The etcd record store on a real 3-member loopback etcd cluster beside the
// RocksDB store in the same run: synced counter increments/s, CAS latency
// p50/p99, etcd round trips per CAS, and etcd bytes per record.
//
//   etcd_bench [google benchmark flags]
// Needs /usr/bin/etcd (Debian etcd-server). All three members share this
// machine's disk and cores, so absolute figures understate a real cluster's
// throughput and overstate nothing but its latency floor (no network).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "storage/etcd_record_store.h"
#include "storage/rocksdb_record_store.h"
#include "tests/storage/etcd_cluster.h"
#include "tests/storage/test_util.h"

namespace bkv::storage {
namespace {

using Clock = std::chrono::steady_clock;

testing::TempDir* g_dir = nullptr;
testing::EtcdCluster* g_cluster = nullptr;
RecordStore* g_store[2] = {};  // [0] RocksDB, [1] etcd
EtcdRecordStore* g_etcd = nullptr;

std::string Id(int i) { return absl::StrCat("bench-account-", i); }

void Die(const absl::Status& s, const char* what) {
  fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  abort();
}

// One attempt counted: Get, +1, CompareAndSwap acknowledged when durable
// (fdatasync on RocksDB, Raft majority with fdatasync on etcd). One account
// per writer: writers share only the sync.
void BM_SyncedIncrement(benchmark::State& state) {
  RecordStore& store = *g_store[state.range(0)];
  const std::string id = Id(1'000'000 + state.thread_index());
  if (!store.Get(id).ok()) {
    auto v = store.CompareAndSwap(id, 0, testing::SampleRecord());
    if (!v.ok()) Die(v.status(), "create");
  }
  const auto start = Clock::now();
  for (auto _ : state) {
    auto r = store.Get(id);
    if (!r.ok()) Die(r.status(), "get");
    r->set_attempts_used(r->attempts_used() + 1);
    auto v = store.CompareAndSwap(id, r->version(), *r);
    if (!v.ok()) Die(v.status(), "cas");
  }
  const double secs =
      std::chrono::duration<double>(Clock::now() - start).count();
  state.counters["incr_per_s"] = state.iterations() / secs;
  state.SetLabel(state.range(0) ? "etcd" : "rocksdb");
}
BENCHMARK(BM_SyncedIncrement)
    ->ArgNames({"etcd"})
    ->Arg(0)
    ->Arg(1)
    ->Threads(1)
    ->Threads(16)
    ->Threads(64)
    ->UseRealTime()
    ->MinTime(3);

// CompareAndSwap alone (the Get before it untimed), and on etcd the gRPC
// calls it takes.
void BM_CasLatency(benchmark::State& state) {
  RecordStore& store = *g_store[state.range(0)];
  constexpr int kAccounts = 200;
  for (int i = 0; i < kAccounts; ++i) {
    if (!store.Get(Id(i)).ok()) {
      auto v = store.CompareAndSwap(Id(i), 0, testing::SampleRecord());
      if (!v.ok()) Die(v.status(), "create");
    }
  }
  std::vector<double> us;
  uint64_t rtt = 0;
  int n = 0;
  for (auto _ : state) {
    const std::string id = Id(n++ % kAccounts);
    state.PauseTiming();
    auto r = store.Get(id);
    if (!r.ok()) Die(r.status(), "get");
    r->set_attempts_used(r->attempts_used() + 1);
    const uint64_t rtt0 = g_etcd->Stats().round_trips;
    state.ResumeTiming();
    const auto t0 = Clock::now();
    auto v = store.CompareAndSwap(id, r->version(), *r);
    us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    rtt += g_etcd->Stats().round_trips - rtt0;
    if (!v.ok()) Die(v.status(), "cas");
  }
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[us.size() * 99 / 100];
  if (state.range(0) == 1) {
    state.counters["etcd_rtt_per_cas"] = static_cast<double>(rtt) / us.size();
  }
  state.SetLabel(state.range(0) ? "etcd" : "rocksdb");
}
BENCHMARK(BM_CasLatency)->ArgNames({"etcd"})->Arg(0)->Arg(1)->MinTime(3);

// etcd database bytes per record: N creates, then the leader's dbSizeInUse
// growth (bbolt pages, both keys, one revision each).
void BM_EtcdBytesPerRecord(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) {
    auto before = g_cluster->DbSizeInUse(0);
    if (!before.ok()) Die(before.status(), "status");
    std::vector<std::thread> threads;
    for (int t = 0; t < 16; ++t) {
      threads.emplace_back([&, t] {
        for (int i = t; i < n; i += 16) {
          auto v = g_etcd->CompareAndSwap(Id(2'000'000 + i), 0,
                                          testing::SampleRecord());
          if (!v.ok()) Die(v.status(), "create");
        }
      });
    }
    for (auto& t : threads) t.join();
    auto after = g_cluster->DbSizeInUse(0);
    if (!after.ok()) Die(after.status(), "status");
    state.counters["db_B_per_record"] =
        static_cast<double>(*after - *before) / n;
  }
}
BENCHMARK(BM_EtcdBytesPerRecord)->Arg(10'000)->Iterations(1)->UseRealTime();

}  // namespace
}  // namespace bkv::storage

int main(int argc, char** argv) {
  using namespace bkv::storage;
  benchmark::Initialize(&argc, argv);
  testing::TempDir dir;
  g_dir = &dir;
  auto cluster = testing::EtcdCluster::Start({});
  if (!cluster.ok()) Die(cluster.status(), "etcd cluster");
  g_cluster = cluster->get();
  auto rocks = RocksDbRecordStore::Open({.data_dir = dir.Sub("rocksdb")},
                                        testing::TestSealer());
  if (!rocks.ok()) Die(rocks.status(), "rocksdb");
  EtcdRecordStoreOptions o;
  o.endpoints = g_cluster->Endpoints();
  o.insecure = true;  // loopback benchmark cluster
  auto etcd = EtcdRecordStore::Open(o, testing::TestSealer());
  if (!etcd.ok()) Die(etcd.status(), "etcd store");
  g_store[0] = rocks->get();
  g_store[1] = g_etcd = etcd->get();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
