#ifndef BKV_SERVER_ENDORSER_RECOVERY_H_
#define BKV_SERVER_ENDORSER_RECOVERY_H_

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
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
  // A round found two certificates at one (term, seq): evidence that a
  // member signed twice. The loop stopped (recovery review finding 9); the
  // endorser stays recovering until the operator acts.
  bool fork_evidence() const { return fork_evidence_.load(); }
  // `f` once the endorser is recovered (now, if it is); nullptr: no more
  // calls (returns after a call in progress finished). Recovery review
  // finding 7: gRPC health reports the endorser NOT_SERVING until then.
  void OnRecovered(std::function<void()> f);

 private:
  void Run();
  void Recovered();

  freshness::Endorser& endorser_;
  const std::vector<std::shared_ptr<freshness::EndorserPeer>> others_;
  const absl::Duration round_timeout_;
  absl::Notification stop_;
  std::atomic<bool> fork_evidence_{false};
  absl::Mutex mu_;
  std::function<void()> on_recovered_ ABSL_GUARDED_BY(mu_);
  bool recovered_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace bkv::server

#endif  // BKV_SERVER_ENDORSER_RECOVERY_H_
