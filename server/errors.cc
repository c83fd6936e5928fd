#include "server/errors.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace bkv::server {

using vault::v1::ErrorDetail;

absl::Status WithDetail(absl::Status status, ErrorDetail::Reason reason,
                        uint32_t attempts_remaining, uint32_t retry_after_ms) {
  ErrorDetail d;
  d.set_reason(reason);
  d.set_attempts_remaining(attempts_remaining);
  d.set_retry_after_ms(retry_after_ms);
  return vault::v1::AttachErrorDetail(std::move(status), d);
}

std::optional<ErrorDetail> GetDetail(const absl::Status& status) {
  return vault::v1::ErrorDetailOf(status);
}

absl::Status WithAttempt(absl::Status status, ErrorDetail::Attempt attempt) {
  if (status.ok()) return status;
  std::optional<ErrorDetail> d = GetDetail(status);
  if (!d) {
    d.emplace();
    switch (status.code()) {
      case absl::StatusCode::kUnavailable:
      case absl::StatusCode::kResourceExhausted:
      case absl::StatusCode::kFailedPrecondition:
        d->set_reason(ErrorDetail::REASON_VAULT_UNAVAILABLE);
        status = absl::UnavailableError(status.message());
        break;
      default:
        break;
    }
  }
  if (d->attempt() == ErrorDetail::ATTEMPT_UNSPECIFIED) d->set_attempt(attempt);
  return vault::v1::AttachErrorDetail(std::move(status), *d);
}

absl::Status InvalidLogin(uint32_t attempts_remaining) {
  return WithAttempt(
      WithDetail(
          absl::PermissionDeniedError(absl::StrCat(
              "invalid password; ", attempts_remaining, " attempts remaining")),
          ErrorDetail::REASON_INVALID_LOGIN, attempts_remaining),
      ErrorDetail::ATTEMPT_SPENT);
}

absl::Status ProofRequired(absl::string_view action) {
  return WithAttempt(
      WithDetail(absl::FailedPreconditionError(absl::StrCat(
                     action,
                     " an active backup key needs proof of its password: "
                     "recover with the current password and send the proof "
                     "it returns, or request a reset (RequestReset) and "
                     "repeat once it is due (GetStatus shows when)")),
                 ErrorDetail::REASON_PROOF_REQUIRED),
      ErrorDetail::ATTEMPT_NOT_COUNTED);
}

absl::Status CheckNamedAccount(absl::string_view named,
                               absl::string_view subject) {
  if (named.empty() || named == subject) return absl::OkStatus();
  // The subject is not echoed: the message may reach logs the token's
  // holder does not read.
  return WithAttempt(
      WithDetail(absl::InvalidArgumentError(absl::StrCat(
                     "the request is for account \"", named,
                     "\" but its account token was issued for another "
                     "account: use that account's token (or the token's "
                     "account); nothing was counted")),
                 ErrorDetail::REASON_ACCOUNT_MISMATCH),
      ErrorDetail::ATTEMPT_NOT_COUNTED);
}

absl::Status Locked() {
  return WithDetail(
      absl::FailedPreconditionError(
          "locked: every attempt was used; the backup key is destroyed. "
          "Delete the record to register a new key"),
      ErrorDetail::REASON_LOCKED);
}

absl::Status NotRegistered() {
  return WithDetail(absl::NotFoundError("no backup key is registered"),
                    ErrorDetail::REASON_NOT_REGISTERED);
}

absl::Status RateLimited(uint32_t retry_after_ms) {
  return WithAttempt(
      WithDetail(absl::ResourceExhaustedError(absl::StrCat(
                     "too many requests; retry after ", retry_after_ms, " ms")),
                 ErrorDetail::REASON_RATE_LIMITED, 0, retry_after_ms),
      ErrorDetail::ATTEMPT_NOT_COUNTED);
}

}  // namespace bkv::server
