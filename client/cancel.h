#ifndef BKV_CLIENT_CANCEL_H_
#define BKV_CLIENT_CANCEL_H_

// Cancellation of the SDK's long calls by the app, from any thread.
//
// A CancelToken is a one-way flag: once Cancel() is called it stays set.
// Blocking code observes it at safe points (between store operations, before
// a vault RPC, while waiting to retry) and returns CancelledByApp(): a
// kCancelled status marked with a payload, so callers tell "the app
// cancelled" from every other failure by the mark, never by the message.
// Waiters and in-flight RPCs that may be abandoned register a hook that
// Cancel() runs.
//
// Thread-safe.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "absl/status/status.h"

namespace bkv {

class CancelToken {
 public:
  void Cancel();
  bool cancelled() const;

  // Sleeps up to `d`; false when cancelled first (or already).
  bool SleepFor(std::chrono::milliseconds d) const;

  // Runs `hook` on Cancel() (at once if already cancelled) until the
  // returned id is passed to Remove. Hooks run under the token's lock: they
  // must not block or touch the token.
  uint64_t Add(std::function<void()> hook);
  void Remove(uint64_t id);

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool cancelled_ = false;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::function<void()>> hooks_;
};

// kCancelled, marked as cancelled by the app.
absl::Status CancelledByApp(
    const std::string& message = "cancelled by the app");
// True only for a status made by CancelledByApp() (or a copy of one).
bool IsCancelledByApp(const absl::Status& status);

// The token the SDK's blocking calls on this thread observe (nullptr: none).
// The C ABI sets it for the duration of one call; VaultClient reads it.
class CancelScope {
 public:
  explicit CancelScope(CancelToken* token);
  ~CancelScope();
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;
  static CancelToken* Current();

 private:
  CancelToken* previous_;
};

}  // namespace bkv

#endif  // BKV_CLIENT_CANCEL_H_
