#include "client/c_status.h"

#include <utility>

#include "client/cancel.h"

namespace bkv {

const char* StatusName(bkv_status status) {
  switch (status) {
    case BKV_OK:
      return "OK";
    case BKV_INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case BKV_WRONG_KEY:
      return "WRONG_KEY";
    case BKV_CORRUPTED:
      return "CORRUPTED";
    case BKV_NOT_FOUND:
      return "NOT_FOUND";
    case BKV_UNAVAILABLE:
      return "UNAVAILABLE";
    case BKV_ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case BKV_UNSUPPORTED:
      return "UNSUPPORTED";
    case BKV_INTERNAL:
      return "INTERNAL";
    case BKV_VAULT_INVALID_PASSWORD:
      return "VAULT_INVALID_PASSWORD";
    case BKV_VAULT_LOCKED:
      return "VAULT_LOCKED";
    case BKV_VAULT_NOT_REGISTERED:
      return "VAULT_NOT_REGISTERED";
    case BKV_VAULT_RATE_LIMITED:
      return "VAULT_RATE_LIMITED";
    case BKV_VAULT_UNAUTHENTICATED:
      return "VAULT_UNAUTHENTICATED";
    case BKV_VAULT_CONFIG:
      return "VAULT_CONFIG";
    case BKV_VAULT_PROOF_REQUIRED:
      return "VAULT_PROOF_REQUIRED";
    case BKV_CANCELLED:
      return "CANCELLED";
    case BKV_VAULT_REALM_FAULT:
      return "VAULT_REALM_FAULT";
    case BKV_VAULT_REALMS_DISAGREE:
      return "VAULT_REALMS_DISAGREE";
    case BKV_VAULT_STALE:
      return "VAULT_STALE";
    case BKV_VAULT_REALM_DEGRADED:
      return "VAULT_REALM_DEGRADED";
    case BKV_VAULT_PASSWORD_CHANGED_DEGRADED:
      return "VAULT_PASSWORD_CHANGED_DEGRADED";
    case BKV_VAULT_PASSWORD_CHANGE_UNKNOWN:
      return "VAULT_PASSWORD_CHANGE_UNKNOWN";
  }
  return "UNKNOWN";
}

bkv_status StatusToC(const absl::Status& s) {
  if (s.ok()) return BKV_OK;
  if (IsCancelledByApp(s)) return BKV_CANCELLED;
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return BKV_INVALID_ARGUMENT;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return BKV_WRONG_KEY;
    case absl::StatusCode::kDataLoss:
      return BKV_CORRUPTED;
    case absl::StatusCode::kNotFound:
      return BKV_NOT_FOUND;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
      return BKV_UNAVAILABLE;
    case absl::StatusCode::kAlreadyExists:
      return BKV_ALREADY_EXISTS;
    case absl::StatusCode::kUnimplemented:
      return BKV_UNSUPPORTED;
    default:
      return BKV_INTERNAL;
  }
}

absl::Status StatusFromC(bkv_status code, std::string message) {
  switch (code) {
    case BKV_OK:
      return absl::OkStatus();
    case BKV_CANCELLED:
      return CancelledByApp(message);
    case BKV_INVALID_ARGUMENT:
      return absl::InvalidArgumentError(std::move(message));
    case BKV_CORRUPTED:
      return absl::DataLossError(std::move(message));
    case BKV_NOT_FOUND:
      return absl::NotFoundError(std::move(message));
    case BKV_UNAVAILABLE:
      return absl::UnavailableError(std::move(message));
    case BKV_ALREADY_EXISTS:
      return absl::AlreadyExistsError(std::move(message));
    case BKV_UNSUPPORTED:
      return absl::UnimplementedError(std::move(message));
    default:
      return absl::InternalError(std::move(message));
  }
}

}  // namespace bkv
