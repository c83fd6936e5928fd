// A password change and a realm-set replacement (docs/threshold.md,
// "Password change" and "Replacing a realm set"): both are a recovery
// followed by the one registration path; neither adds a way to install
// shares.
#include <algorithm>
#include <span>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/client_state.h"
#include "client/realm_set_file.h"
#include "client/threshold_client_internal.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"

namespace bkv::client {
namespace {

// Which old realm each new one is (-1: joins), and the realms that leave.
// A realm is the same only with the same id and identity key.
struct Pairing {
  std::vector<int> old_of_new;
  std::vector<size_t> leavers;
  std::vector<size_t> joiners;  // new positions
  // By old position: a leaver the new set's file lists as retired (same id
  // and key), and a leaver that answered a call of this migration (this run
  // or, by the journal, an earlier one). A retired leaver that never
  // answered need not answer (docs/threshold.md, "A realm that left for
  // good"); one that answered anything is an ordinary leaver.
  std::vector<bool> retired;
  std::vector<bool> answered;
  bool NeedNotAnswer(size_t i) const {
    return i < retired.size() && retired[i] && !answered[i];
  }
};

// The new file's retired lines against the old set: a line with an old
// realm's id and another key is a mistake to say, not to ignore.
absl::Status MarkRetired(const threshold::RealmSet& from,
                         std::span<const RetiredRealm> retired, Pairing& p) {
  p.retired.assign(from.n(), false);
  p.answered.assign(from.n(), false);
  for (size_t i : p.leavers) {
    const threshold::RealmConfig& r = from.realms()[i];
    for (const RetiredRealm& x : retired) {
      if (x.id != r.id) continue;
      if (!(x.identity_key == r.identity_key)) {
        return ConfigError(absl::StrCat(
            "the new realm-set file lists ", r.id,
            " as retired with another identity key than the old set's: the "
            "line does not apply; copy the key from the old file's realm ",
            r.id, " line. Nothing was sent"));
      }
      p.retired[i] = true;
    }
  }
  return absl::OkStatus();
}

// The realm gave an answer of its own (OK, or an error with its detail).
bool Answered(const StatusAnswer& a) {
  return a.error.ok() || VaultError::From(a.error).vault_answered;
}

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
    if (found < 0) p.joiners.push_back(j);
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

// A leaver that needs no proof to be deleted: it holds nothing, or a LOCKED
// record (it answers nothing, and Delete takes it without a proof).
bool NeedsNoProof(const StatusAnswer& a) {
  return a.error.ok() && (a.record == StatusAnswer::Record::kNone ||
                          a.record == StatusAnswer::Record::kLocked);
}

// A realm that left and was not deleted: the security state of
// docs/threshold.md, "When C cannot be deleted" (review finding 1). `r`
// realms that left are in it: each adds G (review of leaver, finding 21).
std::string StillHolds(const threshold::RealmSet& old, const std::string& why,
                       size_t r) {
  const uint32_t g = old.limits().per_realm;
  const uint64_t more = uint64_t{g} * r;
  return absl::StrCat(
      why,
      "; it still holds the replaced registration: until it is deleted, it "
      "and ",
      r > 1
          ? absl::StrCat("the other ", r - 1, " realm(s) left holding it and ")
          : "",
      "up to ", old.t() - 1, " corrupted realm(s) of the old set can test ",
      more, " more passwords (the limit is L + ", r > 1 ? absl::StrCat(r) : "",
      "G = ", old.limits().advertised + more,
      ") and the old password opens the key there. Run the migration again, "
      "or have its operator destroy its HSM token and data");
}

// A joining realm holding a registration this device did not make (review
// finding 7): never taken over, whoever made it.
std::string NotOurs(const std::string& id, const StatusAnswer& a) {
  return absl::StrCat(
      id,
      " already holds a registration for this account that this device did "
      "not make (",
      a.record == StatusAnswer::Record::kLocked ? "LOCKED" : "ACTIVE",
      ", epoch ", a.epoch, "); a migration never takes one over: have ", id,
      "'s operator purge this account's record there and issue new account "
      "tokens (a holder of your token registered there)");
}

// A retired leaver that answered: the file's word is not the realm's.
std::string Contradicted() {
  return " (the realm-set file lists it as retired, its HSM token destroyed, "
         "but it answered this migration: its token was not destroyed, or "
         "the file is wrong)";
}

std::string RetireError(const absl::Status& s, absl::string_view what) {
  return absl::StrCat(what, " (", absl::CEscape(s.message()), ")");
}

}  // namespace

std::string ThresholdClient::Impl::Retire(const std::string& account, size_t i,
                                          const std::string& proof,
                                          bool may_reset, bool* silent) const {
  vault::v1::DeleteRequest del;
  del.set_account(account);
  del.set_proof(proof);
  vault::v1::DeleteResponse gone;
  absl::Status s = Call(i, "Delete", VaultCall::kFree,
                        &vault::v1::Vault::Stub::Delete, del, &gone);
  if (s.ok()) return "";
  const VaultError e = VaultError::From(s);
  if (silent != nullptr) {
    // Unreachable, or no answer of the vault's own (no ErrorDetail).
    *silent = e.kind == VaultErrorKind::kTransient && !e.vault_answered;
  }
  if (!may_reset || e.kind != VaultErrorKind::kProofRequired) {
    return RetireError(s, "was not deleted");
  }
  // No proof (a resumed run): the reset delay is the authority left.
  vault::v1::RequestResetRequest req;
  req.set_account(account);
  vault::v1::RequestResetResponse resp;
  s = Call(i, "RequestReset", VaultCall::kFree,
           &vault::v1::Vault::Stub::RequestReset, req, &resp);
  if (!s.ok()) {
    return RetireError(s, "refused RequestReset");
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
                      " (the migration deletes it when run after that)");
}

absl::StatusOr<ThresholdRegistration> ThresholdClient::ChangePassword(
    const std::string& account, const SecretBytes& old_password,
    const SecretBytes& new_password) {
  impl_->JoinRotation();
  BKV_RETURN_IF_ERROR(CheckAccount(account));
  // A change cut at its Commit, retried: completing it first and then
  // trying the old password would spend an attempt at every realm on what
  // reads as a wrong password (review finding 4). Stop uncounted instead:
  // a cut rotation looks the same, so the client cannot say which it was.
  const auto waiting = impl_->PendingCommit(account);
  std::string said;
  bool replaced = false;
  (void)impl_->RollForward(account, &said, &replaced);
  if (replaced) return ReplacedError(said);
  if (waiting && threshold::CheckMatchesRealmSet(*waiting, impl_->set).ok() &&
      impl_->RecallNewest(account).epoch >= waiting->epoch) {
    const bool done = !impl_->PendingCommit(account);
    return MarkPasswordChangeUnknown(ThresholdError(
        VaultErrorKind::kTransient,
        absl::StrCat(
            "password not changed now: a registration of this account cut "
            "at its Commit earlier (a password change or a rotation) ",
            done ? "was completed just now"
                 : "is in force, though its Commit still waits for a realm "
                   "(a password change needs every realm)",
            "; nothing was spent. If it was this password change, the new "
            "password is in force; otherwise run the command again",
            done ? "" : " once every realm answers")));
  }
  std::vector<StatusAnswer> answers;
  BKV_ASSIGN_OR_RETURN(ThresholdRecovery got,
                       impl_->Recover(account, old_password, answers));
  Impl::Reached reached;
  ThresholdRotation r = impl_->ReadyAndRegister(
      account, new_password, got.backup_key, got.proofs, got.commitment,
      got.epoch, answers, "password not changed", &reached);
  // Committed at t or more: the new password works, whatever lags (rthr
  // finding 2); `lagging` says which realms did not take it.
  if (reached.in_force) return reached.registration;
  if (r.status.ok()) return r.registration;
  // Decided by one fact: did a Commit go out and an answer go missing
  // (rthr3 finding 4)? Then either password may work; otherwise the old.
  if (reached.unknown) {
    const bool kept = impl_->PendingCommit(account).has_value();
    return MarkPasswordChangeUnknown(WithMessage(
        r.status,
        absl::StrCat(r.status.message(),
                     "; the new password may already be in force at some "
                     "realms: ",
                     kept ? "run the change again with the same passwords to "
                            "complete it (nothing is counted then)"
                          : "this device keeps no record to complete it (no "
                            "state directory): recover with the new password "
                            "to find out")));
  }
  if (absl::StartsWith(r.status.message(), "password not changed")) {
    return r.status;
  }
  return WithMessage(
      r.status, absl::StrCat("password not changed (the old password stays "
                             "in force): ",
                             r.status.message()));
}

namespace {

using Impl = ThresholdClient::Impl;

// This device's migration journal (review of rset3, finding 3): which pair
// of sets it began to migrate, and the new commitment once dealt.
// Line: old-digest new-digest [commitment] answered=[i,j,...]
struct Journal {
  bool names = false;     // this pair, this direction
  bool reversed = false;  // this pair, the other way round
  std::optional<Commitment> commitment;
  // Old positions of the leavers that answered a call. A line without the
  // field (written before branch leaver, whose rules made every leaver
  // answer) counts as all of them (review of leaver, finding 15).
  std::optional<std::vector<size_t>> answered;
  bool Answered(size_t i) const {
    return !answered ||
           std::find(answered->begin(), answered->end(), i) != answered->end();
  }
};

constexpr absl::string_view kAnswered = "answered=";

std::string JournalPair(const Impl& from, const Impl& to) {
  return absl::StrCat(HexEncode(RealmSetDigest(from.set)), " ",
                      HexEncode(RealmSetDigest(to.set)));
}

Journal ReadJournal(const Impl& to, const Impl& old,
                    const std::string& account) {
  const std::string line =
      RecallLine(to.options.state_dir, StateName("migration", account));
  const std::vector<std::string> f = absl::StrSplit(line, ' ');
  Journal j;
  if (f.size() < 2) return j;
  const std::string pair = absl::StrCat(f[0], " ", f[1]);
  j.names = pair == JournalPair(old, to);
  j.reversed = pair == JournalPair(to, old);
  for (size_t k = 2; k < f.size(); ++k) {
    if (absl::StartsWith(f[k], kAnswered)) {
      j.answered.emplace();
      for (absl::string_view n : absl::StrSplit(f[k].substr(kAnswered.size()),
                                                ',', absl::SkipEmpty())) {
        size_t i = 0;
        if (absl::SimpleAtoi(n, &i)) j.answered->push_back(i);
      }
      continue;
    }
    auto c = HexDecode(f[k]);
    if (c.ok() && c->size() == 32) {
      j.commitment.emplace();
      std::copy(c->begin(), c->end(), j.commitment->begin());
    }
  }
  return j;
}

// `answered`: the leavers of `pair` that answered, by old position (ids
// may hold commas), always written (review of leaver, findings 1, 15, 16:
// kept across runs, so a resumed run cannot take a realm that answered for
// a silent one).
absl::Status WriteJournal(const Impl& to, const Impl& old,
                          const std::string& account, const Commitment* c,
                          const Pairing& pair) {
  std::vector<size_t> answered;
  for (size_t i : pair.leavers) {
    if (pair.answered[i]) answered.push_back(i);
  }
  return RememberLine(
      to.options.state_dir, StateName("migration", account),
      absl::StrCat(JournalPair(old, to), c ? " " : "", c ? HexEncode(*c) : "",
                   " ", kAnswered, absl::StrJoin(answered, ",")));
}

// This device's versions of the account (review of rset3, finding 2): the
// journal's, the roll-forward record's, the newest memory's.
struct Ours {
  std::vector<std::string> commitments;
  std::string waiting;  // the roll-forward record's, when one waits
  std::string newest;   // the newest memory's
  bool Has(const std::string& c) const {
    return !c.empty() && std::find(commitments.begin(), commitments.end(), c) !=
                             commitments.end();
  }
};

Ours OursOf(const Impl& to, const std::string& account, const Journal& j) {
  Ours o;
  if (j.commitment) o.commitments.push_back(AsString(*j.commitment));
  const Newest n = to.RecallNewest(account);
  if (n.epoch != 0) {
    o.newest = AsString(n.commitment);
    o.commitments.push_back(o.newest);
  }
  if (auto w = to.PendingCommit(account)) {
    o.waiting = AsString(w->Commitment());
    o.commitments.push_back(o.waiting);
  }
  return o;
}

// What CheckNewSet found, by what the user does about it.
struct Findings {
  std::vector<std::string> bad;     // a realm-set problem
  std::vector<std::string> faults;  // a realm's own fault
  std::vector<std::string> later;   // run again later
  std::vector<size_t> dead;         // joiners on this device's dead version
  std::vector<size_t> locked;       // joiners LOCKED on a version not ours
  absl::Status Verdict() const {
    if (!bad.empty()) {
      return ThresholdError(
          VaultErrorKind::kRealmDegraded,
          absl::StrCat("not migrated: the new realm set needs every realm; ",
                       absl::StrJoin(bad, "; "), ". Nothing was spent"));
    }
    if (!faults.empty()) {
      return ThresholdError(
          VaultErrorKind::kRealmFault,
          absl::StrCat("not migrated: ", absl::StrJoin(faults, "; "),
                       ". Nothing was spent"));
    }
    if (later.empty()) return absl::OkStatus();
    return ThresholdError(
        VaultErrorKind::kTransient,
        absl::StrCat("not migrated yet: ", absl::StrJoin(later, "; "),
                     ". Run the migration again after that. Nothing was "
                     "spent"));
  }
};

// A joiner holding a record (review of rset3, finding 2): this device's
// migration still committing, this device's dead version (nobody else can
// recover it: reset there, the repair's "behind" rule), or foreign.
void ClassifyJoiner(const Impl& to, size_t j,
                    const std::vector<StatusAnswer>& answers, const Ours& ours,
                    Findings& f) {
  const StatusAnswer& a = answers[j];
  if (!ours.Has(a.commitment)) {
    f.bad.push_back(NotOurs(to.IdOf(j), a));
    return;
  }
  if (a.commitment == ours.waiting) {
    std::vector<std::string> ids;
    for (size_t k = 0; k < answers.size(); ++k) {
      if (answers[k].commitment != ours.waiting) ids.push_back(to.IdOf(k));
    }
    f.later.push_back(
        absl::StrCat("this device's migration is committed at ", to.IdOf(j),
                     " and its Commit still waits for ",
                     absl::StrJoin(ids, ", "), ": bring them back"));
    return;
  }
  if (a.commitment == ours.newest) {
    // A kept realm committed it once, so it may be the live one: no reset.
    f.bad.push_back(absl::StrCat(
        to.IdOf(j),
        " holds this device's newest registration, which fewer than t realms "
        "of the new set hold: bring the new set's other realms back"));
    return;
  }
  f.dead.push_back(j);
}

// Joiners on this device's dead version, once nothing else stops the run:
// a reset there, deleted once due.
void RetireDead(const Impl& to, const std::string& account, Findings& f) {
  if (!f.bad.empty() || !f.faults.empty()) return;
  for (size_t j : f.dead) {
    const std::string why = to.Retire(account, j, "", true);
    f.later.push_back(absl::StrCat(
        to.IdOf(j),
        " holds this device's earlier migration, which can no longer "
        "complete: ",
        why.empty() ? "deleted just now" : why));
  }
}

// LOCKED joiners not on this device's versions, once every free check
// passed (review of leaver, finding 17): a LOCKED record holds no share
// (erased at lockout) and Delete takes it without a proof, so deleting it
// loses nothing (docs/threshold.md, "A LOCKED joiner"). `said` gets what
// was done.
absl::Status ClearLocked(const Impl& to, const std::string& account,
                         const std::vector<size_t>& locked,
                         std::vector<std::string>& said) {
  std::vector<std::string> later;
  for (size_t j : locked) {
    const std::string why = to.Retire(account, j, "", false);
    if (why.empty()) {
      said.push_back(absl::StrCat(
          to.IdOf(j),
          " held a LOCKED registration for this account (its attempts were "
          "used up, by a holder of your account token if not by you): "
          "deleted, it held nothing"));
    } else {
      later.push_back(absl::StrCat(
          to.IdOf(j), " holds a LOCKED registration for this account that ",
          why));
    }
  }
  if (later.empty()) return absl::OkStatus();
  return ThresholdError(
      VaultErrorKind::kTransient,
      absl::StrCat("not migrated yet: ", absl::StrJoin(later, "; "),
                   ". Run the migration again. Nothing was spent"));
}

// A young pending version at a new realm (review of rset finding 6; rset3
// findings 4 and 7: whose it is, and a realm's word bounded).
void CheckBusy(const std::string& id, const StatusAnswer& a, const Ours& ours,
               Findings& f) {
  constexpr uint64_t kHourMs = 3'600'000;
  if (a.pending_busy_ms > kHourMs || a.pending_commitment.empty()) {
    f.faults.push_back(absl::StrCat(
        id, " says a pending registration blocks it for ", a.pending_busy_ms,
        " ms", a.pending_commitment.empty() ? " but names none" : "",
        ": beyond any pending_ttl, that realm's fault"));
    return;
  }
  f.later.push_back(absl::StrCat(
      "a prepared registration awaits its Commit at ", id, " for ",
      a.pending_busy_ms / 1000 + 1, " s more (",
      ours.Has(a.pending_commitment)
          ? "this device's own, cut after its Prepares"
          : "not made by this device: another device of yours registering, "
            "or a holder of your token preparing there",
      "); a realm takes no other until then"));
}

// Finding 4: a joiner's epoch the kept realms cannot follow (a record with
// no ACTIVE version takes any Prepare up to 2^32 above it).
bool OutOfReach(uint64_t epoch, uint64_t base) {
  return epoch > base && epoch - base >= kMaxEpochJump - 1;
}

std::string PushedOutOfReach(const std::string& id, uint64_t epoch) {
  return absl::StrCat(
      id,
      "'s registration counter for this account was pushed out of reach "
      "(epoch ",
      epoch,
      "): a holder of your account token has been preparing registrations "
      "there; its operator must purge the account's record and tombstone");
}

// Step 2's checks of the new set, all free, before anything is counted.
// `locked`: LOCKED joiners to delete once every free check passed.
absl::Status CheckNewSet(const Impl& to, const std::string& account,
                         const std::vector<StatusAnswer>& answers,
                         const std::vector<bool>& joiner, const Ours& ours,
                         std::vector<size_t>& locked) {
  uint64_t base = to.RecallNewest(account).epoch;
  for (size_t j = 0; j < answers.size() && base == 0; ++j) {
    if (!joiner[j]) base = std::max(base, answers[j].epoch);
  }
  Findings f;
  for (size_t j = 0; j < answers.size(); ++j) {
    const StatusAnswer& a = answers[j];
    const std::string id = to.IdOf(j);
    if (!a.error.ok()) {
      f.bad.push_back(absl::StrCat(id, " did not answer (",
                                   absl::CEscape(a.error.message()), ")"));
    } else if (joiner[j] && a.record == StatusAnswer::Record::kLocked &&
               !ours.Has(a.commitment)) {
      // Deleted below unless its epoch (kept by the tombstone) is out of
      // reach.
      if (OutOfReach(a.epoch, base)) {
        f.bad.push_back(PushedOutOfReach(id, a.epoch));
      } else {
        f.locked.push_back(j);
      }
    } else if (joiner[j] && a.record != StatusAnswer::Record::kNone) {
      ClassifyJoiner(to, j, answers, ours, f);
    } else if (!joiner[j] && a.record != StatusAnswer::Record::kActive) {
      f.bad.push_back(absl::StrCat(
          id,
          " is in both sets but not active: recover once with the old set "
          "(its rotation repairs it)"));
    } else if (joiner[j] && OutOfReach(a.epoch, base)) {
      f.bad.push_back(PushedOutOfReach(id, a.epoch));
    } else if (a.pending_busy_ms > 0) {
      CheckBusy(id, a, ours, f);
    }
  }
  RetireDead(to, account, f);
  if (f.bad.empty() && f.faults.empty()) locked = f.locked;
  return f.Verdict();
}

// Review of leaver, finding 3: with `h` old realms on the recovered version
// and `J` joiners, the old version stays at t_old while m kept Commits
// landed and m <= h - t_old, the new one reaches t_new once J + m >= t_new:
// no cut leaves both below t only when h + J >= t_old + t_new - 1. Leavers
// that hold nothing (dead and retired, LOCKED, no record) lower h.
// `counted`: after the recovery (finding 22), whose count stands.
absl::Status CheckEveryCut(const Impl& old, const Impl& to, size_t h,
                           const Pairing& pair, bool counted) {
  const size_t joiners = pair.joiners.size();
  if (h + joiners + 1 >= static_cast<size_t>(old.set.t() + to.set.t())) {
    return absl::OkStatus();
  }
  return ThresholdError(
      VaultErrorKind::kRealmDegraded,
      absl::StrCat(
          "not migrated: only ", h,
          " realms of the old set hold the registration and ", joiners,
          " realms join, so a run cut after its first Commits could leave "
          "neither set with t realms on one version (old t = ",
          old.set.t(), ", new t = ", to.set.t(),
          "): bring a realm that leaves back, or migrate in two steps (first "
          "add a realm). ",
          counted ? "Nothing was prepared; the recovery was counted like any "
                    "(reset where it completed)"
                  : "Nothing was spent"));
}

// Step 2, free: every realm that leaves is in the old set's agreeing group
// (it gives the proof it is deleted with), needs no proof (review finding
// 1), or is retired and did not answer; and no cut can leave both sets
// below t. When the old set has no plan, the recovery says why.
absl::Status CheckLeavers(const Impl& old, const Impl& to,
                          const std::string& account, Pairing& pair) {
  const std::vector<StatusAnswer> answers = old.StatusRound(account);
  for (size_t i : pair.leavers) {
    if (Answered(answers[i])) pair.answered[i] = true;
  }
  auto plan = PlanRecovery(old.set, answers, old.RecallNewest(account));
  if (!plan.ok()) return absl::OkStatus();
  BKV_RETURN_IF_ERROR(
      CheckEveryCut(old, to, plan->group.size(), pair, /*counted=*/false));
  std::vector<std::string> bad;
  for (size_t i : pair.leavers) {
    const auto& g = plan->group;
    if (std::find(g.begin(), g.end(), i) == g.end() &&
        !NeedsNoProof(answers[i]) && !pair.NeedNotAnswer(i)) {
      bad.push_back(old.IdOf(i));
    }
  }
  if (bad.empty()) return absl::OkStatus();
  return ThresholdError(
      VaultErrorKind::kRealmDegraded,
      absl::StrCat("not migrated: ", absl::StrJoin(bad, ", "),
                   " must answer once to be retired (a realm that leaves is "
                   "deleted within the migration, with the proof of its "
                   "answer): bring it back, then run the migration again. "
                   "Nothing was spent"));
}

// After step 3, before anything is prepared: a proof from every kept realm
// (it authorizes the Prepare there) and from every leaver that holds a
// record (it is deleted with it); review findings 1 and 6.
absl::Status CheckProofs(const Impl& old, const Impl& to, const Pairing& pair,
                         const std::vector<std::string>& proofs,
                         const std::vector<StatusAnswer>& answers) {
  std::vector<std::string> bad;
  for (int i : pair.old_of_new) {
    if (i >= 0 && proofs[i].empty()) {
      bad.push_back(absl::StrCat(old.IdOf(i),
                                 " gave no proof to authorize the new "
                                 "registration (recover once with the old "
                                 "set: its rotation repairs it)"));
    }
  }
  for (size_t i : pair.leavers) {
    if (proofs[i].empty() && !pair.NeedNotAnswer(i) &&
        !(i < answers.size() && NeedsNoProof(answers[i])))
      bad.push_back(
          absl::StrCat(old.IdOf(i), " must answer once to be retired"));
  }
  if (bad.empty()) {
    // Again with the realms that proved they hold it: one LOCKED since step
    // 2 left the group without a proof being asked (review of leaver, 22).
    const size_t holders = static_cast<size_t>(
        std::count_if(proofs.begin(), proofs.end(),
                      [](const std::string& p) { return !p.empty(); }));
    return CheckEveryCut(old, to, holders, pair, /*counted=*/true);
  }
  return ThresholdError(
      VaultErrorKind::kRealmDegraded,
      absl::StrCat("not migrated: ", absl::StrJoin(bad, "; "),
                   ". Nothing was prepared; the recovery was counted like any "
                   "(reset where it completed): run the migration again"));
}

// Step 3: the counted recovery through the old set; every leaver that
// answered its status round is marked so, in the journal too (review of
// leaver, finding 1), whatever the recovery's outcome.
absl::StatusOr<ThresholdRecovery> RecoverMarking(
    const Impl& to, const Impl& old, const std::string& account,
    const SecretBytes& password, Pairing& pair,
    std::vector<StatusAnswer>& old_answers) {
  auto recovered = old.Recover(account, password, old_answers);
  for (size_t i : pair.leavers) {
    if (i < old_answers.size() && Answered(old_answers[i])) {
      pair.answered[i] = true;
    }
  }
  // The recovery's own failure first (a wrong password was counted: review
  // of leaver, finding 18), then the journal's.
  const absl::Status journaled = WriteJournal(to, old, account, nullptr, pair);
  if (recovered.ok() && !journaled.ok()) return journaled;
  return recovered;
}

// Steps 2-4: the free checks of the new set, the counted recovery through
// the old one, the registration at the new one. Fills `proofs` (by old
// position) for step 7.
absl::Status RecoverAndRegister(const Impl& to, const Impl& old,
                                const std::string& account,
                                const SecretBytes& password,
                                const std::vector<StatusAnswer>& answers,
                                Pairing& pair, const Ours& ours,
                                ThresholdMigration& out,
                                std::vector<std::string>& proofs) {
  std::vector<bool> joiner(to.set.n());
  for (size_t j = 0; j < joiner.size(); ++j) {
    joiner[j] = pair.old_of_new[j] < 0;
  }
  std::vector<size_t> locked;
  BKV_RETURN_IF_ERROR(CheckNewSet(to, account, answers, joiner, ours, locked));
  BKV_RETURN_IF_ERROR(to.CheckRealms(to.AllPositions()));
  BKV_RETURN_IF_ERROR(CheckLeavers(old, to, account, pair));
  std::vector<std::string> said;
  const absl::Status cleared = ClearLocked(to, account, locked, said);
  out.locked_deleted = absl::StrJoin(said, "; ");
  out.note = out.locked_deleted;
  BKV_RETURN_IF_ERROR(cleared);
  // Before anything is counted: a rerun tells this migration from a swap.
  BKV_RETURN_IF_ERROR(WriteJournal(to, old, account, nullptr, pair));
  std::vector<StatusAnswer> old_answers;
  BKV_ASSIGN_OR_RETURN(
      ThresholdRecovery got,
      RecoverMarking(to, old, account, password, pair, old_answers));
  out.attempts_remaining_before = got.attempts_remaining_before;
  out.faults = got.faults;
  proofs = got.proofs;
  proofs.resize(old.set.n());
  BKV_RETURN_IF_ERROR(CheckProofs(old, to, pair, proofs, old_answers));
  std::vector<std::string> mapped(to.set.n());
  for (size_t j = 0; j < mapped.size(); ++j) {
    if (pair.old_of_new[j] >= 0) mapped[j] = proofs[pair.old_of_new[j]];
  }
  // The joiners prepare first (a refusal there leaves nothing pending at
  // the kept realms) and commit first (docs/threshold.md, "Order").
  auto reg =
      to.Register(account, password, got.backup_key, mapped, got.commitment,
                  pair.joiners, [&](const Commitment& c) {
                    return WriteJournal(to, old, account, &c, pair);
                  });
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
// True when every realm of the new set says it holds it (step 6's rule).
absl::StatusOr<bool> Verify(const Impl& to, const std::string& account,
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
  if (on >= to.set.t()) return on == to.set.n();
  return ThresholdError(
      VaultErrorKind::kTransient,
      absl::StrCat("not migrated: only ", on,
                   " of the new set's realms hold the new registration, "
                   "fewer than t = ",
                   to.set.t(),
                   "; the realm-set file was not switched. Run the "
                   "migration again"));
}

// What step 6 still waits for before a leaver may go ("" when nothing):
// every new realm on the new version, every Commit answered (finding 2).
std::string RetireWait(const Impl& to, const std::string& account, bool every,
                       const ThresholdMigration& out) {
  if (!every) {
    return absl::StrCat(
        "kept until every new realm holds the new registration: ",
        DescribeFaults(out.lagging));
  }
  if (to.PendingCommit(account).has_value()) {
    return "kept until every Commit of the new registration is answered";
  }
  return "";
}

// Step 6: Delete at every realm that left, in parallel, once every new
// realm holds the new version and every Commit was answered (`wait` says
// what is missing otherwise: review finding 2).
void RetireLeavers(const Impl& old, const std::string& account, Pairing& pair,
                   const std::vector<std::string>& proofs, bool may_reset,
                   const std::string& wait, ThresholdMigration& out) {
  std::vector<std::string> why(pair.leavers.size(), wait);
  // bool, not vector<bool>: written from the parallel calls.
  std::vector<char> silent(pair.leavers.size(), 0);
  if (wait.empty()) {
    Parallel(why.size(), [&](size_t k) {
      const size_t i = pair.leavers[k];
      bool s = false;
      why[k] = old.Retire(account, i, proofs[i], may_reset, &s);
      silent[k] = s;
    });
  }
  std::vector<size_t> kept;
  for (size_t k = 0; k < why.size(); ++k) {
    const size_t i = pair.leavers[k];
    const std::string& id = old.IdOf(i);
    // No Delete sent (`wait`) is no answer either way: kept, exit 15.
    if (wait.empty() && !silent[k]) pair.answered[i] = true;
    if (why[k].empty()) {
      out.deleted.push_back(id);
    } else if (pair.NeedNotAnswer(i) && silent[k] && proofs[i].empty()) {
      // Silence at every call of the migration is what the file promised.
      out.retired.push_back(
          {id,
           "retired by the realm-set file (its operator destroyed its HSM "
           "token); it did not answer and is not waited for"});
    } else {
      kept.push_back(k);
    }
  }
  for (size_t k : kept) {
    const size_t i = pair.leavers[k];
    std::string what = why[k];
    if (pair.retired[i]) {
      // Finding 14: "answered" only when it did; otherwise the rerun decides.
      what += pair.answered[i] ? Contradicted()
                               : " (the realm-set file lists it as retired; "
                                 "it has not answered: the run that sends "
                                 "its Delete decides)";
    }
    out.not_deleted.push_back(
        {old.IdOf(i), StillHolds(old.set, what, kept.size())});
  }
}

// One state directory for both clients (review of rset, finding 8).
absl::Status CheckStateDirs(const Impl& to, const Impl& old) {
  if (to.options.state_dir.empty()) {
    // Without one there is no roll-forward record and no newest memory: a
    // cut run could neither resume nor keep the old set away.
    return ConfigError(
        "a realm-set migration needs a state directory (state_dir); nothing "
        "was sent");
  }
  if (old.options.state_dir != to.options.state_dir) {
    // One newest memory and roll-forward record for both sets, or the old
    // set's client could not see that the account moved on.
    return ConfigError(
        "the two realm clients must share one state directory; nothing was "
        "sent");
  }
  return absl::OkStatus();
}

// Step 1 (review of rset3, finding 3): resumed only when this device's
// journal names this migration and the new set's group is on its version. A
// new set holding a registration for itself otherwise: swapped files, or
// another device migrated (the realms look the same); nothing is sent.
absl::StatusOr<bool> Resumes(const Impl& to, const std::string& account,
                             const std::vector<StatusAnswer>& answers,
                             const Pairing& pair, const Journal& j,
                             const Ours& ours, ThresholdMigration& out) {
  // The other way round while that migration's leavers (this call's
  // joiners) still hold a record: unfinished, so a swap. Once they are gone
  // a migration back is an ordinary one.
  const auto holds = [&](size_t k) {
    return answers[k].record != StatusAnswer::Record::kNone;
  };
  if (j.reversed &&
      std::any_of(pair.joiners.begin(), pair.joiners.end(), holds)) {
    return ConfigError(
        "not migrated: this device began the migration between these two "
        "realm sets the other way round and it is not finished: run it "
        "again as it began (`bkv realms migrate --realms OLD --to NEW`; SDK: "
        "Migrate on the new set's client); the sets look swapped. Nothing "
        "was spent");
  }
  auto held = PlanRecovery(to.set, answers, Newest{});
  if (!held.ok()) return false;
  if (!j.names || !ours.Has(AsString(held->commitment))) {
    return ConfigError(
        "not migrated: the realm set given as the new one already holds this "
        "account's key: the files look swapped (`bkv realms migrate --realms "
        "OLD --to NEW`; SDK: Migrate on the new set's client), or the account "
        "already lives on the new set (another device migrated): then use "
        "the new file as it is. Nothing was spent");
  }
  auto here = PlanRecovery(to.set, answers, to.RecallNewest(account));
  if (!here.ok()) return here.status();
  out.registration = {here->descriptor.epoch,
                      here->commitment,
                      here->descriptor.per_realm_limit,
                      {}};
  return true;
}

// The non-empty parts, "; "-separated.
std::string JoinNotes(std::initializer_list<std::string> parts) {
  std::vector<std::string> notes;
  for (const std::string& n : parts) {
    if (!n.empty()) notes.push_back(n);
  }
  return absl::StrJoin(notes, "; ");
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
  BKV_RETURN_IF_ERROR(CheckStateDirs(to, old));
  BKV_ASSIGN_OR_RETURN(Pairing pair, Pair(old.set, to.set));
  BKV_RETURN_IF_ERROR(MarkRetired(old.set, to.options.retired, pair));
  ThresholdMigration out;
  // 1. An earlier run's Commits first (in the record's order); the old
  // set's record (a rotation cut there) too, or its pending version would
  // stop step 2. Then resumed, refused as swapped or already migrated, or
  // migrated from the start.
  std::string said;
  (void)to.RollForward(account, &said);
  (void)old.RollForward(account);
  const std::vector<StatusAnswer> answers = to.StatusRound(account);
  const Journal journal = ReadJournal(to, old, account);
  const Ours ours = OursOf(to, account, journal);
  BKV_ASSIGN_OR_RETURN(out.resumed,
                       Resumes(to, account, answers, pair, journal, ours, out));
  // An earlier run's answers matter to the registration it made (resumed;
  // Resumes needs journal.names). A run that starts over observes afresh:
  // the old version is still the live one, so a realm holding it is no
  // leftover.
  for (size_t i : pair.leavers)
    pair.answered[i] = out.resumed && journal.Answered(i);
  std::vector<std::string> proofs(old.set.n());
  if (!out.resumed) {
    BKV_RETURN_IF_ERROR(RecoverAndRegister(to, old, account, password, answers,
                                           pair, ours, out, proofs));
  }
  BKV_ASSIGN_OR_RETURN(const bool every, Verify(to, account, out));
  // 6. Retire the realms that left, then 7. switch: the old version must
  // not outlive the migration (docs/threshold.md, "Why the leaver must go").
  // A reset at a leaver only for this device's own new version.
  RetireLeavers(old, account, pair, proofs,
                out.resumed || to.RecallNewest(account).commitment ==
                                   out.registration.commitment,
                RetireWait(to, account, every, out), out);
  if (!out.not_deleted.empty()) {
    // What the Deletes said, for the rerun (finding 1); the journal then
    // names the registration it resumes.
    (void)WriteJournal(to, old, account, &out.registration.commitment, pair);
  }
  if (switch_set) BKV_RETURN_IF_ERROR(switch_set());
  // Without a switch of its own (the C ABI: the app switches after it), a
  // second call must still resume: the journal stays.
  if (switch_set && out.not_deleted.empty()) {
    BKV_RETURN_IF_ERROR(
        ForgetLine(to.options.state_dir, StateName("migration", account)));
  }
  out.rolled_forward = said;
  out.note = JoinNotes({said, out.note, MigrationNote(old.set, to.set),
                        DescribeFaults(out.retired)});
  return out;
}

std::string MigrationNote(const threshold::RealmSet& from,
                          const threshold::RealmSet& to) {
  auto pair = Pair(from, to);
  if (!pair.ok() || (pair->leavers.size() <= 1 && from.t() == to.t())) {
    return "";
  }
  return "more than one realm replaced (or t changed): the joining realms "
         "commit first, then the kept realms, so a cut run still leaves the "
         "key at t realms of one set";
}

}  // namespace bkv::client
