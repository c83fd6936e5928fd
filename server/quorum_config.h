#ifndef BKV_SERVER_QUORUM_CONFIG_H_
#define BKV_SERVER_QUORUM_CONFIG_H_

// The [freshness] quorum settings, checked as a whole at start (the members
// file read and parsed, this node found in it), for `serve` and the
// `cluster` ceremony commands (docs/operations.md "Quorum of endorsing
// nodes").

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "freshness/endorsement.h"
#include "server/config.h"

namespace bkv::server {

struct QuorumSettings {
  freshness::Members members;
  uint32_t node_id = 0;
  std::string peer_listen;  // where this node's Endorser service listens
  absl::Duration endorse_timeout;
  bool owner = false;  // chosen by the operator (RocksDB)
  // Elected by an etcd lease of this TTL (storage = etcd); zero: `owner`.
  absl::Duration owner_lease_ttl;
  // mTLS between members when ca_pem is set: this node's certificate and
  // key (as server and as client) and the members' CA.
  struct Tls {
    std::string cert_pem, key_pem, ca_pem;
  } tls;
  // The members digest a carry (replacement, quorum re-anchor) came from:
  // the etcd quorum marker may still hold it, and moves on to `members`'.
  std::optional<freshness::Digest> carried_from;
  // Elected owner: false, this member never campaigns (finding 7).
  bool owner_candidate = true;
  // [freshness] reanchor_budget and reanchor_max_attempts: the B and K a
  // first or adopted table must keep to (freshness::CheckHeadRanges).
  freshness::HeadLimits limits = {};
};

// `c` must use the quorum (c.UsesQuorum()) and be validated. Refuses, saying
// what to fix: an unreadable or malformed members file, a duplicate member
// or key, fewer than 3 members, a node id not in the file, a peer address
// that is not host:port, plaintext peers off loopback without
// allow_plaintext_non_loopback.
absl::StatusOr<QuorumSettings> LoadQuorumSettings(const VaultConfig& c);

// `serve`'s check of candidacy against the list formed in the token
// (docs/rollback.md "Candidacy in the members list"): with the elected
// owner, `owner_candidate` must equal this node's mark when the list marks
// any member; over RocksDB the owner must be a candidate. InvalidArgument
// saying what to change; logs a warning for one candidate, and for
// `owner_candidate = false` under a list that marks nobody (not enforced).
absl::Status CheckCandidacy(const QuorumSettings& q);

// "<id> <public key hex> <peer>": this node's line of the members file.
std::string MemberLine(uint32_t id, const hsm::EndorsementKey::PublicKey& key,
                       const std::string& peer);

}  // namespace bkv::server

#endif  // BKV_SERVER_QUORUM_CONFIG_H_
