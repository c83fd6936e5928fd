#ifndef BKV_SERVER_VAULT_H_
#define BKV_SERVER_VAULT_H_

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crypto/ksf.h"
#include "crypto/opaque.h"
#include "crypto/sealer.h"
#include "server/attempt_policy.h"
#include "server/audit_log.h"
#include "server/metrics.h"
#include "server/record_cache.h"
#include "storage/record_store.h"

namespace bkv::server {

// The vault's domain logic: OPAQUE messages in, answers out, with the
// attempt policy (attempt_policy.h) deciding and the record store, the
// sealer and the audit log plugged in. gRPC lives outside (vault_service.h);
// this class knows nothing of the wire framing or of tokens: callers pass
// an already authenticated account id.
//
// Failures carry an ErrorDetail payload (see errors.h) the service maps to
// gRPC, including what the call did to the attempt counter. Every answer
// that changes a counter is written (synced) before it is returned; no
// fault of the vault's own (storage, audit log, HSM) spends an attempt
// (docs/protocol.md). Thread-safe; per-account races resolve by
// compare-and-swap.
class Vault {
 public:
  // The OPAQUE credential identifier of one registration of an account:
  //   account id || 0x00 || registration id (u64, big endian)
  // Registration id 0 is never assigned; unknown accounts' fake answers use
  // it. Per-user OPRF keys derive from this (RFC 9807 §6.3.2.2), so no call
  // that spends no attempt evaluates the OPRF key of an active record.
  static std::vector<uint8_t> CredentialId(absl::string_view account,
                                           uint64_t registration_id);

  struct Options {
    // Attempt limit, ticket lifetimes, minimum KSF, reset delay.
    policy::Limits limits;
    // What an unknown account's RecoverStart advertises.
    Argon2idParams default_ksf;
    std::function<int64_t()> now_ms;  // defaults to the system clock
    // Set when this vault is a realm of threshold sets (docs/threshold.md):
    // its realm id (`[realm] id`) and its AKE key pair, whose public key is
    // the identity key clients pin. Unset: the Threshold* calls refuse.
    std::string realm_id;
    const opaque::ServerKeyPair* realm_keys = nullptr;
    // How long a prepared threshold version blocks a Prepare of another.
    int64_t pending_ttl_ms = 10 * 60 * 1000;
  };

  // All references must outlive the vault.
  Vault(Options options, const opaque::OpaqueServer& opaque,
        storage::RecordStore& store, const Sealer& ticket_sealer,
        AuditLog& audit, Metrics& metrics);

  // Each registration gets its own OPRF key (see CredentialId), so
  // registering is never an oracle for the key that guards the active one.
  struct RegistrationStep {
    std::vector<uint8_t> response;
    std::vector<uint8_t> registration_state;
    uint64_t registration_id = 0;
  };
  absl::StatusOr<RegistrationStep> RegisterStart(
      absl::string_view account, std::span<const uint8_t> request);

  struct LoginStep {
    std::vector<uint8_t> ke2;
    std::vector<uint8_t> login_state;
  };
  absl::StatusOr<LoginStep> RegisterFinish(
      absl::string_view account, std::span<const uint8_t> record,
      const Argon2idParams& ksf, std::span<const uint8_t> ke1,
      std::span<const uint8_t> registration_state,
      std::span<const uint8_t> proof = {});
  // Returns the attempt limit of the new registration.
  absl::StatusOr<uint32_t> RegisterCommit(absl::string_view account,
                                          std::span<const uint8_t> ke3,
                                          std::span<const uint8_t> login_state,
                                          std::span<const uint8_t> sealed_key);

  struct RecoverStep {
    LoginStep login;
    Argon2idParams ksf;
    uint32_t attempts_remaining = 0;
  };
  absl::StatusOr<RecoverStep> RecoverStart(absl::string_view account,
                                           std::span<const uint8_t> ke1);
  struct Release {
    std::vector<uint8_t> sealed_key;  // the wrapped key, under the session key
    std::vector<uint8_t> proof;       // proof of the password (10 minutes)
  };
  absl::StatusOr<Release> RecoverFinish(absl::string_view account,
                                        std::span<const uint8_t> ke3,
                                        std::span<const uint8_t> login_state);

  // ---------------------------------------------------- protocol v3 (realm)
  // docs/threshold.md, "The realm's server side". Each refuses with
  // FAILED_PRECONDITION when this vault is not a realm.
  struct ThresholdStatusView {
    policy::StatusView status;
    std::vector<uint8_t> commitment;  // the active version's; empty if none
    std::vector<uint8_t> descriptor;
    uint32_t committed_limit = 0;             // G
    uint64_t epoch = 0;                       // highest epoch prepared here
    std::vector<uint8_t> pending_commitment;  // empty if none
    int64_t pending_busy_ms = 0;   // until another Prepare may replace it
    bool pending_expired = false;  // prepared more than pending_ttl ago
  };
  absl::StatusOr<ThresholdStatusView> ThresholdStatus(
      absl::string_view account);

  struct RegisterTicket {
    std::vector<uint8_t> ticket;
    std::array<uint8_t, 32> realm_nonce{};
    uint64_t epoch = 0;
  };
  absl::StatusOr<RegisterTicket> ThresholdRegisterStart(
      absl::string_view account);
  absl::Status ThresholdRegisterPrepare(absl::string_view account,
                                        std::span<const uint8_t> ticket,
                                        std::span<const uint8_t> descriptor,
                                        std::span<const uint8_t> record,
                                        std::span<const uint8_t> payload,
                                        std::span<const uint8_t> proof = {});
  // Returns the committed G.
  absl::StatusOr<uint32_t> ThresholdRegisterCommit(
      absl::string_view account, std::span<const uint8_t> version,
      const SecretBytes& commit_secret);

  struct ThresholdStep {
    LoginStep login;
    std::array<uint8_t, 64> proof{};  // DLEQ, bound to (realm id, version)
    uint32_t attempts_remaining = 0;
  };
  absl::StatusOr<ThresholdStep> ThresholdRecoverStart(
      absl::string_view account, std::span<const uint8_t> commitment,
      absl::string_view realm_id, std::span<const uint8_t> ke1);
  // ThresholdRecoverFinish is RecoverFinish: on a realm record it releases
  // s_i || wrapped under the session key.

  absl::StatusOr<policy::StatusView> GetStatus(absl::string_view account);
  // An ACTIVE record needs `proof` or a due reset; none or LOCKED: nothing.
  absl::Status Delete(absl::string_view account,
                      std::span<const uint8_t> proof = {});
  // Returns when the reset is due (Unix ms).
  absl::StatusOr<int64_t> RequestReset(absl::string_view account);

  // The operator's purge (docs/threshold.md, "Operator purge of one
  // account"): the account's whole record, an epoch tombstone included,
  // deleted through the store, shredded, audited `purge` before and after.
  // NotFound when there is none; FailedPrecondition for a last write in the
  // future by more than `skew_ms` (clocks) or, unless `preview`, younger
  // than `quiet_ms` (a register ticket that wrote it may still be valid);
  // Aborted when the record is not at `expected_version` or changes under
  // the delete (a node still serves it). `preview`: reads and reports only.
  struct PurgeRequest {
    int64_t quiet_ms = 0;
    int64_t skew_ms = 0;
    bool preview = false;
    uint64_t expected_version = 0;  // 0: any (a preview)
  };
  struct Purged {
    std::string state;  // ACTIVE, LOCKED, PENDING or TOMBSTONE
    uint64_t epoch = 0;
    uint64_t version = 0;     // what a purge of this record expects
    int64_t updated_ms = 0;   // its last write (Unix ms, writer's clock)
    int64_t wait_ms = 0;      // until it is quiet_ms old
    absl::Status unfinished;  // a failure after the delete: the record is gone
  };
  absl::StatusOr<Purged> Purge(absl::string_view account,
                               const PurgeRequest& request);

 private:
  absl::StatusOr<std::optional<storage::v1::UserRecord>> Load(
      absl::string_view account);
  // GetStatus, and the record it was read from as stored (a tombstone
  // included; the locked one if answering locked it): one read serves both.
  struct StatusRead {
    policy::StatusView view;
    std::optional<storage::v1::UserRecord> record;
  };
  absl::StatusOr<StatusRead> ReadStatus(absl::string_view account);
  // Erases superseded copies of the account's record from disk.
  absl::Status Shred(absl::string_view account);
  // Shreds superseded versions and clears the record's shred_pending
  // marker; a failure is logged and left for the next try.
  void SettleShred(absl::string_view account);
  // A record just locked (its wrapped key erased): shred, count, audit.
  absl::Status LockedOut(absl::string_view account);
  // The registration id a valid proof names; 0 when none or expired.
  absl::StatusOr<uint64_t> ProofRegistrationId(absl::string_view account,
                                               std::span<const uint8_t> proof,
                                               int64_t now);
  // A tombstone in place of a realm record (keeps its epoch), else a delete.
  absl::Status DeleteRecord(std::string_view id,
                            const storage::v1::UserRecord& current);
  // The one counting step of both protocols: policy::RecoverStart through
  // Mutate, on records `accept` takes (others read as not registered).
  absl::StatusOr<policy::StartDecision> CountStart(
      absl::string_view account,
      absl::FunctionRef<bool(const storage::v1::UserRecord&)> accept);
  // The refusal a written start decision means (locked, wait), or OK.
  absl::Status RefuseStart(absl::string_view account,
                           const policy::StartDecision& d);
  absl::StatusOr<ThresholdStep> AnswerThresholdStart(
      absl::string_view account, const opaque::KE1& ke1,
      const policy::StartDecision& d);
  absl::Status CheckRealm() const;
  // Counted, but the KE2 never left: give the attempt back.
  absl::Status Refund(absl::string_view account, const policy::StartDecision& d,
                      absl::Status failure);
  // The counted attempt's KE2, ticket and audit line.
  absl::StatusOr<RecoverStep> AnswerStart(absl::string_view account,
                                          const opaque::KE1& ke1,
                                          const policy::StartDecision& d);
  // Both protocols' counted answer: the sealed recover ticket and the
  // audit line (`event`), durable before the KE2 leaves.
  absl::StatusOr<LoginStep> CountedLogin(absl::string_view account,
                                         const policy::StartDecision& d,
                                         opaque::ServerLoginStart& login,
                                         absl::string_view event);
  absl::StatusOr<RecoverStep> FakeStart(absl::string_view account,
                                        const opaque::KE1& ke1,
                                        const policy::StartDecision& d);
  // Acts on RecoverFinish's written decision.
  absl::StatusOr<Release> Conclude(
      absl::string_view account, const absl::StatusOr<SecretBytes>& session_key,
      const policy::FinishDecision& d);
  absl::StatusOr<Release> ReleaseKey(absl::string_view account,
                                     const SecretBytes& session_key,
                                     const policy::FinishDecision& d);
  absl::Status Audit(absl::string_view event, absl::string_view account,
                     absl::string_view outcome, int64_t attempts_remaining);

  Options options_;
  const opaque::OpaqueServer& opaque_;
  storage::RecordStore& store_;
  const Sealer& ticket_sealer_;
  AuditLog& audit_;
  Metrics& metrics_;
  RecordCache cache_;
};

}  // namespace bkv::server

#endif  // BKV_SERVER_VAULT_H_
