#ifndef BKV_SERVER_LOGIN_TICKET_H_
#define BKV_SERVER_LOGIN_TICKET_H_

// The state a vault node needs between a Start and its Finish, handed to the
// client sealed instead of kept in memory, so any node can finish what
// another started.
//
// Plaintext (190 bytes), sealed with the vault's ticket Sealer
// (EpochTicketSealer, ticket_sealer.h: a key the HSM derives hourly):
//   +---------+---------+-------+-----------------+-----------+-------------+
//   | version | purpose | flags | registration_id | login_seq | expires_ms  |
//   | 1 (=2)  | 1       | 1     | u64 BE          | u64 BE    | i64 BE      |
//   +---------+---------+-------+-----------------+-----------+-------------+
//   | binding (32): registration: hash of the pending record; else zeros  |
//   +---------------------------------------------------------------------+
//   | server login state: expected_client_mac (64) || session_key (64)    |
//   +---------------------------------------------------------------------+
// Associated data: "bkv-vault/login-ticket/v1" || 0x00 || account id.
// flags bit 0: fake (an unknown account's login; it can never finish).
// purpose: 1 = registration, 2 = recovery, 3 = registration start, 4 =
// proof of the password (the last two carry an all-zero server state).
//
// Single use is enforced by the record (policy: open logins, consumed
// registration ids), not here.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crypto/sealer.h"
#include "crypto/secret_bytes.h"

namespace bkv::server {

enum class TicketPurpose : uint8_t {
  kRegister = 1,       // RegisterFinish -> RegisterCommit
  kRecover = 2,        // RecoverStart -> RecoverFinish
  kRegisterStart = 3,  // RegisterStart -> RegisterFinish (no server state)
  kProof = 4,          // RecoverFinish -> RegisterFinish / Delete
  // ThresholdRegisterStart -> ThresholdRegisterPrepare; binding = the realm
  // nonce the client's sealed payload is bound to (docs/threshold.md).
  kRealmRegister = 5,
};

inline constexpr size_t kTicketBindingSize = 32;

struct LoginTicket {
  TicketPurpose purpose = TicketPurpose::kRecover;
  bool fake = false;
  uint64_t registration_id = 0;
  uint64_t login_seq = 0;
  int64_t expires_ms = 0;
  SecretBytes server_state;  // opaque::ServerLoginState::Export()
  // kRegister: the pending record's hash; empty means all zeros.
  std::vector<uint8_t> binding;
};

// A ticket with no server state (registration start, proof).
LoginTicket StatelessTicket(TicketPurpose purpose, uint64_t registration_id,
                            int64_t expires_ms);

absl::StatusOr<std::vector<uint8_t>> SealTicket(const Sealer& sealer,
                                                absl::string_view account_id,
                                                const LoginTicket& ticket);

// kInvalidArgument ("login_state ...") when the bytes don't open for this
// account or purpose (tampered, another account's, another vault's);
// kDeadlineExceeded when it has expired.
absl::StatusOr<LoginTicket> OpenTicket(const Sealer& sealer,
                                       absl::string_view account_id,
                                       TicketPurpose purpose,
                                       std::span<const uint8_t> sealed,
                                       int64_t now_ms);

}  // namespace bkv::server

#endif  // BKV_SERVER_LOGIN_TICKET_H_
