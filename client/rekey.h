#ifndef BKV_CLIENT_REKEY_H_
#define BKV_CLIENT_REKEY_H_

// `bkv rekey`: a new random master key for a v2 repository, so that whoever
// kept the old one (a removed slot's holder) reads nothing written after it
// (docs/backup-format.md, "Rekey"). Every object of a v2 repository is under
// keys derived from the master key, so rekeying re-encrypts all of it: each
// snapshot, oldest first, is restored to a scratch directory and backed up
// into an empty store under the new key, keeping its source path and time
// (not its id). The new store's keyring holds one slot: the one used to open
// the old set, re-wrapped. The old store is left as it was.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/blob_store.h"
#include "client/key_slots.h"

namespace bkv {

struct RekeyReport {
  size_t snapshots = 0;
  KeySlot kept;                   // in the new store
  std::vector<SlotInfo> dropped;  // the old set's other slots
};

// `to` must be empty; `scratch` is a private directory for one snapshot at
// a time (removed after each).
absl::StatusOr<RekeyReport> Rekey(BlobStore& from,
                                  const SlotSecret& opened_with, BlobStore& to,
                                  const std::string& scratch,
                                  const std::string& state_dir);

}  // namespace bkv

#endif  // BKV_CLIENT_REKEY_H_
