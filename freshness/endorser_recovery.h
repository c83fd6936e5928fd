#ifndef BKV_FRESHNESS_ENDORSER_RECOVERY_H_
#define BKV_FRESHNESS_ENDORSER_RECOVERY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "freshness/endorsement.h"
#include "freshness/quorum_head_store.h"

namespace bkv::freshness {

// One recovery round of `self` (docs/rollback.md "Endorser recovery round"):
// asks every other member (`others`, never `self`) for its stored promise and
// newest certificate, waits for every answer or `timeout`, and finishes the
// recovery with the valid ones. OK once `self` is recovered (also when it
// already was); Unavailable saying how many answered and why the others did
// not; DataLoss for two certificates at one (term, seq). Answers not counted
// for an unproven promise are described in `refused`. `accept_fewer`: the
// security officer's override (Endorser::AcceptFewer), one answer enough.
absl::Status RecoveryRound(
    Endorser& self, const std::vector<std::shared_ptr<EndorserPeer>>& others,
    absl::Duration timeout, std::vector<std::string>* refused = nullptr,
    bool accept_fewer = false);

}  // namespace bkv::freshness

#endif  // BKV_FRESHNESS_ENDORSER_RECOVERY_H_
