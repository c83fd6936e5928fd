#include "server/realm_policy.h"

#include <sodium.h>

#include <span>

namespace bkv::server::realm_policy {

using storage::v1::RECORD_STATE_ACTIVE;
using storage::v1::RECORD_STATE_LOCKED;
using storage::v1::RECORD_STATE_PENDING;

namespace {

// policy::Authorize, and a proof of the version the last Commit superseded
// while the committed one was never recovered here.
policy::Authority AuthorizePrepare(const std::optional<UserRecord>& live,
                                   uint64_t proof_registration_id,
                                   int64_t now_ms,
                                   const policy::Limits& limits) {
  const policy::Authority a =
      policy::Authorize(live, proof_registration_id, now_ms, limits);
  if (a == policy::Authority::kProofRequired && proof_registration_id != 0 &&
      proof_registration_id == live->superseded_registration_id()) {
    return policy::Authority::kProof;
  }
  return a;
}

}  // namespace

PrepareDecision Prepare(const std::optional<UserRecord>& current,
                        const RealmShare& share, uint64_t proof_registration_id,
                        int64_t now_ms, int64_t pending_ttl_ms,
                        const policy::Limits& limits) {
  const uint64_t epoch = current ? current->realm_epoch() : 0;
  std::optional<UserRecord> live = current;
  if (live && live->realm_tombstone()) live.reset();
  if (policy::IsLocked(live)) return {PrepareOutcome::kLocked, {}, epoch};
  // Before authority: a replayed Prepare is refused whatever it carries.
  if (share.epoch() <= epoch) return {PrepareOutcome::kStaleEpoch, {}, epoch};
  if (share.epoch() > kMaxEpoch || share.epoch() - epoch > kMaxEpochJump) {
    return {PrepareOutcome::kEpochTooFar, {}, epoch};
  }
  const policy::Authority authority =
      AuthorizePrepare(live, proof_registration_id, now_ms, limits);
  if (authority == policy::Authority::kProofRequired) {
    return {PrepareOutcome::kProofRequired, {}, epoch};
  }
  if (live && live->has_pending_realm()) {
    const int64_t until =
        live->pending_realm().prepared_unix_ms() + pending_ttl_ms;
    if (now_ms < until) {
      return {PrepareOutcome::kPendingBusy, {}, epoch, until - now_ms};
    }
  }
  UserRecord next = live ? *live : UserRecord();
  if (!live) {
    next.set_state(RECORD_STATE_PENDING);
    next.set_created_unix_ms(now_ms);
  }
  // One pending registration at a time: a v2 one can no longer commit (its
  // id is consumed), and a replaced share leaves storage history.
  if (next.has_pending_realm() || !next.pending_opaque_record().empty()) {
    next.set_shred_pending(true);
  }
  policy::ClearPending(next, now_ms, limits);
  // As in v2: a version a due reset authorized goes when the password holder
  // shows up (a successful recovery clears the reset and it).
  next.set_pending_via_reset(authority == policy::Authority::kDueReset);
  *next.mutable_pending_realm() = share;
  next.mutable_pending_realm()->set_prepared_unix_ms(now_ms);
  next.set_realm_epoch(share.epoch());
  next.set_updated_unix_ms(now_ms);
  return {PrepareOutcome::kProceed, std::move(next), epoch};
}

CommitDecision Commit(const std::optional<UserRecord>& current,
                      const std::string& version,
                      const std::string& commit_hash, uint64_t registration_id,
                      int64_t now_ms, const policy::Limits& limits) {
  if (!current || current->realm_tombstone()) {
    return {CommitOutcome::kStale, std::nullopt};
  }
  if (current->state() == RECORD_STATE_LOCKED)
    return {CommitOutcome::kLocked, std::nullopt};
  const RealmShare& active = current->realm();
  if (current->state() == RECORD_STATE_ACTIVE && current->has_realm() &&
      active.registration_version() == version &&
      active.commit_hash() == commit_hash) {
    return {CommitOutcome::kAlreadyActive, {}, false, active.per_realm_limit()};
  }
  const RealmShare& pending = current->pending_realm();
  if (!current->has_pending_realm() ||
      pending.registration_version() != version ||
      pending.commit_hash() != commit_hash) {
    return {CommitOutcome::kStale, std::nullopt};
  }
  UserRecord next = *current;
  RealmShare share = pending;
  next.set_opaque_record(share.opaque_record());
  share.clear_opaque_record();
  share.clear_prepared_unix_ms();
  next.set_sealed_backup_key(share.wrapped_key());
  *next.mutable_ksf() = share.ksf();
  next.set_attempt_limit(share.per_realm_limit());
  next.set_attempts_used(0);
  next.clear_open_logins();
  next.set_registration_id(registration_id);
  next.set_state(RECORD_STATE_ACTIVE);
  next.clear_reset_requested_unix_ms();
  next.clear_pending_via_reset();
  next.clear_pending_realm();
  next.set_updated_unix_ms(now_ms);
  *next.mutable_realm() = std::move(share);
  const bool superseded = current->state() == RECORD_STATE_ACTIVE;
  // Until this version is recovered here, a proof of the one it replaced
  // still authorizes a Prepare (the way out of an interrupted commit).
  next.set_superseded_registration_id(superseded ? current->registration_id()
                                                 : 0);
  if (superseded) {
    policy::Consume(next, current->registration_id(), now_ms, limits);
  }
  return {CommitOutcome::kCommitted, std::move(next), superseded,
          pending.per_realm_limit()};
}

absl::StatusOr<threshold::Descriptor> StoredDescriptor(
    const RealmShare& share) {
  const std::string& raw = share.descriptor_bytes();
  const std::span<const uint8_t> bytes(
      reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  auto desc = threshold::Descriptor::ParseSealed(bytes);
  if (!desc.ok()) return absl::DataLossError("stored descriptor is corrupt");
  std::string hash(crypto_hash_sha256_BYTES, '\0');
  crypto_hash_sha256(reinterpret_cast<uint8_t*>(hash.data()), bytes.data(),
                     bytes.size());
  if (hash != share.commitment()) {
    return absl::DataLossError(
        "stored descriptor does not match its commitment");
  }
  if (desc->epoch != share.epoch() || desc->epoch > kMaxEpoch ||
      desc->per_realm_limit != share.per_realm_limit()) {
    return absl::DataLossError(
        "stored descriptor does not match its record (epoch or G)");
  }
  return desc;
}

}  // namespace bkv::server::realm_policy
