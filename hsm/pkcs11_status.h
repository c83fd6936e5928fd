#ifndef BKV_HSM_PKCS11_STATUS_H_
#define BKV_HSM_PKCS11_STATUS_H_

#include <p11-kit/pkcs11.h>

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace bkv::hsm {

// The one place where a PKCS#11 return value becomes an absl::Status. Every
// C_* call in hsm/ whose result matters goes through CheckRv (only teardown's
// C_Logout, C_CloseSession and C_Finalize are best effort), so every failure
// names the function and the CKR_ constant, and the common operator mistakes
// read as advice:
//
//   C_Login: CKR_PIN_INCORRECT: wrong PIN; check the PIN file or BKV_HSM_PIN
//
// The CK_RV also rides along as a status payload (RvFromStatus) so callers
// and tests can branch on the exact code without parsing text.
//
// Authentication failures of CKM_AES_GCM decryption are reported by SoftHSM as
// CKR_GENERAL_ERROR and by others as CKR_ENCRYPTED_DATA_INVALID; for C_Decrypt
// both become DataLoss "authentication failed", the Sealer contract.
absl::Status CheckRv(CK_RV rv, absl::string_view function);

// "CKR_PIN_INCORRECT"; "CKR_0x..." for codes we don't name.
absl::string_view CkrName(CK_RV rv);

// The CK_RV a CheckRv status carries, if any.
std::optional<CK_RV> RvFromStatus(const absl::Status& status);

}  // namespace bkv::hsm

#endif  // BKV_HSM_PKCS11_STATUS_H_
