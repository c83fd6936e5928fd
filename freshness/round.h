#ifndef BKV_FRESHNESS_ROUND_H_
#define BKV_FRESHNESS_ROUND_H_

#include <set>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace bkv::freshness {

// The answers of one round, gathered until `wanted` distinct answerers
// succeeded, every peer answered, or the deadline passed. Shared with the
// callbacks, which may outlive the round.
template <typename T>
class Round {
 public:
  Round(size_t peers, size_t wanted) : peers_(peers), wanted_(wanted) {}
  // `id` names the answerer: a second success under one id does not count.
  void Add(uint64_t id, absl::StatusOr<T> r) {
    absl::MutexLock lock(&mu_);
    ++answers_;
    if (!r.ok()) {
      errors_.push_back(r.status());
    } else if (ids_.insert(id).second) {
      ok_.push_back(*std::move(r));
    }
  }
  // The successes so far (at least `wanted` unless time ran out) and the
  // failures.
  std::pair<std::vector<T>, std::vector<absl::Status>> Wait(
      absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return ok_.size() >= wanted_ || answers_ >= peers_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
    return {ok_, errors_};
  }

 private:
  const size_t peers_, wanted_;
  absl::Mutex mu_;
  size_t answers_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<uint64_t> ids_ ABSL_GUARDED_BY(mu_);
  std::vector<T> ok_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Status> errors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bkv::freshness

#endif  // BKV_FRESHNESS_ROUND_H_
