#ifndef BKV_TESTS_PROCESS_STOP_H_
#define BKV_TESTS_PROCESS_STOP_H_

// SIGSTOP is not in force when kill() returns: a thread running on the
// other core goes on until it takes the signal, and may answer one more
// request. Tests that freeze a process to inject a fault wait here until
// every thread of it is stopped.

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace bkv::testing {

// True when every thread of `pid` is in the stopped state ('T' or 't').
inline bool AllThreadsStopped(pid_t pid) {
  std::error_code ec;
  const std::filesystem::path tasks =
      "/proc/" + std::to_string(pid) + "/task";
  std::filesystem::directory_iterator it(tasks, ec);
  if (ec) return false;
  int seen = 0;
  for (const auto& task : it) {
    std::ifstream in(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
    // "pid (comm) S ...": comm may hold spaces and parentheses.
    const size_t close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size()) return false;
    const char state = stat[close + 2];
    if (state != 'T' && state != 't') return false;
    ++seen;
  }
  return seen > 0;
}

// SIGSTOP, then waits (bounded) until it is in force. False if the process
// did not stop within `max` (it is gone, or stuck in uninterruptible sleep).
inline bool StopAndWait(pid_t pid, std::chrono::milliseconds max =
                                       std::chrono::seconds(10)) {
  if (pid <= 0 || kill(pid, SIGSTOP) != 0) return false;
  const auto give_up = std::chrono::steady_clock::now() + max;
  while (!AllThreadsStopped(pid)) {
    if (std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace bkv::testing

#endif  // BKV_TESTS_PROCESS_STOP_H_
