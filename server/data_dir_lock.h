#ifndef BKV_SERVER_DATA_DIR_LOCK_H_
#define BKV_SERVER_DATA_DIR_LOCK_H_

#include <string>

#include "absl/status/statusor.h"

namespace bkv::server {

// An exclusive advisory lock on <data_dir>/serve.lock, held by `bkv-vault
// serve` for its lifetime and by destructive commands (`hsm init
// --force-new-keys`) while they run, so neither acts under the other. The
// kernel drops it when the holder exits, even on SIGKILL.
class DataDirLock {
 public:
  // Unavailable naming the holder's pid when another process holds it
  // (`account purge` tells it from other failures by that code);
  // FailedPrecondition when it cannot be opened: the directory must exist.
  static absl::StatusOr<DataDirLock> Acquire(const std::string& data_dir);

  DataDirLock(DataDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  DataDirLock& operator=(DataDirLock&&) = delete;
  DataDirLock(const DataDirLock&) = delete;
  ~DataDirLock();

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace bkv::server

#endif  // BKV_SERVER_DATA_DIR_LOCK_H_
