#ifndef BKV_FRESHNESS_MEMBER_CHANGE_H_
#define BKV_FRESHNESS_MEMBER_CHANGE_H_

// Replacing quorum members (docs/rollback.md "Forming and replacing
// members"), pure: the survivors' signed hand-overs under the old list, and
// the base every token of the new list starts from. The hand-over statement:
//
//   "bkv.fresh.handover.v1" || old members digest (32) || new list digest
//   (32) || node u32 || promised u64 || certificate's term u64 || seq u64 ||
//   prev digest (32) || digest (32)           (zeros without a certificate)

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bkv/fresh/v1/endorse.pb.h"
#include "freshness/endorsement.h"

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
};

// Checks the hand-overs (one old list, handed to `to`'s list, each signed by
// a distinct member of the old list, at least its majority, certificates
// valid under it) and takes the newest certificate as the base. DataLoss for
// two certificates at one (term, seq) with different digests;
// FailedPrecondition naming what is missing otherwise.
absl::StatusOr<Carry> DecideCarry(
    const Members& to, const std::vector<fresh::v1::HandOver>& hand_overs);

}  // namespace bkv::freshness

#endif  // BKV_FRESHNESS_MEMBER_CHANGE_H_
