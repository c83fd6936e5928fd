#ifndef BKV_CLIENT_RESTORE_STAGING_H_
#define BKV_CLIENT_RESTORE_STAGING_H_

// Where a restore (v1 stream or v2 snapshot) writes before renaming its
// result into place:
//
//   <target's folder>/.bkv-restore-XXXXXX/     mode 0700, flock'ed while the
//                     f                        restore runs; a file restore
//                     <the tree>               writes f, a tree the folder
//
// A killed restore leaves the folder with decrypted data in it; the next
// `bkv restore` next to it deletes it (SweepRestoreStaging) unless a
// running restore holds it locked.

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace bkv {

class RestoreStaging {
 public:
  // A new staging folder next to `target` (an absolute, normalized path),
  // its parents created.
  static absl::StatusOr<RestoreStaging> Create(const std::string& target);
  RestoreStaging(RestoreStaging&& other) noexcept;
  RestoreStaging& operator=(RestoreStaging&&) = delete;
  // Removes what is left in the folder (all of it unless renamed out) and
  // unlocks it.
  ~RestoreStaging();

  const std::string& dir() const { return dir_; }
  // Where a single file's restore writes.
  std::string file() const { return dir_ + "/f"; }

 private:
  RestoreStaging(std::string dir, int lock_fd);
  std::string dir_;
  int lock_fd_ = -1;
};

// Renames a finished restore `from` (inside the staging folder, every file
// already synced) to `target` without replacing anything there, then syncs
// `target`'s folder so the rename survives a crash. If that sync fails the
// rename is undone (the staging folder's destructor then removes it): a
// restore that reports an error publishes nothing.
absl::Status PublishRestore(const std::string& from, const std::string& target);

// Deletes the staging folders killed restores left next to `target`: not
// locked by a running restore and not written in the last `min_age_s`
// seconds. Returns the folders deleted.
std::vector<std::string> SweepRestoreStaging(const std::string& target,
                                             int64_t min_age_s);

}  // namespace bkv

#endif  // BKV_CLIENT_RESTORE_STAGING_H_
