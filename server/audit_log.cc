#include "server/audit_log.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
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
  const uint64_t mine = filling_;
  queued_ += text;
  ++queued_count_;
  // Await, not a CondVar broadcast: a waiter wakes only when its batch is
  // synced or it may lead the next one.
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return done_ >= mine || !flushing_;
  };
  while (done_ < mine) {
    if (flushing_) {
      mu_.Await(absl::Condition(&ready));
      continue;
    }
    // Leader: write the whole batch (ours included) with one write(2).
    flushing_ = true;
    std::string batch = std::move(queued_);
    queued_.clear();
    const int count = queued_count_;
    queued_count_ = 0;
    const uint64_t id = filling_++;
    mu_.Unlock();
    absl::Status s = WriteAndSync(batch);
    mu_.Lock();
    flushing_ = false;
    done_ = id;
    healthy_ = s.ok();
    if (!s.ok()) failed_[id] = {s, count};
  }
  auto it = failed_.find(mine);
  if (it == failed_.end()) return absl::OkStatus();
  absl::Status s = it->second.first;
  if (--it->second.second == 0) failed_.erase(it);
  return s;
}

absl::Status FileAuditLog::Unavailable(int err, absl::string_view what) const {
  return absl::UnavailableError(absl::StrCat(
      "audit log ", path_, ": cannot ", what, " (", std::strerror(err),
      "); the vault refuses requests until it can"));
}

absl::Status FileAuditLog::WriteAndSync(const std::string& lines) {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return Unavailable(errno, "stat");
  // O_APPEND + one write per batch of whole lines: lines never interleave.
  const ssize_t n = ::write(fd_, lines.data(), lines.size());
  if (n != static_cast<ssize_t>(lines.size())) {
    const int err = n < 0 ? errno : ENOSPC;
    // A torn line would break every reader: cut back to the last whole one.
    if (n > 0 && S_ISREG(st.st_mode) && ::ftruncate(fd_, st.st_size) != 0) {
      return Unavailable(errno, "truncate a partial line in");
    }
    return Unavailable(err, "write");
  }
  // A device or a pipe may not sync (EINVAL/EROFS): nothing to do. A regular
  // file that fails to sync (EROFS after a remount, EIO) lost the lines.
  if (::fdatasync(fd_) != 0 &&
      (S_ISREG(st.st_mode) || (errno != EINVAL && errno != EROFS))) {
    return Unavailable(errno, "sync");
  }
  return absl::OkStatus();
}

absl::Status FileAuditLog::Ready() {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return Unavailable(errno, "stat");
  if (S_ISREG(st.st_mode)) {
    // Room for the next lines, allocated now: a full disk shows here.
    if (::fallocate(fd_, FALLOC_FL_KEEP_SIZE, st.st_size, kReserveBytes) != 0 &&
        errno != EOPNOTSUPP) {
      return Unavailable(errno, "reserve space in");
    }
    return absl::OkStatus();  // room reserved: a failed line was cut back
  }
  absl::MutexLock lock(&mu_);
  if (!healthy_) return Unavailable(EIO, "write");
  return absl::OkStatus();
}

}  // namespace bkv::server
