#include "storage/etcd_record_store.h"

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/status_macros.h"
#include "storage/account_check.h"
#include "storage/etcd_client.h"
#include "storage/etcd_write_outcome.h"

namespace bkv::storage {
namespace {

using etcdserverpb::Compare;
using etcdserverpb::RequestOp;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;

absl::StatusOr<std::string> ReadPem(const std::string& path,
                                    absl::string_view what) {
  if (path.empty()) return std::string();
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  if (!in.good() && !in.eof()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read etcd ", what, " ", path));
  }
  if (!in.is_open() || buf.str().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot read etcd ", what, " ", path, ": missing or empty"));
  }
  return buf.str();
}

// An account's two keys as one linearizable read saw them, and, after a
// write refused with the owner guard set, the owner key's create revision.
struct Snapshot {
  RawAccount raw;
  int64_t record_mod = 0;  // mod revision (0: absent)
  int64_t watermark_mod = 0;
  std::optional<int64_t> owner_created;  // 0: the owner key is absent
  int64_t owner_lease = 0;
};

void AddRange(google::protobuf::RepeatedPtrField<RequestOp>* ops,
              const std::string& key) {
  ops->Add()->mutable_request_range()->set_key(key);
}

// Puts `value` at `key` if `guard` (a compare on `key`) holds, in one Txn;
// returns the value there now: `value`, or the one the failed guard read
// (nullopt: the key is absent).
absl::StatusOr<std::optional<std::string>> GuardedPut(
    EtcdClient& client, const std::string& key, const Compare& guard,
    const std::string& value) {
  TxnRequest txn;
  *txn.add_compare() = guard;
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  AddRange(txn.mutable_failure(), key);
  TxnResponse resp;
  BKV_RETURN_IF_ERROR(client.Txn(txn, &resp, nullptr));
  if (resp.succeeded()) return value;
  if (resp.responses_size() != 1 || !resp.responses(0).has_response_range()) {
    return absl::InternalError("etcd answered a Txn without its range");
  }
  const auto& r = resp.responses(0).response_range();
  if (r.kvs_size() != 1) return std::nullopt;
  return r.kvs(0).value();
}

void AddCompare(TxnRequest* txn, const std::string& key, int64_t mod) {
  Compare* c = txn->add_compare();
  c->set_key(key);
  c->set_target(Compare::MOD);
  c->set_result(Compare::EQUAL);
  c->set_mod_revision(mod);
}

// The two Range results at `ops[0]` (record) and `ops[1]` (watermark), and
// the owner key's at `ops[2]` when `ranges` is 3. Anything else fails
// closed: a missing range must never read as "no record".
absl::StatusOr<Snapshot> ParseSnapshot(const TxnResponse& resp,
                                       int ranges = 2) {
  Snapshot snap;
  bool complete = resp.responses_size() == ranges;
  for (int i = 0; complete && i < ranges; ++i) {
    complete = resp.responses(i).has_response_range();
  }
  if (!complete) {
    return absl::InternalError(
        "etcd answered a Txn without the ranges it asked for");
  }
  if (ranges == 3) {
    const auto& o = resp.responses(2).response_range();
    snap.owner_created = o.kvs_size() > 0 ? o.kvs(0).create_revision() : 0;
    snap.owner_lease = o.kvs_size() > 0 ? o.kvs(0).lease() : 0;
  }
  const auto& r = resp.responses(0).response_range();
  const auto& w = resp.responses(1).response_range();
  if (r.kvs_size() > 0) {
    snap.raw.record = r.kvs(0).value();
    snap.record_mod = r.kvs(0).mod_revision();
  }
  if (w.kvs_size() > 0) {
    snap.raw.watermark = w.kvs(0).value();
    snap.watermark_mod = w.kvs(0).mod_revision();
  }
  return snap;
}

}  // namespace

struct EtcdRecordStore::Impl {
  EtcdRecordStoreOptions options;
  std::shared_ptr<const Sealer> sealer;
  std::unique_ptr<EtcdClient> client;
  uint64_t cluster_id = 0;

  // Shred's coalesced compactions.
  std::mutex compact_mu;
  std::condition_variable compact_cv;
  int64_t compacted = 0;  // etcd history is gone below this revision
  int64_t requested = 0;  // the highest revision a Shred waits for
  bool compacting = false;
  absl::Time last_compaction = absl::InfinitePast();
  std::atomic<uint64_t> compactions{0};
  std::atomic<uint64_t> ambiguous_writes{0};     // settled by re-reading
  std::atomic<uint64_t> ambiguous_committed{0};  // ... as committed

  // What a checked read saw per account, so that the usual Get, change,
  // CompareAndSwap cycle needs no second read: the write's guard compares
  // the same mod revisions, so a stale entry only makes the guard fail.
  struct Observed {
    AccountState state;
    int64_t record_mod = 0, watermark_mod = 0;
  };
  static constexpr size_t kMaxObserved = 1 << 16;
  mutable std::mutex observed_mu;
  mutable absl::flat_hash_map<AccountKey, Observed> observed;

  void Remember(const AccountKey& key, const Observed& o) const {
    std::lock_guard<std::mutex> lock(observed_mu);
    if (observed.size() >= kMaxObserved) observed.clear();
    observed[key] = o;
  }
  void Forget(const AccountKey& key) const {
    std::lock_guard<std::mutex> lock(observed_mu);
    observed.erase(key);
  }
  // The account's checked state and guard revisions: remembered if the
  // caller's expected version matches what was seen, read afresh otherwise.
  absl::StatusOr<Observed> Observe(const AccountKey& key,
                                   uint64_t expected_version) const {
    {
      std::lock_guard<std::mutex> lock(observed_mu);
      auto it = observed.find(key);
      if (it != observed.end()) {
        const AccountState& st = it->second.state;
        if ((st.live ? st.version : kNoRecord) == expected_version) {
          return it->second;
        }
      }
    }
    BKV_ASSIGN_OR_RETURN(Snapshot snap, Read(key));
    BKV_ASSIGN_OR_RETURN(AccountState state, CheckAccount(key, snap.raw));
    return Observed{state, snap.record_mod, snap.watermark_mod};
  }

  std::string RecordKey(const AccountKey& k) const {
    return options.key_prefix + RecordDbKey(k);
  }
  std::string WatermarkKey(const AccountKey& k) const {
    return options.key_prefix + WatermarkDbKey(k);
  }

  // Both keys in one read-only Txn: one linearizable read, one round trip.
  absl::StatusOr<Snapshot> Read(const AccountKey& key) const {
    TxnRequest txn;
    AddRange(txn.mutable_success(), RecordKey(key));
    AddRange(txn.mutable_success(), WatermarkKey(key));
    TxnResponse resp;
    BKV_RETURN_IF_ERROR(client->Txn(txn, &resp, nullptr));
    return ParseSnapshot(resp);
  }

  // A write guarded by the mod revisions `seen` and the owner guard, if
  // set (the one place the compares are built); on a failed guard the
  // response carries both keys as they are now, and the owner key.
  TxnRequest GuardedTxn(const AccountKey& key, const Observed& seen,
                        const OwnerGuard& owner) const {
    TxnRequest txn;
    AddCompare(&txn, RecordKey(key), seen.record_mod);
    AddCompare(&txn, WatermarkKey(key), seen.watermark_mod);
    AddRange(txn.mutable_failure(), RecordKey(key));
    AddRange(txn.mutable_failure(), WatermarkKey(key));
    if (owner.create_revision != 0) {
      Compare* c = txn.add_compare();
      c->set_key(owner.key);
      c->set_target(Compare::CREATE);
      c->set_result(Compare::EQUAL);
      c->set_create_revision(owner.create_revision);
      // Revisions go back after a snapshot restore; lease ids do not
      // (finding 9 of the election's review).
      c = txn.add_compare();
      c->set_key(owner.key);
      c->set_target(Compare::LEASE);
      c->set_result(Compare::EQUAL);
      c->set_lease(owner.lease);
      AddRange(txn.mutable_failure(), owner.key);
    }
    return txn;
  }

  // The test hook of EtcdRecordStoreOptions::test_hold_file: a guarded
  // write held in flight, before it reads its guard, past a lease change.
  void HoldForTest() const {
    const std::string& f = options.test_hold_file;
    if (f.empty() || !std::filesystem::exists(f)) return;
    std::ofstream(f + ".held").put('1');
    const absl::Time until = absl::Now() + absl::Seconds(60);
    while (std::filesystem::exists(f) && absl::Now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // A refused guarded write: ours after all (an earlier send committed), or
  // refused by the owner guard (another node owns the chain now), or a
  // version mismatch.
  absl::Status Settle(const AccountKey& key, const GuardedWrite& write,
                      const CallInfo& info, const TxnResponse& resp,
                      const OwnerGuard& owner) {
    Forget(key);
    if (info.ambiguous) ++ambiguous_writes;
    BKV_ASSIGN_OR_RETURN(
        const Snapshot now,
        ParseSnapshot(resp, owner.create_revision != 0 ? 3 : 2));
    absl::Status s = SettleFailedGuard(key, write, info.ambiguous, now.raw);
    if (info.ambiguous && s.ok()) ++ambiguous_committed;
    if (!s.ok() && now.owner_created.has_value() &&
        (*now.owner_created != owner.create_revision ||
         now.owner_lease != owner.lease)) {
      // Definitely not ours (kAborted: below our version, or another
      // writer's bytes at it) stays definite: the changed key fails every
      // later apply of our Txn (lease3 review finding 11).
      return GuardRefused(key, owner, *now.owner_created,
                          info.ambiguous && !absl::IsAborted(s));
    }
    return s;
  }

  // The owner guard refused, and the record is not ours. After a send that
  // may have committed (finding 5 of the election's review) and a record
  // that moved on past our version, the write may still have been applied
  // before the key changed: outcome unknown.
  static absl::Status GuardRefused(const AccountKey& key,
                                   const OwnerGuard& owner, int64_t now,
                                   bool ambiguous) {
    absl::Status refused = absl::UnavailableError(absl::StrCat(
        "etcd refused the write of account key ", AccountKeyHex(key),
        ": this node no longer holds the quorum's owner key ", owner.key,
        " (created at revision ", owner.create_revision, " with lease ",
        owner.lease, ", now ",
        now == 0 ? std::string("absent") : absl::StrCat("revision ", now),
        ambiguous ? "); the owner key changed; this write may or may not have "
                    "been applied"
                  : "); nothing was written"));
    refused.SetPayload(kOwnerGuardPayload,
                       absl::Cord(ambiguous ? kOwnerGuardAmbiguous : "1"));
    return refused;
  }

  // A write call that failed after a send that may have been applied: one
  // re-read tells if it was (OK). Otherwise the call's error: out of space
  // as such, anything else as "outcome unknown" (it may still commit).
  absl::Status SettleFailedCall(const AccountKey& key,
                                const GuardedWrite& write,
                                const absl::Status& call) {
    Forget(key);
    ++ambiguous_writes;
    absl::StatusOr<Snapshot> now = Read(key);
    if (now.ok() && SettleFailedGuard(key, write, true, now->raw).ok()) {
      ++ambiguous_committed;
      return absl::OkStatus();
    }
    if (absl::IsResourceExhausted(call)) return call;
    return OutcomeUnknown(key, call.message());
  }

  // Keys in [prefix + from, prefix + to), one linearizable count.
  absl::StatusOr<uint64_t> CountKeys(const char* from, const char* to) const {
    etcdserverpb::RangeRequest req;
    req.set_key(options.key_prefix + from);
    req.set_range_end(options.key_prefix + to);
    req.set_count_only(true);
    etcdserverpb::RangeResponse resp;
    BKV_RETURN_IF_ERROR(client->Range(req, &resp, nullptr));
    return static_cast<uint64_t>(resp.count());
  }

  absl::Status CompactThrough(int64_t revision);
  absl::Status CompactNow(int64_t revision);
};

EtcdRecordStore::EtcdRecordStore(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
EtcdRecordStore::~EtcdRecordStore() = default;

absl::StatusOr<std::unique_ptr<EtcdRecordStore>> EtcdRecordStore::Open(
    const EtcdRecordStoreOptions& options,
    std::shared_ptr<const Sealer> sealer) {
  if (sealer == nullptr) {
    return absl::InvalidArgumentError("record store needs a Sealer");
  }
  if (options.key_prefix.empty() || options.page_size <= 0) {
    return absl::InvalidArgumentError(
        "etcd store needs a key_prefix and a positive page_size");
  }
  EtcdClientOptions co;
  co.endpoints = options.endpoints;
  co.insecure = options.insecure;
  co.call_timeout = options.call_timeout;
  co.op_timeout = options.op_timeout;
  BKV_ASSIGN_OR_RETURN(co.ca_pem, ReadPem(options.ca_file, "ca_file"));
  BKV_ASSIGN_OR_RETURN(co.cert_pem, ReadPem(options.cert_file, "cert_file"));
  BKV_ASSIGN_OR_RETURN(co.key_pem, ReadPem(options.key_file, "key_file"));
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->sealer = std::move(sealer);
  BKV_ASSIGN_OR_RETURN(impl->client, EtcdClient::Create(std::move(co)));
  BKV_ASSIGN_OR_RETURN(impl->cluster_id, impl->client->Probe());
  return std::unique_ptr<EtcdRecordStore>(new EtcdRecordStore(std::move(impl)));
}

absl::StatusOr<v1::UserRecord> EtcdRecordStore::Get(
    std::string_view account_id) const {
  const AccountKey key = DeriveAccountKey(account_id);
  BKV_ASSIGN_OR_RETURN(Snapshot snap, impl_->Read(key));
  BKV_ASSIGN_OR_RETURN(AccountState state, CheckAccount(key, snap.raw));
  impl_->Remember(key, {state, snap.record_mod, snap.watermark_mod});
  if (!state.live) {
    return absl::NotFoundError(
        absl::StrCat("no record for account key ", AccountKeyHex(key)));
  }
  return OpenRecord(*impl_->sealer, key, AsSpan(*snap.raw.record));
}

absl::StatusOr<uint64_t> EtcdRecordStore::CompareAndSwap(
    std::string_view account_id, uint64_t expected_version,
    const v1::UserRecord& next) {
  return GuardedCas(account_id, expected_version, next, OwnerGuard{});
}

absl::Status EtcdRecordStore::Delete(std::string_view account_id,
                                     uint64_t expected_version) {
  return GuardedDelete(account_id, expected_version, OwnerGuard{});
}

absl::StatusOr<uint64_t> EtcdRecordStore::GuardedCas(
    std::string_view account_id, uint64_t expected_version,
    const v1::UserRecord& next, const OwnerGuard& owner) {
  const AccountKey key = DeriveAccountKey(account_id);
  BKV_ASSIGN_OR_RETURN(const Impl::Observed seen,
                       impl_->Observe(key, expected_version));
  const AccountState& state = seen.state;
  const uint64_t current = state.live ? state.version : kNoRecord;
  if (current != expected_version) {
    return VersionMismatch(key, state, expected_version);
  }
  v1::UserRecord record = next;
  record.set_schema_version(kSchemaVersion);
  record.set_version(state.high_water + 1);
  BKV_ASSIGN_OR_RETURN(std::string value,
                       SealRecord(*impl_->sealer, key, record));
  TxnRequest txn = impl_->GuardedTxn(key, seen, owner);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(impl_->RecordKey(key));
  put->set_value(value);
  put = txn.add_success()->mutable_request_put();
  put->set_key(impl_->WatermarkKey(key));
  put->set_value(EncodeWatermark({Watermark::State::kLive, record.version()}));

  TxnResponse resp;
  CallInfo info;
  const GuardedWrite write{expected_version, record.version(), value};
  if (absl::Status s = impl_->client->Txn(txn, &resp, &info); !s.ok()) {
    if (!info.ambiguous) return s;
    BKV_RETURN_IF_ERROR(impl_->SettleFailedCall(key, write, s));
    return record.version();
  }
  if (resp.succeeded()) {
    // Both puts carry the Txn's revision.
    const int64_t rev = resp.header().revision();
    impl_->Remember(key,
                    {{true, record.version(), record.version()}, rev, rev});
    return record.version();
  }
  // The guard failed: someone else wrote, or an earlier send of this very
  // Txn committed before its answer was lost, or another node owns the
  // chain now.
  BKV_RETURN_IF_ERROR(impl_->Settle(key, write, info, resp, owner));
  return record.version();
}

void EtcdRecordStore::HoldForTest() const { impl_->HoldForTest(); }

absl::Status EtcdRecordStore::GuardedDelete(std::string_view account_id,
                                            uint64_t expected_version,
                                            const OwnerGuard& owner) {
  const AccountKey key = DeriveAccountKey(account_id);
  BKV_ASSIGN_OR_RETURN(const Impl::Observed seen,
                       impl_->Observe(key, expected_version));
  const AccountState& state = seen.state;
  if (!state.live || state.version != expected_version) {
    return VersionMismatch(key, state, expected_version);
  }
  impl_->Forget(key);
  TxnRequest txn = impl_->GuardedTxn(key, seen, owner);
  txn.add_success()->mutable_request_delete_range()->set_key(
      impl_->RecordKey(key));
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(impl_->WatermarkKey(key));
  put->set_value(EncodeWatermark({Watermark::State::kDeleted, state.version}));

  TxnResponse resp;
  CallInfo info;
  const GuardedWrite write{expected_version, state.version, std::nullopt};
  if (absl::Status s = impl_->client->Txn(txn, &resp, &info); !s.ok()) {
    if (!info.ambiguous) return s;
    BKV_RETURN_IF_ERROR(impl_->SettleFailedCall(key, write, s));
  } else if (!resp.succeeded()) {
    BKV_RETURN_IF_ERROR(impl_->Settle(key, write, info, resp, owner));
  }
  return absl::OkStatus();
}

absl::Status EtcdRecordStore::Shred(std::string_view account_id) {
  // Compacting at the account's latest write drops every older revision of
  // both its keys (etcd keeps, per key, only what is current at the
  // compaction revision).
  const AccountKey key = DeriveAccountKey(account_id);
  BKV_ASSIGN_OR_RETURN(Snapshot snap, impl_->Read(key));
  const int64_t latest = std::max(snap.record_mod, snap.watermark_mod);
  if (latest == 0) return absl::OkStatus();
  return impl_->CompactThrough(latest);
}

// One caller at a time compacts, to the highest revision requested so far,
// at most once per min_compaction_interval; the others wait for it.
absl::Status EtcdRecordStore::Impl::CompactThrough(int64_t revision) {
  std::unique_lock<std::mutex> lock(compact_mu);
  requested = std::max(requested, revision);
  while (compacted < revision) {
    if (compacting) {
      compact_cv.wait(lock);
      continue;
    }
    compacting = true;
    const absl::Time not_before =
        last_compaction + options.min_compaction_interval;
    lock.unlock();
    const absl::Duration wait = not_before - absl::Now();
    if (wait > absl::ZeroDuration()) {
      std::this_thread::sleep_for(absl::ToChronoMilliseconds(wait));
    }
    lock.lock();
    const int64_t target = requested;
    lock.unlock();
    absl::Status s = CompactNow(target);
    lock.lock();
    compacting = false;
    last_compaction = absl::Now();
    if (s.ok()) compacted = std::max(compacted, target);
    compact_cv.notify_all();
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status EtcdRecordStore::Impl::CompactNow(int64_t revision) {
  etcdserverpb::CompactionRequest req;
  req.set_revision(revision);
  // Answer only once the compacted revisions are gone from the answering
  // member's database (the others apply the same Raft entry).
  req.set_physical(true);
  etcdserverpb::CompactionResponse resp;
  ++compactions;
  absl::Status s = client->Compact(req, &resp, nullptr);
  // Already compacted past it (another vault node, or a retried send).
  if (s.code() == absl::StatusCode::kOutOfRange &&
      absl::StrContains(s.message(), "compacted")) {
    return absl::OkStatus();
  }
  return s;
}

absl::Status EtcdRecordStore::SyncBarrier(std::string_view) {
  // The same Raft round trip and about the same bytes as a counted
  // attempt's Txn (a sealed record of the software sealer's size and a
  // watermark), on keys outside the record spaces, overwritten each time.
  constexpr size_t kSealedRecordSize = 1061;
  TxnRequest txn;
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(impl_->options.key_prefix + "b");
  put->set_value(std::string(kSealedRecordSize, '\0'));
  put = txn.add_success()->mutable_request_put();
  put->set_key(impl_->options.key_prefix + "c");
  put->set_value(std::string(kWatermarkSize, '\0'));
  TxnResponse resp;
  return impl_->client->Txn(txn, &resp, nullptr);
}

absl::StatusOr<uint64_t> EtcdRecordStore::Count() const {
  return impl_->CountKeys("r", "s");
}

namespace {

// Walks [begin, end) at one revision, a page at a time.
class PagedRange {
 public:
  PagedRange(EtcdClient& client, std::string begin, std::string end,
             int64_t revision, int64_t page)
      : client_(client),
        next_(std::move(begin)),
        end_(std::move(end)),
        revision_(revision),
        page_(page) {}

  // The current key-value, nullptr at the end.
  absl::StatusOr<const mvccpb::KeyValue*> Peek() {
    if (pos_ < resp_.kvs_size()) return &resp_.kvs(pos_);
    if (done_) return nullptr;
    etcdserverpb::RangeRequest req;
    req.set_key(next_);
    req.set_range_end(end_);
    req.set_revision(revision_);
    req.set_limit(page_);
    absl::Status s = client_.Range(req, &resp_, nullptr);
    if (s.code() == absl::StatusCode::kOutOfRange) {
      return absl::UnavailableError(absl::StrCat(
          "etcd compacted revision ", revision_,
          " while ForEach read it (a Shred ran): call ForEach again (",
          s.message(), ")"));
    }
    BKV_RETURN_IF_ERROR(s);
    pos_ = 0;
    done_ = !resp_.more() || resp_.kvs_size() == 0;
    if (resp_.kvs_size() > 0)
      next_ = resp_.kvs(resp_.kvs_size() - 1).key() + '\0';
    if (resp_.kvs_size() == 0) return nullptr;
    return &resp_.kvs(0);
  }
  void Next() { ++pos_; }

 private:
  EtcdClient& client_;
  std::string next_, end_;
  int64_t revision_, page_;
  etcdserverpb::RangeResponse resp_;
  int pos_ = 0;
  bool done_ = false;
};

}  // namespace

absl::Status EtcdRecordStore::ForEach(Visitor visit) const {
  const std::string& prefix = impl_->options.key_prefix;
  // One linearizable read fixes the revision every page is read at.
  etcdserverpb::RangeRequest head;
  head.set_key(prefix + "r");
  head.set_range_end(prefix + "x");
  head.set_count_only(true);
  etcdserverpb::RangeResponse head_resp;
  BKV_RETURN_IF_ERROR(impl_->client->Range(head, &head_resp, nullptr));
  const int64_t rev = head_resp.header().revision();
  const int64_t page = impl_->options.page_size;
  PagedRange r(*impl_->client, prefix + "r", prefix + "s", rev, page);
  PagedRange w(*impl_->client, prefix + "w", prefix + "x", rev, page);
  // Records and watermarks sort by the same account key: merge them.
  auto account_of = [&](const mvccpb::KeyValue* kv) {
    return std::string_view(kv->key()).substr(prefix.size() + 1);
  };
  for (;;) {
    BKV_ASSIGN_OR_RETURN(const mvccpb::KeyValue* rk, r.Peek());
    BKV_ASSIGN_OR_RETURN(const mvccpb::KeyValue* wk, w.Peek());
    if (rk == nullptr && wk == nullptr) return absl::OkStatus();
    const int order = rk == nullptr   ? 1
                      : wk == nullptr ? -1
                                      : account_of(rk).compare(account_of(wk));
    const std::string_view id = order <= 0 ? account_of(rk) : account_of(wk);
    RawAccount raw;
    if (order <= 0) raw.record = rk->value();
    if (order >= 0) raw.watermark = wk->value();
    if (!VisitAccount(*impl_->sealer, id, raw, visit)) return absl::OkStatus();
    if (order <= 0) r.Next();
    if (order >= 0) w.Next();
  }
}

uint64_t EtcdRecordStore::cluster_id() const { return impl_->cluster_id; }

namespace {

// One lease period's view of the store: every write carries its guard.
class GuardedView final : public GuardedRecordStore {
 public:
  GuardedView(EtcdRecordStore& store, OwnerGuard guard)
      : GuardedRecordStore(store), guard_(std::move(guard)) {}

 protected:
  OwnerGuard CurrentGuard() const override { return guard_; }

 private:
  const OwnerGuard guard_;
};

}  // namespace

std::unique_ptr<RecordStore> EtcdRecordStore::Guarded(OwnerGuard guard) {
  return std::make_unique<GuardedView>(*this, std::move(guard));
}

EtcdClient& EtcdRecordStore::client() const { return *impl_->client; }

std::string EtcdRecordStore::Describe() const {
  return absl::StrCat("[", absl::StrJoin(impl_->options.endpoints, ", "), "]");
}

absl::StatusOr<bool> EtcdRecordStore::HoldsAccounts() const {
  // Records ("r") and watermarks ("w"): a deleted account's watermark
  // still fixes its next version.
  BKV_ASSIGN_OR_RETURN(const uint64_t keys, impl_->CountKeys("r", "x"));
  return keys > 0;
}

absl::StatusOr<std::optional<std::string>> EtcdRecordStore::ReadShardMap()
    const {
  return ReadMarker("m");
}

absl::StatusOr<std::string> EtcdRecordStore::CreateShardMap(
    const std::string& map) {
  return CreateMarker("m", map);
}

absl::StatusOr<std::optional<std::string>> EtcdRecordStore::ReadMarker(
    const std::string& suffix) const {
  etcdserverpb::RangeRequest req;
  req.set_key(impl_->options.key_prefix + suffix);
  etcdserverpb::RangeResponse resp;
  BKV_RETURN_IF_ERROR(impl_->client->Range(req, &resp, nullptr));
  if (resp.kvs_size() == 0) return std::nullopt;
  return resp.kvs(0).value();
}

absl::StatusOr<std::string> EtcdRecordStore::CreateMarker(
    const std::string& suffix, const std::string& value) {
  // Create-if-absent: the guard can hold only once, so a resend is safe.
  const std::string key = impl_->options.key_prefix + suffix;
  Compare c;
  c.set_key(key);
  c.set_target(Compare::CREATE);
  c.set_result(Compare::EQUAL);
  c.set_create_revision(0);
  BKV_ASSIGN_OR_RETURN(auto now, GuardedPut(*impl_->client, key, c, value));
  // The guard failed, so the key is there: its range must show it.
  if (!now) return absl::InternalError("etcd answered a Txn without its range");
  return *std::move(now);
}

absl::StatusOr<std::string> EtcdRecordStore::ReplaceMarker(
    const std::string& suffix, const std::string& was,
    const std::string& value) {
  const std::string key = impl_->options.key_prefix + suffix;
  Compare c;
  c.set_key(key);
  c.set_target(Compare::VALUE);
  c.set_result(Compare::EQUAL);
  c.set_value(was);
  BKV_ASSIGN_OR_RETURN(auto now, GuardedPut(*impl_->client, key, c, value));
  return now.value_or(std::string());
}

EtcdStats EtcdRecordStore::Stats() const {
  return {impl_->client->round_trips(), impl_->compactions.load(),
          impl_->ambiguous_writes.load(), impl_->ambiguous_committed.load()};
}

}  // namespace bkv::storage
