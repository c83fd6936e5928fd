// The Vault's protocol v3 calls: a realm of a threshold set
// (docs/threshold.md, "The realm's server side"). Counting and release go
// through the v2 path (CountStart, RecoverFinish); only registration and the
// share evaluation are new here.
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sodium.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "crypto/seal_to_realm.h"
#include "crypto/shamir.h"
#include "crypto/status_macros.h"
#include "crypto/threshold_descriptor.h"
#include "crypto/threshold_oprf.h"
#include "server/errors.h"
#include "server/login_ticket.h"
#include "server/realm_policy.h"
#include "server/vault.h"
#include "server/vault_internal.h"
#ifdef BKV_TEST_REALM  // bkv-vault-testrealm only (tests/server/test_realm.h)
#include <csignal>

#include "crypto/random.h"
#include "tests/server/test_realm.h"
#endif

namespace bkv::server {
namespace {

using namespace vault_internal;  // NOLINT: the Vault's own helpers
using storage::v1::RealmShare;
using storage::v1::UserRecord;

// k_i[32] || s_i[32] || wrapped[60] (docs/threshold.md, SealToRealm).
constexpr size_t kShareSize = 32;
constexpr size_t kWrappedSize = 60;
constexpr size_t kPayloadSize = 2 * kShareSize + kWrappedSize;

std::string Sha256(std::span<const uint8_t> in) {
  std::string out(crypto_hash_sha256_BYTES, '\0');
  crypto_hash_sha256(reinterpret_cast<uint8_t*>(out.data()), in.data(),
                     in.size());
  return out;
}

std::string Str(std::span<const uint8_t> b) { return {b.begin(), b.end()}; }

// Erases a share's secrets from a RealmShare this code built (the sealed
// record is the only copy that should outlive the call).
struct ShareEraser {
  RealmShare* share;
  ~ShareEraser() {
    for (std::string* s :
         {share->mutable_oprf_key_share(), share->mutable_secret_share(),
          share->mutable_wrapped_key()}) {
      OPENSSL_cleanse(s->data(), s->size());
    }
  }
};

template <size_t N>
std::string Str(const std::array<uint8_t, N>& b) {
  return {b.begin(), b.end()};
}

absl::Status Refused(absl::string_view message) {
  return WithAttempt(WithDetail(absl::FailedPreconditionError(message),
                                ErrorDetail::REASON_REALM_MISMATCH),
                     kNotCounted);
}

// This realm's position in a descriptor, pinned to its identity key.
absl::StatusOr<size_t> PositionOf(const threshold::Descriptor& d,
                                  absl::string_view realm_id,
                                  const ristretto255::Element& identity_key) {
  for (size_t i = 0; i < d.realms.size(); ++i) {
    if (d.realms[i].realm_id != realm_id) continue;
    if (d.realms[i].identity_key != identity_key) {
      return Refused(absl::StrCat("the descriptor lists realm '", realm_id,
                                  "' with another identity key: check the "
                                  "client's pinned realm set"));
    }
    return i;
  }
  return Refused(absl::StrCat("the descriptor does not list realm '", realm_id,
                              "': sent to the wrong realm"));
}

#ifdef BKV_TEST_REALM
// The malicious realm's answer: nothing counted, nothing written, no login.
absl::StatusOr<Vault::ThresholdStep> MaliciousStart(
    const UserRecord& record, absl::string_view realm_id,
    const opaque::ServerKeyPair& keys, const opaque::OpaqueServer& opaque,
    const opaque::KE1& ke1) {
  using test_realm::Fault;
  const RealmShare& share = record.realm();
  auto desc = threshold::Descriptor::Parse(AsBytes(share.descriptor_bytes()));
  if (!desc.ok()) return desc.status();
  BKV_ASSIGN_OR_RETURN(size_t pos,
                       PositionOf(*desc, realm_id, keys.public_key));
  Vault::ThresholdStep step;
  step.attempts_remaining = share.per_realm_limit();  // a lie, too
  if (test_realm::Mode() == Fault::kGarbage) {
    step.login.ke2.resize(opaque::kKe2Size);
    randombytes_buf(step.login.ke2.data(), step.login.ke2.size());
    randombytes_buf(step.proof.data(), step.proof.size());
    return step;
  }
  shamir::Share key{static_cast<uint8_t>(pos + 1),
                    SecretBytes::Copy(share.oprf_key_share())};
  ristretto255::Element public_share = desc->realms[pos].public_share;
  if (test_realm::Mode() == Fault::kKnownKey) {
    key.value = SystemRandom().Scalar();
    public_share = *ristretto255::ScalarMultBase(key.value);
  }
  BKV_ASSIGN_OR_RETURN(
      auto binding,
      threshold::ProofBinding(
          std::string_view(realm_id.data(), realm_id.size()), desc->version));
  BKV_ASSIGN_OR_RETURN(
      threshold::PartialEvaluation eval,
      threshold::EvaluateShare(key, public_share, ke1.blinded_message, binding,
                               SystemRandom()));
  BKV_ASSIGN_OR_RETURN(opaque::RegistrationRecord opaque_record,
                       StoredOpaqueRecord(record.opaque_record()));
  BKV_ASSIGN_OR_RETURN(
      opaque::ServerLoginStart login,
      opaque.GenerateKE2WithOprfKey(opaque_record, key.value, ke1));
  const auto ke2 = login.ke2.Serialize();
  step.login.ke2.assign(ke2.begin(), ke2.end());
  step.proof = eval.proof;
  return step;
}

// The test realm's lies in the free status round (tests/server/test_realm.h).
void LieInStatus(Vault::ThresholdStatusView& out) {
  using test_realm::Fault;
  switch (test_realm::Mode()) {
    case Fault::kStatusNewer: {
      auto d = threshold::Descriptor::Parse(out.descriptor);
      if (!d.ok()) return;
      d->epoch += 1;
      d->version[0] ^= 0x01;
      out.descriptor = d->Serialize();
      const auto c = d->Commitment();
      out.commitment.assign(c.begin(), c.end());
      out.epoch = d->epoch;
      return;
    }
    case Fault::kStatusMore:
      out.status.attempts_remaining = out.status.attempt_limit + 5;
      return;
    case Fault::kStatusFewer:
      out.status.attempts_remaining = 1;
      return;
    case Fault::kStatusLocked:
      out.status.status = policy::Status::kLocked;
      out.status.attempts_remaining = 0;  // the rest as a locked realm's
      return;
    case Fault::kStatusGarbage:
      out.descriptor.resize(200);
      randombytes_buf(out.descriptor.data(), out.descriptor.size());
      out.commitment.resize(crypto_hash_sha256_BYTES);
      crypto_hash_sha256(out.commitment.data(), out.descriptor.data(),
                         out.descriptor.size());
      return;
    default:
      return;
  }
}
#endif

}  // namespace

absl::Status Vault::CheckRealm() const {
  if (options_.realm_id.empty() || options_.realm_keys == nullptr) {
    return Refused(
        "this vault is not a realm of a threshold set: set [realm] id in its "
        "configuration (docs/threshold.md)");
  }
  return absl::OkStatus();
}

absl::StatusOr<Vault::ThresholdStatusView> Vault::ThresholdStatus(
    absl::string_view account) {
  BKV_RETURN_IF_ERROR(CheckRealm());
  ThresholdStatusView out;
  // One read of the record (may lock, counts 0): this is every recovery's
  // first call at a realm.
  BKV_ASSIGN_OR_RETURN(StatusRead read, ReadStatus(account));
  out.status = std::move(read.view);
  if (!read.record) return out;
  const std::optional<UserRecord>& raw = read.record;
  out.epoch = raw->realm_epoch();
  if (raw->realm_tombstone()) return out;
  const std::string& pending = raw->pending_realm().commitment();
  out.pending_commitment.assign(pending.begin(), pending.end());
  if (raw->has_pending_realm()) {
    const int64_t until =
        raw->pending_realm().prepared_unix_ms() + options_.pending_ttl_ms;
    out.pending_busy_ms = std::max<int64_t>(0, until - options_.now_ms());
  }
  out.pending_expired =
      raw->has_pending_realm() &&
      options_.now_ms() >=
          raw->pending_realm().prepared_unix_ms() + options_.pending_ttl_ms;
  if (!raw->has_realm()) return out;
  const RealmShare& r = raw->realm();
  out.commitment.assign(r.commitment().begin(), r.commitment().end());
  out.descriptor.assign(r.descriptor_bytes().begin(),
                        r.descriptor_bytes().end());
  out.committed_limit = r.per_realm_limit();
#ifdef BKV_TEST_REALM
  LieInStatus(out);
#endif
  return out;
}

absl::StatusOr<Vault::RegisterTicket> Vault::ThresholdRegisterStart(
    absl::string_view account) {
  BKV_RETURN_IF_ERROR(CheckRealm());
  RegisterTicket out;
  if (RAND_bytes(out.realm_nonce.data(), out.realm_nonce.size()) != 1) {
    std::abort();  // no randomness: nothing safe to do
  }
  LoginTicket t =
      StatelessTicket(TicketPurpose::kRealmRegister, 0,
                      options_.now_ms() + options_.limits.login_ttl_ms);
  t.binding.assign(out.realm_nonce.begin(), out.realm_nonce.end());
  BKV_ASSIGN_OR_RETURN(out.ticket, SealTicket(ticket_sealer_, account, t));
  auto raw = store_.Get(std::string_view(account.data(), account.size()));
  if (!raw.ok() && !absl::IsNotFound(raw.status())) return raw.status();
  if (raw.ok()) out.epoch = raw->realm_epoch();
  return out;
}

absl::Status Vault::ThresholdRegisterPrepare(
    absl::string_view account, std::span<const uint8_t> ticket_bytes,
    std::span<const uint8_t> descriptor_bytes,
    std::span<const uint8_t> record_bytes, std::span<const uint8_t> payload,
    std::span<const uint8_t> proof) {
  BKV_RETURN_IF_ERROR(CheckRealm());
#ifdef BKV_TEST_REALM
  if (test_realm::Mode() == test_realm::Fault::kPrepareSkip) {
    return absl::OkStatus();  // the lie: "prepared", nothing stored
  }
#endif
  const int64_t now = options_.now_ms();
  auto ticket = OpenTicket(ticket_sealer_, account,
                           TicketPurpose::kRealmRegister, ticket_bytes, now);
  if (!ticket.ok()) return StateError("ticket", ticket.status());
  auto d = threshold::Descriptor::Parse(descriptor_bytes);
  if (!d.ok()) return FieldError("descriptor", d.status());
  BKV_ASSIGN_OR_RETURN(size_t pos, PositionOf(*d, options_.realm_id,
                                              options_.realm_keys->public_key));
  if (d->per_realm_limit > options_.limits.attempt_limit) {
    return Refused(  // the limit-lowering rule (docs/threshold.md)
        absl::StrCat(
            "the descriptor's per-realm limit G = ", d->per_realm_limit,
            " is above this realm's "
            "attempt limit ",
            options_.limits.attempt_limit));
  }
  if (d->ksf.memory_kib < options_.limits.min_ksf_memory_kib) {
    return absl::InvalidArgumentError(
        absl::StrCat("descriptor: Argon2id memory must be at least ",
                     options_.limits.min_ksf_memory_kib, " KiB on this realm"));
  }
  auto record = opaque::RegistrationRecord::Parse(record_bytes);
  if (!record.ok()) return FieldError("record", record.status());
  threshold::RealmNonce nonce;
  if (ticket->binding.size() != nonce.size()) {  // only Start seals these
    return WithAttempt(absl::InternalError("register ticket: bad binding"),
                       kNotCounted);
  }
  std::copy_n(ticket->binding.begin(), nonce.size(), nonce.begin());
  auto opened = threshold::OpenAsRealm(
      options_.realm_keys->private_key,
      threshold::PrepareContext(account, *d, nonce, record_bytes), payload);
  if (!opened.ok() || opened->size() != kPayloadSize) {
    return absl::InvalidArgumentError(
        "payload does not open for this realm, ticket, descriptor and record "
        "(or is not 124 bytes): start again with ThresholdRegisterStart");
  }
  const auto p = opened->Reveal();
  SecretBytes k_i = SecretBytes::Copy(p.first(kShareSize));
  SecretBytes s_i = SecretBytes::Copy(p.subspan(kShareSize, kShareSize));
  const auto wrapped = p.subspan(2 * kShareSize);
  // A share that is not the committed one is the dealer's error.
  for (auto [kind, share] : {std::pair{threshold::ShareKind::kKey, &k_i},
                             std::pair{threshold::ShareKind::kSecond, &s_i}}) {
    if (auto s = threshold::CheckShare(*d, pos, kind, *share); !s.ok()) {
      return FieldError("payload", s);
    }
  }
  if (Sha256(wrapped) != Str(d->wrapped_hash)) {
    return absl::InvalidArgumentError(
        "payload: the wrapped key does not match the descriptor's hash");
  }
  BKV_ASSIGN_OR_RETURN(uint64_t proof_id,
                       ProofRegistrationId(account, proof, now));
  RealmShare share;
  const ShareEraser erase_share{&share};
  share.set_registration_version(Str(d->version));
  share.set_per_realm_limit(d->per_realm_limit);
  share.set_descriptor_bytes(Str(descriptor_bytes));
  share.set_oprf_key_share(std::string(k_i.RevealAsString()));
  share.set_secret_share(std::string(s_i.RevealAsString()));
  share.set_wrapped_key(Str(wrapped));
  share.set_epoch(d->epoch);
  share.set_opaque_record(Str(record_bytes));
  share.set_commit_hash(Str(d->commit_hash));
  share.set_commitment(Str(d->Commitment()));
  *share.mutable_ksf() = ToProto(d->ksf);
  BKV_RETURN_IF_ERROR(WithAttempt(audit_.Ready(), kNotCounted));
  BKV_ASSIGN_OR_RETURN(realm_policy::PrepareDecision decision,
                       Mutate(
                           store_, cache_, account,
                           [&](const std::optional<UserRecord>& current) {
                             return realm_policy::Prepare(
                                 current, share, proof_id, now,
                                 options_.pending_ttl_ms, options_.limits);
                           },
                           /*raw=*/true));
  if (decision.next) {  // written and sealed: this copy of the share goes
    const ShareEraser erase_written{decision.next->mutable_pending_realm()};
  }
  switch (decision.outcome) {
    case realm_policy::PrepareOutcome::kProceed:
      if (decision.next->shred_pending()) SettleShred(account);
      break;
    case realm_policy::PrepareOutcome::kEpochTooFar:
      return WithAttempt(
          WithDetail(
              absl::FailedPreconditionError(absl::StrCat(
                  "the descriptor's epoch ", d->epoch,
                  " jumps too far above this realm's epoch ", decision.epoch,
                  " for the account (at most 2^32 above it and below 2^63): "
                  "take one above the highest epoch the realms report")),
              ErrorDetail::REASON_STATE_EXPIRED),
          kNotCounted);
    case realm_policy::PrepareOutcome::kLocked:
      return Locked();
    case realm_policy::PrepareOutcome::kProofRequired:
      return ProofRequired("replacing");
    case realm_policy::PrepareOutcome::kStaleEpoch:
      return WithDetail(
          absl::FailedPreconditionError(absl::StrCat(
              "the descriptor's epoch ", d->epoch,
              " is not above this realm's epoch ", decision.epoch,
              " for the account (a replayed or outdated registration): "
              "register again with a higher epoch")),
          ErrorDetail::REASON_STATE_EXPIRED);
    case realm_policy::PrepareOutcome::kPendingBusy:
      return WithDetail(
          absl::FailedPreconditionError(absl::StrCat(
              "another registration is pending at this realm; retry in ",
              decision.retry_after_ms, " ms or commit it")),
          ErrorDetail::REASON_RATE_LIMITED, 0,
          static_cast<uint32_t>(
              std::min<int64_t>(decision.retry_after_ms, UINT32_MAX)));
  }
  LogAfterWrite("threshold_prepare audit",
                Audit("threshold_prepare", account, "pending", -1));
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> Vault::ThresholdRegisterCommit(
    absl::string_view account, std::span<const uint8_t> version,
    const SecretBytes& commit_secret) {
  BKV_RETURN_IF_ERROR(CheckRealm());
  if (version.size() != threshold::kVersionSize) {
    return absl::InvalidArgumentError("version: must be 16 bytes");
  }
  if (commit_secret.size() != 32) {
    return absl::InvalidArgumentError("commit_secret: must be 32 bytes");
  }
  const std::string hash = Sha256(commit_secret.Reveal());
  const int64_t now = options_.now_ms();
  const uint64_t registration_id = RandomId();
  BKV_RETURN_IF_ERROR(WithAttempt(audit_.Ready(), kNotCounted));
  BKV_ASSIGN_OR_RETURN(realm_policy::CommitDecision d,
                       Mutate(store_, cache_, account,
                              [&](const std::optional<UserRecord>& current) {
                                auto d = realm_policy::Commit(
                                    current, Str(version), hash,
                                    registration_id, now, options_.limits);
                                if (d.next && (d.superseded_active ||
                                               current->shred_pending())) {
                                  d.next->set_shred_pending(true);
                                }
                                return d;
                              }));
  switch (d.outcome) {
    case realm_policy::CommitOutcome::kCommitted:
#ifdef BKV_TEST_REALM
      if (d.next->shred_pending() &&
          test_realm::Mode() == test_realm::Fault::kKillBeforeShred) {
        raise(SIGKILL);
      }
#endif
      if (d.next->shred_pending()) SettleShred(account);
      LogAfterWrite("threshold_commit audit",
                    Audit("threshold_commit", account, "active", d.limit));
      return d.limit;
    case realm_policy::CommitOutcome::kAlreadyActive:
      return d.limit;  // a repeated Commit (roll-forward)
    case realm_policy::CommitOutcome::kLocked:
      return Locked();
    case realm_policy::CommitOutcome::kStale:
      break;
  }
  return WithDetail(absl::FailedPreconditionError(
                        "no prepared registration matches this version and "
                        "commit secret: register again"),
                    ErrorDetail::REASON_STATE_EXPIRED);
}

absl::StatusOr<Vault::ThresholdStep> Vault::ThresholdRecoverStart(
    absl::string_view account, std::span<const uint8_t> commitment,
    absl::string_view realm_id, std::span<const uint8_t> ke1_bytes) {
  auto ke1 = opaque::KE1::Parse(ke1_bytes);
  if (!ke1.ok()) {
    return WithAttempt(FieldError("ke1", ke1.status()), kNotCounted);
  }
  BKV_RETURN_IF_ERROR(CheckRealm());
  if (realm_id != options_.realm_id) {
    // The caller's id is not echoed: it is arbitrary bytes.
    return Refused(absl::StrCat("this is realm '", options_.realm_id,
                                "', not the realm id sent (", realm_id.size(),
                                " bytes): check the client's realm set"));
  }
#ifdef BKV_TEST_REALM
  if (test_realm::LiesAtRecoverStart(test_realm::Mode())) {
    auto raw = store_.Get(std::string_view(account.data(), account.size()));
    if (!raw.ok() || !raw->has_realm()) return NotRegistered();
    return MaliciousStart(*raw, options_.realm_id, *options_.realm_keys,
                          opaque_, *ke1);
  }
#endif
  if (auto ready = audit_.Ready(); !ready.ok()) {
    return WithAttempt(ready, kNotCounted);
  }
  bool mismatch = false;
  BKV_ASSIGN_OR_RETURN(
      policy::StartDecision d, CountStart(account, [&](const UserRecord& r) {
        mismatch = !r.has_realm() || r.realm().commitment() != Str(commitment);
        return !mismatch;
      }));
  if (mismatch) {
    return Refused(
        "the commitment is not this realm's active registration for the "
        "account: ask ThresholdStatus again");
  }
  BKV_RETURN_IF_ERROR(RefuseStart(account, d));
  if (d.outcome == policy::StartOutcome::kNotRegistered) {
    return WithAttempt(NotRegistered(), kNotCounted);
  }
  auto step = AnswerThresholdStart(account, *ke1, d);
  if (!step.ok()) return Refund(account, d, step.status());
  metrics_.CountAttempt("started");
  return step;
}

absl::StatusOr<Vault::ThresholdStep> Vault::AnswerThresholdStart(
    absl::string_view account, const opaque::KE1& ke1,
    const policy::StartDecision& d) {
  const RealmShare& share = d.next->realm();
  BKV_ASSIGN_OR_RETURN(opaque::RegistrationRecord record,
                       StoredOpaqueRecord(d.next->opaque_record()));
  BKV_ASSIGN_OR_RETURN(threshold::Descriptor desc,
                       realm_policy::StoredDescriptor(share));
  BKV_ASSIGN_OR_RETURN(size_t pos, PositionOf(desc, options_.realm_id,
                                              options_.realm_keys->public_key));
  shamir::Share k_i{static_cast<uint8_t>(pos + 1),
                    SecretBytes::Copy(share.oprf_key_share())};
  BKV_ASSIGN_OR_RETURN(
      auto binding, threshold::ProofBinding(options_.realm_id, desc.version));
  BKV_ASSIGN_OR_RETURN(
      threshold::PartialEvaluation eval,
      threshold::EvaluateShare(k_i, desc.realms[pos].public_share,
                               ke1.blinded_message, binding, SystemRandom()));
  BKV_ASSIGN_OR_RETURN(opaque::ServerLoginStart login,
                       opaque_.GenerateKE2WithOprfKey(record, k_i.value, ke1));
  BKV_ASSIGN_OR_RETURN(LoginStep step, CountedLogin(account, d, login,
                                                    "threshold_recover_start"));
  return ThresholdStep{std::move(step), eval.proof, d.attempts_remaining};
}

}  // namespace bkv::server
