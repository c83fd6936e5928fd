#ifndef BKV_HSM_SOFTHSM_DEV_H_
#define BKV_HSM_SOFTHSM_DEV_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bkv::hsm {

// A development SoftHSMv2 token kept under one directory:
//
//   DIR/softhsm2.conf   tokendir = DIR/tokens (kept if it already exists)
//   DIR/tokens/         SoftHSM's token store
//   DIR/user.pin        user PIN, mode 0600, generated once
//   DIR/so.pin          security-officer PIN, mode 0600, generated once
struct SoftHsmDevToken {
  std::string dir;
  std::string conf_path;
  std::string module_path;
  std::string user_pin_path;
  std::string so_pin_path;
  bool token_created = false;  // false: the token already existed
};

// Prepares DIR (created with mode 0700 if missing), points SOFTHSM2_CONF at
// DIR/softhsm2.conf and initialises token `label` through PKCS#11
// (C_InitToken, C_InitPIN) unless it exists. Idempotent. SOFTHSM2_CONF is read
// when the module is initialised, so call this before anything in the process
// has loaded SoftHSM. An empty `module_path` means LocateSoftHsmModule().
// Without `allow_create` nothing is made: a missing directory, configuration
// or token is FailedPrecondition naming it and saying to restore the token
// from its backup (the vault's records depend on the keys it held).
absl::StatusOr<SoftHsmDevToken> PrepareSoftHsmDir(const std::string& dir,
                                                  absl::string_view label,
                                                  std::string module_path = "",
                                                  bool allow_create = true);

}  // namespace bkv::hsm

#endif  // BKV_HSM_SOFTHSM_DEV_H_
