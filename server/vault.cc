#include "server/vault.h"

#include <openssl/rand.h>

#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "crypto/key_transport.h"
#include "crypto/status_macros.h"
#include "server/errors.h"
#include "server/login_ticket.h"

namespace bkv::server {
namespace {

using storage::v1::UserRecord;
using vault::v1::ErrorDetail;

constexpr int kMaxCasRetries = 64;

storage::v1::KsfParams ToProto(const Argon2idParams& p) {
  storage::v1::KsfParams k;
  k.set_iterations(p.iterations);
  k.set_memory_kib(p.memory_kib);
  k.set_parallelism(p.parallelism);
  return k;
}

Argon2idParams FromProto(const storage::v1::KsfParams& k) {
  return {k.iterations(), k.memory_kib(), k.parallelism()};
}

absl::Status FieldError(absl::string_view field, const absl::Status& s) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", s.message()));
}

uint64_t RandomId() {
  uint64_t id = 0;
  while (id == 0) {
    if (RAND_bytes(reinterpret_cast<uint8_t*>(&id), sizeof id) != 1) {
      std::abort();  // no randomness: nothing safe to do
    }
  }
  return id;
}

// Stored records are trusted only as far as the store vouches for them;
// a stored OPAQUE record that doesn't parse is corruption, not user error.
absl::StatusOr<opaque::RegistrationRecord> StoredOpaqueRecord(
    const std::string& bytes) {
  auto rec = opaque::RegistrationRecord::Parse(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  if (!rec.ok()) {
    return absl::DataLossError(absl::StrCat("stored OPAQUE record is corrupt: ",
                                            rec.status().message()));
  }
  return rec;
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
  return std::optional<UserRecord>(*std::move(r));
}

absl::Status Vault::Shred(absl::string_view account) {
  return store_.Shred(std::string_view(account.data(), account.size()));
}

absl::Status Vault::Audit(absl::string_view event, absl::string_view account,
                          absl::string_view outcome,
                          int64_t attempts_remaining) {
  return audit_.Record({event, account, outcome, attempts_remaining});
}

// Read, decide with `decide`, compare-and-swap the decision's `next`; retry
// when another request won the race. Returns the decision that was written.
template <typename Decide>
static auto Mutate(storage::RecordStore& store, absl::string_view account,
                   Decide decide)
    -> absl::StatusOr<decltype(decide(std::optional<UserRecord>()))> {
  const std::string_view id(account.data(), account.size());
  for (int i = 0; i < kMaxCasRetries; ++i) {
    std::optional<UserRecord> current;
    auto got = store.Get(id);
    if (got.ok()) {
      current = *std::move(got);
    } else if (!absl::IsNotFound(got.status())) {
      return got.status();
    }
    auto decision = decide(current);
    if (!decision.next) return decision;
    auto cas = store.CompareAndSwap(
        id, current ? current->version() : storage::RecordStore::kNoRecord,
        *decision.next);
    if (cas.ok()) {
      decision.next->set_version(*cas);
      return decision;
    }
    if (!absl::IsAborted(cas.status())) return cas.status();
  }
  return absl::UnavailableError(
      "too much contention on this account; retry shortly");
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
  if (current && current->state() == storage::v1::RECORD_STATE_LOCKED) {
    return Locked();
  }
  const uint64_t registration_id = RandomId();
  BKV_ASSIGN_OR_RETURN(opaque::RegistrationResponse response,
                       opaque_.CreateRegistrationResponse(
                           *req, CredentialId(account, registration_id)));
  LoginTicket ticket{TicketPurpose::kRegisterStart,
                     false,
                     registration_id,
                     0,
                     options_.now_ms() + options_.limits.login_ttl_ms,
                     SecretBytes(opaque::kServerLoginStateSize)};
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> sealed,
                       SealTicket(ticket_sealer_, account, ticket));
  auto bytes = response.Serialize();
  return RegistrationStep{{bytes.begin(), bytes.end()}, std::move(sealed)};
}

absl::StatusOr<Vault::LoginStep> Vault::RegisterFinish(
    absl::string_view account, std::span<const uint8_t> record_bytes,
    const Argon2idParams& ksf, std::span<const uint8_t> ke1_bytes,
    std::span<const uint8_t> registration_state) {
  auto record = opaque::RegistrationRecord::Parse(record_bytes);
  if (!record.ok()) return FieldError("registration_record", record.status());
  if (auto s = ksf.Validate(); !s.ok()) return FieldError("ksf", s);
  if (ksf.memory_kib < options_.min_ksf_memory_kib) {
    return absl::InvalidArgumentError(
        absl::StrCat("ksf: Argon2id memory must be at least ",
                     options_.min_ksf_memory_kib, " KiB on this vault"));
  }
  auto ke1 = opaque::KE1::Parse(ke1_bytes);
  if (!ke1.ok()) return FieldError("ke1", ke1.status());
  const int64_t now = options_.now_ms();
  auto start =
      OpenTicket(ticket_sealer_, account, TicketPurpose::kRegisterStart,
                 registration_state, now);
  if (absl::IsDeadlineExceeded(start.status())) {
    return WithDetail(start.status(), ErrorDetail::REASON_STATE_EXPIRED);
  }
  if (!start.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("registration_state: ", start.status().message()));
  }
  const uint64_t registration_id = start->registration_id;
  const std::string serialized_record(record_bytes.begin(), record_bytes.end());
  BKV_ASSIGN_OR_RETURN(
      policy::RegisterDecision d,
      Mutate(store_, account, [&](const std::optional<UserRecord>& current) {
        return policy::RegisterFinish(current, serialized_record, ToProto(ksf),
                                      registration_id, now, options_.limits);
      }));
  if (d.outcome == policy::RegisterOutcome::kLocked) return Locked();

  BKV_ASSIGN_OR_RETURN(
      opaque::ServerLoginStart login,
      opaque_.GenerateKE2(*record, CredentialId(account, registration_id),
                          *ke1));
  LoginTicket ticket{
      TicketPurpose::kRegister,       false, registration_id, 0, d.expires_ms,
      std::move(login.state).Export()};
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> sealed,
                       SealTicket(ticket_sealer_, account, ticket));
  BKV_RETURN_IF_ERROR(Audit("register_finish", account, "pending", -1));
  auto ke2 = login.ke2.Serialize();
  return LoginStep{{ke2.begin(), ke2.end()}, std::move(sealed)};
}

absl::StatusOr<uint32_t> Vault::RegisterCommit(
    absl::string_view account, std::span<const uint8_t> ke3_bytes,
    std::span<const uint8_t> login_state, std::span<const uint8_t> sealed_key) {
  auto ke3 = opaque::KE3::Parse(ke3_bytes);
  if (!ke3.ok()) return FieldError("ke3", ke3.status());
  const int64_t now = options_.now_ms();
  BKV_ASSIGN_OR_RETURN(LoginTicket ticket,
                       OpenTicket(ticket_sealer_, account,
                                  TicketPurpose::kRegister, login_state, now));
  BKV_ASSIGN_OR_RETURN(opaque::ServerLoginState state,
                       opaque::ServerLoginState::Import(ticket.server_state));
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
  BKV_ASSIGN_OR_RETURN(
      policy::RegisterDecision d,
      Mutate(store_, account, [&](const std::optional<UserRecord>& current) {
        return policy::RegisterCommit(current, ticket.registration_id,
                                      session_key.ok(), wrapped, now,
                                      options_.limits);
      }));
  switch (d.outcome) {
    case policy::RegisterOutcome::kProceed:
      BKV_RETURN_IF_ERROR(Audit("register_commit", account, "active",
                                options_.limits.attempt_limit));
      return options_.limits.attempt_limit;
    case policy::RegisterOutcome::kLocked:
      return Locked();
    case policy::RegisterOutcome::kInvalidProof:
      BKV_RETURN_IF_ERROR(
          Audit("register_commit", account, "invalid_proof", -1));
      return WithDetail(absl::PermissionDeniedError(
                            "registration proof (KE3) does not verify; "
                            "register again"),
                        ErrorDetail::REASON_INVALID_LOGIN);
    case policy::RegisterOutcome::kStale:
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
  if (!ke1.ok()) return FieldError("ke1", ke1.status());
  const int64_t now = options_.now_ms();
  BKV_ASSIGN_OR_RETURN(
      policy::StartDecision d,
      Mutate(store_, account, [&](const std::optional<UserRecord>& current) {
        return policy::RecoverStart(current, now, options_.limits);
      }));

  switch (d.outcome) {
    case policy::StartOutcome::kProceed:
      break;
    case policy::StartOutcome::kNotRegistered: {
      // Same work and the same bytes as a real attempt, including a synced
      // write, so an unknown account looks like a known one.
      BKV_RETURN_IF_ERROR(store_.SyncBarrier());
      BKV_ASSIGN_OR_RETURN(
          opaque::ServerLoginStart fake,
          opaque_.GenerateFakeKE2(CredentialId(account, 0), *ke1));
      LoginTicket ticket{
          TicketPurpose::kRecover,       true, 0, 0, d.expires_ms,
          std::move(fake.state).Export()};
      BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> sealed,
                           SealTicket(ticket_sealer_, account, ticket));
      metrics_.CountAttempt("unknown_account");
      BKV_RETURN_IF_ERROR(Audit("recover_start", account, "unknown_account",
                                d.attempts_remaining));
      auto ke2 = fake.ke2.Serialize();
      return RecoverStep{{{ke2.begin(), ke2.end()}, std::move(sealed)},
                         options_.default_ksf,
                         d.attempts_remaining};
    }
    case policy::StartOutcome::kLocked:
      if (d.next) {
        BKV_RETURN_IF_ERROR(Shred(account));
        metrics_.CountLockout();
        BKV_RETURN_IF_ERROR(Audit("lockout", account, "locked", 0));
      }
      return Locked();
    case policy::StartOutcome::kWaitForOpenLogin:
      return WithDetail(
          absl::ResourceExhaustedError(absl::StrCat(
              "no attempts left while the last login is still open; retry in ",
              d.retry_after_ms, " ms")),
          ErrorDetail::REASON_RATE_LIMITED, 0,
          static_cast<uint32_t>(d.retry_after_ms));
  }

  metrics_.CountAttempt("started");
  BKV_ASSIGN_OR_RETURN(opaque::RegistrationRecord record,
                       StoredOpaqueRecord(d.next->opaque_record()));
  BKV_ASSIGN_OR_RETURN(
      opaque::ServerLoginStart login,
      opaque_.GenerateKE2(record, CredentialId(account, d.registration_id),
                          *ke1));
  LoginTicket ticket{TicketPurpose::kRecover,
                     false,
                     d.registration_id,
                     d.login_seq,
                     d.expires_ms,
                     std::move(login.state).Export()};
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> sealed,
                       SealTicket(ticket_sealer_, account, ticket));
  BKV_RETURN_IF_ERROR(
      Audit("recover_start", account, "counted", d.attempts_remaining));
  auto ke2 = login.ke2.Serialize();
  return RecoverStep{{{ke2.begin(), ke2.end()}, std::move(sealed)},
                     FromProto(d.next->ksf()),
                     d.attempts_remaining};
}

absl::StatusOr<std::vector<uint8_t>> Vault::RecoverFinish(
    absl::string_view account, std::span<const uint8_t> ke3_bytes,
    std::span<const uint8_t> login_state) {
  auto ke3 = opaque::KE3::Parse(ke3_bytes);
  if (!ke3.ok()) return FieldError("ke3", ke3.status());
  const int64_t now = options_.now_ms();
  auto ticket = OpenTicket(ticket_sealer_, account, TicketPurpose::kRecover,
                           login_state, now);
  if (absl::IsDeadlineExceeded(ticket.status())) {
    return WithDetail(ticket.status(), ErrorDetail::REASON_STATE_EXPIRED);
  }
  if (!ticket.ok()) return ticket.status();
  if (ticket->fake) {
    BKV_RETURN_IF_ERROR(store_.SyncBarrier());  // as long as a real finish
    BKV_RETURN_IF_ERROR(Audit("recover_finish", account, "unknown_account",
                              options_.limits.attempt_limit - 1));
    return InvalidLogin(options_.limits.attempt_limit - 1);
  }
  BKV_ASSIGN_OR_RETURN(opaque::ServerLoginState state,
                       opaque::ServerLoginState::Import(ticket->server_state));
  auto session_key = opaque_.ServerFinish(std::move(state), *ke3);
  if (!session_key.ok() && !opaque::IsInvalidLogin(session_key.status())) {
    return session_key.status();
  }
  BKV_ASSIGN_OR_RETURN(
      policy::FinishDecision d,
      Mutate(store_, account, [&](const std::optional<UserRecord>& current) {
        return policy::RecoverFinish(current, ticket->registration_id,
                                     ticket->login_seq, session_key.ok(), now);
      }));
  switch (d.outcome) {
    case policy::FinishOutcome::kRelease: {
      const std::string& wrapped = d.next->sealed_backup_key();
      BKV_ASSIGN_OR_RETURN(
          std::vector<uint8_t> sealed,
          key_transport::Seal(
              *session_key, key_transport::Direction::kRecover, account,
              std::span<const uint8_t>(
                  reinterpret_cast<const uint8_t*>(wrapped.data()),
                  wrapped.size())));
      metrics_.CountAttempt("success");
      BKV_RETURN_IF_ERROR(
          Audit("recover_finish", account, "success", d.attempts_remaining));
      return sealed;
    }
    case policy::FinishOutcome::kInvalidLogin:
      metrics_.CountAttempt("invalid_login");
      BKV_RETURN_IF_ERROR(Audit("recover_finish", account, "invalid_login",
                                d.attempts_remaining));
      return InvalidLogin(d.attempts_remaining);
    case policy::FinishOutcome::kLocked:
      if (d.next) {
        BKV_RETURN_IF_ERROR(Shred(account));
        metrics_.CountAttempt("invalid_login");
        metrics_.CountLockout();
        BKV_RETURN_IF_ERROR(Audit("lockout", account, "locked", 0));
      }
      return Locked();
    case policy::FinishOutcome::kStale:
      break;
  }
  return WithDetail(absl::FailedPreconditionError(
                        "this login was already finished, has expired or "
                        "was superseded; start again"),
                    ErrorDetail::REASON_STATE_EXPIRED, d.attempts_remaining);
}

absl::StatusOr<policy::StatusView> Vault::GetStatus(absl::string_view account) {
  const int64_t now = options_.now_ms();
  struct Decision {
    policy::StatusView view;
    std::optional<UserRecord> next;
  };
  BKV_ASSIGN_OR_RETURN(
      Decision d,
      Mutate(store_, account, [&](const std::optional<UserRecord>& current) {
        policy::StatusView v = policy::GetStatus(current, now);
        std::optional<UserRecord> next = std::move(v.write);
        return Decision{std::move(v), std::move(next)};
      }));
  if (d.next) {
    BKV_RETURN_IF_ERROR(Shred(account));
    metrics_.CountLockout();
    BKV_RETURN_IF_ERROR(Audit("lockout", account, "locked", 0));
  }
  return d.view;
}

absl::Status Vault::Delete(absl::string_view account) {
  const std::string_view id(account.data(), account.size());
  for (int i = 0; i < kMaxCasRetries; ++i) {
    BKV_ASSIGN_OR_RETURN(auto current, Load(account));
    if (!current) {
      return Audit("delete", account, "absent", -1);  // idempotent
    }
    absl::Status s = store_.Delete(id, current->version());
    if (s.ok()) return Audit("delete", account, "deleted", -1);
    if (!absl::IsAborted(s)) return s;
  }
  return absl::UnavailableError(
      "too much contention on this account; retry shortly");
}

}  // namespace bkv::server
