#include "client/vault_errors.h"

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bkv/vault/v1/error_detail.h"
#include "bkv/vault/v1/vault.pb.h"

namespace bkv::client {
namespace {

using vault::v1::ErrorDetail;

// Client-side payloads: which kind of call failed, and client-made
// configuration errors. Never sent anywhere.
constexpr char kCallUrl[] = "bkv.client/VaultCall";
constexpr char kConfigUrl[] = "bkv.client/Config";
constexpr char kThresholdUrl[] = "bkv.client/Threshold";

std::optional<ErrorDetail> Detail(const absl::Status& s) {
  return vault::v1::ErrorDetailOf(s);
}

std::optional<VaultCall> CallOf(const absl::Status& s) {
  auto payload = s.GetPayload(kCallUrl);
  if (!payload || payload->size() != 1) return std::nullopt;
  const int v = (*payload)[0] - '0';
  if (v < 0 || v > 2) return std::nullopt;
  return static_cast<VaultCall>(v);
}

absl::Status WithDetail(absl::Status s, const ErrorDetail& d) {
  return vault::v1::AttachErrorDetail(std::move(s), d);
}

VaultErrorKind KindOfReason(ErrorDetail::Reason r, bool* known) {
  *known = true;
  switch (r) {
    case ErrorDetail::REASON_INVALID_LOGIN:
      return VaultErrorKind::kInvalidPassword;
    case ErrorDetail::REASON_LOCKED:
      return VaultErrorKind::kLocked;
    case ErrorDetail::REASON_NOT_REGISTERED:
      return VaultErrorKind::kNotRegistered;
    case ErrorDetail::REASON_RATE_LIMITED:
      return VaultErrorKind::kRateLimited;
    case ErrorDetail::REASON_STATE_EXPIRED:
      return VaultErrorKind::kExpired;
    case ErrorDetail::REASON_PROOF_REQUIRED:
      return VaultErrorKind::kProofRequired;
    case ErrorDetail::REASON_VAULT_UNAVAILABLE:
    case ErrorDetail::REASON_NOT_OWNER:
    case ErrorDetail::REASON_STORAGE_ROLLED_BACK:  // until an operator acts
      return VaultErrorKind::kTransient;
    case ErrorDetail::REASON_ACCOUNT_MISMATCH:
    case ErrorDetail::REASON_REALM_MISMATCH:  // a v2 client at a realm's
                                              // account
      return VaultErrorKind::kConfig;
    default:
      *known = false;
      return VaultErrorKind::kInternal;
  }
}

VaultErrorKind KindOfCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnauthenticated:
      return VaultErrorKind::kUnauthenticated;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
      return VaultErrorKind::kTransient;
    case absl::StatusCode::kResourceExhausted:
      return VaultErrorKind::kRateLimited;
    case absl::StatusCode::kInvalidArgument:
      return VaultErrorKind::kInvalidArgument;
    case absl::StatusCode::kPermissionDenied:
      // A client-side OPAQUE failure (wrong password, or a vault that is not
      // the pinned one) carries no vault detail.
      return VaultErrorKind::kInvalidPassword;
    default:
      return VaultErrorKind::kInternal;
  }
}

// What the failure did to the counter. Only the vault's explicit
// ATTEMPT_NOT_COUNTED (or a call that never counts) says "not spent".
AttemptSpent SpentOf(const std::optional<ErrorDetail>& d,
                     std::optional<VaultCall> call, absl::StatusCode code) {
  if (d && d->attempt() == ErrorDetail::ATTEMPT_NOT_COUNTED) {
    return AttemptSpent::kNo;
  }
  if (d && d->attempt() == ErrorDetail::ATTEMPT_SPENT)
    return AttemptSpent::kYes;
  if (call == VaultCall::kFree) return AttemptSpent::kNo;
  if (call == VaultCall::kAfterCount) return AttemptSpent::kYes;
  if (d && d->reason() == ErrorDetail::REASON_INVALID_LOGIN) {
    return AttemptSpent::kYes;
  }
  // Refused at the door, before any attempt could be counted.
  if (!d && (code == absl::StatusCode::kUnauthenticated ||
             code == absl::StatusCode::kInvalidArgument ||
             code == absl::StatusCode::kUnimplemented)) {
    return AttemptSpent::kNo;
  }
  return AttemptSpent::kUnknown;
}

}  // namespace

VaultError VaultError::From(const absl::Status& status) {
  VaultError e;
  e.message = std::string(status.message());
  if (status.ok()) {
    e.attempt_spent = AttemptSpent::kNo;
    return e;
  }
  const std::optional<ErrorDetail> d = Detail(status);
  const std::optional<VaultCall> call = CallOf(status);
  e.from_rpc = call.has_value();
  bool known = false;
  e.vault_answered =
      d.has_value() && d->reason() != ErrorDetail::REASON_UNSPECIFIED;
  if (d) {
    e.not_owner = d->reason() == ErrorDetail::REASON_NOT_OWNER;
    e.attempts_remaining = d->attempts_remaining();
    e.retry_after_ms = d->retry_after_ms();
    e.kind = KindOfReason(d->reason(), &known);
  }
  if (!known) {
    e.kind = status.GetPayload(kConfigUrl) ? VaultErrorKind::kConfig
                                           : KindOfCode(status.code());
  }
  if (auto t = status.GetPayload(kThresholdUrl); t && t->size() == 1) {
    e.kind = static_cast<VaultErrorKind>((*t)[0]);
  }
  e.attempt_spent = SpentOf(d, call, status.code());
  // RecoverFinish's attempt was counted by RecoverStart: repeating the same
  // finish while the login is open spends nothing more.
  e.retry_safe = (e.attempt_spent == AttemptSpent::kNo ||
                  call == VaultCall::kAfterCount) &&
                 (e.kind == VaultErrorKind::kRateLimited ||
                  e.kind == VaultErrorKind::kTransient);
  return e;
}

const char* VaultErrorKindName(VaultErrorKind kind) {
  switch (kind) {
    case VaultErrorKind::kInvalidPassword:
      return "invalid_password";
    case VaultErrorKind::kLocked:
      return "locked";
    case VaultErrorKind::kNotRegistered:
      return "not_registered";
    case VaultErrorKind::kRateLimited:
      return "rate_limited";
    case VaultErrorKind::kUnauthenticated:
      return "unauthenticated";
    case VaultErrorKind::kTransient:
      return "transient";
    case VaultErrorKind::kInvalidArgument:
      return "invalid_argument";
    case VaultErrorKind::kConfig:
      return "config";
    case VaultErrorKind::kProofRequired:
      return "proof_required";
    case VaultErrorKind::kExpired:
      return "expired";
    case VaultErrorKind::kInternal:
      return "internal";
    case VaultErrorKind::kRealmFault:
      return "realm_fault";
    case VaultErrorKind::kRealmsDisagree:
      return "realms_disagree";
    case VaultErrorKind::kStaleRegistration:
      return "stale_registration";
    case VaultErrorKind::kRealmDegraded:
      return "realm_degraded";
  }
  return "internal";
}

std::string DescribeTransportFailure(absl::StatusCode code,
                                     absl::string_view grpc_message,
                                     absl::string_view address) {
  const std::string lower = absl::AsciiStrToLower(grpc_message);
  const auto has = [&](absl::string_view needle) {
    return absl::StrContains(lower, needle);
  };
  const std::string where = absl::StrCat("the vault at ", address);
  if (code == absl::StatusCode::kDeadlineExceeded) {
    return absl::StrCat(where,
                        " did not answer in time: it may be overloaded or the "
                        "network slow; try again later");
  }
  if (has("dns") || has("name or service not known") ||
      has("could not resolve")) {
    return absl::StrCat("the vault's address ", address,
                        " does not resolve (DNS): check --vault");
  }
  if (has("handshake") || has("ssl") || has("tls") || has("certificate")) {
    return absl::StrCat("the TLS handshake with ", where,
                        " failed: check --vault-ca (the CA that signed the "
                        "vault's certificate) and that the vault serves TLS "
                        "on that port");
  }
  if (has("connection refused")) {
    return absl::StrCat(where,
                        " refused the connection: is bkv-vault running there, "
                        "and is --vault right?");
  }
  return absl::StrCat(where,
                      " cannot be reached: check --vault and the network, then "
                      "try again");
}

absl::Status MarkVaultCall(absl::Status status, VaultCall call) {
  if (status.ok()) return status;
  status.SetPayload(kCallUrl,
                    absl::Cord(std::string(1, '0' + static_cast<int>(call))));
  return status;
}

absl::Status LockedError() {
  ErrorDetail d;
  d.set_reason(ErrorDetail::REASON_LOCKED);
  d.set_attempt(ErrorDetail::ATTEMPT_NOT_COUNTED);
  return WithDetail(
      absl::FailedPreconditionError(
          "locked: every attempt was used; the backup key is destroyed"),
      d);
}

absl::Status NotRegisteredError() {
  ErrorDetail d;
  d.set_reason(ErrorDetail::REASON_NOT_REGISTERED);
  d.set_attempt(ErrorDetail::ATTEMPT_NOT_COUNTED);
  return WithDetail(absl::NotFoundError("no backup key is registered"), d);
}

absl::Status ConfigError(std::string message) {
  absl::Status s = absl::FailedPreconditionError(std::move(message));
  s.SetPayload(kConfigUrl, absl::Cord("1"));
  return MarkVaultCall(std::move(s), VaultCall::kFree);
}

absl::Status ThresholdError(VaultErrorKind kind, std::string message,
                            bool spent, uint32_t remaining) {
  ErrorDetail d;
  d.set_attempt(spent ? ErrorDetail::ATTEMPT_SPENT
                      : ErrorDetail::ATTEMPT_NOT_COUNTED);
  d.set_attempts_remaining(remaining);
  absl::Status s = WithDetail(absl::AbortedError(std::move(message)), d);
  s.SetPayload(kThresholdUrl,
               absl::Cord(std::string(1, static_cast<char>(kind))));
  return MarkVaultCall(std::move(s),
                       spent ? VaultCall::kCounted : VaultCall::kFree);
}

absl::Status WithMessage(const absl::Status& s, absl::string_view message) {
  absl::Status out(s.code(), message);
  s.ForEachPayload([&out](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

absl::Status SpentAttemptError(const absl::Status& cause,
                               uint32_t attempts_remaining) {
  ErrorDetail d;
  if (auto vault = Detail(cause)) d = *vault;
  d.set_attempt(ErrorDetail::ATTEMPT_SPENT);
  d.set_attempts_remaining(attempts_remaining);
  absl::Status s(cause.code(),
                 absl::StrCat("the recovery was interrupted (", cause.message(),
                              "); one attempt was spent, ", attempts_remaining,
                              " remain"));
  return MarkVaultCall(WithDetail(std::move(s), d), VaultCall::kAfterCount);
}

std::string DescribeVaultError(const VaultError& e) {
  switch (e.kind) {
    case VaultErrorKind::kInvalidPassword:
      if (!e.vault_answered) return e.message;
      return absl::StrCat("wrong password; ", e.attempts_remaining,
                          " attempts remaining");
    case VaultErrorKind::kExpired:
      return absl::StrCat(e.message, "; trying again spends another attempt (",
                          e.attempts_remaining, " remain)");
    default:
      break;
  }
  if (e.from_rpc && e.attempt_spent == AttemptSpent::kUnknown &&
      (e.kind == VaultErrorKind::kTransient ||
       e.kind == VaultErrorKind::kInternal ||
       e.kind == VaultErrorKind::kRateLimited)) {
    return absl::StrCat(e.message,
                        "; the request may have reached the vault, so an "
                        "attempt may have been spent (not retried; `bkv "
                        "vault status` shows how many remain)");
  }
  return e.message;
}

}  // namespace bkv::client
