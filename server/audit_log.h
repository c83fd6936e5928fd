#ifndef BKV_SERVER_AUDIT_LOG_H_
#define BKV_SERVER_AUDIT_LOG_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "crypto/secret_bytes.h"

namespace bkv::server {

// One line per registration, attempt, success, lockout and deletion. The
// vault refuses a request whose audit line cannot be written (fail closed),
// and asks Ready() before it counts an attempt, so that a log that can't
// take the attempt's line refuses the attempt instead of losing it.
class AuditLog {
 public:
  struct Event {
    absl::string_view event;    // e.g. "recover_start"
    absl::string_view account;  // raw id; implementations must not store it
    absl::string_view outcome;  // e.g. "proceed", "invalid_login", "locked"
    int64_t attempts_remaining = -1;  // -1: not applicable
  };
  virtual ~AuditLog() = default;
  // Returns once the line is durable (or fails: kUnavailable).
  virtual absl::Status Record(const Event& event) = 0;
  // Whether the next few lines will be written: kUnavailable if not.
  virtual absl::Status Ready() = 0;
};

// JSON lines appended to a file:
//   {"ts":"2026-11-27T16:00:00.000Z","event":"recover_start",
//    "account":"<HMAC-SHA256(key, id), first 16 bytes, hex>",
//    "outcome":"proceed","attempts_remaining":9}
// Accounts are pseudonymous: lines for one account link together, but the
// id can't be read back without the key. Thread-safe.
//
// Durability: concurrent Record calls are group-committed: one leader
// writes every queued line with a single write(2) and one fdatasync, and
// each caller returns once its own line is durable. A short write is
// truncated back to the last whole line, so the file always parses. Ready()
// keeps kReserveBytes allocated past the end of the file (fallocate), so a
// disk that fills up is noticed before an attempt is counted, not after.
class FileAuditLog final : public AuditLog {
 public:
  static constexpr int64_t kReserveBytes = 64 * 1024;

  static absl::StatusOr<std::unique_ptr<FileAuditLog>> Open(
      const std::string& path, SecretBytes account_key);
  ~FileAuditLog() override;

  absl::Status Record(const Event& event) override;
  absl::Status Ready() override;
  std::string AccountTag(absl::string_view account) const;

 private:
  FileAuditLog(std::string path, int fd, SecretBytes key)
      : path_(std::move(path)), fd_(fd), key_(std::move(key)) {}
  // Appends `lines` (whole lines) and syncs; no lock held (one leader).
  absl::Status WriteAndSync(const std::string& lines);
  absl::Status Unavailable(int err, absl::string_view what) const;

  const std::string path_;
  const int fd_;
  const SecretBytes key_;

  absl::Mutex mu_;
  std::string queued_ ABSL_GUARDED_BY(mu_);  // lines of batch `filling_`
  int queued_count_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t filling_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t done_ ABSL_GUARDED_BY(mu_) = 0;  // last batch written (or failed)
  bool flushing_ ABSL_GUARDED_BY(mu_) = false;
  // Failed batches: their status and how many callers have yet to read it.
  std::map<uint64_t, std::pair<absl::Status, int>> failed_ ABSL_GUARDED_BY(mu_);
  bool healthy_ ABSL_GUARDED_BY(mu_) = true;  // the last batch was written
};

}  // namespace bkv::server

#endif  // BKV_SERVER_AUDIT_LOG_H_
