#include "client/client_state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "client/posix_file.h"
#include "crypto/hex.h"
#include "crypto/random.h"
#include "crypto/status_macros.h"

namespace bkv {

uint64_t RecallCounter(const std::string& dir, const std::string& name) {
  if (dir.empty()) return 0;
  std::ifstream in(dir + "/" + name);
  uint64_t seen = 0;
  if (!(in >> seen)) return 0;
  return seen;
}

absl::Status RememberCounter(const std::string& dir, const std::string& name,
                             uint64_t value) {
  return RememberLine(dir, name, std::to_string(value));
}

absl::Status UnderLock(const std::string& dir, const std::string& name,
                       const std::function<absl::Status()>& update) {
  if (dir.empty()) return update();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string lock = dir + "/" + name + ".lock";
  const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(errno, "open " + lock);
  if (::flock(fd, LOCK_EX) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "lock " + lock);
  }
  absl::Status s = update();
  ::close(fd);  // releases the lock
  return s;
}

absl::Status RememberMax(const std::string& dir, const std::string& name,
                         uint64_t value) {
  if (dir.empty()) return absl::OkStatus();
  return UnderLock(dir, name, [&] {
    return RecallCounter(dir, name) < value ? RememberCounter(dir, name, value)
                                            : absl::OkStatus();
  });
}

std::string RecallLine(const std::string& dir, const std::string& name) {
  if (dir.empty()) return "";
  std::ifstream in(dir + "/" + name);
  std::string line;
  std::getline(in, line);
  return line;
}

absl::Status RememberLine(const std::string& dir, const std::string& name,
                          const std::string& line) {
  if (dir.empty()) return absl::OkStatus();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = dir + "/" + name;
  // A temporary of its own (two commands may remember at once), made
  // durable before the rename, and the rename after it (review #12): a
  // crash must not leave an older value, which a rollback check would trust.
  uint8_t rnd[8];
  SystemRandom().Bytes(rnd);
  const std::string tmp = path + ".tmp-" + HexEncode(rnd);
  const std::string text = line + "\n";
  {
    BKV_ASSIGN_OR_RETURN(PosixFile file, PosixFile::Create(tmp));
    absl::Status s = file.Write(
        {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
    if (s.ok()) s = file.SyncAndClose();
    if (!s.ok()) {
      ::unlink(tmp.c_str());
      return s;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus(err, "rename " + tmp);
  }
  return SyncDir(dir);
}

absl::Status ForgetLine(const std::string& dir, const std::string& name) {
  if (dir.empty()) return absl::OkStatus();
  const std::string path = dir + "/" + name;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, "unlink " + path);
  }
  return SyncDir(dir);
}

}  // namespace bkv
