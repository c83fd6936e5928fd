#include "client/restore_staging.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>

#include "client/posix_file.h"

namespace bkv {
namespace {

constexpr char kPrefix[] = ".bkv-restore-";

std::filesystem::path ParentOf(const std::string& target) {
  return std::filesystem::absolute(target).lexically_normal().parent_path();
}

}  // namespace

absl::StatusOr<RestoreStaging> RestoreStaging::Create(
    const std::string& target) {
  const std::filesystem::path parent = ParentOf(target);
  std::error_code mk;  // mkdtemp reports a failure
  std::filesystem::create_directories(parent, mk);
  std::string tmpl = (parent / (std::string(kPrefix) + "XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return ErrnoStatus(errno, "create a temporary directory next to " + target);
  }
  const int fd = ::open(tmpl.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) (void)::flock(fd, LOCK_EX | LOCK_NB);
  return RestoreStaging(std::move(tmpl), fd);
}

RestoreStaging::RestoreStaging(std::string dir, int lock_fd)
    : dir_(std::move(dir)), lock_fd_(lock_fd) {}

RestoreStaging::RestoreStaging(RestoreStaging&& other) noexcept
    : dir_(std::move(other.dir_)), lock_fd_(other.lock_fd_) {
  other.dir_.clear();
  other.lock_fd_ = -1;
}

RestoreStaging::~RestoreStaging() {
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

absl::Status PublishRestore(const std::string& from,
                            const std::string& target) {
  if (auto s = RenameNoReplace(from, target); !s.ok()) return s;
  absl::Status s = SyncDir(ParentOf(target).string());
  if (!s.ok()) (void)RenameNoReplace(target, from);
  return s;
}

std::vector<std::string> SweepRestoreStaging(const std::string& target,
                                             int64_t min_age_s) {
  std::vector<std::string> deleted;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(ParentOf(target), ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string path = it->path().string();
    if (it->path().filename().string().rfind(kPrefix, 0) != 0) continue;
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st;
    const bool stale = ::fstat(fd, &st) == 0 &&
                       st.st_mtime + min_age_s < std::time(nullptr) &&
                       ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    std::error_code rm;
    if (stale && std::filesystem::remove_all(path, rm) > 0 && !rm) {
      deleted.push_back(path);
    }
    ::close(fd);
  }
  return deleted;
}

}  // namespace bkv
