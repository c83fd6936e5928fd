// Counts attempts until killed: storage_crash_helper DATA_DIR ACCOUNTS THREADS
// Each acknowledged (OK-returned) increment is reported on fd 3 as an 8-byte
// message {u32 account, u32 new attempts_used}, written after CompareAndSwap
// returned, so the parent knows a lower bound for every counter. Bounded in
// time so it never outlives a parent that died.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "storage/rocksdb_record_store.h"
#include "tests/storage/test_util.h"

namespace bkv::storage {
namespace {

constexpr int kAckFd = 3;
constexpr auto kMaxRun = std::chrono::seconds(30);

[[noreturn]] void Fail(const std::string& what, const absl::Status& s) {
  fprintf(stderr, "crash_helper: %s: %s\n", what.c_str(), s.ToString().c_str());
  _exit(3);
}

int Run(const std::string& dir, int accounts, int threads) {
  auto store =
      RocksDbRecordStore::Open({.data_dir = dir}, testing::TestSealer());
  if (!store.ok()) Fail("open", store.status());
  for (int a = 0; a < accounts; ++a) {
    const std::string id = absl::StrCat("crash-account-", a);
    auto r = (*store)->Get(id);
    if (r.status().code() == absl::StatusCode::kNotFound) {
      auto v = (*store)->CompareAndSwap(id, RecordStore::kNoRecord,
                                        testing::SampleRecord(0));
      if (!v.ok()) Fail("create " + id, v.status());
    } else if (!r.ok()) {
      Fail("get " + id, r.status());
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + kMaxRun;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(getpid() * 131 + t);
      while (std::chrono::steady_clock::now() < deadline) {
        const uint32_t a = rng() % accounts;
        const std::string id = absl::StrCat("crash-account-", a);
        auto r = (*store)->Get(id);
        if (!r.ok()) Fail("get " + id, r.status());
        r->set_attempts_used(r->attempts_used() + 1);
        auto v = (*store)->CompareAndSwap(id, r->version(), *r);
        if (v.status().code() == absl::StatusCode::kAborted) continue;
        if (!v.ok()) Fail("increment " + id, v.status());
        const uint32_t msg[2] = {a, r->attempts_used()};
        if (write(kAckFd, msg, sizeof(msg)) != sizeof(msg)) _exit(4);
      }
    });
  }
  for (auto& w : workers) w.join();
  return 0;
}

}  // namespace
}  // namespace bkv::storage

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s DATA_DIR ACCOUNTS THREADS (acks on fd 3)\n",
            argv[0]);
    return 2;
  }
  return bkv::storage::Run(argv[1], atoi(argv[2]), atoi(argv[3]));
}
