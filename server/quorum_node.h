#ifndef BKV_SERVER_QUORUM_NODE_H_
#define BKV_SERVER_QUORUM_NODE_H_

// A vault node's part in the quorum of endorsing nodes (docs/rollback.md
// "Quorum across nodes"): its Endorser over its token, served on the peer
// address, and, on the owner, the QuorumHeadStore that FreshRecordStore
// writes its heads through. A node that is not the owner only endorses; its
// account calls are refused by StandbyRecordStore.

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "freshness/endorsement.h"
#include "freshness/quorum_head_store.h"
#include "server/endorser_recovery.h"
#include "server/endorser_service.h"
#include "server/quorum_config.h"
#include "storage/record_store.h"

namespace bkv::server {

// Members are destroyed in reverse: the head store, then the peer server
// (no call in flight), then the endorser it serves.
struct QuorumNode {
  explicit QuorumNode(QuorumSettings s) : settings(std::move(s)) {}
  QuorumSettings settings;
  std::unique_ptr<freshness::Endorser> endorser;
  std::unique_ptr<EndorserService> service;
  std::unique_ptr<grpc::Server> peer_server;
  // Every other member over gRPC: the recovery round's and the owner's.
  std::vector<std::shared_ptr<freshness::EndorserPeer>> others;
  std::unique_ptr<EndorserRecoveryLoop> recovery;
  std::unique_ptr<freshness::QuorumHeadStore> heads;  // owner only
  // A SoftHSM token on a filesystem not mounted sync (recovery review
  // finding 3): its last writes are lost at a power loss.
  bool token_storage_unsynced = false;

  ~QuorumNode();
  // "# HELP ..." lines of the endorser's state and this node's role:
  // `owner_heads` is the head store it extends the chain with, if any.
  void RenderMetrics(std::string& out,
                     const freshness::QuorumHeadStore* owner_heads) const;
  void RenderMetrics(std::string& out) const {
    RenderMetrics(out, heads.get());
  }
};

// The owner's role when it can change while the node serves (an elected
// owner, server/elected_owner.h): account calls go to the owner's store
// while this node owns the chain and are refused REASON_NOT_OWNER otherwise.
class OwnerRole : public storage::RecordStore {
 public:
  // `f(true)` when this node starts serving account calls, `f(false)` when
  // it stops; once now with the current state. nullptr: no more calls.
  virtual void OnServing(std::function<void(bool serving)> f) = 0;
};

// Every other member over gRPC, this node's endorser in-process and last:
// the owner's head store (a new one per take-over).
std::unique_ptr<freshness::QuorumHeadStore> MakeQuorumHeads(QuorumNode& q);

// An account call on a node that does not own the chain: UNAVAILABLE,
// REASON_NOT_OWNER, ATTEMPT_NOT_COUNTED, saying `why`.
absl::Status NotOwnerError(absl::string_view why);

// Opens the endorser in `token` (its key must be the members file's for
// this node), serves it on the peer address and, on the owner, builds the
// head store over every member. Fails saying what to fix.
// SoftHSM's token files under `dir` are written synchronously: the
// filesystem is mounted sync (statvfs ST_SYNCHRONOUS), or `dir` and every
// directory and file under it carry the sync attribute (`chattr -R +S`,
// FS_SYNC_FL, which new files inherit from their directory). SoftHSM does
// not fsync, so otherwise a power cut can take the newest heads
// (docs/rollback.md "Slots", power loss).
bool TokenStorageSynchronous(const std::string& dir);
// The gauge bkv_freshness_token_storage_unsynced.
void RenderTokenStorageUnsynced(bool unsynced, std::string& out);

// Every other member over gRPC (mTLS when configured).
std::vector<std::shared_ptr<freshness::EndorserPeer>> OtherMembers(
    const QuorumSettings& s);

absl::StatusOr<std::unique_ptr<QuorumNode>> StartQuorumNode(
    QuorumSettings settings, std::shared_ptr<hsm::Pkcs11Hsm> token);

// The store of a node that is not the owner: every call is UNAVAILABLE,
// not counted, naming the owner to send it to.
std::unique_ptr<storage::RecordStore> MakeStandbyRecordStore();

}  // namespace bkv::server

#endif  // BKV_SERVER_QUORUM_NODE_H_
