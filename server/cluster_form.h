#ifndef BKV_SERVER_CLUSTER_FORM_H_
#define BKV_SERVER_CLUSTER_FORM_H_

// The members list kept in each quorum member's token, and the security
// officer's `cluster form` that writes it: first forming, and replacing
// members by hand-over (--export) and carry (--carry) (docs/rollback.md
// "Forming and replacing members").

#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bkv/fresh/v1/endorse.pb.h"
#include "hsm/pkcs11_hsm.h"
#include "server/config.h"
#include "server/quorum_config.h"

namespace bkv::server {

// The token's members object; nullopt when it was never formed.
absl::StatusOr<std::optional<fresh::v1::FormedMembers>> ReadFormed(
    const std::shared_ptr<hsm::Pkcs11Hsm>& token);

// `serve` and the cluster commands: membership comes from the token. The
// file's ids and keys must give the token's list (its addresses are used);
// the token's base is added. FailedPrecondition naming the ceremony when
// the token was never formed, is handing over, or holds another list.
absl::Status UseFormedMembers(const std::shared_ptr<hsm::Pkcs11Hsm>& token,
                              QuorumSettings& q);

// The security officer's PIN proven on this node's token (C_Login(CKU_SO)),
// before anything is changed.
absl::Status ProveSoPin(const VaultConfig& c, const std::string& so_pin_file);

struct FormArgs {
  std::string members_file;
  int node_id = 0;
  std::string so_pin_file;
  std::string export_to;   // --export: this survivor's hand-over
  std::string carry_from;  // --carry: comma-separated hand-overs
  // --decision: a quorum re-anchor's table (`rollback reanchor --carry`),
  // checked against --max-attempts.
  std::string decision;
  uint32_t max_attempts = 0;  // 0: [freshness] reanchor_max_attempts
  uint32_t ceremonies = 0;    // Form sets it: [freshness] reanchor_budget
  // --accept-fewer: hand-overs below the carry bound, with a decision that
  // re-anchors every shard (docs/rollback.md "Below the carry bound").
  // With --export, too: hand over although the hand-overs the carry can get
  // are below the bound (form3 review finding 2).
  bool accept_fewer = false;
  // --leaving-exports: leaving members that will hand over too (a healthy
  // swap), counted toward the carry bound at --export.
  std::vector<uint32_t> leaving_exports;
};

// The hand-overs in a comma-separated list of files.
absl::StatusOr<std::vector<fresh::v1::HandOver>> ReadHandOvers(
    const std::string& list);

// Recovery review finding 5, cform review finding 13: an anchored object
// that can't be read (half of it gone after a crash between its two token
// writes, a failing MAC, bytes `parses` refuses) is destroyed with its MAC
// key, logged as `event`, so the officer's ceremony can write it anew. True
// when it was; false when it is absent or sound. Form3 review finding 6:
// any other read error (a lost session, a busy HSM) destroys nothing and is
// returned; with `refuse` set, a broken object is not destroyed either:
// FailedPrecondition with that text, logged as `event`_refused.
absl::StatusOr<bool> DestroyBrokenObject(
    const std::shared_ptr<hsm::Pkcs11Hsm>& token, absl::string_view label,
    absl::string_view mac_label,
    const std::function<bool(std::span<const uint8_t>)>& parses,
    absl::string_view event, absl::string_view refuse = "");

// `bkv-vault cluster form`, the node's vault stopped.
absl::Status Form(const VaultConfig& c, const FormArgs& a, std::ostream& out);

}  // namespace bkv::server

#endif  // BKV_SERVER_CLUSTER_FORM_H_
