#ifndef BKV_CLIENT_VAULT_CLIENT_H_
#define BKV_CLIENT_VAULT_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "client/vault_errors.h"
#include "crypto/ksf.h"
#include "crypto/opaque.h"
#include "crypto/secret_bytes.h"

namespace grpc {
class ChannelCredentials;
}  // namespace grpc

namespace bkv::vault::v1 {
class RegisterCommitRequest;
}  // namespace bkv::vault::v1

namespace bkv::client {

struct VaultOptions {
  std::string address = "127.0.0.1:50051";
  // Other nodes of the same vault (same pinned key, same records), tried in
  // order after `address` when a node does not answer (FailoverSafe).
  std::vector<std::string> failover_addresses;
  // The vault's OPAQUE public key, pinned: a vault presenting another key is
  // refused (registration) or indistinguishable from a wrong password.
  opaque::Element server_public_key{};
  std::string opaque_context = "bkv OPAQUE v1";
  // OPAQUE identities, when the vault is configured with them; unset means
  // the public keys (RFC 9807 default).
  std::optional<std::string> server_identity;
  std::optional<std::string> client_identity;
  // TLS with these roots (PEM; empty: the system roots). Without TLS only a
  // loopback address is accepted, unless insecure_plaintext says otherwise:
  // in plaintext the bearer token and every OPAQUE message cross the network
  // readable and alterable by anyone on the path.
  std::string tls_root_certs;
  bool tls = false;
  bool insecure_plaintext = false;
  std::chrono::milliseconds timeout{30'000};
  // Total time the SDK may spend waiting to retry calls the vault refused
  // with a retry time (rate limit, vault unavailable) and marked as not
  // counted; 0: never wait, return the refusal.
  std::chrono::milliseconds max_retry_wait{0};
  // Called before each such wait (e.g. to tell the user); may be empty.
  std::function<void(std::chrono::milliseconds wait, const VaultError& why)>
      on_wait;
  // Called before every RPC with its name ("RecoverStart", ...); for
  // tracing, and for fault injection in tests. May be empty.
  std::function<void(std::string_view rpc)> before_call;
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
  uint64_t registration_id = 0;   // the active registration; 0: none
  int64_t reset_due_unix_ms = 0;  // a requested reset; 0: none pending
};

// GetVaultInfo, as checked before any counted call.
struct VaultInfo {
  uint32_t protocol_version = 0;
  std::string opaque_context;
  std::string server_identity;
  opaque::Element server_public_key{};
  uint32_t attempt_limit = 0;
  Argon2idParams min_ksf;
  int64_t reset_delay_ms = 0;
};

struct Registration {
  uint32_t attempt_limit = 0;  // the vault's figure for the new record
  uint64_t registration_id = 0;
};

struct Recovery {
  SecretBytes backup_key;
  // Shows the vault this password was just proven (RecoverFinishResponse);
  // authorizes one Register (password change) or Delete soon after.
  std::string proof;
  uint32_t attempts_remaining = 0;  // after this (successful) attempt
};

// The vault protocol from the client side (docs/protocol.md): OPAQUE
// registration and recovery over gRPC, with the backup key wrapped under the
// export key so the vault never sees it. Failures are absl::Status values
// carrying the vault's ErrorDetail; VaultError::From (vault_errors.h) types
// them. Calls the vault refuses with a retry time are retried here, in one
// wrapper (VaultOptions::max_retry_wait); a counted call only when the vault
// marked the refusal ATTEMPT_NOT_COUNTED.
// Thread-safe; one gRPC channel per client.
class VaultClient {
 public:
  static absl::StatusOr<std::unique_ptr<VaultClient>> Create(
      VaultOptions options);
  ~VaultClient();

  // Stores `backup_key` (32 bytes) for `account` behind `password`. Also how
  // a password is changed: the new registration replaces the old one only
  // once it is complete, and replacing an ACTIVE record needs `proof` (from
  // RecoverWithProof) or a due reset. If the commit's answer is lost, the
  // vault's status tells whether this registration became the current one;
  // the error says which password is current.
  absl::StatusOr<Registration> Register(const std::string& account,
                                        const SecretBytes& password,
                                        const SecretBytes& backup_key,
                                        const std::string& proof = {});
  // Spends one attempt.
  absl::StatusOr<SecretBytes> Recover(const std::string& account,
                                      const SecretBytes& password);
  absl::StatusOr<Recovery> RecoverWithProof(const std::string& account,
                                            const SecretBytes& password);
  // Proves the old password (one attempt), then registers the same backup
  // key behind the new one.
  absl::StatusOr<Registration> ChangePassword(const std::string& account,
                                              const SecretBytes& old_password,
                                              const SecretBytes& new_password);
  absl::StatusOr<VaultStatus> Status();
  // An ACTIVE record needs `proof`, or a due reset; NONE/LOCKED need none.
  absl::Status Delete(const std::string& proof = {});
  // "Forgot password": the Unix ms time from which Register (with a new key,
  // or the user's 64-digit key) and Delete work without proof.
  absl::StatusOr<int64_t> RequestReset();
  // GetVaultInfo, checked against the options (context, server identity,
  // pinned key, protocol version) and cached; a mismatch is a kConfig error.
  absl::StatusOr<VaultInfo> CheckedInfo();

 private:
  struct Impl;
  // RegisterCommit; a lost answer is settled (see Register).
  absl::StatusOr<Registration> Commit(
      const vault::v1::RegisterCommitRequest& req, uint64_t registration_id);
  explicit VaultClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Whether `rpc` may be repeated on another node after the node it went to
// did not answer (gRPC UNAVAILABLE with no vault detail): reads and
// registration steps (which spend nothing) and RecoverFinish (its attempt
// was counted by RecoverStart; a repeat spends nothing more). Never
// RecoverStart, whose attempt may have been counted before the node went
// away, nor Delete or RequestReset; after those the next call goes to the
// next node, but the failure is returned.
bool FailoverSafe(std::string_view rpc);

// Whether a gRPC target is on this machine: unix: sockets, and ipv4:/ipv6:
// lists, dns: targets or host:port whose every host is loopback by the rule
// the vault uses too (net/loopback.h).
bool IsLoopbackAddress(std::string_view address);

// Parses a pinned public key given as 64 hex digits.
absl::StatusOr<opaque::Element> ParseServerPublicKey(const std::string& hex);

// InvalidArgument when options.ksf is below options.min_ksf in any
// parameter: a client never derives keys weaker than its floor.
absl::Status CheckKsfFloor(const VaultOptions& options);

// The channel credentials `options` ask for: TLS with the given roots, or
// plaintext (the caller has checked plaintext is allowed for each address).
std::shared_ptr<grpc::ChannelCredentials> VaultChannelCredentials(
    const VaultOptions& options);

}  // namespace bkv::client

#endif  // BKV_CLIENT_VAULT_CLIENT_H_
