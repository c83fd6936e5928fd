#include "server/vault.h"

#include <openssl/rand.h>
#include <sodium.h>

#include <algorithm>
#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/key_transport.h"
#include "crypto/status_macros.h"
#include "server/errors.h"
#include "server/log.h"
#include "server/login_ticket.h"
#include "server/vault_internal.h"

namespace bkv::server {
namespace {

using namespace vault_internal;  // NOLINT: this file's own helpers
using storage::v1::UserRecord;
using vault::v1::ErrorDetail;

// What a commit ticket binds: the exact pending record and KSF.
std::vector<uint8_t> PendingRecordHash(const std::string& record,
                                       const storage::v1::KsfParams& ksf) {
  static constexpr char kLabel[] = "bkv-vault/pending-record/v1";
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, reinterpret_cast<const uint8_t*>(kLabel),
                            sizeof kLabel - 1);
  crypto_hash_sha256_update(
      &st, reinterpret_cast<const uint8_t*>(record.data()), record.size());
  for (uint32_t v : {ksf.iterations(), ksf.memory_kib(), ksf.parallelism()}) {
    const uint8_t be[4] = {
        static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
        static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    crypto_hash_sha256_update(&st, be, sizeof be);
  }
  std::vector<uint8_t> out(crypto_hash_sha256_BYTES);
  crypto_hash_sha256_final(&st, out.data());
  return out;
}

}  // namespace

Vault::Vault(Options options, const opaque::OpaqueServer& opaque,
             storage::RecordStore& store, const Sealer& ticket_sealer,
             AuditLog& audit, Metrics& metrics)
    : options_(std::move(options)),
      opaque_(opaque),
      store_(store),
      ticket_sealer_(ticket_sealer),
      audit_(audit),
      metrics_(metrics) {
  if (!options_.now_ms) {
    options_.now_ms = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
}

absl::StatusOr<std::optional<UserRecord>> Vault::Load(
    absl::string_view account) {
  auto r = store_.Get(std::string_view(account.data(), account.size()));
  if (absl::IsNotFound(r.status())) return std::nullopt;
  if (!r.ok()) return r.status();
  if (IsTombstone(*r)) return std::nullopt;
  return std::optional<UserRecord>(*std::move(r));
}

absl::Status Vault::Shred(absl::string_view account) {
  cache_.Erase(account);  // no copy of a shredded record outlives it here
  return store_.Shred(std::string_view(account.data(), account.size()));
}

absl::Status Vault::LockedOut(absl::string_view account) {
  // The lockout stands whatever the shred does: a failed one stays queued in
  // the store and is retried (docs/storage.md, "Shred on RocksDB").
  LogAfterWrite("lockout shred", Shred(account));
  metrics_.CountLockout();
  return Audit("lockout", account, "locked", 0);
}

absl::StatusOr<uint64_t> Vault::ProofRegistrationId(
    absl::string_view account, std::span<const uint8_t> proof, int64_t now) {
  if (proof.empty()) return 0;
  auto t =
      OpenTicket(ticket_sealer_, account, TicketPurpose::kProof, proof, now);
  if (absl::IsDeadlineExceeded(t.status())) return 0;  // refused as missing
  if (!t.ok()) return StateError("proof", t.status());
  return t->registration_id;
}

absl::Status Vault::Audit(absl::string_view event, absl::string_view account,
                          absl::string_view outcome,
                          int64_t attempts_remaining) {
  return audit_.Record({event, account, outcome, attempts_remaining});
}

void Vault::SettleShred(absl::string_view account) {
  struct Clear {
    std::optional<UserRecord> next;
  };
  absl::Status s = Shred(account);
  if (s.ok()) {
    s = Mutate(store_, cache_, account,
               [](const std::optional<UserRecord>& current) {
                 Clear c;
                 if (current && current->shred_pending()) {
                   c.next = *current;
                   c.next->set_shred_pending(false);
                 }
                 return c;
               })
            .status();
  }
  LogAfterWrite("shred", s);
}

std::vector<uint8_t> Vault::CredentialId(absl::string_view account,
                                         uint64_t registration_id) {
  std::vector<uint8_t> id(account.begin(), account.end());
  id.push_back(0);
  for (int shift = 56; shift >= 0; shift -= 8) {
    id.push_back(static_cast<uint8_t>(registration_id >> shift));
  }
  return id;
}

absl::StatusOr<Vault::RegistrationStep> Vault::RegisterStart(
    absl::string_view account, std::span<const uint8_t> request) {
  auto req = opaque::RegistrationRequest::Parse(request);
  if (!req.ok()) return FieldError("registration_request", req.status());
  BKV_ASSIGN_OR_RETURN(auto current, Load(account));
  if (policy::IsLocked(current)) return Locked();
  if (current && IsThreshold(*current)) return ThresholdOnly();
  const uint64_t registration_id = RandomId();
  BKV_ASSIGN_OR_RETURN(opaque::RegistrationResponse response,
                       opaque_.CreateRegistrationResponse(
                           *req, CredentialId(account, registration_id)));
  BKV_ASSIGN_OR_RETURN(
      std::vector<uint8_t> sealed,
      SealTicket(
          ticket_sealer_, account,
          StatelessTicket(TicketPurpose::kRegisterStart, registration_id,
                          options_.now_ms() + options_.limits.login_ttl_ms)));
  auto bytes = response.Serialize();
  return RegistrationStep{
      {bytes.begin(), bytes.end()}, std::move(sealed), registration_id};
}

absl::StatusOr<Vault::LoginStep> Vault::RegisterFinish(
    absl::string_view account, std::span<const uint8_t> record_bytes,
    const Argon2idParams& ksf, std::span<const uint8_t> ke1_bytes,
    std::span<const uint8_t> registration_state,
    std::span<const uint8_t> proof) {
  auto record = opaque::RegistrationRecord::Parse(record_bytes);
  if (!record.ok()) return FieldError("registration_record", record.status());
  if (auto s = ksf.Validate(); !s.ok()) return FieldError("ksf", s);
  if (!policy::MeetsMinimumKsf(ToProto(ksf), options_.limits)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ksf: Argon2id memory must be at least ",
                     options_.limits.min_ksf_memory_kib, " KiB on this vault"));
  }
  auto ke1 = opaque::KE1::Parse(ke1_bytes);
  if (!ke1.ok()) return FieldError("ke1", ke1.status());
  const int64_t now = options_.now_ms();
  auto start =
      OpenTicket(ticket_sealer_, account, TicketPurpose::kRegisterStart,
                 registration_state, now);
  if (!start.ok()) return StateError("registration_state", start.status());
  BKV_ASSIGN_OR_RETURN(uint64_t proof_id,
                       ProofRegistrationId(account, proof, now));
  const uint64_t registration_id = start->registration_id;
  const std::string serialized_record(record_bytes.begin(), record_bytes.end());
  BKV_RETURN_IF_ERROR(WithAttempt(audit_.Ready(), kNotCounted));
  bool threshold = false;
  BKV_ASSIGN_OR_RETURN(
      policy::RegisterDecision d,
      Mutate(store_, cache_, account,
             [&](const std::optional<UserRecord>& current) {
               if (current && IsThreshold(*current)) {
                 threshold = true;
                 return policy::RegisterDecision{
                     policy::RegisterOutcome::kStale, std::nullopt};
               }
               return policy::RegisterFinish(current, serialized_record,
                                             ToProto(ksf), registration_id,
                                             proof_id, now, options_.limits);
             }));
  if (threshold) return ThresholdOnly();
  switch (d.outcome) {
    case policy::RegisterOutcome::kProceed:
      break;
    case policy::RegisterOutcome::kLocked:
      return Locked();
    case policy::RegisterOutcome::kProofRequired:
      return ProofRequired("replacing");
    case policy::RegisterOutcome::kBusy:
      return RateLimited(static_cast<uint32_t>(d.retry_after_ms));
    default:
      return WithDetail(absl::FailedPreconditionError(
                            "registration_state was already used: one "
                            "RegisterFinish per registration; start again"),
                        ErrorDetail::REASON_STATE_EXPIRED);
  }
  BKV_ASSIGN_OR_RETURN(
      opaque::ServerLoginStart login,
      opaque_.GenerateKE2(*record, CredentialId(account, registration_id),
                          *ke1));
  LoginTicket ticket{TicketPurpose::kRegister,
                     false,
                     registration_id,
                     0,
                     d.expires_ms,
                     std::move(login.state).Export(),
                     PendingRecordHash(serialized_record, ToProto(ksf))};
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> sealed,
                       SealTicket(ticket_sealer_, account, ticket));
  LogAfterWrite("register_finish audit",
                Audit("register_finish", account, "pending", -1));
  auto ke2 = login.ke2.Serialize();
  return LoginStep{{ke2.begin(), ke2.end()}, std::move(sealed)};
}

absl::StatusOr<uint32_t> Vault::RegisterCommit(
    absl::string_view account, std::span<const uint8_t> ke3_bytes,
    std::span<const uint8_t> login_state, std::span<const uint8_t> sealed_key) {
  auto ke3 = opaque::KE3::Parse(ke3_bytes);
  if (!ke3.ok()) return FieldError("ke3", ke3.status());
  const int64_t now = options_.now_ms();
  auto ticket = OpenTicket(ticket_sealer_, account, TicketPurpose::kRegister,
                           login_state, now);
  if (!ticket.ok()) return StateError("login_state", ticket.status());
  BKV_ASSIGN_OR_RETURN(opaque::ServerLoginState state,
                       opaque::ServerLoginState::Import(ticket->server_state));
  auto session_key = opaque_.ServerFinish(std::move(state), *ke3);
  if (!session_key.ok() && !opaque::IsInvalidLogin(session_key.status())) {
    return session_key.status();
  }
  std::string wrapped;
  if (session_key.ok()) {
    auto opened = key_transport::Open(
        *session_key, key_transport::Direction::kRegister, account, sealed_key);
    if (!opened.ok()) {
      return absl::InvalidArgumentError(
          "sealed_key does not open under this login's session key");
    }
    wrapped.assign(opened->begin(), opened->end());
  }
  // Refuse while nothing is written; past the swap the answer is OK.
  BKV_RETURN_IF_ERROR(WithAttempt(audit_.Ready(), kNotCounted));
  BKV_ASSIGN_OR_RETURN(
      policy::RegisterDecision d,
      Mutate(store_, cache_, account,
             [&](const std::optional<UserRecord>& current) {
               const bool matches =
                   current &&
                   PendingRecordHash(current->pending_opaque_record(),
                                     current->pending_ksf()) == ticket->binding;
               auto d = policy::RegisterCommit(current, ticket->registration_id,
                                               matches, session_key.ok(),
                                               wrapped, now, options_.limits);
               // Durable until the old versions are gone (a crash, a failed
               // shred).
               if (d.next && (d.superseded_active ||
                              (current && current->shred_pending()))) {
                 d.next->set_shred_pending(true);
               }
               return d;
             }));
  switch (d.outcome) {
    case policy::RegisterOutcome::kProceed:
      // The old record (and every older version) must not outlive it on
      // disk: with the HSM, its password would still unwrap the key.
      if (d.next->shred_pending()) SettleShred(account);
      LogAfterWrite(
          "register_commit audit",
          Audit("register_commit", account, "active", d.next->attempt_limit()));
      return d.next->attempt_limit();
    case policy::RegisterOutcome::kLocked:
      return Locked();
    case policy::RegisterOutcome::kInvalidProof:
      BKV_RETURN_IF_ERROR(
          Audit("register_commit", account, "invalid_proof", -1));
      return WithDetail(absl::PermissionDeniedError(
                            "registration proof (KE3) does not verify; "
                            "register again"),
                        ErrorDetail::REASON_INVALID_LOGIN);
    default:
      break;
  }
  return WithDetail(absl::FailedPreconditionError(
                        "this registration was already committed or "
                        "superseded by a newer one; register again"),
                    ErrorDetail::REASON_STATE_EXPIRED);
}

absl::StatusOr<Vault::RecoverStep> Vault::RecoverStart(
    absl::string_view account, std::span<const uint8_t> ke1_bytes) {
  auto ke1 = opaque::KE1::Parse(ke1_bytes);
  if (!ke1.ok()) {
    return WithAttempt(FieldError("ke1", ke1.status()), kNotCounted);
  }
  // A vault that could not finish must refuse before counting.
  if (auto ready = audit_.Ready(); !ready.ok()) {
    return WithAttempt(ready, kNotCounted);
  }
  bool threshold = false;
  auto decided = CountStart(account, [&](const UserRecord& r) {
    threshold = r.has_realm();
    return !threshold;
  });
  if (!decided.ok()) return decided.status();
  if (threshold) return WithAttempt(ThresholdOnly(), kNotCounted);
  const policy::StartDecision& d = *decided;
  if (auto refused = RefuseStart(account, d); !refused.ok()) return refused;
  if (d.outcome == policy::StartOutcome::kNotRegistered) {
    return FakeStart(account, *ke1, d);
  }
  auto step = AnswerStart(account, *ke1, d);
  if (!step.ok()) return Refund(account, d, step.status());
  metrics_.CountAttempt("started");
  return step;
}

absl::StatusOr<policy::StartDecision> Vault::CountStart(
    absl::string_view account,
    absl::FunctionRef<bool(const UserRecord&)> accept) {
  const int64_t now = options_.now_ms();
  auto decided = Mutate(
      store_, cache_, account, [&](const std::optional<UserRecord>& current) {
        if (current && !accept(*current)) {
          return policy::StartDecision{policy::StartOutcome::kNotRegistered,
                                       std::nullopt};
        }
        return policy::RecoverStart(current, now, options_.limits);
      });
  if (!decided.ok()) {
    return WithAttempt(decided.status(), CountEffect(decided.status()));
  }
  return decided;
}

absl::Status Vault::RefuseStart(absl::string_view account,
                                const policy::StartDecision& d) {
  if (d.next && d.next->shred_pending()) SettleShred(account);  // a retry
  switch (d.outcome) {
    case policy::StartOutcome::kProceed:
    case policy::StartOutcome::kNotRegistered:
      return absl::OkStatus();
    case policy::StartOutcome::kLocked:
      if (d.next) {
        BKV_RETURN_IF_ERROR(WithAttempt(LockedOut(account), kNotCounted));
      }
      return WithAttempt(Locked(), kNotCounted);
    case policy::StartOutcome::kWaitForOpenLogin:
      return WithAttempt(
          WithDetail(absl::ResourceExhaustedError(absl::StrCat(
                         "no attempts left while the last login is still "
                         "open; retry in ",
                         d.retry_after_ms, " ms")),
                     ErrorDetail::REASON_RATE_LIMITED, 0,
                     static_cast<uint32_t>(d.retry_after_ms)),
          kNotCounted);
  }
  return absl::OkStatus();
}

absl::StatusOr<Vault::RecoverStep> Vault::AnswerStart(
    absl::string_view account, const opaque::KE1& ke1,
    const policy::StartDecision& d) {
  BKV_ASSIGN_OR_RETURN(opaque::RegistrationRecord record,
                       StoredOpaqueRecord(d.next->opaque_record()));
  BKV_ASSIGN_OR_RETURN(
      opaque::ServerLoginStart login,
      opaque_.GenerateKE2(record, CredentialId(account, d.registration_id),
                          ke1));
  BKV_ASSIGN_OR_RETURN(LoginStep step,
                       CountedLogin(account, d, login, "recover_start"));
  return RecoverStep{std::move(step), FromProto(d.next->ksf()),
                     d.attempts_remaining};
}

absl::StatusOr<Vault::LoginStep> Vault::CountedLogin(
    absl::string_view account, const policy::StartDecision& d,
    opaque::ServerLoginStart& login, absl::string_view event) {
  LoginTicket ticket{TicketPurpose::kRecover,
                     false,
                     d.registration_id,
                     d.login_seq,
                     d.expires_ms,
                     std::move(login.state).Export(),
                     {}};
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> sealed,
                       SealTicket(ticket_sealer_, account, ticket));
  // Every counted attempt has its line, durable before the KE2 leaves.
  BKV_RETURN_IF_ERROR(Audit(event, account, "counted", d.attempts_remaining));
  auto ke2 = login.ke2.Serialize();
  return LoginStep{{ke2.begin(), ke2.end()}, std::move(sealed)};
}

absl::Status Vault::Refund(absl::string_view account,
                           const policy::StartDecision& d,
                           absl::Status failure) {
  struct Undo {
    std::optional<UserRecord> next;
  };
  auto undone = Mutate(
      store_, cache_, account, [&](const std::optional<UserRecord>& current) {
        return Undo{
            policy::RefundStart(current, d.registration_id, d.login_seq)};
      });
  // Refund failed too: the attempt may be lost; say "unknown".
  if (!undone.ok())
    return WithAttempt(failure, ErrorDetail::ATTEMPT_UNSPECIFIED);
  return WithAttempt(failure, kNotCounted);
}

absl::StatusOr<Vault::RecoverStep> Vault::FakeStart(
    absl::string_view account, const opaque::KE1& ke1,
    const policy::StartDecision& d) {
  // Same work and the same bytes as a real attempt, including a synced
  // write, so an unknown account looks like a known one.
  auto answer = [&]() -> absl::StatusOr<RecoverStep> {
    BKV_RETURN_IF_ERROR(
        store_.SyncBarrier(std::string_view(account.data(), account.size())));
    BKV_ASSIGN_OR_RETURN(
        opaque::ServerLoginStart fake,
        opaque_.GenerateFakeKE2(CredentialId(account, 0), ke1));
    LoginTicket ticket{TicketPurpose::kRecover,        true, 0, 0, d.expires_ms,
                       std::move(fake.state).Export(), {}};
    BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> sealed,
                         SealTicket(ticket_sealer_, account, ticket));
    metrics_.CountAttempt("unknown_account");
    BKV_RETURN_IF_ERROR(Audit("recover_start", account, "unknown_account",
                              d.attempts_remaining));
    auto ke2 = fake.ke2.Serialize();
    return RecoverStep{{{ke2.begin(), ke2.end()}, std::move(sealed)},
                       options_.default_ksf,
                       d.attempts_remaining};
  }();
  if (!answer.ok()) return WithAttempt(answer.status(), kNotCounted);
  return answer;
}

absl::StatusOr<Vault::Release> Vault::RecoverFinish(
    absl::string_view account, std::span<const uint8_t> ke3_bytes,
    std::span<const uint8_t> login_state) {
  auto ke3 = opaque::KE3::Parse(ke3_bytes);
  if (!ke3.ok()) return WithAttempt(FieldError("ke3", ke3.status()), kSpent);
  const int64_t now = options_.now_ms();
  auto ticket = OpenTicket(ticket_sealer_, account, TicketPurpose::kRecover,
                           login_state, now);
  if (!ticket.ok()) {
    return WithAttempt(StateError("login_state", ticket.status()), kSpent);
  }
  if (ticket->fake) {
    // The storage work (a read, a synced write) and the metrics of a real
    // wrong guess, so neither timing nor /metrics tells the two apart.
    BKV_RETURN_IF_ERROR(WithAttempt(Load(account).status(), kSpent));
    BKV_RETURN_IF_ERROR(WithAttempt(
        store_.SyncBarrier(std::string_view(account.data(), account.size())),
        kSpent));
    const uint32_t remaining = policy::UnknownAccountRemaining(options_.limits);
    metrics_.CountAttempt("invalid_login");
    BKV_RETURN_IF_ERROR(
        Audit("recover_finish", account, "unknown_account", remaining));
    return InvalidLogin(remaining);
  }
  auto opened = opaque::ServerLoginState::Import(ticket->server_state);
  if (!opened.ok()) return WithAttempt(opened.status(), kSpent);
  auto session_key = opaque_.ServerFinish(*std::move(opened), *ke3);
  if (!session_key.ok() && !opaque::IsInvalidLogin(session_key.status())) {
    return WithAttempt(session_key.status(), kSpent);
  }
  // A verified KE3 resets the counter in this write, before anything else
  // that could fail: the release may fail, the attempt is not lost.
  auto decided = Mutate(
      store_, cache_, account, [&](const std::optional<UserRecord>& current) {
        return policy::RecoverFinish(current, ticket->registration_id,
                                     ticket->login_seq, session_key.ok(), now,
                                     options_.limits);
      });
  if (!decided.ok()) {
    // Unless the write's outcome is unknown, nothing was written: the login
    // is still open and the same RecoverFinish, repeated before it expires,
    // completes it. An unknown outcome may commit later (counted, or locked).
    const bool unknown =
        CountEffect(decided.status()) == ErrorDetail::ATTEMPT_UNSPECIFIED;
    return WithAttempt(
        absl::Status(
            decided.status().code(),
            absl::StrCat(decided.status().message(),
                         unknown ? "; the attempt may already be counted: "
                                   "if this login is still open, the same "
                                   "RecoverFinish sent again finishes it"
                                 : "; this login stays open until it "
                                   "expires: send the same RecoverFinish "
                                   "again to finish it and get the attempt "
                                   "back")),
        kSpent);
  }
  return Conclude(account, session_key, *decided);
}

absl::StatusOr<Vault::Release> Vault::Conclude(
    absl::string_view account, const absl::StatusOr<SecretBytes>& session_key,
    const policy::FinishDecision& d) {
  switch (d.outcome) {
    case policy::FinishOutcome::kRelease: {
      auto released = ReleaseKey(account, *session_key, d);
      if (!released.ok()) return WithAttempt(released.status(), kNotCounted);
      if (d.next && d.next->shred_pending()) SettleShred(account);
      return released;
    }
    case policy::FinishOutcome::kInvalidLogin:
      metrics_.CountAttempt("invalid_login");
      BKV_RETURN_IF_ERROR(
          WithAttempt(Audit("recover_finish", account, "invalid_login",
                            d.attempts_remaining),
                      kSpent));
      return InvalidLogin(d.attempts_remaining);
    case policy::FinishOutcome::kLocked:
      if (d.next) {
        metrics_.CountAttempt("invalid_login");
        BKV_RETURN_IF_ERROR(WithAttempt(LockedOut(account), kSpent));
      }
      return WithAttempt(Locked(), kSpent);
    case policy::FinishOutcome::kStale:
      break;
  }
  return WithAttempt(
      WithDetail(absl::FailedPreconditionError(
                     "this login was already finished, has expired or "
                     "was superseded; start again"),
                 ErrorDetail::REASON_STATE_EXPIRED, d.attempts_remaining),
      kSpent);
}

absl::StatusOr<Vault::Release> Vault::ReleaseKey(
    absl::string_view account, const SecretBytes& session_key,
    const policy::FinishDecision& d) {
  BKV_RETURN_IF_ERROR(
      Audit("recover_finish", account, "success", d.attempts_remaining));
  // A realm releases its second-secret share with the wrapped key.
  SecretBytes payload = d.next->has_realm()
                            ? Concat(d.next->realm().secret_share(),
                                     d.next->realm().wrapped_key())
                            : SecretBytes::Copy(d.next->sealed_backup_key());
  BKV_ASSIGN_OR_RETURN(
      std::vector<uint8_t> sealed,
      key_transport::Seal(session_key, key_transport::Direction::kRecover,
                          account, payload.Reveal()));
  BKV_ASSIGN_OR_RETURN(
      std::vector<uint8_t> proof,
      SealTicket(
          ticket_sealer_, account,
          StatelessTicket(TicketPurpose::kProof, d.next->registration_id(),
                          options_.now_ms() + options_.limits.proof_ttl_ms)));
  metrics_.CountAttempt("success");
  return Release{std::move(sealed), std::move(proof)};
}

absl::StatusOr<policy::StatusView> Vault::GetStatus(absl::string_view account) {
  BKV_ASSIGN_OR_RETURN(StatusRead read, ReadStatus(account));
  return std::move(read.view);
}

absl::StatusOr<Vault::StatusRead> Vault::ReadStatus(absl::string_view account) {
  const int64_t now = options_.now_ms();
  struct Decision {
    StatusRead read;
    std::optional<UserRecord> next;
  };
  BKV_ASSIGN_OR_RETURN(
      Decision d,
      Mutate(
          store_, cache_, account,
          [&](const std::optional<UserRecord>& current) {
            // Raw, so the realm's status sees its tombstone; the policy
            // reads a tombstone as no record, as everywhere.
            const bool absent = !current || IsTombstone(*current);
            policy::StatusView v = policy::GetStatus(
                absent ? std::nullopt : current, now, options_.limits);
            std::optional<UserRecord> next = std::move(v.write);
            return Decision{{std::move(v), current}, std::move(next)};
          },
          /*raw=*/true));
  if (d.next) {
    BKV_RETURN_IF_ERROR(LockedOut(account));
    d.read.record = std::move(d.next);
  }
  return std::move(d.read);
}

absl::Status Vault::Delete(absl::string_view account,
                           std::span<const uint8_t> proof) {
  const std::string_view id(account.data(), account.size());
  const int64_t now = options_.now_ms();
  BKV_ASSIGN_OR_RETURN(uint64_t proof_id,
                       ProofRegistrationId(account, proof, now));
  for (int i = 0; i < kMaxCasRetries; ++i) {
    BKV_ASSIGN_OR_RETURN(auto current, Load(account));
    switch (policy::Delete(current, proof_id, now, options_.limits)) {
      case policy::DeleteOutcome::kAbsent:
        return Audit("delete", account, "absent", -1);  // idempotent
      case policy::DeleteOutcome::kProofRequired:
        return ProofRequired("deleting");
      case policy::DeleteOutcome::kDelete:
        break;
    }
    BKV_RETURN_IF_ERROR(audit_.Ready());  // refuse while nothing is deleted
    cache_.Erase(account);
    absl::Status s = DeleteRecord(id, *current);
    if (absl::IsAborted(s)) continue;
    if (!s.ok() && CountEffect(s) == ErrorDetail::ATTEMPT_UNSPECIFIED &&
        policy::HeldKey(*current)) {
      // The tombstone may commit later: shred now (idempotent).
      LogAfterWrite("delete shred", Shred(account));
    }
    BKV_RETURN_IF_ERROR(s);
    // Only a record that held a key leaves copies worth a forced
    // compaction; a keyless PENDING one is dropped by the next compaction.
    if (policy::HeldKey(*current)) {
      LogAfterWrite("delete shred", Shred(account));
    }
    LogAfterWrite("delete audit", Audit("delete", account, "deleted", -1));
    return absl::OkStatus();
  }
  return Contention();
}

// A realm's account keeps its registration epoch past Delete (a tombstone),
// so a recorded Prepare of an older epoch can never be replayed
// (docs/threshold.md, "Replay of an old registration").
// A record that held a key goes with shred_pending written first (v2) or on
// its tombstone (realm), so the store queues its shred durably before the
// record goes (docs/storage.md, "a Shred cut short by a crash").
absl::Status Vault::DeleteRecord(std::string_view id,
                                 const UserRecord& current) {
  const bool held = policy::HeldKey(current);
  if (current.realm_epoch() == 0) {
    uint64_t version = current.version();
    if (held) {  // even if flagged: its marker may be gone (SettleShred)
      UserRecord marked = current;
      marked.set_shred_pending(true);
      BKV_ASSIGN_OR_RETURN(version, store_.CompareAndSwap(id, version, marked));
    }
    return store_.Delete(id, version);
  }
  UserRecord tombstone;
  tombstone.set_shred_pending(held);
  tombstone.set_realm_tombstone(true);
  tombstone.set_realm_epoch(current.realm_epoch());
  tombstone.set_updated_unix_ms(options_.now_ms());
  return store_.CompareAndSwap(id, current.version(), tombstone).status();
}

namespace {

std::string PurgedState(const UserRecord& r) {
  if (IsTombstone(r)) return "TOMBSTONE";
  switch (r.state()) {
    case storage::v1::RECORD_STATE_ACTIVE:
      return "ACTIVE";
    case storage::v1::RECORD_STATE_LOCKED:
      return "LOCKED";
    case storage::v1::RECORD_STATE_PENDING:
      return "PENDING";
    default:
      return "UNSPECIFIED";
  }
}

absl::Status ChangedWhilePurging() {
  return absl::AbortedError(
      "the account's record changed while purging (a vault node is serving "
      "it): stop every vault of this realm and run again; nothing purged");
}

}  // namespace

absl::StatusOr<Vault::Purged> Vault::Purge(absl::string_view account,
                                           const PurgeRequest& request) {
  const std::string_view id(account.data(), account.size());
  auto raw = store_.Get(id);  // raw: a tombstone is what may block
  if (absl::IsNotFound(raw.status())) {
    return absl::NotFoundError(
        "no record for this account here, not even an epoch tombstone");
  }
  BKV_RETURN_IF_ERROR(raw.status());
  const int64_t now = options_.now_ms();
  Purged p{
      PurgedState(*raw),
      raw->realm_epoch(),
      raw->version(),
      raw->updated_unix_ms(),
      std::max<int64_t>(0, raw->updated_unix_ms() + request.quiet_ms - now),
      absl::OkStatus()};
  if (p.updated_ms > now + request.skew_ms) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the record was last written ", (p.updated_ms - now) / 1000,
        " s in the future of this host's clock: check the clocks of this "
        "host and of the realm's nodes, then run again"));
  }
  if (request.preview) return p;
  if (request.expected_version != p.version) return ChangedWhilePurging();
  if (p.wait_ms > 0) {
    return absl::FailedPreconditionError(
        "the record is younger than the purge's quiet time: run again");
  }
  // The first line before anything changes: a crash after the delete
  // still leaves a trace (review of `purge`, finding 12).
  BKV_RETURN_IF_ERROR(
      Audit("purge", account,
            absl::StrCat("started state=", p.state, " epoch=", p.epoch), -1));
  cache_.Erase(account);
  // Marked first, as DeleteRecord does: the store queues the shred durably
  // before the record goes, so a crash between the delete and the shred is
  // finished at the next open (docs/storage.md).
  UserRecord marked = *raw;
  marked.set_shred_pending(true);
  auto version = store_.CompareAndSwap(id, p.version, marked);
  absl::Status s =
      version.ok() ? store_.Delete(id, *version) : version.status();
  if (absl::IsAborted(s)) return ChangedWhilePurging();
  BKV_RETURN_IF_ERROR(s);
  std::vector<std::string> undone;
  if (absl::Status shred = Shred(account); !shred.ok()) {
    undone.push_back(absl::StrCat(
        "its shred failed (copies may stay in the store's files until "
        "compaction): ",
        shred.message()));
  }
  if (absl::Status a = Audit("purge", account, "purged", -1); !a.ok()) {
    undone.push_back(absl::StrCat("its audit line failed: ", a.message()));
  }
  if (!undone.empty()) {
    p.unfinished = absl::UnavailableError(absl::StrJoin(undone, "; "));
  }
  return p;
}

absl::StatusOr<int64_t> Vault::RequestReset(absl::string_view account) {
  const int64_t now = options_.now_ms();
  BKV_ASSIGN_OR_RETURN(policy::ResetDecision d,
                       Mutate(store_, cache_, account,
                              [&](const std::optional<UserRecord>& current) {
                                return policy::RequestReset(current, now,
                                                            options_.limits);
                              }));
  switch (d.outcome) {
    case policy::ResetOutcome::kNotRegistered:
      return NotRegistered();
    case policy::ResetOutcome::kLocked:
      return Locked();
    case policy::ResetOutcome::kRequested:
      break;
  }
  BKV_RETURN_IF_ERROR(Audit("request_reset", account,
                            d.next ? "requested" : "already_requested", -1));
  return d.due_ms;
}

}  // namespace bkv::server
