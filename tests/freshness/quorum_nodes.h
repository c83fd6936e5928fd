// N endorsing nodes in one process for the quorum's tests and bench: each a
// real SoftHSM token (one SOFTHSM2_CONF directory, one label per node) with
// its Ed25519 endorsement key and endorser, served by a real gRPC server on
// a loopback port that can be taken down and brought back.
#ifndef BKV_TESTS_FRESHNESS_QUORUM_NODES_H_
#define BKV_TESTS_FRESHNESS_QUORUM_NODES_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "freshness/endorsement.h"
#include "freshness/quorum_head_store.h"
#include "server/endorser_service.h"

namespace bkv::freshness::testing {

struct QuorumNode {
  std::shared_ptr<hsm::Pkcs11Hsm> token;
  std::unique_ptr<Endorser> endorser;
  std::unique_ptr<server::EndorserService> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;  // chosen at the first Serve, kept after

  absl::Status Serve();
  void Stop();
};

class QuorumNodes {
 public:
  // Call before anything in the process loads SoftHSM.
  static absl::StatusOr<std::unique_ptr<QuorumNodes>> Create(int n);
  ~QuorumNodes();

  const Members& members() const { return *members_; }
  QuorumNode& node(int i) { return nodes_[i]; }
  // An owner's head store: node `self`'s endorser in-process, the others
  // over gRPC.
  std::unique_ptr<QuorumHeadStore> Heads(int self);
  // Node `i`'s recovery round over the others in-process (Create runs it
  // for every node: an opened endorser signs nothing before).
  absl::Status Recover(int i);

 private:
  std::string dir_;
  std::unique_ptr<Members> members_;
  std::vector<QuorumNode> nodes_;
};

}  // namespace bkv::freshness::testing

#endif  // BKV_TESTS_FRESHNESS_QUORUM_NODES_H_
