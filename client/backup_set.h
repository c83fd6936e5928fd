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
  // Of the backup just made only (not in the list): the special files left
  // out of a tree (StreamStats).
  std::vector<std::string> skipped_special;
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
// The manifest is an index, not the source of truth: every backup object is
// self-describing (its authenticated header holds its id and content type,
// its name its time and id prefix), so Repair() rebuilds the list from the
// objects, as `restic rebuild-index` does. Restore checks that the object's
// header carries the id the list gives it.
//
// Thread-compatible; one operation at a time.

// What Check() found. `problems` are one line each, naming the object.
struct CheckReport {
  enum class ListState { kOk, kMissing, kDamaged };
  ListState list = ListState::kOk;
  size_t listed = 0;    // records in the list (when readable)
  size_t objects = 0;   // backup objects in the store
  size_t verified = 0;  // listed backups whose object checked out
  std::vector<std::string> problems;
  bool clean() const { return list == ListState::kOk && problems.empty(); }
};

// What Repair() did.
struct RepairReport {
  CheckReport::ListState before = CheckReport::ListState::kOk;
  std::vector<BackupRecord> records;  // the list as written (oldest first)
  size_t added = 0;                   // objects the old list lacked
  size_t dropped = 0;                 // old records without a valid object
  std::vector<std::string> skipped;   // objects left out, and why
  bool rewritten = false;
};

class BackupSet {
 public:
  static constexpr char kManifestName[] = "latest";

  BackupSet(BlobStore& store, const BackupKey& key);

  // Oldest first; empty when the store holds neither a manifest nor backup
  // objects. A wrong key fails with PermissionDenied; a damaged manifest, or
  // a missing one while backup objects exist, with DataLoss advising
  // `bkv repair`.
  absl::StatusOr<std::vector<BackupRecord>> List();

  // Verifies the list against the objects: every listed object exists and
  // its authenticated header carries the listed id (all its chunks too with
  // `read_data`); every backup object is listed. Errors only when the store
  // itself cannot be read.
  absl::StatusOr<CheckReport> Check(bool read_data);

  // Rebuilds the list from the backup objects whose headers authenticate
  // under the key (keeping the sizes the old list knew), and writes it if it
  // differs. Never deletes an object.
  absl::StatusOr<RepairReport> Repair();

  absl::StatusOr<BackupRecord> Backup(const std::string& path,
                                      const BackupOptions& options);

  // `id` is a backup id or a unique prefix of one; empty means the newest.
  absl::StatusOr<BackupRecord> Restore(const std::string& id,
                                       const std::string& target,
                                       const StreamOptions& options = {});

 private:
  absl::Status WriteManifest(const std::vector<BackupRecord>& records);
  // The manifest's records, or NotFound / DataLoss (it does not open or
  // decode) without any diagnosis.
  absl::StatusOr<std::vector<BackupRecord>> ReadManifest();
  absl::Status ExplainUnreadableManifest();
  // Verifies each listed object against its record; findings go to `rep`.
  absl::Status CheckListed(const std::vector<BackupRecord>& listed,
                           bool read_data, CheckReport& rep);
  // Reads the header of every backup object in the store.
  struct ObjectScan {
    std::vector<BackupRecord> records;  // authentic, oldest first
    std::vector<std::string> skipped;   // "<object>: <why>"
    size_t wrong_key = 0;               // objects under another key
  };
  absl::StatusOr<ObjectScan> ScanObjects();
  // The listed backup matching `id` (a prefix; empty = newest).
  absl::StatusOr<BackupRecord> Choose(const std::vector<BackupRecord>& records,
                                      const std::string& id);

  BlobStore& store_;
  BackupKey key_;
};

// True for backup object names: backup-<YYYYMMDDTHHMMSS.mmmZ>-<16 hex>.bkv
// (or the older backup-<YYYYMMDDTHHMMSSZ>-<16 hex>.bkv).
bool IsBackupObjectName(std::string_view name);

// The manifest codec, exposed for tests and fuzzing.
std::string EncodeManifest(const std::vector<BackupRecord>& records);
absl::StatusOr<std::vector<BackupRecord>> DecodeManifest(std::string_view text);

}  // namespace bkv

#endif  // BKV_CLIENT_BACKUP_SET_H_
