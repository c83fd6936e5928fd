#include "freshness/endorser_recovery.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/status_macros.h"
#include "freshness/round.h"

namespace bkv::freshness {

absl::Status RecoveryRound(
    Endorser& self, const std::vector<std::shared_ptr<EndorserPeer>>& others,
    absl::Duration timeout, std::vector<std::string>* refused,
    bool accept_fewer) {
  if (!accept_fewer && !self.recovering()) return absl::OkStatus();
  BKV_ASSIGN_OR_RETURN(fresh::v1::RecoverRequest ask, self.AskRecovery());
  // Every answer is wanted (each one more tolerates one more forgetful
  // token); the round needs members().recovery_quorum() of them.
  auto round = std::make_shared<Round<fresh::v1::RecoverResponse>>(
      others.size(), others.size());
  for (size_t i = 0; i < others.size(); ++i) {
    others[i]->Recover(
        ask, [round, i](absl::StatusOr<fresh::v1::RecoverResponse> r) {
          round->Add(i, std::move(r));
        });
  }
  auto [answers, errors] = round->Wait(timeout);
  absl::Status s = accept_fewer ? self.AcceptFewer(ask, answers, refused)
                                : self.FinishRecovery(ask, answers, refused);
  if (s.ok() || errors.empty()) return s;
  return absl::Status(
      s.code(),
      absl::StrCat(s.message(), ": ",
                   absl::StrJoin(errors, "; ",
                                 [](std::string* out, const absl::Status& e) {
                                   absl::StrAppend(out, e.message());
                                 })));
}

}  // namespace bkv::freshness
