#ifndef BKV_SERVER_REALM_POLICY_H_
#define BKV_SERVER_REALM_POLICY_H_

// A realm's registration decisions (protocol v3, docs/threshold.md "The
// realm's server side") as pure functions beside attempt_policy.h: a stored
// record (a tombstone included) and a request in, the answer and the record
// to write out. Recovery needs no decisions of its own: it is the v2
// policy::RecoverStart / RecoverFinish on the realm record.
//
//   (none|tombstone|ACTIVE) --Prepare--> pending_realm set, realm_epoch :=
//        the descriptor's epoch (the active version and its counter stay)
//        (authorized by a proof, a due reset, or a proof of the version the
//        last Commit superseded until the new one is first recovered)
//   pending_realm --Commit(version, SHA-256(commit_secret))--> ACTIVE on it,
//        counter 0, limit G; the same Commit again: OK, nothing written

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "bkv/storage/v1/record.pb.h"
#include "crypto/threshold_descriptor.h"
#include "server/attempt_policy.h"

namespace bkv::server::realm_policy {

using storage::v1::RealmShare;
using storage::v1::UserRecord;

enum class PrepareOutcome {
  kProceed,
  kLocked,         // Delete first
  kStaleEpoch,     // epoch not above the account's: a replay or an old one
  kEpochTooFar,    // epoch >= 2^63 or more than 2^32 above the account's
  kProofRequired,  // replacing an ACTIVE record needs proof or a due reset
  kPendingBusy,    // another version is pending and younger than the TTL
};

struct PrepareDecision {
  PrepareOutcome outcome;
  std::optional<UserRecord> next;
  uint64_t epoch = 0;          // the account's epoch before this call
  int64_t retry_after_ms = 0;  // kPendingBusy
};

// `share`: the verified share, its epoch the descriptor's.
// `proof_registration_id`: as for policy::Authorize; a proof naming the
// record's superseded_registration_id also authorizes. A pending version it
// replaces is consumed (v2's ClearPending) and marked for shredding.
PrepareDecision Prepare(const std::optional<UserRecord>& current,
                        const RealmShare& share, uint64_t proof_registration_id,
                        int64_t now_ms, int64_t pending_ttl_ms,
                        const policy::Limits& limits);

// The epoch window (docs/threshold.md, "Epoch bound").
inline constexpr uint64_t kMaxEpoch = (uint64_t{1} << 63) - 1;
inline constexpr uint64_t kMaxEpochJump = uint64_t{1} << 32;

enum class CommitOutcome { kCommitted, kAlreadyActive, kStale, kLocked };

struct CommitDecision {
  CommitOutcome outcome;
  std::optional<UserRecord> next;
  bool superseded_active = false;
  uint32_t limit = 0;  // G of the committed version
};

// `commit_hash`: SHA-256 of the client's commit secret.
// `registration_id`: fresh, names the committed version in proofs and
// login states. The one it replaces is consumed and kept as
// superseded_registration_id.
CommitDecision Commit(const std::optional<UserRecord>& current,
                      const std::string& version,
                      const std::string& commit_hash, uint64_t registration_id,
                      int64_t now_ms, const policy::Limits& limits);

// The active descriptor of a record the codec just opened, for recovery:
// parsed without the dealing check, the seal vouching for the bytes Prepare
// checked in full (docs/threshold.md, "Recovery reads the sealed
// descriptor"); every other floor of Parse still holds. It must also agree
// with its record: SHA-256 = `commitment` (the one the request named),
// epoch = the share's (within the epoch bound), G = the share's. DataLoss
// otherwise: nothing is evaluated.
absl::StatusOr<threshold::Descriptor> StoredDescriptor(const RealmShare& share);

}  // namespace bkv::server::realm_policy

#endif  // BKV_SERVER_REALM_POLICY_H_
