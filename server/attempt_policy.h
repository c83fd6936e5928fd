#ifndef BKV_SERVER_ATTEMPT_POLICY_H_
#define BKV_SERVER_ATTEMPT_POLICY_H_

// The vault's decisions as pure functions: a stored record (or none) and a
// request in, the answer and the record to write out. No I/O, no clock, no
// crypto, so every path is tested exhaustively (tests/server/).
//
// Lifecycle of a record:
//
//   (none) --RegisterFinish--> PENDING --RegisterCommit--> ACTIVE
//   ACTIVE --RegisterFinish (authorized)--> ACTIVE + pending registration
//          (the active one, its key and its counter are untouched until a
//          commit)
//   ACTIVE --RecoverStart--> attempts_used + 1, login opened (written and
//          synced before KE2 leaves)
//   ACTIVE --RecoverFinish ok--> attempts_used = 0, open logins cleared,
//          reset request cancelled
//   ACTIVE --RecoverFinish bad--> login closed; at the limit: LOCKED
//   ACTIVE, attempts used up and no login still open --> LOCKED
//   ACTIVE --RequestReset--> reset_requested (due after the reset delay)
//   LOCKED: the wrapped key is erased; every recovery says locked.
//
// A login is identified by (registration_id, seq). Seqs are unique within
// a registration and a login can finish once, within its expiry. A
// registration id is finished at most once (docs/protocol.md).
//
// The limit that applies is min(record's limit, configured limit).

#include <cstdint>
#include <optional>
#include <string>

#include "bkv/storage/v1/record.pb.h"

namespace bkv::server::policy {

using storage::v1::UserRecord;

struct Limits {
  uint32_t attempt_limit = 10;
  int64_t login_ttl_ms = 60'000;
  // Registrations with less Argon2id memory are refused.
  uint32_t min_ksf_memory_kib = 8192;
  // RequestReset to due.
  int64_t reset_delay_ms = 7LL * 24 * 3600 * 1000;
  // Lifetime of a proof of the password (RecoverFinishResponse.proof).
  int64_t proof_ttl_ms = 10 * 60 * 1000;
};

// Consumed registration ids kept at most (a bound on the record's size).
inline constexpr int kMaxConsumedRegistrations = 8;

bool IsLocked(const std::optional<UserRecord>& r);
// `id` may never be finished again, at least until every ticket naming it
// has expired (0: nothing).
void Consume(UserRecord& r, uint64_t id, int64_t now_ms, const Limits& limits);
// Drops a pending registration (v2 or realm), consuming its id.
void ClearPending(UserRecord& r, int64_t now_ms, const Limits& limits);
// Whether this record or one it replaced held a wrapped key (ACTIVE, LOCKED,
// a pending replacement or reset): its superseded copies must be shredded.
// A first registration's PENDING record never did.
bool HeldKey(const UserRecord& r);
// min(record's limit, configured limit).
uint32_t EffectiveLimit(const UserRecord& r, const Limits& limits);
bool MeetsMinimumKsf(const storage::v1::KsfParams& ksf, const Limits& limits);
// What an unknown account's answers claim is left (as after a first try).
uint32_t UnknownAccountRemaining(const Limits& limits);

// ---------------------------------------------------------------- authority

// Whether a destructive action (replacing or deleting the record) may go
// ahead. `proof_registration_id`: the registration id named by a valid,
// unexpired proof ticket of this account, 0 when none was sent.
enum class Authority {
  kNotNeeded,      // no ACTIVE record: nothing to protect
  kProof,          // proof of the current password
  kDueReset,       // a requested reset has become due
  kProofRequired,  // neither: refuse
};
Authority Authorize(const std::optional<UserRecord>& current,
                    uint64_t proof_registration_id, int64_t now_ms,
                    const Limits& limits);
// 0 when no reset is pending.
int64_t ResetDueMs(const UserRecord& r, const Limits& limits);

// ---------------------------------------------------------------- status

enum class Status { kNone, kActive, kLocked };

struct StatusView {
  Status status;
  uint32_t attempts_remaining = 0;
  uint32_t attempt_limit = 0;
  uint64_t registration_id = 0;   // the ACTIVE one
  int64_t reset_due_unix_ms = 0;  // 0: no reset pending
  // Set when the record must change even to answer (an expired final
  // attempt turns into a lock).
  std::optional<UserRecord> write;
};

StatusView GetStatus(const std::optional<UserRecord>& current, int64_t now_ms,
                     const Limits& limits);

// ---------------------------------------------------------------- recovery

enum class StartOutcome {
  kProceed,        // write `next` (synced), then send KE2
  kLocked,         // write `next` if set; answer LOCKED
  kNotRegistered,  // answer with a fake KE2 (indistinguishable)
  // No attempts left, but the last one is still open and may succeed:
  // answer "retry after" (the login's expiry), not "locked".
  kWaitForOpenLogin,
};

struct StartDecision {
  StartOutcome outcome;
  std::optional<UserRecord> next;
  uint64_t registration_id = 0;
  uint64_t login_seq = 0;
  int64_t expires_ms = 0;
  uint32_t attempts_remaining = 0;  // after this attempt
  int64_t retry_after_ms = 0;       // kWaitForOpenLogin
};

StartDecision RecoverStart(const std::optional<UserRecord>& current,
                           int64_t now_ms, const Limits& limits);

// Undoes a counted RecoverStart whose KE2 never left the vault (the vault
// failed after counting): the login is removed and its attempt given back.
// nullopt when there is nothing to undo (finished, expired, superseded).
std::optional<UserRecord> RefundStart(const std::optional<UserRecord>& current,
                                      uint64_t registration_id,
                                      uint64_t login_seq);

enum class FinishOutcome {
  kRelease,       // KE3 verified: write `next`, release the wrapped key
  kInvalidLogin,  // wrong password: write `next`; attempts_remaining set
  kLocked,        // that was the last attempt, or the record is locked
  kStale,         // replayed, finished, expired or foreign login state
};

struct FinishDecision {
  FinishOutcome outcome;
  std::optional<UserRecord> next;
  uint32_t attempts_remaining = 0;
};

// `ke3_valid`: whether ServerFinish accepted the KE3 for this login state.
FinishDecision RecoverFinish(const std::optional<UserRecord>& current,
                             uint64_t registration_id, uint64_t login_seq,
                             bool ke3_valid, int64_t now_ms,
                             const Limits& limits);

// ---------------------------------------------------------------- registration

enum class RegisterOutcome {
  kProceed,
  kLocked,         // a locked record must be deleted before registering anew
  kStale,          // commit without a matching pending registration
  kInvalidProof,   // the client's KE3 against its own new record failed
  kReplayed,       // this registration id was already finished once
  kProofRequired,  // replacing an ACTIVE record needs proof or a due reset
  kBusy,           // too many registrations within one ticket lifetime
};

struct RegisterDecision {
  RegisterOutcome outcome;
  std::optional<UserRecord> next;
  uint64_t pending_registration_id = 0;
  int64_t expires_ms = 0;
  int64_t retry_after_ms = 0;      // kBusy
  bool superseded_active = false;  // commit replaced an ACTIVE record
};

// `registration_id`: from the caller's RegisterStart ticket.
RegisterDecision RegisterFinish(const std::optional<UserRecord>& current,
                                const std::string& opaque_record,
                                const storage::v1::KsfParams& ksf,
                                uint64_t registration_id,
                                uint64_t proof_registration_id, int64_t now_ms,
                                const Limits& limits);

// `pending_matches`: the pending slot holds exactly the record (and KSF)
// the commit ticket was issued for (the caller compares hashes).
RegisterDecision RegisterCommit(const std::optional<UserRecord>& current,
                                uint64_t pending_registration_id,
                                bool pending_matches, bool ke3_valid,
                                const std::string& wrapped_key, int64_t now_ms,
                                const Limits& limits);

// ---------------------------------------------------------------- reset,
// delete

enum class ResetOutcome { kRequested, kNotRegistered, kLocked };
struct ResetDecision {
  ResetOutcome outcome;
  std::optional<UserRecord> next;  // set when the request is new
  int64_t due_ms = 0;
};
ResetDecision RequestReset(const std::optional<UserRecord>& current,
                           int64_t now_ms, const Limits& limits);

enum class DeleteOutcome { kAbsent, kDelete, kProofRequired };
DeleteOutcome Delete(const std::optional<UserRecord>& current,
                     uint64_t proof_registration_id, int64_t now_ms,
                     const Limits& limits);

}  // namespace bkv::server::policy

#endif  // BKV_SERVER_ATTEMPT_POLICY_H_
