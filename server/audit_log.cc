#include "server/audit_log.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "crypto/hex.h"

namespace bkv::server {

absl::StatusOr<std::unique_ptr<FileAuditLog>> FileAuditLog::Open(
    const std::string& path, SecretBytes account_key) {
  int fd =
      ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open audit log ", path, ": ", std::strerror(errno),
                     "; fix the path or permissions ([audit] path)"));
  }
  return std::unique_ptr<FileAuditLog>(
      new FileAuditLog(path, fd, std::move(account_key)));
}

FileAuditLog::~FileAuditLog() { ::close(fd_); }

std::string FileAuditLog::AccountTag(absl::string_view account) const {
  uint8_t mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key_.Reveal().data(), key_.size());
  crypto_auth_hmacsha256_update(
      &st, reinterpret_cast<const uint8_t*>(account.data()), account.size());
  crypto_auth_hmacsha256_final(&st, mac);
  return HexEncode(std::span<const uint8_t>(mac, 16));
}

absl::Status FileAuditLog::Record(const Event& e) {
  nlohmann::json line = {
      {"ts", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                              absl::UTCTimeZone())},
      {"event", std::string(e.event)},
      {"account", AccountTag(e.account)},
      {"outcome", std::string(e.outcome)},
  };
  if (e.attempts_remaining >= 0) {
    line["attempts_remaining"] = e.attempts_remaining;
  }
  std::string text = line.dump() + "\n";
  absl::MutexLock lock(&mu_);
  // O_APPEND + one write per line: lines never interleave.
  ssize_t n = ::write(fd_, text.data(), text.size());
  if (n != static_cast<ssize_t>(text.size())) {
    const int err = n < 0 ? errno : ENOSPC;
    return absl::UnavailableError(absl::StrCat(
        "audit log ", path_, " cannot be written (", std::strerror(err),
        "); the vault refuses requests until it can"));
  }
  return absl::OkStatus();
}

}  // namespace bkv::server
