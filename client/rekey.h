#ifndef BKV_CLIENT_REKEY_H_
#define BKV_CLIENT_REKEY_H_

// `bkv rekey`: a new random master key for a v2 repository, so that whoever
// kept the old one (a removed slot's holder) reads nothing written after it
// (docs/backup-format.md, "Rekey"). Every object of a v2 repository is under
// keys derived from the master key, so rekeying re-encrypts all of it: each
// snapshot, oldest first, is restored to a scratch directory and backed up
// into an empty store under the new key, keeping its source path and time
// (not its id). The new store's keyring holds one slot of the kind used to
// open the old set (same parameters) under a FRESH secret the caller made:
// a secret that opens the old keyring must never open the new one, or an
// old store copied over the new URL would still open with what the user
// holds on a device without state (review finding 1). The old store is left
// as it was.

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
// a time (removed after each). `fresh` is the new slot's secret, of the same
// type as `opened_with` (a new recovery key, a new random vault secret);
// a passkey slot is refused (no fresh PRF output without a new credential).
// `keyring_written` (optional) tells a failed rekey's caller whether `to`
// got the new keyring (so the fresh secret opens something).
absl::StatusOr<RekeyReport> Rekey(BlobStore& from,
                                  const SlotSecret& opened_with, BlobStore& to,
                                  const SlotSecret& fresh,
                                  const std::string& scratch,
                                  const std::string& state_dir,
                                  bool* keyring_written = nullptr);

// FailedPrecondition for a rekey opened with a passkey (before anything).
absl::Status RekeyablePasskeyCheck(const SlotSecret& opened_with);

}  // namespace bkv

#endif  // BKV_CLIENT_REKEY_H_
