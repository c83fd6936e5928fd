// The owner lease's local deadline on an injected clock, over a real
// one-member etcd (docs/rollback.md "The election's open findings", finding
// 8): time the clock counts while the process could not run (a suspend, on
// CLOCK_BOOTTIME) ends the hold at once, before any keep-alive is sent.
// ctest -R rollback.quorum.lease
#include "server/owner_lease.h"

#include <gtest/gtest.h>

#include <atomic>

#include "absl/synchronization/notification.h"
#include "tests/storage/etcd_cluster.h"

namespace bkv::server {
namespace {

using storage::testing::EtcdCluster;

TEST(OwnerLeaseTest, TimeCountedWhileSuspendedEndsTheHoldAtOnce) {
  auto etcd = EtcdCluster::Start({.members = 1});
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  storage::EtcdClientOptions co;
  co.endpoints = (*etcd)->Endpoints();
  co.insecure = true;
  auto client = storage::EtcdClient::Create(co);
  ASSERT_TRUE(client.ok()) << client.status();

  // Starts at 1 s and moves only when the test says so.
  auto clock = std::make_shared<std::atomic<int64_t>>(1'000'000'000);
  OwnerLease::Options o;
  o.key = "test/fresh/owner";
  o.node_id = 1;
  o.ttl = absl::Seconds(6);
  o.now = [clock] { return clock->load(); };
  absl::Notification won, lost;
  auto lease =
      OwnerLease::Create(**client, o,
                         {[&](const OwnerLease::Won&) { won.Notify(); },
                          [&](const std::string&) {
                            if (!lost.HasBeenNotified()) lost.Notify();
                          },
                          nullptr, nullptr, nullptr});
  lease->SetEager(true);
  lease->Start();
  ASSERT_TRUE(won.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_TRUE(lease->Held());

  // The machine slept for one TTL: etcd's timer ran on, so must ours.
  clock->fetch_add(6'000'000'000);
  EXPECT_FALSE(lease->Held()) << "a suspend the clock counted left the hold";
  // The loop notices at its next tick (TTL/3), not after a keep-alive.
  EXPECT_TRUE(lost.WaitForNotificationWithTimeout(absl::Seconds(10)));
  lease->Stop();
}

}  // namespace
}  // namespace bkv::server
