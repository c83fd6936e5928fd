// A password change and a realm-set replacement (docs/threshold.md,
// "Password change" and "Replacing a realm set"): both are a recovery
// followed by the one registration path; neither adds a way to install
// shares.
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/threshold_client_internal.h"
#include "crypto/status_macros.h"

namespace bkv::client {
namespace {

// Which old realm each new one is (-1: joins), and the realms that leave.
// A realm is the same only with the same id and identity key.
struct Pairing {
  std::vector<int> old_of_new;
  std::vector<size_t> leavers;
};

absl::StatusOr<Pairing> Pair(const threshold::RealmSet& from,
                             const threshold::RealmSet& to) {
  Pairing p;
  std::vector<bool> kept(from.n(), false);
  bool moved = from.t() != to.t() || from.n() != to.n() ||
               from.limits().advertised != to.limits().advertised;
  for (int j = 0; j < to.n(); ++j) {
    const threshold::RealmConfig& r = to.realms()[j];
    int found = -1;
    for (int i = 0; i < from.n(); ++i) {
      if (from.realms()[i].id != r.id) continue;
      if (!(from.realms()[i].identity_key == r.identity_key)) {
        return ConfigError(absl::StrCat(
            "realm ", r.id,
            " has another identity key in the new realm set: a realm with a "
            "new key is a new realm, give it a new id; nothing was sent"));
      }
      found = i;
      kept[i] = true;
    }
    moved = moved || found != j;
    p.old_of_new.push_back(found);
  }
  for (int i = 0; i < from.n(); ++i) {
    if (!kept[i]) p.leavers.push_back(i);
  }
  if (!moved) {
    return ConfigError(
        "the two realm sets are the same (t, limit, realm ids and keys in "
        "order): nothing to migrate");
  }
  return p;
}

bool IsActiveOn(const StatusAnswer& a, const Commitment& c) {
  return a.error.ok() && a.record == StatusAnswer::Record::kActive &&
         a.commitment == AsString(c);
}

}  // namespace

absl::Status ThresholdClient::Impl::CheckNewSet(
    const std::vector<StatusAnswer>& answers,
    const std::vector<bool>& joiner) const {
  std::vector<std::string> bad;
  for (size_t j = 0; j < answers.size(); ++j) {
    const StatusAnswer& a = answers[j];
    if (!a.error.ok()) {
      bad.push_back(absl::StrCat(IdOf(j), " did not answer (",
                                 absl::CEscape(a.error.message()), ")"));
    } else if (joiner[j] && a.record != StatusAnswer::Record::kNone) {
      bad.push_back(absl::StrCat(
          IdOf(j),
          " already holds a registration for this account: if another "
          "device already migrated, use the new realm-set file as it is; "
          "otherwise it is an earlier set's, ask its operator to delete it"));
    } else if (!joiner[j] && a.record != StatusAnswer::Record::kActive) {
      bad.push_back(absl::StrCat(
          IdOf(j),
          " is in both sets but not active: recover once with the old set "
          "(its rotation repairs it)"));
    }
  }
  if (bad.empty()) return absl::OkStatus();
  return ThresholdError(
      VaultErrorKind::kRealmDegraded,
      absl::StrCat("not migrated: the new realm set needs every realm; ",
                   absl::StrJoin(bad, "; "), ". Nothing was spent"));
}

std::string ThresholdClient::Impl::Retire(const std::string& account, size_t i,
                                          const std::string& proof,
                                          bool may_reset) const {
  vault::v1::DeleteRequest del;
  del.set_account(account);
  del.set_proof(proof);
  vault::v1::DeleteResponse gone;
  absl::Status s = Call(i, "Delete", VaultCall::kFree,
                        &vault::v1::Vault::Stub::Delete, del, &gone);
  if (s.ok()) return "";
  if (!may_reset ||
      VaultError::From(s).kind != VaultErrorKind::kProofRequired) {
    return absl::StrCat("was not deleted (", absl::CEscape(s.message()),
                        "): run the migration again");
  }
  // No proof (a resumed run): the reset delay is the authority left.
  vault::v1::RequestResetRequest req;
  req.set_account(account);
  vault::v1::RequestResetResponse resp;
  s = Call(i, "RequestReset", VaultCall::kFree,
           &vault::v1::Vault::Stub::RequestReset, req, &resp);
  if (!s.ok()) {
    return absl::StrCat("refused RequestReset (", absl::CEscape(s.message()),
                        "): run the migration again");
  }
  const int64_t due = static_cast<int64_t>(resp.reset_due_unix_ms());
  if (due <= NowMs()) {
    vault::v1::DeleteRequest again;
    again.set_account(account);
    s = Call(i, "Delete", VaultCall::kFree, &vault::v1::Vault::Stub::Delete,
             again, &gone);
    if (s.ok()) return "";
  }
  return absl::StrCat("a reset was requested there, due at ", UtcTime(due),
                      ": run the migration again after that to delete it");
}

absl::StatusOr<ThresholdRegistration> ThresholdClient::ChangePassword(
    const std::string& account, const SecretBytes& old_password,
    const SecretBytes& new_password) {
  impl_->JoinRotation();
  BKV_RETURN_IF_ERROR(CheckAccount(account));
  (void)impl_->RollForward(account);
  std::vector<StatusAnswer> answers;
  BKV_ASSIGN_OR_RETURN(ThresholdRecovery got,
                       impl_->Recover(account, old_password, answers));
  ThresholdRotation r = impl_->ReadyAndRegister(
      account, new_password, got.backup_key, got.proofs, got.commitment,
      got.epoch, answers, "password not changed");
  BKV_RETURN_IF_ERROR(r.status);
  return r.registration;
}

namespace {

using Impl = ThresholdClient::Impl;

// Steps 2-4: the free checks of the new set, the counted recovery through
// the old one, the registration at the new one. Fills `proofs` (by old
// position) for step 7.
absl::Status RecoverAndRegister(const Impl& to, const Impl& old,
                                const std::string& account,
                                const SecretBytes& password,
                                const std::vector<StatusAnswer>& answers,
                                const Pairing& pair, ThresholdMigration& out,
                                std::vector<std::string>& proofs) {
  std::vector<bool> joiner(to.set.n());
  std::vector<size_t> all(to.set.n());
  for (size_t j = 0; j < all.size(); ++j) {
    joiner[j] = pair.old_of_new[j] < 0;
    all[j] = j;
  }
  BKV_RETURN_IF_ERROR(to.CheckNewSet(answers, joiner));
  BKV_RETURN_IF_ERROR(to.CheckRealms(all));
  (void)old.RollForward(account);
  std::vector<StatusAnswer> old_answers;
  BKV_ASSIGN_OR_RETURN(ThresholdRecovery got,
                       old.Recover(account, password, old_answers));
  out.attempts_remaining_before = got.attempts_remaining_before;
  out.faults = got.faults;
  proofs = got.proofs;
  proofs.resize(old.set.n());
  std::vector<std::string> mapped(to.set.n());
  for (size_t j = 0; j < mapped.size(); ++j) {
    if (pair.old_of_new[j] >= 0) mapped[j] = proofs[pair.old_of_new[j]];
  }
  auto reg =
      to.Register(account, password, got.backup_key, mapped, got.commitment);
  if (!reg.ok()) {
    return absl::Status(
        reg.status().code(),
        absl::StrCat("not migrated: ", reg.status().message(),
                     ". Run the migration again: it completes or restarts "
                     "what was begun"));
  }
  out.registration = *reg;
  return absl::OkStatus();
}

// Step 5, free: the new version at t at least, or nothing is switched.
absl::Status Verify(const Impl& to, const std::string& account,
                    ThresholdMigration& out) {
  const std::vector<StatusAnswer> answers = to.StatusRound(account);
  int on = 0;
  for (size_t j = 0; j < answers.size(); ++j) {
    if (IsActiveOn(answers[j], out.registration.commitment)) {
      ++on;
    } else {
      out.lagging.push_back({to.IdOf(j), "not yet on the new registration"});
    }
  }
  if (on >= to.set.t()) return absl::OkStatus();
  return ThresholdError(
      VaultErrorKind::kTransient,
      absl::StrCat("not migrated: only ", on,
                   " of the new set's realms hold the new registration, "
                   "fewer than t = ",
                   to.set.t(),
                   "; the realm-set file was not switched. Run the "
                   "migration again"));
}

// Step 7: Delete at every realm that left, in parallel.
void RetireLeavers(const Impl& old, const std::string& account,
                   const Pairing& pair, const std::vector<std::string>& proofs,
                   bool may_reset, ThresholdMigration& out) {
  std::vector<std::string> why(pair.leavers.size());
  Parallel(why.size(), [&](size_t k) {
    const size_t i = pair.leavers[k];
    why[k] = old.Retire(account, i, proofs[i], may_reset);
  });
  for (size_t k = 0; k < why.size(); ++k) {
    const std::string& id = old.IdOf(pair.leavers[k]);
    if (why[k].empty()) {
      out.deleted.push_back(id);
    } else {
      out.not_deleted.push_back({id, why[k]});
    }
  }
}

}  // namespace

absl::StatusOr<ThresholdMigration> ThresholdClient::Migrate(
    const std::string& account, const SecretBytes& password,
    ThresholdClient& from, const std::function<absl::Status()>& switch_set) {
  impl_->JoinRotation();
  from.impl_->JoinRotation();
  BKV_RETURN_IF_ERROR(CheckAccount(account));
  const Impl& to = *impl_;
  const Impl& old = *from.impl_;
  if (old.options.state_dir != to.options.state_dir) {
    // One newest memory and roll-forward record for both sets, or the old
    // set's client could not see that the account moved on.
    return ConfigError(
        "the two realm clients must share one state directory; nothing was "
        "sent");
  }
  BKV_ASSIGN_OR_RETURN(Pairing pair, Pair(old.set, to.set));
  ThresholdMigration out;
  // 1. An earlier run's Commits first; resumed when its version is at t
  // here, is the newest this device knows (it registered it: a stale
  // registration at the new realms must never be switched to, nor make the
  // client reset the realms holding the current one) and the old set has no
  // group left.
  (void)to.RollForward(account);
  const std::vector<StatusAnswer> answers = to.StatusRound(account);
  const Newest newest = to.RecallNewest(account);
  auto here = PlanRecovery(to.set, answers, newest);
  std::vector<std::string> proofs(old.set.n());
  if (here.ok() && here->commitment == newest.commitment &&
      !PlanRecovery(old.set, old.StatusRound(account), newest).ok()) {
    out.resumed = true;
    out.registration = {here->descriptor.epoch, here->commitment,
                        here->descriptor.per_realm_limit};
  } else {
    BKV_RETURN_IF_ERROR(RecoverAndRegister(to, old, account, password, answers,
                                           pair, out, proofs));
  }
  BKV_RETURN_IF_ERROR(Verify(to, account, out));
  // 6. Switch, then 7. retire the realms that left.
  if (switch_set) BKV_RETURN_IF_ERROR(switch_set());
  RetireLeavers(
      old, account, pair, proofs,
      to.RecallNewest(account).commitment == out.registration.commitment, out);
  if (pair.leavers.size() > 1 || old.set.t() != to.set.t()) {
    out.note =
        "more than one realm replaced (or t changed): a migration cut between "
        "its Commits then needs this device's roll-forward record; replace one "
        "realm at a time to avoid that";
  }
  return out;
}

}  // namespace bkv::client
