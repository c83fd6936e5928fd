// The quorum's cost beside single-node anchoring, same run: 16 writer
// threads doing counted writes (FreshRecordStore::CompareAndSwap, each on
// its own account) over real RocksDB, anchored (a) in one token
// (TokenHeadStore: HMAC + object write) and (b) by a quorum of 3 endorsers
// (QuorumHeadStore: each head signed with Ed25519 in 3 SoftHSM tokens, two
// of them over loopback gRPC), plus (c) no anchoring (the RocksDB store
// alone). Alternating rounds; prints writes/s, head writes per write and
// the ratio quorum / single-node.
//
//   quorum_bench [seconds per round, default 5] [rounds, default 2]
#include <sodium.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "freshness/fresh_record_store.h"
#include "storage/rocksdb_record_store.h"
#include "tests/freshness/quorum_nodes.h"
#include "tests/storage/test_util.h"

namespace bkv::freshness {
namespace {

constexpr int kWriters = 16;

struct Result {
  double writes_per_s = 0;
  double head_writes_per_write = 0;
};

// kWriters threads, each incrementing its own account until `d` passes.
Result Drive(storage::RecordStore& store, absl::Duration d,
             const std::function<uint64_t()>& head_writes) {
  std::atomic<uint64_t> writes{0}, failures{0};
  const uint64_t heads_before = head_writes();
  const absl::Time end = absl::Now() + d;
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      const std::string id = absl::StrCat("bench-", t);
      auto r = store.Get(id);
      uint64_t v = r.ok() ? r->version() : storage::RecordStore::kNoRecord;
      uint32_t used = r.ok() ? r->attempts_used() : 0;
      while (absl::Now() < end) {
        auto next = store.CompareAndSwap(
            id, v, storage::testing::SampleRecord(++used % 1000));
        if (!next.ok()) {
          ++failures;
          return;
        }
        v = *next;
        ++writes;
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failures > 0) {
    fprintf(stderr, "%llu writes failed\n", (unsigned long long)failures);
    std::exit(1);
  }
  Result res;
  res.writes_per_s = writes / absl::ToDoubleSeconds(d);
  res.head_writes_per_write =
      writes ? double(head_writes() - heads_before) / writes : 0;
  return res;
}

std::unique_ptr<storage::RocksDbRecordStore> OpenRocks(
    const storage::testing::TempDir& dir, const std::string& name) {
  auto s = storage::RocksDbRecordStore::Open({.data_dir = dir.Sub(name)},
                                             storage::testing::TestSealer());
  if (!s.ok()) {
    fprintf(stderr, "rocksdb: %s\n", s.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(s);
}

template <typename T>
T Must(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    fprintf(stderr, "%s: %s\n", what, v.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(v);
}

int Run(absl::Duration round, int rounds) {
  auto nodes = Must(testing::QuorumNodes::Create(3), "quorum nodes");
  storage::testing::TempDir dir;
  auto plain = OpenRocks(dir, "plain");
  auto single_db = OpenRocks(dir, "single");
  auto quorum_db = OpenRocks(dir, "quorum");
  auto token_heads =
      Must(TokenHeadStore::Open(nodes->node(0).token), "token heads");
  auto quorum_heads = nodes->Heads(0);
  auto single = Must(FreshRecordStore::Open(*single_db, *token_heads, {}),
                     "single-node store");
  auto quorum = Must(FreshRecordStore::Open(*quorum_db, *quorum_heads, {}),
                     "quorum store");
  printf("%-22s %12s %22s\n", "round", "writes/s", "head writes per write");
  for (int i = 0; i < rounds; ++i) {
    const Result p = Drive(*plain, round, [] { return uint64_t{0}; });
    const Result s =
        Drive(*single, round, [&] { return single->Stats().head_writes; });
    const Result q =
        Drive(*quorum, round, [&] { return quorum->Stats().head_writes; });
    printf("%-22s %12.0f %22s\n", "without anchoring", p.writes_per_s, "-");
    printf("%-22s %12.0f %22.3f\n", "single-node token", s.writes_per_s,
           s.head_writes_per_write);
    printf("%-22s %12.0f %22.3f\n", "quorum of 3", q.writes_per_s,
           q.head_writes_per_write);
    printf("ratio quorum / single-node: %.2f, quorum / without: %.2f\n",
           q.writes_per_s / s.writes_per_s, q.writes_per_s / p.writes_per_s);
  }
  return 0;
}

}  // namespace
}  // namespace bkv::freshness

int main(int argc, char** argv) {
  if (sodium_init() < 0) return 1;
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 5;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 2;
  return bkv::freshness::Run(absl::Seconds(seconds > 0 ? seconds : 5),
                             rounds > 0 ? rounds : 2);
}
