// Repair of a LOCKED or lagging realm (docs/threshold.md, "Repair of a
// LOCKED or lagging realm"): after a successful recovery every realm is made
// to accept a Prepare, then a fresh version is registered at all n. A share
// for the broken realm alone is impossible: the client never holds k_i.
#include <sodium.h>

#include <chrono>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/realm_set_file.h"
#include "client/threshold_client_internal.h"
#include "crypto/status_macros.h"
#include "crypto/threshold_descriptor.h"

namespace bkv::client {
namespace {

bool OnVersion(const StatusAnswer& a, const Commitment& c) {
  return a.error.ok() && a.record == StatusAnswer::Record::kActive &&
         a.attempts_remaining > 0 && a.commitment == AsString(c);
}

// Every realm ACTIVE with attempts left on one commitment: nothing to repair.
bool EveryRealmOnOneVersion(const std::vector<StatusAnswer>& answers) {
  for (const StatusAnswer& a : answers) {
    if (!a.error.ok() || a.record != StatusAnswer::Record::kActive ||
        a.attempts_remaining == 0 || a.commitment != answers[0].commitment) {
      return false;
    }
  }
  return !answers.empty();
}

using Other = ThresholdClient::Impl::Other;

// How a realm ACTIVE on another version than the recovered one (`epoch`)
// stands. In progress, never to be reset (realm3 finding 6): some realm holds
// it pending within its pending_ttl (`live`), or it is newer and a realm did
// not answer (that one may hold it pending); an unreadable descriptor too,
// no reset on a guess. Newer but pending nowhere within pending_ttl: it can
// no longer be committed at t under the realms' own rule, abandoned (rthr
// finding 1). Otherwise behind. Meaningless for other answers.
Other Standing(const StatusAnswer& a, uint64_t epoch,
               const std::set<std::string>& live, bool all_answered) {
  if (live.count(a.commitment) != 0) return Other::kInProgress;
  const std::vector<uint8_t> bytes(a.descriptor.begin(), a.descriptor.end());
  auto d = threshold::Descriptor::Parse(bytes);
  if (!d.ok()) return Other::kInProgress;
  if (d->epoch <= epoch) return Other::kBehind;
  return all_answered ? Other::kAbandoned : Other::kInProgress;
}

// Before the Commits of a repair that replaces an abandoned version: its
// device may have rolled it forward since the status round (an expired
// pending copy can still be committed), maybe to t realms, and then it is
// in force and must be kept. A Prepare never changes the active version, so
// a realm now ACTIVE on it that was not before shows that; a Commit of it
// after our Prepare is refused there (rthr3 finding 2). A silent realm may
// be one: stop too. Nothing is committed; Y stays pending for pending_ttl.
absl::Status StillAbandoned(const ThresholdClient::Impl& im,
                            const std::string& account,
                            const std::vector<StatusAnswer>& before,
                            const std::set<std::string>& abandoned,
                            absl::string_view what) {
  const std::vector<StatusAnswer> now = im.StatusRound(account);
  for (size_t i = 0; i < now.size(); ++i) {
    const StatusAnswer& a = now[i];
    const bool was_on = before[i].error.ok() &&
                        before[i].record == StatusAnswer::Record::kActive &&
                        abandoned.count(before[i].commitment) != 0;
    if (a.error.ok() && (a.record != StatusAnswer::Record::kActive ||
                         abandoned.count(a.commitment) == 0 || was_on)) {
      continue;
    }
    return ThresholdError(
        VaultErrorKind::kRealmDegraded,
        absl::StrCat(
            what, ": ", im.IdOf(i),
            a.error.ok()
                ? absl::StrCat(" now holds the registration (epoch ", a.epoch,
                               ") this repair was replacing: the device that "
                               "made it completed it meanwhile, so it is "
                               "kept")
                : " did not answer the check before Commit (it may hold the "
                  "registration this repair was replacing)",
            ". Nothing was committed; recover again (with the password of "
            "that registration if it was a password change)"));
  }
  return absl::OkStatus();
}

std::string Lag(const StatusAnswer& a) {
  if (!a.error.ok()) return "did not answer the status round";
  switch (a.record) {
    case StatusAnswer::Record::kLocked:
      return "is LOCKED";
    case StatusAnswer::Record::kNone:
      return "holds no registration";
    case StatusAnswer::Record::kActive:
      break;
  }
  return a.attempts_remaining == 0 ? "has no attempts left"
                                   : "holds another registration";
}

}  // namespace

std::array<uint8_t, 32> PasswordCheck(const SecretBytes& backup_key,
                                      const SecretBytes& password) {
  static constexpr char kDomain[] = "bkv-repair-password/v1";
  std::array<uint8_t, 32> out{};
  crypto_generichash_state st;
  crypto_generichash_init(&st, backup_key.Reveal().data(), backup_key.size(),
                          out.size());
  crypto_generichash_update(&st, reinterpret_cast<const uint8_t*>(kDomain),
                            sizeof(kDomain));
  crypto_generichash_update(&st, password.Reveal().data(), password.size());
  crypto_generichash_final(&st, out.data(), out.size());
  sodium_memzero(&st, sizeof(st));
  return out;
}

absl::Status CheckAccount(const std::string& account) {
  if (!account.empty()) return absl::OkStatus();
  return ConfigError(
      "the account is empty: name the account the tokens were issued for; "
      "nothing was sent");
}

std::vector<RealmFault> ThresholdClient::Impl::Lagging(
    const std::vector<StatusAnswer>& answers,
    const Commitment& commitment) const {
  std::vector<RealmFault> out;
  for (size_t i = 0; i < answers.size(); ++i) {
    if (!OnVersion(answers[i], commitment)) {
      out.push_back({IdOf(i), Lag(answers[i])});
    }
  }
  return out;
}

// Why realm i will not accept a Prepare of a fresh version, or "" once it
// will. Delete and RequestReset are the only calls that change anything, and
// each realm decides them itself: an ACTIVE record refuses a Delete without
// a proof, whatever a forged status said.
std::string ThresholdClient::Impl::ReadyOne(
    const std::string& account, size_t i, const StatusAnswer& a,
    const Commitment& commitment, uint64_t epoch, Other other,
    const std::vector<std::string>& proofs) const {
  if (!a.error.ok()) {
    return absl::StrCat("did not answer the status round (",
                        absl::CEscape(a.error.message()), ")");
  }
  if (a.record == StatusAnswer::Record::kNone) return "";
  if (a.record == StatusAnswer::Record::kLocked) {
    vault::v1::DeleteRequest req;
    req.set_account(account);
    vault::v1::DeleteResponse resp;
    const absl::Status s = Call(i, "Delete", VaultCall::kFree,
                                &vault::v1::Vault::Stub::Delete, req, &resp);
    if (s.ok()) return "";
    if (VaultError::From(s).kind == VaultErrorKind::kProofRequired) {
      // Only an ACTIVE record asks for a proof: one of its answers is a lie.
      return "said LOCKED in its status but refuses Delete as an ACTIVE "
             "registration: a realm fault (it misbehaves, unless another "
             "device re-registered there just now), not the user's";
    }
    return absl::StrCat("is LOCKED and refused Delete (",
                        absl::CEscape(s.message()), ")");
  }
  if (a.commitment == AsString(commitment)) {
    if (i < proofs.size() && !proofs[i].empty()) return "";
    return "gave no proof in this recovery (not asked, or its answer was "
           "lost): recover again while it answers";
  }
  if (other == Other::kInProgress) {
    return absl::StrCat("is ahead (epoch ", a.epoch, " > ", epoch,
                        ": a registration in progress): recover again later");
  }
  // Another version, behind or abandoned: its proof needs t of its shares,
  // which fewer than t realms hold. The due reset is the one authority left.
  const std::string holds =
      other == Other::kBehind
          ? std::string("holds another registration")
          : absl::StrCat("holds an abandoned registration (epoch ", a.epoch,
                         ", never committed at ", set.t(), " realms)");
  vault::v1::RequestResetRequest req;
  req.set_account(account);
  vault::v1::RequestResetResponse resp;
  const absl::Status s =
      Call(i, "RequestReset", VaultCall::kFree,
           &vault::v1::Vault::Stub::RequestReset, req, &resp);
  if (!s.ok()) {
    return absl::StrCat(holds, " and refused RequestReset (",
                        absl::CEscape(s.message()), ")");
  }
  const int64_t due = static_cast<int64_t>(resp.reset_due_unix_ms());
  if (due <= NowMs()) return "";
  return absl::StrCat(holds, "; a reset was requested there, due at ",
                      UtcTime(due), ": repair again after that");
}

absl::Status ThresholdClient::Impl::ReadyEveryRealm(
    const std::string& account, const std::vector<StatusAnswer>& answers,
    const Commitment& commitment, uint64_t epoch,
    const std::vector<std::string>& proofs, absl::string_view what,
    std::vector<std::string>& repaired,
    std::set<std::string>* abandoned) const {
  // In progress: pending within that realm's pending_ttl, or this device's
  // own unfinished commit (its roll-forward re-sends it, whatever its age).
  std::set<std::string> live;
  if (const auto waiting = PendingCommit(account)) {
    live.insert(AsString(waiting->Commitment()));
  }
  bool all_answered = true;
  for (const StatusAnswer& a : answers) {
    all_answered = all_answered && a.error.ok();
    if (a.error.ok() && !a.pending_commitment.empty() && !a.pending_expired) {
      live.insert(a.pending_commitment);
    }
  }
  std::vector<Other> standing(set.n());
  for (size_t i = 0; i < standing.size(); ++i) {
    standing[i] = Standing(answers[i], epoch, live, all_answered);
    if (abandoned != nullptr && standing[i] == Other::kAbandoned &&
        answers[i].error.ok() &&
        answers[i].record == StatusAnswer::Record::kActive) {
      abandoned->insert(answers[i].commitment);
    }
  }
  std::vector<std::string> why(set.n());
  Parallel(set.n(), [&](size_t i) {
    why[i] = ReadyOne(account, i, answers[i], commitment, epoch, standing[i],
                      proofs);
  });
  std::vector<std::string> bad, ids;
  for (size_t i = 0; i < why.size(); ++i) {
    if (!why[i].empty()) {
      bad.push_back(absl::StrCat(IdOf(i), " ", why[i]));
      ids.push_back(IdOf(i));
    } else if (!OnVersion(answers[i], commitment)) {
      repaired.push_back(IdOf(i));
    }
  }
  if (bad.empty()) return absl::OkStatus();
  repaired.clear();
  return ThresholdError(
      VaultErrorKind::kRealmDegraded,
      absl::StrCat(what, ": ", absl::StrJoin(bad, "; "),
                   ". Nothing was registered; until ", absl::StrJoin(ids, ", "),
                   " can be re-registered the realm set survives fewer realm "
                   "failures: tell its operator"));
}

ThresholdRotation ThresholdClient::Impl::ReadyAndRegister(
    const std::string& account, const SecretBytes& password,
    const SecretBytes& backup_key, const std::vector<std::string>& proofs,
    const Commitment& commitment, uint64_t epoch,
    const std::vector<StatusAnswer>& answers, absl::string_view what,
    Reached* reached) const {
  ThresholdRotation out;
  std::vector<std::string> ready;
  std::set<std::string> abandoned;
  out.status = ReadyEveryRealm(account, answers, commitment, epoch, proofs,
                               what, ready, &abandoned);
  if (!out.status.ok()) return out;
  // The readied realms prepare first, and commit first (rthr3 finding 1).
  std::vector<size_t> first;
  for (size_t i = 0; i < answers.size(); ++i) {
    if (!OnVersion(answers[i], commitment)) first.push_back(i);
  }
  const BeforeCommit check = [&] {
    return StillAbandoned(*this, account, answers, abandoned, what);
  };
  auto r = Register(account, password, backup_key, proofs, commitment, first,
                    nullptr, reached, abandoned.empty() ? nullptr : check);
  out.status = r.status();
  if (!r.ok()) return out;
  out.registration = *std::move(r);
  out.repaired = std::move(ready);
  return out;
}

absl::StatusOr<ThresholdRepair> ThresholdClient::Repair(
    const std::string& account, const SecretBytes& password,
    const ThresholdRecovery& recovered) {
  impl_->JoinRotation();
  BKV_RETURN_IF_ERROR(CheckAccount(account));
  // The recovery's password only: another one would re-register every
  // realm under it, a silent password change (review finding 1).
  const std::array<uint8_t, 32> check =
      PasswordCheck(recovered.backup_key, password);
  if (sodium_memcmp(check.data(), recovered.password_check.data(),
                    check.size()) != 0) {
    return ConfigError(
        "not repaired: not the password this recovery verified (a repair "
        "never changes the password); nothing was sent");
  }
  // Another client's recovery (another realm set, e.g. the old one of a
  // migration): its proofs are by that set's positions (rset finding 10).
  if (recovered.realm_set != RealmSetDigest(impl_->set)) {
    return ConfigError(
        "not repaired: this recovery was made through another realm set "
        "(a client of another realm-set file); repair with the client that "
        "recovered. Nothing was sent");
  }
  // The realms accept a proof for 10 minutes: past 9, a Delete could land
  // and the Prepares then be refused (realm3 review finding 7).
  if (std::chrono::steady_clock::now() - recovered.recovered_at >
      std::chrono::minutes(9)) {
    return ThresholdError(VaultErrorKind::kStaleRegistration,
                          "not repaired: the recovery is older than 9 minutes "
                          "(its proofs last 10); recover again, then repair. "
                          "Nothing was sent");
  }
  ThresholdRepair out;
  const std::vector<StatusAnswer> answers = impl_->StatusRound(account);
  int on_version = 0;
  for (const StatusAnswer& a : answers) {
    on_version += OnVersion(a, recovered.commitment) ? 1 : 0;
  }
  if (on_version == impl_->set.n() || EveryRealmOnOneVersion(answers)) {
    return out;  // nothing lags (a rotation may have repaired it already)
  }
  // Only the version the proofs name may be repaired from: with fewer than
  // t realms on it the account moved on (another device rotated).
  if (on_version < impl_->set.t()) {
    return ThresholdError(
        VaultErrorKind::kStaleRegistration,
        "not repaired: fewer than t realms still hold the recovered "
        "registration (another recovery or registration replaced it); "
        "recover again, then repair");
  }
  ThresholdRotation r = impl_->ReadyAndRegister(
      account, password, recovered.backup_key, recovered.proofs,
      recovered.commitment, recovered.epoch, answers, "not repaired");
  BKV_RETURN_IF_ERROR(r.status);
  out.repaired = std::move(r.repaired);
  out.registration = std::move(r.registration);
  return out;
}

}  // namespace bkv::client
