#ifndef BKV_TESTS_SERVER_HISTORY_CHECKER_H_
#define BKV_TESTS_SERVER_HISTORY_CHECKER_H_

// A checker over what concurrent clients saw of accounts' attempt
// counters, across vault nodes and faults: every KE2 handed out and every
// GetStatus answer, each with the real-time interval of its call. For runs
// without a successful recovery (nothing resets a counter):
//  - each KE2 is tied to its own committed counter value: no two KE2s of an
//    account report the same attempts_remaining;
//  - no KE2 comes from above the limit (used count in [1, limit]);
//  - counts never go back: a call that ended before another began never
//    shows more attempts used than the later one (the counter is
//    linearizable, not just eventually right).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace bkv::testing {

class AttemptHistory {
 public:
  explicit AttemptHistory(uint32_t limit) : limit_(limit) {}

  enum class Kind { kKe2, kStatus };
  struct Event {
    std::string account;
    Kind kind;
    uint32_t attempts_remaining;
    absl::Time start, end;
  };
  // Thread-safe.
  void Add(Event e);
  // Each violation, described; empty when the history is consistent.
  std::vector<std::string> Check() const;
  // KE2s recorded for `account`.
  int Ke2s(const std::string& account) const;

 private:
  const uint32_t limit_;
  mutable absl::Mutex mu_;
  std::vector<Event> events_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bkv::testing

#endif  // BKV_TESTS_SERVER_HISTORY_CHECKER_H_
