#ifndef BKV_CLIENT_THRESHOLD_PLAN_H_
#define BKV_CLIENT_THRESHOLD_PLAN_H_

// The recovering client's decision after the uncounted status round
// (docs/threshold.md, "The client", steps 2-4): which realms agree on which
// registration, which realms misbehaved, and whether a counted round may
// start at all. A pure function of the answers, the pinned realm set and the
// newest (epoch, commitment) this device remembers; no I/O.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/realm_set.h"
#include "crypto/threshold_descriptor.h"

namespace bkv::client {

using Commitment = std::array<uint8_t, 32>;

// A realm that misbehaved, by id, and what it did (for the user).
struct RealmFault {
  std::string realm_id;
  std::string what;
};

// One realm's ThresholdStatus answer (or why there is none).
struct StatusAnswer {
  enum class Record { kNone, kActive, kLocked };
  absl::Status error;  // not OK: the realm did not answer
  Record record = Record::kNone;
  std::string commitment;
  std::string descriptor;
  uint32_t committed_limit = 0;
  uint32_t effective_limit = 0;
  uint32_t attempts_remaining = 0;
  uint64_t epoch = 0;
  std::string pending_commitment;  // a prepared version awaiting Commit
  uint64_t pending_busy_ms = 0;    // the realm refuses another Prepare
  // Prepared longer than that realm's pending_ttl ago: replaceable there.
  bool pending_expired = false;
};

// The newest registration this device registered or recovered from.
struct Newest {
  uint64_t epoch = 0;  // 0: nothing remembered
  Commitment commitment{};
};

struct RecoveryPlan {
  threshold::Descriptor descriptor;
  Commitment commitment{};
  std::vector<size_t> group;       // positions with attempts left, ascending
  uint32_t min_remaining = 0;      // the lowest attempts_remaining of group
  std::vector<RealmFault> faults;  // found in the status round
  // What ThresholdClient::Plan's roll-forward did ("" when nothing), for the
  // user: the following Recover no longer sees it (realm3 review finding 4).
  std::string rolled_forward;
};

// Errors (all before anything is counted): kNotRegistered, kLocked,
// kRealmsDisagree, kStaleRegistration, kRealmFault (t realms agree only if
// faulty ones are counted), or the first transport error when fewer than t
// realms answered.
absl::StatusOr<RecoveryPlan> PlanRecovery(const threshold::RealmSet& set,
                                          std::span<const StatusAnswer> answers,
                                          const Newest& newest);

// "realm-a (bad proof), realm-c (did not answer)" for messages.
std::string DescribeFaults(std::span<const RealmFault> faults);

}  // namespace bkv::client

#endif  // BKV_CLIENT_THRESHOLD_PLAN_H_
