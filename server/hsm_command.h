#ifndef BKV_SERVER_HSM_COMMAND_H_
#define BKV_SERVER_HSM_COMMAND_H_

#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "hsm/pkcs11_hsm.h"
#include "server/vault_cli.h"

namespace bkv::server {

// Token flags shared by every bkv-vault command that opens the HSM
// (`hsm init`, `hsm status`, later `serve`). The PIN is never a flag.
struct HsmFlags {
  std::string module_path;          // --module; empty: SoftHSMv2
  std::string token_label = "bkv";  // --token-label
  std::string pin_file;             // --pin-file; empty: $BKV_HSM_PIN
  std::string softhsm_dir;          // --softhsm-dir (development token)
  bool force_new_keys = false;      // --force-new-keys (hsm init only)
  bool yes = false;                 // --yes: confirms --force-new-keys
  size_t sessions = 8;              // PKCS#11 session pool (serve)
  // --data-dir: status compares the key check file; init --force-new-keys
  // checks no vault uses it.
  std::string data_dir;
  // The cloning ceremony (export-request, export, import).
  std::string so_pin_file;   // --so-pin-file; empty: $BKV_HSM_SO_PIN
  std::string out_path;      // --out
  std::string in_path;       // --in (import)
  std::string request_path;  // --request (export)
  std::string fingerprint;   // --fingerprint (export)
};

// Opens and logs in to the token the flags name. With --softhsm-dir it points
// SOFTHSM2_CONF at DIR/softhsm2.conf and reads DIR/user.pin. The PIN comes from
// --pin-file, else BKV_HSM_PIN (which is then overwritten in place and
// removed, so /proc/PID/environ no longer shows it).
absl::StatusOr<std::shared_ptr<hsm::Pkcs11Hsm>> OpenHsm(const HsmFlags& flags);

// `bkv-vault hsm init|status|export-request|export|import`: the key
// ceremony, the token's status and cloning the keys to another node's token.
void RegisterHsmCommands(VaultCli& cli);

}  // namespace bkv::server

#endif  // BKV_SERVER_HSM_COMMAND_H_
