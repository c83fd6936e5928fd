#include "hsm/pkcs11_status.h"

#include <charconv>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace bkv::hsm {
namespace {

constexpr absl::string_view kRvPayload = "type.bkv.dev/pkcs11.rv";

struct RvInfo {
  CK_RV rv;
  absl::string_view name;
  absl::StatusCode code;
  absl::string_view advice;  // empty: the name says enough
};

// Codes an operator or caller can meet, with what to do about them.
constexpr RvInfo kRvTable[] = {
    {CKR_CANCEL, "CKR_CANCEL", absl::StatusCode::kCancelled, ""},
    {CKR_HOST_MEMORY, "CKR_HOST_MEMORY", absl::StatusCode::kResourceExhausted,
     "the module ran out of memory"},
    {CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID", absl::StatusCode::kNotFound,
     ""},
    {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR", absl::StatusCode::kInternal,
     "the module reported an unspecified error"},
    {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED", absl::StatusCode::kInternal,
     ""},
    {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD", absl::StatusCode::kInternal, ""},
    {CKR_CANT_LOCK, "CKR_CANT_LOCK", absl::StatusCode::kFailedPrecondition,
     "the module cannot use OS locking"},
    {CKR_ATTRIBUTE_READ_ONLY, "CKR_ATTRIBUTE_READ_ONLY",
     absl::StatusCode::kPermissionDenied, ""},
    {CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE",
     absl::StatusCode::kPermissionDenied,
     "the attribute is sensitive and cannot be read"},
    {CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID",
     absl::StatusCode::kInvalidArgument, ""},
    {CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID",
     absl::StatusCode::kInvalidArgument, ""},
    {CKR_ACTION_PROHIBITED, "CKR_ACTION_PROHIBITED",
     absl::StatusCode::kPermissionDenied, ""},
    {CKR_DATA_INVALID, "CKR_DATA_INVALID", absl::StatusCode::kInvalidArgument,
     ""},
    {CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE",
     absl::StatusCode::kInvalidArgument, ""},
    {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR", absl::StatusCode::kUnavailable,
     "the token reported a device error"},
    {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY",
     absl::StatusCode::kResourceExhausted, "the token is out of memory"},
    {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED", absl::StatusCode::kUnavailable,
     "the token was removed"},
    {CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID",
     absl::StatusCode::kDataLoss, ""},
    {CKR_ENCRYPTED_DATA_LEN_RANGE, "CKR_ENCRYPTED_DATA_LEN_RANGE",
     absl::StatusCode::kDataLoss, ""},
    {CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED",
     absl::StatusCode::kUnimplemented,
     "the module does not implement this function"},
    {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID",
     absl::StatusCode::kNotFound, "the key is gone from the token"},
    {CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE",
     absl::StatusCode::kInvalidArgument,
     "the module does not accept this key size for the mechanism"},
    {CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT",
     absl::StatusCode::kInvalidArgument, ""},
    {CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED",
     absl::StatusCode::kPermissionDenied,
     "the key's attributes forbid this use"},
    {CKR_KEY_NOT_WRAPPABLE, "CKR_KEY_NOT_WRAPPABLE",
     absl::StatusCode::kPermissionDenied, "the key cannot be wrapped"},
    {CKR_KEY_UNEXTRACTABLE, "CKR_KEY_UNEXTRACTABLE",
     absl::StatusCode::kPermissionDenied,
     "the key is non-extractable and cannot leave the token"},
    {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID",
     absl::StatusCode::kUnimplemented,
     "mechanism unsupported by this module or key"},
    {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID",
     absl::StatusCode::kUnimplemented,
     "mechanism parameters unsupported by this module"},
    {CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID",
     absl::StatusCode::kNotFound, "the object is gone from the token"},
    {CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE", absl::StatusCode::kInternal,
     ""},
    {CKR_OPERATION_NOT_INITIALIZED, "CKR_OPERATION_NOT_INITIALIZED",
     absl::StatusCode::kInternal, ""},
    {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT",
     absl::StatusCode::kPermissionDenied,
     "wrong PIN; check the PIN file or BKV_HSM_PIN (repeated failures may "
     "lock the token)"},
    {CKR_PIN_INVALID, "CKR_PIN_INVALID", absl::StatusCode::kInvalidArgument,
     "the PIN has characters the token does not accept"},
    {CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE", absl::StatusCode::kInvalidArgument,
     "the PIN is too short or too long for this token"},
    {CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED", absl::StatusCode::kFailedPrecondition,
     "the PIN has expired; set a new one with the token's tools"},
    {CKR_PIN_LOCKED, "CKR_PIN_LOCKED", absl::StatusCode::kFailedPrecondition,
     "the user PIN is locked after too many wrong attempts; the security "
     "officer must unlock or reset it"},
    {CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED", absl::StatusCode::kUnavailable,
     ""},
    {CKR_SESSION_COUNT, "CKR_SESSION_COUNT",
     absl::StatusCode::kResourceExhausted,
     "the token has no free sessions; lower the session pool size"},
    {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID",
     absl::StatusCode::kUnavailable, ""},
    {CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY",
     absl::StatusCode::kFailedPrecondition, ""},
    {CKR_SESSION_EXISTS, "CKR_SESSION_EXISTS",
     absl::StatusCode::kFailedPrecondition,
     "close other sessions on the token first"},
    {CKR_SIGNATURE_INVALID, "CKR_SIGNATURE_INVALID",
     absl::StatusCode::kDataLoss, ""},
    {CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE",
     absl::StatusCode::kInvalidArgument, ""},
    {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT",
     absl::StatusCode::kInvalidArgument, ""},
    {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT",
     absl::StatusCode::kUnavailable, "no token in the slot"},
    {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED",
     absl::StatusCode::kUnavailable, ""},
    {CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED",
     absl::StatusCode::kFailedPrecondition, "the token is write-protected"},
    {CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
     "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT", absl::StatusCode::kInvalidArgument,
     ""},
    {CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN",
     absl::StatusCode::kAlreadyExists, ""},
    {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN",
     absl::StatusCode::kUnauthenticated, "log in to the token first"},
    {CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED",
     absl::StatusCode::kFailedPrecondition,
     "the token has no user PIN yet; initialise it (bkv-vault hsm init)"},
    {CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID",
     absl::StatusCode::kInvalidArgument, ""},
    {CKR_USER_ANOTHER_ALREADY_LOGGED_IN, "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
     absl::StatusCode::kFailedPrecondition,
     "another user (e.g. the security officer) is logged in to the token"},
    {CKR_WRAPPED_KEY_INVALID, "CKR_WRAPPED_KEY_INVALID",
     absl::StatusCode::kDataLoss, "the wrapped key blob is damaged"},
    {CKR_WRAPPED_KEY_LEN_RANGE, "CKR_WRAPPED_KEY_LEN_RANGE",
     absl::StatusCode::kDataLoss, "the wrapped key blob is damaged"},
    {CKR_WRAPPING_KEY_HANDLE_INVALID, "CKR_WRAPPING_KEY_HANDLE_INVALID",
     absl::StatusCode::kNotFound, ""},
    {CKR_WRAPPING_KEY_TYPE_INCONSISTENT, "CKR_WRAPPING_KEY_TYPE_INCONSISTENT",
     absl::StatusCode::kInvalidArgument, ""},
    {CKR_RANDOM_NO_RNG, "CKR_RANDOM_NO_RNG", absl::StatusCode::kUnimplemented,
     "the token has no random number generator"},
    {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL", absl::StatusCode::kInternal,
     ""},
    {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED",
     absl::StatusCode::kFailedPrecondition, ""},
    {CKR_CRYPTOKI_ALREADY_INITIALIZED, "CKR_CRYPTOKI_ALREADY_INITIALIZED",
     absl::StatusCode::kAlreadyExists, ""},
    {CKR_FIPS_SELF_TEST_FAILED, "CKR_FIPS_SELF_TEST_FAILED",
     absl::StatusCode::kInternal, "the token failed its own self-test"},
    {CKR_PIN_TOO_WEAK, "CKR_PIN_TOO_WEAK", absl::StatusCode::kInvalidArgument,
     "the token rejects this PIN as too weak"},
    {CKR_FUNCTION_REJECTED, "CKR_FUNCTION_REJECTED",
     absl::StatusCode::kPermissionDenied, ""},
};

const RvInfo* Find(CK_RV rv) {
  for (const RvInfo& info : kRvTable) {
    if (info.rv == rv) return &info;
  }
  return nullptr;
}

bool IsGcmAuthFailure(CK_RV rv) {
  return rv == CKR_GENERAL_ERROR || rv == CKR_ENCRYPTED_DATA_INVALID ||
         rv == CKR_ENCRYPTED_DATA_LEN_RANGE;
}

}  // namespace

absl::string_view CkrName(CK_RV rv) {
  const RvInfo* info = Find(rv);
  return info != nullptr ? info->name : "CKR_(unnamed)";
}

absl::Status CheckRv(CK_RV rv, absl::string_view function) {
  if (rv == CKR_OK) return absl::OkStatus();
  const RvInfo* info = Find(rv);
  std::string name = info != nullptr ? std::string(info->name)
                                     : absl::StrCat("CKR_0x", absl::Hex(rv));
  absl::StatusCode code =
      info != nullptr ? info->code : absl::StatusCode::kInternal;
  absl::string_view advice = info != nullptr ? info->advice : "";
  if (function == "C_Decrypt" && IsGcmAuthFailure(rv)) {
    code = absl::StatusCode::kDataLoss;
    advice =
        "authentication failed: ciphertext or associated data was "
        "modified";
  }
  absl::Status status(
      code, advice.empty() ? absl::StrCat(function, ": ", name)
                           : absl::StrCat(function, ": ", name, ": ", advice));
  status.SetPayload(kRvPayload, absl::Cord(absl::StrCat(rv)));
  return status;
}

std::optional<CK_RV> RvFromStatus(const absl::Status& status) {
  auto payload = status.GetPayload(kRvPayload);
  if (!payload.has_value()) return std::nullopt;
  std::string text(*payload);
  CK_RV rv = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), rv);
  if (ec != std::errc() || end != text.data() + text.size())
    return std::nullopt;
  return rv;
}

}  // namespace bkv::hsm
