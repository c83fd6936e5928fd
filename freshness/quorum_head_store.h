#ifndef BKV_FRESHNESS_QUORUM_HEAD_STORE_H_
#define BKV_FRESHNESS_QUORUM_HEAD_STORE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "freshness/endorsement.h"
#include "freshness/head_table.h"

namespace bkv::freshness {

// How the owner reaches one endorser: itself in-process, the others over
// gRPC (server/endorser_service.h).
class EndorserPeer {
 public:
  using EndorseDone =
      std::function<void(absl::StatusOr<fresh::v1::EndorseResponse>)>;
  using PrepareDone =
      std::function<void(absl::StatusOr<fresh::v1::PrepareResponse>)>;
  using CommitDone =
      std::function<void(absl::StatusOr<fresh::v1::CommitResponse>)>;
  using RecoverDone =
      std::function<void(absl::StatusOr<fresh::v1::RecoverResponse>)>;

  virtual ~EndorserPeer() = default;
  // Each calls `done` exactly once, on any thread, within the peer's
  // deadline.
  virtual void Endorse(const fresh::v1::EndorseRequest& request,
                       EndorseDone done) = 0;
  virtual void Prepare(const fresh::v1::PrepareRequest& request,
                       PrepareDone done) = 0;
  virtual void Commit(const fresh::v1::CommitRequest& request,
                      CommitDone done) = 0;
  // The recovery query (docs/rollback.md "Endorser recovery round").
  virtual void Recover(const fresh::v1::RecoverRequest& request,
                       RecoverDone done) = 0;
};

// The local endorser as a peer (synchronous).
class LocalEndorserPeer final : public EndorserPeer {
 public:
  explicit LocalEndorserPeer(Endorser& e) : endorser_(e) {}
  void Endorse(const fresh::v1::EndorseRequest& request,
               EndorseDone done) override;
  void Prepare(const fresh::v1::PrepareRequest& request,
               PrepareDone done) override;
  void Commit(const fresh::v1::CommitRequest& request,
              CommitDone done) override;
  void Recover(const fresh::v1::RecoverRequest& request,
               RecoverDone done) override;

 private:
  Endorser& endorser_;
};

// The head table of a cluster (docs/rollback.md "Quorum across nodes"): the
// owner's HeadStore. Read is the take-over (Prepare in a term of this node's
// at a majority, adopt the newest committed certificate's table, re-endorse
// it in that term); Write is one endorsement round (a majority of distinct
// members' valid signatures) and the commit step (the certificate at a
// majority) before it returns. A failed Write keeps its table in flight:
// the next Write must be the same bytes until certified. A write fails
// FailedPrecondition only on a signed refusal naming a higher promise
// (FreshRecordStore then fails closed) and Unavailable when no majority
// answered in time (no effect claimed). Thread-compatible: FreshRecordStore
// serialises Write.
class QuorumHeadStore final : public HeadStore {
 public:
  // `self` is this node's endorser (it signs the requests); `peers` are
  // every member, `self`'s local peer among them and last.
  QuorumHeadStore(const Members& members, Endorser& self,
                  std::vector<std::shared_ptr<EndorserPeer>> peers,
                  absl::Duration round_timeout)
      : members_(members),
        self_(self),
        peers_(std::move(peers)),
        round_timeout_(round_timeout) {}

  absl::StatusOr<std::optional<HeadTable>> Read() override;
  absl::Status Write(const HeadTable& t) override;

  uint64_t Term() const override { return term_; }
  // For /metrics, from any thread.
  struct Stats {
    uint64_t writes = 0, write_failures = 0;        // head writes (Write)
    uint64_t takeovers = 0, takeover_failures = 0;  // Read
  };
  Stats stats() const {
    return {writes_.load(), write_failures_.load(), takeovers_.load(),
            takeover_failures_.load()};
  }
  // A signed refusal named a later term: another node owns the chain now.
  // `f` runs once, when that happens (now, if it has), on the writer's
  // thread (review finding 4 of issue 12: health and the owner gauge).
  bool fenced() const { return fenced_.load(); }
  void OnFenced(std::function<void()> f);
  const std::optional<fresh::v1::Certificate>& certificate() const {
    return cert_;
  }

 private:
  absl::StatusOr<std::optional<HeadTable>> TakeOver();
  absl::Status NoChainHeld(
      const std::vector<fresh::v1::EndorserState>& granted) const;
  absl::StatusOr<std::vector<fresh::v1::EndorserState>> PrepareRound(
      uint64_t term, uint64_t* highest_promised);
  // One endorsement round: the certificate of `request`'s table, or why not.
  absl::StatusOr<fresh::v1::Certificate> EndorseRound(
      const fresh::v1::EndorseRequest& request);
  absl::Status CommitRound(const fresh::v1::Certificate& cert,
                           const std::string& table);
  // Endorse, then commit; on success the certified head is the new base.
  absl::Status Propose(fresh::v1::EndorseRequest request);

  const Members& members_;
  Endorser& self_;
  const std::vector<std::shared_ptr<EndorserPeer>> peers_;
  const absl::Duration round_timeout_;
  uint64_t term_ = 0;
  std::string digest_ = std::string(32, '\0');  // of the certified table
  std::optional<fresh::v1::Certificate> cert_;
  std::optional<std::string> in_flight_;  // a table not yet certified
  std::atomic<uint64_t> writes_{0}, write_failures_{0}, takeovers_{0},
      takeover_failures_{0};
  std::atomic<bool> fenced_{false};
  absl::Mutex on_fenced_mu_;
  std::function<void()> on_fenced_ ABSL_GUARDED_BY(on_fenced_mu_);
};

}  // namespace bkv::freshness

#endif  // BKV_FRESHNESS_QUORUM_HEAD_STORE_H_
