#ifndef BKV_TESTS_STORAGE_RECORD_STORE_CONTRACT_H_
#define BKV_TESTS_STORAGE_RECORD_STORE_CONTRACT_H_

// The RecordStore contract (storage/record_store.h) as checks over any
// store, so each back end (one etcd cluster, several sharded) runs the same
// ones. Each takes account ids of its own so stores may be shared.

#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/record_store.h"
#include "tests/storage/test_util.h"

namespace bkv::storage::testing {

// Create, conflict, update, read back; `other` is a second store on the
// same data (another vault node) and must see the update.
inline void CheckCreateReadUpdate(RecordStore& store, const RecordStore& other,
                                  const std::string& id) {
  EXPECT_EQ(store.Get(id).status().code(), absl::StatusCode::kNotFound);
  auto v1 = store.CompareAndSwap(id, 0, SampleRecord(0));
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ(*v1, 1u);
  EXPECT_EQ(store.CompareAndSwap(id, 0, SampleRecord()).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(store.CompareAndSwap(id, 7, SampleRecord()).status().code(),
            absl::StatusCode::kAborted);
  auto v2 = store.CompareAndSwap(id, 1, SampleRecord(3));
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(*v2, 2u);
  auto got = store.Get(id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->version(), 2u);
  EXPECT_EQ(got->attempts_used(), 3u);
  EXPECT_EQ(got->schema_version(), kSchemaVersion);
  EXPECT_EQ(other.Get(id)->attempts_used(), 3u);
}

inline void CheckDeleteKeepsVersionsMonotonic(RecordStore& store,
                                              const std::string& id) {
  ASSERT_TRUE(store.CompareAndSwap(id, 0, SampleRecord()).ok());
  ASSERT_TRUE(store.CompareAndSwap(id, 1, SampleRecord(1)).ok());
  EXPECT_EQ(store.Delete(id, 1).code(), absl::StatusCode::kAborted);
  ASSERT_TRUE(store.Delete(id, 2).ok());
  EXPECT_EQ(store.Get(id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.Delete(id, 2).code(), absl::StatusCode::kAborted);
  auto v = store.CompareAndSwap(id, 0, SampleRecord());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 3u) << "a version was reused after delete";
}

// 16 threads, half on each store, race on one expected version per round.
inline void CheckExactlyOneConcurrentCasWins(RecordStore& a, RecordStore& b,
                                             const std::string& id) {
  constexpr int kThreads = 16, kRounds = 5;
  uint64_t version = *a.CompareAndSwap(id, 0, SampleRecord());
  for (int round = 0; round < kRounds; ++round) {
    std::latch start(kThreads);
    std::atomic<int> wins{0}, conflicts{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        RecordStore& s = t % 2 ? b : a;
        start.arrive_and_wait();
        auto r = s.CompareAndSwap(id, version, SampleRecord(t));
        if (r.ok()) {
          ++wins;
        } else if (r.status().code() == absl::StatusCode::kAborted) {
          ++conflicts;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(wins.load(), 1) << "round " << round;
    EXPECT_EQ(conflicts.load(), kThreads - 1) << "round " << round;
    version = a.Get(id)->version();
    EXPECT_EQ(version, static_cast<uint64_t>(round + 2));
  }
}

// Read-increment-CAS from 8 threads over `ids`: no increment lost.
inline void CheckConcurrentIncrementsAreNeverLost(
    RecordStore& store, const std::vector<std::string>& ids) {
  constexpr int kThreads = 8, kPerThread = 10;
  for (const std::string& id : ids) {
    ASSERT_TRUE(store.CompareAndSwap(id, 0, SampleRecord()).ok());
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string& id = ids[(t + i) % ids.size()];
        bool done = false;
        for (int attempt = 0; attempt < 200 && !done; ++attempt) {
          auto r = store.Get(id);
          if (!r.ok()) break;
          r->set_attempts_used(r->attempts_used() + 1);
          auto s = store.CompareAndSwap(id, r->version(), *r);
          done = s.ok();
          if (!s.ok() && s.status().code() != absl::StatusCode::kAborted) break;
        }
        if (!done) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  uint32_t total = 0;
  for (const std::string& id : ids) total += store.Get(id)->attempts_used();
  EXPECT_EQ(total, static_cast<uint32_t>(kThreads * kPerThread));
}

}  // namespace bkv::storage::testing

#endif  // BKV_TESTS_STORAGE_RECORD_STORE_CONTRACT_H_
