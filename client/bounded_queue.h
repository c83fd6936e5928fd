#ifndef BKV_CLIENT_BOUNDED_QUEUE_H_
#define BKV_CLIENT_BOUNDED_QUEUE_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>

#include "absl/status/status.h"

namespace bkv {

// A blocking FIFO of at most `capacity` items between two pipeline stages; the
// bound is what keeps a streaming backup's memory constant. Close() ends the
// stream normally; Cancel() stops both sides at once. Thread-safe.
template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}

  // False when the queue was cancelled (the item is dropped).
  bool Push(T item) {
    std::unique_lock lock(mu_);
    not_full_.wait(lock,
                   [&] { return cancelled_ || items_.size() < capacity_; });
    if (cancelled_) return false;
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }

  // nullopt at the end of a closed queue or on cancellation.
  std::optional<T> Pop() {
    std::unique_lock lock(mu_);
    not_empty_.wait(lock,
                    [&] { return cancelled_ || closed_ || !items_.empty(); });
    if (cancelled_ || items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }

  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
  }

  void Cancel() {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    items_.clear();
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<T> items_;
  bool closed_ = false;
  bool cancelled_ = false;
};

// The first error of a pipeline; later errors are usually consequences of it
// (a cancelled queue), so they are dropped. Thread-safe.
class FirstError {
 public:
  void Set(absl::Status s) {
    if (s.ok()) return;
    std::lock_guard lock(mu_);
    if (status_.ok()) status_ = std::move(s);
  }
  absl::Status Get() const {
    std::lock_guard lock(mu_);
    return status_;
  }

 private:
  mutable std::mutex mu_;
  absl::Status status_;
};

}  // namespace bkv

#endif  // BKV_CLIENT_BOUNDED_QUEUE_H_
