#include "server/endorser_recovery.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "freshness/endorser_recovery.h"
#include "server/log.h"

namespace bkv::server {

EndorserRecoveryLoop::EndorserRecoveryLoop(
    freshness::Endorser& endorser,
    std::vector<std::shared_ptr<freshness::EndorserPeer>> others,
    absl::Duration round_timeout)
    : endorser_(endorser),
      others_(std::move(others)),
      round_timeout_(round_timeout) {
  thread_ = std::thread([this] { Run(); });
}

EndorserRecoveryLoop::~EndorserRecoveryLoop() {
  stop_.Notify();
  thread_.join();
}

void EndorserRecoveryLoop::OnRecovered(std::function<void()> f) {
  absl::MutexLock lock(&mu_);
  on_recovered_ = std::move(f);
  if (recovered_ && on_recovered_) on_recovered_();
}

void EndorserRecoveryLoop::Recovered() {
  absl::MutexLock lock(&mu_);
  recovered_ = true;
  if (on_recovered_) on_recovered_();
}

void EndorserRecoveryLoop::Run() {
  if (endorser_.officer_recovered()) {
    Log("warn", "freshness_endorser_officer_recovered",
        {{"promised_term", absl::StrCat(endorser_.State().promised_term())},
         {"why", "the security officer's `cluster recover --accept-fewer`"}});
  }
  if (!endorser_.recovering()) return Recovered();
  Log("info", "freshness_endorser_recovering",
      {{"needs", absl::StrCat(endorser_.members().recovery_quorum(), " of ",
                              others_.size(), " other members")},
       {"why", "its token's state may be an old copy (restore, power loss)"}});
  for (int round = 0; !stop_.HasBeenNotified(); ++round) {
    std::vector<std::string> refused;
    absl::Status s =
        freshness::RecoveryRound(endorser_, others_, round_timeout_, &refused);
    // Recovery review finding 1: an answer with an unproven or too high
    // promise is evidence against its member (same cadence as below).
    if (s.ok() || round % 20 == 0) {
      for (const std::string& why : refused) {
        Log("warn", "freshness_recovery_answer_refused",
            {{"error", why},
             {"hint",
              "a member answered a promise no proposer asked for: "
              "check that node (docs/rollback.md \"Endorser recovery "
              "round\")"}});
      }
    }
    if (s.ok()) {
      const fresh::v1::EndorserState state = endorser_.State();
      Log("info", "freshness_endorser_recovered",
          {{"promised_term", absl::StrCat(state.promised_term())},
           {"held_seq", absl::StrCat(freshness::HeldHead(state).seq())}});
      return Recovered();
    }
    if (absl::IsDataLoss(s)) {  // not "waiting": retrying can't help
      fork_evidence_ = true;
      Log("error", "freshness_endorser_fork_evidence",
          {{"error", std::string(s.message())},
           {"hint",
            "two certificates at one (term, seq): a member signed "
            "twice. Keep every node's token and log; find the "
            "signers named in both certificates (docs/operations.md "
            "\"Fork evidence\"); this node stays recovering"}});
      return;
    }
    // The first failure, then every 20th (~10 s): visible, not a flood.
    if (round % 20 == 0) {
      Log(absl::IsUnavailable(s) ? "warn" : "error",
          "freshness_endorser_recovering",
          {{"error", std::string(s.message())},
           {"hint", "start the other members' vaults"}});
    }
    stop_.WaitForNotificationWithTimeout(absl::Milliseconds(500));
  }
}

}  // namespace bkv::server
