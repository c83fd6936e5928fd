// What one Shred costs as the RocksDB record store grows: the store opened
// as the vault opens it, filled with N realm-sized records (format 2, 8 KiB
// padded), then `shreds` rounds of: `writes` counted attempts on random
// accounts (the load between rotations), one overwrite of a random account
// (the replaced share) and its Shred. The same rounds run once without the
// Shred, so the difference is the Shred's cost, background compactions
// included (each phase waits until RocksDB is idle).
//
//   shred_bench [--records=N] [--shreds=200] [--writes=10] [--batch=1]
//               [--threads=1]
//               [--memtable_mib=M] [--file_mib=F] [--level1_mib=L]
//               [--dir=DIR]
// --batch=K overwrites K accounts per round, then shreds them one after
// another (what a batched shredder would pay per key: the first Shred's
// flush empties the memtable for the others). --threads=T runs T such
// loops at once (concurrent rotations; "in Shred" MiB then counts every
// thread's writes). --file_mib and --level1_mib
// set RocksDbRecordStoreOptions' table_file_bytes and level1_bytes (default:
// the store's defaults; 64 and 256 are RocksDB's, the store's before the
// bound); --memtable_mib its write_buffer_bytes (default 64).
// Bytes are the process's /proc/self/io write_bytes (every thread: WAL,
// flushes, compactions). DIR gets a fresh subdirectory, removed at exit.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/rocksdb_record_store.h"
#include "tests/storage/test_util.h"

namespace bkv::storage {
namespace {

using Clock = std::chrono::steady_clock;

struct Flags {
  int records = 10'000;
  int shreds = 200;
  int writes = 10;
  int batch = 1;     // accounts overwritten, then shredded one after another
  int threads = 1;   // each running `shreds` rounds at once
  int file_mib = 0;  // 0: RocksDbRecordStoreOptions' default
  int level1_mib = 0;
  int memtable_mib = 0;
  std::string dir;
};

uint64_t WriteBytes() {
  std::ifstream io("/proc/self/io");
  std::string name;
  uint64_t value = 0;
  while (io >> name >> value) {
    if (name == "write_bytes:") return value;
  }
  return 0;
}

std::string Id(int i) { return absl::StrCat("shred-bench-", i); }

// An active realm record: its value is format 2 (8 KiB padded), like every
// account of a threshold realm.
v1::UserRecord RealmRecord() {
  v1::UserRecord r = testing::SampleRecord();
  v1::RealmShare& share = *r.mutable_realm();
  share.set_registration_version(std::string(16, '\x01'));
  share.set_per_realm_limit(10);
  share.set_descriptor_bytes(std::string(600, '\x02'));
  share.set_oprf_key_share(std::string(32, '\x03'));
  share.set_secret_share(std::string(32, '\x04'));
  share.set_wrapped_key(std::string(60, '\x05'));
  share.set_epoch(1);
  share.set_commitment(std::string(32, '\x06'));
  r.set_realm_epoch(1);
  return r;
}

void Die(const absl::Status& s, const char* what) {
  if (s.ok()) return;
  fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  exit(1);
}

RocksDbStats WaitIdle(const RocksDbRecordStore& store) {
  for (int i = 0; i < 36'000; ++i) {  // at most an hour
    auto stats = store.Stats();
    Die(stats.status(), "stats");
    if (!stats->busy) return *stats;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  fprintf(stderr, "RocksDB still busy after an hour\n");
  exit(1);
}

void Fill(RocksDbRecordStore& store, int n) {
  const v1::UserRecord record = RealmRecord();
  constexpr int kChunk = 20'000;
  for (int begin = 0; begin < n; begin += kChunk) {
    std::vector<std::pair<std::string, v1::UserRecord>> chunk;
    for (int i = begin; i < std::min(n, begin + kChunk); ++i) {
      chunk.emplace_back(Id(i), record);
    }
    Die(store.BulkCreate(chunk), "bulk create");
  }
}

void Overwrite(RocksDbRecordStore& store, const std::string& id) {
  auto r = store.Get(id);
  Die(r.status(), "get");
  r->set_attempts_used((r->attempts_used() + 1) % 10);
  Die(store.CompareAndSwap(id, r->version(), *r).status(), "cas");
}

struct Phase {
  double bytes_per_round = 0;
  double ms_per_round = 0;
  std::vector<double> shred_ms, shred_mib;  // inside Shred, per call
};

// One thread's rounds; appends its Shreds' figures to `p` under `mu`.
void Rounds(RocksDbRecordStore& store, const Flags& f, bool shred,
            uint64_t seed, Phase& p, std::mutex& mu) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick(0, f.records - 1);
  for (int round = 0; round < f.shreds; ++round) {
    for (int w = 0; w < f.writes; ++w) Overwrite(store, Id(pick(rng)));
    std::vector<std::string> victims;
    for (int v = 0; v < f.batch; ++v) victims.push_back(Id(pick(rng)));
    for (const std::string& victim : victims) Overwrite(store, victim);
    if (!shred) continue;
    for (const std::string& victim : victims) {
      const uint64_t b = WriteBytes();
      const auto t = Clock::now();
      Die(store.Shred(victim), "shred");
      const double ms =
          std::chrono::duration<double, std::milli>(Clock::now() - t).count();
      std::lock_guard<std::mutex> lock(mu);
      p.shred_ms.push_back(ms);
      p.shred_mib.push_back((WriteBytes() - b) / 1048576.0);
    }
  }
}

Phase Run(RocksDbRecordStore& store, const Flags& f, bool shred,
          uint64_t seed) {
  Phase p;
  std::mutex mu;
  WaitIdle(store);
  const uint64_t bytes0 = WriteBytes();
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < f.threads; ++t) {
    threads.emplace_back(Rounds, std::ref(store), std::cref(f), shred, seed + t,
                         std::ref(p), std::ref(mu));
  }
  for (std::thread& t : threads) t.join();
  WaitIdle(store);
  const int n = f.shreds * f.batch * f.threads;  // per shred, not per round
  p.ms_per_round =
      std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / n;
  p.bytes_per_round = double(WriteBytes() - bytes0) / n;
  return p;
}

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(q * v.size()))];
}

int Main(const Flags& f) {
  testing::TempDir tmp;  // under $TMPDIR unless --dir
  const std::string dir =
      f.dir.empty() ? tmp.Sub("db") : absl::StrCat(f.dir, "/shred-bench-db");
  std::filesystem::remove_all(dir);
  RocksDbRecordStoreOptions options{.data_dir = dir};  // the vault's
  if (f.file_mib > 0) options.table_file_bytes = uint64_t(f.file_mib) << 20;
  if (f.level1_mib > 0) options.level1_bytes = uint64_t(f.level1_mib) << 20;
  if (f.memtable_mib > 0) {
    options.write_buffer_bytes = size_t(f.memtable_mib) << 20;
  }
  auto store = RocksDbRecordStore::Open(options, testing::TestSealer());
  Die(store.status(), "open");
  auto t0 = Clock::now();
  Fill(**store, f.records);
  RocksDbStats stats = WaitIdle(**store);
  printf(
      "records %d, memtable %d MiB, table files %d MiB, level 1 %d MiB: "
      "filled and compacted in %.1f s, %.1f MiB of tables, files per level "
      "%s\n",
      f.records, int(options.write_buffer_bytes >> 20),
      int(options.table_file_bytes >> 20), int(options.level1_bytes >> 20),
      std::chrono::duration<double>(Clock::now() - t0).count(),
      stats.sst_bytes / 1048576.0,
      absl::StrJoin(stats.files_at_level, "/").c_str());
  const Phase base = Run(**store, f, /*shred=*/false, 1);
  const Phase with = Run(**store, f, /*shred=*/true, 1000);
  stats = WaitIdle(**store);
  printf(
      "rounds %d x %d threads (%d attempts + %d overwrites each), per "
      "shred:\n",
      f.shreds, f.threads, f.writes, f.batch);
  printf("  without shred: %.2f MiB written, %.1f ms\n",
         base.bytes_per_round / 1048576.0, base.ms_per_round);
  printf("  with shred:    %.2f MiB written, %.1f ms\n",
         with.bytes_per_round / 1048576.0, with.ms_per_round);
  printf(
      "  per shred:     %.2f MiB, %.1f ms (difference, background "
      "included)\n",
      (with.bytes_per_round - base.bytes_per_round) / 1048576.0,
      with.ms_per_round - base.ms_per_round);
  printf(
      "  in Shred():    MiB p50 %.2f p90 %.2f max %.2f; ms p50 %.1f "
      "p90 %.1f max %.1f\n",
      Quantile(with.shred_mib, 0.5), Quantile(with.shred_mib, 0.9),
      Quantile(with.shred_mib, 1), Quantile(with.shred_ms, 0.5),
      Quantile(with.shred_ms, 0.9), Quantile(with.shred_ms, 1));
  printf("  after: %.1f MiB of tables, files per level %s\n",
         stats.sst_bytes / 1048576.0,
         absl::StrJoin(stats.files_at_level, "/").c_str());
  if (!f.dir.empty()) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace bkv::storage

int main(int argc, char** argv) {
  bkv::storage::Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name, int* out) {
      const std::string prefix = absl::StrCat("--", name, "=");
      return a.rfind(prefix, 0) == 0 &&
             absl::SimpleAtoi(a.substr(prefix.size()), out) && *out > 0;
    };
    if (value("records", &f.records) || value("shreds", &f.shreds) ||
        value("writes", &f.writes) || value("batch", &f.batch) ||
        value("threads", &f.threads) || value("file_mib", &f.file_mib) ||
        value("level1_mib", &f.level1_mib) ||
        value("memtable_mib", &f.memtable_mib)) {
      continue;
    }
    if (a.rfind("--dir=", 0) == 0) {
      f.dir = a.substr(6);
      continue;
    }
    fprintf(stderr,
            "usage: shred_bench [--records=N] [--shreds=N] [--writes=N] "
            "[--batch=N] [--threads=N] [--memtable_mib=N] [--file_mib=N] "
            "[--level1_mib=N] "
            "[--dir=DIR]\n");
    return 2;
  }
  return bkv::storage::Main(f);
}
