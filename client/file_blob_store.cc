#include "client/file_blob_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/posix_file.h"
#include "crypto/hex.h"
#include "crypto/random.h"

namespace bkv {

absl::StatusOr<std::unique_ptr<BlobStore>> FileBlobStore::Open(
    const std::string& url, bool create) {
  std::string dir = url.substr(std::strlen("file://"));
  if (dir.empty() || dir[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "store URL '", url, "' needs an absolute path: file:///dir"));
  }
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::error_code ec;
  if (!create && !std::filesystem::exists(dir, ec) && !ec) {
    return absl::NotFoundError(absl::StrCat(
        "store ", url, ": directory ", dir,
        " does not exist (vanished, or a disk not mounted?); nothing to read"));
  }
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir, ec)) {
    return absl::UnavailableError(
        absl::StrCat("store ", url, ": cannot create directory ", dir, ": ",
                     ec ? ec.message() : std::string("not a directory")));
  }
  return std::unique_ptr<BlobStore>(new FileBlobStore(url, dir));
}

std::string FileBlobStore::PathOf(std::string_view name) const {
  return absl::StrCat(dir_, "/", std::string(name));
}

absl::Status FileBlobStore::Put(std::string_view name, ByteSource& source) {
  return Write(name, source, /*replace=*/true);
}

absl::Status FileBlobStore::PutIfAbsent(std::string_view name,
                                        ByteSource& source) {
  return Write(name, source, /*replace=*/false);
}

absl::Status FileBlobStore::Write(std::string_view name, ByteSource& source,
                                  bool replace) {
  if (auto s = ValidateBlobName(name); !s.ok()) return s;
  uint8_t rnd[8];
  SystemRandom().Bytes(rnd);
  const std::string tmp =
      absl::StrCat(dir_, "/.tmp-", HexEncode(rnd), "-", std::string(name));
  auto file = PosixFile::Create(tmp);
  if (!file.ok()) return file.status();
  absl::Status s = [&]() -> absl::Status {
    std::vector<uint8_t> buf(1 << 20);
    for (;;) {
      auto n = source.Read(buf);
      if (!n.ok()) return n.status();
      if (*n == 0) break;
      if (auto w = file->Write({buf.data(), *n}); !w.ok()) return w;
    }
    if (auto w = file->SyncAndClose(); !w.ok()) return w;
    if (replace && std::rename(tmp.c_str(), PathOf(name).c_str()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("rename into ", PathOf(name)));
    }
    if (!replace && ::link(tmp.c_str(), PathOf(name).c_str()) != 0) {
      if (errno == EEXIST) {
        return absl::AlreadyExistsError(
            absl::StrCat(PathOf(name), " exists: nothing was written"));
      }
      return ErrnoStatus(errno, absl::StrCat("link into ", PathOf(name)));
    }
    if (!replace) ::unlink(tmp.c_str());
    return SyncDir(dir_);
  }();
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

absl::Status FileBlobStore::Get(std::string_view name, const ByteSink& sink) {
  if (auto s = ValidateBlobName(name); !s.ok()) return s;
  const std::string path = PathOf(name);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("object '", std::string(name), "' not found in ", url_));
    }
    return ErrnoStatus(errno, absl::StrCat("open ", path));
  }
  std::vector<uint8_t> buf(1 << 20);
  absl::Status s;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      s = ErrnoStatus(errno, absl::StrCat("read ", path));
      break;
    }
    if (n == 0) break;
    s = sink({buf.data(), static_cast<size_t>(n)});
    if (!s.ok()) break;
  }
  ::close(fd);
  return s;
}

absl::StatusOr<std::vector<BlobInfo>> FileBlobStore::List() {
  std::vector<BlobInfo> out;
  std::error_code ec;
  // The error_code forms throughout: an object renamed or deleted while
  // listing (another backup finishing) must not throw.
  for (auto it = std::filesystem::directory_iterator(dir_, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code entry_ec;
    if (name.empty() || name[0] == '.' || !it->is_regular_file(entry_ec)) {
      continue;
    }
    const uint64_t size = it->file_size(entry_ec);
    if (entry_ec) continue;  // gone since the directory was read
    out.push_back({name, size});
  }
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("list ", url_, ": ", ec.message()));
  }
  std::sort(out.begin(), out.end(), [](const BlobInfo& a, const BlobInfo& b) {
    return a.name < b.name;
  });
  return out;
}

// A Put's temporary is locked from its creation (PosixFile::Create) until
// it is renamed or removed; the age rule covers the instant between
// open(O_EXCL) and flock.
absl::StatusOr<std::vector<BlobInfo>> FileBlobStore::Leftovers(bool remove) {
  std::vector<BlobInfo> swept;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir_, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(".tmp-", 0) != 0) continue;
    const std::string path = it->path().string();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;  // gone: its Put finished
    struct stat st;
    const bool stale = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                       st.st_mtime + kLeftoverMinAgeS < std::time(nullptr) &&
                       ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    if (stale && (!remove || ::unlink(path.c_str()) == 0)) {
      swept.push_back({name, static_cast<uint64_t>(st.st_size)});
    }
    ::close(fd);
  }
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("list ", url_, ": ", ec.message()));
  }
  return swept;
}

absl::Status FileBlobStore::Delete(std::string_view name) {
  if (auto s = ValidateBlobName(name); !s.ok()) return s;
  if (::unlink(PathOf(name).c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("delete ", PathOf(name)));
  }
  return SyncDir(dir_);
}

absl::StatusOr<BlobInfo> FileBlobStore::Stat(std::string_view name) {
  if (auto s = ValidateBlobName(name); !s.ok()) return s;
  struct stat st;
  if (::stat(PathOf(name).c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("object '", std::string(name), "' not found in ", url_));
    }
    return ErrnoStatus(errno, absl::StrCat("stat ", PathOf(name)));
  }
  return BlobInfo{std::string(name), static_cast<uint64_t>(st.st_size)};
}

}  // namespace bkv
