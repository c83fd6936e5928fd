#ifndef BKV_SERVER_ENDORSER_RECOVERY_H_
#define BKV_SERVER_ENDORSER_RECOVERY_H_

#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "freshness/endorsement.h"
#include "freshness/quorum_head_store.h"

namespace bkv::server {

// Runs the endorser's recovery rounds on a thread of its own, every 0.5 s,
// until it is recovered or this is destroyed (docs/rollback.md "Endorser
// recovery round"). The peer server answers the others' queries meanwhile,
// so the members of a cluster can start in any order, or all at once.
class EndorserRecoveryLoop {
 public:
  EndorserRecoveryLoop(
      freshness::Endorser& endorser,
      std::vector<std::shared_ptr<freshness::EndorserPeer>> others,
      absl::Duration round_timeout);
  // Stops: waits at most one round.
  ~EndorserRecoveryLoop();

 private:
  void Run();

  freshness::Endorser& endorser_;
  const std::vector<std::shared_ptr<freshness::EndorserPeer>> others_;
  const absl::Duration round_timeout_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace bkv::server

#endif  // BKV_SERVER_ENDORSER_RECOVERY_H_
