#ifndef BKV_CLIENT_VAULT_ERRORS_H_
#define BKV_CLIENT_VAULT_ERRORS_H_

// The client's one error contract for vault calls: a failed call's status
// (gRPC code plus the vault's ErrorDetail from the `bkv-error-detail-bin`
// trailer, kept as a payload) becomes a typed VaultError. The SDK's retry
// wrapper, the C ABI and the CLI all decide from VaultError, never from
// message text.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace bkv::client {

// What an app can act on when a vault call fails.
enum class VaultErrorKind {
  kInvalidPassword,  // wrong password; attempts_remaining says how many left
  kLocked,           // attempts used up: the key is gone for good
  kNotRegistered,    // no key is stored for this account
  kRateLimited,      // slow down; retry after retry_after_ms
  kUnauthenticated,  // the account token was refused: get a new one
  kTransient,        // network or vault trouble: retry with backoff
  kInvalidArgument,  // a bad request (a bug, or a misconfigured client)
  kConfig,           // the vault is not the one configured (GetVaultInfo)
  kProofRequired,    // replacing/deleting an active record needs the password
                     // (or a due reset)
  kExpired,          // the login took too long; a retry spends an attempt
  kInternal,
  // Threshold realms (docs/threshold.md, "The client"); client-made only.
  kRealmFault,         // a realm misbehaved; the message names its realm id
  kRealmsDisagree,     // no registration version is held by t realms
  kStaleRegistration,  // the agreeing realms are older than the newest known
  // A realm is LOCKED, lags or is silent and cannot be re-registered now
  // (the message names it and why): the set survives one failure fewer.
  kRealmDegraded,
};

// Whether the failed call spent one of the account's attempts.
enum class AttemptSpent { kNo, kYes, kUnknown };

struct VaultError {
  VaultErrorKind kind = VaultErrorKind::kInternal;
  std::string message;
  uint32_t attempts_remaining = 0;
  uint32_t retry_after_ms = 0;
  AttemptSpent attempt_spent = AttemptSpent::kUnknown;
  // Repeating the same call can neither spend another attempt nor change
  // state twice (the vault refused it before doing anything, the call never
  // counts, or it is RecoverFinish, whose attempt is already counted).
  bool retry_safe = false;
  // The failure carried the vault's ErrorDetail: the vault decided it. A
  // transient failure without one may have lost the answer to a request the
  // vault carried out.
  bool vault_answered = false;
  // The node answered "not the owner" (a quorum's endorser, or a fenced
  // owner): nothing counted, another listed node may serve the call.
  bool not_owner = false;
  // The failure came from a vault RPC (not from local checks or crypto).
  bool from_rpc = false;

  static VaultError From(const absl::Status& status);
};
const char* VaultErrorKindName(VaultErrorKind kind);

// How a call treats the attempt counter; the SDK marks every failed status
// with it so From() can tell "refused" from "may have been counted".
enum class VaultCall {
  kFree,     // spends no attempt (GetStatus, GetVaultInfo, RequestReset, ...)
  kCounted,  // RecoverStart: counts an attempt durably before answering
  kAfterCount,  // RecoverFinish: the attempt was spent by RecoverStart
};

// `status` with the call kind attached (no-op for OK).
absl::Status MarkVaultCall(absl::Status status, VaultCall call);

// A client-made status with an ErrorDetail, typed like a vault answer.
absl::Status LockedError();
absl::Status NotRegisteredError();
absl::Status ConfigError(std::string message);
// Threshold errors (kRealmFault, kRealmsDisagree, kStaleRegistration) with
// the attempt figures the client knows: `spent` whether this try counted,
// `remaining` the lowest remaining count of the agreed realms.
absl::Status ThresholdError(VaultErrorKind kind, std::string message,
                            bool spent = false, uint32_t remaining = 0);
// RecoverFinish failed without a vault answer after RecoverStart counted
// the attempt: says so, and how many remain.
absl::Status SpentAttemptError(const absl::Status& cause,
                               uint32_t attempts_remaining);

// `s` with another message: its code and payloads (the typed error, the
// call kind) kept, so a reworded error still classifies the same.
absl::Status WithMessage(const absl::Status& s, absl::string_view message);

// A failure with no answer from the vault at `address` (down, unreachable,
// DNS, TLS, timeout) worded for a person: what failed and the next step, not
// gRPC's internals. `grpc_message` only picks the wording; the code stays.
std::string DescribeTransportFailure(absl::StatusCode code,
                                     absl::string_view grpc_message,
                                     absl::string_view address);

// A message a person can act on: the vault's text plus what the failure did
// to the attempt counter.
std::string DescribeVaultError(const VaultError& e);

}  // namespace bkv::client

#endif  // BKV_CLIENT_VAULT_ERRORS_H_
