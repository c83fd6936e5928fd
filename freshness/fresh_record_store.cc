#include "freshness/fresh_record_store.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "bkv/vault/v1/error_detail.h"
#include "bkv/vault/v1/vault.pb.h"
#include "crypto/status_macros.h"

namespace bkv::freshness {
namespace {

using storage::v1::UserRecord;
using vault::v1::ErrorDetail;

constexpr absl::string_view kOperatorAction =
    "restore the record store to its latest state and restart, or re-anchor "
    "with `bkv-vault rollback reanchor` (docs/operations.md)";
// A quorum node (a term above 0): the re-anchor goes across the members'
// tokens (review findings 2, 7 of issue 12; rollback.md "Re-anchor across N
// tokens").
constexpr absl::string_view kQuorumOperatorAction =
    "restore the record store to its latest state and restart, or re-anchor "
    "across the members' tokens: `cluster form --export`, `rollback reanchor "
    "--carry`, `cluster form --carry --decision` (docs/operations.md "
    "\"Re-anchoring a quorum\")";

absl::string_view OperatorAction(uint64_t term) {
  return term > 0 ? kQuorumOperatorAction : kOperatorAction;
}

// A store error after which the write may or may not be in the store.
bool Ambiguous(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsUnknown(s) || absl::IsInternal(s) ||
         absl::IsDeadlineExceeded(s);
}

// The record as the store keeps it after writing `r` at `version`.
UserRecord AsStored(UserRecord r, uint64_t version) {
  r.set_version(version);
  r.set_schema_version(storage::kSchemaVersion);
  return r;
}

// A tombstone commits to no leaf.
std::optional<LeafValue> LeafOf(const AccountKey& key, const UserRecord& r) {
  if (r.fresh_tombstone()) return std::nullopt;
  return LeafValue{RecordDigest(key, r), r.version()};
}

// Refused before this call wrote anything (REASON_VAULT_UNAVAILABLE,
// ATTEMPT_NOT_COUNTED): the head a write would wait for can't be taken now
// (the token, or the quorum's majority, is down).
absl::Status NotCounted(
    absl::string_view why, const absl::Status& s,
    ErrorDetail::Reason reason = ErrorDetail::REASON_VAULT_UNAVAILABLE) {
  ErrorDetail d;
  d.set_reason(reason);
  d.set_attempt(ErrorDetail::ATTEMPT_NOT_COUNTED);
  return vault::v1::AttachErrorDetail(
      absl::UnavailableError(absl::StrCat(
          why, " (", s.message(), "); this call counted nothing: retry later")),
      d);
}

// A fenced owner's refusal of a call that wrote nothing (review findings 4
// and 5 of issue 12): not counted, "not the owner" so clients fail over.
absl::Status FencedNotCounted(const std::string& fenced) {
  return NotCounted(
      "this vault node no longer owns the freshness chain (another node took "
      "over in a later term); account calls go to the current owner (an "
      "elected owner steps down by itself; one set by [freshness] owner must "
      "be restarted without it)",
      absl::UnavailableError(fenced), ErrorDetail::REASON_NOT_OWNER);
}

// A read waiting for an earlier write's head writes nothing itself (the
// earlier write still counts once a later head covers it, as its own
// answer said).
absl::Status NotCountedWhileWaiting(absl::Status s) {
  if (s.ok() || !absl::IsUnavailable(s)) return s;
  return NotCounted("an earlier write to this account is not anchored yet", s);
}

absl::Status UnsettledError(const AccountKey& key) {
  return absl::UnavailableError(absl::StrCat(
      "the store could not say whether the last write to account key ",
      storage::AccountKeyHex(key),
      " was applied; this account (only) is refused until a re-read settles "
      "it: retry later"));
}

// Genesis only over an empty store: a token without heads may be new,
// re-initialised or the wrong one, and whatever the store holds then is no
// proof of anything.
absl::Status GenesisAllowed(uint64_t records,
                            const std::vector<std::string>& stale,
                            uint64_t term) {
  const bool unreadable =
      std::any_of(stale.begin(), stale.end(),
                  [](const std::string& reason) { return !reason.empty(); });
  if (records == 0 && !unreadable) return absl::OkStatus();
  if (term > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the endorsement quorum has no committed head but the record store "
        "is not empty (",
        records,
        " records): a quorum is formed over an empty store only (moving an "
        "existing vault onto a quorum is not built, and `rollback reanchor` "
        "refuses on a quorum node); run this node without [freshness] "
        "members_file, or start from an empty store (docs/operations.md "
        "\"Several anchored vault nodes\")"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the token holds no freshness heads but the record store is not "
      "empty (",
      records,
      " records): anchoring an existing store is the security officer's "
      "decision; check that this is the right token, then run `bkv-vault "
      "rollback reanchor --genesis --so-pin-file FILE` (docs/operations.md "
      "\"Re-anchoring after a storage restore\")"));
}

}  // namespace

void Reanchored(UserRecord& r, uint32_t cap, uint32_t attempt_limit) {
  r.set_reset_requested_unix_ms(0);
  if (r.state() == storage::v1::RECORD_STATE_PENDING) return;
  r.clear_open_logins();
  r.clear_pending_opaque_record();
  r.clear_pending_ksf();
  r.set_pending_registration_id(0);
  r.set_pending_via_reset(false);
  // Against the effective limit (budget3 review finding 2): capped against
  // the record's own, a record registered at 10 under L = 5 read 0 left and
  // the next status call locked it and destroyed its key.
  const uint32_t limit = attempt_limit == 0
                             ? r.attempt_limit()
                             : std::min(r.attempt_limit(), attempt_limit);
  if (r.state() == storage::v1::RECORD_STATE_ACTIVE && limit > cap) {
    r.set_attempts_used(std::max(r.attempts_used(), limit - cap));
  }
}

FreshRecordStore::FreshRecordStore(storage::RecordStore& inner,
                                   HeadStore& heads, HeadTable table,
                                   const FreshnessOptions& options)
    : inner_(inner),
      heads_(heads),
      shard_count_(static_cast<uint32_t>(table.shards.size())),
      log_(options.log),
      attempt_limit_(options.attempt_limit),
      table_(std::move(table)),
      trees_(shard_count_),
      stale_(shard_count_) {}

absl::StatusOr<std::unique_ptr<FreshRecordStore>> FreshRecordStore::Open(
    storage::RecordStore& inner, HeadStore& heads,
    const FreshnessOptions& options) {
  if (options.shards == 0 || options.shards > 65536) {
    return absl::InvalidArgumentError("freshness shards must be 1 to 65536");
  }
  BKV_ASSIGN_OR_RETURN(std::optional<HeadTable> table, heads.Read());
  const bool genesis = !table.has_value();
  if (genesis) {
    table.emplace();
    table->shards.resize(options.shards,
                         {.ceremonies_left = options.ceremonies});
  } else if (table->shards.size() != options.shards) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the token's freshness heads cover ", table->shards.size(),
        " shards but the configuration says ", options.shards,
        ": the shard count is fixed when the heads are created; set "
        "freshness_shards = ",
        table->shards.size()));
  } else {  // budget review finding 5: adopted only within range
    BKV_RETURN_IF_ERROR(CheckHeadRanges(*table, {}));
  }
  // Budget review finding 5: the re-anchors left, beside the configured B.
  uint32_t min_left = UINT32_MAX;
  for (const ShardHead& h : table->shards) {
    min_left = std::min(min_left, h.ceremonies_left);
  }
  const int format = table->format;
  std::unique_ptr<FreshRecordStore> store(
      new FreshRecordStore(inner, heads, *std::move(table), options));
  store->Report(
      "info", "freshness_budget",
      {{"min_left", absl::StrCat(min_left)}, {"format", absl::StrCat(format)}});
  BKV_RETURN_IF_ERROR(store->Recover(genesis));
  return store;
}

void FreshRecordStore::Report(
    absl::string_view level, absl::string_view event,
    std::initializer_list<FreshnessLogField> fields) const {
  if (log_) log_(level, event, fields);
}

// The start-up check (docs/rollback.md "Start-up check and crash recovery").
absl::Status FreshRecordStore::Recover(bool genesis) {
  absl::MutexLock lock(&mu_);
  const uint64_t seq = table_.seq;
  adopted_seq_ = seq;
  std::vector<Pending> forward;
  uint64_t records = 0, max_tag = seq;
  BKV_RETURN_IF_ERROR(inner_.ForEach(
      [&](const AccountKey& key, const absl::StatusOr<UserRecord>& r) {
        const uint32_t s = ShardOf(key, shard_count_);
        if (!r.ok()) {
          stale_[s] = std::string(r.status().message());
          return true;
        }
        ++records;
        max_tag = std::max(max_tag, r->fresh_tag());
        const std::optional<LeafValue> own = LeafOf(key, *r);
        if (genesis || r->fresh_tag() <= seq) {
          trees_[s].Set(key, own);
          return true;
        }
        // Written, never covered by a head: the head covers its parent.
        if (!r->fresh_parent().empty()) {
          if (r->fresh_parent().size() != 32) {
            stale_[s] = "a record names a malformed parent";
            return true;
          }
          LeafValue parent;
          std::copy_n(r->fresh_parent().begin(), 32, parent.digest.begin());
          trees_[s].Set(key, parent);
        }
        forward.push_back(Pending{0, key, own});
        return true;
      }));
  if (genesis) {
    BKV_RETURN_IF_ERROR(GenesisAllowed(records, stale_, heads_.Term()));
  }
  HeadTable next = table_;
  for (uint32_t s = 0; s < shard_count_; ++s) {
    if (genesis) {
      next.shards[s].root = trees_[s].Root();
    } else if (stale_[s].empty() && trees_[s].Root() != table_.shards[s].root) {
      stale_[s] =
          absl::StrCat("its records do not match the token's head (seq ", seq,
                       "): the store holds an older or a different state");
    }
    if (!stale_[s].empty()) {
      Report("error", "freshness_shard_stale",
             {{"shard", absl::StrCat(s)},
              {"reason", stale_[s]},
              {"action", std::string(OperatorAction(heads_.Term()))}});
    }
  }
  if (genesis) {
    next.seq = 1;
    BKV_RETURN_IF_ERROR(heads_.Write(next));
    table_ = next;
    head_writes_++;
    Report("warn", "freshness_genesis",
           {{"records", absl::StrCat(records)},
            {"shards", absl::StrCat(shard_count_)}});
    return absl::OkStatus();
  }
  // One head covers them all, at a seq no record's tag exceeds: a record
  // reserved behind a head in flight carries seq + 2.
  const uint64_t target = std::max(seq + 1, max_tag);
  for (Pending& p : forward) {
    p.tag = target;
    if (stale_[ShardOf(p.key, shard_count_)].empty()) pending_.push_back(p);
  }
  if (pending_.empty()) return absl::OkStatus();
  Report("warn", "freshness_roll_forward",
         {{"records", absl::StrCat(pending_.size())}});
  next_seq_ = target;
  mu_.Unlock();
  absl::Status s = WaitCommitted(target);
  mu_.Lock();
  return s;
}

absl::Status FreshRecordStore::Stale(const AccountKey& key,
                                     absl::string_view what) const {
  stale_reads_++;
  const uint32_t shard = ShardOf(key, shard_count_);
  Report("error", "freshness_stale_record",
         {{"account_key", storage::AccountKeyHex(key)},
          {"shard", absl::StrCat(shard)},
          {"reason", std::string(what)},
          {"action", std::string(OperatorAction(heads_.Term()))}});
  ErrorDetail d;
  d.set_reason(ErrorDetail::REASON_STORAGE_ROLLED_BACK);
  d.set_attempt(ErrorDetail::ATTEMPT_NOT_COUNTED);
  return vault::v1::AttachErrorDetail(
      absl::UnavailableError(absl::StrCat(
          "the vault cannot prove that the stored record for account key ",
          storage::AccountKeyHex(key), " (shard ", shard, ") is the latest: ",
          what, ". Nothing was counted; the operator must act: ",
          OperatorAction(heads_.Term()))),
      d);
}

// Only a later owner writes a later term (it is sealed in the record): no
// rollback brings one back, so this is a step-down, not a storage alarm.
absl::Status FreshRecordStore::Superseded(const AccountKey& key,
                                          uint64_t term) const {
  const std::string why =
      absl::StrCat("the record of account key ", storage::AccountKeyHex(key),
                   " was written in term ", term, ", after this owner's term ",
                   heads_.Term());
  {
    absl::MutexLock lock(&mu_);
    if (fenced_.empty()) fenced_ = why;
  }
  Report("warn", "freshness_superseded",
         {{"account_key", storage::AccountKeyHex(key)},
          {"term", absl::StrCat(heads_.Term())},
          {"record_term", absl::StrCat(term)}});
  absl::Status s = FencedNotCounted(why);
  s.SetPayload(kSupersededPayload, absl::Cord("1"));
  return s;
}

absl::Status FreshRecordStore::CheckShard(const AccountKey& key) const {
  std::string reason;
  {
    absl::MutexLock lock(&mu_);
    if (!fenced_.empty()) return FencedNotCounted(fenced_);
    reason = stale_[ShardOf(key, shard_count_)];
  }
  if (reason.empty()) return absl::OkStatus();
  return Stale(key, absl::StrCat("its shard is stale: ", reason));
}

std::optional<FreshRecordStore::Pending> FreshRecordStore::FindPending(
    const AccountKey& key) const {
  for (const auto* list : {&pending_, &in_flight_}) {
    for (auto it = list->rbegin(); it != list->rend(); ++it) {
      if (it->key == key) return *it;
    }
  }
  return std::nullopt;
}

UserRecord FreshRecordStore::View(const AccountKey& key, UserRecord r) const {
  ShardHead head;
  {
    absl::MutexLock lock(&mu_);
    head = table_.shards[ShardOf(key, shard_count_)];
  }
  if (r.fresh_epoch() < head.epoch) Reanchored(r, head.cap, attempt_limit_);
  return r;
}

absl::StatusOr<UserRecord> FreshRecordStore::Get(
    std::string_view account_id) const {
  const AccountKey key = storage::DeriveAccountKey(account_id);
  absl::MutexLock stripe(&Stripe(key));
  BKV_RETURN_IF_ERROR(CheckShard(key));
  BKV_ASSIGN_OR_RETURN(UserRecord r, CheckedGet(account_id, key));
  return View(key, std::move(r));
}

// With the account's stripe held: the store's record, proven to be the one
// the head covers (or waiting for the head that will cover it).
absl::StatusOr<UserRecord> FreshRecordStore::CheckedGet(
    std::string_view id, const AccountKey& key) const {
  BKV_RETURN_IF_ERROR(SettleLeftover(id, key));
  absl::StatusOr<UserRecord> r = inner_.Get(id);
  if (!r.ok() && !absl::IsNotFound(r.status())) return r.status();
  std::optional<LeafValue> leaf;
  std::optional<Pending> pending;
  {
    absl::MutexLock lock(&mu_);
    leaf = trees_[ShardOf(key, shard_count_)].Get(key);
    pending = FindPending(key);
  }
  if (r.ok() && r->fresh_term() > heads_.Term()) {
    return Superseded(key, r->fresh_term());
  }
  const bool tombstone = r.ok() && r->fresh_tombstone();
  const std::optional<Digest> digest =
      r.ok() ? std::optional<Digest>(RecordDigest(key, *r)) : std::nullopt;
  if (pending && digest &&
      (pending->leaf ? pending->leaf->digest == *digest : tombstone)) {
    BKV_RETURN_IF_ERROR(NotCountedWhileWaiting(WaitCommitted(pending->tag)));
    leaf = pending->leaf;
  }
  if (!leaf) {
    if (r.ok() && !tombstone) {
      return Stale(key,
                   "the store holds a record where the anchored state "
                   "has none");
    }
    if (tombstone) (void)inner_.Delete(id, r->version());  // finish it
    return absl::NotFoundError(absl::StrCat("no record for account key ",
                                            storage::AccountKeyHex(key)));
  }
  if (!r.ok()) return Stale(key, "the record is missing from the store");
  if (*digest == leaf->digest) return r;
  if (FromFencedOwner(*r, *leaf)) {
    Report("warn", "freshness_adopted",
           {{"account_key", storage::AccountKeyHex(key)},
            {"term", absl::StrCat(r->fresh_term())}});
    BKV_RETURN_IF_ERROR(Commit(key, *r, Reserve()));
    if (!tombstone) return r;
    (void)inner_.Delete(id, r->version());
    return absl::NotFoundError(absl::StrCat("no record for account key ",
                                            storage::AccountKeyHex(key)));
  }
  return Stale(
      key,
      r->version() < leaf->version
          ? absl::StrCat("the store returned version ", r->version(),
                         ", older than the "
                         "anchored version ",
                         leaf->version)
          : absl::StrCat("the store returned a record (version ", r->version(),
                         ") that differs from the "
                         "anchored one (version ",
                         leaf->version, ")"));
}

// A record an earlier owner wrote from the committed leaf and could not get
// endorsed (docs/rollback.md "Fencing"): a decision made from the committed
// state whose KE2 never left, so committing it can only count more.
bool FreshRecordStore::FromFencedOwner(const UserRecord& r,
                                       const LeafValue& leaf) const {
  if (r.fresh_term() >= heads_.Term() || r.fresh_tag() <= adopted_seq_) {
    return false;
  }
  return r.fresh_parent() == DigestBytes(leaf.digest);
}

absl::StatusOr<uint64_t> FreshRecordStore::CompareAndSwap(
    std::string_view account_id, uint64_t expected_version,
    const UserRecord& next) {
  const AccountKey key = storage::DeriveAccountKey(account_id);
  absl::MutexLock stripe(&Stripe(key));
  BKV_RETURN_IF_ERROR(CheckShard(key));
  BKV_RETURN_IF_ERROR(RetryFailedHead());
  UserRecord copy = next;
  copy.set_fresh_tombstone(false);
  return Write(account_id, key, expected_version, std::move(copy));
}

absl::Status FreshRecordStore::Delete(std::string_view account_id,
                                      uint64_t expected_version) {
  const AccountKey key = storage::DeriveAccountKey(account_id);
  absl::MutexLock stripe(&Stripe(key));
  BKV_RETURN_IF_ERROR(CheckShard(key));
  BKV_RETURN_IF_ERROR(RetryFailedHead());
  UserRecord tombstone;
  tombstone.set_fresh_tombstone(true);
  BKV_ASSIGN_OR_RETURN(uint64_t v,
                       Write(account_id, key, expected_version, tombstone));
  // Anchored as deleted: the account reads as absent from here on, and a
  // tombstone left behind is removed on its next access.
  absl::Status s = inner_.Delete(account_id, v);
  if (!s.ok()) {
    Report("warn", "freshness_tombstone_left",
           {{"account_key", storage::AccountKeyHex(key)},
            {"error", std::string(s.message())}});
  }
  return absl::OkStatus();
}

// With the stripe held: checks `expected` against the anchored leaf, links
// `next` to it and writes it through.
absl::StatusOr<uint64_t> FreshRecordStore::Write(std::string_view id,
                                                 const AccountKey& key,
                                                 uint64_t expected,
                                                 UserRecord next) {
  BKV_RETURN_IF_ERROR(SettleLeftover(id, key));
  std::optional<LeafValue> leaf;
  uint32_t epoch = 0;
  {
    absl::MutexLock lock(&mu_);
    if (FindPending(key)) {
      return absl::AbortedError(
          absl::StrCat("a write to account key ", storage::AccountKeyHex(key),
                       " is still being anchored: re-read and retry"));
    }
    const uint32_t s = ShardOf(key, shard_count_);
    leaf = trees_[s].Get(key);
    epoch = table_.shards[s].epoch;
  }
  const uint64_t current = leaf ? leaf->version : kNoRecord;
  if (expected != current) {
    return absl::AbortedError(
        absl::StrCat("record for account key ", storage::AccountKeyHex(key),
                     " is at anchored version ", current, " (0: none), not ",
                     expected, ": re-read and retry"));
  }
  next.set_fresh_parent(leaf ? DigestBytes(leaf->digest) : "");
  next.set_fresh_epoch(epoch);
  next.set_fresh_term(heads_.Term());
  return WriteThrough(id, key, expected, next);
}

absl::StatusOr<uint64_t> FreshRecordStore::WriteThrough(
    std::string_view id, const AccountKey& key, uint64_t expected,
    const UserRecord& next_in) {
  UserRecord next = next_in;
  const uint64_t tag = Reserve();
  next.set_fresh_tag(tag);
  absl::StatusOr<uint64_t> v = inner_.CompareAndSwap(id, expected, next);
  if (absl::IsAborted(v.status()) && expected == kNoRecord) {
    // A tombstone whose delete did not finish is in the way.
    auto old = inner_.Get(id);
    if (old.ok() && old->fresh_tombstone() &&
        inner_.Delete(id, old->version()).ok()) {
      v = inner_.CompareAndSwap(id, expected, next);
    }
  }
  std::optional<UserRecord> stored;
  // The owner guard's definite refusal: nothing was written (lease3
  // review finding 5), so nothing to settle even if the record moved on.
  const auto guard = v.status().GetPayload(storage::kOwnerGuardPayload);
  if (v.ok()) {
    stored = AsStored(next, *v);
  } else if (Ambiguous(v.status()) &&
             !(guard && *guard != storage::kOwnerGuardAmbiguous)) {
    absl::StatusOr<UserRecord> found;
    const Outcome o = Settle(id, key, next, &found);
    if (o == Outcome::kOurs) stored = *std::move(found);
    if (o == Outcome::kUnknown) {
      Burn(tag);
      absl::MutexLock lock(&mu_);
      unsettled_[key] = next;
      Report("error", "freshness_unsettled",
             {{"account_key", storage::AccountKeyHex(key)},
              {"error", std::string(v.status().message())}});
      absl::Status unsettled = UnsettledError(key);
      // The caller still learns the owner guard refused (it steps down).
      if (guard) unsettled.SetPayload(storage::kOwnerGuardPayload, *guard);
      return unsettled;
    }
  }
  if (!stored) {
    Burn(tag);
    return v.status();
  }
  BKV_RETURN_IF_ERROR(Commit(key, *stored, tag));
  return stored->version();
}

// Only the exact record we sent is ours (its tag is never handed out
// twice); the anchored record still there means the write did not apply.
FreshRecordStore::Outcome FreshRecordStore::Settle(
    std::string_view id, const AccountKey& key, const UserRecord& sent,
    absl::StatusOr<UserRecord>* found) const {
  *found = inner_.Get(id);
  std::optional<Digest> digest;
  if (found->ok()) {
    digest = RecordDigest(key, **found);
    if (*digest == RecordDigest(key, AsStored(sent, (*found)->version()))) {
      return Outcome::kOurs;
    }
  }
  std::optional<LeafValue> leaf;
  {
    absl::MutexLock lock(&mu_);
    leaf = trees_[ShardOf(key, shard_count_)].Get(key);
  }
  if (leaf ? digest == leaf->digest
           : absl::IsNotFound(found->status()) ||
                 (found->ok() && (*found)->fresh_tombstone())) {
    return Outcome::kNotApplied;
  }
  return Outcome::kUnknown;
}

absl::Status FreshRecordStore::SettleLeftover(std::string_view id,
                                              const AccountKey& key) const {
  UserRecord sent;
  {
    absl::MutexLock lock(&mu_);
    auto it = unsettled_.find(key);
    if (it == unsettled_.end()) return absl::OkStatus();
    sent = it->second;
  }
  absl::StatusOr<UserRecord> found;
  const Outcome o = Settle(id, key, sent, &found);
  if (o == Outcome::kUnknown) return UnsettledError(key);
  {
    absl::MutexLock lock(&mu_);
    unsettled_.erase(key);
  }
  Report("warn", "freshness_settled",
         {{"account_key", storage::AccountKeyHex(key)},
          {"applied", o == Outcome::kOurs ? "yes" : "no"}});
  if (o == Outcome::kNotApplied) return absl::OkStatus();
  return Commit(key, *found, Reserve());
}

absl::Status FreshRecordStore::Commit(const AccountKey& key,
                                      const UserRecord& stored,
                                      uint64_t tag) const {
  Land(tag, Pending{tag, key, LeafOf(key, stored)});
  return WaitCommitted(tag);
}

absl::Status FreshRecordStore::Shred(std::string_view account_id) {
  return inner_.Shred(account_id);
}

// A counted attempt holds its account's stripe until a head covers it and
// counts in records_committed; so does its stand-in (no timing or metrics
// oracle for account existence).
absl::Status FreshRecordStore::SyncBarrier(std::string_view account_id) {
  const AccountKey key = storage::DeriveAccountKey(account_id);
  absl::MutexLock stripe(&Stripe(key));
  BKV_RETURN_IF_ERROR(inner_.SyncBarrier(account_id));
  const uint64_t tag = Reserve();
  Land(tag, std::nullopt);
  BKV_RETURN_IF_ERROR(WaitCommitted(tag));
  records_committed_++;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> FreshRecordStore::Count() const {
  absl::MutexLock lock(&mu_);
  uint64_t n = 0;
  for (const ShardTree& t : trees_) n += t.size();
  return n;
}

absl::Status FreshRecordStore::ForEach(Visitor visit) const {
  return inner_.ForEach(
      [&](const AccountKey& key, const absl::StatusOr<UserRecord>& r) {
        if (r.ok() && r->fresh_tombstone()) return true;
        return visit(key, r);
      });
}

FreshnessStats FreshRecordStore::Stats() const {
  FreshnessStats s;
  s.head_writes = head_writes_;
  s.records_committed = records_committed_;
  s.stale_reads = stale_reads_;
  absl::MutexLock lock(&mu_);
  s.seq = table_.seq;
  for (const std::string& reason : stale_)
    s.shard_stale.push_back(!reason.empty());
  return s;
}

// Group commit (docs/rollback.md "Write path").

uint64_t FreshRecordStore::Reserve() const {
  absl::MutexLock lock(&mu_);
  const uint64_t tag =
      std::max(table_.seq + (writing_ || retry_ ? 2 : 1), burned_ + 1);
  ++reserved_[tag];
  return tag;
}

void FreshRecordStore::Land(uint64_t tag, std::optional<Pending> p) const {
  absl::MutexLock lock(&mu_);
  if (--reserved_[tag] == 0) reserved_.erase(tag);
  if (p) pending_.push_back(*std::move(p));
}

void FreshRecordStore::Burn(uint64_t tag) const {
  {
    absl::MutexLock lock(&mu_);
    burned_ = std::max(burned_, tag);
  }
  Land(tag, std::nullopt);
}

// Waits with a Condition rather than a CondVar: mu_ wakes a waiter only when
// its own condition holds (its head is in, or it may lead the next), where a
// broadcast on every landed write woke every waiter to sleep again (~7 % of
// the vault's CPU on RocksDB went to those context switches).
absl::Status FreshRecordStore::WaitCommitted(uint64_t tag) const {
  absl::MutexLock lock(&mu_);
  const uint64_t start = attempts_;
  auto may_lead = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !writing_ && !reserved_.contains(table_.seq + 1);
  };
  auto settled = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return table_.seq >= tag || !fenced_.empty() || last_failure_at_ > start ||
           may_lead();
  };
  while (table_.seq < tag) {
    if (!fenced_.empty()) return absl::UnavailableError(fenced_);
    if (last_failure_at_ > start) return last_failure_;
    if (may_lead()) {
      BKV_RETURN_IF_ERROR(LeadHeadWrite());
      continue;
    }
    mu_.Await(absl::Condition(&settled));
  }
  return absl::OkStatus();
}

// A failed head is retried before another record is written: while it
// can't be certified, a new record would count an attempt whose KE2 can't
// leave. A writer that finds a head write in flight waits for its outcome
// first (review finding 6 of issue 12): had it written meanwhile and the
// head failed, its attempt would count. It writes in the next batch, so
// group commit stays; a head that failed while it waited is not retried
// again by every waiter (each retry can take the whole round timeout).
absl::Status FreshRecordStore::RetryFailedHead() const {
  absl::MutexLock lock(&mu_);
  if (!retry_ && !writing_) return absl::OkStatus();
  const uint64_t start = attempts_;
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !writing_; };
  mu_.Await(absl::Condition(&idle));
  if (!fenced_.empty()) return FencedNotCounted(fenced_);
  if (!retry_) return absl::OkStatus();
  if (last_failure_at_ <= start) BKV_RETURN_IF_ERROR(LeadHeadWrite());
  if (!retry_) return absl::OkStatus();
  return NotCounted("the last freshness head is not anchored yet",
                    last_failure_);
}

// The next head: every pending leaf whose tag it reaches, moved in flight
// and set in the trees.
HeadTable FreshRecordStore::NextBatch() const {
  HeadTable next = table_;
  next.seq = std::max(table_.seq + 1, next_seq_);
  auto split = std::stable_partition(
      pending_.begin(), pending_.end(),
      [&](const Pending& p) { return p.tag <= next.seq; });
  in_flight_.assign(pending_.begin(), split);
  pending_.erase(pending_.begin(), split);
  std::vector<bool> dirty(shard_count_, false);
  for (const Pending& p : in_flight_) {
    const uint32_t s = ShardOf(p.key, shard_count_);
    trees_[s].Set(p.key, p.leaf);
    dirty[s] = true;
  }
  for (uint32_t s = 0; s < shard_count_; ++s) {
    if (dirty[s]) next.shards[s].root = trees_[s].Root();
  }
  return next;
}

// One token write for every pending leaf whose tag it reaches. Releases mu_
// while the token works, so the next batch gathers meanwhile.
absl::Status FreshRecordStore::LeadHeadWrite() const {
  writing_ = true;
  const uint64_t attempt = ++attempts_;
  HeadTable next = retry_ ? *retry_ : NextBatch();
  mu_.Unlock();
  absl::Status written = heads_.Write(next);
  mu_.Lock();
  if (written.ok()) {
    table_ = next;
    head_writes_++;
    records_committed_ += in_flight_.size();
    in_flight_.clear();
    retry_.reset();
  } else {
    retry_ = next;  // the trees keep its leaves; in_flight_ stays
    last_failure_ = absl::UnavailableError(absl::StrCat(
        "the HSM did not take the freshness head: ", written.message(),
        "; the write is in the store and counts once a later head covers it"));
    last_failure_at_ = attempt;
    if (absl::IsFailedPrecondition(written))
      fenced_ = std::string(written.message());
    Report("error",
           fenced_.empty() ? "freshness_head_write_failed"
                           : "freshness_head_fenced",
           {{"error", std::string(written.message())}});
  }
  writing_ = false;
  return absl::OkStatus();
}

}  // namespace bkv::freshness
