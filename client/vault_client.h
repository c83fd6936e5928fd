#ifndef BKV_CLIENT_VAULT_CLIENT_H_
#define BKV_CLIENT_VAULT_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "crypto/ksf.h"
#include "crypto/opaque.h"
#include "crypto/secret_bytes.h"

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
  kInternal,
};

struct VaultError {
  VaultErrorKind kind;
  std::string message;
  uint32_t attempts_remaining = 0;
  uint32_t retry_after_ms = 0;

  // The typed view of a status returned by VaultClient.
  static VaultError From(const absl::Status& status);
};
const char* VaultErrorKindName(VaultErrorKind kind);

struct VaultOptions {
  std::string address = "127.0.0.1:50051";
  // The vault's OPAQUE public key, pinned: a vault presenting another key is
  // refused (registration) or indistinguishable from a wrong password.
  opaque::Element server_public_key{};
  std::string opaque_context = "bkv OPAQUE v1";
  // OPAQUE identities, when the vault is configured with them; unset means
  // the public keys (RFC 9807 default).
  std::optional<std::string> server_identity;
  std::optional<std::string> client_identity;
  // TLS with these roots (PEM); empty: plaintext, for loopback only.
  std::string tls_root_certs;
  bool tls = false;
  std::chrono::milliseconds timeout{30'000};
  // Argon2id parameters for new registrations.
  Argon2idParams ksf;
  // Registration refuses parameters below these (a floor against
  // misconfiguration); recovery uses whatever the record was made with,
  // up to max_ksf, so a hostile vault can't exhaust a phone.
  Argon2idParams min_ksf{2, 19'456, 1};
  Argon2idParams max_ksf{16, 1 << 20, 8};
  // Returns the current account token (the messaging service issues it).
  std::function<std::string()> account_token;
};

struct VaultStatus {
  enum class State { kNone, kActive, kLocked } state;
  uint32_t attempts_remaining;
  uint32_t attempt_limit;
};

// The vault protocol from the client side (docs/protocol.md): OPAQUE
// registration and recovery over gRPC, with the backup key wrapped under the
// export key so the vault never sees it. Failures are absl::Status values
// carrying the vault's ErrorDetail; VaultError::From types them.
// Thread-safe; one gRPC channel per client.
class VaultClient {
 public:
  static absl::StatusOr<std::unique_ptr<VaultClient>> Create(
      VaultOptions options);
  ~VaultClient();

  // Stores `backup_key` (32 bytes) for `account` behind `password`. Also how
  // a password is changed: the new registration replaces the old one only
  // once it is complete.
  absl::Status Register(const std::string& account, const SecretBytes& password,
                        const SecretBytes& backup_key);
  // Spends one attempt.
  absl::StatusOr<SecretBytes> Recover(const std::string& account,
                                      const SecretBytes& password);
  absl::StatusOr<VaultStatus> Status();
  absl::Status Delete();

 private:
  struct Impl;
  explicit VaultClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Parses a pinned public key given as 64 hex digits.
absl::StatusOr<opaque::Element> ParseServerPublicKey(const std::string& hex);

}  // namespace bkv::client

#endif  // BKV_CLIENT_VAULT_CLIENT_H_
