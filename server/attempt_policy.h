#ifndef BKV_SERVER_ATTEMPT_POLICY_H_
#define BKV_SERVER_ATTEMPT_POLICY_H_

// The vault's decisions as pure functions: a stored record (or none) and a
// request in, the answer and the record to write out. No I/O, no clock, no
// crypto, so every path is tested exhaustively (tests/server/).
//
// Lifecycle of a record:
//
//   (none) --RegisterFinish--> PENDING --RegisterCommit--> ACTIVE
//   ACTIVE --RegisterFinish--> ACTIVE + pending registration (the active
//          one, its key and its counter are untouched until a commit)
//   ACTIVE --RecoverStart--> attempts_used + 1, login opened (written and
//          synced before KE2 leaves)
//   ACTIVE --RecoverFinish ok--> attempts_used = 0, open logins cleared
//   ACTIVE --RecoverFinish bad--> login closed; at the limit: LOCKED
//   ACTIVE, attempts used up and no login still open --> LOCKED
//   LOCKED: the wrapped key is erased; every recovery says locked.
//
// A login is identified by (registration_id, seq). Seqs are unique within
// a registration and a login can finish once, within its expiry.

#include <cstdint>
#include <optional>
#include <string>

#include "bkv/storage/v1/record.pb.h"

namespace bkv::server::policy {

using storage::v1::UserRecord;

struct Limits {
  uint32_t attempt_limit = 10;
  int64_t login_ttl_ms = 60'000;
};

// ---------------------------------------------------------------- status

enum class Status { kNone, kActive, kLocked };

struct StatusView {
  Status status;
  uint32_t attempts_remaining = 0;
  uint32_t attempt_limit = 0;
  // Set when the record must change even to answer (an expired final
  // attempt turns into a lock).
  std::optional<UserRecord> write;
};

StatusView GetStatus(const std::optional<UserRecord>& current, int64_t now_ms);

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
                             bool ke3_valid, int64_t now_ms);

// ---------------------------------------------------------------- registration

enum class RegisterOutcome {
  kProceed,
  kLocked,        // a locked record must be deleted before registering anew
  kStale,         // commit without a matching pending registration
  kInvalidProof,  // the client's KE3 against its own new record failed
};

struct RegisterDecision {
  RegisterOutcome outcome;
  std::optional<UserRecord> next;
  uint64_t pending_registration_id = 0;
  int64_t expires_ms = 0;
};

// `new_registration_id` is a fresh random id chosen by the caller.
RegisterDecision RegisterFinish(const std::optional<UserRecord>& current,
                                const std::string& opaque_record,
                                const storage::v1::KsfParams& ksf,
                                uint64_t new_registration_id, int64_t now_ms,
                                const Limits& limits);

RegisterDecision RegisterCommit(const std::optional<UserRecord>& current,
                                uint64_t pending_registration_id,
                                bool ke3_valid, const std::string& wrapped_key,
                                int64_t now_ms, const Limits& limits);

}  // namespace bkv::server::policy

#endif  // BKV_SERVER_ATTEMPT_POLICY_H_
