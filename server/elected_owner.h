#ifndef BKV_SERVER_ELECTED_OWNER_H_
#define BKV_SERVER_ELECTED_OWNER_H_

// A quorum member whose owner is elected by an etcd lease (docs/rollback.md
// "Election"): every member runs one. While this node holds the owner lease
// and its take-over succeeded, account calls go to that take-over's
// FreshRecordStore; otherwise they are refused REASON_NOT_OWNER, not
// counted. Winning sets the etcd owner guard and takes over on a worker
// thread; losing the lease (its local deadline, etcd's answer), a fence or
// the guard refusing a write steps down: calls are refused at once, and the
// term's stores go when the calls inside them return. Thread-safe.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "freshness/fresh_record_store.h"
#include "server/owner_lease.h"
#include "server/quorum_node.h"
#include "storage/etcd_record_store.h"

namespace bkv::server {

class ElectedOwner final : public OwnerRole {
 public:
  // `quorum` and `store` must outlive it; `key` is `<prefix>fresh/owner`.
  static std::unique_ptr<ElectedOwner> Start(QuorumNode& quorum,
                                             storage::EtcdRecordStore& store,
                                             std::string key,
                                             freshness::FreshnessOptions fresh);
  // Stops the take-over, steps down and revokes the lease.
  ~ElectedOwner() override;

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

  void OnServing(std::function<void(bool serving)> f) override;
  // The quorum's metrics (owner gauge 1 while serving) and, while serving,
  // the freshness counters of this term's store.
  void RenderMetrics(std::string& out) const;
  std::optional<freshness::FreshnessStats> FreshStats() const;

 private:
  // One take-over's stores; the head store outlives the records' store.
  struct Term {
    std::unique_ptr<freshness::QuorumHeadStore> heads;
    std::unique_ptr<freshness::FreshRecordStore> fresh;
  };
  ElectedOwner(QuorumNode& quorum, storage::EtcdRecordStore& store,
               freshness::FreshnessOptions fresh)
      : quorum_(quorum), store_(store), fresh_options_(std::move(fresh)) {}

  // The serving term, null unless this node holds the lease now.
  std::shared_ptr<Term> Current() const;
  // A refusal by the owner guard: step down, and say "not the owner".
  absl::Status Checked(absl::Status s) const;
  template <typename T>
  absl::StatusOr<T> Checked(absl::StatusOr<T> r) const {
    if (r.ok()) return r;
    return Checked(r.status());
  }
  void Won(int64_t create_revision);
  void Lost(const std::string& why);
  void Work();
  absl::StatusOr<std::shared_ptr<Term>> TakeOver(uint64_t generation);
  bool Superseded(uint64_t generation) const;
  bool PreviousDrained() const;
  // Tells on_serving_ whether this node serves now, if that changed; the
  // last of concurrent callers publishes the truth.
  void PublishServing();

  QuorumNode& quorum_;
  storage::EtcdRecordStore& store_;
  const freshness::FreshnessOptions fresh_options_;
  std::string key_;
  std::unique_ptr<OwnerLease> lease_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<Term> current_;  // guarded by mu_
  // The last term served: a new take-over waits until its calls returned.
  std::weak_ptr<Term> previous_;  // guarded by mu_
  uint64_t generation_ = 0;       // guarded by mu_: a win or a loss each
  uint64_t wanted_ = 0;           // guarded by mu_: the win to take over
  bool stopping_ = false;         // guarded by mu_
  std::mutex serving_mu_;         // held while on_serving_ runs
  std::function<void(bool)> on_serving_;  // guarded by serving_mu_
  std::optional<bool> published_;         // guarded by serving_mu_
  std::thread worker_;
};

}  // namespace bkv::server

#endif  // BKV_SERVER_ELECTED_OWNER_H_
