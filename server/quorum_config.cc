#include "server/quorum_config.h"

#include <algorithm>
#include <cctype>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "net/loopback.h"
#include "server/build_vault.h"
#include "server/log.h"

namespace bkv::server {
namespace {

// Fewer than 3 tolerate no endorser's loss (2 of 2 is a majority), and one
// is the single-node mode (TokenHeadStore), not a quorum.
constexpr size_t kMinMembers = 3;

bool IsHostPort(const std::string& a) {
  const size_t colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= a.size() ||
      a.size() - colon - 1 > 5) {
    return false;
  }
  const std::string port = a.substr(colon + 1);
  return std::all_of(port.begin(), port.end(), ::isdigit) &&
         std::stoi(port) <= 65535;
}

// Every member's peer address, and this node's listen address.
absl::Status CheckPeers(const VaultConfig& c, const QuorumSettings& q) {
  std::vector<std::string> addresses = {q.peer_listen};
  for (const freshness::Member& m : q.members.all()) {
    addresses.push_back(m.peer_address);
  }
  for (const std::string& a : addresses) {
    if (!IsHostPort(a)) {
      return absl::InvalidArgumentError(
          absl::StrCat(c.freshness_members_file, ": peer address '", a,
                       "' is not host:port with a port from 0 to 65535"));
    }
    // Safety rests on the signatures (docs/rollback.md "Peer channel"), a
    // plaintext channel is still kept off open networks.
    if (!c.PeerTls() && !IsLoopbackHostPort(a) &&
        !c.allow_plaintext_non_loopback) {
      return absl::InvalidArgumentError(absl::StrCat(
          "peer address ", a,
          " is not loopback and the peer channel is plaintext: set "
          "[freshness] peer_cert_file, peer_key_file and peer_ca_file (mTLS), "
          "or allow_plaintext_non_loopback on a private network"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string MemberLine(uint32_t id, const hsm::EndorsementKey::PublicKey& key,
                       const std::string& peer) {
  return absl::StrCat(id, " ", HexEncode(key), " ",
                      peer.empty() ? "<peer host:port>" : peer);
}

absl::Status CheckCandidacy(const QuorumSettings& q) {
  const freshness::Member* self = q.members.Find(q.node_id);
  if (self == nullptr) return absl::InvalidArgumentError("node not listed");
  const bool elected = q.owner_lease_ttl > absl::ZeroDuration();
  if (elected && q.members.marks_candidacy() &&
      q.owner_candidate != self->candidate) {
    return absl::InvalidArgumentError(absl::StrCat(
        "[freshness] owner_candidate = ", q.owner_candidate ? "true" : "false",
        " but node ", q.node_id, "'s line in the members list (formed in ",
        "this token) is candidate=", self->candidate ? "true" : "false",
        ": the endorsers enforce the list; set owner_candidate to match, or "
        "change the list by the security officer's ceremony "
        "(docs/operations.md \"Endorser-only members\")"));
  }
  if (!elected && q.owner && !self->candidate) {
    return absl::InvalidArgumentError(absl::StrCat(
        "[freshness] owner is set on node ", q.node_id,
        ", which the members list marks candidate=false: every endorser "
        "would refuse its terms; make the owner a candidate"));
  }
  if (elected && !q.members.marks_candidacy() && !q.owner_candidate) {
    Log("warn", "quorum_candidacy_not_enforced",
        {{"node_id", absl::StrCat(q.node_id)},
         {"hint",
          "owner_candidate = false is only this node's promise: mark it "
          "candidate=false in the members list (a new list: "
          "docs/operations.md \"Endorser-only members\")"}});
  }
  if (elected && q.members.candidates().size() == 1) {
    Log("warn", "quorum_one_candidate",
        {{"candidate", absl::StrCat(q.members.candidates()[0])},
         {"hint", "one member may own the chain: no failover"}});
  }
  return absl::OkStatus();
}

absl::StatusOr<QuorumSettings> LoadQuorumSettings(const VaultConfig& c) {
  BKV_ASSIGN_OR_RETURN(std::string text,
                       ReadTextFile(c.freshness_members_file));
  auto members = freshness::Members::Parse(text);
  if (!members.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        c.freshness_members_file, ": ", members.status().message()));
  }
  if (members->all().size() < kMinMembers) {
    return absl::InvalidArgumentError(absl::StrCat(
        c.freshness_members_file, ": ", members->all().size(),
        " members; a quorum needs at least ", kMinMembers,
        " nodes, each with its own token (one node: leave members_file "
        "unset)"));
  }
  const uint32_t id = static_cast<uint32_t>(c.freshness_node_id);
  const freshness::Member* self = members->Find(id);
  if (self == nullptr) {
    std::vector<uint32_t> ids;
    for (const auto& m : members->all()) ids.push_back(m.id);
    return absl::InvalidArgumentError(absl::StrCat(
        "[freshness] node_id ", id, " is not in ", c.freshness_members_file,
        " (it lists ", absl::StrJoin(ids, ", "), ")"));
  }
  QuorumSettings q{*std::move(members),
                   id,
                   c.freshness_peer_listen,
                   absl::Milliseconds(c.freshness_endorse_timeout_ms),
                   c.freshness_owner,
                   c.ElectsOwner()
                       ? absl::Seconds(c.freshness_owner_lease_ttl_s)
                       : absl::ZeroDuration(),
                   {},
                   std::nullopt};
  q.owner_candidate = c.freshness_owner_candidate;
  q.limits = {static_cast<uint32_t>(c.freshness_reanchor_budget),
              static_cast<uint32_t>(c.freshness_reanchor_max_attempts)};
  if (q.peer_listen.empty()) q.peer_listen = q.members.Find(id)->peer_address;
  BKV_RETURN_IF_ERROR(CheckPeers(c, q));
  if (c.PeerTls()) {
    BKV_ASSIGN_OR_RETURN(q.tls.cert_pem,
                         ReadTextFile(c.freshness_peer_cert_file));
    BKV_ASSIGN_OR_RETURN(q.tls.key_pem,
                         ReadTextFile(c.freshness_peer_key_file));
    BKV_ASSIGN_OR_RETURN(q.tls.ca_pem, ReadTextFile(c.freshness_peer_ca_file));
  }
  return q;
}

}  // namespace bkv::server
