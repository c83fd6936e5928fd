#ifndef BKV_SERVER_AUDIT_LOG_H_
#define BKV_SERVER_AUDIT_LOG_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "crypto/secret_bytes.h"

namespace bkv::server {

// One line per registration, attempt, success, lockout and deletion. The
// vault refuses a request whose audit line cannot be written (fail closed).
class AuditLog {
 public:
  struct Event {
    absl::string_view event;    // e.g. "recover_start"
    absl::string_view account;  // raw id; implementations must not store it
    absl::string_view outcome;  // e.g. "proceed", "invalid_login", "locked"
    int64_t attempts_remaining = -1;  // -1: not applicable
  };
  virtual ~AuditLog() = default;
  virtual absl::Status Record(const Event& event) = 0;
};

// JSON lines appended to a file:
//   {"ts":"2026-11-27T16:00:00.000Z","event":"recover_start",
//    "account":"<HMAC-SHA256(key, id), first 16 bytes, hex>",
//    "outcome":"proceed","attempts_remaining":9}
// Accounts are pseudonymous: lines for one account link together, but the
// id can't be read back without the key. Thread-safe.
class FileAuditLog final : public AuditLog {
 public:
  static absl::StatusOr<std::unique_ptr<FileAuditLog>> Open(
      const std::string& path, SecretBytes account_key);
  ~FileAuditLog() override;

  absl::Status Record(const Event& event) override;
  std::string AccountTag(absl::string_view account) const;

 private:
  FileAuditLog(std::string path, int fd, SecretBytes key)
      : path_(std::move(path)), fd_(fd), key_(std::move(key)) {}

  const std::string path_;
  absl::Mutex mu_;
  const int fd_ ABSL_GUARDED_BY(mu_);
  const SecretBytes key_;
};

}  // namespace bkv::server

#endif  // BKV_SERVER_AUDIT_LOG_H_
