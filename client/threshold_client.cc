#include "client/threshold_client.h"

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/client_state.h"
#include "client/threshold_client_internal.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"

namespace bkv::client {

std::string StateName(const char* what, const std::string& account) {
  std::array<uint8_t, 32> h;
  crypto_hash_sha256(h.data(), reinterpret_cast<const uint8_t*>(account.data()),
                     account.size());
  return absl::StrCat("threshold-", what, "-",
                      HexEncode(std::span(h).first(16)));
}

namespace {

StatusAnswer ToAnswer(absl::Status s,
                      const vault::v1::ThresholdStatusResponse& r) {
  StatusAnswer a;
  a.error = std::move(s);
  if (!a.error.ok()) return a;
  a.record = r.status() == vault::v1::RECORD_STATUS_ACTIVE
                 ? StatusAnswer::Record::kActive
             : r.status() == vault::v1::RECORD_STATUS_LOCKED
                 ? StatusAnswer::Record::kLocked
                 : StatusAnswer::Record::kNone;
  a.commitment = r.commitment();
  a.descriptor = r.registration_descriptor();
  a.committed_limit = r.committed_limit();
  a.effective_limit = r.effective_limit();
  a.attempts_remaining = r.attempts_remaining();
  a.epoch = r.epoch();
  a.pending_commitment = r.pending_commitment();
  a.pending_busy_ms = r.pending_busy_ms();
  a.pending_expired = r.pending_expired();
  return a;
}

// Why realm `r`'s GetVaultInfo answer does not fit this client, or "".
std::string InfoMismatch(const threshold::RealmConfig& r, const VaultOptions& o,
                         const vault::v1::GetVaultInfoResponse& info) {
  if (info.protocol_version() != vault::v1::PROTOCOL_VERSION_3) {
    return absl::StrCat("speaks protocol ", info.protocol_version(),
                        ", not 3 (it is not a realm)");
  }
  if (info.realm_id() != r.id) {
    return absl::StrCat("calls itself \"", absl::CEscape(info.realm_id()),
                        "\" (the endpoint points at another realm)");
  }
  if (info.server_public_key() != AsString(r.identity_key)) {
    return "has another public key than the pinned one";
  }
  if (info.opaque_context() != o.opaque_context) {
    return absl::StrCat("uses the OPAQUE context \"",
                        absl::CEscape(info.opaque_context()), "\", not \"",
                        absl::CEscape(o.opaque_context), "\"");
  }
  if (info.server_identity() != o.server_identity.value_or("")) {
    return absl::StrCat("uses the server identity \"",
                        absl::CEscape(info.server_identity()), "\", not \"",
                        absl::CEscape(o.server_identity.value_or("")), "\"");
  }
  return "";
}

}  // namespace

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string UtcTime(int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  char text[32] = "?";
  if (gmtime_r(&t, &tm) != nullptr) {
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", &tm);
  }
  return text;
}

absl::Status ThresholdClient::Impl::CheckRealms(
    const std::vector<size_t>& positions) const {
  std::vector<std::string> why(positions.size());
  std::vector<bool> answered(positions.size(), false);
  Parallel(positions.size(), [&](size_t j) {
    const size_t i = positions[j];
    {
      std::lock_guard<std::mutex> l(checked_mu);
      if (checked.size() == static_cast<size_t>(set.n()) && checked[i]) return;
    }
    vault::v1::GetVaultInfoResponse info;
    absl::Status s = Call(i, "GetVaultInfo", VaultCall::kFree,
                          &vault::v1::Vault::Stub::GetVaultInfo,
                          vault::v1::GetVaultInfoRequest(), &info);
    if (s.code() == absl::StatusCode::kUnimplemented) {
      why[j] = "does not answer GetVaultInfo (not a realm)";
    } else if (s.ok()) {
      answered[j] = true;
      why[j] = InfoMismatch(set.realms()[i], options.vault, info);
    }
  });
  std::vector<std::string> bad;
  std::lock_guard<std::mutex> l(checked_mu);
  checked.resize(set.n(), false);
  for (size_t j = 0; j < positions.size(); ++j) {
    if (!why[j].empty()) {
      bad.push_back(absl::StrCat(IdOf(positions[j]), " ", why[j]));
    } else if (answered[j]) {
      checked[positions[j]] = true;
    }
  }
  if (bad.empty()) return absl::OkStatus();
  return ConfigError(absl::StrCat(
      "realm configuration mismatch: ", absl::StrJoin(bad, "; "),
      ". Fix the realm or this client's configuration (a realm's fault, not "
      "a wrong password); nothing was spent"));
}

opaque::Config ThresholdClient::Impl::Config() const {
  opaque::Config c;
  c.context = options.vault.opaque_context;
  c.server_identity = options.vault.server_identity;
  c.client_identity = options.vault.client_identity;
  return c;
}

std::vector<StatusAnswer> ThresholdClient::Impl::StatusRound(
    const std::string& account) const {
  std::vector<StatusAnswer> answers(set.n());
  vault::v1::ThresholdStatusRequest req;
  req.set_account(account);
  Parallel(set.n(), [&](size_t i) {
    vault::v1::ThresholdStatusResponse resp;
    absl::Status s = Call(i, "ThresholdStatus", VaultCall::kFree,
                          &vault::v1::Vault::Stub::ThresholdStatus, req, &resp);
    answers[i] = ToAnswer(std::move(s), resp);
  });
  return answers;
}

Newest ThresholdClient::Impl::RecallNewest(const std::string& account) const {
  const std::string line =
      RecallLine(options.state_dir, StateName("newest", account));
  std::vector<std::string> f = absl::StrSplit(line, ' ');
  Newest n;
  auto c =
      f.size() == 2 ? HexDecode(f[1]) : absl::StatusOr<std::vector<uint8_t>>();
  if (f.size() != 2 || !absl::SimpleAtoi(f[0], &n.epoch) || !c.ok() ||
      c->size() != 32) {
    return Newest{};
  }
  std::copy(c->begin(), c->end(), n.commitment.begin());
  return n;
}

absl::Status ThresholdClient::Impl::CheckNewest(
    const std::string& account) const {
  const uint64_t epoch = RecallNewest(account).epoch;
  if (epoch < kMaxEpoch) return absl::OkStatus();
  return ConfigError(absl::StrCat(
      "the state file ", options.state_dir, "/", StateName("newest", account),
      " remembers the registration epoch ", epoch,
      ", above any a realm accepts: it was edited or is corrupt; nothing was "
      "sent. Restore it from a backup or move it away (this device then "
      "relies on the realms' answers until its next recovery)"));
}

absl::Status ThresholdClient::Impl::RememberNewest(
    const std::string& account, uint64_t epoch,
    const Commitment& commitment) const {
  // Only ever raised, under a lock: two commands cannot lower it.
  const std::string name = StateName("newest", account);
  return UnderLock(options.state_dir, name, [&] {
    if (RecallNewest(account).epoch > epoch) return absl::OkStatus();
    return RememberLine(options.state_dir, name,
                        absl::StrCat(epoch, " ", HexEncode(commitment)));
  });
}

absl::Status ThresholdClient::Impl::SavePendingCommit(
    const std::string& account, const std::vector<uint8_t>& descriptor,
    const SecretBytes& commit_secret, const CommitFirst& first) const {
  // The time lets a later roll-forward refuse a stale record (finding 15);
  // the order keeps a migration's Commits in order whoever re-sends them.
  return RememberLine(
      options.state_dir, StateName("commit", account),
      absl::StrCat(HexEncode(descriptor), " ",
                   HexEncode(commit_secret.Reveal()), " ", NowMs(), " ",
                   first.empty() ? "-" : absl::StrJoin(first, ",")));
}

bool ThresholdClient::Impl::SendCommits(
    const vault::v1::ThresholdRegisterCommitRequest& req,
    const CommitFirst& first, std::vector<absl::Status>& results) const {
  results.assign(set.n(),
                 absl::UnavailableError(
                     "not sent: a realm committed first did not commit"));
  std::vector<std::vector<size_t>> waves;
  if (!first.empty()) waves.push_back(first);
  std::vector<size_t> rest;
  for (size_t i : AllPositions()) {
    if (std::find(first.begin(), first.end(), i) == first.end()) {
      rest.push_back(i);
    }
  }
  if (!rest.empty()) waves.push_back(rest);
  const auto ok = [&](size_t i) { return results[i].ok(); };
  for (size_t w = 0; w < waves.size(); ++w) {
    const std::vector<size_t>& wave = waves[w];
    Parallel(wave.size(), [&](size_t k) {
      vault::v1::ThresholdRegisterCommitResponse resp;
      results[wave[k]] =
          Call(wave[k], "ThresholdRegisterCommit", VaultCall::kFree,
               &vault::v1::Vault::Stub::ThresholdRegisterCommit, req, &resp);
    });
    if (w + 1 == waves.size()) break;
    if (!std::all_of(wave.begin(), wave.end(), ok)) {
      return std::any_of(wave.begin(), wave.end(), [&](size_t i) {
        return VaultError::From(results[i]).kind == VaultErrorKind::kExpired;
      });
    }
  }
  return false;
}

absl::Status ThresholdClient::Impl::CommitEverywhere(
    const std::string& account, const threshold::Descriptor& d,
    const SecretBytes& commit_secret, CommitTally* tally,
    const CommitFirst& first) const {
  vault::v1::ThresholdRegisterCommitRequest req;
  req.set_account(account);
  req.set_version(AsString(d.version));
  req.set_commit_secret(std::string(commit_secret.RevealAsString()));
  std::vector<absl::Status> results;
  const bool dead = SendCommits(req, first, results);
  sodium_memzero(req.mutable_commit_secret()->data(),
                 req.commit_secret().size());
  // Each realm: committed (OK), replaced there (STATE_EXPIRED), or not heard
  // (transient). The record goes only once every realm said OK or
  // STATE_EXPIRED: one realm's word must not end the roll-forward while
  // another still waits for this commit; or when a joiner's said
  // STATE_EXPIRED (`dead`: the kept realms never get this version).
  std::vector<std::string> failed;
  CommitTally local;
  CommitTally& t = tally != nullptr ? *tally : local;
  int& committed = t.committed;
  bool last_wave_ok = false;
  for (size_t i = 0; i < results.size(); ++i) {
    const bool joiner = std::find(first.begin(), first.end(), i) != first.end();
    if (dead && !joiner) {  // never sent: this version cannot reach it now
      t.expired.push_back(i);
      failed.push_back(absl::StrCat(IdOf(i), ": not sent"));
      continue;
    }
    if (results[i].ok()) {
      ++committed;
      last_wave_ok = last_wave_ok || !joiner;
      continue;
    }
    if (VaultError::From(results[i]).kind != VaultErrorKind::kExpired) {
      t.unheard.push_back(i);
    } else {
      t.expired.push_back(i);
    }
    failed.push_back(
        absl::StrCat(IdOf(i), ": ", absl::CEscape(results[i].message())));
  }
  const bool unheard = !t.unheard.empty();
  if (!unheard || dead) {
    BKV_RETURN_IF_ERROR(
        ForgetLine(options.state_dir, StateName("commit", account)));
  } else {
    // The order is needed once: a first-wave realm locked, down or replaced
    // later must not hold the rest back (merge review finding 1).
    const bool order_done =
        !first.empty() &&
        std::all_of(first.begin(), first.end(),
                    [&](size_t i) { return results[i].ok(); });
    const bool in_force = committed >= set.t();
    // Best effort: the Commits were sent, and a record left as it was only
    // keeps the order (a later roll-forward waits for the first wave) and
    // the stop's wording; failing the call here would misreport them.
    if (order_done || in_force) {
      (void)UpdateCommitRecord(account, commit_secret, order_done, in_force);
    }
  }
  // Once a realm of the last wave committed, this is the newest version: an
  // older group must not be recovered from (a dropped commit must not
  // revive it). A migration's joiners alone take nothing from the old set.
  if (last_wave_ok) {
    BKV_RETURN_IF_ERROR(RememberNewest(account, d.epoch, d.Commitment()));
  }
  if (failed.empty()) return absl::OkStatus();
  if (dead) {
    return absl::UnavailableError(absl::StrCat(
        "a realm that commits first (a joining or a repaired realm) replaced "
        "the new registration before its commit (",
        absl::StrJoin(failed, "; "),
        "): it was dropped and the other realms were sent nothing; the "
        "registration before it still holds the key"));
  }
  return absl::UnavailableError(absl::StrCat(
      "the registration was prepared at every realm but its commit did not "
      "reach ",
      absl::StrJoin(failed, "; "),
      unheard ? ": it is re-sent at the next registration or recovery"
              : ": another registration replaced it there"));
}

namespace {
// The roll-forward record's fifth field: t realms committed it.
constexpr char kInForceMark[] = "in-force";
}  // namespace

absl::Status ThresholdClient::Impl::UpdateCommitRecord(
    const std::string& account, const SecretBytes& commit_secret,
    bool order_done, bool in_force) const {
  const std::string name = StateName("commit", account);
  std::vector<std::string> f =
      absl::StrSplit(RecallLine(options.state_dir, name), ' ');
  // Only this registration's record (another may have replaced it), and
  // only one with its time (older records stay as they are).
  if (f.size() < 3 || f.size() > 5 ||
      f[1] != HexEncode(commit_secret.Reveal())) {
    return absl::OkStatus();
  }
  f.resize(std::max<size_t>(f.size(), 4), "-");
  if (order_done) f[3] = "-";
  if (in_force) {
    f.resize(5);
    f[4] = kInForceMark;
  }
  return RememberLine(options.state_dir, name, absl::StrJoin(f, " "));
}

std::vector<size_t> ThresholdClient::Impl::AllPositions() const {
  std::vector<size_t> all(set.n());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  return all;
}

namespace {

// The record's fourth field: the positions committed first ("-": none).
bool ParseFirst(const std::vector<std::string>& f, size_t n,
                CommitFirst& first) {
  if (f.size() < 4 || f[3] == "-") return true;
  for (absl::string_view p : absl::StrSplit(f[3], ',')) {
    size_t i = 0;
    if (!absl::SimpleAtoi(p, &i) || i >= n ||
        std::find(first.begin(), first.end(), i) != first.end()) {
      return false;  // an edited or broken record (merge review finding 5)
    }
    first.push_back(i);
  }
  return true;
}

}  // namespace

absl::Status ThresholdClient::Impl::RollForward(const std::string& account,
                                                std::string* said,
                                                bool* replaced) const {
  // A corrupt newest memory must not decide what is rolled forward.
  BKV_RETURN_IF_ERROR(CheckNewest(account));
  const std::string name = StateName("commit", account);
  const std::string line = RecallLine(options.state_dir, name);
  if (line.empty()) return absl::OkStatus();
  std::string unused;
  std::string& note = said != nullptr ? *said : unused;
  std::vector<std::string> f = absl::StrSplit(line, ' ');
  // hex(descriptor) hex(secret) [unix ms [order [in-force]]]; without the
  // time: from before the age rule, taken as fresh; without the order: all
  // at once; "in-force": t realms committed it in an earlier call.
  const bool shaped = f.size() >= 2 && f.size() <= 5;
  const bool was_in_force = f.size() == 5 && f[4] == kInForceMark;
  int64_t written = 0;
  auto descriptor =
      shaped ? HexDecode(f[0]) : absl::StatusOr<std::vector<uint8_t>>();
  auto secret =
      shaped ? HexDecode(f[1]) : absl::StatusOr<std::vector<uint8_t>>();
  absl::StatusOr<threshold::Descriptor> d =
      descriptor.ok() ? threshold::Descriptor::Parse(*descriptor)
                      : descriptor.status();
  CommitFirst first;
  if (!d.ok() || !secret.ok() || secret->size() != 32 ||
      (f.size() >= 3 && !absl::SimpleAtoi(f[2], &written)) ||
      (f.size() == 5 && !was_in_force) ||
      !ParseFirst(f, d->realms.size(), first)) {
    // Unreadable (edited, truncated): nothing can be rolled forward.
    note =
        absl::StrCat("the roll-forward record ", options.state_dir, "/", name,
                     " was unreadable (edited or truncated): dropped, "
                     "nothing re-sent");
    return ForgetLine(options.state_dir, name);
  }
  SecretBytes commit_secret = SecretBytes::Copy(*secret);
  sodium_memzero(secret->data(), secret->size());
  if (!threshold::CheckMatchesRealmSet(*d, set).ok()) {
    // Another realm set's (a migration's): never sent to this set's realms,
    // so neither set's record can pull the client to the other set.
    if (RecallNewest(account).epoch > d->epoch) {
      return ForgetLine(options.state_dir, name);  // superseded
    }
    note =
        "an unfinished registration for another realm set (a realm-set "
        "migration) waits: run `bkv realms migrate` again to complete it";
    return absl::OkStatus();
  }
  // Dated more than a minute ahead (a clock set back): of unknown age.
  const int64_t age = NowMs() - written;
  const bool old = written != 0 && (age > kRollForwardAgeMs || age < -60'000);
  if (old && !CommittedSomewhere(account, *d)) {
    // A change no realm committed, prepared long ago: completing it now,
    // right before a counted try, would switch the password silently.
    note = absl::StrCat("a registration prepared at ", UtcTime(written),
                        " was never committed and is older than 10 minutes: "
                        "dropped, not completed");
    return ForgetLine(options.state_dir, name);
  }
  // Said only when this call made it the newest: a record kept for a realm
  // that stays silent would otherwise repeat it at every try (finding 3).
  const bool was_newest = RecallNewest(account).epoch >= d->epoch;
  CommitTally tally;
  absl::Status s = CommitEverywhere(account, *d, commit_secret, &tally, first);
  const std::string when = written != 0 ? UtcTime(written) : "an unknown time";
  if (tally.committed == 0 && tally.unheard.empty() && was_in_force) {
    // It was in force (t realms committed it): a later registration replaced
    // it, made by someone who recovered it, so its password may well be the
    // one in force (merge review finding 2).
    note = absl::StrCat("the registration prepared at ", when,
                        " was replaced at every realm by a later one");
  } else if (tally.committed == 0 && tally.unheard.empty()) {
    // Replaced at every realm before this device saw it committed: another
    // device's repair reset it (rthr3 finding 3). Said before a counted try
    // with the new password.
    if (replaced != nullptr) *replaced = true;
    note = absl::StrCat(
        "a registration prepared at ", when,
        " (a password change or a rotation) was never completed at ", set.t(),
        " realms and has been replaced by a later registration: the password "
        "in force is the one from before that change");
  } else if (!was_newest && RecallNewest(account).epoch >= d->epoch) {
    note = absl::StrCat(
        "a registration (password change or rotation) "
        "prepared at ",
        when, " was completed just now");
  } else if (was_newest && !tally.unheard.empty()) {
    std::vector<std::string> ids;
    for (size_t i : tally.unheard) ids.push_back(IdOf(i));
    note = absl::StrCat("the registration prepared at ", when,
                        " is in force; its commit still waits for ",
                        absl::StrJoin(ids, ", "));
  }
  return s;
}

std::optional<threshold::Descriptor> ThresholdClient::Impl::PendingCommit(
    const std::string& account) const {
  const std::string line =
      RecallLine(options.state_dir, StateName("commit", account));
  if (line.empty()) return std::nullopt;
  std::vector<std::string> f = absl::StrSplit(line, ' ');
  auto bytes = HexDecode(f[0]);
  if (!bytes.ok()) return std::nullopt;
  auto d = threshold::Descriptor::Parse(*bytes);
  if (!d.ok()) return std::nullopt;
  return *std::move(d);
}

bool ThresholdClient::Impl::CommittedSomewhere(
    const std::string& account, const threshold::Descriptor& d) const {
  if (RecallNewest(account).epoch >= d.epoch) return true;
  // A Commit applied whose answer was lost raised no memory (finding 2).
  const Commitment c = d.Commitment();
  for (const StatusAnswer& a : StatusRound(account)) {
    if (a.error.ok() && a.record == StatusAnswer::Record::kActive &&
        a.commitment == AsString(c)) {
      return true;
    }
  }
  return false;
}

absl::Status ReplacedError(absl::string_view said) {
  return ThresholdError(
      VaultErrorKind::kStaleRegistration,
      absl::StrCat("stopped before any attempt: ", said,
                   "; nothing was counted, this is said once: try again "
                   "with that password"));
}

constexpr char kChangeUnknownUrl[] = "bkv.client/PasswordChangeUnknown";

absl::Status MarkPasswordChangeUnknown(absl::Status s) {
  s.SetPayload(kChangeUnknownUrl, absl::Cord("1"));
  return s;
}

bool IsPasswordChangeUnknown(const absl::Status& s) {
  return s.GetPayload(kChangeUnknownUrl).has_value();
}

ThresholdClient::ThresholdClient(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
// A rotation still running finishes first (it may be past its first Commit).
ThresholdClient::~ThresholdClient() { impl_->JoinRotation(); }

absl::StatusOr<std::unique_ptr<ThresholdClient>> ThresholdClient::Create(
    threshold::RealmSet realms, ThresholdOptions options) {
  const VaultOptions& v = options.vault;
  BKV_RETURN_IF_ERROR(CheckKsfFloor(v));
  BKV_RETURN_IF_ERROR(CheckRetired(realms, options.retired));
  for (const auto& r : realms.realms()) {
    if (!v.tls && !v.insecure_plaintext && !IsLoopbackAddress(r.endpoint)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "realm ", r.id, " at ", r.endpoint,
          " is not loopback, so TLS is required (--vault-ca FILE)"));
    }
  }
  BKV_ASSIGN_OR_RETURN(Argon2idKsf ksf, Argon2idKsf::Create(v.ksf));
  const auto creds = VaultChannelCredentials(v);
  auto impl = std::make_unique<Impl>(std::move(realms), std::move(options),
                                     std::move(ksf));
  for (const auto& r : impl->set.realms()) {
    impl->stubs.push_back(
        vault::v1::Vault::NewStub(grpc::CreateChannel(r.endpoint, creds)));
  }
  return std::unique_ptr<ThresholdClient>(new ThresholdClient(std::move(impl)));
}

const threshold::RealmSet& ThresholdClient::realms() const {
  return impl_->set;
}

absl::StatusOr<ThresholdRegistration> ThresholdClient::Register(
    const std::string& account, const SecretBytes& password,
    const SecretBytes& backup_key, const std::vector<std::string>& proofs) {
  impl_->JoinRotation();
  BKV_RETURN_IF_ERROR(CheckAccount(account));
  // An unfinished commit first: its version may be the one to replace.
  (void)impl_->RollForward(account);
  return impl_->Register(account, password, backup_key, proofs,
                         impl_->RecallNewest(account).commitment);
}

absl::StatusOr<ThresholdRecovery> ThresholdClient::Recover(
    const std::string& account, const SecretBytes& password) {
  impl_->JoinRotation();
  BKV_RETURN_IF_ERROR(CheckAccount(account));
  std::string said;
  bool replaced = false;
  (void)impl_->RollForward(account, &said, &replaced);
  if (replaced) return ReplacedError(said);
  std::vector<StatusAnswer> answers;
  auto got = impl_->Recover(account, password, answers);
  if (got.ok() && got->rotation_started) {
    impl_->StartRotation(account, password, *got, std::move(answers));
  }
  if (said.empty()) return got;
  if (got.ok()) {
    got->rolled_forward = std::move(said);
    return got;
  }
  // A wrong password right after a completed change: say which (finding 15);
  // a stale set while a migration's record waits: say to re-run it.
  const VaultErrorKind kind = VaultError::From(got.status()).kind;
  if (kind != VaultErrorKind::kInvalidPassword &&
      kind != VaultErrorKind::kStaleRegistration) {
    return got;
  }
  return WithMessage(got.status(),
                     absl::StrCat(got.status().message(), "; note: ", said));
}

std::optional<ThresholdRotation> ThresholdClient::WaitForRotation() {
  impl_->JoinRotation();
  return std::exchange(impl_->rotation_result, std::nullopt);
}

absl::StatusOr<RecoveryPlan> ThresholdClient::Plan(const std::string& account) {
  impl_->JoinRotation();
  BKV_RETURN_IF_ERROR(CheckAccount(account));
  // An unfinished commit first, or the plan sees the half-committed state
  // and a caller that stops at the plan (the CLI) never repairs it.
  std::string said;
  bool replaced = false;
  (void)impl_->RollForward(account, &said, &replaced);
  // The CLI plans, then recovers: the stop must come here (rthr3 finding 3).
  if (replaced) return ReplacedError(said);
  BKV_RETURN_IF_ERROR(impl_->CheckNewest(account));
  const std::vector<StatusAnswer> answers = impl_->StatusRound(account);
  auto plan = PlanRecovery(impl_->set, answers, impl_->RecallNewest(account));
  if (plan.ok()) plan->rolled_forward = std::move(said);
  return plan;
}

}  // namespace bkv::client
