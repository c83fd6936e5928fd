#ifndef BKV_FRESHNESS_MEMBER_CHANGE_H_
#define BKV_FRESHNESS_MEMBER_CHANGE_H_

// Replacing quorum members (docs/rollback.md "Forming and replacing
// members"), pure: the survivors' signed hand-overs under the old list, and
// the base every token of the new list starts from. The hand-over statement:
//
//   "bkv.fresh.handover.v1" || old members digest (32) || new list digest
//   (32) || node u32 || promised u64 || certificate's term u64 || seq u64 ||
//   prev digest (32) || digest (32)           (zeros without a certificate)

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bkv/fresh/v1/endorse.pb.h"
#include "freshness/endorsement.h"
#include "freshness/head_table.h"

namespace bkv::freshness {

// The list a token was formed with, with its base (if any).
absl::StatusOr<Members> FormedList(const fresh::v1::FormedMembers& f);

std::vector<uint8_t> HandOverStatement(const Digest& from,
                                       const fresh::v1::HandOver& h);

// What the carry installs: the new list with its base, and the endorser
// state every token of it starts from.
struct Carry {
  fresh::v1::FormedMembers formed;  // the new list and base
  fresh::v1::EndorserState state;
  // Fewer hand-overs than CarryBound, accepted by the officer: the base is
  // not proven newest, so the carry must be a re-anchor of every shard.
  bool below_bound = false;
  size_t hand_overs = 0;  // distinct old members that handed over
  size_t bound = 0;       // CarryBound of the old list
};

// The carry bound (docs/rollback.md "Why no count is lost"): N - q + 2
// distinct old members' hand-overs, so that one stale or lying token among
// them is outweighed by another member of every commit majority.
size_t CarryBound(const Members& from);

// The hand-overs a replacement can expect, checked at `cluster form
// --export` before anything changes (form3 review finding 2): the survivors
// (old members in `to` with the same key) plus the leaving members the
// officer names as exporting too. InvalidArgument for a leaving id that is
// no old member or is a survivor.
absl::StatusOr<size_t> ExpectedHandOvers(const Members& from, const Members& to,
                                         const std::vector<uint32_t>& leaving);

// Checks the hand-overs (one old list, handed to `to`'s list, each signed by
// a distinct member of the old list, at least CarryBound of them, every
// survivor's, certificates valid under it) and takes the newest certificate
// as the base. With `accept_fewer`, a majority of the old list below the
// bound is accepted, marked below_bound. DataLoss for two certificates at
// one (term, seq) with different digests; FailedPrecondition naming what is
// missing otherwise.
absl::StatusOr<Carry> DecideCarry(
    const Members& to, const std::vector<fresh::v1::HandOver>& hand_overs,
    bool accept_fewer = false);

// The quorum re-anchor (docs/rollback.md "Re-anchor across N tokens"):
// `decided` (the table `rollback reanchor --carry` wrote) becomes the base
// instead of the carried certificate's table, after checking that it
// differs from it only as a re-anchor may: the same shards, a higher seq,
// and each shard either unchanged in epoch, cap, ceremonies left and root,
// or at epoch + 1 with a cap of at most ReanchoredHead(its head,
// max_attempts)'s, at least 1 unless that is 0 (spent), and exactly its
// ceremonies left (one fewer: the lifetime budget is neither spared nor
// raised). Without a carried base (a quorum genesis over a store with
// records) every shard must be at epoch 1 with a cap of 1 to max_attempts
// and exactly `ceremonies` (this node's B) - 1 left. Below the carry bound
// every shard must be re-anchored.
// PermissionDenied otherwise.
absl::Status ApplyDecision(const std::string& decided, uint32_t max_attempts,
                           Carry& carry,
                           uint32_t ceremonies = kDefaultCeremonies);

// What the scanning member signs: "bkv.fresh.decision.v1" || list digest of
// the members || node u32 || carried digest (32, zeros: none) ||
// SHA-256(table).
std::vector<uint8_t> DecisionStatement(const Digest& list,
                                       const fresh::v1::ReanchorDecision& d);
// A decision signed by a member of `to`, over the carry's base: its table
// applied as above.
absl::Status ApplySignedDecision(const Members& to,
                                 const fresh::v1::ReanchorDecision& d,
                                 uint32_t max_attempts, Carry& carry,
                                 uint32_t ceremonies = kDefaultCeremonies);

}  // namespace bkv::freshness

#endif  // BKV_FRESHNESS_MEMBER_CHANGE_H_
