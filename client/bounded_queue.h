#ifndef BKV_CLIENT_BOUNDED_QUEUE_H_
#define BKV_CLIENT_BOUNDED_QUEUE_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace bkv {

// A blocking FIFO between two pipeline stages holding at most `capacity`
// units: items, or bytes when a `cost` function gives each item's size (one
// item is always admitted, however large). The bound is what keeps a
// streaming backup's memory constant whatever the data size. Every Pop says
// which of three things happened, so no stage guesses from side flags:
//   an item                        -> the value
//   the producer called Close()    -> std::nullopt, after the last item
//   someone called Cancel(why)     -> the error `why`, at once (queued items
//                                     are dropped), on both sides
// Thread-safe.
template <typename T>
class BoundedQueue {
 public:
  using Cost = std::function<size_t(const T&)>;
  explicit BoundedQueue(size_t capacity, Cost cost = nullptr)
      : capacity_(capacity), cost_(std::move(cost)) {}

  // OK, or the reason the queue was cancelled (the item is dropped).
  absl::Status Push(T item) {
    std::unique_lock lock(mu_);
    const size_t cost = CostOf(item);
    not_full_.wait(lock, [&] {
      return !cancelled_.ok() || closed_ || items_.empty() ||
             used_ + cost <= capacity_;
    });
    if (!cancelled_.ok()) return cancelled_;
    if (closed_) return absl::FailedPreconditionError("push after close");
    used_ += cost;
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<T>> Pop() {
    std::unique_lock lock(mu_);
    not_empty_.wait(
        lock, [&] { return !cancelled_.ok() || closed_ || !items_.empty(); });
    if (!cancelled_.ok()) return cancelled_;
    if (items_.empty()) return std::optional<T>();  // closed: the end
    T item = std::move(items_.front());
    items_.pop_front();
    used_ -= CostOf(item);
    not_full_.notify_all();  // a cheap item may make room for several
    return std::optional<T>(std::move(item));
  }

  // The normal end: Pop returns the queued items, then std::nullopt.
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  // Stops both sides with `why`; the first reason stays.
  void Cancel(absl::Status why) {
    if (why.ok()) why = absl::CancelledError("cancelled");
    std::lock_guard lock(mu_);
    if (cancelled_.ok()) cancelled_ = std::move(why);
    items_.clear();
    used_ = 0;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  size_t CostOf(const T& item) const { return cost_ ? cost_(item) : 1; }

  const size_t capacity_;
  const Cost cost_;
  size_t used_ = 0;  // the cost of items_
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<T> items_;
  bool closed_ = false;
  absl::Status cancelled_;
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

// The threads of one pipeline: the first error of any stage (or Fail from
// outside: a store error, the user cancelling) cancels every watched queue,
// so every stage blocked on one returns promptly; Join waits for them all.
// The queues' cancellation reason names the first error.
class Pipeline {
 public:
  Pipeline() = default;
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  ~Pipeline() {
    Fail(absl::CancelledError("pipeline abandoned"));  // no-op when joined
    (void)Join();
  }

  template <typename T>
  void Watch(BoundedQueue<T>& q) {
    cancel_.push_back([&q](const absl::Status& s) { q.Cancel(s); });
  }
  void Run(std::function<absl::Status()> stage) {
    threads_.emplace_back([this, stage = std::move(stage)] { Fail(stage()); });
  }
  void Fail(absl::Status s) {
    if (s.ok() || joined_) return;
    error_.Set(s);
    absl::Status why = absl::CancelledError(
        absl::StrCat("stopped by an earlier error: ", s.message()));
    // Its payloads too (the app's cancellation, a vault's detail), so a
    // stage that reports the cancellation still says what caused it.
    s.ForEachPayload([&why](absl::string_view url, const absl::Cord& p) {
      why.SetPayload(url, p);
    });
    for (auto& cancel : cancel_) cancel(why);
  }
  // Waits for every stage; the first error, or OK.
  absl::Status Join() {
    for (auto& t : threads_) t.join();
    threads_.clear();
    joined_ = true;
    return error_.Get();
  }

 private:
  std::vector<std::function<void(const absl::Status&)>> cancel_;
  std::vector<std::thread> threads_;
  FirstError error_;
  bool joined_ = false;
};

}  // namespace bkv

#endif  // BKV_CLIENT_BOUNDED_QUEUE_H_
