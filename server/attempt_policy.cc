#include "server/attempt_policy.h"

#include <algorithm>

namespace bkv::server::policy {
namespace {

using storage::v1::RECORD_STATE_ACTIVE;
using storage::v1::RECORD_STATE_LOCKED;
using storage::v1::RECORD_STATE_PENDING;

bool IsActive(const std::optional<UserRecord>& r) {
  return r && r->state() == RECORD_STATE_ACTIVE;
}

uint32_t Remaining(const UserRecord& r, const Limits& limits) {
  const uint32_t limit = EffectiveLimit(r, limits);
  return r.attempts_used() >= limit ? 0 : limit - r.attempts_used();
}

// Drops logins past their expiry. Returns whether any was dropped.
bool PruneExpired(UserRecord& r, int64_t now_ms) {
  auto* logins = r.mutable_open_logins();
  const int before = logins->size();
  logins->erase(std::remove_if(logins->begin(), logins->end(),
                               [&](const storage::v1::OpenLogin& l) {
                                 return l.expires_unix_ms() <= now_ms;
                               }),
                logins->end());
  auto* consumed = r.mutable_consumed_registrations();
  consumed->erase(
      std::remove_if(consumed->begin(), consumed->end(),
                     [&](const storage::v1::ConsumedRegistration& c) {
                       return c.expires_unix_ms() <= now_ms;
                     }),
      consumed->end());
  return logins->size() != before;
}

bool IsConsumed(const UserRecord& r, uint64_t id) {
  if (id == r.registration_id() || id == r.pending_registration_id()) {
    return true;
  }
  for (const auto& c : r.consumed_registrations()) {
    if (c.registration_id() == id) return true;
  }
  return false;
}

}  // namespace

void Consume(UserRecord& r, uint64_t id, int64_t now_ms, const Limits& limits) {
  if (id == 0) return;
  auto* c = r.add_consumed_registrations();
  c->set_registration_id(id);
  c->set_expires_unix_ms(now_ms + limits.login_ttl_ms);
}

void ClearPending(UserRecord& r, int64_t now_ms, const Limits& limits) {
  Consume(r, r.pending_registration_id(), now_ms, limits);
  r.clear_pending_opaque_record();
  r.clear_pending_ksf();
  r.clear_pending_registration_id();
  r.clear_pending_via_reset();
  r.clear_pending_realm();  // a realm's prepared version (realm_policy.h)
}

namespace {

// Attempts used up and no login left that could still succeed: the key is
// destroyed for good. Returns whether the record changed.
bool MaybeLock(UserRecord& r, int64_t now_ms, const Limits& limits) {
  if (r.state() != RECORD_STATE_ACTIVE || Remaining(r, limits) > 0 ||
      r.open_logins_size() > 0) {
    return false;
  }
  r.set_state(RECORD_STATE_LOCKED);
  r.clear_sealed_backup_key();
  // A realm's shares go with the key (docs/threshold.md): k_i, s_i and
  // wrapped of the active version (a pending one goes with ClearPending).
  // The descriptor and G stay (the framing binds G; status reports them).
  if (r.has_realm()) {
    r.mutable_realm()->clear_oprf_key_share();
    r.mutable_realm()->clear_secret_share();
    r.mutable_realm()->clear_wrapped_key();
  }
  ClearPending(r, now_ms, limits);
  r.clear_reset_requested_unix_ms();
  r.set_updated_unix_ms(now_ms);
  return true;
}

}  // namespace

bool IsLocked(const std::optional<UserRecord>& r) {
  return r && r->state() == RECORD_STATE_LOCKED;
}

bool HeldKey(const UserRecord& r) {
  return r.state() != RECORD_STATE_PENDING || !r.opaque_record().empty() ||
         !r.sealed_backup_key().empty() || r.pending_via_reset() ||
         r.has_realm() || r.has_pending_realm();
}

uint32_t EffectiveLimit(const UserRecord& r, const Limits& limits) {
  return std::min(r.attempt_limit(), limits.attempt_limit);
}

bool MeetsMinimumKsf(const storage::v1::KsfParams& ksf, const Limits& limits) {
  return ksf.memory_kib() >= limits.min_ksf_memory_kib;
}

uint32_t UnknownAccountRemaining(const Limits& limits) {
  return limits.attempt_limit - 1;
}

int64_t ResetDueMs(const UserRecord& r, const Limits& limits) {
  return r.reset_requested_unix_ms() == 0
             ? 0
             : r.reset_requested_unix_ms() + limits.reset_delay_ms;
}

Authority Authorize(const std::optional<UserRecord>& current,
                    uint64_t proof_registration_id, int64_t now_ms,
                    const Limits& limits) {
  if (!IsActive(current)) return Authority::kNotNeeded;
  if (proof_registration_id != 0 &&
      proof_registration_id == current->registration_id()) {
    return Authority::kProof;
  }
  const int64_t due = ResetDueMs(*current, limits);
  if (due != 0 && now_ms >= due) return Authority::kDueReset;
  return Authority::kProofRequired;
}

StatusView GetStatus(const std::optional<UserRecord>& current, int64_t now_ms,
                     const Limits& limits) {
  if (!current || current->state() == RECORD_STATE_PENDING) {
    return {Status::kNone, 0, limits.attempt_limit, 0, 0, std::nullopt};
  }
  if (current->state() == RECORD_STATE_LOCKED) {
    return {Status::kLocked, 0, EffectiveLimit(*current, limits), 0, 0,
            std::nullopt};
  }
  UserRecord next = *current;
  PruneExpired(next, now_ms);
  if (MaybeLock(next, now_ms, limits)) {
    return {Status::kLocked, 0, EffectiveLimit(next, limits), 0, 0, next};
  }
  // Expired logins are only dropped lazily; no need to write for them alone.
  return {Status::kActive,
          Remaining(next, limits),
          EffectiveLimit(next, limits),
          next.registration_id(),
          ResetDueMs(next, limits),
          std::nullopt};
}

StartDecision RecoverStart(const std::optional<UserRecord>& current,
                           int64_t now_ms, const Limits& limits) {
  StartDecision d;
  if (!current || current->state() == RECORD_STATE_PENDING) {
    d.outcome = StartOutcome::kNotRegistered;
    d.attempts_remaining = UnknownAccountRemaining(limits);
    d.expires_ms = now_ms + limits.login_ttl_ms;
    return d;
  }
  if (IsLocked(current)) {
    d.outcome = StartOutcome::kLocked;
    return d;
  }
  UserRecord next = *current;
  PruneExpired(next, now_ms);
  if (MaybeLock(next, now_ms, limits)) {
    d.outcome = StartOutcome::kLocked;
    d.next = std::move(next);
    return d;
  }
  if (Remaining(next, limits) == 0) {
    // Used up, but a login is still open and may yet succeed: no new one.
    int64_t last = 0;
    for (const auto& l : next.open_logins()) {
      last = std::max(last, l.expires_unix_ms());
    }
    d.outcome = StartOutcome::kWaitForOpenLogin;
    d.retry_after_ms = last - now_ms;
    return d;
  }
  next.set_attempts_used(next.attempts_used() + 1);
  d.login_seq = next.next_login_seq();
  next.set_next_login_seq(d.login_seq + 1);
  d.expires_ms = now_ms + limits.login_ttl_ms;
  auto* login = next.add_open_logins();
  login->set_seq(d.login_seq);
  login->set_expires_unix_ms(d.expires_ms);
  next.set_updated_unix_ms(now_ms);
  d.outcome = StartOutcome::kProceed;
  d.registration_id = next.registration_id();
  d.attempts_remaining = Remaining(next, limits);
  d.next = std::move(next);
  return d;
}

std::optional<UserRecord> RefundStart(const std::optional<UserRecord>& current,
                                      uint64_t registration_id,
                                      uint64_t login_seq) {
  if (!IsActive(current) || current->registration_id() != registration_id) {
    return std::nullopt;
  }
  UserRecord next = *current;
  auto* logins = next.mutable_open_logins();
  auto it = std::find_if(
      logins->begin(), logins->end(),
      [&](const storage::v1::OpenLogin& l) { return l.seq() == login_seq; });
  if (it == logins->end() || next.attempts_used() == 0) return std::nullopt;
  logins->erase(it);
  next.set_attempts_used(next.attempts_used() - 1);
  return next;
}

FinishDecision RecoverFinish(const std::optional<UserRecord>& current,
                             uint64_t registration_id, uint64_t login_seq,
                             bool ke3_valid, int64_t now_ms,
                             const Limits& limits) {
  FinishDecision d;
  if (IsLocked(current)) {
    d.outcome = FinishOutcome::kLocked;
    return d;
  }
  if (!IsActive(current) || current->registration_id() != registration_id) {
    d.outcome = FinishOutcome::kStale;
    return d;
  }
  UserRecord next = *current;
  auto* logins = next.mutable_open_logins();
  auto it = std::find_if(
      logins->begin(), logins->end(),
      [&](const storage::v1::OpenLogin& l) { return l.seq() == login_seq; });
  const bool open = it != logins->end() && it->expires_unix_ms() > now_ms;
  if (!open) {
    PruneExpired(next, now_ms);
    if (MaybeLock(next, now_ms, limits)) {
      d.outcome = FinishOutcome::kLocked;
      d.next = std::move(next);
      return d;
    }
    d.outcome = FinishOutcome::kStale;
    d.attempts_remaining = Remaining(next, limits);
    return d;
  }
  logins->erase(it);
  next.set_updated_unix_ms(now_ms);
  if (ke3_valid) {
    next.set_attempts_used(0);
    next.clear_open_logins();
    // The password holder is here: a pending reset was not theirs, or is no
    // longer needed; a registration it authorized goes with it.
    next.clear_reset_requested_unix_ms();
    if (next.pending_via_reset()) {
      // Its record or shares must not stay in storage history (as a
      // replaced pending version's do not: realm_policy.cc).
      next.set_shred_pending(true);
      ClearPending(next, now_ms, limits);
    }
    // This version is recovered, so it reached t: proofs of the one it
    // replaced no longer authorize (docs/threshold.md, realm Commit).
    next.clear_superseded_registration_id();
    d.outcome = FinishOutcome::kRelease;
    d.attempts_remaining = Remaining(next, limits);
    d.next = std::move(next);
    return d;
  }
  PruneExpired(next, now_ms);
  d.outcome = MaybeLock(next, now_ms, limits) ? FinishOutcome::kLocked
                                              : FinishOutcome::kInvalidLogin;
  d.attempts_remaining = Remaining(next, limits);
  d.next = std::move(next);
  return d;
}

RegisterDecision RegisterFinish(const std::optional<UserRecord>& current,
                                const std::string& opaque_record,
                                const storage::v1::KsfParams& ksf,
                                uint64_t registration_id,
                                uint64_t proof_registration_id, int64_t now_ms,
                                const Limits& limits) {
  RegisterDecision d;
  if (IsLocked(current)) {
    d.outcome = RegisterOutcome::kLocked;
    return d;
  }
  UserRecord next;
  if (current) {
    next = *current;
  } else {
    next.set_state(RECORD_STATE_PENDING);
    next.set_attempt_limit(limits.attempt_limit);
    next.set_created_unix_ms(now_ms);
  }
  PruneExpired(next, now_ms);
  // Checked before authority, so a replay learns nothing and costs nothing.
  if (IsConsumed(next, registration_id)) {
    d.outcome = RegisterOutcome::kReplayed;
    return d;
  }
  const Authority authority =
      Authorize(current, proof_registration_id, now_ms, limits);
  if (authority == Authority::kProofRequired) {
    d.outcome = RegisterOutcome::kProofRequired;
    return d;
  }
  if (next.pending_registration_id() != 0 &&
      next.consumed_registrations_size() >= kMaxConsumedRegistrations) {
    int64_t first = next.consumed_registrations(0).expires_unix_ms();
    for (const auto& c : next.consumed_registrations()) {
      first = std::min(first, c.expires_unix_ms());
    }
    d.outcome = RegisterOutcome::kBusy;
    d.retry_after_ms = std::max<int64_t>(first - now_ms, 1);
    return d;
  }
  // Only the pending slot changes: an active record keeps its key, counter
  // and open logins until a verified commit.
  ClearPending(next, now_ms, limits);
  next.set_pending_opaque_record(opaque_record);
  *next.mutable_pending_ksf() = ksf;
  next.set_pending_registration_id(registration_id);
  next.set_pending_via_reset(authority == Authority::kDueReset);
  next.set_updated_unix_ms(now_ms);
  d.outcome = RegisterOutcome::kProceed;
  d.pending_registration_id = registration_id;
  d.expires_ms = now_ms + limits.login_ttl_ms;
  d.next = std::move(next);
  return d;
}

RegisterDecision RegisterCommit(const std::optional<UserRecord>& current,
                                uint64_t pending_registration_id,
                                bool pending_matches, bool ke3_valid,
                                const std::string& wrapped_key, int64_t now_ms,
                                const Limits& limits) {
  RegisterDecision d;
  if (IsLocked(current)) {
    d.outcome = RegisterOutcome::kLocked;
    return d;
  }
  if (!current || current->pending_opaque_record().empty() ||
      current->pending_registration_id() != pending_registration_id ||
      !pending_matches) {
    d.outcome = RegisterOutcome::kStale;
    return d;
  }
  if (!ke3_valid) {
    d.outcome = RegisterOutcome::kInvalidProof;
    return d;
  }
  UserRecord next = *current;
  PruneExpired(next, now_ms);
  d.superseded_active = IsActive(current);
  if (d.superseded_active)
    Consume(next, next.registration_id(), now_ms, limits);
  next.set_state(RECORD_STATE_ACTIVE);
  next.set_opaque_record(next.pending_opaque_record());
  *next.mutable_ksf() = next.pending_ksf();
  next.set_registration_id(pending_registration_id);
  next.set_sealed_backup_key(wrapped_key);
  next.set_attempts_used(0);
  next.set_attempt_limit(limits.attempt_limit);
  next.clear_open_logins();
  next.clear_pending_opaque_record();
  next.clear_pending_ksf();
  next.clear_pending_registration_id();
  next.clear_pending_via_reset();
  next.clear_reset_requested_unix_ms();
  next.set_updated_unix_ms(now_ms);
  d.outcome = RegisterOutcome::kProceed;
  d.pending_registration_id = pending_registration_id;
  d.next = std::move(next);
  return d;
}

ResetDecision RequestReset(const std::optional<UserRecord>& current,
                           int64_t now_ms, const Limits& limits) {
  ResetDecision d;
  if (IsLocked(current)) {
    d.outcome = ResetOutcome::kLocked;
    return d;
  }
  if (!IsActive(current)) {
    d.outcome = ResetOutcome::kNotRegistered;
    return d;
  }
  d.outcome = ResetOutcome::kRequested;
  if (current->reset_requested_unix_ms() == 0) {  // the first request stands
    UserRecord next = *current;
    next.set_reset_requested_unix_ms(now_ms);
    next.set_updated_unix_ms(now_ms);
    d.next = std::move(next);
  }
  d.due_ms = ResetDueMs(d.next ? *d.next : *current, limits);
  return d;
}

DeleteOutcome Delete(const std::optional<UserRecord>& current,
                     uint64_t proof_registration_id, int64_t now_ms,
                     const Limits& limits) {
  if (!current) return DeleteOutcome::kAbsent;
  return Authorize(current, proof_registration_id, now_ms, limits) ==
                 Authority::kProofRequired
             ? DeleteOutcome::kProofRequired
             : DeleteOutcome::kDelete;
}

}  // namespace bkv::server::policy
