#ifndef BKV_CLIENT_BLOB_STORE_H_
#define BKV_CLIENT_BLOB_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace bkv {

// A pull stream of bytes: Read fills up to out.size() bytes and returns how
// many; 0 means the end. An error aborts whatever consumes it.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual absl::StatusOr<size_t> Read(std::span<uint8_t> out) = 0;
};

// A push stream of bytes; an error stops the producer.
using ByteSink = std::function<absl::Status(std::span<const uint8_t>)>;

struct BlobInfo {
  std::string name;
  uint64_t size = 0;
};

// Where ciphertext lives: a flat namespace of immutable objects.
//
// Contract for every implementation:
//  - Put is atomic: readers see either no object or the complete one, never a
//    partial upload, even if the source fails or the process dies midway
//    (temp name + rename/MOVE, or S3 multipart completion). An existing
//    object of the same name is replaced.
//  - Names are [A-Za-z0-9._-]{1,200} and do not start with '.'; other
//    names (`.tmp-*`, WebDAV's `tmp~*`) are the store's own temporaries and
//    never listed.
//  - Errors name the store URL (without credentials) and the object;
//    NotFound for a missing object, Unavailable for a server that cannot be
//    reached or keeps failing.
//  - Implementations are thread-compatible: one operation at a time per
//    instance; use one instance per thread for parallel transfers.
// A temporary (of a Put, or a restore's staging folder) that no process
// holds locked is left over once it was last written this long ago; the age
// covers the instant between its creation and its lock.
inline constexpr int64_t kLeftoverMinAgeS = 60;
// An S3 multipart upload cannot be locked and its start time never changes;
// no live writer keeps one open this long: a backup stopped for half its
// lock's lease (30 min, client/repo/repo_lock.h) aborts itself.
inline constexpr int64_t kS3UploadLeftoverAgeS = 2 * 3600;

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  virtual absl::Status Put(std::string_view name, ByteSource& source) = 0;
  // Put only if no object `name` exists, atomically with that test:
  // AlreadyExists, writing nothing, when one does. Unimplemented (the
  // default) where the store has no such primitive; the caller then puts
  // and reads back.
  virtual absl::Status PutIfAbsent(std::string_view name, ByteSource& source) {
    (void)name, (void)source;
    return absl::UnimplementedError("no create-only put");
  }
  virtual absl::Status Get(std::string_view name, const ByteSink& sink) = 0;
  virtual absl::StatusOr<std::vector<BlobInfo>> List() = 0;
  // Deleting a missing object is OK.
  virtual absl::Status Delete(std::string_view name) = 0;
  virtual absl::StatusOr<BlobInfo> Stat(std::string_view name) = 0;

  // The URL it was opened with, safe to print.
  virtual std::string url() const = 0;

  // The temporaries that interrupted Puts left behind (a process killed
  // with SIGKILL gets no chance to remove its own), never one a running Put
  // still writes (docs/backup-format.md, "Leftovers of interrupted runs"):
  // file `.tmp-*` no process holds locked, WebDAV `tmp~*` unmodified for
  // kLeftoverMinAgeS, S3 multipart uploads started kS3UploadLeftoverAgeS
  // ago. FindLeftovers only lists them; SweepTemporaries deletes them and
  // returns what it deleted. Unimplemented when the server cannot list them
  // (s3rver has no ListMultipartUploads). Stores without such leftovers
  // find none.
  virtual absl::StatusOr<std::vector<BlobInfo>> FindLeftovers() {
    return std::vector<BlobInfo>{};
  }
  virtual absl::StatusOr<std::vector<BlobInfo>> SweepTemporaries() {
    return std::vector<BlobInfo>{};
  }

  // What a failed or stopped Put could not remove, one line each (an S3
  // multipart upload whose abort the server refused: s3rver has no
  // AbortMultipartUpload), so a caller says so instead of claiming a clean
  // up. Thread-safe.
  virtual std::vector<std::string> FailedCleanups() { return {}; }
};

struct BlobStoreOptions {
  // S3: objects of at least this size are sent as multipart uploads, in
  // parts of this size (S3 requires >= 5 MiB except for tests' servers).
  size_t s3_part_size = 8 << 20;
  int max_attempts = 4;
  // First retry delay; doubles per attempt.
  int retry_base_delay_ms = 200;
  long connect_timeout_s = 10;
  // Abort a transfer slower than 1 byte/s for this long.
  long low_speed_timeout_s = 60;
  // Writers pass true: a file:// directory or WebDAV collection is made on
  // first use. Readers pass false: a store that is not there (a typo, a
  // vanished disk, a missing S3 bucket, which bkv never creates) is NotFound,
  // naming it, and nothing is created.
  bool create = true;
};

// Opens a store by URL:
//   file:///abs/path
//   s3://bucket[/prefix]?endpoint=http://host:port&region=us-east-1
//       credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
//       (and AWS_SESSION_TOKEN); region defaults to AWS_REGION or us-east-1
//   webdav://host[:port]/path, webdavs://...
//       credentials from BKV_WEBDAV_USER / BKV_WEBDAV_PASSWORD
// Secrets never come from the URL: a URL with user-info is rejected.
absl::StatusOr<std::unique_ptr<BlobStore>> OpenBlobStore(
    std::string_view url, const BlobStoreOptions& options = {});

// InvalidArgument unless `name` follows the naming rule above.
absl::Status ValidateBlobName(std::string_view name);

// Whole-object helpers for small objects (manifests).
absl::Status PutBytes(BlobStore& store, std::string_view name,
                      std::span<const uint8_t> bytes);
absl::StatusOr<std::vector<uint8_t>> GetBytes(BlobStore& store,
                                              std::string_view name,
                                              size_t max_size = 16 << 20);

// A ByteSource over memory.
class SpanSource final : public ByteSource {
 public:
  explicit SpanSource(std::span<const uint8_t> data) : data_(data) {}
  absl::StatusOr<size_t> Read(std::span<uint8_t> out) override;

 private:
  std::span<const uint8_t> data_;
};

}  // namespace bkv

#endif  // BKV_CLIENT_BLOB_STORE_H_
