#ifndef BKV_FRESHNESS_FRESH_RECORD_STORE_H_
#define BKV_FRESHNESS_FRESH_RECORD_STORE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "freshness/head_table.h"
#include "freshness/shard_tree.h"
#include "storage/record_store.h"

namespace bkv::freshness {

// Where the decorator reports what an operator must know (server/log.h's
// Log in the vault): level, event name and key/value fields.
using FreshnessLogField = std::pair<absl::string_view, std::string>;
using FreshnessLog =
    std::function<void(absl::string_view level, absl::string_view event,
                       std::initializer_list<FreshnessLogField> fields)>;

// Payload of the "not the owner" answer to a read that found a record of a
// later term (finding 8 of the election's review): a later owner took over
// and wrote, so this store is fenced and its owner steps down.
inline constexpr char kSupersededPayload[] = "bkv.freshness/superseded";

struct FreshnessOptions {
  uint32_t shards = 16;  // fixed at genesis
  FreshnessLog log;      // may be empty
  // B, each shard's lifetime re-anchor budget, fixed at genesis
  // (docs/rollback.md "The lifetime budget").
  uint32_t ceremonies = kDefaultCeremonies;
  // [policy] attempt_limit L: a re-anchored record keeps at most `cap` of
  // its effective limit min(record's, L), as the vault counts (budget4,
  // budget3 review finding 2). 0: the record's own limit.
  uint32_t attempt_limit = 0;
};

// How a record written before its shard's re-anchor reads (docs/rollback.md
// "Disaster recovery"): an ACTIVE record keeps at most `cap` attempts; a
// reset request, open logins and a pending registration on an ACTIVE or
// LOCKED record are dropped (the storage chose which copy came back).
// `attempt_limit` is the configured L (0: none): the cap applies to
// min(record's limit, L), the limit the vault counts against.
void Reanchored(storage::v1::UserRecord& r, uint32_t cap,
                uint32_t attempt_limit);

// Counters for /metrics.
struct FreshnessStats {
  uint64_t seq = 0;
  uint64_t head_writes = 0;        // token writes of the head table
  uint64_t records_committed = 0;  // leaves those writes covered
  uint64_t stale_reads = 0;        // reads refused as not provably fresh
  std::vector<bool> shard_stale;
};

// A RecordStore whose every read is proven to be the latest write, anchored
// in the HSM (docs/rollback.md is the design; read it first). It decorates
// any RecordStore (RocksDB, etcd) and keeps its contract, with one more
// failure: a record the store cannot prove fresh (rolled back, forked,
// removed, or in a shard whose root does not match the token's head) reads
// as kUnavailable with ErrorDetail REASON_STORAGE_ROLLED_BACK and
// ATTEMPT_NOT_COUNTED, and refuses writes.
//
// A write returns only after a head covering it is in the token (group
// commit: one token write for every write waiting). One writer per vault
// node: several nodes sharing a store need the quorum (not built).
// Thread-safe.
class FreshRecordStore final : public storage::RecordStore {
 public:
  // Scans `inner` once, checks every shard's root against the head table
  // (creating it at genesis), and commits forward the writes a crash left
  // between record and head. Fails only if the token cannot be read or
  // written or the table is for another shard count; stale shards are
  // logged and refused, the others serve.
  static absl::StatusOr<std::unique_ptr<FreshRecordStore>> Open(
      storage::RecordStore& inner, HeadStore& heads,
      const FreshnessOptions& options);

  absl::StatusOr<storage::v1::UserRecord> Get(
      std::string_view account_id) const override;
  absl::StatusOr<uint64_t> CompareAndSwap(
      std::string_view account_id, uint64_t expected_version,
      const storage::v1::UserRecord& next) override;
  absl::Status Delete(std::string_view account_id,
                      uint64_t expected_version) override;
  absl::Status Shred(std::string_view account_id) override;
  absl::Status SyncBarrier(std::string_view account_id) override;
  absl::StatusOr<uint64_t> Count() const override;
  absl::Status ForEach(Visitor visit) const override;

  FreshnessStats Stats() const;

 private:
  struct Pending {
    uint64_t tag;
    AccountKey key;
    std::optional<LeafValue> leaf;  // nullopt: the account is deleted
  };

  FreshRecordStore(storage::RecordStore& inner, HeadStore& heads,
                   HeadTable table, const FreshnessOptions& options);
  absl::Status Recover(bool genesis);
  void Report(absl::string_view level, absl::string_view event,
              std::initializer_list<FreshnessLogField> fields) const;
  // The record as the vault sees it: capped if written before a re-anchor.
  storage::v1::UserRecord View(const AccountKey& key,
                               storage::v1::UserRecord r) const;
  absl::Mutex& Stripe(const AccountKey& key) const {
    return stripes_[(key[0] << 8 | key[1]) % stripes_.size()];
  }
  absl::Status CheckShard(const AccountKey& key) const;
  // A record of term `term`, above ours: fences this store, "not the owner".
  absl::Status Superseded(const AccountKey& key, uint64_t term) const;
  absl::Status Stale(const AccountKey& key, absl::string_view what) const;
  bool FromFencedOwner(const storage::v1::UserRecord& r,
                       const LeafValue& leaf) const;
  absl::StatusOr<storage::v1::UserRecord> CheckedGet(
      std::string_view id, const AccountKey& key) const;
  absl::StatusOr<uint64_t> Write(std::string_view id, const AccountKey& key,
                                 uint64_t expected,
                                 storage::v1::UserRecord next);
  absl::StatusOr<uint64_t> WriteThrough(std::string_view id,
                                        const AccountKey& key,
                                        uint64_t expected,
                                        const storage::v1::UserRecord& next);
  // What an ambiguous write of `sent` did, told by the record's exact
  // content (docs/rollback.md "Ambiguous writes").
  enum class Outcome { kOurs, kNotApplied, kUnknown };
  Outcome Settle(std::string_view id, const AccountKey& key,
                 const storage::v1::UserRecord& sent,
                 absl::StatusOr<storage::v1::UserRecord>* found) const;
  // With the stripe held: settles the account's earlier unsettled write, if
  // any; kUnavailable (that account only) while it can't be told.
  absl::Status SettleLeftover(std::string_view id, const AccountKey& key) const;
  // Waits for a head covering `stored` as the account's leaf; `tag` is
  // reserved by the caller.
  absl::Status Commit(const AccountKey& key,
                      const storage::v1::UserRecord& stored,
                      uint64_t tag) const;
  std::optional<Pending> FindPending(const AccountKey& key) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  uint64_t Reserve() const;
  void Land(uint64_t tag, std::optional<Pending> p) const;
  // A write that failed after Reserve: its tag is never handed out again.
  void Burn(uint64_t tag) const;
  absl::Status WaitCommitted(uint64_t tag) const;
  absl::Status RetryFailedHead() const;
  absl::Status LeadHeadWrite() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  HeadTable NextBatch() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  storage::RecordStore& inner_;
  HeadStore& heads_;
  const uint32_t shard_count_;
  const FreshnessLog log_;
  const uint32_t attempt_limit_;  // FreshnessOptions::attempt_limit
  // Held from a record's check to its head commit: one uncommitted record
  // per account at most.
  mutable std::array<absl::Mutex, 1024> stripes_;

  // Waiters use Mutex::Await (no CondVar): see WaitCommitted.
  mutable absl::Mutex mu_;
  mutable HeadTable table_ ABSL_GUARDED_BY(mu_);  // as in the token
  // Committed leaves (plus those of the head write in flight).
  mutable std::vector<ShardTree> trees_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> stale_ ABSL_GUARDED_BY(mu_);  // "" = proven
  mutable bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // The start-up roll-forward's head may skip seqs (to the highest tag).
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  // The seq adopted at start-up (take-over); set once, before serving. A
  // fenced owner's record rolls forward only above it (review finding 9).
  uint64_t adopted_seq_ = 0;
  mutable uint64_t attempts_ ABSL_GUARDED_BY(mu_) = 0;  // head writes tried
  mutable absl::Status last_failure_ ABSL_GUARDED_BY(mu_);
  mutable uint64_t last_failure_at_ ABSL_GUARDED_BY(mu_) = 0;
  // Writers between reserving a tag and landing their store write.
  mutable std::map<uint64_t, int> reserved_ ABSL_GUARDED_BY(mu_);
  mutable std::vector<Pending> pending_ ABSL_GUARDED_BY(mu_);
  mutable std::vector<Pending> in_flight_ ABSL_GUARDED_BY(mu_);
  // A head write that failed: the next one re-proposes these very bytes
  // (a quorum endorser that signed them signs nothing else at that seq);
  // later leaves go to seq + 2.
  mutable std::optional<HeadTable> retry_ ABSL_GUARDED_BY(mu_);
  mutable uint64_t burned_ ABSL_GUARDED_BY(mu_) = 0;  // highest burned tag
  // Set when another writer replaced the token's head table: this process
  // serves nothing more (fail closed) until an operator restarts it.
  mutable std::string fenced_ ABSL_GUARDED_BY(mu_);
  // Per account, the record an ambiguous write sent while its outcome can't
  // be told: only that account is refused until a re-read settles it.
  mutable std::map<AccountKey, storage::v1::UserRecord> unsettled_
      ABSL_GUARDED_BY(mu_);

  mutable std::atomic<uint64_t> head_writes_{0}, records_committed_{0},
      stale_reads_{0};
};

}  // namespace bkv::freshness

#endif  // BKV_FRESHNESS_FRESH_RECORD_STORE_H_
