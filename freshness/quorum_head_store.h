#ifndef BKV_FRESHNESS_QUORUM_HEAD_STORE_H_
#define BKV_FRESHNESS_QUORUM_HEAD_STORE_H_

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
      std::function<void(absl::StatusOr<fresh::v1::Endorsement>)>;
  using PrepareDone = std::function<void(absl::StatusOr<PrepareResult>)>;

  virtual ~EndorserPeer() = default;
  // Each calls `done` exactly once, on any thread, within the peer's
  // deadline.
  virtual void Endorse(const fresh::v1::EndorseRequest& request,
                       EndorseDone done) = 0;
  virtual void Prepare(uint64_t term, PrepareDone done) = 0;
};

// The local endorser as a peer (synchronous).
class LocalEndorserPeer final : public EndorserPeer {
 public:
  explicit LocalEndorserPeer(Endorser& e) : endorser_(e) {}
  void Endorse(const fresh::v1::EndorseRequest& request,
               EndorseDone done) override;
  void Prepare(uint64_t term, PrepareDone done) override;

 private:
  Endorser& endorser_;
};

// The head table of a cluster (docs/rollback.md "Quorum across nodes"): the
// owner's HeadStore. Read is the take-over (Prepare in a new term at a
// majority, adopt the highest held head, re-endorse it in that term); Write
// is one endorsement round that returns once a majority of distinct members
// signed the table as the direct successor of the previous one. A write
// fails FailedPrecondition when an endorser says a later owner exists
// (FreshRecordStore then fails closed) and Unavailable when no majority
// answered in time (no effect claimed). Thread-compatible: FreshRecordStore
// serialises Write.
class QuorumHeadStore final : public HeadStore {
 public:
  // `peers` are every member, this node's own endorser among them and last
  // (a local peer answers synchronously).
  QuorumHeadStore(const Members& members,
                  std::vector<std::shared_ptr<EndorserPeer>> peers,
                  absl::Duration round_timeout)
      : members_(members),
        peers_(std::move(peers)),
        round_timeout_(round_timeout) {}

  absl::StatusOr<std::optional<HeadTable>> Read() override;
  absl::Status Write(const HeadTable& t) override;

  uint64_t Term() const override { return term_; }
  const std::optional<fresh::v1::Certificate>& certificate() const {
    return cert_;
  }

 private:
  absl::StatusOr<std::vector<fresh::v1::EndorserState>> PrepareRound(
      uint64_t term, uint64_t* highest_promised);
  // One endorsement round: the certificate of `request`'s table, or why not.
  absl::StatusOr<fresh::v1::Certificate> EndorseRound(
      const fresh::v1::EndorseRequest& request);

  const Members& members_;
  const std::vector<std::shared_ptr<EndorserPeer>> peers_;
  const absl::Duration round_timeout_;
  uint64_t term_ = 0;
  std::string digest_ = std::string(32, '\0');  // of the certified table
  std::optional<fresh::v1::Certificate> cert_;
};

}  // namespace bkv::freshness

#endif  // BKV_FRESHNESS_QUORUM_HEAD_STORE_H_
