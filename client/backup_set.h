#ifndef BKV_CLIENT_BACKUP_SET_H_
#define BKV_CLIENT_BACKUP_SET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/backup_stream.h"
#include "client/blob_store.h"
#include "crypto/backup_key.h"

namespace bkv {

struct BackupRecord {
  std::string id;      // 32 hex digits, the header's backup id
  std::string object;  // object name in the store
  int64_t created_unix = 0;
  BackupContent content = BackupContent::kFile;
  uint64_t input_bytes = 0;
  uint64_t stored_bytes = 0;
};

struct BackupOptions {
  uint32_t chunk_size = 64 * 1024;
  bool compress = true;
  // After a successful backup keep this many newest backups; 0 keeps all.
  size_t keep = 0;
  StreamOptions stream;
};

// A set of backups under one key in one store.
//
// Each backup is one object "backup-<UTC time>-<id prefix>.bkv". The manifest
// object "latest" lists them (oldest first) and is sealed with AES-256-GCM
// under HKDF-SHA512(backup key, "bkv manifest v1"), so the store learns
// nothing but sizes. The manifest is replaced only after the new backup
// object is complete, and old backups are pruned only after that: an
// interrupted backup never damages the previous one.
//
//   manifest plaintext (text, one record per line)
//     bkv-manifest 1
//     <id> <object> <created unix> <content 0|1> <input bytes> <stored bytes>
//
// Thread-compatible; one operation at a time.
class BackupSet {
 public:
  static constexpr char kManifestName[] = "latest";

  BackupSet(BlobStore& store, const BackupKey& key);

  // Oldest first; empty when the store holds no manifest yet. A wrong key
  // fails with PermissionDenied.
  absl::StatusOr<std::vector<BackupRecord>> List();

  absl::StatusOr<BackupRecord> Backup(const std::string& path,
                                      const BackupOptions& options);

  // `id` is a backup id or a unique prefix of one; empty means the newest.
  absl::StatusOr<BackupRecord> Restore(const std::string& id,
                                       const std::string& target,
                                       const StreamOptions& options = {});

 private:
  absl::Status WriteManifest(const std::vector<BackupRecord>& records);

  BlobStore& store_;
  BackupKey key_;
};

// The manifest codec, exposed for tests and fuzzing.
std::string EncodeManifest(const std::vector<BackupRecord>& records);
absl::StatusOr<std::vector<BackupRecord>> DecodeManifest(std::string_view text);

}  // namespace bkv

#endif  // BKV_CLIENT_BACKUP_SET_H_
