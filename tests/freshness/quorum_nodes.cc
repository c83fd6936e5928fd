#include "tests/freshness/quorum_nodes.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "crypto/status_macros.h"
#include "freshness/endorser_recovery.h"
#include "hsm/pin.h"
#include "hsm/softhsm_dev.h"
#include "tests/hsm/test_token.h"

namespace bkv::freshness::testing {

absl::Status QuorumNode::Serve() {
  // A fresh service per server: a gRPC service is registered with one
  // server for its whole life.
  service = std::make_unique<server::EndorserService>(*endorser);
  grpc::ServerBuilder b;
  b.AddListeningPort(absl::StrCat("127.0.0.1:", port),
                     grpc::InsecureServerCredentials(), &port);
  b.RegisterService(service.get());
  server = b.BuildAndStart();
  if (server == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("endorser could not listen on 127.0.0.1:", port));
  }
  return absl::OkStatus();
}

void QuorumNode::Stop() {
  server->Shutdown(absl::ToChronoTime(absl::Now()));
  server.reset();
}

absl::StatusOr<std::unique_ptr<QuorumNodes>> QuorumNodes::Create(int n) {
  std::unique_ptr<QuorumNodes> q(new QuorumNodes);
  q->dir_ = hsm::testing::MakeTempDir();
  q->nodes_.resize(n);
  std::vector<Member> members;
  for (int i = 0; i < n; ++i) {
    const std::string label = absl::StrCat("bkv-q", i + 1);
    BKV_ASSIGN_OR_RETURN(hsm::SoftHsmDevToken dev,
                         hsm::PrepareSoftHsmDir(q->dir_, label));
    BKV_ASSIGN_OR_RETURN(SecretBytes pin, hsm::ReadPinFile(dev.user_pin_path));
    hsm::TokenOptions o;
    o.token_label = label;
    BKV_ASSIGN_OR_RETURN(q->nodes_[i].token, hsm::Pkcs11Hsm::Open(o, pin));
    BKV_ASSIGN_OR_RETURN(auto key,
                         hsm::EndorsementKey::Generate(q->nodes_[i].token));
    BKV_RETURN_IF_ERROR(Endorser::CreateState(q->nodes_[i].token));
    members.push_back({uint32_t(i + 1), key->public_key(), "loopback"});
  }
  BKV_ASSIGN_OR_RETURN(Members m, Members::Create(members));
  q->members_ = std::make_unique<Members>(std::move(m));
  for (int i = 0; i < n; ++i) {
    QuorumNode& node = q->nodes_[i];
    BKV_ASSIGN_OR_RETURN(node.endorser,
                         Endorser::Open(node.token, *q->members_, i + 1));
    BKV_RETURN_IF_ERROR(node.Serve());
  }
  for (int i = 0; i < n; ++i) BKV_RETURN_IF_ERROR(q->Recover(i));
  return q;
}

QuorumNodes::~QuorumNodes() {
  for (QuorumNode& n : nodes_) {
    if (n.server) n.Stop();
  }
  nodes_.clear();
  hsm::testing::RemoveTree(dir_);
}

absl::Status QuorumNodes::Recover(int i) {
  std::vector<std::shared_ptr<EndorserPeer>> others;
  for (int j = 0; j < static_cast<int>(nodes_.size()); ++j) {
    if (j != i) {
      others.push_back(
          std::make_shared<LocalEndorserPeer>(*nodes_[j].endorser));
    }
  }
  return RecoveryRound(*nodes_[i].endorser, others, absl::Seconds(2));
}

std::unique_ptr<QuorumHeadStore> QuorumNodes::Heads(int self) {
  std::vector<std::shared_ptr<EndorserPeer>> peers;
  for (int i = 0; i < static_cast<int>(nodes_.size()); ++i) {
    if (i == self) continue;
    peers.push_back(std::make_shared<server::GrpcEndorserPeer>(
        absl::StrCat("127.0.0.1:", nodes_[i].port),
        grpc::InsecureChannelCredentials(), absl::Seconds(2)));
  }
  peers.push_back(std::make_shared<LocalEndorserPeer>(*nodes_[self].endorser));
  return std::make_unique<QuorumHeadStore>(*members_, *nodes_[self].endorser,
                                           std::move(peers), absl::Seconds(2));
}

}  // namespace bkv::freshness::testing
