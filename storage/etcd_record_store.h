#ifndef BKV_STORAGE_ETCD_RECORD_STORE_H_
#define BKV_STORAGE_ETCD_RECORD_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crypto/sealer.h"
#include "storage/record_store.h"

namespace bkv::storage {

class EtcdClient;

// The quorum owner's fence for one lease period (docs/rollback.md
// "Election"): the owner key, the revision that created it and its lease.
struct OwnerGuard {
  std::string key;
  int64_t create_revision = 0;  // 0: no guard
  int64_t lease = 0;
};

struct EtcdRecordStoreOptions {
  // host:port of the members of ONE etcd cluster (checked at Open).
  std::vector<std::string> endpoints;
  // Every key of this store starts with it, so other data can share the
  // cluster. Several vault nodes of one deployment use the same prefix.
  std::string key_prefix = "bkv/";
  // TLS to etcd: the CA that signed the members' certificates, and this
  // client's certificate and key for etcd's --client-cert-auth.
  std::string ca_file, cert_file, key_file;
  // Plaintext gRPC, for a loopback test cluster only.
  bool insecure = false;
  // Deadline of one gRPC call, and of one store operation including its
  // retries on other members (an election takes about a second).
  absl::Duration call_timeout = absl::Seconds(2);
  absl::Duration op_timeout = absl::Seconds(10);
  // Shred compacts etcd's history; Shreds within this interval share one
  // compaction (each returns once a compaction covers it).
  absl::Duration min_compaction_interval = absl::Seconds(1);
  // Keys per Range page in ForEach.
  int64_t page_size = 500;
  // TEST HOOK, set only by `bkv-vault serve --dev` from the environment
  // (BKV_TEST_HOLD_GUARDED_WRITE, docs/rollback.md): while this file
  // exists, a guarded write waits before it reads its lease period's guard
  // (at most 60 s), having created `<file>.held`. Empty in production.
  std::string test_hold_file;
};

struct EtcdStats {
  uint64_t round_trips = 0;  // gRPC calls to etcd, retries included
  uint64_t compactions = 0;  // Compact calls made by Shred
  // Writes whose guard failed after a send that may have committed, and
  // how many of those turned out to have committed.
  uint64_t ambiguous_writes = 0;
  uint64_t ambiguous_committed = 0;
};

// The RecordStore on an etcd v3 cluster (contract in storage/record_store.h,
// value layout in storage/record_codec.h, keys = key_prefix + the codec's
// keys). Design and costs: docs/storage.md, "etcd".
//
// Writes: one Txn comparing the mod revisions of the account's record and
// watermark keys with those the last Get of that version saw (else a fresh
// read's), putting both on success: a counted attempt (Get, CompareAndSwap)
// is two round trips. etcd answers
// only once a Raft majority has the entry, so OK means durable on a majority.
// Such a Txn can commit at most once, so it is re-sent on another member
// after a timeout; an ambiguous outcome is settled by the Txn's own failure
// branch (it reads back both keys): our exact sealed bytes mean it committed.
// When it can't be settled the call fails kUnavailable ("outcome unknown"),
// never OK: an attempt may be counted without being used, never used
// without being counted.
// Reads are linearizable (never served by a member cut off from the leader).
// Thread-safe; several stores (vault nodes) may share one cluster and prefix.
class EtcdRecordStore final : public RecordStore {
 public:
  // Checks the options, reads the TLS files and asks every endpoint for its
  // status: kUnavailable naming each endpoint's error if none answers,
  // kFailedPrecondition if they belong to different clusters.
  static absl::StatusOr<std::unique_ptr<EtcdRecordStore>> Open(
      const EtcdRecordStoreOptions& options,
      std::shared_ptr<const Sealer> sealer);
  ~EtcdRecordStore() override;

  absl::StatusOr<v1::UserRecord> Get(
      std::string_view account_id) const override;
  absl::StatusOr<uint64_t> CompareAndSwap(std::string_view account_id,
                                          uint64_t expected_version,
                                          const v1::UserRecord& next) override;
  absl::Status Delete(std::string_view account_id,
                      uint64_t expected_version) override;
  // Compacts etcd's history past the account's latest write, so no earlier
  // revision of it can be read; returns once that compaction is done.
  absl::Status Shred(std::string_view account_id) override;
  absl::Status SyncBarrier(std::string_view account_id) override;
  absl::StatusOr<uint64_t> Count() const override;
  // Paginated linearizable Ranges at one revision. kUnavailable if a Shred
  // compacts that revision away meanwhile: call again.
  absl::Status ForEach(Visitor visit) const override;

  EtcdStats Stats() const;

  // For the shard map (storage/etcd_shards.h): this cluster's id, as its
  // members reported it at Open; whether any account (record or
  // watermark) is stored under the prefix; and the map kept at
  // `<prefix>m`, outside the record key spaces.
  uint64_t cluster_id() const;
  absl::StatusOr<bool> HoldsAccounts() const;
  absl::StatusOr<std::optional<std::string>> ReadShardMap() const;
  // Stores `map` unless a map is there already; returns the map stored now
  // (ours, or the one that was there).
  absl::StatusOr<std::string> CreateShardMap(const std::string& map);
  // The same for any key `<prefix><suffix>` outside the record key spaces
  // (the shard map "m", the quorum marker "fresh/quorum").
  absl::StatusOr<std::optional<std::string>> ReadMarker(
      const std::string& suffix) const;
  absl::StatusOr<std::string> CreateMarker(const std::string& suffix,
                                           const std::string& value);
  // Puts `value` if the marker holds `was` (one Txn); returns the marker now.
  absl::StatusOr<std::string> ReplaceMarker(const std::string& suffix,
                                            const std::string& was,
                                            const std::string& value);
  // "[host:port, ...]", to name this cluster in errors.
  std::string Describe() const;

  // A view of this store for one lease period of the quorum's owner: its
  // every CompareAndSwap and Delete also requires that `guard.key` exists
  // with that create revision and lease. A write refused by that compare
  // alone, not ours on re-reading, fails kUnavailable with the payload
  // kOwnerGuardPayload. The store must outlive the view.
  std::unique_ptr<RecordStore> Guarded(OwnerGuard guard);
  // The writes of Guarded's view (the one place of the guarded Txn).
  absl::StatusOr<uint64_t> GuardedCas(std::string_view account_id,
                                      uint64_t expected_version,
                                      const v1::UserRecord& next,
                                      const OwnerGuard& owner);
  absl::Status GuardedDelete(std::string_view account_id,
                             uint64_t expected_version,
                             const OwnerGuard& owner);
  // TEST HOOK (EtcdRecordStoreOptions::test_hold_file): waits while that
  // file exists; GuardedRecordStore calls it before it reads its guard.
  void HoldForTest() const;
  // This store's client, for the owner lease (server/owner_lease.h), which
  // shares its channels and deadlines.
  EtcdClient& client() const;

 private:
  struct Impl;
  explicit EtcdRecordStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A view of an EtcdRecordStore whose CompareAndSwap and Delete carry the
// guard CurrentGuard() returns (GuardedCas, GuardedDelete) and whose other
// calls go to the store: the one forwarding of Guarded's view and the
// elected owner's per-period slot. The store must outlive the view.
class GuardedRecordStore : public RecordStore {
 public:
  explicit GuardedRecordStore(EtcdRecordStore& store) : store_(store) {}
  absl::StatusOr<v1::UserRecord> Get(std::string_view id) const override {
    return store_.Get(id);
  }
  absl::StatusOr<uint64_t> CompareAndSwap(std::string_view id,
                                          uint64_t expected,
                                          const v1::UserRecord& next) override {
    store_.HoldForTest();
    return store_.GuardedCas(id, expected, next, CurrentGuard());
  }
  absl::Status Delete(std::string_view id, uint64_t expected) override {
    store_.HoldForTest();
    return store_.GuardedDelete(id, expected, CurrentGuard());
  }
  absl::Status Shred(std::string_view id) override { return store_.Shred(id); }
  absl::Status SyncBarrier(std::string_view id) override {
    return store_.SyncBarrier(id);
  }
  absl::StatusOr<uint64_t> Count() const override { return store_.Count(); }
  absl::Status ForEach(Visitor visit) const override {
    return store_.ForEach(std::move(visit));
  }

 protected:
  // The guard of the lease period a write is made in.
  virtual OwnerGuard CurrentGuard() const = 0;

 private:
  EtcdRecordStore& store_;
};

}  // namespace bkv::storage

#endif  // BKV_STORAGE_ETCD_RECORD_STORE_H_
