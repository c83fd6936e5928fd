#include "server/quorum_node.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "server/errors.h"
#include "server/log.h"

namespace bkv::server {
namespace {

// mTLS when configured: members present certificates of the members' CA
// both ways. Otherwise plaintext: safety rests on the signed requests and
// answers (docs/rollback.md "Peer channel"); the config keeps it off open
// networks unless told otherwise.
std::shared_ptr<grpc::ServerCredentials> PeerServerCredentials(
    const QuorumSettings::Tls& tls) {
  if (tls.ca_pem.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions o(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  o.pem_root_certs = tls.ca_pem;
  o.pem_key_cert_pairs.push_back({tls.key_pem, tls.cert_pem});
  return grpc::SslServerCredentials(o);
}

std::shared_ptr<grpc::ChannelCredentials> PeerChannelCredentials(
    const QuorumSettings::Tls& tls) {
  if (tls.ca_pem.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = tls.ca_pem;
  o.pem_private_key = tls.key_pem;
  o.pem_cert_chain = tls.cert_pem;
  return grpc::SslCredentials(o);
}

absl::Status StartPeerServer(QuorumNode& q) {
  q.service = std::make_unique<EndorserService>(*q.endorser);
  grpc::ServerBuilder b;
  b.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  b.AddListeningPort(q.settings.peer_listen,
                     PeerServerCredentials(q.settings.tls), &port);
  b.RegisterService(q.service.get());
  q.peer_server = b.BuildAndStart();
  if (q.peer_server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("the endorser cannot listen on ",
                                               q.settings.peer_listen,
                                               " (in use, or invalid)"));
  }
  return absl::OkStatus();
}

// The file or directory carries FS_SYNC_FL (`chattr +S`).
bool SyncAttribute(const std::filesystem::path& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  long flags = 0;  // NOLINT(runtime/int): the ioctl's type
  const bool sync =
      ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_SYNC_FL) != 0;
  close(fd);
  return sync;
}

}  // namespace

void RenderTokenStorageUnsynced(bool unsynced, std::string& out) {
  absl::StrAppend(
      &out,
      "# HELP bkv_freshness_token_storage_unsynced 1: the SoftHSM token "
      "directory is not written synchronously (mounted sync or chattr +S): "
      "a power cut can lose heads (docs/operations.md).\n"
      "# TYPE bkv_freshness_token_storage_unsynced gauge\n"
      "bkv_freshness_token_storage_unsynced ",
      unsynced ? 1 : 0, "\n");
}

bool TokenStorageSynchronous(const std::string& dir) {
  struct statvfs st;
  if (statvfs(dir.c_str(), &st) == 0 && (st.f_flag & ST_SYNCHRONOUS) != 0) {
    return true;
  }
  std::error_code ec;
  if (!SyncAttribute(dir)) return false;
  auto it = std::filesystem::recursive_directory_iterator(dir, ec);
  // Bounded: a token directory holds a few files per token.
  for (int n = 0; !ec && it != std::filesystem::recursive_directory_iterator();
       it.increment(ec), ++n) {
    if (n > 10000 || !SyncAttribute(it->path())) return false;
  }
  return !ec;
}

std::vector<std::shared_ptr<freshness::EndorserPeer>> OtherMembers(
    const QuorumSettings& s) {
  std::vector<std::shared_ptr<freshness::EndorserPeer>> peers;
  for (const freshness::Member& m : s.members.all()) {
    if (m.id == s.node_id) continue;
    peers.push_back(std::make_shared<GrpcEndorserPeer>(
        m.peer_address, PeerChannelCredentials(s.tls), s.endorse_timeout));
  }
  return peers;
}

std::unique_ptr<freshness::QuorumHeadStore> MakeQuorumHeads(QuorumNode& q) {
  std::vector<std::shared_ptr<freshness::EndorserPeer>> peers = q.others;
  peers.push_back(std::make_shared<freshness::LocalEndorserPeer>(*q.endorser));
  return std::make_unique<freshness::QuorumHeadStore>(
      q.settings.members, *q.endorser, std::move(peers),
      q.settings.endorse_timeout);
}

absl::Status NotOwnerError(absl::string_view why) {
  return WithAttempt(WithDetail(absl::UnavailableError(why),
                                vault::v1::ErrorDetail::REASON_NOT_OWNER),
                     vault::v1::ErrorDetail::ATTEMPT_NOT_COUNTED);
}

namespace {

// Every account call of a node that does not own the head chain.
absl::Status NotOwner() {
  return NotOwnerError(
      "this vault node only endorses the quorum's heads; account calls go to "
      "the owner node ([freshness] owner)");
}

class StandbyRecordStore final : public storage::RecordStore {
 public:
  absl::StatusOr<storage::v1::UserRecord> Get(std::string_view) const override {
    return NotOwner();
  }
  absl::StatusOr<uint64_t> CompareAndSwap(
      std::string_view, uint64_t, const storage::v1::UserRecord&) override {
    return NotOwner();
  }
  absl::Status Delete(std::string_view, uint64_t) override {
    return NotOwner();
  }
  absl::Status Shred(std::string_view) override { return NotOwner(); }
  absl::Status SyncBarrier(std::string_view) override { return NotOwner(); }
  absl::StatusOr<uint64_t> Count() const override { return NotOwner(); }
  absl::Status ForEach(Visitor) const override { return NotOwner(); }
};

}  // namespace

QuorumNode::~QuorumNode() {
  recovery.reset();
  heads.reset();
  if (peer_server) {
    peer_server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  }
}

void QuorumNode::RenderMetrics(
    std::string& out, const freshness::QuorumHeadStore* owner_heads) const {
  const fresh::v1::EndorserState s = endorser->State();
  const fresh::v1::HeadRef held = freshness::HeldHead(s);
  absl::StrAppend(
      &out,
      "# HELP bkv_freshness_quorum_owner 1: this node extends the head chain "
      "and serves account calls; 0: it only endorses.\n# TYPE "
      "bkv_freshness_quorum_owner gauge\nbkv_freshness_quorum_owner ",
      owner_heads && !owner_heads->fenced() ? 1 : 0,
      "\n# HELP bkv_freshness_endorser_promised_term Highest owner term this "
      "node's endorser promised.\n# TYPE bkv_freshness_endorser_promised_term "
      "gauge\nbkv_freshness_endorser_promised_term ",
      s.promised_term(),
      "\n# HELP bkv_freshness_endorser_held_seq Sequence number of the head "
      "this node's endorser holds (it lags when it missed rounds).\n# TYPE "
      "bkv_freshness_endorser_held_seq gauge\nbkv_freshness_endorser_held_seq ",
      held.seq(),
      "\n# HELP bkv_freshness_endorser_held_term Owner term of that head.\n"
      "# TYPE bkv_freshness_endorser_held_term gauge\n"
      "bkv_freshness_endorser_held_term ",
      held.term(),
      "\n# HELP bkv_freshness_endorser_state_writes_total Writes of this "
      "node's endorser state to its token (HSM wear).\n# TYPE "
      "bkv_freshness_endorser_state_writes_total counter\n"
      "bkv_freshness_endorser_state_writes_total ",
      endorser->state_writes(),
      "\n# HELP bkv_freshness_endorser_recovering 1: this node's endorser "
      "signs and promises nothing until enough other members answered its "
      "recovery query (docs/rollback.md \"Endorser recovery round\").\n"
      "# TYPE bkv_freshness_endorser_recovering gauge\n"
      "bkv_freshness_endorser_recovering ",
      endorser->recovering() ? 1 : 0,
      "\n# HELP bkv_freshness_endorser_officer_recovered 1: this start "
      "trusted the security officer's `cluster recover --accept-fewer` "
      "instead of a full recovery round (audit).\n"
      "# TYPE bkv_freshness_endorser_officer_recovered gauge\n"
      "bkv_freshness_endorser_officer_recovered ",
      endorser->officer_recovered() ? 1 : 0,
      "\n# HELP bkv_freshness_endorser_fork_evidence 1: this node's recovery "
      "round found two certificates at one (term, seq) and stopped.\n"
      "# TYPE bkv_freshness_endorser_fork_evidence gauge\n"
      "bkv_freshness_endorser_fork_evidence ",
      recovery != nullptr && recovery->fork_evidence() ? 1 : 0, "\n");
  RenderTokenStorageUnsynced(token_storage_unsynced, out);
  absl::StrAppend(
      &out,
      "# HELP bkv_freshness_endorser_recover_refused_total Recover queries "
      "refused (not signed by another member, malformed).\n"
      "# TYPE bkv_freshness_endorser_recover_refused_total counter\n"
      "bkv_freshness_endorser_recover_refused_total ",
      service != nullptr ? service->recover_refused() : 0,
      "\n# HELP bkv_freshness_endorser_not_candidate_refused_total Endorse "
      "and Prepare requests refused as signed by a member marked "
      "candidate=false.\n"
      "# TYPE bkv_freshness_endorser_not_candidate_refused_total counter\n"
      "bkv_freshness_endorser_not_candidate_refused_total ",
      service != nullptr ? service->not_candidate_refused() : 0,
      "\n# HELP bkv_freshness_endorser_recover_signatures_total Token "
      "signatures over recovery answers (a replayed query reuses its answer).\n"
      "# TYPE bkv_freshness_endorser_recover_signatures_total counter\n"
      "bkv_freshness_endorser_recover_signatures_total ",
      endorser != nullptr ? endorser->recover_signatures() : 0, "\n");
  if (owner_heads == nullptr) return;
  const freshness::QuorumHeadStore::Stats q = owner_heads->stats();
  absl::StrAppend(
      &out,
      "# HELP bkv_freshness_quorum_head_writes_total Head writes through the "
      "quorum (an endorsement and a commit round each); failed: no majority "
      "in time, or fenced.\n# TYPE bkv_freshness_quorum_head_writes_total "
      "counter\nbkv_freshness_quorum_head_writes_total{result=\"ok\"} ",
      q.writes, "\nbkv_freshness_quorum_head_writes_total{result=\"failed\"} ",
      q.write_failures,
      "\n# HELP bkv_freshness_quorum_takeovers_total Take-overs (a Prepare "
      "round in a new term and the adopted head re-endorsed).\n# TYPE "
      "bkv_freshness_quorum_takeovers_total counter\n"
      "bkv_freshness_quorum_takeovers_total{result=\"ok\"} ",
      q.takeovers, "\nbkv_freshness_quorum_takeovers_total{result=\"failed\"} ",
      q.takeover_failures, "\n");
}

absl::StatusOr<std::unique_ptr<QuorumNode>> StartQuorumNode(
    QuorumSettings settings, std::shared_ptr<hsm::Pkcs11Hsm> token) {
  auto q = std::make_unique<QuorumNode>(std::move(settings));
  BKV_ASSIGN_OR_RETURN(q->endorser, freshness::Endorser::Open(
                                        std::move(token), q->settings.members,
                                        q->settings.node_id));
  q->endorser->set_reanchor_limits(q->settings.limits);
  BKV_RETURN_IF_ERROR(StartPeerServer(*q));
  q->others = OtherMembers(q->settings);
  q->recovery = std::make_unique<EndorserRecoveryLoop>(
      *q->endorser, q->others, q->settings.endorse_timeout);
  if (q->settings.owner) q->heads = MakeQuorumHeads(*q);
  Log("info", "quorum_endorser_serving",
      {{"node_id", absl::StrCat(q->settings.node_id)},
       {"peer_listen", q->settings.peer_listen},
       {"members", absl::StrCat(q->settings.members.all().size())},
       {"members_digest", HexEncode(q->settings.members.digest())},
       {"role", q->settings.owner ? "owner"
                : q->settings.owner_lease_ttl > absl::ZeroDuration()
                    ? "elected"
                    : "endorser"},
       {"peer_tls", q->settings.tls.ca_pem.empty() ? "off" : "mtls"}});
  return q;
}

std::unique_ptr<storage::RecordStore> MakeStandbyRecordStore() {
  return std::make_unique<StandbyRecordStore>();
}

}  // namespace bkv::server
