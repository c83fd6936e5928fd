#include "client/tree_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/posix_file.h"
#include "crypto/status_macros.h"

namespace bkv {
namespace {

using ArchivePtr = std::unique_ptr<struct archive, int (*)(struct archive*)>;
using EntryPtr =
    std::unique_ptr<struct archive_entry, void (*)(struct archive_entry*)>;

// The one place libarchive errors become a Status.
absl::Status ArchiveError(struct archive* a, const std::string& what) {
  const char* msg = archive_error_string(a);
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": ", msg ? msg : "libarchive error"));
}

// Errors of the disk writer: errno-carrying ones (ENOSPC, EIO, EROFS...)
// map like every other I/O error, so a full disk is exit 6, not "bad input".
absl::Status DiskError(struct archive* a, const std::string& what) {
  const int err = archive_errno(a);
  if (err > 0 && err != EINVAL && err != EILSEQ) {
    const char* msg = archive_error_string(a);
    return ErrnoStatus(err, absl::StrCat(what, " (", msg ? msg : "", ")"));
  }
  return ArchiveError(a, what);
}

// Marks a write archive failed unless disarmed, so its destructor does not
// flush a last block into a sink that already failed.
class FailUnlessDone {
 public:
  explicit FailUnlessDone(struct archive* a) : a_(a) {}
  ~FailUnlessDone() {
    if (!done_) archive_write_fail(a_);
  }
  void Done() { done_ = true; }

 private:
  struct archive* a_;
  bool done_ = false;
};

struct WriteContext {
  const ByteSink* sink;
  absl::Status status;
};

la_ssize_t WriteCallback(struct archive*, void* client, const void* buf,
                         size_t n) {
  auto* ctx = static_cast<WriteContext*>(client);
  ctx->status = (*ctx->sink)(std::span(static_cast<const uint8_t*>(buf), n));
  return ctx->status.ok() ? static_cast<la_ssize_t>(n) : -1;
}

struct ReadContext {
  ByteSource* source = nullptr;
  std::vector<uint8_t> buf = std::vector<uint8_t>(256 << 10);
  absl::Status status;
};

la_ssize_t ReadCallback(struct archive* a, void* client, const void** out) {
  auto* ctx = static_cast<ReadContext*>(client);
  auto n = ctx->source->Read(ctx->buf);
  if (!n.ok()) {
    ctx->status = n.status();
    archive_set_error(a, EIO, "source failed");
    return -1;
  }
  *out = ctx->buf.data();
  return static_cast<la_ssize_t>(*n);
}

// Safe relative name: not empty, not absolute, no "." or ".." components.
bool SafeRelative(const char* name) {
  if (name == nullptr || *name == '\0' || *name == '/') return false;
  for (absl::string_view part : absl::StrSplit(name, '/')) {
    if (part == "..") return false;
  }
  return true;
}

// Makes the restored tree durable (libarchive never fsyncs; syncfs reports
// any failed writeback on this filesystem), then gives the root its archived
// mode and time: the temporary root stays private until then.
absl::Status FinishRoot(const std::string& dir, mode_t mode,
                        const std::optional<struct timespec>& mtime) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", dir));
  absl::Status s;
  if (::syncfs(fd) != 0) {
    s = ErrnoStatus(errno, absl::StrCat("sync the restored files in ", dir));
  } else if (::fchmod(fd, mode) != 0) {
    s = ErrnoStatus(errno, absl::StrCat("chmod ", dir));
  } else if (mtime) {
    const struct timespec times[2] = {{0, UTIME_OMIT}, *mtime};
    if (::futimens(fd, times) != 0) {
      s = ErrnoStatus(errno, absl::StrCat("set the time of ", dir));
    }
  }
  if (::close(fd) != 0 && s.ok()) {
    s = ErrnoStatus(errno, absl::StrCat("close ", dir));
  }
  return s;
}

}  // namespace

uint64_t TreeSize(const std::string& root) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
      total += it->file_size(ec);
    }
  }
  return total;
}

absl::Status WriteTreeArchive(const std::string& root, const ByteSink& sink,
                              const std::function<void(uint64_t)>& on_bytes,
                              std::vector<std::string>& special) {
  // Declared before the archive: archive_write_free() may still call the
  // write callback, so the context must outlive it.
  WriteContext wctx{&sink, absl::OkStatus()};
  ArchivePtr disk(archive_read_disk_new(), archive_read_free);
  ArchivePtr out(archive_write_new(), archive_write_free);
  FailUnlessDone fail_guard(out.get());
  archive_read_disk_set_symlink_physical(disk.get());
  archive_read_disk_set_standard_lookup(disk.get());
  archive_write_set_format_pax_restricted(out.get());
  archive_write_add_filter_none(out.get());
  archive_write_set_bytes_per_block(out.get(), 1 << 20);
  archive_write_set_bytes_in_last_block(out.get(), 1);
  if (archive_write_open(out.get(), &wctx, nullptr, WriteCallback, nullptr) !=
      ARCHIVE_OK) {
    return ArchiveError(out.get(), "start archive");
  }
  if (archive_read_disk_open(disk.get(), root.c_str()) != ARCHIVE_OK) {
    return ArchiveError(disk.get(), absl::StrCat("open ", root));
  }
  std::string prefix = root;
  while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
  prefix += '/';
  std::vector<char> buf(256 << 10);
  for (;;) {
    EntryPtr entry(archive_entry_new(), archive_entry_free);
    int r = archive_read_next_header2(disk.get(), entry.get());
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      return ArchiveError(disk.get(), absl::StrCat("read tree ", root));
    }
    archive_read_disk_descend(disk.get());
    std::string path = archive_entry_pathname(entry.get());
    const mode_t type = archive_entry_filetype(entry.get());
    // The root is the entry ".": it carries the root's mode and time.
    const std::string name =
        absl::StartsWith(path, prefix) && path.size() > prefix.size()
            ? path.substr(prefix.size())
            : ".";
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
      special.push_back(name);
      continue;
    }
    archive_entry_set_pathname(entry.get(), name.c_str());
    if (archive_write_header(out.get(), entry.get()) < ARCHIVE_WARN) {
      if (!wctx.status.ok()) return wctx.status;
      return ArchiveError(out.get(), absl::StrCat("archive ", path));
    }
    if (type != AE_IFREG) continue;
    for (;;) {
      la_ssize_t n = archive_read_data(disk.get(), buf.data(), buf.size());
      if (n < 0) return ArchiveError(disk.get(), absl::StrCat("read ", path));
      if (n == 0) break;
      if (on_bytes) on_bytes(static_cast<uint64_t>(n));
      if (archive_write_data(out.get(), buf.data(), n) != n) {
        if (!wctx.status.ok()) return wctx.status;
        return ArchiveError(out.get(), absl::StrCat("archive ", path));
      }
    }
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK) {
    if (!wctx.status.ok()) return wctx.status;
    return ArchiveError(out.get(), "finish archive");
  }
  fail_guard.Done();
  return absl::OkStatus();
}

namespace {

// The root's attributes, from the entry "."; archives written before the
// root entry existed get a usual directory mode.
struct RootAttrs {
  mode_t mode = 0755;
  std::optional<struct timespec> mtime;
};

absl::Status TakeRoot(struct archive_entry* entry, RootAttrs& root) {
  if (archive_entry_filetype(entry) != AE_IFDIR) {
    return absl::InvalidArgumentError(
        "archive root entry '.' is not a directory; refusing to restore");
  }
  root.mode = archive_entry_perm(entry) & 07777;
  if (archive_entry_mtime_is_set(entry)) {
    root.mtime = {archive_entry_mtime(entry), archive_entry_mtime_nsec(entry)};
  }
  return absl::OkStatus();
}

// Refuses unsafe entries and points the entry's names into `dir`.
absl::Status PlaceEntry(struct archive_entry* entry, const std::string& dir,
                        const std::string& shown) {
  if (!SafeRelative(archive_entry_pathname(entry))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "archive entry '", shown,
        "' is absolute or leaves the target with '..'; refusing to restore"));
  }
  const mode_t type = archive_entry_filetype(entry);
  const char* link = archive_entry_hardlink(entry);
  if (link != nullptr) {
    if (!SafeRelative(link)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "archive entry '", shown, "' hard-links outside the target"));
    }
    archive_entry_set_hardlink(entry, absl::StrCat(dir, "/", link).c_str());
  } else if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
    return absl::InvalidArgumentError(absl::StrCat(
        "archive entry '", shown, "' is a special file; refusing to restore"));
  }
  archive_entry_set_pathname(entry, absl::StrCat(dir, "/", shown).c_str());
  return absl::OkStatus();
}

// Writes one entry. Every result of the disk writer must be ARCHIVE_OK: it
// reports a failed write(2) (ENOSPC) as ARCHIVE_WARN and then zero-fills.
absl::Status WriteEntry(struct archive* in, struct archive* disk,
                        struct archive_entry* entry, const ReadContext& rctx,
                        const std::string& shown) {
  if (archive_write_header(disk, entry) != ARCHIVE_OK) {
    return DiskError(disk, absl::StrCat("restore '", shown, "'"));
  }
  const void* block;
  size_t size;
  la_int64_t offset;
  for (;;) {
    const int r = archive_read_data_block(in, &block, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      if (!rctx.status.ok()) return rctx.status;
      return ArchiveError(in, absl::StrCat("read '", shown, "'"));
    }
    if (archive_write_data_block(disk, block, size, offset) != ARCHIVE_OK) {
      return DiskError(disk, absl::StrCat("write '", shown, "'"));
    }
  }
  if (archive_write_finish_entry(disk) != ARCHIVE_OK) {
    return DiskError(disk, absl::StrCat("finish '", shown, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ExtractTreeArchive(ByteSource& source, const std::string& dir) {
  ArchivePtr in(archive_read_new(), archive_read_free);
  ArchivePtr disk(archive_write_disk_new(), archive_write_free);
  archive_read_support_format_tar(in.get());
  archive_write_disk_set_options(
      disk.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                      ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                      ARCHIVE_EXTRACT_NO_OVERWRITE);
  ReadContext rctx;
  rctx.source = &source;
  RootAttrs root;
  if (archive_read_open(in.get(), &rctx, nullptr, ReadCallback, nullptr) !=
      ARCHIVE_OK) {
    if (!rctx.status.ok()) return rctx.status;
    return ArchiveError(in.get(), "read archive");
  }
  for (;;) {
    struct archive_entry* entry = nullptr;
    const int r = archive_read_next_header(in.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      if (!rctx.status.ok()) return rctx.status;
      return ArchiveError(in.get(), "read archive entry");
    }
    const char* name = archive_entry_pathname(entry);
    const std::string shown = name ? name : "";
    if (shown == "." || shown == "./") {
      // The root: applied to `dir` only after everything is written.
      BKV_RETURN_IF_ERROR(TakeRoot(entry, root));
      continue;
    }
    BKV_RETURN_IF_ERROR(PlaceEntry(entry, dir, shown));
    BKV_RETURN_IF_ERROR(WriteEntry(in.get(), disk.get(), entry, rctx, shown));
  }
  if (archive_write_close(disk.get()) != ARCHIVE_OK) {
    return DiskError(disk.get(), "finish restore");
  }
  return FinishRoot(dir, root.mode, root.mtime);
}

}  // namespace bkv
