// A child process counts attempts with 16 writer threads and is SIGKILLed at
// random moments; after every restart each counter must be at least the
// number of increments the child acknowledged, and no counter may go down.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>

#include "storage/rocksdb_record_store.h"
#include "tests/storage/test_util.h"

extern char** environ;

namespace bkv::storage {
namespace {

using ::bkv::storage::testing::TempDir;
using ::bkv::storage::testing::TestSealer;
using Clock = std::chrono::steady_clock;

constexpr int kAccounts = 48;
constexpr int kThreads = 16;
constexpr int kKills = 32;

struct Child {
  pid_t pid = -1;
  int acks = -1;  // read end of the ack pipe
};

Child Spawn(const std::string& dir) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return {};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 3);
  const std::string accounts = std::to_string(kAccounts);
  const std::string threads = std::to_string(kThreads);
  char* argv[] = {const_cast<char*>(BKV_CRASH_HELPER),
                  const_cast<char*>(dir.c_str()),
                  const_cast<char*>(accounts.c_str()),
                  const_cast<char*>(threads.c_str()), nullptr};
  Child child;
  if (posix_spawn(&child.pid, BKV_CRASH_HELPER, &actions, nullptr, argv,
                  environ) != 0) {
    child.pid = -1;
  }
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  child.acks = fds[0];
  return child;
}

// Reads acks until `until` or EOF; raises acked[a] to each reported value.
// Returns false on EOF.
bool Drain(int fd, Clock::time_point until, std::vector<uint32_t>& acked,
           std::string& partial, int& count) {
  char buf[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - Clock::now());
    pollfd p{fd, POLLIN, 0};
    const int ready = poll(&p, 1, std::max<int64_t>(0, left.count()));
    if (ready == 0) return true;
    if (ready < 0) continue;
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return false;
    partial.append(buf, n);
    size_t off = 0;
    for (; off + 8 <= partial.size(); off += 8) {
      uint32_t msg[2];
      memcpy(msg, partial.data() + off, 8);
      if (msg[0] < acked.size())
        acked[msg[0]] = std::max(acked[msg[0]], msg[1]);
      ++count;
    }
    partial.erase(0, off);
  }
}

TEST(StorageCrashTest, AcknowledgedIncrementsSurviveSigkill) {
  TempDir dir;
  const std::string data = dir.Sub("data");
  std::vector<uint32_t> acked(kAccounts, 0), last(kAccounts, 0);
  std::mt19937 rng(std::random_device{}());
  int total_acks = 0;
  for (int round = 0; round < kKills; ++round) {
    Child child = Spawn(data);
    ASSERT_GT(child.pid, 0) << "cannot start " << BKV_CRASH_HELPER;
    std::string partial;
    int acks = 0;
    bool open = true;
    if (round % 4 == 3) {
      // Kill at any moment, also during start-up and recovery.
      const auto delay = std::chrono::milliseconds(rng() % 40);
      open = Drain(child.acks, Clock::now() + delay, acked, partial, acks);
    } else {
      // Kill while increments are in flight: after the first ack.
      const auto limit = Clock::now() + std::chrono::seconds(20);
      while (open && acks == 0 && Clock::now() < limit) {
        open = Drain(child.acks, Clock::now() + std::chrono::milliseconds(5),
                     acked, partial, acks);
      }
      ASSERT_GT(acks, 0) << "round " << round << ": helper never acknowledged";
      const auto delay = std::chrono::milliseconds(1 + rng() % 100);
      if (open) {
        open = Drain(child.acks, Clock::now() + delay, acked, partial, acks);
      }
    }
    ASSERT_TRUE(open) << "round " << round << ": helper exited by itself";
    kill(child.pid, SIGKILL);
    // Acks written before the kill are still in the pipe.
    while (Drain(child.acks, Clock::now() + std::chrono::seconds(5), acked,
                 partial, acks)) {
    }
    close(child.acks);
    int status = 0;
    ASSERT_EQ(waitpid(child.pid, &status, 0), child.pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "round " << round << ": helper failed with status " << status;
    total_acks += acks;

    auto store = RocksDbRecordStore::Open({.data_dir = data}, TestSealer());
    ASSERT_TRUE(store.ok()) << "round " << round << ": " << store.status();
    for (int a = 0; a < kAccounts; ++a) {
      auto r = (*store)->Get(absl::StrCat("crash-account-", a));
      if (r.status().code() == absl::StatusCode::kNotFound && acked[a] == 0 &&
          last[a] == 0) {
        continue;  // killed before this account was created
      }
      ASSERT_TRUE(r.ok()) << "round " << round << ", account " << a << ": "
                          << r.status();
      EXPECT_GE(r->attempts_used(), acked[a])
          << "round " << round << ", account " << a << ": lost acked increment";
      EXPECT_GE(r->attempts_used(), last[a])
          << "round " << round << ", account " << a << ": counter went down";
      last[a] = r->attempts_used();
    }
    if (HasFailure()) return;
  }
  EXPECT_GT(total_acks, kKills);
  RecordProperty("acknowledged_increments", total_acks);
}

}  // namespace
}  // namespace bkv::storage
