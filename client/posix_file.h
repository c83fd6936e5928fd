#ifndef BKV_CLIENT_POSIX_FILE_H_
#define BKV_CLIENT_POSIX_FILE_H_

#include <cstdint>
#include <span>
#include <string>

#include "absl/status/statusor.h"

namespace bkv {

// The one place errno becomes a Status: "<what>: <strerror>".
absl::Status ErrnoStatus(int err, const std::string& what);

// A file created exclusively (O_EXCL, mode 0600) for writing; closed and
// left in place by the destructor if not closed explicitly. Durable only
// after SyncAndClose().
class PosixFile {
 public:
  static absl::StatusOr<PosixFile> Create(const std::string& path);
  PosixFile(PosixFile&& o) noexcept
      : fd_(o.fd_),
        path_(std::move(o.path_)),
        written_(o.written_),
        flushed_(o.flushed_) {
    o.fd_ = -1;
  }
  PosixFile& operator=(PosixFile&&) = delete;
  ~PosixFile();

  absl::Status Write(std::span<const uint8_t> data);
  absl::Status SyncAndClose();

 private:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
  // Writeback is started every few MiB (sync_file_range), so the final
  // fsync is short and dirty pages do not pile up with the file size.
  uint64_t written_ = 0;
  uint64_t flushed_ = 0;
};

// fsync of a directory, so a rename in it is durable.
absl::Status SyncDir(const std::string& dir);

// fsync of an open file, so its data and metadata are durable; the error
// names `path`.
absl::Status SyncFd(int fd, const std::string& path);

// rename(2) that fails with AlreadyExists instead of replacing `to`.
absl::Status RenameNoReplace(const std::string& from, const std::string& to);

}  // namespace bkv

#endif  // BKV_CLIENT_POSIX_FILE_H_
