#include "client/cancel.h"

#include <utility>

#include "absl/strings/cord.h"

namespace bkv {
namespace {

constexpr char kCancelledByAppUrl[] = "type.bkv.dev/bkv.CancelledByApp";
thread_local CancelToken* current_token = nullptr;

}  // namespace

void CancelToken::Cancel() {
  {
    // Hooks run under the lock, so once Remove returns its hook never runs
    // (the object it points to may then go away).
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_) return;
    cancelled_ = true;
    for (auto& [id, hook] : hooks_) hook();
  }
  cv_.notify_all();
}

bool CancelToken::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

bool CancelToken::SleepFor(std::chrono::milliseconds d) const {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return cancelled_; });
}

uint64_t CancelToken::Add(std::function<void()> hook) {
  std::unique_lock<std::mutex> lock(mu_);
  if (cancelled_) {
    lock.unlock();
    hook();
    return 0;
  }
  const uint64_t id = next_id_++;
  hooks_.emplace(id, std::move(hook));
  return id;
}

void CancelToken::Remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  hooks_.erase(id);
}

absl::Status CancelledByApp(const std::string& message) {
  absl::Status s = absl::CancelledError(message);
  s.SetPayload(kCancelledByAppUrl, absl::Cord("1"));
  return s;
}

bool IsCancelledByApp(const absl::Status& status) {
  return status.code() == absl::StatusCode::kCancelled &&
         status.GetPayload(kCancelledByAppUrl).has_value();
}

CancelScope::CancelScope(CancelToken* token) : previous_(current_token) {
  current_token = token;
}

CancelScope::~CancelScope() { current_token = previous_; }

CancelToken* CancelScope::Current() { return current_token; }

}  // namespace bkv
