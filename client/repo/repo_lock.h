#ifndef BKV_CLIENT_REPO_REPO_LOCK_H_
#define BKV_CLIENT_REPO_REPO_LOCK_H_

// Repository locks: how concurrent writers stay out of each other's way
// (docs/backup-format.md, "Concurrent writers").
//
// A lock is an object "lock-<32 hex>" with a fresh random name, sealed under
// the repository key (kind "lock", AD = repo id || lock id), holding
// LockRecord. Taking one is write-then-list: the writer stores its own lock
// first, then lists the others. Of two writers that do this at once, the one
// that lists second sees the first one's lock, so a backup (shared) and a
// prune (exclusive) never both go ahead. The stores need only atomic puts
// and a list that shows completed puts, no conditional writes.
//
// Thread-compatible.

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/blob_store.h"
#include "client/repo/repo_codec.h"

namespace bkv {

class RepoLock {
 public:
  struct Params {
    bool exclusive = false;
    int64_t lease_s = 30 * 60;
    int64_t wait_s = 0;  // shared only: how long to wait for an exclusive one
  };

  // Shared: waits up to wait_s while a fresh exclusive lock exists, then
  // Unavailable. Exclusive: Unavailable at once while any other fresh lock
  // exists; stale ones (not refreshed for a lease, or of a dead process on
  // this host) are deleted.
  static absl::StatusOr<std::unique_ptr<RepoLock>> Acquire(
      BlobStore& store, const RepoKeys& keys, const ObjectId& repo,
      const Params& params);

  // Refreshes the lock when a sixth of the lease has passed; Aborted once
  // half of it passed without a refresh (a prune may have judged it stale).
  absl::Status Keep();
  // Keep would write (a sixth of the lease passed) or fail; no I/O.
  bool RefreshDue() const {
    return std::chrono::steady_clock::now() - refreshed_ >=
           std::chrono::seconds(params_.lease_s / 6);
  }
  // Proves the lock object is still in the store, then Keep(): called right
  // before a backup commits its snapshot.
  absl::Status Confirm();

  const std::string& name() const { return name_; }

  // Deletes the lock object; a failure only leaves a lock that goes stale.
  ~RepoLock();

 private:
  RepoLock(BlobStore& store, const RepoKeys& keys, const ObjectId& repo,
           const Params& params);
  absl::Status Write();
  // A description of the first lock that conflicts with ours, or "".
  absl::StatusOr<std::string> Conflict();
  absl::StatusOr<std::string> Judge(const std::string& name);

  BlobStore& store_;
  const RepoKeys& keys_;
  ObjectId repo_;
  Params params_;
  ObjectId id_{};
  std::string name_;
  bool written_ = false;
  std::chrono::steady_clock::time_point refreshed_;
};

}  // namespace bkv

#endif  // BKV_CLIENT_REPO_REPO_LOCK_H_
