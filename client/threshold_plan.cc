#include "client/threshold_plan.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/vault_errors.h"
#include "crypto/hex.h"

namespace bkv::client {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Why a realm's ACTIVE/LOCKED answer cannot be used, or "" if it can.
std::string CheckAnswer(const threshold::RealmSet& set, size_t position,
                        const StatusAnswer& a,
                        std::optional<threshold::Descriptor>* out) {
  auto d = threshold::Descriptor::Parse(Bytes(a.descriptor));
  if (!d.ok()) {
    return absl::StrCat("its registration descriptor does not parse (",
                        d.status().message(), ")");
  }
  const Commitment c = d->Commitment();
  if (a.commitment != std::string(c.begin(), c.end())) {
    return "its commitment is not the SHA-256 of its descriptor";
  }
  if (auto m = threshold::CheckMatchesRealmSet(*d, set); !m.ok()) {
    *out = std::move(*d);  // kept only to compare with the other realms'
    return absl::StrCat("its descriptor names another realm set (", m.message(),
                        ")");
  }
  if (d->realms[position].realm_id != set.realms()[position].id) {
    return "its descriptor lists it at another position";
  }
  if (a.committed_limit != d->per_realm_limit ||
      a.effective_limit > d->per_realm_limit) {
    return absl::StrCat("it reports the limit ", a.committed_limit, "/",
                        a.effective_limit, " but its descriptor commits to ",
                        d->per_realm_limit);
  }
  // Claims an honest realm never makes (docs/threshold.md, "A realm that
  // lies in its status or at Prepare").
  if (a.attempts_remaining > a.effective_limit) {
    return absl::StrCat("it reports ", a.attempts_remaining,
                        " attempts left, more than its limit ",
                        a.effective_limit);
  }
  if (a.record == StatusAnswer::Record::kLocked && a.attempts_remaining > 0) {
    return "it reports LOCKED with attempts left";
  }
  if (a.epoch < d->epoch) {
    return absl::StrCat("it reports epoch ", a.epoch,
                        ", below its own registration's ", d->epoch);
  }
  *out = std::move(*d);
  return "";
}

struct Group {
  std::optional<threshold::Descriptor> descriptor;
  std::vector<size_t> members;
};

// Realms of another group, newer than `best`, whose version no other realm
// holds pending: every registration prepares at all n before any Commit, so
// a committed newer version is pending where its Commit did not land.
void NewerWithoutPrepare(const threshold::RealmSet& set,
                         std::span<const StatusAnswer> answers,
                         const std::map<std::string, Group>& groups,
                         const Group& best, std::vector<RealmFault>& faults) {
  for (const auto& [c, g] : groups) {
    if (&g == &best || g.descriptor->epoch <= best.descriptor->epoch) continue;
    for (size_t i : g.members) {
      bool prepared = false;
      for (size_t j = 0; j < answers.size(); ++j) {
        prepared |= j != i && answers[j].error.ok() &&
                    answers[j].pending_commitment == c;
      }
      if (prepared) continue;  // another device's registration in progress
      faults.push_back({set.realms()[i].id,
                        absl::StrCat("it claims a newer registration (epoch ",
                                     g.descriptor->epoch,
                                     ") that no other realm prepared")});
    }
  }
}

// Fewer than t realms answered the status round. When t realms refuse the
// account or configuration (ACCOUNT_MISMATCH: the tokens are another
// account's) that is the reason, typed kConfig: retrying cannot help. Fewer
// refusing realms do not speak for t (one may lie): the first other error.
absl::Status TooFewAnswered(const threshold::RealmSet& set,
                            std::span<const StatusAnswer> answers,
                            int answered) {
  const absl::Status* config = nullptr;
  const absl::Status* other = nullptr;
  int refusing = 0;
  for (const auto& a : answers) {
    if (a.error.ok()) continue;
    if (VaultError::From(a.error).kind == VaultErrorKind::kConfig) {
      ++refusing;
      if (config == nullptr) config = &a.error;
    } else if (other == nullptr) {
      other = &a.error;
    }
  }
  const absl::Status* why =
      refusing >= set.t() || other == nullptr ? config : other;
  const std::string count =
      absl::StrCat(answered, " of ", set.n(), " realms answered (", set.t(),
                   " needed); nothing was spent: ");
  return WithMessage(
      *why, why == config ? absl::StrCat(refusing,
                                         " realms refuse this client's account "
                                         "or configuration, so only ",
                                         count, why->message())
                          : absl::StrCat("only ", count, why->message()));
}

absl::Status NoGroup(const threshold::RealmSet& set,
                     std::span<const StatusAnswer> answers,
                     const std::vector<RealmFault>& faults, int answered,
                     int registered) {
  if (answered < set.t()) return TooFewAnswered(set, answers, answered);
  if (registered == 0 && faults.empty()) return NotRegisteredError();
  // Realms that did not answer could still make a group of t: no verdict on
  // what the answering ones say until they are heard.
  const int unanswered = set.n() - answered;
  if (unanswered > 0 &&
      registered - static_cast<int>(faults.size()) + unanswered >= set.t()) {
    return ThresholdError(
        VaultErrorKind::kTransient,
        absl::StrCat(
            "no registration is held by ", set.t(),
            " of the realms that answered and ", unanswered,
            " did not answer; nothing was spent. Retry later",
            faults.empty() ? "" : "; realm faults: ", DescribeFaults(faults)));
  }
  std::vector<std::string> parts;
  for (size_t i = 0; i < answers.size(); ++i) {
    if (answers[i].error.ok()) {
      parts.push_back(
          absl::StrCat(set.realms()[i].id, " epoch ", answers[i].epoch));
    }
  }
  if (!faults.empty()) {
    return ThresholdError(
        VaultErrorKind::kRealmFault,
        absl::StrCat("no registration is held by ", set.t(),
                     " realms once the faulty ones are left out: ",
                     DescribeFaults(faults), "; nothing was spent"));
  }
  return ThresholdError(
      VaultErrorKind::kRealmsDisagree,
      absl::StrCat("the realms disagree: no registration is held by ", set.t(),
                   " of them (", absl::StrJoin(parts, ", "),
                   "); nothing was spent. Register again once every realm "
                   "answers"));
}

// The agreeing group has fewer than t realms with attempts left. The key is
// gone only when n - t + 1 realms are locked (t can never be reached again);
// otherwise one realm's LOCKED (perhaps a lie, perhaps a drained realm) and
// an outage are "not enough realms now", not a destroyed key.
absl::Status TooFewUsable(const threshold::RealmSet& set,
                          std::span<const StatusAnswer> answers,
                          const std::vector<size_t>& members) {
  std::vector<std::string> locked, unanswered;
  for (size_t i : members) {
    const StatusAnswer& a = answers[i];
    if (a.record == StatusAnswer::Record::kLocked || a.attempts_remaining == 0)
      locked.push_back(set.realms()[i].id);
  }
  if (static_cast<int>(locked.size()) >= set.n() - set.t() + 1) {
    return LockedError();
  }
  for (size_t i = 0; i < answers.size(); ++i) {
    if (!answers[i].error.ok()) unanswered.push_back(set.realms()[i].id);
  }
  return ThresholdError(
      VaultErrorKind::kTransient,
      absl::StrCat(
          "only ", members.size() - locked.size(), " of the ", set.t(),
          " needed realms can be asked (locked: ", absl::StrJoin(locked, ", "),
          "; not answering: ", absl::StrJoin(unanswered, ", "),
          "); nothing was spent. Retry when the realms answer"));
}

}  // namespace

std::string DescribeFaults(std::span<const RealmFault> faults) {
  std::vector<std::string> parts;
  for (const auto& f : faults) {
    parts.push_back(absl::StrCat(f.realm_id, " (", f.what, ")"));
  }
  return absl::StrJoin(parts, ", ");
}

absl::StatusOr<RecoveryPlan> PlanRecovery(const threshold::RealmSet& set,
                                          std::span<const StatusAnswer> answers,
                                          const Newest& newest) {
  std::map<std::string, Group> groups;
  std::map<std::string, int> other_set;  // well-formed, for another set
  std::vector<RealmFault> faults;
  int answered = 0, registered = 0;
  for (size_t i = 0; i < answers.size(); ++i) {
    const StatusAnswer& a = answers[i];
    if (!a.error.ok()) continue;
    ++answered;
    if (a.record == StatusAnswer::Record::kNone) continue;
    ++registered;
    std::optional<threshold::Descriptor> d;
    if (std::string why = CheckAnswer(set, i, a, &d); !why.empty()) {
      if (d) ++other_set[a.commitment];
      faults.push_back({set.realms()[i].id, why});
      continue;
    }
    Group& g = groups[a.commitment];
    if (!g.descriptor) g.descriptor = std::move(d);
    g.members.push_back(i);
  }
  // Among groups of t, the newest epoch; two at one epoch: none is trusted.
  const Group* best = nullptr;
  bool tie = false;
  for (const auto& [c, g] : groups) {
    if (static_cast<int>(g.members.size()) < set.t()) continue;
    if (best == nullptr || g.descriptor->epoch > best->descriptor->epoch) {
      best = &g;
      tie = false;
    } else if (g.descriptor->epoch == best->descriptor->epoch) {
      tie = true;
    }
  }
  if (best == nullptr || tie) {
    // t realms agree on one version that names another set: this client's
    // realm-set file changed since registration, not t faulty realms.
    for (const auto& [c, count] : other_set) {
      if (count >= set.t()) {
        return ConfigError(absl::StrCat(
            count,
            " realms agree on a registration made for another realm "
            "set (",
            DescribeFaults(faults),
            "): either the account moved to another realm set (`bkv realms "
            "migrate`, perhaps on another device): use the new realm-set "
            "file; or this file changed since registration (order, limit, "
            "ids or keys): use the file it was registered with. Nothing was "
            "spent"));
      }
    }
    return NoGroup(set, answers, faults, answered, registered);
  }
  RecoveryPlan plan;
  plan.descriptor = *best->descriptor;
  plan.commitment = plan.descriptor.Commitment();
  NewerWithoutPrepare(set, answers, groups, *best, faults);
  plan.faults = std::move(faults);
  if (plan.descriptor.epoch < newest.epoch ||
      (plan.descriptor.epoch == newest.epoch &&
       plan.commitment != newest.commitment)) {
    return ThresholdError(
        VaultErrorKind::kStaleRegistration,
        absl::StrCat("the realms that agree hold registration epoch ",
                     plan.descriptor.epoch, ", older than epoch ", newest.epoch,
                     " this device registered or recovered from: a commit did "
                     "not reach every realm, or a realm serves an old "
                     "registration; nothing was spent"));
  }
  for (size_t i : best->members) {
    const StatusAnswer& a = answers[i];
    if (a.record == StatusAnswer::Record::kLocked ||
        a.attempts_remaining == 0) {
      continue;
    }
    plan.group.push_back(i);
  }
  if (static_cast<int>(plan.group.size()) < set.t()) {
    return TooFewUsable(set, answers, best->members);
  }
  plan.min_remaining = answers[plan.group[0]].attempts_remaining;
  for (size_t i : plan.group) {
    plan.min_remaining =
        std::min(plan.min_remaining, answers[i].attempts_remaining);
  }
  return plan;
}

}  // namespace bkv::client
