#ifndef BKV_TESTS_STORAGE_TEST_UTIL_H_
#define BKV_TESTS_STORAGE_TEST_UTIL_H_

// Shared by the storage tests, the crash helper, the benchmark and the
// fuzzer: temporary directories, a fixed-key software Sealer, records of
// realistic size, and tmpfs mounts for the disk-full and read-only cases.

#include <stdlib.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bkv/storage/v1/record.pb.h"
#include "crypto/aes_gcm_sealer.h"

namespace bkv::storage::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string tmpl =
        absl::StrCat(base ? base : "/tmp", "/bkv-storage-XXXXXX");
    if (mkdtemp(tmpl.data()) == nullptr) abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const {
    return absl::StrCat(path_, "/", name);
  }

 private:
  std::string path_;
};

// Deterministic so that separate processes (the crash helper) agree. Test
// material only: never a key that protects anything.
inline std::shared_ptr<const Sealer> TestSealer(uint8_t fill = 0x42) {
  auto sealer = AesGcmSealer::Create(
      SecretBytes::Copy(std::vector<uint8_t>(AesGcmSealer::kKeySize, fill)));
  if (!sealer.ok()) abort();
  return std::make_shared<AesGcmSealer>(std::move(*sealer));
}

// A record with every field filled at its production size.
inline v1::UserRecord SampleRecord(uint32_t attempts_used = 0) {
  v1::UserRecord r;
  r.set_state(v1::RECORD_STATE_ACTIVE);
  r.set_opaque_record(std::string(192, '\x11'));
  r.set_sealed_backup_key(std::string(60, '\x22'));
  r.set_attempts_used(attempts_used);
  r.set_attempt_limit(10);
  r.mutable_ksf()->set_iterations(3);
  r.mutable_ksf()->set_memory_kib(65536);
  r.mutable_ksf()->set_parallelism(4);
  r.set_created_unix_ms(1'700'000'000'000);
  r.set_updated_unix_ms(1'700'000'000'000);
  return r;
}

// How many files under `dir` hold `needle` (shred tests: a sealed value's
// bytes must be in no file).
inline int FilesContaining(const std::string& dir, const std::string& needle) {
  int found = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir)) {
    if (!f.is_regular_file()) continue;
    std::ifstream in(f.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    if (bytes.find(needle) != std::string::npos) ++found;
  }
  return found;
}

// A size-limited tmpfs at `dir`, unmounted on destruction. Tests run as
// root, where file modes don't stop writes, so a full or read-only volume
// has to be a real one.
class TmpfsMount {
 public:
  // kPermissionDenied (callers skip) when this process may not mount.
  static absl::StatusOr<std::unique_ptr<TmpfsMount>> Create(std::string dir,
                                                            size_t bytes) {
    std::filesystem::create_directories(dir);
    std::string opts = absl::StrCat("size=", bytes);
    if (mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
      const int err = errno;
      std::string msg = absl::StrCat("mount -t tmpfs -o ", opts, " ", dir, ": ",
                                     strerror(err));
      if (err == EPERM || err == EACCES) {
        return absl::PermissionDeniedError(msg);
      }
      return absl::InternalError(msg);
    }
    return std::unique_ptr<TmpfsMount>(new TmpfsMount(std::move(dir), opts));
  }
  ~TmpfsMount() {
    if (umount2(dir_.c_str(), 0) != 0) umount2(dir_.c_str(), MNT_DETACH);
  }
  // errno text on failure (EBUSY while files are open for writing).
  absl::Status Remount(bool read_only) {
    unsigned long flags = MS_REMOUNT | (read_only ? MS_RDONLY : 0);
    if (mount("tmpfs", dir_.c_str(), "tmpfs", flags, opts_.c_str()) != 0) {
      return absl::InternalError(
          absl::StrCat("remount ", dir_, ": ", strerror(errno)));
    }
    return absl::OkStatus();
  }
  const std::string& dir() const { return dir_; }

 private:
  TmpfsMount(std::string dir, std::string opts)
      : dir_(std::move(dir)), opts_(std::move(opts)) {}
  std::string dir_, opts_;
};

}  // namespace bkv::storage::testing

#endif  // BKV_TESTS_STORAGE_TEST_UTIL_H_
