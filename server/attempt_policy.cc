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

uint32_t Remaining(const UserRecord& r) {
  return r.attempts_used() >= r.attempt_limit()
             ? 0
             : r.attempt_limit() - r.attempts_used();
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
  return logins->size() != before;
}

// Attempts used up and no login left that could still succeed: the key is
// destroyed for good. Returns whether the record changed.
bool MaybeLock(UserRecord& r, int64_t now_ms) {
  if (r.state() != RECORD_STATE_ACTIVE || Remaining(r) > 0 ||
      r.open_logins_size() > 0) {
    return false;
  }
  r.set_state(RECORD_STATE_LOCKED);
  r.clear_sealed_backup_key();
  r.clear_pending_opaque_record();
  r.clear_pending_ksf();
  r.clear_pending_registration_id();
  r.set_updated_unix_ms(now_ms);
  return true;
}

}  // namespace

StatusView GetStatus(const std::optional<UserRecord>& current, int64_t now_ms) {
  if (!current || current->state() == RECORD_STATE_PENDING) {
    return {Status::kNone, 0, 0, std::nullopt};
  }
  if (current->state() == RECORD_STATE_LOCKED) {
    return {Status::kLocked, 0, current->attempt_limit(), std::nullopt};
  }
  UserRecord next = *current;
  const bool pruned = PruneExpired(next, now_ms);
  if (MaybeLock(next, now_ms)) {
    return {Status::kLocked, 0, next.attempt_limit(), next};
  }
  // Expired logins are only dropped lazily; no need to write for them alone.
  (void)pruned;
  return {Status::kActive, Remaining(next), next.attempt_limit(), std::nullopt};
}

StartDecision RecoverStart(const std::optional<UserRecord>& current,
                           int64_t now_ms, const Limits& limits) {
  StartDecision d;
  if (!current || current->state() == RECORD_STATE_PENDING) {
    d.outcome = StartOutcome::kNotRegistered;
    d.attempts_remaining = limits.attempt_limit - 1;
    d.expires_ms = now_ms + limits.login_ttl_ms;
    return d;
  }
  if (current->state() == RECORD_STATE_LOCKED) {
    d.outcome = StartOutcome::kLocked;
    return d;
  }
  UserRecord next = *current;
  PruneExpired(next, now_ms);
  if (MaybeLock(next, now_ms)) {
    d.outcome = StartOutcome::kLocked;
    d.next = std::move(next);
    return d;
  }
  if (Remaining(next) == 0) {
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
  d.attempts_remaining = Remaining(next);
  d.next = std::move(next);
  return d;
}

FinishDecision RecoverFinish(const std::optional<UserRecord>& current,
                             uint64_t registration_id, uint64_t login_seq,
                             bool ke3_valid, int64_t now_ms) {
  FinishDecision d;
  if (current && current->state() == RECORD_STATE_LOCKED) {
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
    if (MaybeLock(next, now_ms)) {
      d.outcome = FinishOutcome::kLocked;
      d.next = std::move(next);
      return d;
    }
    d.outcome = FinishOutcome::kStale;
    d.attempts_remaining = Remaining(next);
    return d;
  }
  logins->erase(it);
  next.set_updated_unix_ms(now_ms);
  if (ke3_valid) {
    next.set_attempts_used(0);
    next.clear_open_logins();
    d.outcome = FinishOutcome::kRelease;
    d.attempts_remaining = Remaining(next);
    d.next = std::move(next);
    return d;
  }
  PruneExpired(next, now_ms);
  d.outcome = MaybeLock(next, now_ms) ? FinishOutcome::kLocked
                                      : FinishOutcome::kInvalidLogin;
  d.attempts_remaining = Remaining(next);
  d.next = std::move(next);
  return d;
}

RegisterDecision RegisterFinish(const std::optional<UserRecord>& current,
                                const std::string& opaque_record,
                                const storage::v1::KsfParams& ksf,
                                uint64_t new_registration_id, int64_t now_ms,
                                const Limits& limits) {
  RegisterDecision d;
  if (current && current->state() == RECORD_STATE_LOCKED) {
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
  // Only the pending slot changes: an active record keeps its key, counter
  // and open logins until a verified commit.
  next.set_pending_opaque_record(opaque_record);
  *next.mutable_pending_ksf() = ksf;
  next.set_pending_registration_id(new_registration_id);
  next.set_updated_unix_ms(now_ms);
  d.outcome = RegisterOutcome::kProceed;
  d.pending_registration_id = new_registration_id;
  d.expires_ms = now_ms + limits.login_ttl_ms;
  d.next = std::move(next);
  return d;
}

RegisterDecision RegisterCommit(const std::optional<UserRecord>& current,
                                uint64_t pending_registration_id,
                                bool ke3_valid, const std::string& wrapped_key,
                                int64_t now_ms, const Limits& limits) {
  RegisterDecision d;
  if (current && current->state() == RECORD_STATE_LOCKED) {
    d.outcome = RegisterOutcome::kLocked;
    return d;
  }
  if (!current || current->pending_opaque_record().empty() ||
      current->pending_registration_id() != pending_registration_id) {
    d.outcome = RegisterOutcome::kStale;
    return d;
  }
  if (!ke3_valid) {
    d.outcome = RegisterOutcome::kInvalidProof;
    return d;
  }
  UserRecord next = *current;
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
  next.set_updated_unix_ms(now_ms);
  d.outcome = RegisterOutcome::kProceed;
  d.pending_registration_id = pending_registration_id;
  d.next = std::move(next);
  return d;
}

}  // namespace bkv::server::policy
