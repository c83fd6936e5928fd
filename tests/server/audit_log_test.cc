#include "server/audit_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace bkv::server {
namespace {

std::string TempDir() {
  char tmpl[] = "/tmp/bkv-audit-test-XXXXXX";
  EXPECT_NE(::mkdtemp(tmpl), nullptr);
  return tmpl;
}

// Every line of `path` is a whole JSON object; returns how many.
int WholeLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), {});
  EXPECT_TRUE(all.empty() || all.back() == '\n') << "torn last line";
  std::istringstream lines(all);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    EXPECT_TRUE(nlohmann::json::parse(line, nullptr, false).is_object())
        << line;
    ++n;
  }
  return n;
}

TEST(FileAuditLogTest, ConcurrentLinesAreWholeAndAllThere) {
  const std::string dir = TempDir();
  auto log = FileAuditLog::Open(dir + "/audit.log", SecretBytes::Random(32));
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_TRUE((*log)->Ready().ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        EXPECT_TRUE(
            (*log)->Record({"recover_start", "acct", "counted", 3}).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(WholeLines(dir + "/audit.log"), 400);
  std::filesystem::remove_all(dir);
}

// A disk that fills mid-line: the partial line is cut back, the call fails,
// and the file still parses; Ready() says so before the next attempt.
TEST(FileAuditLogTest, FaultFullDiskNeverLeavesATornLine) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  const std::string dir = TempDir();
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=256k") != 0) {
    GTEST_SKIP() << "cannot mount tmpfs";
  }
  const std::string path = dir + "/audit.log";
  auto log = FileAuditLog::Open(path, SecretBytes::Random(32));
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_TRUE((*log)->Record({"register_commit", "a", "active", 10}).ok());
  {  // fill every free page
    std::ofstream filler(dir + "/filler", std::ios::binary);
    std::string page(4096, 'f');
    for (int i = 0; i < 80 && filler.write(page.data(), page.size()); ++i) {
      filler.flush();
    }
  }
  int ok = 1;
  absl::Status failed;
  for (int i = 0; i < 100 && failed.ok(); ++i) {  // at most one page of lines
    failed = (*log)->Record({"recover_start", "a", "counted", 9});
    if (failed.ok()) ++ok;
  }
  EXPECT_EQ(failed.code(), absl::StatusCode::kUnavailable) << failed;
  EXPECT_EQ(WholeLines(path), ok);
  EXPECT_FALSE((*log)->Ready().ok());
  std::filesystem::remove(dir + "/filler");
  EXPECT_TRUE((*log)->Ready().ok());
  EXPECT_TRUE((*log)->Record({"recover_start", "a", "counted", 9}).ok());
  EXPECT_EQ(WholeLines(path), ok + 1);
  log->reset();
  ::umount2(dir.c_str(), MNT_DETACH);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace bkv::server
