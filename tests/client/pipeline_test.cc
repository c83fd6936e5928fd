// The backup pipeline's building blocks: a queue bounded by bytes and the
// buffer pool bounded by bytes (client/bounded_queue.h, buffer_pool.h).
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "client/bounded_queue.h"
#include "client/buffer_pool.h"
#include "gtest/gtest.h"

namespace bkv {
namespace {

using Bytes = std::vector<uint8_t>;

TEST(BoundedQueueTest, ByteCostMakesAPushWaitForRoom) {
  BoundedQueue<Bytes> q(10, [](const Bytes& b) { return b.size(); });
  ASSERT_TRUE(q.Push(Bytes(6)).ok());
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    EXPECT_TRUE(q.Push(Bytes(6)).ok());  // 12 > 10: waits for a Pop
    pushed = true;
  });
  // Bounded: 50 x 2 ms; the push must still be waiting afterwards.
  for (int i = 0; i < 50 && !pushed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_FALSE(pushed);
  auto first = q.Pop();
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ((*first)->size(), 6u);
  producer.join();
  EXPECT_TRUE(pushed);
  q.Close();
  auto second = q.Pop();
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(second->has_value());
  auto end = q.Pop();
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(end->has_value());
}

TEST(BoundedQueueTest, AnItemLargerThanTheCapacityPassesAlone) {
  BoundedQueue<Bytes> q(4, [](const Bytes& b) { return b.size(); });
  ASSERT_TRUE(q.Push(Bytes(100)).ok());  // an empty queue admits it
  auto got = q.Pop();
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->size(), 100u);
}

TEST(BoundedQueueTest, CancelReleasesAWaitingPushWithTheReason) {
  BoundedQueue<Bytes> q(4, [](const Bytes& b) { return b.size(); });
  ASSERT_TRUE(q.Push(Bytes(4)).ok());
  absl::Status result;
  std::thread producer([&] { result = q.Push(Bytes(4)); });
  q.Cancel(absl::DataLossError("pack failed"));
  producer.join();
  EXPECT_TRUE(absl::IsDataLoss(result)) << result;
  // Room again after a cancel is not a way around it: it stays cancelled.
  EXPECT_TRUE(absl::IsDataLoss(q.Push(Bytes(1))));
}

TEST(BufferPoolTest, KeepsFreeBuffersUpToItsBytesAndHandsThemBackEmpty) {
  BufferPool pool(2 << 20);
  Bytes a(1 << 20, 1), b(1 << 20, 2), c(1 << 20, 3);
  const uint8_t* a_data = a.data();
  pool.Give(std::move(a));
  pool.Give(std::move(b));
  pool.Give(std::move(c));  // over 2 MiB of capacity: freed, not kept
  Bytes t1 = pool.Take(), t2 = pool.Take(), t3 = pool.Take();
  EXPECT_TRUE(t1.empty());
  EXPECT_GE(t1.capacity(), size_t{1} << 20);
  EXPECT_GE(t2.capacity(), size_t{1} << 20);
  EXPECT_EQ(t3.capacity(), 0u);  // a fresh buffer: the pool was empty
  EXPECT_TRUE(t1.data() == a_data || t2.data() == a_data);
}

}  // namespace
}  // namespace bkv
