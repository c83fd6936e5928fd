#ifndef BKV_CLIENT_BACKUP_STREAM_H_
#define BKV_CLIENT_BACKUP_STREAM_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/blob_store.h"
#include "crypto/backup_format.h"
#include "crypto/backup_key.h"

namespace bkv {

// Called from a pipeline thread with bytes done so far and the expected total
// (0 when unknown). Must be cheap and thread-safe.
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

struct StreamOptions {
  // Level 1: chat databases still shrink several-fold, and incompressible
  // media costs little.
  int zstd_level = 1;
  // Blocks (~1 MiB) in flight between two stages; this bounds memory at a
  // few MiB per stage whatever the backup size.
  size_t queue_depth = 4;
  ProgressFn progress;
};

struct StreamStats {
  uint64_t input_bytes = 0;   // file bytes read, or restored
  uint64_t stored_bytes = 0;  // ciphertext bytes in the store
  // A tree's sockets, devices and fifos, not backed up (WriteTreeArchive).
  std::vector<std::string> skipped_special;
};

// Backs up `path` (a file, or a directory as a pax archive, matching
// encryptor.header().content()) into object `name` of `store`.
//
// Reading (and archiving), compressing, encrypting and uploading run on
// separate threads joined by bounded queues, so memory stays constant. The
// object becomes visible only if every stage succeeds (BlobStore::Put is
// atomic); the first error is returned and names its cause.
absl::StatusOr<StreamStats> StreamBackup(const std::string& path,
                                         BackupEncryptor encryptor,
                                         BlobStore& store,
                                         const std::string& name,
                                         const StreamOptions& options = {});

// Restores object `name` to `target`, which must not exist. Downloading,
// decrypting and decompressing/writing overlap on separate threads. Output
// goes to a temporary name in the target's directory and is renamed into place
// only after the final chunk authenticated; on any failure it is removed.
// A non-empty `expected_id` (the id the backup list gives the object) must be
// the id in the object's authenticated header, else DataLoss: the store
// swapped or rolled back the object.
absl::StatusOr<StreamStats> StreamRestore(BlobStore& store,
                                          const std::string& name,
                                          const BackupKey& key,
                                          const std::string& target,
                                          const StreamOptions& options = {},
                                          const std::string& expected_id = "");

// The content type a backup of `path` has: kTree for a directory.
absl::StatusOr<BackupContent> ContentOf(const std::string& path);

}  // namespace bkv

#endif  // BKV_CLIENT_BACKUP_STREAM_H_
