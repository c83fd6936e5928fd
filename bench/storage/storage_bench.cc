// Synced counter increments beside the raw fdatasync rate of the same
// directory, measured in the same run: x_fdatasync is what group commit buys
// (target at 64 writers: >= 20). Then Get and CompareAndSwap latency with
// 10 k and 1 M records, and bytes on disk per record.
//
//   storage_bench [--bench_dir=DIR] [google benchmark flags]
// DIR must be on the disk under test (default $TMPDIR or /tmp); it gets a
// fresh subdirectory, removed at exit.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>

#include "storage/rocksdb_record_store.h"
#include "tests/storage/test_util.h"

namespace bkv::storage {
namespace {

using Clock = std::chrono::steady_clock;

testing::TempDir* g_dir = nullptr;
double g_fdatasync_per_s = 0;

std::string Id(int i) { return absl::StrCat("bench-account-", i); }

std::unique_ptr<RocksDbRecordStore> OpenStore(const std::string& name) {
  auto store = RocksDbRecordStore::Open({.data_dir = g_dir->Sub(name)},
                                        testing::TestSealer());
  if (!store.ok()) {
    fprintf(stderr, "open: %s\n", store.status().ToString().c_str());
    abort();
  }
  return std::move(*store);
}

// The physical limit: append 1 KiB and fdatasync, one writer.
void BM_RawFdatasync(benchmark::State& state) {
  const std::string path = g_dir->Sub("fdatasync.bin");
  int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_APPEND, 0600);
  std::vector<char> block(1024, 'x');
  const auto start = Clock::now();
  for (auto _ : state) {
    if (write(fd, block.data(), block.size()) != 1024 || fdatasync(fd) != 0) {
      state.SkipWithError("write/fdatasync failed");
      break;
    }
  }
  const double secs =
      std::chrono::duration<double>(Clock::now() - start).count();
  g_fdatasync_per_s = state.iterations() / secs;
  close(fd);
  unlink(path.c_str());
  state.counters["syncs_per_s"] =
      benchmark::Counter(state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RawFdatasync)->UseRealTime()->MinTime(2);

RocksDbRecordStore* g_counter_store = nullptr;

// One attempt counted: Get, +1, synced CompareAndSwap. One account per
// writer, so writers never conflict and only the sync is shared.
void BM_SyncedIncrement(benchmark::State& state) {
  const std::string id = Id(state.thread_index());
  const auto start = Clock::now();
  for (auto _ : state) {
    auto r = g_counter_store->Get(id);
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      break;
    }
    r->set_attempts_used(r->attempts_used() + 1);
    auto v = g_counter_store->CompareAndSwap(id, r->version(), *r);
    if (!v.ok()) {
      state.SkipWithError(v.status().ToString().c_str());
      break;
    }
  }
  const double secs =
      std::chrono::duration<double>(Clock::now() - start).count();
  // Summed over threads: total increments/s, and total over fdatasync/s.
  state.counters["incr_per_s"] = state.iterations() / secs;
  state.counters["x_fdatasync"] =
      state.iterations() / secs / std::max(1.0, g_fdatasync_per_s);
}
BENCHMARK(BM_SyncedIncrement)
    ->Threads(1)
    ->Threads(8)
    ->Threads(64)
    ->UseRealTime()
    ->MinTime(3);

// Stores preloaded with N records (bulk, one flush), built once per N.
std::map<int64_t, std::unique_ptr<RocksDbRecordStore>> g_loaded;

RocksDbRecordStore& Loaded(int64_t n, benchmark::State& state) {
  auto& slot = g_loaded[n];
  if (slot) return *slot;
  slot = OpenStore(absl::StrCat("loaded-", n));
  const auto start = Clock::now();
  constexpr int64_t kBatch = 50'000;
  for (int64_t begin = 0; begin < n; begin += kBatch) {
    std::vector<std::pair<std::string, v1::UserRecord>> batch;
    for (int64_t i = begin; i < std::min(n, begin + kBatch); ++i) {
      batch.emplace_back(Id(static_cast<int>(i)), testing::SampleRecord(0));
    }
    auto s = slot->BulkCreate(batch);
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  fprintf(stderr, "loaded %lld records in %.1f s\n", static_cast<long long>(n),
          std::chrono::duration<double>(Clock::now() - start).count());
  return *slot;
}

void Percentiles(benchmark::State& state, std::vector<double>& us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[us.size() * 99 / 100];
}

void BM_GetLatency(benchmark::State& state) {
  RocksDbRecordStore& store = Loaded(state.range(0), state);
  std::mt19937 rng(1);
  std::vector<double> us;
  for (auto _ : state) {
    const std::string id = Id(static_cast<int>(rng() % state.range(0)));
    const auto t0 = Clock::now();
    auto r = store.Get(id);
    us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      break;
    }
  }
  Percentiles(state, us);
  auto stats = store.Stats();
  if (stats.ok()) {
    state.counters["disk_B_per_record"] =
        static_cast<double>(stats->sst_bytes + stats->wal_bytes) /
        state.range(0);
  }
}
BENCHMARK(BM_GetLatency)->Arg(10'000)->Arg(1'000'000)->MinTime(2);

void BM_CasLatency(benchmark::State& state) {
  RocksDbRecordStore& store = Loaded(state.range(0), state);
  std::mt19937 rng(2);
  std::vector<double> us;
  for (auto _ : state) {
    const std::string id = Id(static_cast<int>(rng() % state.range(0)));
    state.PauseTiming();
    auto r = store.Get(id);
    state.ResumeTiming();
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      break;
    }
    r->set_attempts_used(r->attempts_used() + 1);
    const auto t0 = Clock::now();
    auto v = store.CompareAndSwap(id, r->version(), *r);
    us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (!v.ok()) {
      state.SkipWithError(v.status().ToString().c_str());
      break;
    }
  }
  Percentiles(state, us);
}
BENCHMARK(BM_CasLatency)->Arg(10'000)->Arg(1'000'000)->MinTime(2);

}  // namespace
}  // namespace bkv::storage

int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    std::string_view a(argv[i]);
    if (a.starts_with("--bench_dir=")) {
      setenv("TMPDIR", argv[i] + strlen("--bench_dir="), 1);
    } else {
      args.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  bkv::storage::testing::TempDir dir;
  bkv::storage::g_dir = &dir;
  fprintf(stderr, "storage_bench: data in %s\n", dir.path().c_str());
  auto counters = bkv::storage::OpenStore("counters");
  for (int t = 0; t < 64; ++t) {
    if (!counters
             ->CompareAndSwap(bkv::storage::Id(t), 0,
                              bkv::storage::testing::SampleRecord(0))
             .ok()) {
      return 1;
    }
  }
  bkv::storage::g_counter_store = counters.get();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  bkv::storage::g_loaded.clear();
  return 0;
}
